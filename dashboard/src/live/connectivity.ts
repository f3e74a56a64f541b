// Whether the dashboard is in touch with the gateway, from both sides: the WebSocket (live
// client status) and HTTP (did the last call reach the server). `lastUpdate` is the time of the
// last data that arrived by either path: the offline banner shows it.

export interface Connectivity {
  wsOnline: boolean;
  httpOnline: boolean;
  /** Set once the first connection attempt finished (so the banner doesn't flash at start). */
  wsSettled: boolean;
  lastUpdate: number | null;
}

type Listener = () => void;

export class ConnectivityStore {
  private state: Connectivity = { wsOnline: false, httpOnline: true, wsSettled: false, lastUpdate: null };
  private readonly listeners = new Set<Listener>();

  get snapshot(): Connectivity {
    return this.state;
  }

  /** Offline: the WebSocket is down (after its first attempt) or HTTP failed. */
  get offline(): boolean {
    return (this.state.wsSettled && !this.state.wsOnline) || !this.state.httpOnline;
  }

  subscribe = (l: Listener): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  getSnapshot = (): Connectivity => this.state;

  private set(patch: Partial<Connectivity>): void {
    const next = { ...this.state, ...patch };
    if (
      next.wsOnline === this.state.wsOnline &&
      next.httpOnline === this.state.httpOnline &&
      next.wsSettled === this.state.wsSettled &&
      next.lastUpdate === this.state.lastUpdate
    )
      return;
    this.state = next;
    this.listeners.forEach((l) => l());
  }

  setWs(online: boolean): void {
    this.set({ wsOnline: online, wsSettled: true });
  }

  setHttp(reachable: boolean): void {
    this.set({ httpOnline: reachable });
  }

  /** Data arrived now (HTTP answer or live message). */
  touch(now: number = Date.now()): void {
    this.set({ lastUpdate: now });
  }

  reset(): void {
    this.state = { wsOnline: false, httpOnline: true, wsSettled: false, lastUpdate: null };
    this.listeners.forEach((l) => l());
  }
}
