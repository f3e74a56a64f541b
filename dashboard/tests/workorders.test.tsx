import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { WorkOrder } from '../src/api/types';
import { WorkOrdersPage } from '../src/pages/WorkOrdersPage';
import { asset, login, renderWith, setup, workOrder } from './helpers';

const orders = [
  workOrder('WO-1', 'OPEN'),
  workOrder('WO-2', 'SCHEDULED', {
    technician: 'ana',
    technicianByPlanner: true,
    planned: { start: '2026-12-07T06:00:00.000Z', end: '2026-12-07T08:00:00.000Z' },
    plannedByPlanner: true,
  }),
  workOrder('WO-3', 'IN_PROGRESS', { technician: 'tom', parts: [{ partNumber: 'BRG-6204', quantity: 2 }] }),
  workOrder('WO-4', 'COMPLETED'),
  workOrder('WO-5', 'CANCELLED'),
];

function routes(list: WorkOrder[] = orders) {
  return {
    'GET /api/v1/work-orders': list,
    'GET /api/v1/assets': [asset('P1')],
    'POST /api/v1/work-orders/wo-WO-1/transition': (req: { body: unknown }) => ({
      body: { ...list[0], status: (req.body as { to: string }).to },
    }),
    'POST /api/v1/work-orders/wo-WO-3/complete': () => ({
      body: { workOrder: { ...list[2], status: 'COMPLETED' }, event: { id: 'e1', assetId: 'id-P1', kind: 'REPAIR', occurredAt: 'x', workOrderId: 'wo-WO-3', note: '' } },
    }),
    'PATCH /api/v1/work-orders/wo-WO-1': (req: { body: unknown }) => ({ body: { ...list[0], ...(req.body as object) } }),
    'POST /api/v1/work-orders': (req: { body: unknown }) => ({
      status: 201,
      body: { ...workOrder('WO-9', 'OPEN'), ...(req.body as object) },
    }),
  };
}

const card = (code: string) => screen.getAllByTestId('wo-card').find((c) => c.getAttribute('data-wo-code') === code)!;
const moves = (code: string) => within(card(code)).queryAllByTestId('wo-transition').map((b) => b.getAttribute('data-to'));

describe('WorkOrdersPage', () => {
  beforeEach(() => login('technician'));

  it('puts each work order in its status column', async () => {
    const { services } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    for (const [status, code] of [['OPEN', 'WO-1'], ['SCHEDULED', 'WO-2'], ['IN_PROGRESS', 'WO-3'], ['COMPLETED', 'WO-4'], ['CANCELLED', 'WO-5']]) {
      const col = screen.getByTestId(`wo-column-${status}`);
      expect(within(col).getAllByTestId('wo-card').map((c) => c.getAttribute('data-wo-code'))).toEqual([code]);
    }
    expect(card('WO-3').textContent).toContain('BRG-6204 x2');
    // The planner's technician and slot are marked as such.
    expect(card('WO-2').textContent).toContain('ana (planner)');
    expect(within(card('WO-2')).getByTestId('wo-planned').textContent).toContain('(planner)');
    expect(within(card('WO-3')).queryByTestId('wo-planned')).toBeNull();
  });

  it('reads active and closed orders apart, so closed ones never push an open one off the board', async () => {
    const closed = Array.from({ length: 300 }, (_, i) => workOrder(`WO-C${i}`, 'COMPLETED'));
    const old = workOrder('WO-OLD', 'OPEN');
    const { services, mf } = setup({
      ...routes(),
      'GET /api/v1/work-orders': (req: { url: URL }) => {
        const wanted = (req.url.searchParams.get('status') ?? '').split(',');
        const limit = Number(req.url.searchParams.get('limit') ?? 100);
        return { body: [...closed, old].filter((w) => wanted.includes(w.status)).slice(0, limit) };
      },
    });
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    expect(within(screen.getByTestId('wo-column-OPEN')).getAllByTestId('wo-card').map((c) => c.getAttribute('data-wo-code'))).toEqual([
      'WO-OLD',
    ]);
    expect(within(screen.getByTestId('wo-column-COMPLETED')).getAllByTestId('wo-card')).toHaveLength(200);
    const asked = mf.calls.filter((c) => c.url.pathname === '/api/v1/work-orders').map((c) => c.url.searchParams.get('status'));
    expect(asked).toEqual(['OPEN,SCHEDULED,IN_PROGRESS', 'COMPLETED,CANCELLED']);
    expect(screen.queryByTestId('wo-truncated')).toBeNull();
  });

  it('says so when more active orders exist than it reads', async () => {
    const many = Array.from({ length: 1000 }, (_, i) => workOrder(`WO-A${i}`, 'OPEN'));
    const { services } = setup({ ...routes(), 'GET /api/v1/work-orders': (req: { url: URL }) => ({
      body: (req.url.searchParams.get('status') ?? '').includes('OPEN') ? many : [],
    }) });
    renderWith(services, <WorkOrdersPage />);
    expect((await screen.findByTestId('wo-truncated')).textContent).toContain('1000');
  });

  it('shows only the allowed transitions', async () => {
    const { services } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    expect(moves('WO-1')).toEqual(['SCHEDULED', 'IN_PROGRESS', 'CANCELLED']);
    expect(moves('WO-2')).toEqual(['IN_PROGRESS', 'CANCELLED', 'OPEN']);
    expect(moves('WO-3')).toEqual(['COMPLETED', 'SCHEDULED', 'CANCELLED']);
    expect(moves('WO-4')).toEqual([]);
    expect(moves('WO-5')).toEqual([]);
    // a technician cannot create
    expect(screen.queryByTestId('wo-new')).toBeNull();
  });

  it('an operator sees no transition or edit buttons', async () => {
    login('operator');
    const { services } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    expect(screen.queryAllByTestId('wo-transition')).toHaveLength(0);
    expect(screen.queryAllByTestId('wo-edit')).toHaveLength(0);
  });

  it('transitions a work order and moves the card', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-1')).getByText('Schedule'));
    await waitFor(() => expect(card('WO-1').getAttribute('data-status')).toBe('SCHEDULED'));
    expect(within(screen.getByTestId('wo-column-SCHEDULED')).getAllByTestId('wo-card')).toHaveLength(2);
    expect(mf.calls.find((c) => c.url.pathname.endsWith('/transition'))!.body).toEqual({ to: 'SCHEDULED' });
    expect(moves('WO-1')).toEqual(['IN_PROGRESS', 'CANCELLED', 'OPEN']);
  });

  it('completes with an outcome', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-3')).getByText('Complete'));
    expect(screen.queryByTestId('wo-failed-at')).toBeNull();
    await user.selectOptions(screen.getByTestId('wo-outcome'), 'FAILURE');
    expect(screen.getByTestId('wo-failure-hint').textContent).toContain('downtime');
    await user.selectOptions(screen.getByTestId('wo-outcome'), 'REPLACEMENT');
    await user.type(screen.getByTestId('wo-note'), 'bearing replaced');
    await user.click(screen.getByTestId('wo-complete-submit'));
    await waitFor(() => expect(card('WO-3').getAttribute('data-status')).toBe('COMPLETED'));
    expect(mf.calls.find((c) => c.url.pathname.endsWith('/complete'))!.body).toEqual({ outcome: 'REPLACEMENT', note: 'bearing replaced' });
  });

  it('shows the 409 detail when a move is refused', async () => {
    const user = userEvent.setup();
    const { services } = setup({
      ...routes(),
      'POST /api/v1/work-orders/wo-WO-1/transition': () => ({ status: 409, body: { title: 'Conflict', status: 409, detail: 'WO-1 is already SCHEDULED' } }),
    });
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-1')).getByText('Schedule'));
    expect((await screen.findByTestId('error')).textContent).toContain('WO-1 is already SCHEDULED');
  });

  it('edits technician, parts and priority', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-1')).getByTestId('wo-edit'));
    const form = screen.getByTestId('wo-edit-form');
    await user.type(within(form).getByPlaceholderText('username'), 'tom');
    await user.selectOptions(within(form).getByDisplayValue('NORMAL'), 'URGENT');
    const inputs = within(form).getAllByRole('textbox');
    await user.type(inputs[inputs.length - 1], 'SEAL-12 x3');
    await user.click(within(form).getByTestId('wo-while-running-input'));
    await user.click(within(form).getByText('Save'));
    await waitFor(() => expect(card('WO-1').textContent).toContain('SEAL-12 x3'));
    const body = mf.calls.find((c) => c.method === 'PATCH')!.body as Record<string, unknown>;
    expect(body).toEqual({ technician: 'tom', priority: 'URGENT', parts: [{ partNumber: 'SEAL-12', quantity: 3 }], whileRunning: true });
  });

  it('saves an edit against the order as it was when the form opened', async () => {
    const user = userEvent.setup();
    let current = orders;
    const { services, mf, sf } = setup({
      ...routes(),
      'GET /api/v1/work-orders': () => ({ body: current }),
      'PATCH /api/v1/work-orders/wo-WO-1': () => ({
        status: 412,
        body: { status: 412, title: 'Precondition Failed', detail: 'work order WO-1 was changed at 2026-12-03T08:00:00Z since it was read (If-Match); reload it and make the change again' },
      }),
    });
    services.live.connect();
    sf.last().open();
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-1')).getByTestId('wo-edit'));
    const form = screen.getByTestId('wo-edit-form');
    // Someone else raises the priority while the form is open.
    const raised = { ...orders[0], priority: 'URGENT' as const, updatedAt: '2026-12-03T08:00:00.000Z' };
    current = [raised, ...orders.slice(1)];
    sf.last().push({ type: 'workOrder', data: raised });
    await user.type(within(form).getByPlaceholderText('username'), 'tom');
    await user.click(within(form).getByText('Save'));
    const call = await waitFor(() => mf.calls.find((c) => c.method === 'PATCH')!);
    // Only the field changed in the form (not the shown priority, stale now), from the order
    // as it was read: the gateway refuses it, and the form stays open with why.
    expect(call.body).toEqual({ technician: 'tom' });
    expect(call.headers['If-Match']).toBe('"2026-12-03T07:00:00.000Z"');
    expect((await screen.findByTestId('error')).textContent).toContain('reload it');
    expect(screen.getByTestId('wo-edit-form')).toBeTruthy();
    // The form says what they changed, and goes on from the order as it is now: the field
    // typed here kept, theirs taken, the save made against their version.
    expect(screen.getByTestId('wo-edit-stale').textContent).toContain('priority (URGENT)');
    await user.click(screen.getByTestId('wo-edit-rebase'));
    expect(screen.queryByTestId('wo-edit-stale')).toBeNull();
    expect((within(form).getByPlaceholderText('username') as HTMLInputElement).value).toBe('tom');
    expect(within(form).getByDisplayValue('URGENT')).toBeTruthy();
    await user.click(within(form).getByText('Save'));
    await waitFor(() => expect(mf.calls.filter((c) => c.method === 'PATCH')).toHaveLength(2));
    const second = mf.calls.filter((c) => c.method === 'PATCH')[1];
    expect(second.body).toEqual({ technician: 'tom' });
    expect(second.headers['If-Match']).toBe('"2026-12-03T08:00:00.000Z"');
  });

  it('moves a card from the order as shown', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-1')).getByText('Schedule'));
    const call = await waitFor(() => mf.calls.find((c) => c.url.pathname.endsWith('/transition'))!);
    expect(call.headers['If-Match']).toBe(`"${orders[0].updatedAt}"`);
  });

  it('a manager creates a work order', async () => {
    login('manager');
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(screen.getByTestId('wo-new'));
    await waitFor(() => expect(screen.getByTestId('wo-create-asset').querySelectorAll('option').length).toBe(2));
    await user.selectOptions(screen.getByTestId('wo-create-asset'), 'id-P1');
    await user.type(screen.getByTestId('wo-create-description'), 'check the seal');
    // An inspection of the running pump: the plan leaves the pump's planned stops to other work.
    await user.click(within(screen.getByTestId('wo-create-form')).getByTestId('wo-while-running-input'));
    await user.click(screen.getByTestId('wo-create-submit'));
    await waitFor(() => expect(screen.getAllByTestId('wo-card').map((c) => c.getAttribute('data-wo-code'))).toContain('WO-9'));
    expect(mf.calls.find((c) => c.method === 'POST' && c.url.pathname === '/api/v1/work-orders')!.body).toEqual({
      assetId: 'id-P1',
      description: 'check the seal',
      priority: 'NORMAL',
      whileRunning: true,
    });
  });

  it('applies live work-order messages', async () => {
    const { services, sf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    sf.last().push({ type: 'workOrder', data: { ...orders[1], status: 'IN_PROGRESS' } });
    await waitFor(() => expect(card('WO-2').getAttribute('data-status')).toBe('IN_PROGRESS'));
  });

  it('keeps a card with an open form where it is when someone moves it, with what was typed', async () => {
    const user = userEvent.setup();
    const { services, sf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-1')).getByTestId('wo-edit'));
    const form = within(card('WO-1')).getByTestId('wo-edit-form');
    await user.type(within(form).getByPlaceholderText('username'), 'tom');
    // Someone schedules it meanwhile.
    sf.last().push({ type: 'workOrder', data: { ...orders[0], status: 'SCHEDULED', updatedAt: '2026-12-03T09:00:00.000Z' } });
    await waitFor(() => expect(card('WO-1').getAttribute('data-status')).toBe('SCHEDULED'));
    const open = within(screen.getByTestId('wo-column-OPEN'));
    expect(open.getAllByTestId('wo-card').map((c) => c.getAttribute('data-wo-code'))).toEqual(['WO-1']);
    expect(within(card('WO-1')).getByTestId('wo-moved').textContent).toContain('SCHEDULED');
    expect((within(card('WO-1')).getByPlaceholderText('username') as HTMLInputElement).value).toBe('tom');
    expect(within(card('WO-1')).getByTestId('wo-edit-stale').textContent).toContain('status (SCHEDULED)');
    // Closed: the card goes to its column.
    await user.click(within(card('WO-1')).getByText('Cancel'));
    await waitFor(() =>
      expect(within(screen.getByTestId('wo-column-SCHEDULED')).getAllByTestId('wo-card').map((c) => c.getAttribute('data-wo-code'))).toContain('WO-1'),
    );
    expect(screen.queryByTestId('wo-moved')).toBeNull();
  });

  it('completes with a failure and when it happened', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <WorkOrdersPage />);
    await screen.findAllByTestId('wo-card');
    await user.click(within(card('WO-3')).getByText('Complete'));
    await user.selectOptions(screen.getByTestId('wo-outcome'), 'FAILURE');
    await user.type(screen.getByTestId('wo-failed-at'), '2026-12-05T08:30');
    await user.click(screen.getByTestId('wo-complete-submit'));
    await waitFor(() => expect(card('WO-3').getAttribute('data-status')).toBe('COMPLETED'));
    const call = mf.calls.find((c) => c.url.pathname.endsWith('/complete'))!;
    expect(call.headers['If-Match']).toBe(`"${orders[2].updatedAt}"`);
    const body = call.body as { outcome: string; occurredAt: string };
    expect(body.outcome).toBe('FAILURE');
    expect(body.occurredAt).toBe(new Date('2026-12-05T08:30').toISOString());
  });
});
