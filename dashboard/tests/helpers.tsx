import { act, render } from '@testing-library/react';
import type { ReactElement } from 'react';
import { vi } from 'vitest';
import { resetSessionCache, setSession } from '../src/api/session';
import type { Alert, Asset, AssetHealth, Role, WorkOrder } from '../src/api/types';
import type { SocketLike } from '../src/live/LiveClient';
import { createServices, ServicesContext, type Services } from '../src/services';

/** A fake browser WebSocket: tests open, close and push messages by hand. */
export class FakeSocket implements SocketLike {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;
  readyState = 0;
  sent: unknown[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  closedWith: number | null = null;
  constructor(
    readonly url: string,
    readonly protocols: string[] = [],
  ) {}
  send(data: string) {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    this.closedWith = code;
    this.readyState = 3;
  }
  // test controls
  open() {
    act(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  drop(code = 1006) {
    act(() => {
      this.readyState = 3;
      this.onclose?.({ code });
    });
  }
  push(msg: unknown) {
    act(() => {
      this.onmessage?.({ data: JSON.stringify(msg) });
    });
  }
}

export function socketFactory() {
  const sockets: FakeSocket[] = [];
  const factory = (url: string, protocols: string[] = []) => {
    const s = new FakeSocket(url, protocols);
    sockets.push(s);
    return s;
  };
  return { sockets, factory, last: () => sockets[sockets.length - 1] };
}

type Handler = (req: { method: string; url: URL; body: unknown; headers: Record<string, string> }) =>
  | { status?: number; body?: unknown; headers?: Record<string, string>; text?: string }
  | undefined;

export interface MockFetch {
  fetch: typeof fetch;
  calls: { method: string; url: URL; body: unknown; headers: Record<string, string> }[];
  /** When true every call fails like a dropped network. */
  down: boolean;
}

/** A fetch that routes `METHOD /path` (query ignored) to handlers; unknown routes → 404 problem. */
export function mockFetch(routes: Record<string, Handler | unknown>): MockFetch {
  const m: MockFetch = {
    calls: [],
    down: false,
    fetch: vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      if (m.down) throw new TypeError('Failed to fetch');
      const url = new URL(String(input), 'http://localhost');
      const method = (init?.method ?? 'GET').toUpperCase();
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      const headers = (init?.headers ?? {}) as Record<string, string>;
      const req = { method, url, body, headers };
      m.calls.push(req);
      const key = `${method} ${url.pathname}`;
      const route = routes[key];
      if (route === undefined) {
        return new Response(JSON.stringify({ title: 'Not Found', status: 404, detail: `no route ${key}` }), {
          status: 404,
          headers: { 'Content-Type': 'application/problem+json' },
        });
      }
      const out = typeof route === 'function' ? (route as Handler)(req) : { body: route };
      const status = out?.status ?? 200;
      const text = out?.text ?? (out?.body === undefined ? '' : JSON.stringify(out.body));
      return new Response(status === 204 ? null : text, {
        status,
        headers: { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json', ...(out?.headers ?? {}) },
      });
    }) as unknown as typeof fetch,
  };
  return m;
}

export function login(role: Role = 'manager', username = 'alice', tenantId = 't1') {
  sessionStorage.clear();
  resetSessionCache();
  setSession({
    token: 'tok-123',
    expiresAt: '2099-01-01T00:00:00.000Z',
    user: { username, displayName: username.toUpperCase(), role, tenantId },
  });
}

export function setup(routes: Record<string, Handler | unknown>) {
  const mf = mockFetch(routes);
  const sf = socketFactory();
  const services = createServices({
    fetchImpl: mf.fetch,
    socketFactory: sf.factory,
    location: { protocol: 'http:', host: 'localhost' },
  });
  return { mf, sf, services };
}

export function renderWith(services: Services, ui: ReactElement) {
  return render(<ServicesContext.Provider value={services}>{ui}</ServicesContext.Provider>);
}

// ---- fixtures ----

export function asset(code: string, over: Partial<Asset> = {}): Asset {
  return {
    id: `id-${code}`,
    tenantId: 't1',
    code,
    name: `Pump ${code}`,
    assetType: 'pump',
    location: 'Hall 1',
    line: 'L1',
    criticality: 'HIGH',
    ...over,
  };
}

export function health(code: string, status: AssetHealth['status'], over: Partial<Asset> = {}): AssetHealth {
  return {
    asset: asset(code, over),
    status,
    anomaly: { score: 0.4, threshold: 0.8, windowStart: '2026-12-03T07:00:00.000Z' },
    rul: { cycles: 150, lower: 120, upper: 180, threshold: 100, predictedAt: '2026-12-03T07:00:00.000Z' },
    openAlerts: status === 'OK' ? 0 : 1,
    openWorkOrders: 0,
    lastSeen: new Date().toISOString(),
  };
}

export function alert(id: string, over: Partial<Alert> = {}): Alert {
  return {
    id,
    assetId: 'id-P1',
    severity: 'HIGH',
    kind: 'ANOMALY',
    message: `alert ${id}`,
    createdAt: '2026-12-03T07:00:00.000Z',
    workOrderId: null,
    triggerEvent: `ev-${id}`,
    notifyOnCall: false,
    acknowledgedBy: null,
    acknowledgedAt: null,
    assignee: null,
    ...over,
  };
}

export function workOrder(code: string, status: WorkOrder['status'], over: Partial<WorkOrder> = {}): WorkOrder {
  return {
    id: `wo-${code}`,
    code,
    assetId: 'id-P1',
    cause: 'anomaly',
    priority: 'NORMAL',
    status,
    createdAt: '2026-12-03T07:00:00.000Z',
    dueBy: '2099-12-04T07:00:00.000Z',
    description: `fix ${code}`,
    rule: 'r1',
    triggerEvent: null,
    technician: null,
    parts: [],
    updatedAt: '2026-12-03T07:00:00.000Z',
    ...over,
  };
}
