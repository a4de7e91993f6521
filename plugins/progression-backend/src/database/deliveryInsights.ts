import { Knex } from 'knex';
import { DailyDelivery, DeliveryQuery, StageDelivery } from './PromotionStore';

/*
 * Delivery insights per stage, computed by the database in one statement
 * over the range's promotions only (the entity-stage-finished index), on
 * SQLite and PostgreSQL alike. The definitions are in docs/api.md
 * ("Delivery insights"); in short:
 *
 * - a deployment is a promotion (kind `promotion`) whose image patch went
 *   out (a `deploy`/`patch` step; every succeeded one has it) and that
 *   ended `succeeded`, `rolled-back` or `failed`; it counts on the day it
 *   ended;
 * - lead time: a succeeded deployment's end minus its release's commit
 *   time, or its registration when CI gave none;
 * - change failure rate: deployments that ended `rolled-back` or `failed`
 *   over all deployments;
 * - time to restore: an incident is a run of failed deployments of a
 *   stage; it lasts from the end of its first failed deployment to the end
 *   of the next succeeded deployment or on-demand rollback that succeeded.
 *
 * Percentiles are PostgreSQL's percentile_cont (linear interpolation
 * between the two nearest ranks, at position (n − 1) · p), computed with
 * window functions, which both databases have: the statement returns only
 * the rows at those ranks, and the interpolation happens here.
 */

/** An interpolated percentile: p = num / den, so ranks stay whole numbers. */
const PERCENTILES = { median: [1, 2], p90: [9, 10] } as const;

type Row = {
  row_kind: 'count' | 'incidents' | 'rank' | 'day-rank';
  metric: string;
  stage: string;
  bucket: string | null;
  k: number | string;
  n: number | string | null;
  v: number | string | null;
};

/** Dialect pieces: a duration in whole milliseconds and a UTC day. */
function dialect(db: Knex) {
  const sqlite = String(db.client.config.client).includes('sqlite');
  return {
    sqlite,
    ms: (later: string, earlier: string) =>
      sqlite
        ? `CAST(ROUND((julianday(${later}) - julianday(${earlier})) * 86400000.0) AS DOUBLE PRECISION)`
        : `CAST(ROUND(EXTRACT(EPOCH FROM (${later} - ${earlier})) * 1000) AS DOUBLE PRECISION)`,
    day: (column: string) =>
      sqlite
        ? `date(${column})`
        : `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
    /**
     * A time as the timestamp columns compare with it: SQLite keeps
     * CURRENT_TIMESTAMP as 'YYYY-MM-DD HH:MM:SS' text.
     */
    at: (d: Date): Date | string =>
      sqlite
        ? d
            .toISOString()
            .replace('T', ' ')
            .replace(/\.\d+Z$/, '')
        : d,
  };
}

/** The value at rank `p` of `n` sorted values, from the ranks fetched. */
function interpolate(
  ranks: Map<number, number>,
  n: number,
  [num, den]: readonly [number, number],
): number | undefined {
  if (n === 0) return undefined;
  const lo = Math.floor(((n - 1) * num) / den);
  const rest = ((n - 1) * num) % den;
  const low = ranks.get(lo);
  const high = ranks.get(rest ? lo + 1 : lo);
  if (low === undefined || high === undefined) return undefined;
  return Math.round(low + ((high - low) * rest) / den);
}

export async function deliveryInsights(
  db: Knex,
  query: DeliveryQuery,
): Promise<StageDelivery[]> {
  const { stages } = query;
  if (!stages.length) return [];
  const { ms, day, at } = dialect(db);
  const inStages = stages.map(() => '?').join(', ');
  const rows: Row[] = await db
    .raw(
      `
WITH ended AS (
  SELECT p.stage, p.created_at, p.finished_at,
    ${day('p.finished_at')} AS bucket,
    CASE
      WHEN p.kind = 'rollback' THEN 'restore'
      WHEN p.state = 'succeeded' THEN 'succeeded'
      ELSE 'failed'
    END AS outcome,
    CASE WHEN p.kind = 'promotion' AND p.state = 'succeeded'
      THEN ${ms('p.finished_at', 'COALESCE(r.committed_at, r.created_at)')}
    END AS lead_ms,
    CASE WHEN r.committed_at IS NULL THEN 0 ELSE 1 END AS from_commit
  FROM progression_promotions p
  JOIN progression_releases r ON r.id = p.release_id
  WHERE p.entity_ref = ?
    AND p.stage IN (${inStages})
    AND p.finished_at >= ?
    AND (
      p.state = 'succeeded'
      OR (
        p.kind = 'promotion'
        AND p.state IN ('failed', 'rolled-back')
        -- Deployed: the image patch went out (a cancel, or a migration Job
        -- that failed before it, deployed nothing).
        AND EXISTS (
          SELECT 1 FROM progression_promotion_steps s
          WHERE s.promotion_id = p.id AND s.kind = 'deploy' AND s.name = 'patch'
        )
      )
    )
),
events AS MATERIALIZED (
  -- seq counts the stage's healthy outcomes so far: failed deployments
  -- with the same seq are one incident, and the healthy outcome numbered
  -- seq + 1 ends it. A running count is one pass, where "the next healthy
  -- outcome" as a window over the following rows would be quadratic.
  SELECT stage, bucket, finished_at, outcome, lead_ms, from_commit,
    COUNT(CASE WHEN outcome <> 'failed' THEN 1 END) OVER (
      PARTITION BY stage ORDER BY finished_at, created_at
      ROWS UNBOUNDED PRECEDING
    ) AS seq
  FROM ended
),
incidents AS (
  SELECT stage,
    MIN(CASE WHEN outcome = 'failed' THEN finished_at END) AS failed_at,
    MIN(CASE WHEN outcome = 'failed' THEN bucket END) AS bucket,
    MIN(CASE WHEN outcome <> 'failed' THEN finished_at END) AS restored_at
  FROM (
    SELECT stage, seq, bucket, finished_at, outcome
    FROM events WHERE outcome = 'failed'
    UNION ALL
    SELECT stage, seq - 1, bucket, finished_at, outcome
    FROM events WHERE outcome <> 'failed'
  ) grouped
  GROUP BY stage, seq
  HAVING COUNT(CASE WHEN outcome = 'failed' THEN 1 END) > 0
),
samples AS (
  SELECT 'lead' AS metric, stage, bucket, lead_ms AS v
  FROM events WHERE outcome = 'succeeded'
  UNION ALL
  SELECT 'restore', stage, bucket, ${ms('restored_at', 'failed_at')}
  FROM incidents WHERE restored_at IS NOT NULL
),
ranked AS MATERIALIZED (
  SELECT metric, stage, bucket, v,
    ROW_NUMBER() OVER (PARTITION BY metric, stage ORDER BY v) - 1 AS i,
    COUNT(*) OVER (PARTITION BY metric, stage) AS n,
    ROW_NUMBER() OVER (PARTITION BY metric, stage, bucket ORDER BY v) - 1 AS di,
    COUNT(*) OVER (PARTITION BY metric, stage, bucket) AS dn
  FROM samples
)
SELECT 'count' AS row_kind, outcome AS metric, stage, bucket,
  COUNT(*) AS k, SUM(from_commit) AS n, CAST(NULL AS DOUBLE PRECISION) AS v
FROM events GROUP BY outcome, stage, bucket
UNION ALL
SELECT 'incidents',
  CASE WHEN restored_at IS NULL THEN 'open' ELSE 'restored' END,
  stage, CAST(NULL AS TEXT), COUNT(*), CAST(NULL AS BIGINT),
  CAST(NULL AS DOUBLE PRECISION)
FROM incidents
GROUP BY stage, CASE WHEN restored_at IS NULL THEN 'open' ELSE 'restored' END
UNION ALL
-- Only the ranks the percentiles interpolate between: floor and ceiling
-- of (n - 1) / 2 and of 9 (n - 1) / 10, in whole-number arithmetic.
SELECT 'rank', metric, stage, CAST(NULL AS TEXT), i, n, v FROM ranked
WHERE i IN ((n - 1) / 2, n / 2, (n - 1) * 9 / 10, ((n - 1) * 9 + 9) / 10)
UNION ALL
SELECT 'day-rank', metric, stage, bucket, di, dn, v FROM ranked
WHERE di IN ((dn - 1) / 2, dn / 2)
`,
      [query.entityRef, ...stages, at(query.since)],
    )
    .then(result => (Array.isArray(result) ? result : result.rows));

  const byStage = new Map<
    string,
    StageDelivery & { days: Map<string, DailyDelivery> }
  >(
    stages.map(stage => [
      stage,
      {
        stage,
        succeeded: 0,
        failed: 0,
        leadTime: { count: 0, fromCommit: 0 },
        restore: { incidents: 0, restored: 0 },
        daily: [],
        days: new Map(),
      },
    ]),
  );
  const dayOf = (s: { days: Map<string, DailyDelivery> }, date: string) => {
    let d = s.days.get(date);
    if (!d) {
      d = { date, succeeded: 0, failed: 0 };
      s.days.set(date, d);
    }
    return d;
  };
  // Ranks fetched for each percentile: `${metric}|${bucket}` → n, rank → v.
  const ranks = new Map<
    string,
    { stage: string; metric: string; bucket?: string; n: number } & {
      values: Map<number, number>;
    }
  >();
  for (const row of rows) {
    const s = byStage.get(row.stage);
    if (!s) continue;
    const k = Number(row.k);
    switch (row.row_kind) {
      case 'count':
        // Restores are no deployments: they only end incidents.
        if (row.metric === 'succeeded') {
          s.succeeded += k;
          dayOf(s, row.bucket!).succeeded += k;
          s.leadTime.count += k;
          s.leadTime.fromCommit += Number(row.n ?? 0);
        } else if (row.metric === 'failed') {
          s.failed += k;
          dayOf(s, row.bucket!).failed += k;
        }
        break;
      case 'incidents':
        s.restore.incidents += k;
        if (row.metric === 'restored') s.restore.restored += k;
        break;
      default: {
        const bucket = row.row_kind === 'day-rank' ? row.bucket! : undefined;
        const key = `${row.stage}|${row.metric}|${bucket ?? ''}`;
        let entry = ranks.get(key);
        if (!entry) {
          entry = {
            stage: row.stage,
            metric: row.metric,
            bucket,
            n: Number(row.n),
            values: new Map(),
          };
          ranks.set(key, entry);
        }
        entry.values.set(k, Number(row.v));
      }
    }
  }
  for (const { stage, metric, bucket, n, values } of ranks.values()) {
    const s = byStage.get(stage)!;
    const median = interpolate(values, n, PERCENTILES.median);
    if (bucket) {
      const d = dayOf(s, bucket);
      if (metric === 'lead') d.leadTimeMedianMs = median;
      else d.restoreMedianMs = median;
    } else if (metric === 'lead') {
      s.leadTime.medianMs = median;
      s.leadTime.p90Ms = interpolate(values, n, PERCENTILES.p90);
    } else {
      s.restore.medianMs = median;
    }
  }
  return [...byStage.values()].map(({ days, ...s }) => ({
    ...s,
    daily: [...days.values()].sort((a, b) => a.date.localeCompare(b.date)),
  }));
}

/**
 * The count and the latest end of the range's ended promotions, from the
 * entity-stage-finished index alone. A promotion's row does not change once
 * it has ended, and rows only enter a range that starts on a fixed day, so
 * equal fingerprints mean equal insights.
 */
export async function deliveryFingerprint(
  db: Knex,
  query: DeliveryQuery,
): Promise<string> {
  if (!query.stages.length) return '0';
  const [row] = await db('progression_promotions')
    .where('entity_ref', query.entityRef)
    .whereIn('stage', query.stages)
    .andWhere('finished_at', '>=', dialect(db).at(query.since))
    .count({ n: '*' })
    .max({ last: 'finished_at' });
  const last = row.last instanceof Date ? row.last.toISOString() : row.last;
  return `${row.n}|${last ?? ''}`;
}
