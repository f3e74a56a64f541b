import { describe, expect, it } from 'vitest';
import type { AnomalyScore, RulPrediction } from '../src/api/types';
import { filterAlerts, insertByRaise, isAlarming, matchesState, prependAlert } from '../src/logic/alerts';
import {
  appendTail,
  bandToAligned,
  bucketsToBand,
  mergeLiveTail,
  pointCount,
  pointsForWidth,
  rulToAligned,
  scoresToAligned,
} from '../src/logic/chart';
import { csvFileName, formatClock, formatHours, formatPercent, periodRange, toLocalInput } from '../src/logic/format';
import { anomalyBar, countByStatus, filterOverview, healthClass, healthColor, rulBar, sortOverview, uniqueLines } from '../src/logic/health';
import { can } from '../src/logic/roles';
import { kioskAllows, parseRoute, routeHash } from '../src/logic/route';
import { allowedTransitions, canTransition, formatParts, groupByStatus, parseParts, upsertById } from '../src/logic/workOrders';
import { alert, health, workOrder } from './helpers';

describe('health', () => {
  it('maps status to colours and classes', () => {
    expect(healthColor('OK')).toBe('var(--ok)');
    expect(healthColor('WARNING')).toBe('var(--warn)');
    expect(healthColor('CRITICAL')).toBe('var(--crit)');
    expect(healthColor('UNKNOWN')).toBe('var(--unknown)');
    expect(healthColor('weird')).toBe('var(--unknown)');
    expect(healthClass('CRITICAL')).toBe('status-critical');
  });
  it('anomaly bar puts the threshold at 2/3 and flags overflow', () => {
    expect(anomalyBar(0.5, 1)).toEqual({ fill: 1 / 3, mark: 2 / 3, over: false });
    expect(anomalyBar(1.2, 1).over).toBe(true);
    expect(anomalyBar(5, 1).fill).toBe(1);
    expect(anomalyBar(0.3, 0).mark).toBe(1);
  });
  it('RUL bar flags below threshold', () => {
    expect(rulBar(50, 100)).toEqual({ fill: 0.25, mark: 0.5, below: true });
    expect(rulBar(300, 100).fill).toBe(1);
  });
  it('filters, sorts worst first and counts', () => {
    const list = [
      health('A', 'OK', { line: 'L2' }),
      health('B', 'CRITICAL', { line: 'L1', criticality: 'CRITICAL' }),
      health('C', 'WARNING', { line: 'L1' }),
      health('D', 'UNKNOWN', { line: 'L2', criticality: 'LOW' }),
    ];
    expect(filterOverview(list, { line: 'L1', criticality: '', status: '' }).map((h) => h.asset.code)).toEqual(['B', 'C']);
    expect(filterOverview(list, { line: '', criticality: 'LOW', status: '' }).map((h) => h.asset.code)).toEqual(['D']);
    expect(filterOverview(list, { line: 'L2', criticality: '', status: 'OK' }).map((h) => h.asset.code)).toEqual(['A']);
    expect(sortOverview(list).map((h) => h.asset.code)).toEqual(['B', 'C', 'D', 'A']);
    expect(countByStatus(list)).toEqual({ OK: 1, WARNING: 1, CRITICAL: 1, UNKNOWN: 1 });
    expect(uniqueLines(list)).toEqual(['L1', 'L2']);
  });
});

describe('roles', () => {
  it('follows the API.md ladder', () => {
    expect(can('operator', 'acknowledgeAlert')).toBe(true);
    expect(can('operator', 'transitionWorkOrder')).toBe(false);
    expect(can('technician', 'transitionWorkOrder')).toBe(true);
    expect(can('technician', 'editWorkOrder')).toBe(true);
    expect(can('technician', 'createWorkOrder')).toBe(false);
    expect(can('technician', 'assignAlert')).toBe(false);
    expect(can('manager', 'createWorkOrder')).toBe(true);
    expect(can('manager', 'exportKpis')).toBe(true);
    expect(can('manager', 'manageUsers')).toBe(false);
    expect(can('admin', 'manageUsers')).toBe(true);
    expect(can(undefined, 'acknowledgeAlert')).toBe(false);
    expect(can('root', 'acknowledgeAlert')).toBe(false);
  });
});

describe('work orders', () => {
  it('allows exactly the moves of API.md', () => {
    expect(allowedTransitions('OPEN')).toEqual(['SCHEDULED', 'IN_PROGRESS', 'CANCELLED']);
    expect(allowedTransitions('SCHEDULED')).toEqual(['IN_PROGRESS', 'CANCELLED', 'OPEN']);
    expect(allowedTransitions('IN_PROGRESS')).toEqual(['COMPLETED', 'SCHEDULED', 'CANCELLED']);
    expect(allowedTransitions('COMPLETED')).toEqual([]);
    expect(allowedTransitions('CANCELLED')).toEqual([]);
    expect(canTransition('OPEN', 'COMPLETED')).toBe(false);
    expect(canTransition('IN_PROGRESS', 'COMPLETED')).toBe(true);
  });
  it('groups by status, urgent first then earliest due', () => {
    const g = groupByStatus([
      workOrder('W1', 'OPEN', { priority: 'LOW' }),
      workOrder('W2', 'OPEN', { priority: 'URGENT', dueBy: '2026-12-05T00:00:00.000Z' }),
      workOrder('W3', 'OPEN', { priority: 'URGENT', dueBy: '2026-12-04T00:00:00.000Z' }),
      workOrder('W4', 'COMPLETED'),
    ]);
    expect(g.OPEN.map((w) => w.code)).toEqual(['W3', 'W2', 'W1']);
    expect(g.COMPLETED).toHaveLength(1);
    expect(g.SCHEDULED).toEqual([]);
  });
  it('upserts by id', () => {
    const a = workOrder('W1', 'OPEN');
    const b = workOrder('W2', 'OPEN');
    expect(upsertById([a], b).map((w) => w.code)).toEqual(['W2', 'W1']);
    expect(upsertById([a, b], { ...a, status: 'SCHEDULED' })[0].status).toBe('SCHEDULED');
    // A version older than the one listed (a message that arrives after a newer read) is not
    // taken.
    const newer: typeof a = { ...a, status: 'IN_PROGRESS', updatedAt: '2026-12-03T09:00:00.000Z' };
    const older: typeof a = { ...a, status: 'SCHEDULED', updatedAt: '2026-12-03T08:00:00.000Z' };
    expect(upsertById([newer], older)[0].status).toBe('IN_PROGRESS');
    expect(upsertById([older], newer)[0].status).toBe('IN_PROGRESS');
  });
  it('parses and formats parts', () => {
    expect(parseParts('BRG-6204 x2, SEAL-12\nOIL*3')).toEqual([
      { partNumber: 'BRG-6204', quantity: 2 },
      { partNumber: 'SEAL-12', quantity: 1 },
      { partNumber: 'OIL', quantity: 3 },
    ]);
    // A part number ending in x and digits is a part number (a quantity follows whitespace).
    expect(parseParts('BOX5, FLT-X10 ×4')).toEqual([
      { partNumber: 'BOX5', quantity: 1 },
      { partNumber: 'FLT-X10', quantity: 4 },
    ]);
    expect(formatParts([{ partNumber: 'A', quantity: 2 }, { partNumber: 'B', quantity: 1 }])).toBe('A x2, B');
    expect(formatParts(undefined)).toBe('');
  });
});

describe('alerts', () => {
  const open = alert('a1');
  const acked = alert('a2', { acknowledgedBy: 'bob', acknowledgedAt: '2026-12-03T08:00:00.000Z' });
  it('filters by state', () => {
    expect(filterAlerts([open, acked], 'open')).toEqual([open]);
    expect(filterAlerts([open, acked], 'acknowledged')).toEqual([acked]);
    expect(filterAlerts([open, acked], 'all')).toHaveLength(2);
    expect(filterAlerts([open, acked], 'all', 'nope')).toHaveLength(0);
    expect(matchesState(acked, 'open')).toBe(false);
  });
  it('prepends new alerts and replaces known ones in place', () => {
    const l = prependAlert([open], acked);
    expect(l.map((a) => a.id)).toEqual(['a2', 'a1']);
    const l2 = prependAlert(l, { ...open, acknowledgedBy: 'me', acknowledgedAt: 'x' });
    expect(l2.map((a) => a.id)).toEqual(['a2', 'a1']);
    expect(l2[1].acknowledgedBy).toBe('me');
    expect(prependAlert([open, acked], alert('a3'), 2).map((a) => a.id)).toEqual(['a3', 'a1']);
  });
  it('inserts a changed alert where its raise belongs, within the list only', () => {
    const at = (id: string, t: string) => alert(id, { createdAt: `2026-12-03T0${t}:00:00.000Z` });
    const list = [at('n', '9'), at('m', '7')];
    expect(insertByRaise(list, at('x', '8')).map((a) => a.id)).toEqual(['n', 'x', 'm']);
    expect(insertByRaise(list, at('y', '1')).map((a) => a.id)).toEqual(['n', 'm', 'y']);
    // Full: nothing older than its oldest.
    expect(insertByRaise(list, at('y', '1'), 2).map((a) => a.id)).toEqual(['n', 'm']);
    expect(insertByRaise(list, at('x', '8'), 2).map((a) => a.id)).toEqual(['n', 'x']);
  });
  it('never replaces a newer state of an alert with an older one', () => {
    const assigned = { ...open, assignee: 'tom', changedAt: '2026-12-07T10:00:02.000Z' };
    // The alert as raised (the live feed after a reload) leaves it assigned.
    expect(prependAlert([assigned], { ...open, changedAt: null })[0].assignee).toBe('tom');
    // An earlier assignment neither; a later one replaces it.
    expect(prependAlert([assigned], { ...open, assignee: 'ana', changedAt: '2026-12-07T10:00:01.000Z' })[0].assignee).toBe('tom');
    expect(prependAlert([assigned], { ...open, assignee: null, changedAt: '2026-12-07T10:00:03.000Z' })[0].assignee).toBe(null);
  });
  it('alarms only on unacknowledged CRITICAL or on-call alerts', () => {
    expect(isAlarming(alert('c', { severity: 'MEDIUM', notifyOnCall: true }))).toBe(true);
    expect(isAlarming(alert('c', { severity: 'MEDIUM', notifyOnCall: true, acknowledgedAt: 'x' }))).toBe(false);
    expect(isAlarming(alert('c', { severity: 'CRITICAL' }))).toBe(true);
    expect(isAlarming(alert('c', { severity: 'HIGH' }))).toBe(false);
    expect(isAlarming(alert('c', { severity: 'CRITICAL', acknowledgedAt: 'x' }))).toBe(false);
  });
});

describe('chart data', () => {
  const buckets = [
    { t: '2026-12-03T07:00:10.000Z', min: 2, max: 4, avg: 3, n: 5 },
    { t: '2026-12-03T07:00:00.000Z', min: 1, max: 3, avg: 2, n: 5 },
  ];
  const t0 = Date.parse('2026-12-03T07:00:00.000Z') / 1000;
  it('turns buckets into a sorted band', () => {
    const b = bucketsToBand(buckets);
    expect(b.t).toEqual([t0, t0 + 10]);
    expect(bandToAligned(b)).toEqual([[t0, t0 + 10], [1, 2], [3, 4], [2, 3]]);
  });
  it('appends the live tail after the history only', () => {
    const b = bucketsToBand(buckets);
    const tail = appendTail(
      [],
      [
        { sensorId: 's1', t: '2026-12-03T07:00:05.000Z', value: 9 }, // inside history: ignored
        { sensorId: 's1', t: '2026-12-03T07:00:20.000Z', value: 5 },
        { sensorId: 's2', t: '2026-12-03T07:00:21.000Z', value: 7 }, // another sensor
        { sensorId: 's1', t: '2026-12-03T07:00:15.000Z', value: 4 },
      ],
      's1',
    );
    expect(tail.map((r) => r.value)).toEqual([9, 4, 5]);
    const m = mergeLiveTail(b, tail);
    expect(m.t).toEqual([t0, t0 + 10, t0 + 15, t0 + 20]);
    expect(m.avg).toEqual([2, 3, 4, 5]);
    expect(m.min[3]).toBe(5);
    expect(m.max[3]).toBe(5);
  });
  it('slides the live window', () => {
    const b = bucketsToBand(buckets);
    const tail = appendTail([], [{ sensorId: 's1', t: '2026-12-03T07:01:00.000Z', value: 1 }], 's1');
    const m = mergeLiveTail(b, tail, 55);
    expect(m.t).toEqual([t0 + 10, t0 + 60]);
  });
  it('dedupes and caps the tail', () => {
    let tail = appendTail([], [{ sensorId: 's', t: '2026-12-03T07:00:00.000Z', value: 1 }], 's', 2);
    tail = appendTail(tail, [{ sensorId: 's', t: '2026-12-03T07:00:00.000Z', value: 2 }], 's', 2);
    expect(tail).toHaveLength(1);
    expect(tail[0].value).toBe(2);
    tail = appendTail(tail, [
      { sensorId: 's', t: '2026-12-03T07:00:01.000Z', value: 3 },
      { sensorId: 's', t: '2026-12-03T07:00:02.000Z', value: 4 },
    ], 's', 2);
    expect(tail.map((r) => r.value)).toEqual([3, 4]);
  });
  it('anomaly scores: oldest first, max per window', () => {
    const s = (t: string, score: number): AnomalyScore => ({
      windowStart: t, sensorId: null, assetId: 'a', anomalyId: null, ensembleScore: score, threshold: 0.8,
      severity: null, method: 'ensemble', modelVersion: 'v1', zscoreScore: null, isolationForestScore: null, ocsvmScore: null, autoencoderScore: null,
    });
    const d = scoresToAligned([s('2026-12-03T07:01:00.000Z', 0.5), s('2026-12-03T07:00:00.000Z', 0.2), s('2026-12-03T07:00:00.000Z', 0.3)]);
    expect(d).toEqual([[t0, t0 + 60], [0.3, 0.5], [0.8, 0.8]]);
    expect(pointCount(d)).toBe(2);
  });
  it('RUL: band, cycles and threshold', () => {
    const p = (t: string, c: number): RulPrediction => ({ assetId: 'a', predictedAt: t, rulCycles: c, confidenceLower: c - 10, confidenceUpper: c + 10, modelVersion: 'v' });
    const d = rulToAligned([p('2026-12-03T07:01:00.000Z', 90), p('2026-12-03T07:00:00.000Z', 100)], 80);
    expect(d).toEqual([[t0, t0 + 60], [90, 80], [110, 100], [100, 90], [80, 80]]);
  });
  it('points for the pixel width', () => {
    expect(pointsForWidth(640.4)).toBe(640);
    expect(pointsForWidth(0)).toBe(600);
    expect(pointsForWidth(99999)).toBe(5000);
  });
});

describe('format', () => {
  it('KPI numbers', () => {
    expect(formatPercent(0.9712)).toBe('97.1 %');
    expect(formatPercent(null)).toBe('—');
    expect(formatHours(2.5)).toBe('2.5 h');
    expect(formatHours(0.25)).toBe('15 min');
    expect(formatHours(250.4)).toBe('250 h');
    expect(formatHours(null)).toBe('—');
  });
  it('clock', () => {
    expect(formatClock(new Date(2026, 11, 3, 7, 5, 9))).toBe('07:05:09');
    expect(formatClock(null)).toBe('--:--:--');
  });
  it('periods', () => {
    const now = Date.parse('2026-12-03T12:00:00.000Z');
    expect(periodRange('24h', now)).toEqual({ from: '2026-12-02T12:00:00.000Z', to: '2026-12-03T12:00:00.000Z' });
    expect(periodRange('7d', now)!.from).toBe('2026-11-26T12:00:00.000Z');
    expect(periodRange('30d', now)!.from).toBe('2026-11-03T12:00:00.000Z');
    const from = toLocalInput(Date.parse('2026-12-01T00:00:00.000Z'));
    const to = toLocalInput(Date.parse('2026-12-02T00:00:00.000Z'));
    expect(periodRange('custom', now, { from, to })).toEqual({ from: '2026-12-01T00:00:00.000Z', to: '2026-12-02T00:00:00.000Z' });
    expect(periodRange('custom', now, { from: to, to: from })).toBeNull();
    expect(periodRange('custom', now, { from: '', to })).toBeNull();
    expect(csvFileName('2026-12-01T00:00:00.000Z', '2026-12-02T00:00:00.000Z')).toBe('mantis-kpis-2026-12-01_2026-12-02.csv');
  });
});

describe('routes', () => {
  it('parses hashes', () => {
    expect(parseRoute('#/assets/abc%20d')).toEqual({ name: 'asset', id: 'abc d' });
    // Not valid percent-encoding (typed by hand): taken as it is, not a crash of the app.
    expect(parseRoute('#/assets/%')).toEqual({ name: 'asset', id: '%' });
    expect(parseRoute('#/alerts')).toEqual({ name: 'alerts' });
    expect(parseRoute('')).toEqual({ name: 'overview' });
    expect(parseRoute('#/work-orders')).toEqual({ name: 'work-orders' });
    expect(parseRoute('#/kiosk')).toEqual({ name: 'kiosk' });
    expect(routeHash({ name: 'asset', id: 'x' })).toBe('#/assets/x');
    expect(kioskAllows({ name: 'kpis' })).toBe(false);
    expect(kioskAllows({ name: 'alerts' })).toBe(true);
  });
});
