import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { KpiPage } from '../src/pages/KpiPage';
import { asset, login, renderWith, setup } from './helpers';

const kpi = (assetId?: string) => ({
  assetId, availability: 0.975, mtbfHours: 120, mttrHours: 2.5, failures: 3, downtimeHours: 7.5, plannedStopHours: 12.5, oee: 0.81,
  performance: 0.8, quality: 0.88, goodUnits: 220, rejectedUnits: 30,
  oeeBasis: 'availability × performance (ideal cycle × units ÷ run time) × quality (good ÷ all units counted)',
  shifts: [
    { shift: 'A', hours: 56, plannedStopHours: 3.5, availability: 0.99, performance: 0.75, quality: 0.9, goodUnits: 90, rejectedUnits: 10, oee: 0.85 },
    { shift: 'B', hours: 56, plannedStopHours: 56, availability: 1, performance: null, quality: null, goodUnits: 0, rejectedUnits: 0, oee: 0.98 },
  ],
});
const reliability = (req: { url: URL }) => ({
  body: {
    at: '2026-12-06T00:00:00Z',
    items: [
      {
        assetType: 'pump', assets: 3, failures: 8, suspensions: 4,
        weibull: { shape: 3.69, scale: 979.4 }, failureRate: 'increasing', meanLifeHours: 883.8, b10Hours: 532.6,
        replacement: req.url.searchParams.get('failureCost')
          ? { intervalHours: 413.6, costPerHour: 0.0033, runToFailureCostPerHour: 0.0113, saving: 0.706 }
          : null,
        reason: null,
      },
      {
        assetType: 'fan', assets: 1, failures: 1, suspensions: 1, weibull: null, failureRate: null,
        meanLifeHours: null, b10Hours: null, replacement: null,
        reason: '1 failure(s) recorded: at least 2 are needed to fit a failure model',
      },
    ],
  },
});
const stop = (id: string, assetId: string | null, reason: string, seriesId: string | null = null) => ({
  id, tenantId: 't1', assetId, startsAt: '2026-12-05T12:00:00Z', endsAt: '2026-12-05T12:30:00Z', reason,
  createdBy: 'max', createdAt: '2026-12-01T08:00:00Z', seriesId,
});
const routes = {
  'GET /api/v1/reliability': reliability,
  'GET /api/v1/assets': [asset('P1'), asset('Q7', { line: 'L2' })],
  'GET /api/v1/planned-stops': [stop('s-1', null, 'lunch break', 's-0'), stop('s-2', 'id-P1', 'changeover'), stop('s-3', 'id-Q7', 'cleaning')],
  'DELETE /api/v1/planned-stops': () => ({ body: { removed: 4 } }),
  'POST /api/v1/planned-stops': (req: { body: unknown }) => ({ status: 201, body: { stops: [{ ...stop('s-4', null, ''), ...(req.body as object) }] } }),
  'DELETE /api/v1/planned-stops/s-2': () => ({ status: 204 }),
  'GET /api/v1/kpis': (req: { url: URL }) =>
    req.url.searchParams.get('format') === 'csv'
      ? { text: 'assetId,availability\nid-P1,0.975\n' }
      : { body: { from: req.url.searchParams.get('from'), to: req.url.searchParams.get('to'), scope: {}, assets: [kpi('id-P1')], total: kpi() } },
};

describe('KpiPage', () => {
  beforeEach(() => login('manager'));

  it('shows per-asset, total and per-shift KPIs for the chosen period', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes);
    renderWith(services, <KpiPage />);
    const total = await screen.findByTestId('kpi-total');
    expect(total.textContent).toContain('97.5 %');
    expect(total.textContent).toContain('81.0 %');
    expect(total.textContent).toContain('120 h');
    expect(total.textContent).toContain('2.5 h');
    // Quality from the production counts, the units behind it on hover; a shift without
    // counts shows none.
    expect(total.textContent).toContain('88.0 %');
    expect(screen.getAllByTitle('220 good, 30 rejected').length).toBeGreaterThan(0);
    expect(screen.getByTestId('kpi-row').textContent).toContain('88.0 %');
    expect(screen.getAllByTitle('No production counts recorded: OEE assumes quality 1').length).toBeGreaterThan(0);
    expect(screen.getByTestId('kpi-row').textContent).toContain('P1 — Pump P1');
    // Performance per asset and per shift; a shift without a measure says why on hover.
    expect(total.textContent).toContain('80.0 %');
    expect(screen.getByTestId('kpi-row').textContent).toContain('80.0 %');
    expect(screen.getAllByText('75.0 %').length).toBeGreaterThan(0);
    expect(screen.getAllByTitle(/OEE assumes performance 1/).length).toBeGreaterThan(0);
    expect(screen.getByTitle(/mean over the assets whose performance was measured/).textContent).toContain('80.0 %');
    const span = (i: number) => {
      const q = mf.calls.filter((c) => c.url.pathname === '/api/v1/kpis')[i].url.searchParams;
      return Date.parse(q.get('to')!) - Date.parse(q.get('from')!);
    };
    expect(span(0)).toBe(7 * 86400e3);
    await user.click(screen.getByTestId('kpi-period-24h'));
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/kpis').length).toBe(2));
    expect(span(1)).toBe(86400e3);
  });

  it('shows the period\'s planned stops and lets a manager record one for an asset or the plant', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes);
    renderWith(services, <KpiPage />);
    const total = await screen.findByTestId('kpi-total');
    expect(total.textContent).toContain('12.5 h');
    // A shift all in planned stops says why it is 100 % available.
    expect(screen.getAllByTitle('All planned stops: nothing was to be available').length).toBeGreaterThan(0);
    const rows = await screen.findAllByTestId('planned-stop-row');
    expect(rows.map((r) => r.textContent)).toEqual([
      expect.stringContaining('Whole plant'),
      expect.stringContaining('P1'),
      expect.stringContaining('Q7'),
    ]);
    expect(rows[1].textContent).toContain('changeover');
    // The stops of the report's period are asked for.
    const asked = mf.calls.find((c) => c.url.pathname === '/api/v1/planned-stops')!.url.searchParams;
    const kpis = mf.calls.find((c) => c.url.pathname === '/api/v1/kpis')!.url.searchParams;
    expect(asked.get('from')).toBe(kpis.get('from'));
    expect(asked.get('to')).toBe(kpis.get('to'));

    // Checked before it is sent.
    await user.click(screen.getByTestId('planned-stop-save'));
    expect(screen.getByTestId('planned-stop-form-error').textContent).toContain('when it starts and when it ends');
    await user.type(screen.getByTestId('planned-stop-from'), '2026-12-08T12:00');
    await user.type(screen.getByTestId('planned-stop-to'), '2026-12-08T11:00');
    await user.click(screen.getByTestId('planned-stop-save'));
    expect(screen.getByTestId('planned-stop-form-error').textContent).toContain('end after it starts');
    expect(mf.calls.some((c) => c.method === 'POST')).toBe(false);
    await user.clear(screen.getByTestId('planned-stop-to'));
    await user.type(screen.getByTestId('planned-stop-to'), '2026-12-08T12:30');
    await user.selectOptions(screen.getByTestId('planned-stop-who'), 'id-P1');
    await user.type(screen.getByTestId('planned-stop-reason'), ' changeover ');
    await user.click(screen.getByTestId('planned-stop-save'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'POST')).toBe(true));
    expect(mf.calls.find((c) => c.method === 'POST')!.body).toEqual({
      assetId: 'id-P1',
      startsAt: new Date('2026-12-08T12:00').toISOString(),
      endsAt: new Date('2026-12-08T12:30').toISOString(),
      reason: 'changeover',
    });
    // The KPIs are read again with it.
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/kpis').length).toBeGreaterThan(1));

    await user.click(within(screen.getAllByTestId('planned-stop-row')[1]).getByTestId('planned-stop-remove'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'DELETE' && c.url.pathname === '/api/v1/planned-stops/s-2')).toBe(true));
    // A stop of a repetition: it and the later ones go at once; a stop recorded once offers no such thing.
    expect(within(screen.getAllByTestId('planned-stop-row')[1]).queryByTestId('planned-stop-remove-series')).toBeNull();
    // Asked once more first: kept, nothing sent; then removed, and how many said.
    const first = () => within(screen.getAllByTestId('planned-stop-row')[0]);
    await user.click(first().getByTestId('planned-stop-remove-series'));
    expect(first().getByTestId('planned-stop-remove-series-ask').textContent).toContain('1 in this list, and any after it');
    await user.click(first().getByTestId('planned-stop-remove-series-cancel'));
    expect(first().queryByTestId('planned-stop-remove-series-ask')).toBeNull();
    expect(mf.calls.some((c) => c.method === 'DELETE' && c.url.pathname === '/api/v1/planned-stops')).toBe(false);
    await user.click(first().getByTestId('planned-stop-remove-series'));
    await user.click(first().getByTestId('planned-stop-remove-series-confirm'));
    const series = await waitFor(() => mf.calls.find((c) => c.method === 'DELETE' && c.url.pathname === '/api/v1/planned-stops')!);
    expect(Object.fromEntries(series.url.searchParams)).toEqual({ series: 's-0', from: '2026-12-05T12:00:00Z' });
    expect((await screen.findByTestId('planned-stop-removed')).textContent).toBe('4 stops of the repetition removed.');

    // A line chosen: its assets' stops and the plant's.
    await user.selectOptions(screen.getByRole('combobox', { name: /Line/ }), 'L2');
    await waitFor(() => expect(screen.getAllByTestId('planned-stop-row').map((r) => r.textContent)).toEqual([
      expect.stringContaining('Whole plant'),
      expect.stringContaining('Q7'),
    ]));
    // The asset chosen before (P1, of line L1) is no longer offered, nor sent.
    expect((screen.getByTestId('planned-stop-who') as HTMLSelectElement).value).toBe('');
  });

  it('repeats a planned stop on working days or weekly until a date, on this browser\'s clock', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes);
    renderWith(services, <KpiPage />);
    await screen.findAllByTestId('planned-stop-row');
    expect(screen.queryByTestId('planned-stop-until')).toBeNull();
    await user.type(screen.getByTestId('planned-stop-from'), '2026-12-07T12:00');
    await user.type(screen.getByTestId('planned-stop-to'), '2026-12-07T12:30');
    await user.selectOptions(screen.getByTestId('planned-stop-repeat'), 'weekday');
    await user.click(screen.getByTestId('planned-stop-save'));
    expect(screen.getByTestId('planned-stop-form-error').textContent).toContain('when the repetition ends');
    await user.type(screen.getByTestId('planned-stop-until'), '2026-12-07T00:00');
    await user.click(screen.getByTestId('planned-stop-save'));
    expect(screen.getByTestId('planned-stop-form-error').textContent).toContain('after the first start');
    expect(mf.calls.some((c) => c.method === 'POST')).toBe(false);
    await user.clear(screen.getByTestId('planned-stop-until'));
    await user.type(screen.getByTestId('planned-stop-until'), '2027-01-01T00:00');
    await user.click(screen.getByTestId('planned-stop-save'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'POST')).toBe(true));
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    expect(mf.calls.find((c) => c.method === 'POST')!.body).toEqual({
      assetId: null,
      startsAt: new Date('2026-12-07T12:00').toISOString(),
      endsAt: new Date('2026-12-07T12:30').toISOString(),
      reason: '',
      repeat: { days: ['MON', 'TUE', 'WED', 'THU', 'FRI'], until: new Date('2027-01-01T00:00').toISOString(), timeZone: zone },
    });
    // The form is back to a single stop.
    expect((screen.getByTestId('planned-stop-repeat') as HTMLSelectElement).value).toBe('');
    expect(screen.queryByTestId('planned-stop-until')).toBeNull();
    // Weekly: on the first start's day (7 December 2026 is a Monday).
    await user.type(screen.getByTestId('planned-stop-from'), '2026-12-09T06:00');
    await user.type(screen.getByTestId('planned-stop-to'), '2026-12-09T07:00');
    await user.selectOptions(screen.getByTestId('planned-stop-repeat'), 'week');
    await user.type(screen.getByTestId('planned-stop-until'), '2027-02-01T00:00');
    await user.click(screen.getByTestId('planned-stop-save'));
    await waitFor(() => expect(mf.calls.filter((c) => c.method === 'POST').length).toBe(2));
    expect((mf.calls.filter((c) => c.method === 'POST')[1].body as { repeat: { days: string[] } }).repeat.days).toEqual(['WED']);
  });

  it('exports CSV through fetch with the bearer token', async () => {
    const user = userEvent.setup();
    const createObjectURL = vi.fn(() => 'blob:x');
    URL.createObjectURL = createObjectURL;
    URL.revokeObjectURL = vi.fn();
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(() => undefined);
    const { services, mf } = setup(routes);
    renderWith(services, <KpiPage />);
    await screen.findByTestId('kpi-total');
    await user.click(screen.getByTestId('kpi-export'));
    await waitFor(() => expect(click).toHaveBeenCalled());
    const call = mf.calls.find((c) => c.url.searchParams.get('format') === 'csv')!;
    expect(call.headers.Authorization).toBe('Bearer tok-123');
    expect(createObjectURL).toHaveBeenCalled();
    click.mockRestore();
  });

  it('shows each asset type\'s life model and replacement interval for the costs given', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes);
    renderWith(services, <KpiPage />);
    const rows = await screen.findAllByTestId('reliability-row');
    expect(rows[0].textContent).toContain('pump');
    expect(rows[0].textContent).toContain('3.69 (wear-out)');
    expect(rows[0].textContent).toContain('884 h');
    expect(rows[0].textContent).toContain('414 h');
    expect(rows[0].textContent).toContain('70.6 %');
    expect(rows[1].textContent).toContain('at least 2 are needed');
    expect(screen.queryByTestId('reliability-rough')).toBeNull();
    const asked = () => mf.calls.filter((c) => c.url.pathname === '/api/v1/reliability').map((c) => c.url.searchParams);
    expect(asked()[0].get('preventiveCost')).toBe('1');
    expect(asked()[0].get('failureCost')).toBe('5');
    // Costs that make no sense are not sent: the model alone is asked for.
    await user.clear(screen.getByTestId('reliability-failure'));
    await user.type(screen.getByTestId('reliability-failure'), '0.5');
    await waitFor(() => expect(asked().at(-1)?.get('failureCost')).toBeNull());
    expect(screen.getByTestId('reliability').textContent).toContain('must cost more');
  });
});
