import { renderInTestApp } from '@backstage/frontend-test-utils';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { ProgressionApi, progressionApiRef } from '../../api';
import { PromotionHistory } from './PromotionHistory';

const entityRef = {
  kind: 'Component',
  namespace: 'default',
  name: 'payments-api',
};
const item = (
  id: string,
  stage: string,
  state: string,
  version: string,
  extra = {},
) => ({
  id,
  kind: 'promotion' as const,
  stage,
  state,
  release: { version, image: `registry.local/payments-api:${version}` },
  requestedBy: 'user:default/jane',
  createdAt: '2026-11-26T10:00:00.000Z',
  finishedAt: '2026-11-26T10:00:42.000Z',
  ...extra,
});

function render(api: Partial<ProgressionApi>) {
  return renderInTestApp(
    <PromotionHistory
      entityRef={entityRef}
      stages={['development', 'staging']}
    />,
    { apis: [[progressionApiRef, api as ProgressionApi]] },
  );
}

describe('PromotionHistory', () => {
  it('lists promotions with their outcome, duration and reason, filtered by stage and outcome', async () => {
    const listPromotions = jest.fn().mockResolvedValue({
      items: [
        item('p2', 'staging', 'rolled-back', '1.2.0', {
          error: 'smoke: GET /healthz failed: answered 503, expected 200',
        }),
        item('p1', 'development', 'succeeded', '1.1.0'),
      ],
    });
    render({ listPromotions });
    const table = await screen.findByRole('table', {
      name: 'Promotion history',
    });
    const rows = within(table).getAllByRole('row').slice(1);
    expect(rows[0]).toHaveTextContent('staging');
    expect(rows[0]).toHaveTextContent('rolled-back');
    expect(rows[0]).toHaveTextContent(
      'smoke: GET /healthz failed: answered 503, expected 200',
    );
    expect(rows[1]).toHaveTextContent('succeeded');
    expect(rows[1]).toHaveTextContent('42 s');

    await userEvent.selectOptions(screen.getByLabelText('Stage'), 'staging');
    await userEvent.selectOptions(
      screen.getByLabelText('Outcome'),
      'rolled-back',
    );
    await waitFor(() =>
      expect(listPromotions).toHaveBeenLastCalledWith(entityRef, {
        stage: 'staging',
        status: 'rolled-back',
        limit: 100,
      }),
    );
  });

  it('opens a promotion with its steps, evidence and approvals', async () => {
    render({
      listPromotions: jest.fn().mockResolvedValue({
        items: [item('p1', 'staging', 'succeeded', '1.1.0')],
      }),
      getPromotion: jest.fn().mockResolvedValue({
        promotion: item('p1', 'staging', 'succeeded', '1.1.0'),
        steps: [
          {
            id: 1,
            kind: 'deploy',
            name: 'rollout',
            status: 'passed',
            toState: 'verifying',
            reason: 'deployment "payments-api" successfully rolled out',
            startedAt: '2026-11-26T10:00:10.000Z',
          },
          {
            id: 2,
            kind: 'gate',
            name: 'smoke',
            status: 'passed',
            reason: '4 of 4 checks passed',
            evidence: { checks: [] },
            startedAt: '2026-11-26T10:00:20.000Z',
          },
        ],
        approvals: [
          {
            approver: 'user:default/omar',
            decision: 'approved',
            valid: true,
            createdAt: '2026-11-26T10:00:05.000Z',
          },
        ],
      }),
    });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Details of promotion 1.1.0 to staging',
      }),
    );
    const dialog = await screen.findByRole('dialog');
    expect(
      within(dialog).getByText('Promotion of 1.1.0 to staging'),
    ).toBeInTheDocument();
    const steps = await within(dialog).findByRole('list', { name: 'Steps' });
    expect(steps).toHaveTextContent('deploy rollout: passed → verifying');
    expect(steps).toHaveTextContent('4 of 4 checks passed');
    expect(
      within(dialog).getByRole('list', { name: 'Approvals' }),
    ).toHaveTextContent('user:default/omar: approved');
  });

  it("shows a GitOps step's commits: the deploy's and the rollback's roll-forward", async () => {
    const deployCommit = '3ca5231f0e4b6a1d2c3b4a5968778695a4b3c2d1';
    const fromCommit = '1111111aaaaaaaabbbbbbbbccccccccdddddddd0';
    const rollbackCommit = '7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f';
    const git = {
      repoUrl: 'http://git.local/manifests.git',
      branch: 'main',
      path: 'overlays/dev/kustomization.yaml',
      application: 'checkout-dev',
    };
    render({
      listPromotions: jest.fn().mockResolvedValue({
        items: [item('p1', 'staging', 'rolled-back', '1.2.0')],
      }),
      getPromotion: jest.fn().mockResolvedValue({
        promotion: item('p1', 'staging', 'rolled-back', '1.2.0'),
        steps: [
          {
            id: 1,
            kind: 'deploy',
            name: 'patch',
            status: 'started',
            reason:
              'registry.local/checkout:1.1.0 → registry.local/checkout:1.2.0',
            // Planned before the commit was made: no commit yet.
            evidence: { ...git, fromCommit, instance: 'demo' },
            startedAt: '2026-11-26T10:00:05.000Z',
          },
          {
            id: 2,
            kind: 'deploy',
            name: 'rollout',
            status: 'passed',
            toState: 'verifying',
            reason: 'Argo CD synced 3ca5231; checkout-dev is Healthy',
            evidence: {
              ...git,
              instance: 'demo',
              fromCommit,
              commit: deployCommit,
              fromImage: 'registry.local/checkout:1.1.0',
              toImage: 'registry.local/checkout:1.2.0',
              rollout: 'Argo CD synced 3ca5231; checkout-dev is Healthy',
              observed: {
                application: 'checkout-dev',
                sync: {
                  revision: deployCommit,
                  phase: 'Succeeded',
                  startedAt: '2026-11-26T10:00:11Z',
                  finishedAt: '2026-11-26T10:00:12Z',
                  initiatedBy: 'automated sync',
                },
                syncStatus: 'Synced',
                health: 'Healthy',
              },
            },
            startedAt: '2026-11-26T10:00:10.000Z',
          },
          {
            id: 3,
            kind: 'rollback',
            name: 'rollback',
            status: 'passed',
            reason: 'back on registry.local/checkout:1.1.0 in 12.0 s',
            evidence: {
              from: 'registry.local/checkout:1.2.0',
              to: 'registry.local/checkout:1.1.0',
              undo: { ...git, commit: rollbackCommit, deployCommit },
              observed: {
                sync: {
                  revision: rollbackCommit,
                  phase: 'Succeeded',
                  initiatedBy: 'automated sync',
                },
              },
              checks: [],
            },
            startedAt: '2026-11-26T10:00:30.000Z',
          },
          {
            id: 4,
            kind: 'rollback',
            name: 'rollback',
            status: 'passed',
            // The kubernetes deployer's undo: no commit.
            evidence: { undo: { revision: 3 } },
            startedAt: '2026-11-26T10:00:40.000Z',
          },
        ],
        approvals: [],
      }),
    });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Details of promotion 1.2.0 to staging',
      }),
    );
    const steps = await within(await screen.findByRole('dialog')).findByRole(
      'list',
      { name: 'Steps' },
    );
    const [patch, rollout, rollback, kubernetesRollback] =
      within(steps).getAllByRole('listitem');
    expect(
      within(patch).queryByTestId('gitops-step-commit'),
    ).not.toBeInTheDocument();
    expect(within(rollout).getByTestId('gitops-step-commit')).toHaveTextContent(
      'Commit 3ca5231 · Argo CD Application checkout-dev',
    );
    expect(within(rollout).getByTestId('gitops-step-sync')).toHaveTextContent(
      'Argo CD sync of 3ca5231: Succeeded (2026-11-26T10:00:11Z → 2026-11-26T10:00:12Z), started by automated sync',
    );
    expect(within(rollback).getByTestId('gitops-step-sync')).toHaveTextContent(
      'Argo CD sync of 7e8f9a0: Succeeded, started by automated sync',
    );
    expect(within(rollout).getAllByText('3ca5231')[0]).toHaveAttribute(
      'title',
      deployCommit,
    );
    expect(
      within(rollback).getByTestId('gitops-rollback-commit'),
    ).toHaveTextContent('Roll-forward commit 7e8f9a0 (undoes 3ca5231)');
    expect(
      within(kubernetesRollback).queryByTestId('gitops-rollback-commit'),
    ).not.toBeInTheDocument();
    // The evidence itself is still there.
    expect(rollout).toHaveTextContent(
      '"toImage": "registry.local/checkout:1.2.0"',
    );
  });

  it('shows an optional metrics step that measured nothing as not measured', async () => {
    const reason =
      'optional, not measured: no Prometheus is configured (progression.prometheus.url) for error-rate';
    render({
      listPromotions: jest.fn().mockResolvedValue({
        items: [item('p1', 'staging', 'succeeded', '1.1.0')],
      }),
      getPromotion: jest.fn().mockResolvedValue({
        promotion: item('p1', 'staging', 'succeeded', '1.1.0'),
        steps: [
          {
            id: 1,
            kind: 'gate',
            name: 'metrics',
            status: 'skipped',
            reason,
            evidence: {
              gate: 'metrics',
              phase: 'verification',
              status: 'skipped',
              reason,
              evidence: {
                optional: true,
                checks: [{ name: 'error-rate', query: 'sum(x)' }],
              },
            },
            startedAt: '2026-11-26T10:00:20.000Z',
          },
          {
            id: 2,
            kind: 'gate',
            name: 'metrics',
            status: 'skipped',
            reason:
              'error-rate: no data (passIfUnmeasurable lets the gate pass)',
            evidence: {
              gate: 'metrics',
              evidence: { prometheus: 'http://prometheus:9090', checks: [] },
            },
            startedAt: '2026-11-26T10:00:30.000Z',
          },
        ],
        approvals: [],
      }),
    });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Details of promotion 1.1.0 to staging',
      }),
    );
    const steps = await within(await screen.findByRole('dialog')).findByRole(
      'list',
      { name: 'Steps' },
    );
    const [optional, measuredButLenient] =
      within(steps).getAllByRole('listitem');
    expect(optional).toHaveTextContent(
      `gate metrics: optional, not measured${reason}`,
    );
    expect(optional).not.toHaveTextContent('metrics: skipped');
    expect(measuredButLenient).toHaveTextContent('gate metrics: skipped');
  });

  it('says when there is nothing yet', async () => {
    render({ listPromotions: jest.fn().mockResolvedValue({ items: [] }) });
    expect(await screen.findByText(/No promotions yet/)).toBeInTheDocument();
  });
});
