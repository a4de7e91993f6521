import { Entity } from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import { mockApis, renderInTestApp } from '@backstage/frontend-test-utils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { EntityEnvironments } from '@progression-io/backstage-plugin-progression-common';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { ProgressionApi, progressionApiRef } from '../../api';
import { EnvironmentsContent } from './EnvironmentsContent';

const entity: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'payments-api',
    namespace: 'default',
    annotations: { 'progression.backstage.io/pipeline': 'standard' },
  },
  spec: { type: 'service', owner: 'team-payments' },
};

const environments: EntityEnvironments = {
  entityRef: 'component:default/payments-api',
  kubernetesId: 'payments-api',
  pipeline: {
    name: 'standard',
    title: 'Standard',
    description: 'dev, then staging, then production',
    stages: [
      {
        name: 'development',
        title: 'Development',
        cluster: 'local',
        namespace: 'development',
        url: 'http://payments-api.development.localhost',
      },
      {
        name: 'staging',
        title: 'Staging',
        cluster: 'local',
        namespace: 'staging',
        live: {
          deployment: 'payments-api',
          image: 'registry.local/payments-api:hotfix',
          version: 'hotfix',
          revision: 4,
          replicas: 2,
          readyReplicas: 2,
          updatedReplicas: 2,
          availableReplicas: 2,
          health: 'healthy',
          message: 'deployment "payments-api" successfully rolled out',
        },
        lastPromotion: {
          id: 'p1',
          kind: 'promotion' as const,
          state: 'succeeded',
          version: '1.4.2',
          requestedBy: 'user:default/jane',
          createdAt: '2026-11-26T10:00:00.000Z',
        },
        drift: {
          expectedImage: 'registry.local/payments-api:1.4.2',
          liveImage: 'registry.local/payments-api:hotfix',
        },
      },
      {
        name: 'production',
        title: 'Production',
        cluster: 'prod-eu',
        namespace: 'production',
        error: 'could not read cluster prod-eu: connect ECONNREFUSED',
      },
    ],
  },
};

/** The metrics read of a backend without Prometheus. */
const noPrometheus = {
  entityRef: 'component:default/payments-api',
  available: false,
  reason: 'No Prometheus is configured.',
  range: '1h',
  stepSeconds: 60,
  stages: [],
};

function render(
  api: Partial<ProgressionApi>,
  e: Entity = entity,
  authorize:
    | AuthorizeResult.ALLOW
    | AuthorizeResult.DENY = AuthorizeResult.ALLOW,
  initialRouteEntries?: string[],
) {
  return renderInTestApp(
    <EntityProvider entity={e}>
      <EnvironmentsContent />
    </EntityProvider>,
    {
      apis: [
        [progressionApiRef, api as ProgressionApi],
        mockApis.permission({ authorize }),
      ],
      initialRouteEntries,
    },
  );
}

describe('EnvironmentsContent', () => {
  it('lists the stages in order with their cluster and namespace', async () => {
    const getEnvironments = jest.fn().mockResolvedValue(environments);
    render({ getEnvironments });

    const list = await screen.findByRole('list', {
      name: 'Stages of pipeline Standard',
    });
    const stages = within(list).getAllByRole('listitem');
    expect(stages.map(s => within(s).getByRole('heading').textContent)).toEqual(
      ['Development', 'Staging', 'Production'],
    );
    expect(stages[2]).toHaveTextContent('Cluster: prod-eu');
    expect(stages[2]).toHaveTextContent('Namespace: production');
    expect(stages[0]).toHaveTextContent(
      'URL: http://payments-api.development.localhost',
    );
    expect(screen.getByText('Pipeline: Standard')).toBeInTheDocument();
    expect(
      screen.getByText('dev, then staging, then production'),
    ).toBeInTheDocument();
    // Live state, in words as well as colour.
    expect(stages[1]).toHaveTextContent('Live: hotfix (revision 4)');
    expect(stages[1]).toHaveTextContent('Healthy, 2/2 ready');
    expect(stages[1]).toHaveTextContent(
      'Last promotion: 1.4.2 succeeded by user:default/jane',
    );
    expect(within(stages[1]).getByRole('alert')).toHaveTextContent(
      'Drift: runs registry.local/payments-api:hotfix, the last promotion deployed registry.local/payments-api:1.4.2',
    );
    // An unreachable cluster spoils only its own card.
    expect(stages[2]).toHaveTextContent(
      'Live state unknown: could not read cluster prod-eu: connect ECONNREFUSED',
    );
    expect(getEnvironments).toHaveBeenCalledWith({
      kind: 'Component',
      namespace: 'default',
      name: 'payments-api',
    });
  });

  it('shows the GitOps sides on the card of a GitOps stage only', async () => {
    const head = '3ca5231f0e4b6a1d2c3b4a5968778695a4b3c2d1';
    const [development, staging] = environments.pipeline.stages;
    const gitops: EntityEnvironments = {
      ...environments,
      pipeline: {
        ...environments.pipeline,
        stages: [
          development,
          {
            // The read model's drift too: the card tells it once, by side.
            ...staging,
            gitops: {
              repoUrl: 'http://git.local/manifests.git',
              branch: 'main',
              path: 'overlays/staging',
              head: {
                sha: head,
                message: 'Promote payments-api 1.4.2 to staging',
                image: 'registry.local/payments-api:1.4.2',
              },
              application: {
                name: 'payments-api-staging',
                instance: 'demo',
                sync: 'Synced',
                revision: head,
                health: 'Healthy',
                automated: true,
                selfHeal: false,
              },
              drift: [
                {
                  side: 'live',
                  message:
                    'the Deployment runs registry.local/payments-api:hotfix; the overlay names registry.local/payments-api:1.4.2',
                },
              ],
            },
          },
        ],
      },
    };
    render({ getEnvironments: jest.fn().mockResolvedValue(gitops) });
    const card = await screen.findByTestId('stage-staging');
    const section = within(card).getByTestId('gitops-section');
    expect(within(section).getByTestId('gitops-commit')).toHaveTextContent(
      'Commit: 3ca5231 Promote payments-api 1.4.2 to staging',
    );
    expect(within(section).getByTestId('gitops-commit')).toHaveTextContent(
      'main · overlays/staging',
    );
    const app = within(section).getByTestId('gitops-application');
    expect(app).toHaveTextContent('payments-api-staging');
    expect(app).toHaveTextContent('Sync: Synced');
    expect(app).toHaveTextContent('Health: Healthy');
    expect(app).toHaveTextContent('auto-sync');
    expect(app).not.toHaveTextContent('self-heal');
    expect(within(card).getByRole('alert')).toHaveTextContent(
      'Cluster: the Deployment runs registry.local/payments-api:hotfix',
    );
    // A stage that Kubernetes deploys has no GitOps section.
    expect(
      within(screen.getByTestId('stage-development')).queryByTestId(
        'gitops-section',
      ),
    ).not.toBeInTheDocument();
    expect(screen.getAllByTestId('gitops-section')).toHaveLength(1);
  });

  it('follows a running promotion and says how it ended, with its charts and flags on the cards', async () => {
    const staging = environments.pipeline.stages[1];
    const running: EntityEnvironments = {
      ...environments,
      pipeline: {
        ...environments.pipeline,
        stages: [
          environments.pipeline.stages[0],
          {
            ...staging,
            drift: undefined,
            activePromotion: {
              id: 'p9',
              kind: 'promotion' as const,
              state: 'verifying',
              version: '2.0.0-errors',
              requestedBy: 'user:default/jane',
              createdAt: '2026-11-26T10:00:00.000Z',
            },
          },
        ],
      },
    };
    const ended: EntityEnvironments = {
      ...running,
      pipeline: {
        ...running.pipeline,
        stages: [
          running.pipeline.stages[0],
          {
            ...staging,
            drift: undefined,
            lastPromotion: {
              id: 'p9',
              kind: 'promotion' as const,
              state: 'rolled-back',
              version: '2.0.0-errors',
              requestedBy: 'user:default/jane',
              createdAt: '2026-11-26T10:00:00.000Z',
              error: 'metrics: error-rate 31.0% > 5.0% in 1 of 1 samples',
            },
            gates: [
              {
                gate: 'metrics',
                status: 'failed',
                reason: 'error-rate 31.0% > 5.0% in 1 of 1 samples',
                promotionId: 'p9',
                at: '2026-11-26T10:00:30.000Z',
              },
            ],
          },
        ],
      },
    };
    const getEnvironments = jest
      .fn()
      .mockResolvedValueOnce(running)
      .mockResolvedValue(ended);
    render({
      getEnvironments,
      getMetrics: jest.fn().mockResolvedValue(noPrometheus),
      getFlags: jest.fn().mockResolvedValue({
        entityRef: 'component:default/payments-api',
        stages: ['development', 'staging'],
        flags: [
          {
            key: 'fast-refunds',
            differs: true,
            values: {
              development: { state: 'ENABLED', variant: 'on', value: true },
              staging: { state: 'ENABLED', variant: 'off', value: false },
            },
          },
        ],
        errors: {},
      }),
    });
    const card = await screen.findByTestId('stage-staging');
    expect(card).toHaveTextContent('Promoting 2.0.0-errors: verifying');
    // Without a page reload: the tab reads again while the promotion runs.
    expect(
      await screen.findByText(
        'The promotion of 2.0.0-errors to Staging failed and was rolled back: metrics: error-rate 31.0% > 5.0% in 1 of 1 samples',
        {},
        { timeout: 6000 },
      ),
    ).toBeInTheDocument();
    const after = screen.getByTestId('stage-staging');
    expect(after).toHaveTextContent(
      'metrics failed: error-rate 31.0% > 5.0% in 1 of 1 samples',
    );
    expect(after).toHaveTextContent('fast-refunds off here, on in development');
    expect(after).toHaveTextContent('Metrics: No Prometheus is configured.');
  });

  it('says an on-demand rollback ended in the words of its notification, not as a promotion', async () => {
    const staging = environments.pipeline.stages[1];
    const rollback = {
      id: 'r1',
      kind: 'rollback' as const,
      version: '1.4.1',
      requestedBy: 'user:default/jane',
      createdAt: '2026-11-26T11:00:00.000Z',
    };
    const withStaging = (stage: object): EntityEnvironments => ({
      ...environments,
      pipeline: {
        ...environments.pipeline,
        stages: [
          environments.pipeline.stages[0],
          { ...staging, drift: undefined, ...stage },
        ],
      },
    });
    const getEnvironments = jest
      .fn()
      .mockResolvedValueOnce(
        withStaging({ activePromotion: { ...rollback, state: 'verifying' } }),
      )
      .mockResolvedValue(
        withStaging({ lastPromotion: { ...rollback, state: 'succeeded' } }),
      );
    render({
      getEnvironments,
      getMetrics: jest.fn().mockResolvedValue(noPrometheus),
      getFlags: jest.fn().mockResolvedValue({
        entityRef: 'component:default/payments-api',
        stages: [],
        flags: [],
        errors: {},
      }),
    });
    expect(
      await screen.findByText(
        'The rollback of Staging to 1.4.1 succeeded.',
        {},
        { timeout: 6000 },
      ),
    ).toBeInTheDocument();
  });

  it("opens the promotion a notification's link names, in the notification's words", async () => {
    const waiting = {
      id: 'p7',
      kind: 'promotion' as const,
      stage: 'production',
      state: 'awaiting-approval',
      release: { version: '7.7.0', image: 'registry.local/payments-api:7.7.0' },
      requestedBy: 'service:ci',
      createdAt: '2026-11-26T10:00:00.000Z',
    };
    const older = {
      ...waiting,
      id: 'p6',
      state: 'succeeded',
      stage: 'staging',
    };
    const getPromotion = jest.fn().mockResolvedValue({
      promotion: waiting,
      steps: [],
      approvals: [],
    });
    render(
      {
        getEnvironments: jest.fn().mockResolvedValue(environments),
        listPromotions: jest
          .fn()
          .mockResolvedValue({ items: [waiting, older] }),
        getPromotion,
      },
      entity,
      AuthorizeResult.ALLOW,
      ['/?promotion=p7'],
    );
    const dialog = await screen.findByRole('dialog');
    expect(getPromotion).toHaveBeenCalledWith('p7');
    expect(
      await within(dialog).findByText(
        'The promotion of 7.7.0 to Production awaits approval.',
      ),
    ).toBeInTheDocument();
    // Its row in the history, behind the dialog, is marked.
    const rows = within(
      screen.getByRole('table', { name: 'Promotion history', hidden: true }),
    ).getAllByRole('row', { hidden: true });
    expect(rows.filter(r => r.getAttribute('aria-current'))).toEqual([
      rows.find(r => r.textContent?.includes('production')),
    ]);

    await userEvent.keyboard('{Escape}');
    await waitFor(() =>
      expect(screen.queryByRole('dialog')).not.toBeInTheDocument(),
    );
  });

  it('shows progress while loading', async () => {
    render({ getEnvironments: () => new Promise(() => {}) });
    expect(await screen.findByTestId('progress')).toBeInTheDocument();
  });

  it("shows the backend's error message", async () => {
    render({
      getEnvironments: jest
        .fn()
        .mockRejectedValue(
          new NotFoundError(
            "component:default/payments-api uses pipeline 'standard', which is not configured",
          ),
        ),
    });
    expect(
      await screen.findByText('Error: Could not load the environments'),
    ).toBeInTheDocument();
    expect(
      screen.getAllByText(/uses pipeline 'standard', which is not configured/)
        .length,
    ).toBeGreaterThan(0);
  });

  it('explains how to enable Progression for an entity without the annotation', async () => {
    const getEnvironments = jest.fn();
    render(
      { getEnvironments },
      { ...entity, metadata: { name: 'legacy-batch', namespace: 'default' } },
    );
    expect(
      await screen.findByText('This entity does not use Progression yet'),
    ).toBeInTheDocument();
    expect(
      screen.getAllByText(/progression\.backstage\.io\/pipeline/).length,
    ).toBeGreaterThan(0);
    expect(getEnvironments).not.toHaveBeenCalled();
  });
});
