import { useState } from 'react';
import {
  Box,
  Card,
  CardContent,
  CardHeader,
  TextField,
  Typography,
  makeStyles,
} from '@material-ui/core';
import { Progress, StatusWarning } from '@backstage/core-components';
import { useApi } from '@backstage/frontend-plugin-api';
import { CompoundEntityRef } from '@backstage/catalog-model';
import { GetEntityInsightsQuery } from '@progression-io/backstage-plugin-progression-common';
import useAsync from 'react-use/esm/useAsync';
import { progressionApiRef } from '../../api';
import { StageDeliveryFigures } from './StageDeliveryFigures';

type Range = NonNullable<GetEntityInsightsQuery['range']>;

const RANGES: { range: Range; label: string }[] = [
  { range: '7d', label: 'Last 7 days' },
  { range: '30d', label: 'Last 30 days' },
  { range: '90d', label: 'Last 90 days' },
];

const useStyles = makeStyles(theme => ({
  section: {
    marginTop: theme.spacing(2),
    marginBottom: theme.spacing(2),
  },
  stages: {
    display: 'grid',
    gridTemplateColumns: 'repeat(auto-fit, minmax(260px, 1fr))',
    gap: theme.spacing(3),
  },
  // On a phone the range goes under the title instead of squeezing it.
  header: {
    flexWrap: 'wrap',
    rowGap: theme.spacing(1),
  },
  headerContent: {
    flex: '1 1 240px',
  },
  range: {
    minWidth: 150,
  },
  // The theme's secondary text is too faint on the page's grey (axe).
  label: {
    color: theme.palette.text.primary,
  },
}));

/**
 * Delivery insights of every stage of the entity's pipeline: deployment
 * frequency, lead time, change failure rate and time to restore over the
 * last 7, 30 or 90 days, each with its counts and a trend per day. For
 * the Environments tab; `refreshKey` reads them again when it changes
 * (a promotion ended).
 */
export function DeliveryInsights({
  entityRef,
  refreshKey,
}: {
  entityRef: CompoundEntityRef;
  refreshKey?: unknown;
}) {
  const classes = useStyles();
  const api = useApi(progressionApiRef);
  const [range, setRange] = useState<Range>('30d');
  const { value, loading, error } = useAsync(
    // Async, so that whatever goes wrong is this section's error, never a
    // throw into the tab.
    async () => api.getInsights(entityRef, { range }),
    // The entity's parts, not the object: a parent's re-render is no reason.
    [
      api,
      entityRef.kind,
      entityRef.namespace,
      entityRef.name,
      range,
      refreshKey,
    ],
  );
  const rangeLabel = RANGES.find(r => r.range === range)!.label;
  const empty =
    value?.stages.every(
      s => s.deployments.count === 0 && s.timeToRestore.incidents === 0,
    ) ?? false;

  return (
    <section aria-label="Delivery insights" className={classes.section}>
      <Card>
        <CardHeader
          classes={{ root: classes.header, content: classes.headerContent }}
          title="Delivery insights"
          titleTypographyProps={{ variant: 'h6', component: 'h2' }}
          subheader="Deployment frequency, lead time, change failure rate and time to restore, from the promotion history"
          action={
            // A native select: its name is its label, its value is what
            // it shows.
            <TextField
              select
              size="small"
              id="delivery-insights-range"
              label="Range"
              className={classes.range}
              value={range}
              onChange={e => setRange(e.target.value as Range)}
              SelectProps={{ native: true }}
              InputLabelProps={{ shrink: true, className: classes.label }}
            >
              {RANGES.map(r => (
                <option key={r.range} value={r.range}>
                  {r.label}
                </option>
              ))}
            </TextField>
          }
        />
        <CardContent>
          {loading && !value && <Progress />}
          {/* A line, not an error panel: the insights are an extra of the
            tab, and a failure here must not crowd out the stages. */}
          {error && (
            <Typography variant="body2" role="alert">
              <StatusWarning>
                Could not load the delivery insights: {error.message}
              </StatusWarning>
            </Typography>
          )}
          {value && !error && empty && (
            <Typography variant="body2" color="textSecondary">
              No deployments in the {rangeLabel.toLowerCase()}: the figures
              appear once a promotion has deployed a release.
            </Typography>
          )}
          {value && !error && !empty && (
            <Box className={classes.stages}>
              {value.stages.map(stage => (
                <Box
                  key={stage.stage}
                  role="group"
                  aria-label={`Delivery of ${stage.title}`}
                  data-testid={`insights-${stage.stage}`}
                >
                  <Typography variant="subtitle1" component="h3">
                    {stage.title}
                  </Typography>
                  <StageDeliveryFigures insights={stage} days={value.days} />
                </Box>
              ))}
            </Box>
          )}
        </CardContent>
      </Card>
    </section>
  );
}
