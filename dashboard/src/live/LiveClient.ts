// WebSocket client for `GET /ws` (API.md "Live"; the token offered as the subprotocol
// `bearer.<jwt>` beside `mantis.v1`, out of the URL that proxies log): subscribe/unsubscribe with
// reference counts, reconnect with exponential back-off (1 s → 30 s), re-subscribe after every
// reconnect, an online/offline status, a keep-alive ping, and typed message dispatch. After a
// reconnect, and when the gateway says this client was skipped ahead (`lagged`), it dispatches
// `{type: 'resync'}`: what was missed meanwhile is only in the API, so the pages reload.
import type { ClientMessage, LiveChannel, ServerMessage } from '../api/types';

export type LiveStatus = 'idle' | 'connecting' | 'online' | 'offline' | 'closed';

/** The part of the browser WebSocket the client uses (a fake one in tests). */
export interface SocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

export interface LiveClientOptions {
  /** Builds the URL on every attempt (the token may have changed). Null: not logged in. */
  url: () => string | null;
  /** The subprotocols offered on every attempt (the token may have changed). */
  protocols?: () => string[];
  socketFactory?: SocketFactory;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Keep-alive ping period; 0 disables. */
  pingIntervalMs?: number;
  /** No message for this long → the socket is taken as dead and reopened; 0 disables. */
  idleTimeoutMs?: number;
  /** Close code 4401: the token expired. */
  onUnauthorized?: () => void;
  /** Close code 4403: the same credentials give other rights now (reopened at once). */
  onRightsChanged?: () => void;
}

type Handler<T> = (msg: T) => void;
type MessageOf<K extends ServerMessage['type']> = Extract<ServerMessage, { type: K }>;

const OPEN = 1;

/** The pages are asked to reload at most this often. */
export const RESYNC_EVERY_MS = 5000;

/** Back-off before reconnect attempt `attempt` (0-based): 1 s, 2 s, 4 s … capped at max. */
export function backoffDelay(attempt: number, initialMs = 1000, maxMs = 30000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
}

export class LiveClient {
  private readonly opts: Required<Omit<LiveClientOptions, 'onUnauthorized' | 'onRightsChanged'>> &
    Pick<LiveClientOptions, 'onUnauthorized' | 'onRightsChanged'>;
  private socket: SocketLike | null = null;
  private statusValue: LiveStatus = 'idle';
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private lastMessageAt = 0;
  private wanted = false;
  /** Whether a connection was open before (the next open is a reconnect). */
  private wasOnline = false;
  /** When the pages were last asked to reload, and the one ask held back meanwhile. */
  private lastResyncAt = -Infinity;
  private resyncTimer: ReturnType<typeof setTimeout> | null = null;
  /** channel → reference count; readings carries the asset id. */
  private readonly subs = new Map<LiveChannel, number>();
  private readingsAsset: string | null = null;
  private readonly handlers = new Map<string, Set<Handler<never>>>();
  private readonly statusListeners = new Set<(s: LiveStatus) => void>();

  constructor(opts: LiveClientOptions) {
    // Options given as `undefined` keep their defaults.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as LiveClientOptions;
    this.opts = {
      socketFactory: (url, protocols) =>
        (protocols.length > 0 ? new WebSocket(url, protocols) : new WebSocket(url)) as unknown as SocketLike,
      protocols: () => [],
      initialBackoffMs: 1000,
      maxBackoffMs: 30000,
      pingIntervalMs: 20000,
      idleTimeoutMs: 60000,
      ...given,
    };
  }

  get status(): LiveStatus {
    return this.statusValue;
  }

  get online(): boolean {
    return this.statusValue === 'online';
  }

  /** Milliseconds before the next reconnect attempt would be scheduled. */
  get nextBackoffMs(): number {
    return backoffDelay(this.attempt, this.opts.initialBackoffMs, this.opts.maxBackoffMs);
  }

  /** Opens the connection (and keeps it open until `close`). */
  connect(): void {
    this.wanted = true;
    if (this.socket || this.reconnectTimer) return;
    this.open();
  }

  /** Opens the connection again at once, when it is wanted (the credentials changed: the
   *  gateway would close a socket opened with the old ones). */
  reconnect(): void {
    if (!this.wanted) return;
    // The same session: what is missed meanwhile is asked for again once reopened.
    const was = this.wasOnline;
    this.close();
    this.wasOnline = was;
    this.connect();
  }

  /** Closes for good (logout). */
  close(): void {
    this.wanted = false;
    this.clearTimers();
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.onmessage = null;
      s.onerror = null;
      s.onopen = null;
      try {
        s.close(1000, 'bye');
      } catch {
        /* already closed */
      }
    }
    this.attempt = 0;
    this.wasOnline = false;
    this.setStatus('closed');
  }

  /**
   * Subscribes to a channel; returns the matching unsubscribe. For `readings` only one asset
   * is followed at a time: subscribing to another replaces it.
   */
  subscribe(channel: LiveChannel, assetId?: string): () => void {
    const count = this.subs.get(channel) ?? 0;
    this.subs.set(channel, count + 1);
    if (channel === 'readings') {
      const changed = this.readingsAsset !== (assetId ?? null);
      this.readingsAsset = assetId ?? null;
      if (changed || count === 0) this.sendSubscribe(channel);
    } else if (count === 0) {
      this.sendSubscribe(channel);
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.unsubscribe(channel);
    };
  }

  private unsubscribe(channel: LiveChannel): void {
    const count = this.subs.get(channel) ?? 0;
    if (count <= 1) {
      this.subs.delete(channel);
      if (channel === 'readings') this.readingsAsset = null;
      this.send({ type: 'unsubscribe', channel });
    } else {
      this.subs.set(channel, count - 1);
    }
  }

  /** Currently subscribed channels (for tests and diagnostics). */
  get subscriptions(): { channel: LiveChannel; assetId?: string }[] {
    return [...this.subs.keys()].map((channel) =>
      channel === 'readings' && this.readingsAsset ? { channel, assetId: this.readingsAsset } : { channel },
    );
  }

  /** Adds a handler for one server message type; returns its remover. */
  on<K extends ServerMessage['type']>(type: K, handler: Handler<MessageOf<K>>): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set!.delete(handler as Handler<never>);
  }

  /** Adds a handler for every server message; returns its remover. */
  onAny(handler: Handler<ServerMessage>): () => void {
    let set = this.handlers.get('*');
    if (!set) this.handlers.set('*', (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set!.delete(handler as Handler<never>);
  }

  onStatus(listener: (s: LiveStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  // ---- internals ----

  private setStatus(s: LiveStatus): void {
    if (s === this.statusValue) return;
    this.statusValue = s;
    this.statusListeners.forEach((l) => l(s));
  }

  private open(): void {
    this.reconnectTimer = null;
    const url = this.opts.url();
    if (!url) {
      this.setStatus('offline');
      return;
    }
    // The credentials presented: the token travels as a subprotocol, not in the URL.
    const protocols = this.opts.protocols();
    const presented = `${url} ${protocols.join(',')}`;
    this.setStatus(this.attempt === 0 && this.statusValue !== 'offline' ? 'connecting' : 'offline');
    let socket: SocketLike;
    try {
      socket = this.opts.socketFactory(url, protocols);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.lastMessageAt = Date.now();
      this.setStatus('online');
      this.resubscribe();
      this.startPing();
      // Events published while it was down are not sent again.
      if (this.wasOnline) this.resync('reconnected');
      this.wasOnline = true;
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.lastMessageAt = Date.now();
      this.dispatch(ev.data);
    };
    socket.onerror = () => {
      /* a close event follows */
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopPing();
      if (ev.code === 4403 && this.wanted) {
        this.opts.onRightsChanged?.();
        this.open();
        return;
      }
      if (ev.code === 4401) {
        // Opened with credentials the session has replaced since (a changed password ended
        // them): opened again with the current ones, not a reason to log out.
        const current = this.opts.url();
        if (this.wanted && current !== null && `${current} ${this.opts.protocols().join(',')}` !== presented) {
          this.open();
          return;
        }
        this.wanted = false;
        this.setStatus('offline');
        this.opts.onUnauthorized?.();
        return;
      }
      this.setStatus('offline');
      if (this.wanted) this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (!this.wanted || this.reconnectTimer) return;
    const delay = this.nextBackoffMs;
    this.attempt += 1;
    this.setStatus('offline');
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  private resubscribe(): void {
    for (const channel of this.subs.keys()) this.sendSubscribe(channel);
  }

  private sendSubscribe(channel: LiveChannel): void {
    if (channel === 'readings') {
      if (this.readingsAsset) this.send({ type: 'subscribe', channel, assetId: this.readingsAsset });
    } else {
      this.send({ type: 'subscribe', channel });
    }
  }

  private send(msg: ClientMessage): boolean {
    const s = this.socket;
    if (!s || s.readyState !== OPEN) return false;
    try {
      s.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  private dispatch(data: unknown): void {
    if (typeof data !== 'string') return;
    let msg: ServerMessage;
    try {
      msg = JSON.parse(data) as ServerMessage;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string' || msg.type === 'resync') return;
    this.emit(msg);
    if (msg.type === 'lagged') this.resync('lagged');
  }

  /** Asks the pages to reload: at once, then at most once per {@link RESYNC_EVERY_MS} (a
   *  client lagging through a burst is told so again and again; every page reloading each
   *  time would add to the burst). */
  private resync(reason: 'reconnected' | 'lagged'): void {
    const wait = this.lastResyncAt + RESYNC_EVERY_MS - Date.now();
    if (wait <= 0) {
      this.lastResyncAt = Date.now();
      this.emit({ type: 'resync', reason });
      return;
    }
    if (this.resyncTimer) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = null;
      this.lastResyncAt = Date.now();
      this.emit({ type: 'resync', reason });
    }, wait);
  }

  private emit(msg: ServerMessage): void {
    const set = this.handlers.get(msg.type);
    const all = this.handlers.get('*');
    for (const h of [...(set ?? []), ...(all ?? [])]) {
      try {
        (h as Handler<ServerMessage>)(msg);
      } catch (e) {
        console.error('live handler failed', e);
      }
    }
  }

  private startPing(): void {
    this.stopPing();
    const { pingIntervalMs, idleTimeoutMs } = this.opts;
    if (!pingIntervalMs) return;
    this.pingTimer = setInterval(() => {
      const s = this.socket;
      if (!s) return;
      if (idleTimeoutMs && Date.now() - this.lastMessageAt > idleTimeoutMs) {
        // Half-open connection: nothing (not even pongs) came back. Drop it and reconnect.
        this.socket = null;
        this.stopPing();
        s.onclose = null;
        try {
          s.close(4000, 'idle');
        } catch {
          /* ignore */
        }
        this.setStatus('offline');
        this.scheduleReconnect();
        return;
      }
      this.send({ type: 'ping' });
    }, pingIntervalMs);
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private clearTimers(): void {
    this.stopPing();
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }
}

/** The subprotocol the gateway answers with; the token travels beside it. */
export const LIVE_PROTOCOL = 'mantis.v1';

/** Whether `token` can be offered as a subprotocol (an HTTP token: a JWT always can). */
function fitsProtocol(token: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token);
}

/**
 * The gateway's WebSocket URL for this page's origin (null: not logged in). The token is
 * offered as a subprotocol ({@link liveProtocols}); only one that cannot be goes in the URL.
 */
export function liveUrl(token: string | null, loc: { protocol: string; host: string } = location): string | null {
  if (!token) return null;
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const base = `${proto}//${loc.host}/ws`;
  return fitsProtocol(token) ? base : `${base}?token=${encodeURIComponent(token)}`;
}

/** The subprotocols that present `token` to the gateway: `mantis.v1` and `bearer.<token>`. */
export function liveProtocols(token: string | null): string[] {
  return token && fitsProtocol(token) ? [LIVE_PROTOCOL, `bearer.${token}`] : [];
}
