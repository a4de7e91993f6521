import { Entity } from '@backstage/catalog-model';
import { renderInTestApp } from '@backstage/frontend-test-utils';
import { EntityProvider } from '@backstage/plugin-catalog-react';
import { screen, within } from '@testing-library/react';
import { StageDeliveryInsights } from '@progression-io/backstage-plugin-progression-common';
import { ProgressionApi, progressionApiRef } from '../../api';
import { DeliveryInsightsCard } from './DeliveryInsightsCard';

const HOUR = 3_600_000;

const entity: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'payments-api',
    annotations: { 'progression.backstage.io/pipeline': 'standard' },
  },
  spec: { type: 'service' },
};

const stage = (
  name: string,
  deployments: number,
  failed: number,
): StageDeliveryInsights => ({
  stage: name,
  title: name[0].toUpperCase() + name.slice(1),
  deployments: {
    count: deployments,
    succeeded: deployments - failed,
    failed,
    perDay: deployments / 30,
  },
  leadTime: {
    count: deployments - failed,
    fromCommit: 0,
    medianMs: deployments ? 26 * HOUR : null,
    p90Ms: deployments ? 70 * HOUR : null,
  },
  changeFailureRate: {
    failed,
    deployments,
    rate: deployments ? failed / deployments : null,
  },
  timeToRestore: {
    incidents: failed,
    restored: failed,
    open: 0,
    medianMs: failed ? 20 * 60_000 : null,
  },
  daily: [],
});

function render(stages: StageDeliveryInsights[]) {
  const getInsights = jest.fn().mockResolvedValue({
    entityRef: 'component:default/payments-api',
    range: '30d',
    days: 30,
    from: '2026-10-08T00:00:00.000Z',
    to: '2026-11-06T12:00:00.000Z',
    stages,
  });
  return {
    getInsights,
    rendered: renderInTestApp(
      <EntityProvider entity={entity}>
        <DeliveryInsightsCard />
      </EntityProvider>,
      {
        apis: [
          [
            progressionApiRef,
            { getInsights } as Partial<ProgressionApi> as ProgressionApi,
          ],
        ],
      },
    ),
  };
}

describe('DeliveryInsightsCard', () => {
  it("shows production's four figures over the last 30 days", async () => {
    const { getInsights } = render([
      stage('staging', 40, 8),
      stage('production', 12, 1),
    ]);
    const card = await screen.findByRole('region', {
      name: 'Delivery to Production',
    });
    expect(getInsights).toHaveBeenCalledWith(
      { kind: 'Component', namespace: 'default', name: 'payments-api' },
      { range: '30d' },
    );
    expect(screen.getByText('Delivery to Production')).toBeInTheDocument();
    const figure = (name: string) => within(card).getByRole('group', { name });
    expect(figure('Deployments')).toHaveTextContent('0.40/day');
    expect(figure('Deployments')).toHaveTextContent(
      '12 deployments in 30 days',
    );
    expect(figure('Lead time')).toHaveTextContent('1.1 d');
    expect(figure('Change failure rate')).toHaveTextContent('8.3%');
    expect(figure('Change failure rate')).toHaveTextContent(
      '1 of 12 deployments failed or rolled back',
    );
    expect(figure('Time to restore')).toHaveTextContent('20 min');
    expect(figure('Time to restore')).toHaveTextContent(
      '1 of 1 incident restored',
    );
    // Staging's figures are the tab's, not the card's.
    expect(card).not.toHaveTextContent('40 deployments');
  });

  it("takes the pipeline's last stage where none is called production", async () => {
    render([stage('staging', 5, 0), stage('live', 3, 0)]);
    expect(
      await screen.findByRole('region', { name: 'Delivery to Live' }),
    ).toHaveTextContent('3 deployments in 30 days');
  });

  it('says when nothing reached production in 30 days', async () => {
    render([stage('staging', 5, 0), stage('production', 0, 0)]);
    expect(
      await screen.findByText(
        'No deployments to Production in the last 30 days.',
      ),
    ).toBeInTheDocument();
  });
});
