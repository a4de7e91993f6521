import { Entity } from '@backstage/catalog-model';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import {
  TestApiProvider,
  mockApis,
  renderInTestApp,
} from '@backstage/test-utils';
import { permissionApiRef } from '@backstage/plugin-permission-react';
import { screen } from '@testing-library/react';
import { ProgressionApi, progressionApiRef } from './api';
import { Route, Routes } from 'react-router-dom';
import {
  EntityEnvironmentsContent,
  EntityReleaseCard,
  progressionPlugin,
} from './plugin';

const entity: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'web-shop',
    annotations: { 'progression.backstage.io/pipeline': 'standard' },
  },
  spec: { type: 'website', owner: 'team-web' },
};

const api: Pick<ProgressionApi, 'getEnvironments'> = {
  getEnvironments: async () => ({
    entityRef: 'component:default/web-shop',
    kubernetesId: 'web-shop',
    pipeline: {
      name: 'standard',
      title: 'standard',
      stages: [
        { name: 'dev', title: 'dev', cluster: 'local', namespace: 'dev' },
        { name: 'prod', title: 'prod', cluster: 'local', namespace: 'prod' },
      ],
    },
  }),
};

describe('legacy progressionPlugin', () => {
  it('has the plugin id and provides its API', () => {
    expect(progressionPlugin.getId()).toBe('progression');
    expect([...progressionPlugin.getApis()].map(f => f.api.id)).toContain(
      'plugin.progression.api',
    );
  });

  it('renders EntityEnvironmentsContent in a legacy app', async () => {
    await renderInTestApp(
      <TestApiProvider
        apis={[
          [progressionApiRef, api as ProgressionApi],
          [permissionApiRef, mockApis.permission()],
        ]}
      >
        <EntityProvider entity={entity}>
          {/* What EntityLayout.Route does: give the extension a path. */}
          <Routes>
            <Route path="/*" element={<EntityEnvironmentsContent />} />
          </Routes>
        </EntityProvider>
      </TestApiProvider>,
    );
    expect(await screen.findByText('Pipeline: standard')).toBeInTheDocument();
    expect(screen.getAllByRole('listitem')).toHaveLength(2);
  });

  it('renders EntityReleaseCard in a legacy app', async () => {
    await renderInTestApp(
      <TestApiProvider apis={[[progressionApiRef, api as ProgressionApi]]}>
        <EntityProvider entity={entity}>
          <EntityReleaseCard />
        </EntityProvider>
      </TestApiProvider>,
    );
    expect(
      await screen.findByRole('table', { name: 'Where is my release' }),
    ).toHaveTextContent('prod');
  });
});
