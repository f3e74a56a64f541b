// The app's long-lived services (API client, live client, connectivity) and React hooks on them.
import { createContext, useCallback, useContext, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ApiClient, ApiError } from './api/client';
import { clearSession, getSession, getToken, setSession, subscribeSession, type Session } from './api/session';
import type { Asset, ServerMessage } from './api/types';
import { ConnectivityStore, type Connectivity } from './live/connectivity';
import { LiveClient, liveProtocols, liveUrl, type LiveStatus, type SocketFactory } from './live/LiveClient';

export interface Services {
  api: ApiClient;
  live: LiveClient;
  connectivity: ConnectivityStore;
  /** Cached asset list (id → Asset) for labels, of the session's user, and when it was read. */
  assetCache: { list: Asset[] | null; pending: Promise<Asset[]> | null; readAt?: number; epoch: number };
}

export interface ServiceOptions {
  fetchImpl?: typeof fetch;
  socketFactory?: SocketFactory;
  location?: { protocol: string; host: string };
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export function goToLogin(): void {
  if (!location.hash.startsWith('#/login')) location.hash = '#/login';
}

export function createServices(o: ServiceOptions = {}): Services {
  const connectivity = new ConnectivityStore();
  // A 401 for a token the session has replaced since (a request in flight while the password
  // was changed) is no reason to log out.
  const onUnauthorized = (used?: string | null) => {
    if (used !== undefined && used !== null && used !== getToken()) return;
    clearSession();
    goToLogin();
  };
  const api = new ApiClient({
    fetchImpl: o.fetchImpl,
    getToken,
    onUnauthorized,
    onReachability: (reachable, ok) => {
      connectivity.setHttp(reachable);
      if (ok) connectivity.touch();
    },
  });
  const live = new LiveClient({
    url: () => liveUrl(getToken(), o.location ?? location),
    protocols: () => liveProtocols(getToken()),
    socketFactory: o.socketFactory,
    initialBackoffMs: o.initialBackoffMs,
    maxBackoffMs: o.maxBackoffMs,
    onUnauthorized,
    // A role changed: the session's user is read again (what the dashboard shows and offers).
    onRightsChanged: () => {
      const asked = getToken();
      void api
        .me()
        .then((user) => {
          const s = getSession();
          // Still the session it was asked for (not another login meanwhile).
          if (s && s.token === asked) setSession({ token: s.token, expiresAt: s.expiresAt, user });
        })
        .catch(() => undefined);
    },
  });
  // The gateway refuses an expired token at the upgrade (HTTP 401), which a browser WebSocket
  // only reports as a failed connection: when the socket is down, ask /auth/me (throttled) —
  // a 401 there logs out, a network error marks HTTP offline too.
  let lastProbe = 0;
  live.onStatus((s) => {
    if (s === 'online') connectivity.setWs(true);
    else if (s === 'offline') {
      connectivity.setWs(false);
      if (getToken() && Date.now() - lastProbe > 15_000) {
        lastProbe = Date.now();
        api.me().catch(() => undefined);
      }
    }
  });
  live.onAny(() => connectivity.touch());
  // A new token of the same session (a changed password ends the old one): the socket opened
  // with the old token is opened again with the new one, before the gateway closes it (4401).
  const assetCache: Services['assetCache'] = { list: null, pending: null, epoch: 0 };
  // Whose session it is: another user (a session ended by expiry, then someone else logged
  // in on the same screen, maybe of another tenant) never sees the previous one's assets.
  const owner = (s: Session | null) => (s ? `${s.user.tenantId}/${s.user.username}` : null);
  let user = owner(getSession());
  let token = getToken();
  subscribeSession(() => {
    const next = getToken();
    if (next && token && next !== token) live.reconnect();
    token = next;
    const nextUser = owner(getSession());
    if (nextUser !== user) {
      assetCache.list = null;
      assetCache.pending = null;
      assetCache.readAt = undefined;
      assetCache.epoch += 1;
      user = nextUser;
    }
  });
  return { api, live, connectivity, assetCache };
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const s = useContext(ServicesContext);
  if (!s) throw new Error('ServicesContext missing');
  return s;
}

export function useSession(): Session | null {
  return useSyncExternalStore(subscribeSession, getSession, getSession);
}

export function useConnectivity(): Connectivity & { offline: boolean } {
  const { connectivity } = useServices();
  const snap = useSyncExternalStore(connectivity.subscribe, connectivity.getSnapshot, connectivity.getSnapshot);
  return { ...snap, offline: (snap.wsSettled && !snap.wsOnline) || !snap.httpOnline };
}

export function useLiveStatus(): LiveStatus {
  const { live } = useServices();
  const [s, setS] = useState(live.status);
  useEffect(() => {
    setS(live.status);
    return live.onStatus(setS);
  }, [live]);
  return s;
}

/** Subscribes to a live channel while mounted. */
export function useLiveChannel(channel: 'alerts' | 'workOrders' | 'readings', assetId?: string, enabled = true): void {
  const { live } = useServices();
  useEffect(() => {
    if (!enabled) return;
    return live.subscribe(channel, assetId);
  }, [live, channel, assetId, enabled]);
}

/** Calls `handler` for each live message of `type` while mounted (latest handler wins). */
export function useLiveMessage<K extends ServerMessage['type']>(
  type: K,
  handler: (msg: Extract<ServerMessage, { type: K }>) => void,
): void {
  const { live } = useServices();
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => live.on(type, (m) => ref.current(m)), [live, type]);
}

export interface Resource<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload: () => Promise<void>;
  setData: (f: (prev: T | undefined) => T | undefined) => void;
}

/**
 * Loads data and keeps the last good value when a later load fails (the kiosk keeps showing
 * the last known state). `reload` can be called by polls and live messages.
 */
/**
 * Data loaded by `loader` (again on `deps` changes and `reload`), changed in place by
 * `setData` (live messages, an action's answer). A change made while a reload is in flight is
 * made again on what the reload brings, so the reload neither undoes it nor is thrown away.
 * `onApplied` is called with each loaded value as it is applied.
 */
export function useResource<T>(loader: () => Promise<T>, deps: unknown[], onApplied?: (loaded: T) => void): Resource<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const loaderRef = useRef(loader);
  loaderRef.current = loader;
  const appliedRef = useRef(onApplied);
  appliedRef.current = onApplied;
  const seq = useRef(0);
  const alive = useRef(true);
  /** The changes made by hand (a live message, an action's answer) since the latest reload began. */
  const edits = useRef<((prev: T | undefined) => T | undefined)[]>([]);
  const inFlight = useRef(false);

  const reload = useCallback(async (): Promise<void> => {
    const my = ++seq.current;
    edits.current = [];
    inFlight.current = true;
    setLoading(true);
    try {
      const v = await loaderRef.current();
      if (!alive.current || my !== seq.current) return;
      // Made again on what was read: a card moved, an alert acknowledged while it was read
      // is not put back.
      const made = edits.current;
      edits.current = [];
      setDataState(made.reduce<T | undefined>((acc, f) => f(acc), v));
      appliedRef.current?.(v);
      setError(null);
    } catch (e) {
      if (!alive.current || my !== seq.current) return;
      setError(e instanceof ApiError ? e : new ApiError({ status: 0, title: 'Error', detail: String(e) }));
    } finally {
      if (my === seq.current) {
        inFlight.current = false;
        edits.current = [];
        if (alive.current) setLoading(false);
      }
    }
  }, []);

  useEffect(() => {
    alive.current = true;
    void reload();
    return () => {
      alive.current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  const setData = useCallback((f: (prev: T | undefined) => T | undefined) => {
    if (inFlight.current) edits.current.push(f);
    setDataState(f);
  }, []);
  const reloadNow = useCallback(() => reload(), [reload]);
  return { data, error, loading, reload: reloadNow, setData };
}

/** Runs `fn` every `ms` while mounted. */
export function useInterval(fn: () => void, ms: number | null): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (ms === null) return;
    const id = setInterval(() => ref.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

/** How long the cached asset list is used before it is read again. */
const ASSETS_FRESH_MS = 5 * 60_000;

/** The asset list (cached for the session, read again every few minutes), for names and codes
 *  in lists. */
export function useAssets(): Map<string, Asset> {
  const { api, assetCache } = useServices();
  const [list, setList] = useState<Asset[]>(assetCache.list ?? []);
  useEffect(() => {
    let alive = true;
    // Read again after a while: assets registered meanwhile appear in the pickers.
    const fresh = assetCache.readAt !== undefined && Date.now() - assetCache.readAt < ASSETS_FRESH_MS;
    if (assetCache.list && fresh) {
      setList(assetCache.list);
      return;
    }
    if (assetCache.list) setList(assetCache.list);
    if (!assetCache.pending) {
      // A list asked for by the previous session's user is not kept for the next.
      const epoch = assetCache.epoch;
      assetCache.pending = api.assets().then(
        (l) => {
          if (epoch !== assetCache.epoch) return [];
          assetCache.list = l;
          assetCache.pending = null;
          assetCache.readAt = Date.now();
          return l;
        },
        (e) => {
          if (epoch === assetCache.epoch) assetCache.pending = null;
          throw e;
        },
      );
    }
    assetCache.pending.then(
      (l) => alive && setList(l),
      () => undefined,
    );
    return () => {
      alive = false;
    };
  }, [api, assetCache]);
  const map = new Map<string, Asset>();
  for (const a of list) map.set(a.id, a);
  return map;
}
