/**
 * Faults the reliability tests of the plugins inject into the API: latency,
 * 5xx answers, 409 conflicts on writes, and watches cut after a while.
 */
export interface FaultSettings {
  /** Added to every request, in milliseconds. */
  latencyMs?: number;
  /** Answer the next N requests (that match `methods`) with 500. */
  failNext?: number;
  /** Status code for `failNext`, default 500 (503 and 504 are common too). */
  failStatus?: number;
  /** Answer the next N writes (PUT, PATCH) with 409 Conflict. */
  conflictNext?: number;
  /** Close each watch connection after this many milliseconds. */
  dropWatchesAfterMs?: number;
  /** Limit failNext to these methods; all when unset. */
  methods?: string[];
}

export class Faults {
  private settings: FaultSettings = {};

  set(settings: FaultSettings) {
    this.settings = { ...this.settings, ...settings };
  }

  clear() {
    this.settings = {};
  }

  get latencyMs() {
    return this.settings.latencyMs ?? 0;
  }

  get dropWatchesAfterMs() {
    return this.settings.dropWatchesAfterMs;
  }

  /** Takes one injected failure for this request, if any is left. */
  takeFailure(method: string): { status: number; reason: string } | undefined {
    const s = this.settings;
    if ((s.conflictNext ?? 0) > 0 && (method === 'PUT' || method === 'PATCH')) {
      s.conflictNext! -= 1;
      return { status: 409, reason: 'Conflict' };
    }
    if ((s.failNext ?? 0) > 0 && (!s.methods || s.methods.includes(method))) {
      s.failNext! -= 1;
      return { status: s.failStatus ?? 500, reason: 'InternalError' };
    }
    return undefined;
  }
}
