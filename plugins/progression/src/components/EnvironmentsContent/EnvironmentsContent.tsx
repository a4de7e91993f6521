import {
  Content,
  ContentHeader,
  EmptyState,
  Progress,
  ResponseErrorPanel,
} from '@backstage/core-components';
import { useApi } from '@backstage/frontend-plugin-api';
import { useEntity } from '@backstage/plugin-catalog-react';
import {
  getCompoundEntityRef,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import { useSignal } from '@backstage/plugin-signals-react';
import { Alert } from '@material-ui/lab';
import {
  PromotionOutcome,
  Stage,
  isProgressionAvailable,
  promotionOutcome,
} from '@progression-io/backstage-plugin-progression-common';
import { Box, Typography } from '@material-ui/core';
import { Suspense, useCallback, useEffect, useRef, useState } from 'react';
import { useSearchParams } from 'react-router-dom';
import useAsyncRetry from 'react-use/esm/useAsyncRetry';
import { progressionApiRef } from '../../api';
import { HowToEnable } from '../HowToEnable';
import { PipelineView } from '../PipelineView';
import { PromotionHistory } from '../PromotionHistory';

/**
 * How a promotion that was running when the tab last looked ended, in the
 * words its notification uses.
 */
function endings(before: Stage[], after: Stage[]): PromotionOutcome[] {
  return before.flatMap(was => {
    const active = was.activePromotion;
    const now = after.find(s => s.name === was.name);
    if (!active || !now || now.activePromotion?.id === active.id) return [];
    const last = now.lastPromotion;
    if (!last || last.id !== active.id) return [];
    return [
      promotionOutcome({
        state: last.state,
        kind: last.kind,
        version: last.version,
        stageTitle: now.title,
        error: last.error,
      }),
    ];
  });
}

function Environments({ kubernetesTab }: { kubernetesTab?: string }) {
  const { entity } = useEntity();
  const api = useApi(progressionApiRef);
  const entityRef = getCompoundEntityRef(entity);
  // A notification's link names the promotion it is about: the history
  // opens it. Closing it drops the parameter, so a reload does not reopen it.
  const [searchParams, setSearchParams] = useSearchParams();
  const focus = searchParams.get('promotion') ?? undefined;
  const unfocus = useCallback(
    () =>
      setSearchParams(
        params => {
          const next = new URLSearchParams(params);
          next.delete('promotion');
          return next;
        },
        { replace: true },
      ),
    [setSearchParams],
  );
  const { value, loading, error, retry } = useAsyncRetry(
    () => api.getEnvironments(getCompoundEntityRef(entity)),
    [api, entity],
  );
  // Charts and flags are extras: their failures do not hide the stages.
  const metrics = useAsyncRetry(
    async () => api.getMetrics(getCompoundEntityRef(entity), { range: '1h' }),
    [api, entity],
  );
  const flags = useAsyncRetry(
    async () => api.getFlags(getCompoundEntityRef(entity)),
    [api, entity],
  );
  const retryMetrics = metrics.retry;
  useEffect(() => {
    const timer = setInterval(retryMetrics, 30_000);
    return () => clearInterval(timer);
  }, [retryMetrics]);

  // Live progress: a signal on every state change when signals are
  // installed; while a promotion runs, also a read every few seconds.
  const { lastSignal } = useSignal(
    `progression:${stringifyEntityRef(entityRef)}`,
  );
  useEffect(() => {
    if (lastSignal) retry();
  }, [lastSignal, retry]);
  const running = value?.pipeline.stages.some(s => s.activePromotion);
  useEffect(() => {
    if (!running) return undefined;
    const timer = setInterval(retry, 3000);
    return () => clearInterval(timer);
  }, [running, retry]);
  // GitOps stages drift without a promotion (a change in the cluster, a
  // commit, Argo CD's self-heal): read again every 10 s while shown.
  const gitops = value?.pipeline.stages.some(s => s.gitops);
  useEffect(() => {
    if (!gitops || running) return undefined;
    const timer = setInterval(retry, 10_000);
    return () => clearInterval(timer);
  }, [gitops, running, retry]);

  // When a running promotion ends, say how.
  const previous = useRef<Stage[]>();
  const [notices, setNotices] = useState<PromotionOutcome[]>([]);
  useEffect(() => {
    if (!value) return;
    const ended = previous.current
      ? endings(previous.current, value.pipeline.stages)
      : [];
    previous.current = value.pipeline.stages;
    if (ended.length) setNotices(n => [...n, ...ended]);
  }, [value]);

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
        <Typography variant="body2">
          Workload label{' '}
          <code>backstage.io/kubernetes-id={value.kubernetesId}</code>
        </Typography>
      </ContentHeader>
      {value.pipeline.description && (
        <Typography variant="body1" paragraph>
          {value.pipeline.description}
        </Typography>
      )}
      {notices.map((notice, i) => (
        <Box key={i} mb={1}>
          <Alert
            severity={notice.tone}
            onClose={() => setNotices(n => n.filter((_, j) => j !== i))}
          >
            {notice.text}
          </Alert>
        </Box>
      ))}
      <PipelineView
        pipeline={value.pipeline}
        entityRef={entityRef}
        onChange={retry}
        metrics={metrics.value}
        flags={flags.value}
        kubernetesTab={kubernetesTab}
      />
      <Suspense fallback={<Progress />}>
        <PromotionHistory
          entityRef={entityRef}
          stages={value.pipeline.stages.map(st => st.name)}
          stageTitles={Object.fromEntries(
            value.pipeline.stages.map(st => [st.name, st.title]),
          )}
          refreshKey={value}
          focus={focus}
          onFocusClosed={unfocus}
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
export function EnvironmentsContent(props: {
  /**
   * The path of the entity page's Kubernetes tab (`kubernetes` for the
   * Kubernetes plugin), when the app has one: each stage card links to it.
   */
  kubernetesTab?: string;
}) {
  const { entity } = useEntity();
  return (
    <Content>
      {isProgressionAvailable(entity) ? (
        <Environments kubernetesTab={props.kubernetesTab} />
      ) : (
        <HowToEnable entity={entity} />
      )}
    </Content>
  );
}
