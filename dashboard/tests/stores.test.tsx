import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { StockLevel, StockMovement } from '../src/api/types';
import { StoresPage } from '../src/pages/StoresPage';
import { login, renderWith, setup } from './helpers';

const level = (partNumber: string, over: Partial<StockLevel> = {}): StockLevel => ({
  tenantId: 't1',
  partNumber,
  description: `part ${partNumber}`,
  location: 'A-01',
  onHand: 4,
  reorderPoint: 0,
  onOrder: 0,
  expectedAt: null,
  updatedAt: '2026-12-06T00:00:00Z',
  reserved: 0,
  free: 4,
  reorder: false,
  ...over,
});

const parts = [
  level('BRG-6204', { onHand: 1, reserved: 4, free: -3, reorderPoint: 2, reorder: true }),
  level('SEAL-12', { onHand: 0, onOrder: 6, expectedAt: '2026-12-08T10:00:00Z', free: 0 }),
  level('V-BELT', { onHand: 9, free: 9 }),
];

const moves: StockMovement[] = [
  { partNumber: 'BRG-6204', kind: 'CONSUMED', delta: -2, onHand: 1, at: '2026-12-06T09:00:00Z', workOrderId: 'abcdef12-0000', by: 'system', note: '' },
  { partNumber: 'BRG-6204', kind: 'COUNTED', delta: 3, onHand: 3, at: '2026-12-05T09:00:00Z', workOrderId: null, by: 'max', note: 'first count' },
];

function routes() {
  return {
    'GET /api/v1/spare-parts': parts,
    'GET /api/v1/spare-parts/BRG-6204/movements': moves,
    'POST /api/v1/spare-parts/SEAL-12/movements': (req: { body: unknown }) => {
      const q = (req.body as { quantity: number }).quantity;
      return {
        status: 201,
        body: {
          movement: { ...moves[1], partNumber: 'SEAL-12', kind: 'RECEIVED', delta: q, onHand: q, by: 'tom' },
          part: level('SEAL-12', { onHand: q, free: q, onOrder: 0 }),
        },
      };
    },
    'PUT /api/v1/spare-parts/FLT-9': (req: { body: unknown }) => ({ body: level('FLT-9', { ...(req.body as object), onHand: 5, free: 5 }) }),
    'PUT /api/v1/spare-parts/SEAL-12': (req: { body: unknown }) => ({ body: { ...parts[1], ...(req.body as object) } }),
    'DELETE /api/v1/spare-parts/V-BELT': () => ({ status: 204 }),
  };
}

const row = (part: string) => screen.getAllByTestId('stores-row').find((r) => r.getAttribute('data-part') === part)!;

describe('StoresPage', () => {
  beforeEach(() => login('technician', 'tom'));

  it('shows what is on the shelf, reserved, short and to reorder', async () => {
    const user = userEvent.setup();
    const { services } = setup(routes());
    renderWith(services, <StoresPage />);
    await screen.findAllByTestId('stores-row');
    expect(within(row('BRG-6204')).getByTestId('stores-free').textContent).toBe('-3 (short)');
    expect(within(row('BRG-6204')).getByTestId('stores-reorder')).toBeTruthy();
    expect(row('SEAL-12').textContent).toContain('6');
    expect(within(row('SEAL-12')).queryByTestId('stores-reorder')).toBeNull();
    // A technician records, a manager defines.
    expect(screen.queryByTestId('stores-new')).toBeNull();
    expect(screen.queryAllByTestId('stores-edit')).toHaveLength(0);
    await user.click(screen.getByTestId('stores-reorder-only'));
    expect(screen.getAllByTestId('stores-row').map((r) => r.getAttribute('data-part'))).toEqual(['BRG-6204']);
  });

  it('records a delivery and shows the new count', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <StoresPage />);
    await screen.findAllByTestId('stores-row');
    await user.click(within(row('SEAL-12')).getByTestId('stores-receive'));
    const quantity = screen.getByTestId('stores-quantity') as HTMLInputElement;
    expect(quantity.value).toBe('6'); // what is on order
    await user.type(screen.getByTestId('stores-note'), 'DN-4711');
    await user.click(screen.getByTestId('stores-record'));
    await waitFor(() => expect(within(row('SEAL-12')).getByTestId('stores-on-hand').textContent).toBe('6'));
    const call = mf.calls.find((c) => c.method === 'POST')!;
    expect(call.body).toEqual({ kind: 'RECEIVED', quantity: 6, note: 'DN-4711' });
    expect(screen.queryByTestId('stores-movement-form')).toBeNull();
  });

  it('shows a part’s movements', async () => {
    const user = userEvent.setup();
    const { services } = setup(routes());
    renderWith(services, <StoresPage />);
    await screen.findAllByTestId('stores-row');
    await user.click(within(row('BRG-6204')).getByTestId('stores-history'));
    const rows = await screen.findAllByTestId('stores-movement');
    expect(rows[0].textContent).toContain('taken for a work order');
    expect(rows[0].textContent).toContain('-2');
    expect(rows[1].textContent).toContain('+3');
    expect(rows[1].textContent).toContain('first count');
  });

  it('lets a manager define and remove parts', async () => {
    login('manager', 'max');
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <StoresPage />);
    await screen.findAllByTestId('stores-row');
    await user.click(screen.getByTestId('stores-new'));
    await user.type(screen.getByTestId('stores-part-number'), 'FLT 9');
    await user.click(screen.getByTestId('stores-save'));
    expect(screen.getByTestId('stores-part-form').textContent).toContain('one word');
    const number = screen.getByTestId('stores-part-number');
    await user.clear(number);
    await user.type(number, 'FLT-9');
    await user.type(screen.getByTestId('stores-description'), 'oil filter');
    const onHand = screen.getByTestId('stores-part-on-hand');
    await user.clear(onHand);
    await user.type(onHand, '5');
    await user.click(screen.getByTestId('stores-save'));
    await waitFor(() => expect(screen.getAllByTestId('stores-row').map((r) => r.getAttribute('data-part'))).toContain('FLT-9'));
    const put = mf.calls.find((c) => c.method === 'PUT')!;
    expect(put.body).toEqual({ description: 'oil filter', location: '', reorderPoint: 0, onOrder: 0, expectedAt: null, onHand: 5 });
    // A new part only adds: a number in use is refused (412), never overwritten.
    expect(put.headers['If-None-Match']).toBe('*');
    // Editing a known part sends only what was changed (a delivery recorded meanwhile is not
    // put back on order).
    await user.click(within(row('SEAL-12')).getByTestId('stores-edit'));
    const location = screen.getByDisplayValue('A-01');
    await user.clear(location);
    await user.type(location, 'B-07');
    await user.click(screen.getByTestId('stores-save'));
    await waitFor(() => expect(mf.calls.filter((c) => c.method === 'PUT')).toHaveLength(2));
    expect(mf.calls.filter((c) => c.method === 'PUT')[1].body).toEqual({ location: 'B-07' });
    expect(mf.calls.filter((c) => c.method === 'PUT')[1].headers['If-None-Match']).toBeUndefined();
    await user.click(within(row('V-BELT')).getByTestId('stores-remove'));
    await waitFor(() => expect(screen.getAllByTestId('stores-row').map((r) => r.getAttribute('data-part'))).not.toContain('V-BELT'));
  });
});
