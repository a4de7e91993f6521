import { useState } from 'react';
import {
  Box,
  Button,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  TextField,
  Tooltip,
  Typography,
} from '@material-ui/core';
import {
  CompoundEntityRef,
  stringifyEntityRef,
} from '@backstage/catalog-model';
import { alertApiRef, useApi } from '@backstage/frontend-plugin-api';
import { usePermission } from '@backstage/plugin-permission-react';
import {
  EntityFlags,
  GateResult,
  ParityEvidence,
  Stage,
  progressionPromotionApprovePermission,
  progressionPromotionCancelPermission,
  progressionPromotionCreatePermission,
  progressionRollbackPermission,
  progressionWindowOverridePermission,
} from '@progression-io/backstage-plugin-progression-common';
import useAsync from 'react-use/esm/useAsync';
import { progressionApiRef } from '../../api';
import { flagDifferences } from '../StageInsights';

export interface StageActionsProps {
  entityRef: CompoundEntityRef;
  stage: Stage;
  /** The stage after this one, if any: where Promote sends the release. */
  next?: Stage;
  /** The flag matrix, to say which flags differ between this stage and the next. */
  flags?: EntityFlags;
  /** Called after an action, to show its effect. */
  onChange: () => void;
}

interface Confirmation {
  title: string;
  text: string;
  /** What else the person should know before confirming, one line each. */
  details?: string[];
  /** Offer a choice of the release to roll back to. */
  chooseRelease?: boolean;
  /** Preview the read-only preflight gates of a promotion into this stage. */
  previewStage?: string;
  confirm: string;
  /** The reason must be given (a break-glass override). */
  reasonRequired?: boolean;
  run: (reason: string, toVersion?: string) => Promise<unknown>;
  done: string;
}

const PHASE_WORDS: Record<string, string> = {
  preflight: 'before the approval',
  approval: '',
  predeploy: 'just before the deploy',
  verification: 'after the deploy',
};

/** The gates of a stage in words: "isolation and parity before the approval, …". */
export function describeGates(stage: Stage): string | undefined {
  const gates = stage.configuredGates ?? [];
  if (!gates.length) return undefined;
  const parts: string[] = [];
  for (const phase of ['preflight', 'approval', 'predeploy', 'verification']) {
    const names = gates.filter(g => g.phase === phase).map(g => g.gate);
    if (!names.length) continue;
    parts.push(
      phase === 'approval'
        ? 'an approval'
        : `${names.join(', ')} ${PHASE_WORDS[phase]}`,
    );
  }
  return `Gates: ${parts.join('; ')}.`;
}

/** What isolation and parity say now: failures and parity's warnings. */
function PreviewLines({
  loading,
  error,
  results,
}: {
  loading: boolean;
  error?: Error;
  results?: GateResult[];
}) {
  if (loading) {
    return (
      <DialogContentText role="status">
        Checking isolation and parity…
      </DialogContentText>
    );
  }
  if (error) {
    return (
      <DialogContentText>
        Could not check isolation and parity: {error.message}
      </DialogContentText>
    );
  }
  if (!results?.length) return null;
  const lines = results.flatMap(r => {
    const warnings =
      (r.evidence as Partial<ParityEvidence> | undefined)?.warnings ?? [];
    return [
      r.status === 'passed'
        ? `${r.gate} passes now: ${r.reason}`
        : `${r.gate} would stop it (${r.status}): ${r.reason}`,
      ...(r.gate === 'parity'
        ? warnings.map(w => `Parity warning: ${w.message}`)
        : []),
    ];
  });
  return (
    <ul aria-label="Checks before the approval">
      {lines.map(l => (
        <li key={l}>
          <DialogContentText component="span">{l}</DialogContentText>
        </li>
      ))}
    </ul>
  );
}

/**
 * A closed stage in words, for the card and the promote dialog: why, and
 * when it opens next.
 */
export function describeClosedStage(stage: Stage): string | undefined {
  const window = stage.window;
  if (!window || window.open) return undefined;
  // The reason in pieces: its times (until when, when it opens) in the
  // reader's time.
  const reason = window.reasonParts
    .map(part =>
      part.at !== undefined
        ? new Date(part.at).toLocaleString()
        : part.text ?? '',
    )
    .join('');
  return `${stage.title} is closed: ${reason}`;
}

/** Why Promote is disabled, or undefined when it may be used. */
export function promoteBlocker(stage: Stage, next?: Stage): string | undefined {
  if (!next) return undefined;
  if (!stage.live) return `what runs in ${stage.title} is not known`;
  if (
    stage.lastPromotion?.state !== 'succeeded' ||
    stage.lastPromotion.version !== stage.live.version
  ) {
    return `${stage.title} has not passed ${stage.live.version} through Progression`;
  }
  if (next.activePromotion) {
    return `${next.title} is busy with ${next.activePromotion.version} (${next.activePromotion.state})`;
  }
  if (next.live?.version === stage.live.version) {
    return `${next.title} already runs ${stage.live.version}`;
  }
  return undefined;
}

/**
 * The actions of one stage card, each shown only to those allowed and
 * disabled with a reason when it cannot be used now; every one asks for
 * confirmation first.
 */
export function StageActions({
  entityRef,
  stage,
  next,
  flags,
  onChange,
}: StageActionsProps) {
  const api = useApi(progressionApiRef);
  const alertApi = useApi(alertApiRef);
  const resourceRef = stringifyEntityRef(entityRef);
  const canPromote = usePermission({
    permission: progressionPromotionCreatePermission,
    resourceRef,
  });
  const canApprove = usePermission({
    permission: progressionPromotionApprovePermission,
    resourceRef,
  });
  const canCancel = usePermission({
    permission: progressionPromotionCancelPermission,
    resourceRef,
  });
  const canRollBack = usePermission({
    permission: progressionRollbackPermission,
    resourceRef,
  });
  const canOverride = usePermission({
    permission: progressionWindowOverridePermission,
    resourceRef,
  });
  const [confirmation, setConfirmation] = useState<Confirmation>();
  const [reason, setReason] = useState('');
  const [toVersion, setToVersion] = useState('');
  const [busy, setBusy] = useState(false);
  const releases = useAsync(async () => {
    if (!confirmation?.chooseRelease) return [];
    return api.listReleases(entityRef);
  }, [confirmation?.chooseRelease]);

  const preview = useAsync(async () => {
    if (!confirmation?.previewStage) return undefined;
    return api.previewPromotion(entityRef, confirmation.previewStage);
  }, [confirmation?.previewStage]);

  const ask = (c: Confirmation) => {
    setReason('');
    setToVersion('');
    setConfirmation(c);
  };
  const confirm = async () => {
    if (!confirmation) return;
    setBusy(true);
    try {
      await confirmation.run(reason, toVersion || undefined);
      alertApi.post({
        message: confirmation.done,
        severity: 'success',
        display: 'transient',
      });
      setConfirmation(undefined);
      onChange();
    } catch (e) {
      const error = e as {
        body?: { error?: { message?: string } };
        message: string;
      };
      alertApi.post({
        message: error.body?.error?.message ?? error.message,
        severity: 'error',
      });
    } finally {
      setBusy(false);
    }
  };

  const active = stage.activePromotion;
  const blocker = promoteBlocker(stage, next);
  const version = stage.live?.version;

  const buttons: JSX.Element[] = [];
  if (next && canPromote.allowed) {
    buttons.push(
      <Tooltip key="promote" title={blocker ?? ''}>
        <span>
          <Button
            variant="contained"
            color="primary"
            size="small"
            disabled={!!blocker}
            aria-describedby={
              blocker ? `progression-promote-blocker-${stage.name}` : undefined
            }
            onClick={() =>
              ask({
                title: `Promote to ${next.title}`,
                text: `${next.title} goes from ${
                  next.live?.version ?? 'unknown'
                } to ${version}; a failure after the deploy rolls it back.`,
                details: [
                  // Said before the click: the promotion will wait.
                  describeClosedStage(next) &&
                    `${describeClosedStage(
                      next,
                    )}. The promotion waits until then.`,
                  describeGates(next),
                  ...flagDifferences(flags, stage.name)
                    .filter(d => d.neighbour === next.name)
                    .map(
                      d =>
                        `Flag ${d.key} is ${d.there} in ${next.title} and ${d.here} in ${stage.title}.`,
                    ),
                ].filter((d): d is string => Boolean(d)),
                previewStage: next.name,
                confirm: 'Promote',
                run: r =>
                  api.requestPromotion(entityRef, {
                    stage: next.name,
                    version,
                    reason: r || undefined,
                  }),
                done: `Promotion of ${version} to ${next.title} requested`,
              })
            }
          >
            {/* The whole name in view: what a screen reader says is
              what the button shows (WCAG 2.5.3). */}
            Promote {version ? `${version} ` : ''}to {next.title}
          </Button>
        </span>
      </Tooltip>,
    );
  }
  if (active?.state === 'awaiting-approval' && canApprove.allowed) {
    const decisions = [
      {
        decision: 'approve' as const,
        label: 'Approve',
        text: `${active.requestedBy} asked to deploy ${active.version} to ${
          stage.title
        }.${
          active.approvals
            ? ` Approved so far by ${
                active.approvals.approvedBy.length
                  ? active.approvals.approvedBy.join(', ')
                  : 'nobody'
              } (${active.approvals.approvedBy.length} of ${
                active.approvals.needed
              } needed).`
            : ''
        }`,
        done: 'Approved',
      },
      {
        decision: 'reject' as const,
        label: 'Reject',
        text: `The promotion ends and ${stage.title} keeps what it runs.`,
        done: 'Rejected',
      },
    ];
    for (const d of decisions) {
      buttons.push(
        <Button
          key={d.decision}
          variant="outlined"
          size="small"
          aria-label={`${d.label} ${active.version} to ${stage.title}`}
          onClick={() =>
            ask({
              title: `${d.label} ${active.version} to ${stage.title}`,
              text: d.text,
              confirm: d.label,
              run: r =>
                api.decide(active.id, {
                  decision: d.decision,
                  comment: r || undefined,
                  // Bound to the evidence this card shows: a decision on
                  // evidence that changed since is refused (409).
                  evidenceHash: active.approvals?.evidenceHash,
                }),
              done: `${d.done} ${active.version} to ${stage.title}`,
            })
          }
        >
          {d.label}
        </Button>,
      );
    }
  }
  if (active?.state === 'waiting' && canOverride.allowed) {
    buttons.push(
      <Button
        key="override"
        variant="outlined"
        color="secondary"
        size="small"
        aria-label={`Override the window: deploy ${active.version} to ${stage.title} now`}
        onClick={() =>
          ask({
            title: `Deploy ${active.version} to ${stage.title} while it is closed`,
            text: `${
              describeClosedStage(stage) ?? `${stage.title} is closed`
            }. Break-glass: the promotion goes ahead now; your name and reason are recorded, audited and sent to the owners.`,
            confirm: 'Override and deploy',
            reasonRequired: true,
            run: r => api.overrideWindow(active.id, r),
            done: `${active.version} goes ahead in ${stage.title}`,
          })
        }
      >
        Override window
      </Button>,
    );
  }
  if (active && canCancel.allowed) {
    buttons.push(
      <Button
        key="cancel"
        size="small"
        aria-label={`Cancel the promotion of ${active.version} to ${stage.title}`}
        onClick={() =>
          ask({
            title: `Cancel ${active.version} to ${stage.title}`,
            text: [
              'pending',
              'waiting',
              'preflight',
              'awaiting-approval',
            ].includes(active.state)
              ? 'Nothing has been deployed yet; the promotion stops.'
              : `${stage.title} is rolled back to what ran before.`,
            confirm: 'Cancel promotion',
            run: () => api.cancel(active.id),
            done: `Promotion of ${active.version} to ${stage.title} cancelled`,
          })
        }
      >
        Cancel
      </Button>,
    );
  }
  if (!active && stage.lastPromotion && canRollBack.allowed) {
    buttons.push(
      <Button
        key="rollback"
        size="small"
        aria-label={`Roll back ${stage.title}`}
        onClick={() =>
          ask({
            title: `Roll back ${stage.title}`,
            text: `${stage.title} runs ${
              version ?? 'an unknown version'
            }; it goes back to the release you choose (by default the one that ran before), as kubectl rollout undo does, and its smoke checks run again.`,
            chooseRelease: true,
            confirm: 'Roll back',
            run: (r, to) =>
              api.requestRollback(entityRef, {
                stage: stage.name,
                toVersion: to,
                reason: r || undefined,
              }),
            done: `Rollback of ${stage.title} requested`,
          })
        }
      >
        Roll back
      </Button>,
    );
  }
  if (buttons.length === 0) return null;

  return (
    <>
      <Box display="flex" flexWrap="wrap" style={{ gap: 8 }} mt={1}>
        {buttons}
      </Box>
      {blocker && next && canPromote.allowed && (
        // On the card, not only on hover: a disabled button says nothing
        // to a touch screen or a newcomer.
        <Typography
          variant="caption"
          color="textSecondary"
          component="p"
          id={`progression-promote-blocker-${stage.name}`}
        >
          Promote to {next.title} is not available: {blocker}.
        </Typography>
      )}
      <Dialog
        open={!!confirmation}
        onClose={() => !busy && setConfirmation(undefined)}
        aria-labelledby="progression-confirm-title"
      >
        <DialogTitle id="progression-confirm-title">
          {confirmation?.title}
        </DialogTitle>
        <DialogContent>
          <DialogContentText>{confirmation?.text}</DialogContentText>
          {confirmation?.details?.length ? (
            <ul aria-label="What will happen">
              {confirmation.details.map(d => (
                <li key={d}>
                  <DialogContentText component="span">{d}</DialogContentText>
                </li>
              ))}
            </ul>
          ) : null}
          {confirmation?.previewStage && (
            <PreviewLines
              loading={preview.loading}
              error={preview.error}
              results={preview.value?.results}
            />
          )}
          {confirmation?.chooseRelease && (
            <TextField
              select
              id="progression-rollback-release"
              label="Roll back to"
              fullWidth
              value={toVersion}
              onChange={e => setToVersion(e.target.value)}
              SelectProps={{ native: true }}
              InputLabelProps={{ shrink: true }}
              helperText={
                releases.error
                  ? `Could not list releases: ${releases.error.message}`
                  : undefined
              }
            >
              <option value="">The release that ran before</option>
              {(releases.value ?? [])
                .filter(r => r.version !== version)
                .map(r => (
                  <option key={r.version} value={r.version}>
                    {r.version}
                  </option>
                ))}
            </TextField>
          )}
          <TextField
            id="progression-confirm-reason"
            label={
              confirmation?.reasonRequired ? 'Reason' : 'Reason (optional)'
            }
            required={confirmation?.reasonRequired}
            fullWidth
            value={reason}
            onChange={e => setReason(e.target.value)}
            inputProps={{ maxLength: 1000 }}
          />
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setConfirmation(undefined)} disabled={busy}>
            Back
          </Button>
          <Button
            onClick={confirm}
            color="primary"
            variant="contained"
            disabled={busy || (confirmation?.reasonRequired && !reason.trim())}
          >
            {confirmation?.confirm}
          </Button>
        </DialogActions>
      </Dialog>
    </>
  );
}
