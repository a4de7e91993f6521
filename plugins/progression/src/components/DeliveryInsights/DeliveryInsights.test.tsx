import { renderInTestApp } from '@backstage/frontend-test-utils';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import {
  DeliveryInsights as DeliveryInsightsDto,
  StageDeliveryInsights,
} from '@progression-io/backstage-plugin-progression-common';
import { ProgressionApi, progressionApiRef } from '../../api';
import { DeliveryInsights } from './DeliveryInsights';
import { formatDuration } from './formatDuration';

const HOUR = 3_600_000;
const entityRef = { kind: 'component', namespace: 'default', name: 'pay' };

const day = (date: string, deployments = 0, failed = 0) => ({
  date,
  deployments,
  failed,
  leadTimeMedianMs: null,
  restoreMedianMs: null,
});

const quiet = (stage: string): StageDeliveryInsights => ({
  stage,
  title: stage[0].toUpperCase() + stage.slice(1),
  deployments: { count: 0, succeeded: 0, failed: 0, perDay: 0 },
  leadTime: { count: 0, fromCommit: 0, medianMs: null, p90Ms: null },
  changeFailureRate: { failed: 0, deployments: 0, rate: null },
  timeToRestore: { incidents: 0, restored: 0, open: 0, medianMs: null },
  daily: [day('2026-11-04'), day('2026-11-05'), day('2026-11-06')],
});

/** Staging with 8 deployments in 3 days, as the store test's history. */
const staging: StageDeliveryInsights = {
  stage: 'staging',
  title: 'Staging',
  deployments: { count: 8, succeeded: 4, failed: 4, perDay: 8 / 3 },
  leadTime: { count: 4, fromCommit: 2, medianMs: 4 * HOUR, p90Ms: 11.6 * HOUR },
  changeFailureRate: { failed: 4, deployments: 8, rate: 0.5 },
  timeToRestore: { incidents: 3, restored: 2, open: 1, medianMs: 5.25 * HOUR },
  daily: [
    { ...day('2026-11-04', 2, 0), leadTimeMedianMs: 1.5 * HOUR },
    { ...day('2026-11-05', 3, 2), restoreMedianMs: 2.5 * HOUR },
    {
      ...day('2026-11-06', 3, 2),
      leadTimeMedianMs: 14 * HOUR,
      restoreMedianMs: 8 * HOUR,
    },
  ],
};

const insights = (stages: StageDeliveryInsights[]): DeliveryInsightsDto => ({
  entityRef: 'component:default/pay',
  range: '30d',
  days: 3,
  from: '2026-11-04T00:00:00.000Z',
  to: '2026-11-06T12:00:00.000Z',
  stages,
});

function render(getInsights: ProgressionApi['getInsights']) {
  return renderInTestApp(<DeliveryInsights entityRef={entityRef} />, {
    apis: [[progressionApiRef, { getInsights } as ProgressionApi]],
  });
}

describe('DeliveryInsights', () => {
  it("shows each stage's four figures with the counts they come from", async () => {
    const getInsights = jest
      .fn()
      .mockResolvedValue(insights([quiet('development'), staging]));
    await render(getInsights);

    const section = await screen.findByRole('group', {
      name: 'Delivery of Staging',
    });
    expect(getInsights).toHaveBeenCalledWith(entityRef, { range: '30d' });
    const figure = (name: string) =>
      within(section).getByRole('group', { name });
    expect(figure('Deployments')).toHaveTextContent('2.67/day');
    expect(figure('Deployments')).toHaveTextContent('8 deployments in 3 days');
    expect(figure('Lead time')).toHaveTextContent('4.0 h');
    expect(figure('Lead time')).toHaveTextContent(
      'median; p90 12 h; 4 deployments, 2 from the commit time',
    );
    expect(figure('Change failure rate')).toHaveTextContent('50%');
    expect(figure('Change failure rate')).toHaveTextContent(
      '4 of 8 deployments failed or rolled back',
    );
    expect(figure('Time to restore')).toHaveTextContent('5.3 h');
    expect(figure('Time to restore')).toHaveTextContent(
      'median; 2 of 3 incidents restored, 1 still open',
    );

    // A stage without deployments says so rather than showing zeros as rates.
    const development = screen.getByRole('group', {
      name: 'Delivery of Development',
    });
    expect(
      within(development).getByRole('group', { name: 'Change failure rate' }),
    ).toHaveTextContent('—0 of 0 deployments failed or rolled back');
    expect(
      within(development).getByRole('group', { name: 'Time to restore' }),
    ).toHaveTextContent('no failed deployments');
  });

  it('reads another range when one is picked', async () => {
    const getInsights = jest
      .fn()
      .mockResolvedValue(insights([quiet('development'), staging]));
    await render(getInsights);
    await screen.findByRole('group', { name: 'Delivery of Staging' });

    await userEvent.selectOptions(
      screen.getByRole('combobox', { name: 'Range' }),
      'Last 90 days',
    );
    expect(getInsights).toHaveBeenLastCalledWith(entityRef, { range: '90d' });
  });

  it('says when nothing was deployed in the range', async () => {
    await render(
      jest
        .fn()
        .mockResolvedValue(insights([quiet('development'), quiet('staging')])),
    );
    expect(
      await screen.findByText(/No deployments in the last 30 days/),
    ).toBeInTheDocument();
  });

  it('shows a loading state, then why the figures could not be read', async () => {
    let fail: (e: Error) => void = () => {};
    await render(
      () =>
        new Promise((_, reject) => {
          fail = reject;
        }),
    );
    expect(screen.getByTestId('progress')).toBeInTheDocument();
    fail(new Error('the database is down'));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'Could not load the delivery insights: the database is down',
    );
  });
});

describe('formatDuration', () => {
  it('reads as people say it', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(45_000)).toBe('45 s');
    expect(formatDuration(12 * 60_000)).toBe('12 min');
    expect(formatDuration(3.5 * HOUR)).toBe('3.5 h');
    expect(formatDuration(14 * HOUR)).toBe('14 h');
    expect(formatDuration(50 * HOUR)).toBe('2.1 d');
  });
});
