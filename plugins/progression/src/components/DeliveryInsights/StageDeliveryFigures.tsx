import { Box, Typography, makeStyles } from '@material-ui/core';
import { TrendLine } from '@backstage/core-components';
import { StageDeliveryInsights } from '@progression-io/backstage-plugin-progression-common';
import { formatDuration } from './formatDuration';

const useStyles = makeStyles(theme => ({
  figure: {
    display: 'grid',
    gridTemplateColumns: '9.5em minmax(4em, 1fr) 6em',
    alignItems: 'center',
    columnGap: theme.spacing(1),
    marginTop: theme.spacing(1),
  },
  counts: {
    gridColumn: '1 / -1',
    color: theme.palette.text.secondary,
  },
}));

const notNull = (values: (number | null)[]) =>
  values.filter((v): v is number => v !== null);

const percent = (rate: number) => `${Math.round(rate * 1000) / 10}%`;

const plural = (n: number, one: string, many = `${one}s`) =>
  `${n} ${n === 1 ? one : many}`;

/**
 * One figure: its label, a small trend over the range's days (Backstage's
 * TrendLine; fewer than two points draw none), its value, and the counts
 * it comes from in words.
 */
function Figure({
  label,
  value,
  counts,
  trend,
  color,
}: {
  label: string;
  value: string;
  counts: string;
  trend: number[];
  color: string;
}) {
  const classes = useStyles();
  return (
    <Box className={classes.figure} role="group" aria-label={label}>
      <Typography variant="body2" component="span">
        {label}
      </Typography>
      {trend.length > 1 ? (
        <TrendLine
          data={trend}
          title={`${label} per day`}
          color={color}
          max={Math.max(...trend, 0) || 1}
          min={0}
        />
      ) : (
        <span />
      )}
      <Typography variant="body2" component="span" align="right">
        <strong>{value}</strong>
      </Typography>
      <Typography variant="caption" className={classes.counts}>
        {counts}
      </Typography>
    </Box>
  );
}

/**
 * A stage's four delivery figures over the range — deployment frequency,
 * lead time, change failure rate, time to restore — each with the counts
 * it comes from and a trend per day.
 */
export function StageDeliveryFigures({
  insights,
  days,
}: {
  insights: StageDeliveryInsights;
  /** The range in days, for the words. */
  days: number;
}) {
  const { deployments, leadTime, changeFailureRate, timeToRestore, daily } =
    insights;
  const restoreCounts = timeToRestore.incidents
    ? `${timeToRestore.restored} of ${plural(
        timeToRestore.incidents,
        'incident',
      )} restored${
        timeToRestore.open ? `, ${timeToRestore.open} still open` : ''
      }`
    : 'no failed deployments';
  return (
    <>
      <Figure
        label="Deployments"
        value={`${
          deployments.perDay < 10
            ? deployments.perDay.toFixed(2)
            : Math.round(deployments.perDay)
        }/day`}
        counts={`${plural(deployments.count, 'deployment')} in ${days} days`}
        trend={daily.map(d => d.deployments)}
        color="#1f77b4"
      />
      <Figure
        label="Lead time"
        value={formatDuration(leadTime.medianMs)}
        counts={
          leadTime.count
            ? `median; p90 ${formatDuration(leadTime.p90Ms)}; ${plural(
                leadTime.count,
                'deployment',
              )}, ${leadTime.fromCommit} from the commit time`
            : 'no successful deployments'
        }
        trend={notNull(daily.map(d => d.leadTimeMedianMs))}
        color="#9467bd"
      />
      <Figure
        label="Change failure rate"
        value={
          changeFailureRate.rate === null
            ? '—'
            : percent(changeFailureRate.rate)
        }
        counts={`${changeFailureRate.failed} of ${plural(
          changeFailureRate.deployments,
          'deployment',
        )} failed or rolled back`}
        trend={daily
          .filter(d => d.deployments > 0)
          .map(d => d.failed / d.deployments)}
        color="#d62728"
      />
      <Figure
        label="Time to restore"
        value={formatDuration(timeToRestore.medianMs)}
        counts={
          timeToRestore.medianMs === null
            ? restoreCounts
            : `median; ${restoreCounts}`
        }
        trend={notNull(daily.map(d => d.restoreMedianMs))}
        color="#ff7f0e"
      />
    </>
  );
}
