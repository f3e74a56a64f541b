import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { MaintenancePlan, Technician, TimeOff } from '../src/api/types';
import { formatOffset, formatShifts, parseShifts, utilisation } from '../src/logic/plan';
import { PlanPage } from '../src/pages/PlanPage';
import { login, renderWith, setup } from './helpers';

const crew: Technician[] = [
  {
    tenantId: 't1', name: 'ana', skills: ['electrical'], utcOffsetMinutes: 60, active: true, updatedAt: '2026-12-06T00:00:00Z',
    shifts: [{ days: ['MON', 'TUE', 'WED', 'THU', 'FRI'], start: '06:00', end: '14:00' }],
  },
  { tenantId: 't1', name: 'ben', skills: ['mechanical'], utcOffsetMinutes: 0, active: false, updatedAt: '2026-12-06T00:00:00Z', shifts: [] },
];

const plan = (applied = 0): MaintenancePlan => ({
  from: '2026-12-07T06:00:00Z',
  to: '2026-12-14T06:00:00Z',
  assignments: [
    {
      workOrderId: 'wo-1', code: 'WO-1', assetId: 'id-M1', asset: 'MTR-1', priority: 'URGENT', status: 'OPEN', technician: 'ana',
      start: '2026-12-07T06:00:00Z', end: '2026-12-07T08:00:00Z', dueBy: '2026-12-07T08:00:00Z', lateHours: 0, skill: 'electrical',
      partsShort: 'parts short: 2 × BRG-6204 needed, 1 free on the shelf once more urgent work has its share',
      plannedStopHours: 0,
      whileRunning: true,
    },
    {
      workOrderId: 'wo-2', code: 'WO-2', assetId: 'id-M2', asset: 'MTR-2', priority: 'HIGH', status: 'SCHEDULED', technician: 'ana',
      start: '2026-12-07T08:00:00Z', end: '2026-12-07T12:00:00Z', dueBy: '2026-12-07T07:00:00Z', lateHours: 1, skill: 'electrical',
      partsExpectedAt: '2026-12-07T08:00:00Z',
      offShift: 'ana is on time off (holiday) from 2026-12-07T00:00:00+00:00 to 2026-12-08T00:00:00+00:00',
      plannedStopHours: 2,
      whileRunning: false,
    },
  ],
  unassigned: [
    {
      workOrderId: 'wo-3', code: 'WO-3', assetId: 'id-P1', asset: 'PMP-1', priority: 'HIGH', status: 'OPEN', dueBy: '2026-12-07T14:00:00Z',
      hours: 6, skill: 'mechanical', reason: 'no active technician has the skill `mechanical`',
    },
  ],
  technicians: [
    { name: 'ana', skills: ['electrical'], active: true, availableHours: 40, timeOffHours: 8, busyHours: 0, plannedHours: 6 },
    { name: 'ben', skills: ['mechanical'], active: false, availableHours: 0, busyHours: 0, plannedHours: 0 },
  ],
  weightedLateHours: 4,
  downtimeHours: 4,
  truncated: false,
  timedOut: false,
  applied,
  skipped: applied ? 1 : 0,
});

const timeOff: TimeOff[] = [
  {
    id: 'off-1', tenantId: 't1', technician: 'ana', startsAt: '2026-12-07T00:00:00Z', endsAt: '2026-12-08T00:00:00Z',
    reason: 'holiday', createdBy: 'max', createdAt: '2026-12-01T00:00:00Z',
  },
  {
    id: 'off-2', tenantId: 't1', technician: null, startsAt: '2026-12-24T00:00:00Z', endsAt: '2026-12-27T00:00:00Z',
    reason: 'plant shutdown', createdBy: 'max', createdAt: '2026-12-01T00:00:00Z',
  },
];

const routes = () => ({
  'GET /api/v1/time-off': timeOff,
  'POST /api/v1/time-off': (req: { body: unknown }) => ({ status: 201, body: { ...timeOff[0], id: 'off-3', ...(req.body as object) } }),
  'DELETE /api/v1/time-off/off-2': () => ({ status: 204 }),
  'GET /api/v1/schedule': () => ({ body: plan() }),
  'POST /api/v1/schedule/apply': () => ({ body: plan(2) }),
  'GET /api/v1/technicians': crew,
  'PUT /api/v1/technicians/carl': (req: { body: unknown }) => ({ body: { ...crew[0], name: 'carl', ...(req.body as object) } }),
  'DELETE /api/v1/technicians/ben': () => ({ status: 204 }),
});

describe('shifts as written', () => {
  it('are read and written back', () => {
    const shifts = parseShifts('MON-FRI 06:00-14:00; sat,sun 22:00-06:00;DAILY 00:00-24:00');
    expect(shifts).toEqual([
      { days: ['MON', 'TUE', 'WED', 'THU', 'FRI'], start: '06:00', end: '14:00' },
      { days: ['SAT', 'SUN'], start: '22:00', end: '06:00' },
      { days: ['MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT', 'SUN'], start: '00:00', end: '24:00' },
    ]);
    expect(formatShifts(shifts)).toBe('MON-FRI 06:00-14:00; SAT,SUN 22:00-06:00; DAILY 00:00-24:00');
    expect(parseShifts('FRI-MON 20:00-04:00')[0].days).toEqual(['MON', 'FRI', 'SAT', 'SUN']);
    expect(parseShifts('  ')).toEqual([]);
  });

  it('name what they cannot read', () => {
    expect(() => parseShifts('MON 6:00-14:00')).toThrow(/6:00 is not a time/);
    expect(() => parseShifts('MON 24:00-06:00')).toThrow(/starts before 24:00/);
    expect(() => parseShifts('MONDAY 06:00-14:00')).toThrow(/MONDAY is not a day/);
    expect(() => parseShifts('MON')).toThrow(/DAYS HH:MM-HH:MM/);
    expect(() => parseShifts('MON 06:00-24:30')).toThrow(/24:30 is not a time/);
  });

  it('clock offsets and utilisation', () => {
    expect(formatOffset(60)).toBe('UTC+01:00');
    expect(formatOffset(-330)).toBe('UTC-05:30');
    expect(utilisation(40, 0, 6)).toBeCloseTo(0.15);
    expect(utilisation(8, 8, 2)).toBe(0);
  });
});

describe('PlanPage', () => {
  beforeEach(() => login('manager'));

  it('shows each technician\'s planned work, what is late and what cannot be placed, and applies the plan', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <PlanPage />);
    const rows = await screen.findAllByTestId('plan-row');
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain('WO-1');
    expect(rows[1].textContent).toContain('WO-2');
    expect(within(rows[1]).getByTestId('plan-late').textContent).toContain('1.0 h late');
    expect(within(rows[1]).getByTestId('plan-parts-wait').textContent).toContain('waits for parts');
    expect(within(rows[0]).queryByTestId('plan-parts-wait')).toBeNull();
    expect(within(rows[0]).getByTestId('plan-parts-short').textContent).toContain('2 × BRG-6204 needed');
    expect(within(rows[1]).queryByTestId('plan-parts-short')).toBeNull();
    expect(within(rows[1]).getByTestId('plan-off-shift').textContent).toContain('ana is on time off (holiday)');
    expect(within(rows[0]).queryByTestId('plan-off-shift')).toBeNull();
    // How much of the work falls within its asset's planned stops, and what the rest stops.
    expect(within(rows[1]).getByTestId('plan-in-stop').textContent).toBe(' · 2.0 h in a planned stop of the asset');
    expect(within(rows[0]).queryByTestId('plan-in-stop')).toBeNull();
    expect(within(rows[0]).getByTestId('plan-while-running').textContent).toBe(' · while the asset runs');
    expect(within(rows[1]).queryByTestId('plan-while-running')).toBeNull();
    expect(screen.getByTestId('plan-downtime').textContent).toBe(
      ' The planned work stops machines 4.0 h outside their planned stops; 2.0 h of work falls within them.',
    );
    expect(screen.getByTestId('plan-summary').textContent).toContain('1 starting after the due time');
    const ana = screen.getAllByTestId('plan-technician')[0];
    expect(ana.textContent).toContain('6.0 h planned of 40.0 h free (15 %)');
    expect(within(ana).getByTestId('plan-time-off').textContent).toContain('8.0 h of shifts off');
    expect(within(screen.getAllByTestId('plan-technician')[1]).queryByTestId('plan-time-off')).toBeNull();
    expect(screen.getAllByTestId('plan-technician')[1].textContent).toContain('away');
    expect(screen.getByTestId('plan-unassigned-row').textContent).toContain('no active technician has the skill `mechanical`');
    expect(mf.calls.find((c) => c.url.pathname === '/api/v1/schedule')!.url.searchParams.get('hours')).toBe('168');

    await user.selectOptions(screen.getByTestId('plan-horizon'), '72');
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/schedule').length).toBe(2));
    expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/schedule')[1].url.searchParams.get('hours')).toBe('72');

    await user.click(screen.getByTestId('plan-apply'));
    const done = (await screen.findByTestId('plan-applied')).textContent;
    expect(done).toContain('2 work orders updated');
    expect(done).toContain('1 changed by someone meanwhile');
    expect(mf.calls.find((c) => c.method === 'POST')!.body).toEqual({ hours: 72 });
  });

  it('lets a manager keep the crew, with the shifts checked before they are sent', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <PlanPage />);
    const crewRows = await screen.findAllByTestId('crew-row');
    expect(crewRows[0].textContent).toContain('MON-FRI 06:00-14:00');
    expect(crewRows[0].textContent).toContain('UTC+01:00');

    await user.type(screen.getByTestId('crew-name'), 'carl');
    await user.type(screen.getByTestId('crew-skills'), 'Hydraulics, mechanical');
    await user.clear(screen.getByTestId('crew-shifts'));
    await user.type(screen.getByTestId('crew-shifts'), 'MON-FRI 6-14');
    await user.click(screen.getByTestId('crew-save'));
    expect(screen.getByTestId('crew-form-error').textContent).toContain('6 is not a time HH:MM');
    expect(mf.calls.some((c) => c.method === 'PUT')).toBe(false);

    await user.clear(screen.getByTestId('crew-shifts'));
    await user.type(screen.getByTestId('crew-shifts'), 'MON-FRI 14:00-22:00');
    await user.clear(screen.getByTestId('crew-zone'));
    await user.type(screen.getByTestId('crew-zone'), 'Europe/Berlin');
    await user.clear(screen.getByTestId('crew-offset'));
    await user.type(screen.getByTestId('crew-offset'), '60');
    await user.click(screen.getByTestId('crew-save'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'PUT')).toBe(true));
    expect(mf.calls.find((c) => c.method === 'PUT')!.body).toEqual({
      skills: ['Hydraulics', 'mechanical'],
      shifts: [{ days: ['MON', 'TUE', 'WED', 'THU', 'FRI'], start: '14:00', end: '22:00' }],
      utcOffsetMinutes: 60,
      timeZone: 'Europe/Berlin',
      active: true,
    });

    await user.click(screen.getAllByTestId('crew-remove')[1]);
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'DELETE' && c.url.pathname === '/api/v1/technicians/ben')).toBe(true));
  });

  it('lets a manager record time off for one technician or the whole crew, checked before it is sent', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup(routes());
    renderWith(services, <PlanPage />);
    const rows = await screen.findAllByTestId('time-off-row');
    expect(rows).toHaveLength(2);
    expect(rows[0].textContent).toContain('ana');
    expect(rows[0].textContent).toContain('holiday');
    expect(rows[1].textContent).toContain('Whole crew');
    await screen.findAllByTestId('crew-row');

    await user.click(screen.getByTestId('time-off-save'));
    expect(screen.getByTestId('time-off-form-error').textContent).toContain('when it starts and when it ends');
    await user.type(screen.getByTestId('time-off-from'), '2026-12-21T06:00');
    await user.type(screen.getByTestId('time-off-to'), '2026-12-20T06:00');
    await user.click(screen.getByTestId('time-off-save'));
    expect(screen.getByTestId('time-off-form-error').textContent).toContain('end after it starts');
    expect(mf.calls.some((c) => c.method === 'POST')).toBe(false);

    await user.clear(screen.getByTestId('time-off-to'));
    await user.type(screen.getByTestId('time-off-to'), '2026-12-23T14:00');
    await user.selectOptions(screen.getByTestId('time-off-who'), 'ana');
    await user.type(screen.getByTestId('time-off-reason'), ' training ');
    await user.click(screen.getByTestId('time-off-save'));
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'POST')).toBe(true));
    expect(mf.calls.find((c) => c.method === 'POST')!.body).toEqual({
      technician: 'ana',
      startsAt: new Date('2026-12-21T06:00').toISOString(),
      endsAt: new Date('2026-12-23T14:00').toISOString(),
      reason: 'training',
    });
    // The list and the plan are read again.
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/time-off' && c.method === 'GET').length).toBe(2));
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/schedule').length).toBe(2));

    await user.click(screen.getAllByTestId('time-off-remove')[1]);
    await waitFor(() => expect(mf.calls.some((c) => c.method === 'DELETE' && c.url.pathname === '/api/v1/time-off/off-2')).toBe(true));
  });

  it('shows a technician the plan without the manager\'s controls', async () => {
    login('technician', 'ana');
    const { services } = setup(routes());
    renderWith(services, <PlanPage />);
    await screen.findAllByTestId('plan-row');
    await screen.findAllByTestId('crew-row');
    expect(screen.queryByTestId('plan-apply')).toBeNull();
    expect(screen.queryByTestId('crew-form')).toBeNull();
    expect(screen.queryByTestId('crew-remove')).toBeNull();
    await screen.findAllByTestId('time-off-row');
    expect(screen.queryByTestId('time-off-form')).toBeNull();
    expect(screen.queryByTestId('time-off-remove')).toBeNull();
  });
});
