import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from '../src/App';
import { getSession, resetSessionCache } from '../src/api/session';
import { health, login, renderWith, setup } from './helpers';

describe('login and 401 handling', () => {
  beforeEach(() => {
    sessionStorage.clear();
    localStorage.clear();
    resetSessionCache();
    location.hash = '#/overview';
  });

  it('redirects to login when there is no session, logs in and stores the token in sessionStorage', async () => {
    const user = userEvent.setup();
    const { services, mf, sf } = setup({
      'POST /api/v1/auth/login': (req: { body: unknown }) =>
        (req.body as { password: string }).password === 'secret'
          ? { body: { token: 'jwt-1', expiresAt: '2099-01-01T00:00:00.000Z', user: { username: 'op', displayName: 'Op', role: 'operator', tenantId: 't' } } }
          : { status: 401, body: { title: 'Unauthorized', status: 401, detail: 'wrong username or password' } },
      'GET /api/v1/overview': [health('P1', 'OK')],
    });
    renderWith(services, <App services={services} />);
    await waitFor(() => expect(location.hash).toBe('#/login'));
    await user.type(screen.getByTestId('login-username'), 'op');
    await user.type(screen.getByTestId('login-password'), 'nope');
    await user.click(screen.getByTestId('login-submit'));
    expect((await screen.findByTestId('error')).textContent).toContain('wrong username or password');

    await user.clear(screen.getByTestId('login-password'));
    await user.type(screen.getByTestId('login-password'), 'secret');
    await user.click(screen.getByTestId('login-submit'));
    await screen.findAllByTestId('asset-tile');
    expect(location.hash).toBe('#/overview');
    expect(JSON.parse(sessionStorage.getItem('mantis.session')!).token).toBe('jwt-1');
    expect(mf.calls.find((c) => c.url.pathname === '/api/v1/overview')!.headers.Authorization).toBe('Bearer jwt-1');
    // the live client connects with the token, offered as a subprotocol (not in the URL)
    await waitFor(() => expect(sf.sockets.length).toBe(1));
    expect(sf.last().url).toBe('ws://localhost/ws');
    expect(sf.last().protocols).toEqual(['mantis.v1', 'bearer.jwt-1']);
  });

  it('goes back to login on a 401 anywhere', async () => {
    login('manager');
    const { services } = setup({
      'GET /api/v1/overview': () => ({ status: 401, body: { title: 'Unauthorized', status: 401, detail: 'token expired' } }),
    });
    renderWith(services, <App services={services} />);
    await screen.findByTestId('login-form');
    expect(location.hash).toBe('#/login');
    expect(getSession()).toBeNull();
    expect(sessionStorage.getItem('mantis.session')).toBeNull();
  });

  it('goes back to login when the WebSocket closes with 4401', async () => {
    login('manager');
    const { services, sf } = setup({ 'GET /api/v1/overview': [health('P1', 'OK')] });
    renderWith(services, <App services={services} />);
    await screen.findAllByTestId('asset-tile');
    await waitFor(() => expect(sf.sockets.length).toBe(1));
    sf.last().open();
    sf.last().drop(4401);
    await screen.findByTestId('login-form');
    expect(getSession()).toBeNull();
  });

  it('hides pages actions by role: operator has no KPI export', async () => {
    login('operator');
    location.hash = '#/kpis';
    const { services } = setup({
      'GET /api/v1/kpis': { from: 'a', to: 'b', scope: {}, assets: [], total: { availability: 0.9, mtbfHours: 10, mttrHours: 1, failures: 1, downtimeHours: 1, oee: 0.8, shifts: [] } },
      'GET /api/v1/assets': [],
    });
    renderWith(services, <App services={services} />);
    await screen.findByTestId('kpi-total');
    expect(screen.queryByTestId('kpi-export')).toBeNull();
  });
});

describe('expired token at the WebSocket upgrade', () => {
  it('probes /auth/me when the socket fails and goes to login on 401', async () => {
    sessionStorage.clear();
    resetSessionCache();
    login('operator');
    location.hash = '#/overview';
    let meCalls = 0;
    const { services, sf } = setup({
      'GET /api/v1/overview': [health('P1', 'OK')],
      'GET /api/v1/auth/me': () => {
        meCalls++;
        return { status: 401, body: { title: 'Unauthorized', status: 401, detail: 'token expired' } };
      },
    });
    renderWith(services, <App services={services} />);
    await screen.findAllByTestId('asset-tile');
    await waitFor(() => expect(sf.sockets.length).toBe(1));
    sf.last().drop(1006); // refused before the upgrade: no 4401 close code
    await screen.findByTestId('login-form');
    expect(meCalls).toBe(1);
    expect(getSession()).toBeNull();
  });
});
