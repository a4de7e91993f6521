import { Entity } from '@backstage/catalog-model';
import { mockApis, renderInTestApp } from '@backstage/frontend-test-utils';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  EntityEnvironments,
  Stage,
} from '@progression-io/backstage-plugin-progression-common';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { ProgressionApi, progressionApiRef } from '../../api';
import { EnvironmentsContent } from '../EnvironmentsContent';
import { promoteBlocker } from './StageActions';

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

const live = (version: string) => ({
  deployment: 'payments-api',
  image: `registry.local/payments-api:${version}`,
  version,
  revision: 2,
  replicas: 2,
  readyReplicas: 2,
  updatedReplicas: 2,
  availableReplicas: 2,
  health: 'healthy' as const,
  message: 'ok',
});
const succeeded = (version: string) => ({
  id: `p-${version}`,
  kind: 'promotion' as const,
  state: 'succeeded',
  version,
  requestedBy: 'user:default/jane',
  createdAt: '2026-11-26T10:00:00Z',
});

const staging: Stage = {
  name: 'staging',
  title: 'Staging',
  cluster: 'local',
  namespace: 'staging',
  live: live('1.2.0'),
  lastPromotion: succeeded('1.2.0'),
};
const production: Stage = {
  name: 'production',
  title: 'Production',
  cluster: 'local',
  namespace: 'production',
  live: live('1.1.0'),
  lastPromotion: succeeded('1.1.0'),
};

const environments = (stages: Stage[]): EntityEnvironments => ({
  entityRef: 'component:default/payments-api',
  kubernetesId: 'payments-api',
  pipeline: { name: 'standard', title: 'Standard', stages },
});

type Decision = AuthorizeResult.ALLOW | AuthorizeResult.DENY;

function render(
  api: Partial<ProgressionApi>,
  authorize: Decision | (() => Decision) = AuthorizeResult.ALLOW,
  e: Entity = entity,
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
    },
  );
}

describe('promoteBlocker', () => {
  it.each([
    ['nothing blocks', staging, production, undefined],
    ['the last stage has no next', production, undefined, undefined],
    [
      'the next stage is busy',
      staging,
      {
        ...production,
        activePromotion: { ...succeeded('1.2.0'), state: 'deploying' },
      },
      'Production is busy with 1.2.0 (deploying)',
    ],
    [
      'the next stage runs it already',
      staging,
      { ...production, live: live('1.2.0') },
      'Production already runs 1.2.0',
    ],
    [
      'the stage did not pass what it runs',
      {
        ...staging,
        lastPromotion: { ...succeeded('1.2.0'), state: 'rolled-back' },
      },
      production,
      'Staging has not passed 1.2.0 through Progression',
    ],
    [
      'the live version is unknown',
      { ...staging, live: undefined },
      production,
      'what runs in Staging is not known',
    ],
  ])('%s', (_, stage, next, reason) => {
    expect(promoteBlocker(stage as Stage, next as Stage | undefined)).toBe(
      reason,
    );
  });
});

describe('stage actions', () => {
  it('promotes after a confirmation that says what changes, then reads the stages again', async () => {
    const requestPromotion = jest.fn().mockResolvedValue({
      id: 'p1',
      state: 'pending',
      stage: 'production',
      release: { version: '1.2.0' },
    });
    const getEnvironments = jest
      .fn()
      .mockResolvedValue(environments([staging, production]));
    render({ getEnvironments, requestPromotion });

    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Promote 1.2.0 to Production',
      }),
    );
    const dialog = await screen.findByRole('dialog');
    expect(dialog).toHaveTextContent('Production goes from 1.1.0 to 1.2.0');
    await userEvent.type(
      within(dialog).getByLabelText('Reason (optional)'),
      'ready for customers',
    );
    await userEvent.click(
      within(dialog).getByRole('button', { name: 'Promote' }),
    );

    await waitFor(() =>
      expect(requestPromotion).toHaveBeenCalledWith(
        { kind: 'Component', namespace: 'default', name: 'payments-api' },
        {
          stage: 'production',
          version: '1.2.0',
          reason: 'ready for customers',
        },
      ),
    );
    await waitFor(() => expect(getEnvironments).toHaveBeenCalledTimes(2));
  });

  it('disables Promote with the reason when the next stage is busy', async () => {
    const busy = {
      ...production,
      activePromotion: {
        ...succeeded('1.2.0'),
        id: 'p9',
        state: 'awaiting-approval',
      },
    };
    render({
      getEnvironments: jest
        .fn()
        .mockResolvedValue(environments([staging, busy])),
    });
    const promote = await screen.findByRole('button', {
      name: 'Promote 1.2.0 to Production',
    });
    expect(promote).toBeDisabled();
    expect(promote.parentElement).toHaveAttribute(
      'title',
      'Production is busy with 1.2.0 (awaiting-approval)',
    );
    // Said on the card too, not only on hover, and tied to the button.
    expect(promote).toHaveAccessibleDescription(
      'Promote to Production is not available: Production is busy with 1.2.0 (awaiting-approval).',
    );
  });

  it('binds an approval to the evidence the card shows', async () => {
    const hash = `sha256:${'a'.repeat(64)}`;
    const waiting = {
      ...production,
      activePromotion: {
        ...succeeded('1.2.0'),
        id: 'p9',
        state: 'awaiting-approval',
        approvals: { approvedBy: [], needed: 1, evidenceHash: hash },
      },
    };
    const decide = jest.fn().mockResolvedValue({
      id: 'p9',
      state: 'deploying',
      stage: 'production',
      release: { version: '1.2.0' },
    });
    render({
      getEnvironments: jest
        .fn()
        .mockResolvedValue(environments([staging, waiting])),
      decide,
    });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Approve 1.2.0 to Production',
      }),
    );
    await userEvent.click(
      within(await screen.findByRole('dialog')).getByRole('button', {
        name: 'Approve',
      }),
    );
    await waitFor(() =>
      expect(decide).toHaveBeenCalledWith('p9', {
        decision: 'approve',
        comment: undefined,
        evidenceHash: hash,
      }),
    );
  });

  it('approves and rejects a promotion awaiting approval', async () => {
    const waiting = {
      ...production,
      activePromotion: {
        ...succeeded('1.2.0'),
        id: 'p9',
        state: 'awaiting-approval',
      },
    };
    const decide = jest.fn().mockResolvedValue({
      id: 'p9',
      state: 'deploying',
      stage: 'production',
      release: { version: '1.2.0' },
    });
    render({
      getEnvironments: jest
        .fn()
        .mockResolvedValue(environments([staging, waiting])),
      decide,
    });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Approve 1.2.0 to Production',
      }),
    );
    await userEvent.click(
      within(await screen.findByRole('dialog')).getByRole('button', {
        name: 'Approve',
      }),
    );
    await waitFor(() =>
      expect(decide).toHaveBeenCalledWith('p9', {
        decision: 'approve',
        comment: undefined,
      }),
    );
    expect(
      // The environments are read again after the decision; on a loaded
      // machine that takes longer than findBy's default second.
      await screen.findByRole(
        'button',
        { name: 'Reject 1.2.0 to Production' },
        { timeout: 5000 },
      ),
    ).toBeEnabled();
    expect(
      screen.getByRole('button', {
        name: 'Cancel the promotion of 1.2.0 to Production',
      }),
    ).toBeEnabled();
  });

  it('rolls a stage back after a confirmation, and shows the backend error when it refuses', async () => {
    const requestRollback = jest.fn().mockRejectedValue(
      Object.assign(new Error('Request failed with 404'), {
        body: {
          error: {
            message:
              'No earlier release of component:default/payments-api ran in staging',
          },
        },
      }),
    );
    render({
      getEnvironments: jest
        .fn()
        .mockResolvedValue(environments([staging, production])),
      requestRollback,
    });
    await userEvent.click(
      await screen.findByRole('button', { name: 'Roll back Staging' }),
    );
    await userEvent.click(
      within(await screen.findByRole('dialog')).getByRole('button', {
        name: 'Roll back',
      }),
    );
    await waitFor(() =>
      expect(requestRollback).toHaveBeenCalledWith(expect.anything(), {
        stage: 'staging',
        reason: undefined,
      }),
    );
    expect(
      await screen.findByText(
        'No earlier release of component:default/payments-api ran in staging',
      ),
    ).toBeInTheDocument();
  });

  it('says in the promote dialog which gates will run and which flags differ', async () => {
    const previewPromotion = jest.fn().mockResolvedValue({
      stage: 'production',
      results: [
        {
          gate: 'isolation',
          phase: 'preflight',
          status: 'failed',
          reason:
            'policy allow-from-staging rule 0 admits namespace staging (environment=staging)',
        },
        {
          gate: 'parity',
          phase: 'preflight',
          status: 'passed',
          reason:
            'the 1 Secret reference of payments-api in staging exists in production; 1 warning',
          evidence: {
            warnings: [
              {
                kind: 'replicas',
                message: 'replicas differ: 2 in staging, 3 in production',
              },
            ],
          },
        },
      ],
    });
    render({
      getEnvironments: jest.fn().mockResolvedValue(
        environments([
          staging,
          {
            ...production,
            configuredGates: [
              { gate: 'isolation', phase: 'preflight' },
              { gate: 'parity', phase: 'preflight' },
              { gate: 'approval', phase: 'approval' },
              { gate: 'job', phase: 'predeploy' },
              { gate: 'smoke', phase: 'verification' },
            ],
          },
        ]),
      ),
      previewPromotion,
      getFlags: jest.fn().mockResolvedValue({
        entityRef: 'component:default/payments-api',
        stages: ['staging', 'production'],
        flags: [
          {
            key: 'new-checkout',
            differs: true,
            values: {
              staging: { state: 'ENABLED', variant: 'on', value: true },
              production: { state: 'ENABLED', variant: 'off', value: false },
            },
          },
        ],
        errors: {},
      }),
    });
    await screen.findAllByText('new-checkout');
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Promote 1.2.0 to Production',
      }),
    );
    const details = within(await screen.findByRole('dialog')).getByRole(
      'list',
      { name: 'What will happen' },
    );
    expect(details).toHaveTextContent(
      'Gates: isolation, parity before the approval; an approval; job just before the deploy; smoke after the deploy.',
    );
    expect(details).toHaveTextContent(
      'Flag new-checkout is off in Production and on in Staging.',
    );
    const checks = await screen.findByRole('list', {
      name: 'Checks before the approval',
    });
    expect(previewPromotion).toHaveBeenCalledWith(
      { kind: 'Component', namespace: 'default', name: 'payments-api' },
      'production',
    );
    expect(checks).toHaveTextContent(
      'isolation would stop it (failed): policy allow-from-staging rule 0 admits namespace staging (environment=staging)',
    );
    expect(checks).toHaveTextContent(
      'Parity warning: replicas differ: 2 in staging, 3 in production',
    );
  });

  it('shows who approved so far and how many approvals are needed', async () => {
    render({
      getEnvironments: jest.fn().mockResolvedValue(
        environments([
          staging,
          {
            ...production,
            activePromotion: {
              ...succeeded('1.2.0'),
              id: 'p9',
              state: 'awaiting-approval',
              approvals: { approvedBy: ['user:default/omar'], needed: 2 },
            },
          },
        ]),
      ),
    });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Approve 1.2.0 to Production',
      }),
    );
    expect(await screen.findByRole('dialog')).toHaveTextContent(
      'Approved so far by user:default/omar (1 of 2 needed).',
    );
  });

  it('rolls back to a chosen earlier release', async () => {
    const requestRollback = jest.fn().mockResolvedValue({
      id: 'r1',
      state: 'pending',
      stage: 'staging',
      release: { version: '1.0.0' },
    });
    render({
      getEnvironments: jest
        .fn()
        .mockResolvedValue(environments([staging, production])),
      listReleases: jest.fn().mockResolvedValue([
        { version: '1.2.0', image: 'x:1.2.0', createdAt: '2026-11-26' },
        { version: '1.1.0', image: 'x:1.1.0', createdAt: '2026-11-25' },
        { version: '1.0.0', image: 'x:1.0.0', createdAt: '2026-11-24' },
      ]),
      requestRollback,
    });
    await userEvent.click(
      await screen.findByRole('button', { name: 'Roll back Staging' }),
    );
    const dialog = await screen.findByRole('dialog');
    const select = within(dialog).getByLabelText('Roll back to');
    await within(select).findByRole('option', { name: '1.0.0' });
    // What runs now is not offered.
    expect(
      within(select).queryByRole('option', { name: '1.2.0' }),
    ).not.toBeInTheDocument();
    await userEvent.selectOptions(select, '1.0.0');
    await userEvent.click(
      within(dialog).getByRole('button', { name: 'Roll back' }),
    );
    await waitFor(() =>
      expect(requestRollback).toHaveBeenCalledWith(expect.anything(), {
        stage: 'staging',
        toVersion: '1.0.0',
        reason: undefined,
      }),
    );
  });

  it('shows no actions to those the permission policy does not allow', async () => {
    const deny = jest.fn((): Decision => AuthorizeResult.DENY);
    render(
      {
        getEnvironments: jest
          .fn()
          .mockResolvedValue(environments([staging, production])),
      },
      deny,
      // Another entity: usePermission caches answers per resource (SWR).
      { ...entity, metadata: { ...entity.metadata, name: 'other-api' } },
    );
    await screen.findByText('Pipeline: Standard');
    // The policy answered (every action was asked about), and said no.
    await waitFor(() => expect(deny).toHaveBeenCalledTimes(5));
    await new Promise(r => setTimeout(r, 50));
    expect(
      screen.queryByRole('button', { name: /Promote/ }),
    ).not.toBeInTheDocument();
    expect(
      screen.queryByRole('button', { name: /Roll back/ }),
    ).not.toBeInTheDocument();
  });
});

describe('promotion windows', () => {
  const closed: Stage = {
    ...production,
    window: {
      open: false,
      source: 'deny-window',
      reason:
        "inside deny window 'holiday freeze' until 2027-01-02T00:00:00.000Z; opens 2027-01-02T00:00:00.000Z",
      // The card reads the pieces: the times in them in the reader's zone.
      reasonParts: [
        { text: "inside deny window 'holiday freeze' until " },
        { at: '2027-01-02T00:00:00.000Z' },
        { text: '; opens ' },
        { at: '2027-01-02T00:00:00.000Z' },
      ],
      nextOpening: '2027-01-02T00:00:00.000Z',
      rollbacksWhenClosed: 'allow',
    },
  };
  const opens = new Date('2027-01-02T00:00:00.000Z').toLocaleString();

  it('shows a closed stage on its card and in the promote dialog before the click', async () => {
    render({
      getEnvironments: jest
        .fn()
        .mockResolvedValue(environments([staging, closed])),
      previewPromotion: jest
        .fn()
        .mockResolvedValue({ stage: 'production', results: [] }),
    });
    const card = await screen.findByTestId('stage-production');
    expect(card).toHaveTextContent(
      `Production is closed: inside deny window 'holiday freeze' until ${opens}; opens ${opens}`,
    );
    await userEvent.click(
      screen.getByRole('button', { name: 'Promote 1.2.0 to Production' }),
    );
    expect(await screen.findByRole('dialog')).toHaveTextContent(
      `Production is closed: inside deny window 'holiday freeze' until ${opens}; opens ${opens}. The promotion waits until then.`,
    );
  });

  it('says an alert keeps a stage closed until it resolves', async () => {
    render({
      getEnvironments: jest.fn().mockResolvedValue(
        environments([
          staging,
          {
            ...production,
            window: {
              open: false,
              source: 'alert',
              reason:
                'frozen while DemoHighErrorRatio fires; opens when it resolves',
              reasonParts: [
                {
                  text: 'frozen while DemoHighErrorRatio fires; opens when it resolves',
                },
              ],
              rollbacksWhenClosed: 'allow',
            },
          },
        ]),
      ),
    });
    expect(await screen.findByTestId('stage-production')).toHaveTextContent(
      'Production is closed: frozen while DemoHighErrorRatio fires; opens when it resolves',
    );
  });

  it('overrides a closed window only with a reason, for those allowed', async () => {
    const waiting: Stage = {
      ...closed,
      activePromotion: { ...succeeded('1.2.0'), id: 'p7', state: 'waiting' },
    };
    const overrideWindow = jest
      .fn()
      .mockResolvedValue({ id: 'p7', state: 'deploying' });
    const getEnvironments = jest
      .fn()
      .mockResolvedValue(environments([staging, waiting]));
    render({ getEnvironments, overrideWindow });
    await userEvent.click(
      await screen.findByRole('button', {
        name: 'Override the window: deploy 1.2.0 to Production now',
      }),
    );
    const dialog = await screen.findByRole('dialog');
    expect(dialog).toHaveTextContent('Break-glass');
    const confirm = within(dialog).getByRole('button', {
      name: 'Override and deploy',
    });
    expect(confirm).toBeDisabled();
    await userEvent.type(
      within(dialog).getByRole('textbox', { name: /Reason/ }),
      'incident fix INC-42',
    );
    await userEvent.click(confirm);
    await waitFor(() =>
      expect(overrideWindow).toHaveBeenCalledWith('p7', 'incident fix INC-42'),
    );
  });

  it('offers no override to those the policy does not allow', async () => {
    const waiting: Stage = {
      ...closed,
      activePromotion: { ...succeeded('1.2.0'), id: 'p7', state: 'waiting' },
    };
    render(
      {
        getEnvironments: jest
          .fn()
          .mockResolvedValue(environments([staging, waiting])),
      },
      AuthorizeResult.DENY,
      // Another entity: usePermission caches answers per resource (SWR).
      { ...entity, metadata: { ...entity.metadata, name: 'frozen-api' } },
    );
    expect(await screen.findByTestId('stage-production')).toHaveTextContent(
      'Production is closed',
    );
    await new Promise(r => setTimeout(r, 50));
    expect(
      screen.queryByRole('button', { name: /Override the window/ }),
    ).not.toBeInTheDocument();
  });
});
