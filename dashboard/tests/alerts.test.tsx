import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { AlertsPage } from '../src/pages/AlertsPage';
import { alert, asset, login, renderWith, setup } from './helpers';

const beepMock = vi.hoisted(() => vi.fn(() => true));
vi.mock('../src/components/beep', () => ({ beep: beepMock, isMuted: () => false, setMuted: () => undefined }));

function routes(initial = [alert('a1', { message: 'vibration high' })]) {
  return {
    'GET /api/v1/alerts': initial,
    'GET /api/v1/assets': [asset('P1')],
    'POST /api/v1/alerts/a1/acknowledge': () => ({
      body: { ...initial[0], acknowledgedBy: 'alice', acknowledgedAt: '2026-12-03T08:00:00.000Z' },
    }),
    'POST /api/v1/alerts/live1/acknowledge': () => ({
      body: alert('live1', { severity: 'CRITICAL', acknowledgedBy: 'alice', acknowledgedAt: '2026-12-03T08:00:00.000Z' }),
    }),
    'POST /api/v1/alerts/a1/assign': (req: { body: unknown }) => ({
      body: { ...initial[0], assignee: (req.body as { assignee: string }).assignee },
    }),
  };
}

describe('AlertsPage', () => {
  beforeEach(() => {
    beepMock.mockClear();
    login('operator');
  });

  it('lists open alerts with a link to the asset', async () => {
    const { services, mf } = setup(routes());
    renderWith(services, <AlertsPage />);
    const rows = await screen.findAllByTestId('alert-row');
    expect(rows).toHaveLength(1);
    expect(mf.calls.find((c) => c.url.pathname === '/api/v1/alerts')!.url.searchParams.get('state')).toBe('open');
    const link = await within(rows[0]).findByText('P1 — Pump P1');
    expect(link.getAttribute('href')).toBe('#/assets/id-P1');
  });

  it('prepends a live alert, beeps and flashes for CRITICAL, and acknowledges it', async () => {
    const user = userEvent.setup();
    const { services, sf, mf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    expect(sf.last().sent).toContainEqual({ type: 'subscribe', channel: 'alerts' });

    sf.last().push({ type: 'alert', data: alert('live1', { severity: 'CRITICAL', message: 'bearing temperature critical' }) });
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(2));
    const rows = screen.getAllByTestId('alert-row');
    expect(rows[0].getAttribute('data-alert-id')).toBe('live1');
    expect(rows[0].className).toContain('fresh');
    expect(rows[0].getAttribute('data-live')).toBe('true');
    expect(rows[1].getAttribute('data-live')).toBe('false');
    expect(beepMock).toHaveBeenCalledTimes(1);
    expect(screen.getByTestId('alerts-page').getAttribute('data-flash')).toBe('true');

    // The same alert again (e.g. re-sent after a reconnect) is not duplicated nor re-beeped.
    sf.last().push({ type: 'alert', data: alert('live1', { severity: 'CRITICAL', message: 'bearing temperature critical' }) });
    expect(screen.getAllByTestId('alert-row')).toHaveLength(2);
    expect(beepMock).toHaveBeenCalledTimes(1);

    await user.click(within(rows[0]).getByTestId('ack-button'));
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(1)); // open filter: it leaves
    expect(mf.calls.some((c) => c.method === 'POST' && c.url.pathname === '/api/v1/alerts/live1/acknowledge')).toBe(true);
    expect(screen.getAllByTestId('alert-row')[0].getAttribute('data-alert-id')).toBe('a1');
  });

  it('after a reconnect, reloads and alarms for a CRITICAL alert raised while it was down', async () => {
    const list = [alert('a1', { message: 'vibration high' })];
    const { services, sf } = setup({ ...routes(), 'GET /api/v1/alerts': () => ({ body: list }) });
    services.live.connect();
    sf.last().open();
    renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    expect(beepMock).not.toHaveBeenCalled();
    sf.last().drop();
    list.unshift(alert('missed', { severity: 'CRITICAL', message: 'bearing temperature critical', createdAt: '2026-12-03T09:00:00.000Z' }));
    // An older one coming into the list (another acknowledged at the list's limit) is no news.
    list.push(alert('older', { severity: 'CRITICAL', message: 'old', createdAt: '2026-12-03T06:00:00.000Z' }));
    await act(async () => {
      await new Promise((r) => setTimeout(r, 1100));
    });
    sf.last().open();
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(3));
    const row = screen.getAllByTestId('alert-row').find((r) => r.getAttribute('data-alert-id') === 'missed')!;
    expect(row.className).toContain('fresh');
    const older = screen.getAllByTestId('alert-row').find((r) => r.getAttribute('data-alert-id') === 'older')!;
    expect(older.className).not.toContain('fresh');
    expect(beepMock).toHaveBeenCalledTimes(1);
    expect(screen.getByTestId('alerts-page').getAttribute('data-flash')).toBe('true');
  });

  it('does not beep for a non-critical live alert', async () => {
    const { services, sf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    sf.last().push({ type: 'alert', data: alert('live2', { severity: 'MEDIUM' }) });
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(2));
    expect(beepMock).not.toHaveBeenCalled();
  });

  it('never alarms for a change of an alert it does not list, and shows it where it belongs', async () => {
    const { services, sf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    // An open critical alert, assigned elsewhere: listed in its place, not news.
    sf.last().push({ type: 'alert', data: alert('old1', { severity: 'CRITICAL', assignee: 'tom', changedAt: '2026-12-03T09:00:00.000Z' }) });
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(2));
    expect(beepMock).not.toHaveBeenCalled();
    // Acknowledged elsewhere before its raise reached this page: the raise that follows takes
    // the later state, neither listed as open nor alarming.
    sf.last().push({
      type: 'alert',
      data: alert('race1', { severity: 'CRITICAL', acknowledgedBy: 'ana', acknowledgedAt: '2026-12-03T09:00:01.000Z', changedAt: '2026-12-03T09:00:01.000Z' }),
    });
    sf.last().push({ type: 'alert', data: alert('race1', { severity: 'CRITICAL' }) });
    // A new one, raised: listed and alarming.
    sf.last().push({ type: 'alert', data: alert('live3', { severity: 'CRITICAL' }) });
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(3));
    expect(beepMock).toHaveBeenCalledTimes(1);
  });

  it('marks an alert for the on-call technician and beeps for it whatever its severity', async () => {
    const { services, sf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    expect(screen.queryByTestId('on-call-badge')).toBeNull();
    sf.last().push({ type: 'alert', data: alert('live3', { severity: 'MEDIUM', notifyOnCall: true }) });
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(2));
    const row = screen.getAllByTestId('alert-row')[0];
    expect(within(row).getByTestId('on-call-badge').textContent).toBe('on call');
    expect(beepMock).toHaveBeenCalledTimes(1);
  });

  it('shows acknowledged alerts in the "all" filter with who acknowledged', async () => {
    const user = userEvent.setup();
    const { services } = setup({
      ...routes(),
      'GET /api/v1/alerts': (req: { url: URL }) => ({
        body:
          req.url.searchParams.get('state') === 'all'
            ? [alert('a1'), alert('a0', { acknowledgedBy: 'bob', acknowledgedAt: '2026-12-03T08:00:00.000Z' })]
            : [alert('a1')],
      }),
    });
    renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    await user.click(screen.getByTestId('alerts-filter-all'));
    await waitFor(() => expect(screen.getAllByTestId('alert-row')).toHaveLength(2));
    const acked = screen.getAllByTestId('alert-row')[1];
    expect(acked.getAttribute('data-acknowledged')).toBe('true');
    expect(acked.textContent).toContain('acknowledged by bob');
    expect(within(acked).queryByTestId('ack-button')).toBeNull();
  });

  it('hides assign from an operator and shows it to a manager', async () => {
    const { services } = setup(routes());
    const { unmount } = renderWith(services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    expect(screen.queryByTestId('assign-input')).toBeNull();
    expect(screen.getByTestId('ack-button')).toBeTruthy();
    unmount();

    login('manager');
    const user = userEvent.setup();
    const s2 = setup(routes());
    renderWith(s2.services, <AlertsPage />);
    await screen.findAllByTestId('alert-row');
    await user.type(screen.getByTestId('assign-input'), 'tech1');
    await user.click(screen.getByTestId('assign-button'));
    await waitFor(() => expect(screen.getByTestId('alert-row').textContent).toContain('assigned to tech1'));
    expect(s2.mf.calls.find((c) => c.url.pathname === '/api/v1/alerts/a1/assign')!.body).toEqual({ assignee: 'tech1' });
  });

  it('shows the problem detail when acknowledging fails', async () => {
    const user = userEvent.setup();
    const { services } = setup({
      ...routes(),
      'POST /api/v1/alerts/a1/acknowledge': () => ({ status: 403, body: { title: 'Forbidden', status: 403, detail: 'role may not acknowledge' } }),
    });
    renderWith(services, <AlertsPage />);
    await user.click(await screen.findByTestId('ack-button'));
    expect((await screen.findByTestId('error')).textContent).toContain('role may not acknowledge');
  });
});
