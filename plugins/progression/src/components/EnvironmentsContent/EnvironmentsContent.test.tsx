import { Entity } from '@backstage/catalog-model';
import { NotFoundError } from '@backstage/errors';
import { renderInTestApp } from '@backstage/frontend-test-utils';
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
      },
      {
        name: 'production',
        title: 'Production',
        cluster: 'prod-eu',
        namespace: 'production',
      },
    ],
  },
};

function render(api: Partial<ProgressionApi>, e: Entity = entity) {
  return renderInTestApp(
    <EntityProvider entity={e}>
      <EnvironmentsContent />
    </EntityProvider>,
    { apis: [[progressionApiRef, api as ProgressionApi]] },
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
