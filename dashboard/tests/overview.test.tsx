import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { OverviewPage } from '../src/pages/OverviewPage';
import { alert, health, login, renderWith, setup } from './helpers';

const data = [
  health('P1', 'OK', { line: 'L1', criticality: 'LOW' }),
  health('P2', 'CRITICAL', { line: 'L1', criticality: 'CRITICAL' }),
  health('P3', 'WARNING', { line: 'L2', criticality: 'HIGH' }),
  health('P4', 'UNKNOWN', { line: 'L2', criticality: 'HIGH' }),
];

describe('OverviewPage', () => {
  beforeEach(() => login('operator'));

  it('renders one tile per asset coloured by status, worst first', async () => {
    const { services } = setup({ 'GET /api/v1/overview': data });
    renderWith(services, <OverviewPage />);
    const tiles = await screen.findAllByTestId('asset-tile');
    expect(tiles.map((t) => t.getAttribute('data-asset-code'))).toEqual(['P2', 'P3', 'P4', 'P1']);
    const byCode = (c: string) => tiles.find((t) => t.getAttribute('data-asset-code') === c)!;
    expect(byCode('P2').className).toContain('status-critical');
    expect(byCode('P2').getAttribute('data-status')).toBe('CRITICAL');
    expect(byCode('P2').style.borderColor).toBe('var(--crit)');
    expect(byCode('P1').style.borderColor).toBe('var(--ok)');
    expect(byCode('P3').style.borderColor).toBe('var(--warn)');
    expect(byCode('P4').style.borderColor).toBe('var(--unknown)');
    expect(byCode('P1').getAttribute('href')).toBe('#/assets/id-P1');
    expect(within(byCode('P1')).getByText('0.40 / 0.80')).toBeTruthy();
    expect(screen.getByTestId('count-CRITICAL').textContent).toBe('CRITICAL 1');
  });

  it('filters by line, criticality and status', async () => {
    const user = userEvent.setup();
    const { services } = setup({ 'GET /api/v1/overview': data });
    renderWith(services, <OverviewPage />);
    await screen.findAllByTestId('asset-tile');
    const codes = () => screen.queryAllByTestId('asset-tile').map((t) => t.getAttribute('data-asset-code'));

    await user.selectOptions(screen.getByTestId('filter-line'), 'L2');
    expect(codes()).toEqual(['P3', 'P4']);
    await user.selectOptions(screen.getByTestId('filter-status'), 'WARNING');
    expect(codes()).toEqual(['P3']);
    await user.selectOptions(screen.getByTestId('filter-line'), '');
    await user.selectOptions(screen.getByTestId('filter-status'), '');
    await user.selectOptions(screen.getByTestId('filter-criticality'), 'CRITICAL');
    expect(codes()).toEqual(['P2']);
    await user.selectOptions(screen.getByTestId('filter-status'), 'OK');
    expect(codes()).toEqual([]);
    expect(screen.getByText('No asset matches the filters.')).toBeTruthy();
  });

  it('refreshes when a live alert arrives and subscribes to alerts and work orders', async () => {
    let n = 0;
    const { services, sf } = setup({
      'GET /api/v1/overview': () => {
        n++;
        return { body: n === 1 ? data : data.map((h) => (h.asset.code === 'P1' ? { ...h, status: 'CRITICAL' } : h)) };
      },
    });
    services.live.connect();
    sf.last().open();
    renderWith(services, <OverviewPage />);
    await screen.findAllByTestId('asset-tile');
    expect(sf.last().sent).toEqual(
      expect.arrayContaining([
        { type: 'subscribe', channel: 'alerts' },
        { type: 'subscribe', channel: 'workOrders' },
      ]),
    );
    sf.last().push({ type: 'alert', data: alert('new', { assetId: 'id-P1', severity: 'CRITICAL' }) });
    await waitFor(() => {
      const p1 = screen.getAllByTestId('asset-tile').find((t) => t.getAttribute('data-asset-code') === 'P1')!;
      expect(p1.getAttribute('data-status')).toBe('CRITICAL');
    });
    expect(n).toBe(2);
  });

  it('shows the problem detail when the overview fails', async () => {
    const { services } = setup({
      'GET /api/v1/overview': () => ({ status: 500, body: { title: 'Internal', status: 500, detail: 'database unavailable' } }),
    });
    renderWith(services, <OverviewPage />);
    expect((await screen.findByTestId('error')).textContent).toContain('database unavailable');
  });
});
