import { Entity } from '@backstage/catalog-model';
import {
  createExtensionTester,
  mockApis,
  renderInTestApp,
} from '@backstage/frontend-test-utils';
import { coreExtensionData } from '@backstage/frontend-plugin-api';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { EntityContentBlueprint } from '@backstage/plugin-catalog-react/alpha';
import { screen } from '@testing-library/react';
import { progressionApiRef } from './api';
import plugin, { entityEnvironmentsContent } from './alpha';

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
});
