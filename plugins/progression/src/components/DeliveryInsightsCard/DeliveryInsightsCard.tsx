import {
  InfoCard,
  Progress,
  ResponseErrorPanel,
} from '@backstage/core-components';
import { useApi } from '@backstage/frontend-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import { getCompoundEntityRef } from '@backstage/catalog-model';
import { DeliveryInsights } from '@progression-io/backstage-plugin-progression-common';
import { Typography } from '@material-ui/core';
import useAsync from 'react-use/esm/useAsync';
import { progressionApiRef } from '../../api';
import { StageDeliveryFigures } from '../DeliveryInsights';

/** The stage named `production`, else the pipeline's last: where releases end up. */
const productionOf = (insights: DeliveryInsights) =>
  insights.stages.find(s => s.stage === 'production') ??
  insights.stages[insights.stages.length - 1];

/**
 * Production's delivery over the last 30 days — deployment frequency,
 * lead time, change failure rate, time to restore — in a card for the
 * entity's Overview tab.
 */
export function DeliveryInsightsCard() {
  const { entity } = useEntity();
  const api = useApi(progressionApiRef);
  const { value, loading, error } = useAsync(
    async () => api.getInsights(getCompoundEntityRef(entity), { range: '30d' }),
    [api, entity],
  );
  const stage = value && productionOf(value);
  return (
    <InfoCard
      title={stage ? `Delivery to ${stage.title}` : 'Delivery'}
      subheader="Last 30 days, from the promotion history"
      deepLink={{ title: 'Environments', link: 'environments' }}
    >
      {loading && <Progress />}
      {error && (
        <ResponseErrorPanel
          error={error}
          title="Could not load the delivery insights"
        />
      )}
      {value && !stage && (
        <Typography variant="body2" color="textSecondary">
          The pipeline has no stages.
        </Typography>
      )}
      {value && stage && (
        <section aria-label={`Delivery to ${stage.title}`}>
          {stage.deployments.count === 0 &&
          stage.timeToRestore.incidents === 0 ? (
            <Typography variant="body2" color="textSecondary">
              No deployments to {stage.title} in the last 30 days.
            </Typography>
          ) : (
            <StageDeliveryFigures insights={stage} days={value.days} />
          )}
        </section>
      )}
    </InfoCard>
  );
}
