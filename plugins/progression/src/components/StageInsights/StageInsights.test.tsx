import { renderInTestApp } from '@backstage/frontend-test-utils';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { EntityFlags } from '@progression-io/backstage-plugin-progression-common';
import { ProgressionApi, progressionApiRef } from '../../api';
import {
  StageCharts,
  StageFlags,
  StageGates,
  flagDifferences,
} from './StageInsights';

const stage = (name: string) => ({
  name,
  title: name,
  cluster: 'local',
  namespace: name,
});

const flags: EntityFlags = {
  entityRef: 'component:default/payments-api',
  stages: ['development', 'staging', 'production'],
  flags: [
    {
      key: 'new-checkout',
      differs: true,
      values: {
        development: { state: 'ENABLED', variant: 'on', value: true },
        staging: { state: 'ENABLED', variant: 'on', value: true },
        production: { state: 'ENABLED', variant: 'off', value: false },
      },
    },
    {
      key: 'dark-mode',
      differs: false,
      values: {
        development: { state: 'ENABLED', variant: 'on', value: true },
        staging: { state: 'ENABLED', variant: 'on', value: true },
        production: { state: 'ENABLED', variant: 'on', value: true },
      },
    },
  ],
  errors: {},
};

describe('StageGates', () => {
  it('spells out each gate status with its reason and opens the evidence', async () => {
    const getPromotion = jest.fn().mockResolvedValue({
      promotion: {
        id: 'p1',
        kind: 'promotion',
        stage: 'staging',
        state: 'rolled-back',
        release: { version: '2.0.0-errors', image: 'x:2.0.0-errors' },
        requestedBy: 'user:default/jane',
        createdAt: '2026-11-26T10:00:00.000Z',
      },
      steps: [
        {
          id: 1,
          kind: 'gate',
          name: 'metrics',
          status: 'failed',
          reason: 'error-rate: error-rate 31.0% > 5.0% in 1 of 1 samples',
          startedAt: '2026-11-26T10:00:10.000Z',
          evidence: {
            gate: 'metrics',
            evidence: {
              checks: [
                {
                  name: 'error-rate',
                  query: 'sum(x)',
                  condition: '<= 0.05',
                  threshold: 0.05,
                  status: 'failed',
                  reason: 'error-rate 31.0% > 5.0% in 1 of 1 samples',
                  samples: [
                    {
                      time: '2026-11-26T10:00:10.000Z',
                      value: 0.31,
                      status: 'failed',
                    },
                  ],
                },
              ],
            },
          },
        },
      ],
      approvals: [],
    });
    await renderInTestApp(
      <StageGates
        gates={[
          {
            gate: 'smoke',
            status: 'passed',
            reason: '4 of 4 checks passed',
            promotionId: 'p1',
            at: '2026-11-26T10:00:05.000Z',
          },
          {
            gate: 'metrics',
            status: 'failed',
            reason: 'error-rate: error-rate 31.0% > 5.0% in 1 of 1 samples',
            promotionId: 'p1',
            at: '2026-11-26T10:00:10.000Z',
          },
        ]}
      />,
      {
        apis: [
          [
            progressionApiRef,
            { getPromotion } as Partial<ProgressionApi> as ProgressionApi,
          ],
        ],
      },
    );
    const list = screen.getByRole('list', { name: 'Gate results' });
    const items = within(list).getAllByRole('listitem');
    expect(items[0]).toHaveTextContent('smoke passed: 4 of 4 checks passed');
    expect(items[1]).toHaveTextContent(
      'metrics failed: error-rate: error-rate 31.0% > 5.0% in 1 of 1 samples',
    );
    await userEvent.click(
      screen.getByRole('button', { name: 'Evidence of the metrics gate' }),
    );
    expect(getPromotion).toHaveBeenCalledWith('p1');
    const samples = await screen.findByRole('table', {
      name: 'Samples of error-rate',
    });
    expect(within(samples).getAllByRole('row')[1]).toHaveTextContent('0.31');
    expect(within(samples).getAllByRole('row')[1]).toHaveTextContent('failed');
  });

  it('shows an optional metric check without Prometheus as not measured, not as passed or skipped', async () => {
    await renderInTestApp(
      <StageGates
        gates={[
          {
            gate: 'metrics',
            status: 'skipped',
            reason:
              'optional, not measured: no Prometheus is configured (progression.prometheus.url) for error-rate',
            promotionId: 'p1',
            at: '2026-11-26T10:00:10.000Z',
          },
          {
            gate: 'load',
            status: 'skipped',
            reason: 'not configured here',
            promotionId: 'p1',
            at: '2026-11-26T10:00:10.000Z',
          },
        ]}
      />,
    );
    const items = within(
      screen.getByRole('list', { name: 'Gate results' }),
    ).getAllByRole('listitem');
    expect(items[0]).toHaveTextContent(
      'metrics optional, not measured: no Prometheus is configured (progression.prometheus.url) for error-rate',
    );
    expect(items[0]).not.toHaveTextContent(/passed|skipped/);
    // Only metric results are read this way.
    expect(items[1]).toHaveTextContent('load skipped: not configured here');
  });

  it('renders nothing without gate results', async () => {
    await renderInTestApp(<StageGates gates={[]} />);
    expect(screen.queryByRole('list', { name: 'Gate results' })).toBeNull();
  });
});

describe('StageCharts', () => {
  it('shows the latest request rate, error rate and p95 in words beside the trend lines', async () => {
    const points = (vs: number[]) => vs.map((v, i) => ({ t: i * 60, v }));
    await renderInTestApp(
      <StageCharts
        metrics={{
          stage: 'staging',
          requestRate: points([1, 2, 3.5]),
          errorRate: points([0, 0.1, 0.25]),
          p95: points([0.01, 0.02, 0.612]),
        }}
      />,
    );
    const group = screen.getByRole('group', {
      name: 'Metrics over the last hour',
    });
    expect(group).toHaveTextContent('Requests');
    expect(group).toHaveTextContent('3.50/s');
    expect(group).toHaveTextContent('25.0%');
    expect(group).toHaveTextContent('612 ms');
  });

  it('says why there are no metrics', async () => {
    await renderInTestApp(
      <StageCharts unavailable="No Prometheus is configured." />,
    );
    expect(
      screen.getByText('Metrics: No Prometheus is configured.'),
    ).toBeInTheDocument();
  });

  it('says when a stage has no data yet or its series failed', async () => {
    await renderInTestApp(
      <>
        <StageCharts
          metrics={{ stage: 'a', requestRate: [], errorRate: [], p95: [] }}
        />
        <StageCharts metrics={{ stage: 'b', error: 'query timed out' }} />
      </>,
    );
    expect(screen.getAllByText('no data yet')).toHaveLength(3);
    expect(
      screen.getByText('Metrics unavailable: query timed out'),
    ).toBeInTheDocument();
  });

  it('does not say "no data yet" beside a value', async () => {
    await renderInTestApp(
      <StageCharts
        metrics={{
          stage: 'a',
          requestRate: [{ t: 1_700_000_000, v: 2 }],
          errorRate: [],
          p95: [],
        }}
      />,
    );
    const rate = screen.getByText('one sample so far');
    expect(rate.parentElement).toHaveTextContent('2.00');
    expect(screen.getAllByText('no data yet')).toHaveLength(2);
  });
});

describe('StageFlags', () => {
  it('lists the flags that differ from the neighbouring stages', async () => {
    expect(flagDifferences(flags, 'production')).toEqual([
      { key: 'new-checkout', here: 'off', there: 'on', neighbour: 'staging' },
    ]);
    expect(flagDifferences(flags, 'development')).toEqual([]);
    await renderInTestApp(
      <StageFlags flags={flags} stage={stage('production')} />,
    );
    const list = screen.getByRole('list', { name: 'Flags that differ' });
    expect(list).toHaveTextContent('new-checkout off here, on in staging');
  });

  it('says when the stage matches its neighbours, or why its flags are unknown', async () => {
    await renderInTestApp(
      <>
        <StageFlags flags={flags} stage={stage('development')} />
        <StageFlags
          flags={{ ...flags, errors: { staging: 'ConfigMap missing' } }}
          stage={stage('staging')}
        />
      </>,
    );
    expect(
      screen.getByText('Flags: same as the neighbouring stages'),
    ).toBeInTheDocument();
    expect(
      screen.getByText('Flags unknown: ConfigMap missing'),
    ).toBeInTheDocument();
  });
});
