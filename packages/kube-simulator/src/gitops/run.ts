import { ChildProcess, spawn } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the process's stdin, which is then closed. */
  input?: string | Buffer;
  /** Killed (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  /** The owner's running processes, so that it can kill them when it stops. */
  children?: Set<ChildProcess>;
}

export interface RunResult {
  /** The exit code; -1 when the process could not start or was killed. */
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program (never a shell: arguments are an array) and collects its
 * output. Resolves on every outcome; `check` turns a failure into an error.
 */
export function run(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise(resolve => {
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      resolve({ code: -1, stdout: '', stderr: String(e) });
      return;
    }
    options.children?.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', b => out.push(b));
    child.stderr!.on('data', b => err.push(b));
    child.stdin!.on('error', () => {
      // The process exited without reading all its input: its exit code says why.
    });
    let settled = false;
    const finish = (code: number, extra = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.children?.delete(child);
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + extra,
      });
    };
    child.on('error', e => finish(-1, `${command}: ${e.message}`));
    child.on('close', code =>
      finish(
        timedOut ? -1 : code ?? -1,
        timedOut ? `${command} timed out after ${timeoutMs} ms` : '',
      ),
    );
    child.stdin!.end(options.input ?? '');
  });
}

/** The output of a successful run; otherwise an error quoting its stderr. */
export function check(result: RunResult, what: string): string {
  if (result.code !== 0) {
    const detail = result.stderr.trim() || `exit code ${result.code}`;
    throw new Error(`${what} failed: ${detail}`);
  }
  return result.stdout;
}

/**
 * An environment for git: none of the caller's GIT_* variables (a hook's
 * GIT_DIR or GIT_INDEX_FILE would redirect every command), no user or
 * system configuration, never a prompt for credentials.
 */
export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('GIT_')) env[key] = value;
  }
  return {
    ...env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    ...extra,
  };
}

/** Kills every process of `children` (SIGKILL). */
export function killAll(children: Set<ChildProcess>) {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}
