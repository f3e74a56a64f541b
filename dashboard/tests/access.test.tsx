import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from '../src/App';
import { getSession, setSession } from '../src/api/session';
import type { Account, ApiKey } from '../src/api/types';
import { AccessPage } from '../src/pages/AccessPage';
import { AccountPage } from '../src/pages/AccountPage';
import { health, login, renderWith, setup } from './helpers';

const problem = (status: number, detail: string, pointer?: string) => ({
  status,
  body: { title: 'Bad Request', status, detail, ...(pointer ? { errors: [{ pointer, detail }] } : {}) },
});

describe('AccountPage', () => {
  beforeEach(() => login('operator', 'tom'));

  it('changes the password after checking it here, and goes on with the new token', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup({
      'POST /api/v1/auth/password': (req: { body: unknown }) => {
        const b = req.body as { currentPassword: string; newPassword: string };
        return b.currentPassword === 'old password!'
          ? { body: { token: 'tok-new', expiresAt: '2099-01-01T00:00:00.000Z', user: { username: 'tom', displayName: 'Tom', role: 'operator', tenantId: 't1' } } }
          : problem(400, 'the current password is wrong', '/currentPassword');
      },
    });
    renderWith(services, <AccountPage />);
    expect(screen.getByTestId('account-who').textContent).toContain('tom, operator');

    await user.click(screen.getByTestId('password-save'));
    expect(screen.getByTestId('password-form-error').textContent).toContain('current password');
    await user.type(screen.getByTestId('password-current'), 'wrong one!!');
    await user.type(screen.getByTestId('password-new'), 'short');
    await user.click(screen.getByTestId('password-save'));
    expect(screen.getByTestId('password-form-error').textContent).toContain('at least 10');
    await user.clear(screen.getByTestId('password-new'));
    await user.type(screen.getByTestId('password-new'), 'a brand new password');
    await user.type(screen.getByTestId('password-again'), 'a brand new passwort');
    await user.click(screen.getByTestId('password-save'));
    expect(screen.getByTestId('password-form-error').textContent).toContain('differ');
    expect(mf.calls).toHaveLength(0);

    // A wrong current password is told, and the session goes on.
    await user.clear(screen.getByTestId('password-again'));
    await user.type(screen.getByTestId('password-again'), 'a brand new password');
    await user.click(screen.getByTestId('password-save'));
    expect((await screen.findByTestId('error')).textContent).toContain('the current password is wrong');
    expect(getSession()?.token).toBe('tok-123');

    await user.clear(screen.getByTestId('password-current'));
    await user.type(screen.getByTestId('password-current'), 'old password!');
    await user.click(screen.getByTestId('password-save'));
    await screen.findByTestId('account-changed');
    expect(mf.calls.at(-1)!.body).toEqual({ currentPassword: 'old password!', newPassword: 'a brand new password' });
    expect(getSession()?.token).toBe('tok-new');
    expect((screen.getByTestId('password-current') as HTMLInputElement).value).toBe('');
  });
});

const users: Account[] = [
  { username: 'alice', displayName: 'Alice', role: 'admin', tenantId: 't1', disabled: false, createdAt: '2026-12-01T00:00:00Z' },
  { username: 'tom', displayName: 'Tom', role: 'operator', tenantId: 't1', disabled: false, createdAt: '2026-12-02T00:00:00Z' },
  { username: 'old', displayName: 'Old', role: 'technician', tenantId: 't1', disabled: true, createdAt: '2026-11-02T00:00:00Z' },
];

const keys: ApiKey[] = [
  { id: 'k1', tenantId: 't1', name: 'line-2 PLC', prefix: 'mk_ab12', role: 'technician', createdAt: '2026-12-01T00:00:00Z', revokedAt: null },
  { id: 'k2', tenantId: 't1', name: 'old script', prefix: 'mk_cd34', role: 'operator', createdAt: '2026-11-01T00:00:00Z', revokedAt: '2026-11-20T00:00:00Z' },
];

const routes = () => ({
  'GET /api/v1/users': users,
  'POST /api/v1/users': (req: { body: unknown }) => ({ status: 201, body: { ...(req.body as object), tenantId: 't1', disabled: false, createdAt: '2026-12-06T00:00:00Z' } }),
  'PATCH /api/v1/users/tom': (req: { body: unknown }) => ({ body: { ...users[1], ...(req.body as object) } }),
  'PATCH /api/v1/users/old': (req: { body: unknown }) => ({ body: { ...users[2], ...(req.body as object) } }),
  'GET /api/v1/api-keys': keys,
  'POST /api/v1/api-keys': (req: { body: unknown }) => ({
    status: 201,
    body: { id: 'k3', tenantId: 't1', prefix: 'mk_ef56', createdAt: '2026-12-06T00:00:00Z', revokedAt: null, key: 'mk_ef56.secret-part', ...(req.body as object) },
  }),
  'DELETE /api/v1/api-keys/k1': () => ({ status: 204 }),
});

describe('a new token of the session', () => {
  it('opens the live socket again with it, subscriptions kept, and not again for the same token', () => {
    login('operator', 'tom');
    const { services, sf } = setup({});
    services.live.connect();
    services.live.subscribe('alerts');
    expect(sf.sockets).toHaveLength(1);
    sf.last().open();
    expect(sf.last().protocols).toContain('bearer.tok-123');
    setSession({ token: 'tok-new', expiresAt: '2099-01-01T00:00:00.000Z', user: { username: 'tom', displayName: 'Tom', role: 'operator', tenantId: 't1' } });
    expect(sf.sockets).toHaveLength(2);
    expect(sf.sockets[0].closedWith).toBe(1000);
    expect(sf.last().protocols).toContain('bearer.tok-new');
    sf.last().open();
    expect(sf.last().sent).toContainEqual({ type: 'subscribe', channel: 'alerts' });
    // A request sent with the old token and refused after the change does not end the session.
    // (Checked below with the API client.)
    // The same token again (a re-render, another tab's write): no new socket.
    setSession({ token: 'tok-new', expiresAt: '2099-01-01T00:00:00.000Z', user: { username: 'tom', displayName: 'Tom', role: 'operator', tenantId: 't1' } });
    expect(sf.sockets).toHaveLength(2);
    services.live.close();
  });

  it('a role changed under the live socket (4403) is read again into the session, still logged in', async () => {
    login('operator', 'tom');
    const { services, sf } = setup({
      'GET /api/v1/auth/me': { username: 'tom', displayName: 'Tom', role: 'manager', tenantId: 't1' },
    });
    services.live.connect();
    sf.last().open();
    sf.last().drop(4403);
    await waitFor(() => expect(getSession()?.user.role).toBe('manager'));
    expect(getSession()?.token).toBe('tok-123');
    expect(sf.sockets).toHaveLength(2);
    services.live.close();
  });

  it('a 401 for the token it replaced does not log out; one for the current token does', async () => {
    login('operator', 'tom');
    const renewed = { token: 'tok-new', expiresAt: '2099-01-01T00:00:00.000Z', user: { username: 'tom', displayName: 'Tom', role: 'operator' as const, tenantId: 't1' } };
    const { services } = setup({
      // Sent with the old token; the password is changed (a new token stored) before it is answered.
      'GET /api/v1/alerts': () => {
        setSession(renewed);
        return problem(401, 'token no longer valid');
      },
      'GET /api/v1/overview': () => problem(401, 'token expired'),
    });
    await expect(services.api.alerts({})).rejects.toThrow();
    expect(getSession()?.token).toBe('tok-new');
    await expect(services.api.overview()).rejects.toThrow();
    expect(getSession()).toBeNull();
  });
});

describe('AccessPage', () => {
  beforeEach(() => login('admin', 'alice'));

  it('lists the users and lets an admin add one, change a role, disable, enable and set a password', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <AccessPage />);
    const rows = await screen.findAllByTestId('user-row');
    expect(rows).toHaveLength(3);
    expect(rows[2].textContent).toContain('disabled');
    // An admin cannot demote or disable themselves.
    expect((within(rows[0]).getByTestId('user-role') as HTMLSelectElement).disabled).toBe(true);
    expect(within(rows[0]).queryByTestId('user-toggle')).toBeNull();
    // Nor set their own password here (it would end this session): the account page does.
    expect(within(rows[0]).queryByTestId('user-reset')).toBeNull();
    expect(within(rows[0]).getByTestId('user-own-account').getAttribute('href')).toBe('#/account');

    await user.type(screen.getByTestId('user-name'), 'bad name');
    await user.click(screen.getByTestId('user-save'));
    expect(screen.getByTestId('user-form-error').textContent).toContain('2 to 64 letters');
    await user.clear(screen.getByTestId('user-name'));
    await user.type(screen.getByTestId('user-name'), 'ana');
    await user.type(screen.getByTestId('user-password'), 'too short');
    await user.click(screen.getByTestId('user-save'));
    expect(screen.getByTestId('user-form-error').textContent).toContain('at least 10');
    expect(mf.calls.some((c) => c.method !== 'GET')).toBe(false);
    await user.type(screen.getByTestId('user-password'), '!!');
    await user.type(screen.getByTestId('user-display'), ' Ana ');
    await user.selectOptions(screen.getByTestId('user-new-role'), 'technician');
    await user.click(screen.getByTestId('user-save'));
    expect((await screen.findByTestId('users-notice')).textContent).toContain('User ana created');
    expect(mf.calls.find((c) => c.method === 'POST')!.body).toEqual({ username: 'ana', displayName: 'Ana', role: 'technician', password: 'too short!!' });

    // A role is saved when asked, not on every choice in the list.
    await user.selectOptions(within(rows[1]).getByTestId('user-role'), 'technician');
    await user.selectOptions(within(rows[1]).getByTestId('user-role'), 'manager');
    expect(mf.calls.some((c) => c.method === 'PATCH')).toBe(false);
    await user.click(within(rows[1]).getByTestId('user-role-save'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'PATCH')).toBe(true));
    expect(mf.calls.filter((c) => c.method === 'PATCH')).toHaveLength(1);
    expect(mf.calls.find((c) => c.method === 'PATCH')!.body).toEqual({ role: 'manager' });
    await user.click(within(rows[1]).getByTestId('user-toggle'));
    await user.click(within(rows[2]).getByTestId('user-toggle'));
    await waitFor(() => expect(mf.calls.filter((c) => c.method === 'PATCH')).toHaveLength(3));
    const patches = mf.calls.filter((c) => c.method === 'PATCH');
    expect(patches[1].url.pathname).toBe('/api/v1/users/tom');
    expect(patches[1].body).toEqual({ disabled: true });
    expect(patches[2].url.pathname).toBe('/api/v1/users/old');
    expect(patches[2].body).toEqual({ disabled: false });

    await user.click(within(rows[1]).getByTestId('user-reset'));
    await user.type(within(rows[1]).getByTestId('user-reset-password'), 'short');
    await user.click(within(rows[1]).getByTestId('user-reset-save'));
    expect(within(rows[1]).getByTestId('user-reset-error').textContent).toContain('At least 10');
    await user.type(within(rows[1]).getByTestId('user-reset-password'), ' and longer');
    await user.click(within(rows[1]).getByTestId('user-reset-save'));
    expect((await screen.findByTestId('users-notice')).textContent).toContain('Password of tom set');
    expect(mf.calls.filter((c) => c.method === 'PATCH').at(-1)!.body).toEqual({ password: 'short and longer' });
  });

  it('creates an API key, shows it once, and revokes one', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <AccessPage />);
    const rows = await screen.findAllByTestId('key-row');
    expect(rows).toHaveLength(2);
    expect(rows[1].textContent).toContain('revoked');
    expect(within(rows[1]).queryByTestId('key-revoke')).toBeNull();

    await user.click(screen.getByTestId('key-save'));
    expect(screen.getByTestId('key-form-error').textContent).toContain('what the key is for');
    await user.type(screen.getByTestId('key-name'), 'line-3 PLC');
    await user.selectOptions(screen.getByTestId('key-role'), 'operator');
    await user.click(screen.getByTestId('key-save'));
    expect((await screen.findByTestId('key-secret')).textContent).toBe('mk_ef56.secret-part');
    // user-event gives the page a clipboard: the key is on it.
    await user.click(screen.getByTestId('key-copy'));
    expect((await screen.findByTestId('key-copied')).textContent).toContain('Copied.');
    expect(await navigator.clipboard.readText()).toBe('mk_ef56.secret-part');
    // Without one (plain HTTP), the key is selected for copying by hand.
    const clipboard = Object.getOwnPropertyDescriptor(navigator, 'clipboard');
    Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true });
    try {
      await user.click(screen.getByTestId('key-copy'));
      await waitFor(() => expect(screen.getByTestId('key-copied').textContent).toContain('Selected'));
      expect(window.getSelection()?.toString()).toBe('mk_ef56.secret-part');
    } finally {
      if (clipboard) Object.defineProperty(navigator, 'clipboard', clipboard);
    }
    expect(mf.calls.find((c) => c.method === 'POST')!.body).toEqual({ name: 'line-3 PLC', role: 'operator' });
    await user.click(screen.getByTestId('key-dismiss'));
    expect(screen.queryByTestId('key-secret')).toBeNull();

    await user.click(within(rows[0]).getByTestId('key-revoke'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'DELETE' && c.url.pathname === '/api/v1/api-keys/k1')).toBe(true));
  });
});

describe('navigation to access and account', () => {
  it('shows Access to admins only; everyone reaches their account from their name', async () => {
    location.hash = '#/overview';
    login('manager', 'max');
    const { services } = setup({ 'GET /api/v1/overview': [health('P1', 'OK')] });
    const { unmount } = renderWith(services, <App services={services} />);
    await screen.findAllByTestId('asset-tile');
    expect(screen.queryByTestId('nav-access')).toBeNull();
    expect(screen.getByTestId('nav-account').getAttribute('href')).toBe('#/account');
    unmount();

    login('admin', 'alice');
    const admin = setup({ 'GET /api/v1/overview': [health('P1', 'OK')], ...routes() });
    renderWith(admin.services, <App services={admin.services} />);
    await screen.findAllByTestId('asset-tile');
    location.hash = '#/access';
    window.dispatchEvent(new HashChangeEvent('hashchange'));
    await screen.findAllByTestId('user-row');
  });
});
