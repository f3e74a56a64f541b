import { screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { App } from '../src/App';
import { alert, asset, health, login, renderWith, setup } from './helpers';

const routes = {
  'GET /api/v1/overview': [health('P1', 'OK'), health('P2', 'WARNING')],
  'GET /api/v1/alerts': [alert('a1', { message: 'vibration high' })],
  'GET /api/v1/assets': [asset('P1'), asset('P2')],
};

describe('kiosk mode', () => {
  beforeEach(() => {
    login('operator');
    localStorage.clear();
    location.hash = '#/kiosk';
  });
  afterEach(() => {
    localStorage.clear();
    document.documentElement.className = '';
  });

  it('shows overview + alerts in the dark theme with no other pages', async () => {
    const { services } = setup(routes);
    renderWith(services, <App services={services} />);
    expect(await screen.findByTestId('kiosk-page')).toBeTruthy();
    await screen.findAllByTestId('asset-tile');
    await screen.findAllByTestId('alert-row');
    expect(document.documentElement.dataset.theme).toBe('dark');
    expect(document.documentElement.classList.contains('kiosk')).toBe(true);
    expect(screen.queryByTestId('nav-work-orders')).toBeNull();
    expect(screen.queryByTestId('nav-kpis')).toBeNull();
    expect(localStorage.getItem('mantis.kiosk')).toBe('1');
  });

  it('shows the OFFLINE banner when the live connection drops, keeps the last data, and recovers', async () => {
    const { services, sf } = setup(routes);
    renderWith(services, <App services={services} />);
    await screen.findAllByTestId('asset-tile');
    await waitFor(() => expect(sf.sockets.length).toBe(1));
    sf.last().open();
    expect(screen.queryByTestId('offline-banner')).toBeNull();

    sf.last().drop();
    const banner = await screen.findByTestId('offline-banner');
    expect(banner.textContent).toMatch(/^OFFLINE — last update \d\d:\d\d:\d\d/);
    // last known state still on screen
    expect(screen.getAllByTestId('asset-tile')).toHaveLength(2);
    expect(screen.getAllByTestId('alert-row')).toHaveLength(1);

    // it reconnects by itself (1 s back-off), re-subscribes, and the banner goes away
    await waitFor(() => expect(sf.sockets.length).toBe(2), { timeout: 2500 });
    sf.last().open();
    expect(sf.last().sent).toEqual(
      expect.arrayContaining([
        { type: 'subscribe', channel: 'alerts' },
        { type: 'subscribe', channel: 'workOrders' },
      ]),
    );
    await waitFor(() => expect(screen.queryByTestId('offline-banner')).toBeNull());
  });

  it('shows the banner when HTTP fails and keeps the tiles', async () => {
    const { services, sf, mf } = setup(routes);
    renderWith(services, <App services={services} />);
    await screen.findAllByTestId('asset-tile');
    await waitFor(() => expect(sf.sockets.length).toBe(1));
    sf.last().open();
    mf.down = true;
    // a live message makes the overview refetch: that fetch fails
    sf.last().push({ type: 'workOrder', data: { id: 'w', assetId: 'id-P1' } });
    expect((await screen.findByTestId('offline-banner')).textContent).toContain('OFFLINE — last update');
    expect(screen.getAllByTestId('asset-tile')).toHaveLength(2);
  });
});
