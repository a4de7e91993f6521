import { Fragment } from 'react';
import {
  Box,
  Card,
  CardContent,
  CardHeader,
  Typography,
  makeStyles,
} from '@material-ui/core';
import ArrowForwardIcon from '@material-ui/icons/ArrowForward';
import {
  Link,
  StatusError,
  StatusOK,
  StatusPending,
  StatusWarning,
} from '@backstage/core-components';
import { CompoundEntityRef } from '@backstage/catalog-model';
import { useRouteRef } from '@backstage/core-plugin-api';
import {
  entityRouteParams,
  entityRouteRef,
} from '@backstage/plugin-catalog-react';
import {
  EntityFlags,
  EntityMetrics,
  Pipeline,
  Stage,
} from '@progression-io/backstage-plugin-progression-common';
import { DeliveryInsights } from '../DeliveryInsights';
import { GitOpsSection } from '../GitOps';
import { kubernetesScopeQuery } from '../KubernetesNamespaceFilter';
import { StageActions, describeClosedStage } from '../StageActions';
import { StageCharts, StageFlags, StageGates } from '../StageInsights';

const useStyles = makeStyles(theme => ({
  row: {
    display: 'flex',
    alignItems: 'stretch',
    gap: theme.spacing(1),
    paddingBottom: theme.spacing(1),
    // Side by side while each card keeps a readable width; below that,
    // one above the other (a phone), the arrows pointing down.
    [theme.breakpoints.down('sm')]: {
      flexDirection: 'column',
    },
  },
  card: {
    flex: '1 1 0',
    minWidth: 0,
    overflowWrap: 'anywhere',
    [theme.breakpoints.down('sm')]: {
      flex: '0 0 auto',
    },
  },
  arrow: {
    alignSelf: 'center',
    color: theme.palette.text.secondary,
    [theme.breakpoints.down('sm')]: {
      transform: 'rotate(90deg)',
    },
  },
  term: {
    color: theme.palette.text.secondary,
  },
}));

const HEALTH = {
  healthy: { Icon: StatusOK, label: 'Healthy' },
  progressing: { Icon: StatusPending, label: 'Rolling out' },
  degraded: { Icon: StatusError, label: 'Degraded' },
};

/**
 * Whether the stage takes promotions now, for a stage with promotion
 * windows or freezes: open, or closed with why and when it opens.
 */
function StageWindowLine({ stage }: { stage: Stage }) {
  const classes = useStyles();
  if (!stage.window) return null;
  if (stage.window.open) {
    return (
      <Typography variant="body2" role="status">
        <span className={classes.term}>Promotions: </span>
        open ({stage.window.reason})
      </Typography>
    );
  }
  return (
    <Typography variant="body2" role="status">
      <StatusWarning>{describeClosedStage(stage)}</StatusWarning>
    </Typography>
  );
}

/** What runs in the stage: version, health and replicas, drift, or why unknown. */
function LiveState({ stage }: { stage: Stage }) {
  const classes = useStyles();
  if (stage.error) {
    return (
      <Typography variant="body2" role="status">
        <StatusWarning>Live state unknown: {stage.error}</StatusWarning>
      </Typography>
    );
  }
  if (!stage.live) return null;
  const { Icon, label } = HEALTH[stage.live.health];
  return (
    <>
      <Typography variant="body2">
        <span className={classes.term}>Live: </span>
        <strong>{stage.live.version}</strong> (revision {stage.live.revision})
      </Typography>
      <Typography variant="body2" role="status" title={stage.live.message}>
        <Icon>
          {label}, {stage.live.readyReplicas}/{stage.live.replicas} ready
        </Icon>
      </Typography>
      {stage.activePromotion && (
        <Typography variant="body2">
          <StatusPending>
            Promoting {stage.activePromotion.version}:{' '}
            {stage.activePromotion.state}
          </StatusPending>
        </Typography>
      )}
      {!stage.activePromotion && stage.lastPromotion && (
        <Typography variant="body2">
          <span className={classes.term}>Last promotion: </span>
          {stage.lastPromotion.version} {stage.lastPromotion.state} by{' '}
          {stage.lastPromotion.requestedBy}
          {', '}
          <time
            dateTime={
              stage.lastPromotion.finishedAt ?? stage.lastPromotion.createdAt
            }
          >
            {new Date(
              stage.lastPromotion.finishedAt ?? stage.lastPromotion.createdAt,
            ).toLocaleString()}
          </time>
        </Typography>
      )}
      {/* A GitOps stage's drift is told side by side in its GitOps section. */}
      {stage.drift && !stage.gitops?.drift.length && (
        <Typography variant="body2" role="alert">
          <StatusWarning>
            Drift: runs {stage.drift.liveImage}, the last promotion deployed{' '}
            {stage.drift.expectedImage}
          </StatusWarning>
        </Typography>
      )}
    </>
  );
}

/**
 * The entity page's Kubernetes tab (the Kubernetes plugin lists the pods of
 * every namespace there, grouped by workload and namespace).
 */
function KubernetesTabLink({
  entityRef,
  tab,
  stage,
}: {
  entityRef: CompoundEntityRef;
  tab: string;
  stage: Stage;
}) {
  const entityRoute = useRouteRef(entityRouteRef);
  return (
    <Link
      to={`${entityRoute(
        entityRouteParams(entityRef),
      )}/${tab}${kubernetesScopeQuery({
        namespace: stage.namespace,
        cluster: stage.cluster,
      })}`}
      aria-label={`Pods of ${stage.title} in the Kubernetes tab`}
      // Inside a line of text: underlined, not told apart by colour alone.
      underline="always"
    >
      Pods
    </Link>
  );
}

function StageCard({
  stage,
  position,
  next,
  entityRef,
  onChange,
  metrics,
  flags,
  kubernetesTab,
}: {
  stage: Stage;
  position: number;
  next?: Stage;
  entityRef?: CompoundEntityRef;
  onChange?: () => void;
  metrics?: EntityMetrics;
  flags?: EntityFlags;
  kubernetesTab?: string;
}) {
  const classes = useStyles();
  return (
    <Card
      className={classes.card}
      component="li"
      aria-label={`Stage ${position}: ${stage.title}`}
      data-testid={`stage-${stage.name}`}
    >
      <CardHeader
        title={stage.title}
        titleTypographyProps={{ variant: 'h6', component: 'h3' }}
        subheader={`Stage ${position}`}
      />
      <CardContent>
        <Typography variant="body2">
          <span className={classes.term}>Cluster: </span>
          {stage.cluster}
        </Typography>
        <Typography variant="body2">
          <span className={classes.term}>Namespace: </span>
          {stage.namespace}
          {kubernetesTab && entityRef && (
            <>
              {' · '}
              <KubernetesTabLink
                entityRef={entityRef}
                tab={kubernetesTab}
                stage={stage}
              />
            </>
          )}
        </Typography>
        {stage.url && (
          <Typography variant="body2" noWrap>
            <span className={classes.term}>URL: </span>
            <Link to={stage.url}>{stage.url}</Link>
          </Typography>
        )}
        <LiveState stage={stage} />
        <GitOpsSection gitops={stage.gitops} />
        <StageWindowLine stage={stage} />
        <StageGates gates={stage.gates} />
        <StageFlags flags={flags} stage={stage} />
        <StageCharts
          metrics={metrics?.stages.find(m => m.stage === stage.name)}
          unavailable={
            metrics && !metrics.available ? metrics.reason : undefined
          }
        />
        {entityRef && onChange && (
          <StageActions
            entityRef={entityRef}
            stage={stage}
            next={next}
            flags={flags}
            onChange={onChange}
          />
        )}
      </CardContent>
    </Card>
  );
}

/**
 * The stages of a pipeline in order, left to right, joined by arrows; with
 * `entityRef`, their delivery insights below them.
 */
export function PipelineView({
  pipeline,
  entityRef,
  onChange,
  metrics,
  flags,
  kubernetesTab,
}: {
  pipeline: Pipeline;
  /** With these, the cards offer Promote, Approve, Cancel and Roll back. */
  entityRef?: CompoundEntityRef;
  onChange?: () => void;
  /** Each stage's charts. */
  metrics?: EntityMetrics;
  /** The flag matrix, for the flags that differ between neighbours. */
  flags?: EntityFlags;
  /** The path of the entity page's Kubernetes tab: each card links to it. */
  kubernetesTab?: string;
}) {
  const classes = useStyles();
  // The insights change only when a promotion starts or ends.
  const ended = pipeline.stages
    .map(s => `${s.lastPromotion?.id}:${s.lastPromotion?.finishedAt}`)
    .join(',');
  const stages = (
    <Box
      component="ol"
      className={classes.row}
      aria-label={`Stages of pipeline ${pipeline.title}`}
      style={{ listStyle: 'none', margin: 0, padding: 0 }}
    >
      {pipeline.stages.map((stage, i) => (
        <Fragment key={stage.name}>
          {i > 0 && (
            <ArrowForwardIcon
              className={classes.arrow}
              aria-hidden
              role="presentation"
            />
          )}
          <StageCard
            stage={stage}
            position={i + 1}
            next={pipeline.stages[i + 1]}
            entityRef={entityRef}
            onChange={onChange}
            metrics={metrics}
            flags={flags}
            kubernetesTab={kubernetesTab}
          />
        </Fragment>
      ))}
    </Box>
  );
  if (!entityRef) return stages;
  return (
    <>
      {stages}
      <DeliveryInsights entityRef={entityRef} refreshKey={ended} />
    </>
  );
}
