import { Entity } from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import { mockApis, renderInTestApp } from '@backstage/frontend-test-utils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { EntityEnvironments } from '@internal/backstage-plugin-progression-common';
import { screen, within } from '@testing-library/react';
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

function render(
  api: Partial<ProgressionApi>,
  e: Entity = entity,
  authorize:
    | AuthorizeResult.ALLOW
    | AuthorizeResult.DENY = AuthorizeResult.ALLOW,
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
