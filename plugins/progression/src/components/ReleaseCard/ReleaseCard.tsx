import {
  InfoCard,
  Progress,
  ResponseErrorPanel,
  StatusError,
  StatusOK,
  StatusPending,
  StatusWarning,
} from '@backstage/core-components';
import { useApi } from '@backstage/frontend-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import { getCompoundEntityRef } from '@backstage/catalog-model';
import { Stage } from '@progression-io/backstage-plugin-progression-common';
import {
  Box,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  Typography,
  makeStyles,
} from '@material-ui/core';
import useAsync from 'react-use/esm/useAsync';
import { progressionApiRef } from '../../api';

function Health({ stage }: { stage: Stage }) {
  if (stage.error) return <StatusWarning>unknown</StatusWarning>;
  if (!stage.live) return <>—</>;
  switch (stage.live.health) {
    case 'healthy':
      return <StatusOK>healthy</StatusOK>;
    case 'degraded':
      return <StatusError>degraded</StatusError>;
    default:
      return <StatusPending>rolling out</StatusPending>;
  }
}

/**
 * "Where is my release": each stage's live version and health, and what is
 * on its way, in a compact card for the entity's Overview tab.
 */
const useStyles = makeStyles({
  scroll: { overflowX: 'auto' },
  table: { '& th, & td': { whiteSpace: 'nowrap' } },
});

export function ReleaseCard() {
  const classes = useStyles();
  const { entity } = useEntity();
  const api = useApi(progressionApiRef);
  const { value, loading, error } = useAsync(
    async () => api.getEnvironments(getCompoundEntityRef(entity)),
    [api, entity],
  );
  return (
    <InfoCard
      title="Where is my release"
      subheader={value ? `Pipeline: ${value.pipeline.title}` : undefined}
      deepLink={{ title: 'Environments', link: 'environments' }}
    >
      {loading && <Progress />}
      {error && (
        <ResponseErrorPanel error={error} title="Could not load the stages" />
      )}
      {value && (
        // Words stay whole ("Development", "healthy"); a narrow card
        // scrolls sideways.
        <Box className={classes.scroll}>
          <Table
            size="small"
            aria-label="Where is my release"
            className={classes.table}
          >
            <TableHead>
              <TableRow>
                <TableCell>Stage</TableCell>
                <TableCell>Live</TableCell>
                <TableCell>Health</TableCell>
                <TableCell>On its way</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {value.pipeline.stages.map(stage => (
                <TableRow key={stage.name}>
                  <TableCell>{stage.title}</TableCell>
                  <TableCell>{stage.live?.version ?? '—'}</TableCell>
                  <TableCell>
                    <Health stage={stage} />
                  </TableCell>
                  <TableCell>
                    {stage.activePromotion ? (
                      <Typography variant="body2">
                        {stage.activePromotion.version} (
                        {stage.activePromotion.state})
                      </Typography>
                    ) : (
                      '—'
                    )}
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </Box>
      )}
    </InfoCard>
  );
}
