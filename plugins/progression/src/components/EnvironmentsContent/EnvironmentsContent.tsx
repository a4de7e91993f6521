import {
  Content,
  ContentHeader,
  EmptyState,
  Progress,
  ResponseErrorPanel,
} from '@backstage/core-components';
import { useApi } from '@backstage/frontend-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import { getCompoundEntityRef } from '@backstage/catalog-model';
import { isProgressionAvailable } from '@internal/backstage-plugin-progression-common';
import { Typography } from '@material-ui/core';
import { Suspense, useEffect } from 'react';
import useAsyncRetry from 'react-use/esm/useAsyncRetry';
import { progressionApiRef } from '../../api';
import { HowToEnable } from '../HowToEnable';
import { PipelineView } from '../PipelineView';
import { PromotionHistory } from '../PromotionHistory';

function Environments() {
  const { entity } = useEntity();
  const api = useApi(progressionApiRef);
  const entityRef = getCompoundEntityRef(entity);
  const { value, loading, error, retry } = useAsyncRetry(
    () => api.getEnvironments(getCompoundEntityRef(entity)),
    [api, entity],
  );
  // Live progress: while a promotion runs, read again every few seconds.
  const running = value?.pipeline.stages.some(s => s.activePromotion);
  useEffect(() => {
    if (!running) return undefined;
    const timer = setInterval(retry, 3000);
    return () => clearInterval(timer);
  }, [running, retry]);

  if (loading && !value) {
    return <Progress />;
  }
  if (error) {
    return (
      <ResponseErrorPanel
        error={error}
        title="Could not load the environments"
      />
    );
  }
  if (!value || value.pipeline.stages.length === 0) {
    return (
      <EmptyState
        missing="data"
        title="No stages"
        description="The entity's pipeline has no stages."
      />
    );
  }
  return (
    <>
      <ContentHeader title={`Pipeline: ${value.pipeline.title}`}>
        <Typography variant="body2" color="textSecondary">
          Workload label{' '}
          <code>backstage.io/kubernetes-id={value.kubernetesId}</code>
        </Typography>
      </ContentHeader>
      {value.pipeline.description && (
        <Typography variant="body1" paragraph>
          {value.pipeline.description}
        </Typography>
      )}
      <PipelineView
        pipeline={value.pipeline}
        entityRef={entityRef}
        onChange={retry}
      />
      <Suspense fallback={<Progress />}>
        <PromotionHistory
          entityRef={entityRef}
          stages={value.pipeline.stages.map(st => st.name)}
          refreshKey={value}
        />
      </Suspense>
    </>
  );
}

/**
 * The Environments tab: the entity's pipeline and its stages, or how to
 * enable Progression for an entity that does not use it yet.
 *
 * @public
 */
export function EnvironmentsContent() {
  const { entity } = useEntity();
  return (
    <Content>
      {isProgressionAvailable(entity) ? (
        <Environments />
      ) : (
        <HowToEnable entity={entity} />
      )}
    </Content>
  );
}
