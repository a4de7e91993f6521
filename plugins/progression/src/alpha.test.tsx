import { Entity } from '@backstage/catalog-model';
import {
  createExtensionTester,
  mockApis,
  renderInTestApp,
} from '@backstage/frontend-test-utils';
import { coreExtensionData } from '@backstage/frontend-plugin-api';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import {
  EntityCardBlueprint,
  EntityContentBlueprint,
} from '@backstage/plugin-catalog-react/alpha';
import { screen, within } from '@testing-library/react';
import { progressionApiRef } from './api';
import plugin, {
  entityDeliveryInsightsCard,
  entityEnvironmentsContent,
  entityReleaseCard,
} from './alpha';

const annotated: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'payments-api',
    annotations: { 'progression.backstage.io/pipeline': 'standard' },
  },
  spec: { type: 'service' },
};

describe('new frontend system plugin', () => {
  it('is the progression plugin with its API and entity content', () => {
    expect(plugin.pluginId).toBe('progression');
  });

  it('shows the Environments tab only on entities that use Progression', () => {
    const tester = createExtensionTester(entityEnvironmentsContent);
    expect(tester.get(EntityContentBlueprint.dataRefs.title)).toBe(
      'Environments',
    );
    const filter = tester.get(EntityContentBlueprint.dataRefs.filterFunction)!;
    expect(filter(annotated)).toBe(true);
    expect(filter({ ...annotated, metadata: { name: 'other' } })).toBe(false);
  });

  it('renders the tab content', async () => {
    const tester = createExtensionTester(entityEnvironmentsContent);
    const element = tester.get(coreExtensionData.reactElement);
    await renderInTestApp(
      <EntityProvider entity={annotated}>{element}</EntityProvider>,
      {
        apis: [
          mockApis.permission(),
          [
            progressionApiRef,
            {
              getEnvironments: async () => ({
                entityRef: 'component:default/payments-api',
                kubernetesId: 'payments-api',
                pipeline: {
                  name: 'standard',
                  title: 'standard',
                  stages: [
                    {
                      name: 'development',
                      title: 'development',
                      cluster: 'local',
                      namespace: 'development',
                    },
                  ],
                },
              }),
            },
          ],
        ],
      },
    );
    expect(await screen.findByText('Pipeline: standard')).toBeInTheDocument();
  });

  it('offers a "where is my release" card for the Overview tab of entities that use Progression', async () => {
    const tester = createExtensionTester(entityReleaseCard);
    const filter = tester.get(EntityCardBlueprint.dataRefs.filterFunction)!;
    expect(filter(annotated)).toBe(true);
    expect(filter({ ...annotated, metadata: { name: 'other' } })).toBe(false);
    await renderInTestApp(
      <EntityProvider entity={annotated}>
        {tester.get(coreExtensionData.reactElement)}
      </EntityProvider>,
      {
        apis: [
          [
            progressionApiRef,
            {
              getEnvironments: async () => ({
                entityRef: 'component:default/payments-api',
                kubernetesId: 'payments-api',
                pipeline: {
                  name: 'standard',
                  title: 'Standard',
                  stages: [
                    {
                      name: 'staging',
                      title: 'Staging',
                      cluster: 'local',
                      namespace: 'staging',
                      live: {
                        deployment: 'payments-api',
                        image: 'x:1.2.0',
                        version: '1.2.0',
                        revision: 3,
                        replicas: 2,
                        readyReplicas: 2,
                        updatedReplicas: 2,
                        availableReplicas: 2,
                        health: 'healthy' as const,
                        message: 'ok',
                      },
                    },
                    {
                      name: 'production',
                      title: 'Production',
                      cluster: 'local',
                      namespace: 'production',
                      error: 'cluster unreachable',
                      activePromotion: {
                        id: 'p1',
                        kind: 'promotion' as const,
                        state: 'awaiting-approval',
                        version: '1.2.0',
                        requestedBy: 'service:ci',
                        createdAt: '2026-11-26T10:00:00Z',
                      },
                    },
                  ],
                },
              }),
            },
          ],
        ],
      },
    );
    const table = await screen.findByRole('table', {
      name: 'Where is my release',
    });
    const rows = within(table).getAllByRole('row');
    expect(rows[1]).toHaveTextContent('Staging1.2.0healthy—');
    expect(rows[2]).toHaveTextContent(
      'Production—unknown1.2.0 (awaiting-approval)',
    );
  });

  it("offers production's delivery insights as a card for the Overview tab of entities that use Progression", async () => {
    const tester = createExtensionTester(entityDeliveryInsightsCard);
    const filter = tester.get(EntityCardBlueprint.dataRefs.filterFunction)!;
    expect(filter(annotated)).toBe(true);
    expect(filter({ ...annotated, metadata: { name: 'other' } })).toBe(false);
    await renderInTestApp(
      <EntityProvider entity={annotated}>
        {tester.get(coreExtensionData.reactElement)}
      </EntityProvider>,
      {
        apis: [
          [
            progressionApiRef,
            {
              getInsights: async () => ({
                entityRef: 'component:default/payments-api',
                range: '30d',
                days: 30,
                from: '2026-10-08T00:00:00.000Z',
                to: '2026-11-06T12:00:00.000Z',
                stages: [
                  {
                    stage: 'production',
                    title: 'Production',
                    deployments: {
                      count: 3,
                      succeeded: 3,
                      failed: 0,
                      perDay: 0.1,
                    },
                    leadTime: {
                      count: 3,
                      fromCommit: 3,
                      medianMs: 7_200_000,
                      p90Ms: 9_000_000,
                    },
                    changeFailureRate: { failed: 0, deployments: 3, rate: 0 },
                    timeToRestore: {
                      incidents: 0,
                      restored: 0,
                      open: 0,
                      medianMs: null,
                    },
                    daily: [],
                  },
                ],
              }),
            },
          ],
        ],
      },
    );
    expect(
      await screen.findByRole('region', { name: 'Delivery to Production' }),
    ).toHaveTextContent('3 deployments in 30 days');
  });
});
