import { renderInTestApp } from '@backstage/frontend-test-utils';
import { screen, within } from '@testing-library/react';
import { GitOpsSection, GitOpsState } from './GitOpsSection';

const HEAD = '3ca5231f0e4b6a1d2c3b4a5968778695a4b3c2d1';
const PREVIOUS = '9b1e0c7a2d3f4e5a6b7c8d9e0f1a2b3c4d5e6f70';

const synced: GitOpsState = {
  repoUrl: 'http://127.0.0.1:7180/git/manifests.git',
  branch: 'main',
  path: 'overlays/dev',
  head: {
    sha: HEAD,
    message: 'Roll back checkout in dev to registry.local/checkout:1.1.0',
    image: 'registry.local/checkout:1.1.0',
  },
  application: {
    name: 'checkout-dev',
    instance: 'demo',
    sync: 'Synced',
    revision: HEAD,
    health: 'Healthy',
    automated: true,
    selfHeal: true,
    operation: {
      phase: 'Succeeded',
      revision: HEAD,
      message: 'successfully synced (all tasks run)',
      finishedAt: '2026-11-26T10:00:00.000Z',
    },
  },
  drift: [],
};

describe('GitOpsSection', () => {
  it('shows the live commit and a synced, healthy Application', async () => {
    await renderInTestApp(<GitOpsSection gitops={synced} />);
    const section = screen.getByTestId('gitops-section');
    expect(section).toHaveAccessibleName('GitOps');

    const commit = within(section).getByTestId('gitops-commit');
    expect(commit).toHaveTextContent(
      'Commit: 3ca5231 Roll back checkout in dev to registry.local/checkout:1.1.0',
    );
    expect(commit).toHaveTextContent('Overlay: main · overlays/dev');
    expect(commit).not.toHaveTextContent(HEAD);
    // The whole SHA is one hover away, in monospace.
    const sha = within(commit).getByText('3ca5231');
    expect(sha.tagName).toBe('CODE');
    expect(sha).toHaveAttribute('title', HEAD);

    const app = within(section).getByTestId('gitops-application');
    expect(app).toHaveTextContent('Argo CD: checkout-dev (demo)');
    // In words, not colour alone.
    expect(within(app).getByTestId('gitops-sync')).toHaveTextContent(
      'Sync: Synced',
    );
    expect(within(app).getByTestId('gitops-health')).toHaveTextContent(
      'Health: Healthy',
    );
    expect(
      within(within(app).getByTestId('gitops-sync')).getByTestId('status-ok'),
    ).toBeInTheDocument();
    expect(app).toHaveTextContent('auto-sync · self-heal');
    // A finished sync is no news.
    expect(app).not.toHaveTextContent('successfully synced');

    expect(screen.queryByTestId('gitops-drift')).not.toBeInTheDocument();
    expect(screen.queryByRole('alert')).not.toBeInTheDocument();
    expect(screen.getByTestId('gitops-in-sync')).toHaveTextContent(
      'No drift: Git, Argo CD and the cluster agree',
    );
    expect(screen.queryByTestId('gitops-error')).not.toBeInTheDocument();
  });

  it("names the commit that changed the stage's overlay, and the branch head when that is another stage's", async () => {
    const change = '7d2f1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e';
    await renderInTestApp(
      <GitOpsSection
        gitops={{
          ...synced,
          path: 'overlays/staging',
          head: {
            ...synced.head!,
            overlayChange: {
              sha: change,
              message: 'Promote checkout 1.1.0 to staging',
            },
          },
        }}
      />,
    );
    const commit = screen.getByTestId('gitops-commit');
    expect(commit).toHaveTextContent(
      'Commit: 7d2f1e0 Promote checkout 1.1.0 to staging',
    );
    expect(screen.getByTestId('gitops-branch-head')).toHaveTextContent(
      'Branch head: 3ca5231 Roll back checkout in dev to registry.local/checkout:1.1.0',
    );
  });

  it('has no branch head line when the head changed the overlay', async () => {
    await renderInTestApp(<GitOpsSection gitops={synced} />);
    expect(screen.queryByTestId('gitops-branch-head')).toBeNull();
  });

  it('lists the drift of each side with its message', async () => {
    await renderInTestApp(
      <GitOpsSection
        gitops={{
          ...synced,
          application: {
            ...synced.application,
            sync: 'OutOfSync',
            health: 'Degraded',
            revision: PREVIOUS,
            automated: false,
            selfHeal: false,
            operation: {
              phase: 'Failed',
              message: 'one or more objects failed to apply',
            },
          },
          drift: [
            {
              side: 'git',
              message:
                'the branch head 3ca5231 is not the commit Argo CD compared (9b1e0c7)',
            },
            {
              side: 'argocd',
              message: 'Argo CD says checkout-dev is OutOfSync',
            },
            {
              side: 'live',
              message:
                'the Deployment runs registry.local/checkout:hotfix; the overlay names registry.local/checkout:1.1.0',
            },
          ],
        }}
      />,
    );
    const app = screen.getByTestId('gitops-application');
    expect(within(app).getByTestId('gitops-sync')).toHaveTextContent(
      'Sync: OutOfSync',
    );
    expect(
      within(within(app).getByTestId('gitops-sync')).getByTestId(
        'status-warning',
      ),
    ).toBeInTheDocument();
    expect(within(app).getByTestId('gitops-health')).toHaveTextContent(
      'Health: Degraded',
    );
    expect(
      within(within(app).getByTestId('gitops-health')).getByTestId(
        'status-error',
      ),
    ).toBeInTheDocument();
    expect(app).toHaveTextContent('manual sync');
    expect(app).toHaveTextContent(
      'Sync operation Failed: one or more objects failed to apply',
    );

    const drift = screen.getByTestId('gitops-drift');
    expect(drift).toHaveAttribute('role', 'alert');
    const items = within(
      within(drift).getByRole('list', { name: 'Drift by side' }),
    ).getAllByRole('listitem');
    expect(items.map(i => i.getAttribute('data-testid'))).toEqual([
      'gitops-drift-git',
      'gitops-drift-argocd',
      'gitops-drift-live',
    ]);
    expect(screen.getByTestId('gitops-drift-git')).toHaveTextContent(
      'Git: the branch head 3ca5231 is not the commit Argo CD compared (9b1e0c7)',
    );
    expect(screen.getByTestId('gitops-drift-argocd')).toHaveTextContent(
      'Argo CD: Argo CD says checkout-dev is OutOfSync',
    );
    expect(screen.getByTestId('gitops-drift-live')).toHaveTextContent(
      'Cluster: the Deployment runs registry.local/checkout:hotfix; the overlay names registry.local/checkout:1.1.0',
    );
    expect(screen.queryByTestId('gitops-in-sync')).not.toBeInTheDocument();
  });

  it('names the sides it could not read', async () => {
    await renderInTestApp(
      <GitOpsSection
        gitops={{
          repoUrl: '',
          branch: '',
          path: '',
          application: {
            name: 'checkout-dev',
            instance: 'demo',
            automated: false,
            selfHeal: false,
          },
          drift: [],
          errors: [
            'Argo CD demo did not answer within 30 s (http://127.0.0.1:7181)',
          ],
        }}
      />,
    );
    const section = screen.getByTestId('gitops-section');
    // Nothing read from Git: no commit, no overlay.
    expect(screen.queryByTestId('gitops-commit')).not.toBeInTheDocument();
    // Nothing read from Argo CD: its name, but no status or policy guessed.
    const app = screen.getByTestId('gitops-application');
    expect(app).toHaveTextContent('Argo CD: checkout-dev (demo)');
    expect(app).not.toHaveTextContent('Sync:');
    expect(app).not.toHaveTextContent('manual sync');
    expect(within(section).getAllByTestId('gitops-error')).toHaveLength(1);
    expect(screen.getByTestId('gitops-error')).toHaveTextContent(
      'Could not read: Argo CD demo did not answer within 30 s (http://127.0.0.1:7181)',
    );
    // Unread is not in sync.
    expect(screen.queryByTestId('gitops-in-sync')).not.toBeInTheDocument();
  });

  it('shows an error for each side it could not read beside what it read', async () => {
    await renderInTestApp(
      <GitOpsSection
        gitops={{
          ...synced,
          head: undefined,
          errors: ['authentication failed for the manifests repository'],
          drift: [
            { side: 'argocd', message: 'Argo CD says checkout-dev is Unknown' },
          ],
          application: { ...synced.application, sync: 'Unknown' },
        }}
      />,
    );
    expect(screen.getByTestId('gitops-commit')).toHaveTextContent(
      'Overlay: main · overlays/dev',
    );
    expect(screen.getByTestId('gitops-commit')).not.toHaveTextContent(
      'Commit:',
    );
    expect(screen.getByTestId('gitops-sync')).toHaveTextContent(
      'Sync: Unknown',
    );
    expect(screen.getByTestId('gitops-drift-argocd')).toHaveTextContent(
      'Argo CD: Argo CD says checkout-dev is Unknown',
    );
    expect(screen.getByTestId('gitops-error')).toHaveTextContent(
      'Could not read: authentication failed for the manifests repository',
    );
  });

  it('renders nothing for a stage without GitOps', async () => {
    await renderInTestApp(
      <div data-testid="card">
        <GitOpsSection />
      </div>,
    );
    expect(screen.getByTestId('card')).toBeEmptyDOMElement();
  });
});
