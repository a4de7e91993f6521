import { ReactNode } from 'react';
import { Box, Typography, makeStyles } from '@material-ui/core';
import {
  StatusError,
  StatusOK,
  StatusPending,
  StatusWarning,
} from '@backstage/core-components';
import { Stage } from '@progression-io/backstage-plugin-progression-common';

/** A GitOps stage's three sides, as the environments API returns them. */
export type GitOpsState = NonNullable<Stage['gitops']>;
type DriftSide = GitOpsState['drift'][number]['side'];

const useStyles = makeStyles(theme => ({
  section: {
    marginTop: theme.spacing(1),
  },
  term: {
    color: theme.palette.text.secondary,
  },
  sha: {
    fontFamily: 'monospace',
  },
  chips: {
    display: 'flex',
    flexWrap: 'wrap',
    alignItems: 'baseline',
    columnGap: theme.spacing(1.5),
  },
  // An icon beside its words: the words are what a screen reader reads
  // (Backstage's status components hide their content from it).
  chip: {
    display: 'inline-flex',
    alignItems: 'baseline',
    minWidth: 0,
  },
  list: {
    margin: 0,
    padding: 0,
    listStyle: 'none',
  },
}));

type StatusIcon = typeof StatusOK;

/** The first 7 characters of a commit's SHA, as Git shows it. */
export const shortSha = (sha: string) => sha.slice(0, 7);

/** A short SHA in monospace, the whole SHA in its title. */
export function Sha({ sha }: { sha: string }) {
  const classes = useStyles();
  return (
    <code className={classes.sha} title={sha}>
      {shortSha(sha)}
    </code>
  );
}

/** An icon that is never the only signal, and the words it goes with. */
function Labelled({
  Icon,
  children,
  testId,
}: {
  Icon: StatusIcon;
  children: ReactNode;
  testId?: string;
}) {
  const classes = useStyles();
  return (
    <span className={classes.chip} data-testid={testId}>
      <Icon />
      <span>{children}</span>
    </span>
  );
}

const SYNC_ICONS: Record<string, StatusIcon> = {
  Synced: StatusOK,
  OutOfSync: StatusWarning,
};

const HEALTH_ICONS: Record<string, StatusIcon> = {
  Healthy: StatusOK,
  Progressing: StatusPending,
  Degraded: StatusError,
  Missing: StatusWarning,
  Suspended: StatusPending,
};

const OPERATION_ICONS: Record<string, StatusIcon> = {
  Running: StatusPending,
  Terminating: StatusWarning,
  Failed: StatusError,
  Error: StatusError,
};

/** Each side in the words the section uses. */
const SIDE_LABELS: Record<DriftSide, string> = {
  git: 'Git',
  argocd: 'Argo CD',
  live: 'Cluster',
};

/**
 * The commit that last changed the stage's overlay, where the overlay is,
 * and the branch head when it is another commit (one branch holds every
 * stage's overlay; Argo CD compares the head).
 */
function Commit({ gitops }: { gitops: GitOpsState }) {
  const classes = useStyles();
  const where = [gitops.branch, gitops.path].filter(Boolean).join(' · ');
  if (!gitops.head && !where) return null;
  const change = gitops.head?.overlayChange ?? gitops.head;
  return (
    <Box data-testid="gitops-commit">
      {change && (
        <Typography variant="body2">
          <span className={classes.term}>Commit: </span>
          <Sha sha={change.sha} /> {change.message}
        </Typography>
      )}
      {gitops.head?.overlayChange && (
        <Typography
          variant="body2"
          color="textSecondary"
          data-testid="gitops-branch-head"
        >
          Branch head: <Sha sha={gitops.head.sha} /> {gitops.head.message}
        </Typography>
      )}
      {where && (
        <Typography variant="body2" title={gitops.repoUrl || undefined}>
          <span className={classes.term}>Overlay: </span>
          {where}
        </Typography>
      )}
    </Box>
  );
}

/** The Argo CD Application: its sync status, health and sync policy. */
function Application({ gitops }: { gitops: GitOpsState }) {
  const classes = useStyles();
  const app = gitops.application;
  // Argo CD could not be read at all: its statuses and policy are unknown.
  const unread = !app.sync && !app.health && Boolean(gitops.errors?.length);
  const sync = app.sync ?? 'Unknown';
  const health = app.health ?? 'Unknown';
  const operation =
    app.operation && app.operation.phase !== 'Succeeded'
      ? app.operation
      : undefined;
  return (
    <Box data-testid="gitops-application">
      <Typography variant="body2">
        <span className={classes.term}>Argo CD: </span>
        <strong>{app.name}</strong>
        {app.instance && (
          <span className={classes.term}> ({app.instance})</span>
        )}
      </Typography>
      {!unread && (
        <>
          <Typography variant="body2" component="div" className={classes.chips}>
            <Labelled
              Icon={SYNC_ICONS[sync] ?? StatusPending}
              testId="gitops-sync"
            >
              <span className={classes.term}>Sync: </span>
              {sync}
            </Labelled>
            <Labelled
              Icon={HEALTH_ICONS[health] ?? StatusPending}
              testId="gitops-health"
            >
              <span className={classes.term}>Health: </span>
              {health}
            </Labelled>
          </Typography>
          <Typography variant="body2" color="textSecondary">
            {app.automated
              ? `auto-sync${app.selfHeal ? ' · self-heal' : ''}`
              : 'manual sync'}
          </Typography>
        </>
      )}
      {operation && (
        <Typography variant="body2" component="div">
          <Labelled Icon={OPERATION_ICONS[operation.phase] ?? StatusPending}>
            Sync operation {operation.phase}
            {operation.message ? `: ${operation.message}` : ''}
          </Labelled>
        </Typography>
      )}
    </Box>
  );
}

/**
 * A GitOps stage (`deploy.kind: argocd`) seen from its three sides: the
 * commit at the head of the overlay's branch, the Argo CD Application that
 * syncs it (sync status, health, policy) and, where they disagree, the
 * drift of each side; sides that could not be read say why.
 */
export function GitOpsSection({ gitops }: { gitops?: GitOpsState }) {
  const classes = useStyles();
  if (!gitops) return null;
  const errors = gitops.errors ?? [];
  return (
    <Box
      className={classes.section}
      role="group"
      aria-label="GitOps"
      data-testid="gitops-section"
    >
      <Typography variant="body2" className={classes.term} component="h4">
        GitOps
      </Typography>
      <Commit gitops={gitops} />
      <Application gitops={gitops} />
      {gitops.drift.length > 0 && (
        <Box role="alert" data-testid="gitops-drift">
          <Typography variant="body2" component="div">
            <Labelled Icon={StatusWarning}>Drift</Labelled>
          </Typography>
          <ul className={classes.list} aria-label="Drift by side">
            {gitops.drift.map((d, i) => (
              <li key={`${d.side}-${i}`} data-testid={`gitops-drift-${d.side}`}>
                <Typography variant="body2">
                  <strong>{SIDE_LABELS[d.side] ?? d.side}:</strong> {d.message}
                </Typography>
              </li>
            ))}
          </ul>
        </Box>
      )}
      {gitops.drift.length === 0 && errors.length === 0 && gitops.head && (
        <Typography
          variant="body2"
          color="textSecondary"
          data-testid="gitops-in-sync"
        >
          No drift: Git, Argo CD and the cluster agree
        </Typography>
      )}
      {errors.map((error, i) => (
        <Typography
          key={i}
          variant="body2"
          color="textSecondary"
          component="div"
          data-testid="gitops-error"
        >
          <Labelled Icon={StatusWarning}>Could not read: {error}</Labelled>
        </Typography>
      ))}
    </Box>
  );
}
