import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { KpiPage } from '../src/pages/KpiPage';
import { asset, login, renderWith, setup } from './helpers';

const kpi = (assetId?: string) => ({
  assetId, availability: 0.975, mtbfHours: 120, mttrHours: 2.5, failures: 3, downtimeHours: 7.5, oee: 0.81,
  shifts: [{ shift: 'A', hours: 56, availability: 0.99, oee: 0.85 }],
});
const routes = {
  'GET /api/v1/assets': [asset('P1')],
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
    expect(screen.getByTestId('kpi-row').textContent).toContain('P1 — Pump P1');
    const span = (i: number) => {
      const q = mf.calls.filter((c) => c.url.pathname === '/api/v1/kpis')[i].url.searchParams;
      return Date.parse(q.get('to')!) - Date.parse(q.get('from')!);
    };
    expect(span(0)).toBe(7 * 86400e3);
    await user.click(screen.getByTestId('kpi-period-24h'));
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/kpis').length).toBe(2));
    expect(span(1)).toBe(86400e3);
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
});
