import { ReactNode, useEffect, useState } from 'react';
import {
  CodeSnippet,
  ResponseErrorPanel,
  StatusError,
  StatusOK,
  StatusAborted,
  StatusPending,
  StatusWarning,
  TrendLine,
} from '@backstage/core-components';
import { CompoundEntityRef } from '@backstage/catalog-model';
import { useApi } from '@backstage/frontend-plugin-api';
import {
  Box,
  Button,
  Dialog,
  DialogContent,
  DialogTitle,
  List,
  ListItem,
  ListItemText,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Tooltip,
  Typography,
  makeStyles,
} from '@material-ui/core';
import {
  GateResult,
  MetricCheckEvidence,
  MetricsGateEvidence,
  promotionOutcome,
} from '@progression-io/backstage-plugin-progression-common';
import useAsync from 'react-use/esm/useAsync';
import { PromotionListItem, progressionApiRef } from '../../api';
import { Sha } from '../GitOps';

const OUTCOMES = [
  'succeeded',
  'failed',
  'rolled-back',
  'rejected',
  'cancelled',
  'skipped',
];

/** A state in words, with an icon that is never the only signal. */
export function StateLabel({ state }: { state: string }) {
  if (state === 'succeeded') return <StatusOK>succeeded</StatusOK>;
  if (state === 'failed') return <StatusError>failed</StatusError>;
  if (
    state === 'rolled-back' ||
    state === 'rejected' ||
    state === 'cancelled'
  ) {
    return <StatusWarning>{state}</StatusWarning>;
  }
  // A newer release took its place while the stage was busy.
  if (state === 'skipped') return <StatusAborted>skipped</StatusAborted>;
  return <StatusPending>{state}</StatusPending>;
}

/** How the backend begins the reason of a metric result it did not measure. */
const NOT_MEASURED = 'optional, not measured';

/**
 * Whether a gate's result is metric checks that were not measured, because
 * the backend has no Prometheus and the stage marks them optional: the
 * result is `skipped` (it does not stop a promotion) but it is no pass, so
 * it is shown as "optional, not measured". Without the result's evidence
 * (a stage's gate summary) its reason tells.
 */
export function notMeasured(result: {
  gate: string;
  status: string;
  reason?: string;
  evidence?: unknown;
}): boolean {
  if (result.status !== 'skipped') return false;
  if (result.gate !== 'metrics' && result.gate !== 'soak') return false;
  if (result.evidence !== undefined) {
    return (result.evidence as { optional?: unknown }).optional === true;
  }
  return result.reason?.startsWith(NOT_MEASURED) ?? false;
}

/**
 * A gate result's status and reason in words, "optional, not measured"
 * instead of "skipped" where it applies.
 */
export function gateOutcome(result: {
  gate: string;
  status: string;
  reason?: string;
  evidence?: unknown;
}): string {
  if (!notMeasured(result)) {
    return `${result.status}${result.reason ? `: ${result.reason}` : ''}`;
  }
  const reason = result.reason ?? '';
  return reason.startsWith(NOT_MEASURED)
    ? reason
    : `${NOT_MEASURED}${reason ? `: ${reason}` : ''}`;
}

/**
 * The sampled checks of a metrics (or soak) gate's step, whose evidence is
 * the gate's result. A gate without Prometheus names its checks unsampled.
 */
function metricChecks(stepEvidence: unknown): MetricCheckEvidence[] {
  const result = stepEvidence as GateResult | undefined;
  if (result?.gate !== 'metrics' && result?.gate !== 'soak') return [];
  const evidence = result.evidence as MetricsGateEvidence | undefined;
  return (evidence?.checks ?? []).filter(
    (check): check is MetricCheckEvidence => 'samples' in check,
  );
}

/** A metric gate's samples: a chart against the threshold, and a table. */
function MetricEvidence({ evidence }: { evidence: unknown }) {
  const checks = metricChecks(evidence);
  if (!checks.length) return null;
  return (
    <>
      {checks.map(check => {
        const values = check.samples.flatMap(x =>
          x.value === undefined ? [] : [x.value],
        );
        return (
          <Box
            key={check.name}
            component="span"
            display="block"
            mt={1}
            role="group"
            aria-label={`Samples of ${check.name}`}
          >
            <Typography variant="body2" component="span" display="block">
              <strong>{check.name}</strong>: {check.reason} (threshold{' '}
              {check.condition}
              {check.baseline !== undefined
                ? `, baseline ${check.baseline}`
                : ''}
              )
            </Typography>
            {values.length > 1 && (
              <Box component="span" display="block" maxWidth={320}>
                <TrendLine
                  data={values}
                  title={`${check.name} samples`}
                  min={0}
                  max={Math.max(...values, check.threshold) || 1}
                  color="#1f77b4"
                />
              </Box>
            )}
            <Table size="small" aria-label={`Samples of ${check.name}`}>
              <TableHead>
                <TableRow>
                  <TableCell>Time</TableCell>
                  <TableCell>Value</TableCell>
                  <TableCell>Threshold</TableCell>
                  <TableCell>Sample</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {check.samples.map(x => (
                  <TableRow key={x.time}>
                    <TableCell>
                      {new Date(x.time).toLocaleTimeString()}
                    </TableCell>
                    <TableCell>{x.value ?? '—'}</TableCell>
                    <TableCell>{check.threshold}</TableCell>
                    <TableCell>
                      {x.status}
                      {x.note ? ` (${x.note})` : ''}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </Box>
        );
      })}
    </>
  );
}

const nonEmpty = (value: unknown): string | undefined =>
  typeof value === 'string' && value ? value : undefined;

/**
 * The Git side of a GitOps (argocd) step: a deploy's commit and the Argo CD
 * Application that syncs it; a rollback's roll-forward commit and the
 * deploy commit it undoes. Nothing for other steps.
 */
/** Argo CD's sync operation as the step saw it: revision, phase, when, by whom. */
function ArgoCdSync({ observed }: { observed: unknown }) {
  const sync = ((observed ?? {}) as Record<string, unknown>).sync as
    | Record<string, unknown>
    | undefined;
  const phase = nonEmpty(sync?.phase);
  if (!sync || !phase) return null;
  const revision = nonEmpty(sync.revision);
  const startedAt = nonEmpty(sync.startedAt);
  const finishedAt = nonEmpty(sync.finishedAt);
  const by = nonEmpty(sync.initiatedBy);
  return (
    <Box
      component="span"
      display="block"
      mt={0.5}
      data-testid="gitops-step-sync"
    >
      Argo CD sync
      {revision && (
        <>
          {' '}
          of <Sha sha={revision} />
        </>
      )}
      : {phase}
      {startedAt && (
        <>
          {' '}
          ({startedAt}
          {finishedAt && <> → {finishedAt}</>})
        </>
      )}
      {by && <>, started by {by}</>}
    </Box>
  );
}

/** A line of a step's GitOps evidence, with Argo CD's sync beneath it. */
function EvidenceLine(props: {
  testId: string;
  observed: unknown;
  children: ReactNode;
}) {
  return (
    <Box component="span" display="block" mt={0.5} data-testid={props.testId}>
      {props.children}
      <ArgoCdSync observed={props.observed} />
    </Box>
  );
}

export function GitOpsStepEvidence({
  step,
}: {
  step: { kind: string; evidence?: unknown };
}) {
  const evidence = (step.evidence ?? {}) as Record<string, unknown>;
  if (step.kind === 'deploy') {
    const commit = nonEmpty(evidence.commit);
    if (!commit) return null;
    const application = nonEmpty(evidence.application);
    return (
      <EvidenceLine testId="gitops-step-commit" observed={evidence.observed}>
        Commit <Sha sha={commit} />
        {application && <> · Argo CD Application {application}</>}
      </EvidenceLine>
    );
  }
  if (step.kind === 'rollback') {
    const undo = (evidence.undo ?? {}) as Record<string, unknown>;
    const commit = nonEmpty(undo.commit);
    if (!commit) return null;
    const deployCommit = nonEmpty(undo.deployCommit);
    return (
      <EvidenceLine
        testId="gitops-rollback-commit"
        observed={evidence.observed}
      >
        Roll-forward commit <Sha sha={commit} />
        {deployCommit && (
          <>
            {' '}
            (undoes <Sha sha={deployCommit} />)
          </>
        )}
      </EvidenceLine>
    );
  }
  return null;
}

const useStyles = makeStyles(theme => ({
  scroll: {
    overflowX: 'auto',
  },
  table: {
    '& th, & td': {
      whiteSpace: 'nowrap',
      padding: theme.spacing(0.75, 1),
    },
    '& td$why': {
      whiteSpace: 'normal',
      minWidth: 160,
      maxWidth: 360,
      width: '100%',
    },
  },
  why: {},
  // The theme's secondary text is too faint on the page's grey (axe).
  label: {
    color: theme.palette.text.primary,
  },
  reason: {
    display: '-webkit-box',
    WebkitLineClamp: 2,
    WebkitBoxOrient: 'vertical',
    overflow: 'hidden',
    overflowWrap: 'anywhere',
    [theme.breakpoints.down('xs')]: {
      WebkitLineClamp: 1,
    },
  },
}));

/**
 * Why a promotion ended as it did: two lines at most (one on a phone), the
 * whole text in a tooltip and in the details.
 */
function Why({ text }: { text: string }) {
  const classes = useStyles();
  if (!text) return null;
  return (
    <Tooltip title={text} placement="top-start">
      <span className={classes.reason}>{text}</span>
    </Tooltip>
  );
}

function duration(p: PromotionListItem): string {
  if (!p.finishedAt) return '—';
  const s = Math.max(
    0,
    Math.round((Date.parse(p.finishedAt) - Date.parse(p.createdAt)) / 1000),
  );
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/** One promotion's steps, gate evidence (metric samples charted) and approvals. */
export function PromotionDetailsDialog({
  id,
  onClose,
  stageTitles,
}: {
  id: string;
  onClose: () => void;
  /** Each stage's title by its name; the name where it is missing. */
  stageTitles?: Record<string, string>;
}) {
  const api = useApi(progressionApiRef);
  const { value, loading, error } = useAsync(
    async () => api.getPromotion(id),
    [api, id],
  );
  return (
    <Dialog
      open
      onClose={onClose}
      maxWidth="md"
      fullWidth
      aria-labelledby="progression-details-title"
    >
      <DialogTitle id="progression-details-title">
        {value
          ? `${
              value.promotion.kind === 'rollback' ? 'Rollback' : 'Promotion'
            } of ${value.promotion.release.version} to ${value.promotion.stage}`
          : 'Promotion'}
      </DialogTitle>
      <DialogContent>
        {loading && <Typography>Loading…</Typography>}
        {error && <ResponseErrorPanel error={error} />}
        {value && (
          <>
            {[...OUTCOMES, 'awaiting-approval', 'waiting'].includes(
              value.promotion.state,
            ) && (
              // The words of the tab's notice and of the notification
              // whose link may have opened this.
              <Typography variant="subtitle1" paragraph>
                {
                  promotionOutcome({
                    state: value.promotion.state,
                    version: value.promotion.release.version,
                    stageTitle:
                      stageTitles?.[value.promotion.stage] ??
                      value.promotion.stage,
                    kind: value.promotion.kind,
                    error: value.promotion.error,
                  }).text
                }
              </Typography>
            )}
            <Typography variant="body2" paragraph>
              <StateLabel state={value.promotion.state} /> — requested by{' '}
              {value.promotion.requestedBy}
              {value.promotion.reason ? ` (${value.promotion.reason})` : ''}
              {value.promotion.error ? `. ${value.promotion.error}` : ''}
            </Typography>
            <Typography variant="h6" component="h3">
              Steps
            </Typography>
            <List dense aria-label="Steps">
              {value.steps.map(step => (
                <ListItem key={step.id} divider alignItems="flex-start">
                  <ListItemText
                    primary={`${step.kind} ${step.name}: ${
                      step.kind === 'gate' &&
                      notMeasured({
                        gate: step.name,
                        status: step.status,
                        reason: step.reason,
                        evidence: (step.evidence as GateResult | undefined)
                          ?.evidence,
                      })
                        ? NOT_MEASURED
                        : step.status
                    }${step.toState ? ` → ${step.toState}` : ''}`}
                    secondary={
                      <>
                        {step.reason && <span>{step.reason} · </span>}
                        <span>{new Date(step.startedAt).toLocaleString()}</span>
                        <GitOpsStepEvidence step={step} />
                        <MetricEvidence evidence={step.evidence} />
                        {step.evidence !== undefined && (
                          <Box component="span" display="block" mt={1}>
                            <CodeSnippet
                              language="json"
                              text={JSON.stringify(step.evidence, null, 2)}
                            />
                          </Box>
                        )}
                      </>
                    }
                    secondaryTypographyProps={{ component: 'div' }}
                  />
                </ListItem>
              ))}
            </List>
            {value.approvals.length > 0 && (
              <>
                <Typography variant="h6" component="h3">
                  Approvals
                </Typography>
                <List dense aria-label="Approvals">
                  {value.approvals.map(a => (
                    <ListItem key={a.approver}>
                      <ListItemText
                        primary={`${a.approver}: ${a.decision}${
                          a.valid ? '' : ' (for earlier evidence)'
                        }`}
                        secondary={a.comment}
                      />
                    </ListItem>
                  ))}
                </List>
              </>
            )}
          </>
        )}
      </DialogContent>
    </Dialog>
  );
}

/**
 * Every promotion and rollback of the entity, newest first, filtered by
 * stage and outcome; a row opens its steps, evidence and approvals.
 */
export function PromotionHistory({
  entityRef,
  stages,
  stageTitles,
  refreshKey,
  focus,
  onFocusClosed,
}: {
  entityRef: CompoundEntityRef;
  stages: string[];
  /** Each stage's title by its name, for the details. */
  stageTitles?: Record<string, string>;
  /** Changes when the stages were read again, so the history follows. */
  refreshKey?: unknown;
  /** A promotion to open and mark, for example from a notification's link. */
  focus?: string;
  /** Called when the focused promotion's details are closed. */
  onFocusClosed?: () => void;
}) {
  const classes = useStyles();
  const api = useApi(progressionApiRef);
  const [stage, setStage] = useState('');
  const [status, setStatus] = useState('');
  const [open, setOpen] = useState<string | undefined>(focus);
  useEffect(() => {
    if (focus) setOpen(focus);
  }, [focus]);
  const { value, loading, error } = useAsync(
    async () => api.listPromotions(entityRef, { stage, status, limit: 100 }),
    [
      api,
      entityRef.kind,
      entityRef.namespace,
      entityRef.name,
      stage,
      status,
      refreshKey,
    ],
  );
  const items = value?.items ?? [];

  if (error)
    return (
      <ResponseErrorPanel error={error} title="Could not load the history" />
    );
  return (
    <Box mt={3}>
      <Typography variant="h6" component="h2">
        History
      </Typography>
      <Box display="flex" style={{ gap: 16 }} mb={1}>
        <TextField
          select
          id="progression-history-stage"
          label="Stage"
          value={stage}
          onChange={e => setStage(e.target.value)}
          SelectProps={{ native: true }}
          InputLabelProps={{ shrink: true, className: classes.label }}
        >
          {['', ...stages].map(s => (
            <option key={s} value={s}>
              {s || 'All'}
            </option>
          ))}
        </TextField>
        <TextField
          select
          id="progression-history-outcome"
          label="Outcome"
          value={status}
          onChange={e => setStatus(e.target.value)}
          SelectProps={{ native: true }}
          InputLabelProps={{ shrink: true, className: classes.label }}
        >
          {['', ...OUTCOMES].map(o => (
            <option key={o} value={o}>
              {o || 'All'}
            </option>
          ))}
        </TextField>
      </Box>
      {loading && !value && <Typography>Loading…</Typography>}
      {value && items.length === 0 && (
        <Typography>
          No promotions yet. CI registers releases; see the API docs.
        </Typography>
      )}
      {items.length > 0 && (
        // Each column keeps its words whole; on a narrow screen the table
        // scrolls sideways instead of breaking them.
        <Box className={classes.scroll}>
          <Table
            size="small"
            aria-label="Promotion history"
            className={classes.table}
          >
            <TableHead>
              <TableRow>
                {[
                  'Stage',
                  'Kind',
                  'Version',
                  'Outcome',
                  'Requested by',
                  'Started',
                  'Duration',
                  'Why',
                  '',
                ].map(h => (
                  <TableCell key={h}>{h}</TableCell>
                ))}
              </TableRow>
            </TableHead>
            <TableBody>
              {items.map(p => (
                <TableRow
                  key={p.id}
                  hover
                  selected={p.id === focus}
                  aria-current={p.id === focus ? 'true' : undefined}
                >
                  <TableCell>{p.stage}</TableCell>
                  <TableCell>{p.kind}</TableCell>
                  <TableCell>{p.release.version}</TableCell>
                  <TableCell>
                    <StateLabel state={p.state} />
                  </TableCell>
                  <TableCell>{p.requestedBy}</TableCell>
                  <TableCell>
                    <time
                      dateTime={p.createdAt}
                      title={new Date(p.createdAt).toLocaleString()}
                    >
                      {new Date(p.createdAt).toLocaleString(undefined, {
                        dateStyle: 'short',
                        timeStyle: 'short',
                      })}
                    </time>
                  </TableCell>
                  <TableCell>{duration(p)}</TableCell>
                  <TableCell className={classes.why}>
                    <Why text={p.error ?? p.reason ?? ''} />
                  </TableCell>
                  <TableCell>
                    <Button
                      size="small"
                      onClick={() => setOpen(p.id)}
                      aria-label={`Details of ${p.kind} ${p.release.version} to ${p.stage}`}
                    >
                      Details
                    </Button>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </Box>
      )}
      {open && (
        <PromotionDetailsDialog
          id={open}
          stageTitles={stageTitles}
          onClose={() => {
            setOpen(undefined);
            if (open === focus) onFocusClosed?.();
          }}
        />
      )}
    </Box>
  );
}
