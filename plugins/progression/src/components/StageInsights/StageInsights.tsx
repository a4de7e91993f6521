import { useState } from 'react';
import { Box, Button, Typography, makeStyles } from '@material-ui/core';
import {
  StatusAborted,
  StatusError,
  StatusOK,
  StatusPending,
  StatusWarning,
  TrendLine,
} from '@backstage/core-components';
import {
  EntityFlags,
  FlagRow,
  MetricPoint,
  Stage,
  StageGateSummary,
  StageMetrics,
} from '@progression-io/backstage-plugin-progression-common';
import {
  PromotionDetailsDialog,
  gateOutcome,
  notMeasured,
} from '../PromotionHistory';

const useStyles = makeStyles(theme => ({
  section: {
    marginTop: theme.spacing(1),
  },
  term: {
    color: theme.palette.text.secondary,
  },
  chart: {
    display: 'grid',
    gridTemplateColumns: '6.5em 1fr 5em',
    alignItems: 'center',
    columnGap: theme.spacing(1),
  },
  gate: {
    display: 'flex',
    alignItems: 'baseline',
    gap: theme.spacing(0.5),
  },
  evidence: {
    padding: 0,
    minWidth: 0,
    textTransform: 'none',
    verticalAlign: 'baseline',
  },
}));

const GATE_ICONS: Record<string, typeof StatusOK> = {
  passed: StatusOK,
  failed: StatusError,
  error: StatusError,
  inconclusive: StatusWarning,
  skipped: StatusAborted,
  started: StatusPending,
};

/**
 * Each gate's latest result in the stage, with its one-line reason; the
 * status is spelled out, not only coloured, and metric checks that were
 * optional and not measured say so rather than "skipped". "Evidence" opens
 * the promotion's details.
 */
export function StageGates({ gates }: { gates?: StageGateSummary[] }) {
  const classes = useStyles();
  const [open, setOpen] = useState<string>();
  if (!gates?.length) return null;
  return (
    <Box className={classes.section}>
      <Typography variant="body2" className={classes.term} component="h4">
        Gates
      </Typography>
      <ul aria-label="Gate results" style={{ margin: 0, paddingLeft: 0 }}>
        {gates.map(g => {
          // Not measured is no pass: it draws the eye like a warning.
          const Icon = notMeasured(g)
            ? StatusWarning
            : GATE_ICONS[g.status] ?? StatusPending;
          return (
            <li
              key={g.gate}
              className={classes.gate}
              style={{ listStyle: 'none' }}
            >
              <Typography variant="body2" component="span">
                <Icon>
                  <span>
                    <strong>{g.gate}</strong>
                    {` ${gateOutcome(g)}`}
                  </span>
                </Icon>{' '}
                <Button
                  size="small"
                  color="primary"
                  className={classes.evidence}
                  aria-label={`Evidence of the ${g.gate} gate`}
                  onClick={() => setOpen(g.promotionId)}
                >
                  Evidence
                </Button>
              </Typography>
            </li>
          );
        })}
      </ul>
      {open && (
        <PromotionDetailsDialog id={open} onClose={() => setOpen(undefined)} />
      )}
    </Box>
  );
}

const values = (points?: MetricPoint[]) =>
  (points ?? []).flatMap(p => (p.v === null ? [] : [p.v]));

const SERIES: {
  key: 'requestRate' | 'errorRate' | 'p95';
  label: string;
  format: (v: number) => string;
  color: string;
}[] = [
  {
    key: 'requestRate',
    label: 'Requests',
    format: v => `${v.toFixed(v < 10 ? 2 : 0)}/s`,
    color: '#1f77b4',
  },
  {
    key: 'errorRate',
    label: 'Errors',
    format: v => `${(v * 100).toFixed(1)}%`,
    color: '#d62728',
  },
  {
    key: 'p95',
    label: 'p95 latency',
    format: v => `${Math.round(v * 1000)} ms`,
    color: '#9467bd',
  },
];

/**
 * Request rate, error rate and p95 over the last hour as small trend
 * lines (Backstage's TrendLine), each with its latest value in words.
 */
export function StageCharts({
  metrics,
  unavailable,
}: {
  metrics?: StageMetrics;
  /** Why there are no metrics at all (no Prometheus), if so. */
  unavailable?: string;
}) {
  const classes = useStyles();
  if (unavailable) {
    return (
      <Typography
        variant="body2"
        className={classes.section}
        color="textSecondary"
      >
        Metrics: {unavailable}
      </Typography>
    );
  }
  if (!metrics) return null;
  if (metrics.error) {
    return (
      <Typography variant="body2" className={classes.section}>
        <StatusWarning>Metrics unavailable: {metrics.error}</StatusWarning>
      </Typography>
    );
  }
  return (
    <Box
      className={classes.section}
      aria-label="Metrics over the last hour"
      role="group"
    >
      <Typography variant="body2" className={classes.term} component="h4">
        Last hour
      </Typography>
      {SERIES.map(s => {
        const data = values(metrics[s.key]);
        const latest = data[data.length - 1];
        return (
          <Box key={s.key} className={classes.chart}>
            <Typography variant="body2" component="span">
              {s.label}
            </Typography>
            {data.length > 1 ? (
              <TrendLine
                data={data}
                title={`${s.label} over the last hour`}
                color={s.color}
                max={Math.max(...data, 0) || 1}
                min={0}
              />
            ) : (
              <Typography
                variant="body2"
                color="textSecondary"
                component="span"
              >
                {data.length ? 'one sample so far' : 'no data yet'}
              </Typography>
            )}
            <Typography variant="body2" component="span" align="right">
              {latest === undefined ? '—' : s.format(latest)}
            </Typography>
          </Box>
        );
      })}
    </Box>
  );
}

const describe = (v: FlagRow['values'][string] | undefined) => {
  if (!v) return 'absent';
  if (v.state !== 'ENABLED') return 'disabled';
  if (typeof v.value === 'boolean') return v.value ? 'on' : 'off';
  return JSON.stringify(v.value);
};

/** The flags of this stage that differ from the stage before or after it. */
export function flagDifferences(
  flags: EntityFlags | undefined,
  stage: string,
): { key: string; here: string; there: string; neighbour: string }[] {
  if (!flags) return [];
  const i = flags.stages.indexOf(stage);
  const neighbours = [flags.stages[i - 1], flags.stages[i + 1]].filter(
    (s): s is string => Boolean(s) && !flags.errors[s!],
  );
  if (i === -1 || flags.errors[stage]) return [];
  return flags.flags.flatMap(row =>
    neighbours.flatMap(n => {
      const here = describe(row.values[stage]);
      const there = describe(row.values[n]);
      return here === there
        ? []
        : [{ key: row.key, here, there, neighbour: n }];
    }),
  );
}

/** Feature flags that differ from the neighbouring stages. */
export function StageFlags({
  flags,
  stage,
}: {
  flags?: EntityFlags;
  stage: Stage;
}) {
  const classes = useStyles();
  if (!flags) return null;
  const error = flags.errors[stage.name];
  if (error) {
    return (
      <Typography variant="body2" className={classes.section}>
        <StatusWarning>Flags unknown: {error}</StatusWarning>
      </Typography>
    );
  }
  const diffs = flagDifferences(flags, stage.name);
  if (!diffs.length) {
    return (
      <Typography
        variant="body2"
        className={classes.section}
        color="textSecondary"
      >
        Flags: same as the neighbouring stages
      </Typography>
    );
  }
  return (
    <Box className={classes.section}>
      <Typography variant="body2" className={classes.term} component="h4">
        Flags that differ
      </Typography>
      <ul aria-label="Flags that differ" style={{ margin: 0, paddingLeft: 16 }}>
        {diffs.map(d => (
          <li key={`${d.key}-${d.neighbour}`}>
            <Typography variant="body2" component="span">
              <code>{d.key}</code> {d.here} here, {d.there} in {d.neighbour}
            </Typography>
          </li>
        ))}
      </ul>
    </Box>
  );
}
