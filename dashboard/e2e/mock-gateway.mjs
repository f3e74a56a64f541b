#!/usr/bin/env node
// A stand-in for the Rust gateway, following services/gateway/API.md, for developing the
// dashboard and for trying e2e/demo.e2e.mjs without the platform. Plain Node (no packages):
// serves dist/ and a mocked /api/v1 + /ws (a minimal RFC 6455 text-frame WebSocket).
//
//   node e2e/mock-gateway.mjs            # http://127.0.0.1:8000, users admin/admin, op/op, tech/tech
//   MOCK_PORT=8010 MOCK_ALERT_EVERY_S=15 node e2e/mock-gateway.mjs
//
// Not a test of the gateway: a live `mantis demo` is the real thing.
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.MOCK_PORT ?? 8000);
const HOST = process.env.MOCK_HOST ?? '127.0.0.1';
const ALERT_EVERY_S = Number(process.env.MOCK_ALERT_EVERY_S ?? 20);
const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
// The installation's default tenant (`TenantId::DEFAULT`): its admins see the dead letters.
const TENANT = '6d616e74-6973-4000-8000-000000000001';

const USERS = {
  admin: { password: 'admin', user: { username: 'admin', displayName: 'Admin', role: 'admin', tenantId: TENANT } },
  manager: { password: 'manager', user: { username: 'manager', displayName: 'Mia Manager', role: 'manager', tenantId: TENANT } },
  tech: { password: 'tech', user: { username: 'tech', displayName: 'Tom Technician', role: 'technician', tenantId: TENANT } },
  op: { password: 'op', user: { username: 'op', displayName: 'Olga Operator', role: 'operator', tenantId: TENANT } },
};
const tokens = new Map();

const now = () => Date.now();
const iso = (t) => new Date(t).toISOString();

// ---- plant ----
const assets = [
  ['PUMP-01', 'Coolant pump 1', 'pump', 'L1', 'CRITICAL'],
  ['PUMP-02', 'Coolant pump 2', 'pump', 'L1', 'HIGH'],
  ['CNC-01', 'Milling centre 1', 'cnc', 'L1', 'HIGH'],
  ['CNC-02', 'Milling centre 2', 'cnc', 'L2', 'MEDIUM'],
  ['FAN-01', 'Exhaust fan', 'fan', 'L2', 'LOW'],
  ['COMP-01', 'Air compressor', 'compressor', 'L2', 'CRITICAL'],
].map(([code, name, assetType, line, criticality]) => ({
  id: randomUUID(), tenantId: TENANT, code, name, assetType, location: `Hall ${line === 'L1' ? 'A' : 'B'}`, line, criticality,
}));
const sensors = assets.flatMap((a) => [
  { id: randomUUID(), assetId: a.id, code: `${a.code}-VIB`, sensorType: 'VIBRATION', unit: 'mm/s', minValue: 0, maxValue: 50, samplingRateHz: 10 },
  { id: randomUUID(), assetId: a.id, code: `${a.code}-TMP`, sensorType: 'TEMPERATURE', unit: '°C', minValue: -20, maxValue: 150, samplingRateHz: 1 },
]);
const signal = (s, t) => {
  const k = sensors.indexOf(s) + 1;
  const base = s.sensorType === 'VIBRATION' ? 4 + k * 0.3 : 55 + k;
  const amp = s.sensorType === 'VIBRATION' ? 1.5 : 4;
  return base + amp * Math.sin(t / 60000 + k) + (amp / 4) * Math.sin(t / 3000 + k * 2);
};

const alerts = [];
const workOrders = [];
const events = [];
/** Production counts per asset id, newest first. */
const production = {};
/** The production calendar: a daily lunch break of the whole plant, for the last and the next week. */
const plannedStops = Array.from({ length: 15 }, (_, i) => {
  const day = new Date(Date.now() + (i - 7) * 86400e3);
  day.setUTCHours(12, 0, 0, 0);
  return { id: `stop-lunch-${i}`, tenantId: 't1', assetId: null, startsAt: day.toISOString(), endsAt: new Date(day.getTime() + 30 * 60e3).toISOString(), reason: 'lunch break', createdBy: 'mock', createdAt: new Date().toISOString() };
});
let woSeq = 1;

function makeAlert(asset, severity, kind, message, ago = 0) {
  const wo = makeWorkOrder(asset, kind === 'RUL' ? 'rul' : 'anomaly', severity === 'CRITICAL' ? 'URGENT' : 'HIGH', message, ago);
  const a = {
    id: randomUUID(), assetId: asset.id, severity, kind, message, createdAt: iso(now() - ago), workOrderId: wo.id,
    triggerEvent: randomUUID(), notifyOnCall: asset.criticality === 'CRITICAL', acknowledgedBy: null, acknowledgedAt: null, assignee: null,
  };
  alerts.unshift(a);
  return { alert: a, workOrder: wo };
}
function makeWorkOrder(asset, cause, priority, description, ago = 0) {
  const d = new Date(now() - ago);
  const code = `WO-${d.toISOString().slice(0, 10).replace(/-/g, '')}-${String(woSeq++).padStart(4, '0')}`;
  const wo = {
    id: randomUUID(), code, assetId: asset.id, cause, priority, status: 'OPEN', createdAt: iso(now() - ago), dueBy: iso(now() - ago + 8 * 3600e3),
    description: `Check ${asset.name}: ${description}`, rule: `${cause}-rule`, triggerEvent: randomUUID(), technician: null, parts: [], updatedAt: iso(now() - ago),
  };
  workOrders.unshift(wo);
  return wo;
}
makeAlert(assets[1], 'HIGH', 'ANOMALY', 'Vibration RMS above threshold', 40 * 60e3);
makeAlert(assets[5], 'CRITICAL', 'RUL', 'RUL below threshold: 80 cycles left', 20 * 60e3);
workOrders[0].status = 'SCHEDULED';
const done = makeWorkOrder(assets[3], 'manual', 'NORMAL', 'quarterly inspection', 3 * 86400e3);
done.status = 'COMPLETED';
events.push({ id: randomUUID(), assetId: assets[3].id, kind: 'INSPECTION', occurredAt: iso(now() - 2 * 86400e3), workOrderId: done.id, note: 'all good' });

const TRANSITIONS = { OPEN: ['SCHEDULED', 'IN_PROGRESS', 'CANCELLED'], SCHEDULED: ['IN_PROGRESS', 'CANCELLED', 'OPEN'], IN_PROGRESS: ['COMPLETED', 'SCHEDULED', 'CANCELLED'], COMPLETED: [], CANCELLED: [] };
const RANK = { operator: 0, technician: 1, manager: 2, admin: 3 };
const acked = (a) => !!a.acknowledgedAt;

function health(a) {
  const open = alerts.filter((x) => x.assetId === a.id && !acked(x));
  const i = assets.indexOf(a);
  const score = 0.3 + 0.12 * i + 0.1 * Math.sin(now() / 30000 + i);
  const rulCycles = i === 5 ? 80 : 300 - i * 30;
  const status = open.some((x) => x.severity === 'CRITICAL') || rulCycles < 100 ? 'CRITICAL' : score > 0.85 || open.length ? 'WARNING' : i === 4 ? 'UNKNOWN' : 'OK';
  return {
    asset: a, status,
    anomaly: { score, threshold: 0.85, windowStart: iso(now() - 30e3) },
    rul: { cycles: rulCycles, lower: rulCycles * 0.8, upper: rulCycles * 1.2, threshold: 100, predictedAt: iso(now() - 60e3) },
    openAlerts: open.length,
    openWorkOrders: workOrders.filter((w) => w.assetId === a.id && ['OPEN', 'SCHEDULED', 'IN_PROGRESS'].includes(w.status)).length,
    lastSeen: i === 4 ? iso(now() - 20 * 60e3) : iso(now() - 2e3),
  };
}

// ---- HTTP ----
const problem = (res, status, title, detail, errors) => {
  res.writeHead(status, { 'Content-Type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title, status, detail, ...(errors ? { errors } : {}) }));
};
const json = (res, body, status = 200) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
};
const spareParts = [
  { tenantId: 't1', partNumber: 'BRG-6204', description: 'Deep-groove ball bearing 6204-2RS', location: 'A-03', onHand: 6, reorderPoint: 4, onOrder: 0, expectedAt: null, updatedAt: new Date().toISOString(), reserved: 2, free: 4, reorder: false },
  { tenantId: 't1', partNumber: 'SEAL-12', description: 'Mechanical seal, 12 mm shaft', location: 'A-07', onHand: 2, reorderPoint: 2, onOrder: 4, expectedAt: new Date(Date.now() + 3 * 86400e3).toISOString(), updatedAt: new Date().toISOString(), reserved: 0, free: 2, reorder: false },
];

const letter = (offset, reason, source, over = {}) => ({
  partition: 0, offset, at: iso(now() - (5 - offset) * 3600e3), reason, source, key: null, payloadBytes: 640 + offset, headers: {}, replayedAt: null, ...over,
});
const deadLetterTopics = [
  { topic: 'dlq.features', letters: [] },
  { topic: 'dlq.ingestion', letters: [letter(0, 'sensor `P-101-VIB-9` is not registered', null, { key: 'mqtt-line-1', headers: { 'mantis.dlq.connector': 'mqtt-line-1' } })] },
  {
    topic: 'dlq.orchestrator.webhook.cmms.alert',
    letters: [1, 2].map((o) => letter(o, 'webhook cmms answered 422 Unprocessable Entity: unknown asset code', `alerts.critical/0/${40 + o}`)),
  },
];

const readBody = (req) =>
  new Promise((resolve) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => {
      try {
        resolve(s ? JSON.parse(s) : {});
      } catch {
        resolve(null);
      }
    });
  });

const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon' };
async function serveStatic(res, path) {
  const rel = normalize(path === '/' ? '/index.html' : path).replace(/^(\.\.[/\\])+/, '');
  try {
    const body = await readFile(join(DIST, rel));
    res.writeHead(200, { 'Content-Type': MIME[extname(rel)] ?? 'application/octet-stream' });
    res.end(body);
  } catch {
    const body = await readFile(join(DIST, 'index.html')).catch(() => null);
    if (!body) return problem(res, 404, 'Not Found', 'dist/ is missing: run npm run build');
    res.writeHead(200, { 'Content-Type': MIME['.html'] });
    res.end(body);
  }
}

async function api(req, res, url) {
  const p = url.pathname;
  const q = url.searchParams;
  if (p === '/api/v1/auth/login' && req.method === 'POST') {
    const b = await readBody(req);
    const u = USERS[b?.username];
    if (!u || u.password !== b.password) return problem(res, 401, 'Unauthorized', 'wrong username or password');
    const token = randomUUID();
    tokens.set(token, u.user);
    return json(res, { token, expiresAt: iso(now() + 8 * 3600e3), user: u.user });
  }
  const auth = req.headers.authorization ?? '';
  const user = tokens.get(auth.replace(/^Bearer /, ''));
  if (!user) return problem(res, 401, 'Unauthorized', 'missing or expired token');
  const need = (role) => {
    if (RANK[user.role] < RANK[role]) {
      problem(res, 403, 'Forbidden', `a ${user.role} may not do this (needs ${role})`);
      return false;
    }
    return true;
  };
  let m;
  if (p === '/api/v1/auth/me') return json(res, user);
  if (p === '/api/v1/assets') return json(res, assets);
  if ((m = p.match(/^\/api\/v1\/assets\/([^/]+)$/))) {
    const a = assets.find((x) => x.id === m[1]);
    return a ? json(res, { asset: a, sensors: sensors.filter((s) => s.assetId === a.id) }) : problem(res, 404, 'Not Found', 'no such asset');
  }
  if (p === '/api/v1/overview') return json(res, assets.map(health));
  if ((m = p.match(/^\/api\/v1\/sensors\/([^/]+)\/readings$/))) {
    const s = sensors.find((x) => x.id === m[1]);
    if (!s) return problem(res, 404, 'Not Found', 'no such sensor');
    const to = q.get('to') ? Date.parse(q.get('to')) : now();
    const from = q.get('from') ? Date.parse(q.get('from')) : to - 3600e3;
    const n = Math.min(5000, Number(q.get('points') ?? 600));
    const step = (to - from) / n;
    const points = [];
    for (let i = 0; i < n; i++) {
      const t = from + i * step;
      const v = [0, 0.33, 0.66, 1].map((f) => signal(s, t + f * step));
      points.push({ t: iso(t), min: Math.min(...v), max: Math.max(...v), avg: v.reduce((x, y) => x + y) / v.length, n: 4 });
    }
    return json(res, { sensorId: s.id, from: iso(from), to: iso(to), bucketSecs: step / 1000, points });
  }
  if ((m = p.match(/^\/api\/v1\/assets\/([^/]+)\/anomaly-scores$/))) {
    const i = assets.findIndex((x) => x.id === m[1]);
    const out = [];
    for (let k = 0; k < 120; k++) {
      const t = now() - k * 30e3;
      const score = Math.max(0, 0.3 + 0.1 * i + 0.25 * Math.sin(t / 300000 + i));
      out.push({ windowStart: iso(t), sensorId: null, assetId: m[1], anomalyId: null, ensembleScore: score, threshold: 0.85, severity: score > 0.85 ? 'HIGH' : null, method: 'ensemble', modelVersion: 'mock-1', zscoreScore: score, isolationForestScore: score, ocsvmScore: score, autoencoderScore: score });
    }
    return json(res, out);
  }
  if (p === '/api/v1/anomalies') {
    const a = assets.find((x) => x.id === q.get('assetId')) ?? assets[0];
    const ss = sensors.filter((s) => s.assetId === a.id);
    return json(res, [{ id: randomUUID(), assetId: a.id, sensorId: ss[0].id, windowStart: iso(now() - 120e3), detectedAt: iso(now() - 110e3), score: 0.91, threshold: 0.85, severity: 'HIGH', criticality: a.criticality, method: 'ensemble',
      contributions: [{ feature: 'rms', sensorId: ss[0].id, value: 7.9, zScore: 4.1 }, { feature: 'kurtosis', sensorId: ss[0].id, value: 5.2, zScore: 2.7 }, { feature: 'mean', sensorId: ss[1].id, value: 71.2, zScore: 1.4 }] }]);
  }
  if ((m = p.match(/^\/api\/v1\/assets\/([^/]+)\/rul$/))) {
    const h = health(assets.find((x) => x.id === m[1]) ?? assets[0]);
    const out = [];
    for (let k = 0; k < 48; k++) {
      const c = h.rul.cycles + k * 2;
      out.push({ assetId: m[1], predictedAt: iso(now() - k * 3600e3), rulCycles: c, confidenceLower: c * 0.8, confidenceUpper: c * 1.2, modelVersion: 'mock-1' });
    }
    return json(res, out);
  }
  if ((m = p.match(/^\/api\/v1\/assets\/([^/]+)\/events$/))) return json(res, events.filter((e) => e.assetId === m[1]));
  if (p === '/api/v1/alerts') {
    const state = q.get('state') ?? 'open';
    return json(res, alerts.filter((a) => (state === 'all' || (state === 'open') !== acked(a)) && (!q.get('assetId') || a.assetId === q.get('assetId'))));
  }
  if ((m = p.match(/^\/api\/v1\/alerts\/([^/]+)\/(acknowledge|assign)$/)) && req.method === 'POST') {
    const a = alerts.find((x) => x.id === m[1]);
    if (!a) return problem(res, 404, 'Not Found', 'no such alert');
    const b = await readBody(req);
    if (m[2] === 'acknowledge') {
      if (!acked(a)) Object.assign(a, { acknowledgedBy: user.username, acknowledgedAt: iso(now()) });
    } else {
      if (!need('manager')) return;
      if (!b?.assignee) return problem(res, 400, 'Bad Request', 'assignee is required', [{ pointer: '/assignee', detail: 'required' }]);
      a.assignee = b.assignee;
    }
    broadcast('alerts', { type: 'alert', data: a });
    return json(res, a);
  }
  if (p === '/api/v1/work-orders' && req.method === 'GET') {
    const st = q.get('status')?.split(',');
    return json(res, workOrders.filter((w) => (!st || st.includes(w.status)) && (!q.get('assetId') || w.assetId === q.get('assetId'))));
  }
  if (p === '/api/v1/work-orders' && req.method === 'POST') {
    if (!need('manager')) return;
    const b = await readBody(req);
    const a = assets.find((x) => x.id === b?.assetId);
    if (!a) return problem(res, 400, 'Bad Request', 'unknown asset', [{ pointer: '/assetId', detail: 'unknown asset' }]);
    const wo = makeWorkOrder(a, 'manual', b.priority ?? 'NORMAL', '');
    Object.assign(wo, { description: b.description, dueBy: b.dueBy ?? wo.dueBy, technician: b.technician ?? null, parts: b.parts ?? [] });
    broadcast('workOrders', { type: 'workOrder', data: wo });
    return json(res, wo, 201);
  }
  if ((m = p.match(/^\/api\/v1\/work-orders\/([^/]+)(?:\/(transition|complete))?$/))) {
    const wo = workOrders.find((x) => x.id === m[1]);
    if (!wo) return problem(res, 404, 'Not Found', 'no such work order');
    if (!need('technician')) return;
    const b = await readBody(req);
    if (!m[2] && req.method === 'PATCH') Object.assign(wo, b, { updatedAt: iso(now()) });
    else if (m[2] === 'transition') {
      if (!TRANSITIONS[wo.status].includes(b?.to)) return problem(res, 409, 'Conflict', `${wo.code} cannot go from ${wo.status} to ${b?.to}`);
      Object.assign(wo, { status: b.to, updatedAt: iso(now()) });
    } else if (m[2] === 'complete') {
      if (wo.status !== 'IN_PROGRESS' && wo.status !== 'SCHEDULED' && wo.status !== 'OPEN') return problem(res, 409, 'Conflict', `${wo.code} is ${wo.status}`);
      Object.assign(wo, { status: 'COMPLETED', updatedAt: iso(now()) });
      const ev = { id: randomUUID(), assetId: wo.assetId, kind: b.outcome, occurredAt: iso(now()), workOrderId: wo.id, note: b.note ?? '' };
      events.unshift(ev);
      broadcast('workOrders', { type: 'workOrder', data: wo });
      return json(res, { workOrder: wo, event: ev });
    } else return problem(res, 405, 'Method Not Allowed', req.method);
    broadcast('workOrders', { type: 'workOrder', data: wo });
    return json(res, wo);
  }
  if (p === '/api/v1/kpis') {
    const from = q.get('from') ?? iso(now() - 7 * 86400e3);
    const to = q.get('to') ?? iso(now());
    const units = (seed) => ({ quality: 0.95 + 0.01 * (seed % 4), goodUnits: 950 + 10 * (seed % 4), rejectedUnits: 50 - 10 * (seed % 4) });
    const shifts = (seed) => ['A', 'B', 'C'].map((s, i) => ({ shift: s, hours: 56, plannedStopHours: 1.5 + i, availability: 0.9 + 0.02 * ((seed + i) % 4), performance: 0.8 + 0.03 * ((seed + i) % 4), ...units(seed + i), oee: 0.7 + 0.03 * ((seed + i) % 5) }));
    const per = assets.filter((a) => !q.get('line') || a.line === q.get('line')).map((a, i) => ({ assetId: a.id, availability: 0.92 + 0.01 * i, mtbfHours: 100 + 20 * i, mttrHours: 1.5 + i * 0.5, failures: 3 - (i % 3), downtimeHours: 4 + i, plannedStopHours: 3.5, performance: 0.82 + 0.02 * (i % 5), ...units(i), oee: 0.72 + 0.02 * i, oeeBasis: 'availability × performance (ideal cycle × units ÷ run time) × quality (good ÷ all units counted)', shifts: shifts(i) }));
    if (q.get('format') === 'csv' || (req.headers.accept ?? '').includes('text/csv')) {
      res.writeHead(200, { 'Content-Type': 'text/csv' });
      return res.end('assetId,availability,mtbfHours,mttrHours,failures,downtimeHours,oee\n' + per.map((k) => [k.assetId, k.availability, k.mtbfHours, k.mttrHours, k.failures, k.downtimeHours, k.oee].join(',')).join('\n') + '\n');
    }
    return json(res, { from, to, scope: q.get('line') ? { line: q.get('line') } : {}, assets: per, total: { availability: 0.95, mtbfHours: 140, mttrHours: 2.1, failures: 9, downtimeHours: 33, plannedStopHours: 3.5 * assets.length, performance: 0.85, ...units(7), oee: 0.78, oeeBasis: 'availability × performance (ideal cycle × units ÷ run time) × quality (good ÷ all units counted)', shifts: shifts(7) } });
  }
  if (p === '/api/v1/planned-stops') {
    // The production calendar (the gateway's checks are not repeated here).
    if (req.method === 'POST') {
      const b = await readBody(req);
      const stop = { id: `stop-${plannedStops.length + 1}-${Date.now()}`, tenantId: 't1', assetId: b?.assetId ?? null, startsAt: b?.startsAt, endsAt: b?.endsAt, reason: (b?.reason ?? '').trim(), createdBy: 'mock', createdAt: iso(now()) };
      // (A repetition is recorded as its first stop only.)
      plannedStops.push(stop);
      plannedStops.sort((a, b2) => Date.parse(a.startsAt) - Date.parse(b2.startsAt));
      return json(res, { stops: [stop] }, 201);
    }
    if (req.method === 'DELETE') {
      const [from, to] = [Date.parse(q.get('from')), Date.parse(q.get('to'))];
      const asset = q.get('assetId');
      const gone = plannedStops.filter((s) => (s.assetId ?? null) === (asset ?? null) && Date.parse(s.startsAt) >= from && Date.parse(s.startsAt) < to);
      for (const s of gone) plannedStops.splice(plannedStops.indexOf(s), 1);
      return json(res, { removed: gone.length });
    }
    const from = Date.parse(q.get('from') ?? iso(now()));
    const to = Date.parse(q.get('to') ?? iso(now() + 366 * 86400e3));
    return json(res, plannedStops.filter((s) => Date.parse(s.endsAt) > from && Date.parse(s.startsAt) < to));
  }
  if ((m = p.match(/^\/api\/v1\/planned-stops\/([^/]+)$/))) {
    if (req.method !== 'DELETE') return problem(res, 405, 'Method Not Allowed', req.method);
    const i = plannedStops.findIndex((s) => s.id === m[1]);
    if (i < 0) return json(res, { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such planned stop' }, 404);
    plannedStops.splice(i, 1);
    res.writeHead(204);
    return res.end();
  }
  if ((m = p.match(/^\/api\/v1\/assets\/([^/]+)\/production$/))) {
    // Production counts, kept per asset (the gateway's checks are not repeated here).
    const list = (production[m[1]] ??= []);
    if (req.method === 'POST') {
      const b = await readBody(req);
      const stored = (b?.counts ?? []).map((c) => ({ assetId: m[1], ...c, idealCycleSeconds: c.idealCycleSeconds ?? null, recordedBy: 'mock', recordedAt: iso(now()) }));
      for (const c of stored) {
        const i = list.findIndex((x) => x.startsAt === c.startsAt);
        if (i >= 0) list.splice(i, 1);
        list.push(c);
      }
      list.sort((a, b) => Date.parse(b.startsAt) - Date.parse(a.startsAt));
      return json(res, { counts: stored });
    }
    if (req.method === 'DELETE') return json(res, { removed: 0 });
    return json(res, list);
  }
  if (p === '/api/v1/spare-parts') {
    return json(res, spareParts);
  }
  if ((m = p.match(/^\/api\/v1\/spare-parts\/([^/]+)\/movements$/))) {
    const part = spareParts.find((x) => x.partNumber === decodeURIComponent(m[1]));
    if (!part) return json(res, { type: 'about:blank', title: 'Not Found', status: 404, detail: 'no such part' }, 404);
    if (req.method !== 'POST') return json(res, []);
    const b = await readBody(req);
    const before = part.onHand;
    part.onHand = b.kind === 'COUNTED' ? b.quantity : part.onHand + b.quantity;
    if (b.kind === 'RECEIVED') part.onOrder = Math.max(0, part.onOrder - b.quantity);
    part.free = part.onHand - part.reserved;
    part.reorder = part.reorderPoint > 0 && part.free + part.onOrder < part.reorderPoint;
    const movement = { partNumber: part.partNumber, kind: b.kind, delta: part.onHand - before, onHand: part.onHand, at: iso(now()), workOrderId: null, by: 'mock', note: b.note ?? '' };
    return json(res, { movement, part }, 201);
  }
  if (p.startsWith('/api/v1/dead-letters')) {
    if (!need('admin')) return;
    if (p === '/api/v1/dead-letters') return json(res, deadLetterTopics.map((t) => ({ topic: t.topic, records: t.letters.length, partitions: 1 })));
    const [, name, action] = p.match(/^\/api\/v1\/dead-letters\/([^/]+)(\/replay)?$/) ?? [];
    const t = deadLetterTopics.find((x) => x.topic === decodeURIComponent(name ?? ''));
    if (!t) return problem(res, 404, 'Not Found', `\`${name}\` is not a dead-letter topic`);
    const b = action ? await readBody(req) : null;
    const reason = (action ? b?.reason : q.get('reason'))?.toLowerCase();
    const sinceRaw = action ? b?.since : q.get('since');
    const ago = /^(\d+)([mhd])$/.exec(sinceRaw ?? '');
    const since = !sinceRaw ? -Infinity : ago ? now() - Number(ago[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[ago[2]] : Date.parse(sinceRaw);
    if (Number.isNaN(since)) return problem(res, 400, 'Bad Request', `since: \`${sinceRaw}\` is neither RFC 3339 nor a duration`);
    const taken = t.letters.filter((l) => (!reason || l.reason.toLowerCase().includes(reason)) && Date.parse(l.at) >= since);
    if (!action) return json(res, taken.slice(-Number(q.get('limit') ?? 50)));
    const published = {};
    let notReplayable = 0;
    let alreadyReplayed = 0;
    for (const l of taken) {
      if (!l.source) notReplayable += 1;
      else if (l.replayedAt && !b?.again) alreadyReplayed += 1;
      else {
        published[l.source.split('/')[0]] = (published[l.source.split('/')[0]] ?? 0) + 1;
        if (!b?.dryRun) l.replayedAt ??= iso(now());
      }
    }
    return json(res, { published, filtered: t.letters.length - taken.length, copies: 0, notReplayable, alreadyReplayed, refused: 0, stopped: null, since: Number.isFinite(since) ? iso(since) : null });
  }
  if (p === '/api/v1/technicians') {
    return json(res, [{ tenantId: 't1', name: 'ana', skills: ['electrical'], shifts: [{ days: ['MON', 'TUE', 'WED', 'THU', 'FRI'], start: '06:00', end: '14:00' }], utcOffsetMinutes: 0, active: true, updatedAt: iso(now()) }]);
  }
  if (p === '/api/v1/schedule' || p === '/api/v1/schedule/apply') {
    const from = now();
    const assignments = workOrders
      .filter((w) => w.status === 'OPEN' || w.status === 'SCHEDULED')
      .map((w, i) => ({
        workOrderId: w.id, code: w.code, assetId: w.assetId, asset: assets.find((a) => a.id === w.assetId)?.code ?? '', priority: w.priority,
        status: w.status, technician: 'ana', start: iso(from + i * 2 * 3600e3), end: iso(from + (i + 1) * 2 * 3600e3), dueBy: w.dueBy ?? iso(from),
        lateHours: 0, skill: 'electrical', plannedStopHours: i === 0 ? 0.5 : 0, whileRunning: false,
      }));
    return json(res, {
      from: iso(from), to: iso(from + 168 * 3600e3), assignments, unassigned: [],
      technicians: [{ name: 'ana', skills: ['electrical'], active: true, availableHours: 40, busyHours: 0, plannedHours: 2 * assignments.length }],
      weightedLateHours: 0, downtimeHours: 2 * assignments.length - (assignments.length > 0 ? 0.5 : 0), truncated: false, timedOut: false, applied: p.endsWith('/apply') ? assignments.length : 0, skipped: 0,
    });
  }
  if (p === '/api/v1/reliability') {
    const cp = Number(q.get('preventiveCost'));
    const cf = Number(q.get('failureCost'));
    const types = [...new Set(assets.map((a) => a.assetType ?? 'machine'))];
    const items = types.map((t, i) => ({
      assetType: t, assets: assets.filter((a) => (a.assetType ?? 'machine') === t).length, failures: 3 + i, suspensions: 2,
      weibull: { shape: 2.5 + 0.3 * i, scale: 900 + 50 * i }, failureRate: 'increasing', meanLifeHours: 800 + 45 * i, b10Hours: 370 + 20 * i,
      replacement: cf > cp && cp > 0 ? { intervalHours: 420 + 10 * i, costPerHour: cp / 600, runToFailureCostPerHour: cf / 800, saving: 0.5 } : null,
      reason: null,
    }));
    return json(res, { at: iso(now()), items });
  }
  return problem(res, 404, 'Not Found', `no route ${req.method} ${p}`);
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  try {
    if (url.pathname.startsWith('/api/')) return await api(req, res, url);
    return await serveStatic(res, url.pathname);
  } catch (e) {
    problem(res, 500, 'Internal Server Error', String(e));
  }
});

// ---- WebSocket (text frames only) ----
const clients = new Set();
function frame(text) {
  const payload = Buffer.from(text);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, len]) : len < 65536 ? Buffer.from([0x81, 126, len >> 8, len & 255]) : Buffer.concat([Buffer.from([0x81, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  return Buffer.concat([head, payload]);
}
function send(c, msg) {
  if (!c.socket.destroyed) c.socket.write(frame(JSON.stringify(msg)));
}
function broadcast(channel, msg) {
  for (const c of clients) if (c.channels.has(channel)) send(c, msg);
}
server.on('upgrade', (req, socket) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const key = req.headers['sec-websocket-key'];
  if (url.pathname !== '/ws' || !key) return socket.destroy();
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  // As the gateway (API.md "Live"): the token offered as the subprotocol `bearer.<token>`
  // beside `mantis.v1`, which the answer names; else `?token=`.
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const bearer = offered.find((p) => p.startsWith('bearer.'))?.slice('bearer.'.length);
  const protocol = offered.includes('mantis.v1') ? 'Sec-WebSocket-Protocol: mantis.v1\r\n' : '';
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${protocol}\r\n`);
  const user = tokens.get(bearer || url.searchParams.get('token'));
  if (!user) {
    const reason = Buffer.from('token missing or expired');
    socket.end(Buffer.concat([Buffer.from([0x88, reason.length + 2, 4401 >> 8, 4401 & 255]), reason]));
    return;
  }
  const c = { socket, channels: new Set(), assetId: null, user };
  clients.add(c);
  send(c, { type: 'hello', user });
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = buf[1] & 128;
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const data = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) data[i] ^= buf[maskOff + (i % 4)];
      buf = buf.subarray(off + len);
      if (op === 8) { socket.end(Buffer.from([0x88, 0])); return; }
      if (op === 9) { socket.write(Buffer.concat([Buffer.from([0x8a, data.length]), data])); continue; }
      if (op !== 1) continue;
      let msg;
      try { msg = JSON.parse(data.toString()); } catch { send(c, { type: 'error', detail: 'not JSON' }); continue; }
      if (msg.type === 'ping') send(c, { type: 'pong' });
      else if (msg.type === 'subscribe') { c.channels.add(msg.channel); if (msg.channel === 'readings') c.assetId = msg.assetId; }
      else if (msg.type === 'unsubscribe') c.channels.delete(msg.channel);
      else send(c, { type: 'error', detail: `unknown message ${msg.type}` });
    }
  });
  const bye = () => clients.delete(c);
  socket.on('close', bye);
  socket.on('error', bye);
});

// live readings (2/s) and a new alert every ALERT_EVERY_S seconds
setInterval(() => {
  const t = now();
  for (const c of clients) {
    if (!c.channels.has('readings') || !c.assetId) continue;
    send(c, { type: 'readings', assetId: c.assetId, data: sensors.filter((s) => s.assetId === c.assetId).map((s) => ({ sensorId: s.id, t: iso(t), value: signal(s, t) })) });
  }
}, 500);
let alertN = 0;
setInterval(() => {
  const a = assets[alertN++ % assets.length];
  const { alert, workOrder } = makeAlert(a, alertN % 2 ? 'CRITICAL' : 'HIGH', 'ANOMALY', `Anomaly score ${(0.86 + Math.random() * 0.1).toFixed(2)} over 0.85`);
  broadcast('alerts', { type: 'alert', data: alert });
  broadcast('workOrders', { type: 'workOrder', data: workOrder });
}, ALERT_EVERY_S * 1000);

server.listen(PORT, HOST, () => console.log(`mock gateway on http://${HOST}:${PORT} (users admin/admin, manager/manager, tech/tech, op/op)`));
