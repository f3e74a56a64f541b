import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, LiveClient, liveProtocols, liveUrl, RESYNC_EVERY_MS, type LiveStatus } from '../src/live/LiveClient';
import { ConnectivityStore } from '../src/live/connectivity';
import { socketFactory } from './helpers';

function make(opts: Partial<ConstructorParameters<typeof LiveClient>[0]> = {}) {
  const sf = socketFactory();
  const live = new LiveClient({ url: () => 'ws://h/ws?token=t', socketFactory: sf.factory, pingIntervalMs: 0, ...opts });
  const statuses: LiveStatus[] = [];
  live.onStatus((s) => statuses.push(s));
  return { live, sf, statuses };
}

describe('backoffDelay', () => {
  it('doubles from 1 s and caps at 30 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((a) => backoffDelay(a))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });
});

describe('LiveClient', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('connects, goes online and sends subscriptions made before the socket opened', () => {
    const { live, sf, statuses } = make();
    live.subscribe('alerts');
    live.subscribe('readings', 'asset-1');
    live.connect();
    expect(sf.sockets).toHaveLength(1);
    expect(sf.last().url).toBe('ws://h/ws?token=t');
    sf.last().open();
    expect(live.online).toBe(true);
    expect(statuses).toEqual(['connecting', 'online']);
    expect(sf.last().sent).toEqual([
      { type: 'subscribe', channel: 'alerts' },
      { type: 'subscribe', channel: 'readings', assetId: 'asset-1' },
    ]);
  });

  it('reference-counts subscriptions and unsubscribes on the last release', () => {
    const { live, sf } = make();
    live.connect();
    sf.last().open();
    const off1 = live.subscribe('alerts');
    const off2 = live.subscribe('alerts');
    expect(sf.last().sent).toEqual([{ type: 'subscribe', channel: 'alerts' }]);
    off1();
    off1(); // idempotent
    expect(sf.last().sent).toHaveLength(1);
    off2();
    expect(sf.last().sent[1]).toEqual({ type: 'unsubscribe', channel: 'alerts' });
    expect(live.subscriptions).toEqual([]);
  });

  it('readings follows one asset: subscribing to another replaces it', () => {
    const { live, sf } = make();
    live.connect();
    sf.last().open();
    live.subscribe('readings', 'a1');
    live.subscribe('readings', 'a2');
    expect(sf.last().sent).toEqual([
      { type: 'subscribe', channel: 'readings', assetId: 'a1' },
      { type: 'subscribe', channel: 'readings', assetId: 'a2' },
    ]);
    expect(live.subscriptions).toEqual([{ channel: 'readings', assetId: 'a2' }]);
  });

  it('dispatches typed messages to handlers and ignores garbage', () => {
    const { live, sf } = make();
    const onAlert = vi.fn();
    const onAny = vi.fn();
    live.on('alert', onAlert);
    live.onAny(onAny);
    live.connect();
    sf.last().open();
    sf.last().push({ type: 'alert', data: { id: 'x' } });
    sf.last().push({ type: 'pong' });
    sf.last().onmessage?.({ data: 'not json' });
    expect(onAlert).toHaveBeenCalledWith({ type: 'alert', data: { id: 'x' } });
    expect(onAlert).toHaveBeenCalledTimes(1);
    expect(onAny).toHaveBeenCalledTimes(2);
  });

  it('reconnects with back-off 1 s → 2 s → 4 s … and goes offline meanwhile', () => {
    const { live, sf } = make();
    live.connect();
    sf.last().drop(); // first attempt fails
    expect(live.status).toBe('offline');
    expect(sf.sockets).toHaveLength(1);
    vi.advanceTimersByTime(999);
    expect(sf.sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sf.sockets).toHaveLength(2);
    sf.last().drop();
    vi.advanceTimersByTime(1999);
    expect(sf.sockets).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(sf.sockets).toHaveLength(3);
    sf.last().drop();
    vi.advanceTimersByTime(4000);
    expect(sf.sockets).toHaveLength(4);
    // Keep failing: the delay caps at 30 s.
    for (let i = 0; i < 10; i++) {
      sf.last().drop();
      vi.advanceTimersByTime(30000);
    }
    expect(live.nextBackoffMs).toBe(30000);
    const n = sf.sockets.length;
    sf.last().drop();
    vi.advanceTimersByTime(29999);
    expect(sf.sockets).toHaveLength(n);
    vi.advanceTimersByTime(1);
    expect(sf.sockets).toHaveLength(n + 1);
  });

  it('re-subscribes every channel after a reconnect and resets the back-off', () => {
    const { live, sf, statuses } = make();
    live.subscribe('alerts');
    live.subscribe('workOrders');
    live.subscribe('readings', 'a9');
    live.connect();
    sf.last().open();
    sf.last().drop();
    expect(live.online).toBe(false);
    vi.advanceTimersByTime(1000);
    sf.last().drop();
    vi.advanceTimersByTime(2000);
    const s = sf.last();
    s.open();
    expect(live.online).toBe(true);
    expect(s.sent).toEqual([
      { type: 'subscribe', channel: 'alerts' },
      { type: 'subscribe', channel: 'workOrders' },
      { type: 'subscribe', channel: 'readings', assetId: 'a9' },
    ]);
    expect(live.nextBackoffMs).toBe(1000);
    expect(statuses).toEqual(['connecting', 'online', 'offline', 'online']);
  });

  it('asks the pages to reload after a reconnect and when the gateway skipped it ahead, not on the first open', () => {
    const { live, sf } = make();
    const resyncs: string[] = [];
    const lagged: number[] = [];
    live.on('resync', (m) => resyncs.push(m.reason));
    live.on('lagged', (m) => lagged.push(m.skipped));
    live.connect();
    sf.last().open();
    expect(resyncs).toEqual([]);
    sf.last().push({ type: 'lagged', channel: 'alerts', skipped: 12 });
    expect(lagged).toEqual([12]);
    expect(resyncs).toEqual(['lagged']);
    // A `resync` sent by a server is not taken as the client's own.
    sf.last().push({ type: 'resync', reason: 'lagged' });
    expect(resyncs).toEqual(['lagged']);
    sf.last().drop();
    vi.advanceTimersByTime(1000);
    sf.last().open();
    // Within 5 s of the last ask: held back, then asked once.
    expect(resyncs).toEqual(['lagged']);
    sf.last().push({ type: 'lagged', channel: 'alerts', skipped: 3 });
    vi.advanceTimersByTime(RESYNC_EVERY_MS);
    expect(resyncs).toEqual(['lagged', 'reconnected']);
    // Logged out and in again: a first open again.
    live.close();
    live.connect();
    sf.last().open();
    expect(resyncs).toEqual(['lagged', 'reconnected']);
  });

  it('stops on close code 4401 and reports unauthorized', () => {
    const onUnauthorized = vi.fn();
    const { live, sf } = make({ onUnauthorized });
    live.connect();
    sf.last().open();
    sf.last().drop(4401);
    expect(onUnauthorized).toHaveBeenCalled();
    vi.advanceTimersByTime(60000);
    expect(sf.sockets).toHaveLength(1);
  });

  it('on 4401 for credentials the session has replaced since, opens again with the new ones', () => {
    const onUnauthorized = vi.fn();
    let token = 'old';
    // As the dashboard presents them: the token as a subprotocol, the URL the same.
    const loc = { protocol: 'http:', host: 'h' };
    const { live, sf } = make({ onUnauthorized, url: () => liveUrl(token, loc), protocols: () => liveProtocols(token) });
    live.connect();
    sf.last().open();
    token = 'new';
    sf.last().drop(4401);
    expect(onUnauthorized).not.toHaveBeenCalled();
    expect(sf.sockets).toHaveLength(2);
    expect(sf.last().url).toBe('ws://h/ws');
    expect(sf.last().protocols).toEqual(['mantis.v1', 'bearer.new']);
    sf.last().open();
    // The new ones refused too: that is the end of the session.
    sf.last().drop(4401);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    live.close();
  });

  it('on 4403 (rights changed) reopens at once and says so, without logging out', () => {
    const onUnauthorized = vi.fn();
    const onRightsChanged = vi.fn();
    const { live, sf } = make({ onUnauthorized, onRightsChanged });
    live.connect();
    sf.last().open();
    sf.last().drop(4403);
    expect(onRightsChanged).toHaveBeenCalledTimes(1);
    expect(onUnauthorized).not.toHaveBeenCalled();
    expect(sf.sockets).toHaveLength(2);
    live.close();
  });

  it('close() stops reconnecting', () => {
    const { live, sf } = make();
    live.connect();
    sf.last().drop();
    live.close();
    vi.advanceTimersByTime(60000);
    expect(sf.sockets).toHaveLength(1);
    expect(live.status).toBe('closed');
  });

  it('pings and drops a silent connection after the idle timeout', () => {
    const { live, sf } = make({ pingIntervalMs: 1000, idleTimeoutMs: 3500 });
    live.connect();
    const s = sf.last();
    s.open();
    vi.advanceTimersByTime(1000);
    expect(s.sent).toContainEqual({ type: 'ping' });
    vi.advanceTimersByTime(3000); // nothing came back for 4 s
    expect(s.closedWith).toBe(4000);
    expect(live.status).toBe('offline');
    vi.advanceTimersByTime(1000);
    expect(sf.sockets).toHaveLength(2);
  });

  it('feeds the connectivity store (offline flag, last update)', () => {
    const store = new ConnectivityStore();
    const { live, sf } = make();
    live.onStatus((s) => (s === 'online' ? store.setWs(true) : s === 'offline' ? store.setWs(false) : undefined));
    live.onAny(() => store.touch(12345));
    expect(store.offline).toBe(false); // not settled yet: no banner at start
    live.connect();
    sf.last().open();
    sf.last().push({ type: 'hello', user: {} });
    expect(store.offline).toBe(false);
    expect(store.snapshot.lastUpdate).toBe(12345);
    sf.last().drop();
    expect(store.offline).toBe(true);
    store.setWs(true);
    store.setHttp(false);
    expect(store.offline).toBe(true);
  });
});

describe('liveUrl', () => {
  it('uses wss on https and offers the token as a subprotocol', () => {
    expect(liveUrl('h.p.s', { protocol: 'https:', host: 'x:1' })).toBe('wss://x:1/ws');
    expect(liveProtocols('h.p.s')).toEqual(['mantis.v1', 'bearer.h.p.s']);
    expect(liveUrl('t', { protocol: 'http:', host: 'h' })).toBe('ws://h/ws');
    expect(liveUrl(null, { protocol: 'http:', host: 'h' })).toBeNull();
    expect(liveProtocols(null)).toEqual([]);
  });
  it('puts a token that cannot be a subprotocol in the URL, encoded', () => {
    expect(liveUrl('a b', { protocol: 'https:', host: 'x:1' })).toBe('wss://x:1/ws?token=a%20b');
    expect(liveProtocols('a b')).toEqual([]);
  });
});

describe('LiveClient defaults', () => {
  it('keeps the defaults for options given as undefined', () => {
    const created: string[] = [];
    const Orig = globalThis.WebSocket;
    globalThis.WebSocket = class {
      constructor(url: string, protocols?: string[]) {
        created.push(url);
        if (protocols !== undefined) created.push(...protocols);
      }
      close() {}
    } as unknown as typeof WebSocket;
    try {
      const live = new LiveClient({ url: () => 'ws://h/ws?token=t', socketFactory: undefined, initialBackoffMs: undefined });
      live.connect();
      expect(created).toEqual(['ws://h/ws?token=t']);
      expect(live.nextBackoffMs).toBe(1000);
      live.close();
    } finally {
      globalThis.WebSocket = Orig;
    }
  });
});
