// Typed client for the gateway's REST API (services/gateway/API.md): bearer token on every
// /api/v1 call except login, problem-body parsing, 401 → onUnauthorized.
import type {
  Account,
  Alert,
  AlertState,
  Anomaly,
  AnomalyScore,
  ApiKey,
  Asset,
  AssetDetail,
  AssetHealth,
  CompleteResponse,
  CreatedKey,
  CrewMember,
  DeadLetter,
  DeadLetterFilter,
  DeadLetterTopic,
  KpiReport,
  LoginResponse,
  MaintenanceEvent,
  MaintenancePlan,
  NewPlannedStop,
  NewProductionCount,
  NewTimeOff,
  NewUser,
  NewWorkOrder,
  Outcome,
  PartDefinition,
  PlannedStop,
  Problem,
  ProductionCount,
  Readings,
  RecordedMovement,
  ReliabilityReport,
  Replayed,
  Role,
  RulPrediction,
  StockLevel,
  StockMovement,
  Technician,
  TimeOff,
  User,
  UserPatch,
  WorkOrder,
  WorkOrderPatch,
  WorkOrderStatus,
} from './types';

/** An HTTP error carrying the parsed problem body (status 0: the network failed). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  readonly retryAfter: number | null;

  constructor(problem: Problem, retryAfter: number | null = null) {
    super(problemMessage(problem));
    this.name = 'ApiError';
    this.status = problem.status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** The text to show a person: the problem's `detail`, else its title, plus field errors. */
export function problemMessage(p: Problem): string {
  const head = p.detail || p.title || (p.status ? `HTTP ${p.status}` : 'Request failed');
  const fields = (p.errors ?? []).map((e) => `${e.pointer}: ${e.detail}`);
  return fields.length ? `${head} (${fields.join('; ')})` : head;
}

/** Reads a problem body from any error response, tolerating non-JSON bodies. */
export async function parseProblem(res: Response): Promise<Problem> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    /* body unreadable: fall through */
  }
  if (text) {
    try {
      const body = JSON.parse(text) as Partial<Problem>;
      if (body && typeof body === 'object') {
        return {
          type: typeof body.type === 'string' ? body.type : undefined,
          title: typeof body.title === 'string' ? body.title : res.statusText || undefined,
          status: typeof body.status === 'number' ? body.status : res.status,
          detail: typeof body.detail === 'string' ? body.detail : undefined,
          errors: Array.isArray(body.errors) ? body.errors : undefined,
        };
      }
    } catch {
      /* not JSON */
    }
  }
  return {
    status: res.status,
    title: res.statusText || `HTTP ${res.status}`,
    detail: text && text.length < 500 ? text : undefined,
  };
}

type Query = Record<string, string | number | undefined | null>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** `Accept` header; JSON by default. */
  accept?: string;
  /** Skip the bearer token (login). */
  anonymous?: boolean;
  /** Do not treat 401 as "session over" (login: 401 means bad credentials). */
  no401Redirect?: boolean;
  /**
   * `updatedAt` of the thing as read: the change is made only if nobody changed it since
   * (`If-Match`; else 412).
   */
  ifMatch?: string;
  /** Create only: refused with 412 when the thing exists already (`If-None-Match: *`). */
  createOnly?: boolean;
}

export interface ApiClientOptions {
  /** Prefix before `/api/v1/...`; '' for same origin. */
  baseUrl?: string;
  fetchImpl?: typeof fetch;
  getToken: () => string | null;
  /** Called on any 401 outside login: the token is missing or expired. */
  /** Called with the token the refused request carried (a 401 for a token the session has
   *  since replaced, e.g. after a password change, is no reason to log out). */
  onUnauthorized?: (token: string | null) => void;
  /**
   * Called after every call: `reachable` is true when the server answered, false when the
   * network failed; `ok` is true for a 2xx answer.
   */
  onReachability?: (reachable: boolean, ok: boolean) => void;
}

export function buildQuery(q: Query | undefined): string {
  if (!q) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

export class ApiClient {
  private readonly opts: ApiClientOptions;

  constructor(opts: ApiClientOptions) {
    this.opts = opts;
  }

  private get fetchImpl(): typeof fetch {
    return this.opts.fetchImpl ?? ((...args) => globalThis.fetch(...args));
  }

  /** Sends one request and returns the raw successful Response. */
  async raw(method: string, path: string, o: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { Accept: o.accept ?? 'application/json' };
    const token = o.anonymous ? null : this.opts.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (o.ifMatch) headers['If-Match'] = `"${o.ifMatch}"`;
    if (o.createOnly) headers['If-None-Match'] = '*';
    let body: string | undefined;
    if (o.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.body);
    }
    const url = `${this.opts.baseUrl ?? ''}${path}${buildQuery(o.query)}`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body });
    } catch (e) {
      this.opts.onReachability?.(false, false);
      throw new ApiError({
        status: 0,
        title: 'Network error',
        detail: `The gateway cannot be reached (${e instanceof Error ? e.message : String(e)})`,
      });
    }
    // A 502/503/504 from a proxy in front of the gateway is as good as unreachable.
    this.opts.onReachability?.(!(res.status === 502 || res.status === 503 || res.status === 504), res.ok);
    if (res.ok) return res;
    const problem = await parseProblem(res);
    if (res.status === 401 && !o.no401Redirect) this.opts.onUnauthorized?.(token);
    const ra = res.headers.get('Retry-After');
    throw new ApiError(problem, ra !== null && ra !== '' && !Number.isNaN(Number(ra)) ? Number(ra) : null);
  }

  async json<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.raw(method, path, o);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  // ---- Auth ----
  login(username: string, password: string): Promise<LoginResponse> {
    return this.json('POST', '/api/v1/auth/login', {
      body: { username, password },
      anonymous: true,
      no401Redirect: true,
    });
  }
  me(): Promise<User> {
    return this.json('GET', '/api/v1/auth/me');
  }
  /** Changes one's own password; the answer is a new session (tokens before it end). A wrong
   *  current password is a 400, not a lost session. */
  changePassword(currentPassword: string, newPassword: string): Promise<LoginResponse> {
    return this.json('POST', '/api/v1/auth/password', { body: { currentPassword, newPassword } });
  }

  // ---- Access (admins) ----
  users(): Promise<Account[]> {
    return this.json('GET', '/api/v1/users');
  }
  createUser(user: NewUser): Promise<Account> {
    return this.json('POST', '/api/v1/users', { body: user });
  }
  updateUser(username: string, patch: UserPatch): Promise<Account> {
    return this.json('PATCH', `/api/v1/users/${encodeURIComponent(username)}`, { body: patch });
  }
  apiKeys(): Promise<ApiKey[]> {
    return this.json('GET', '/api/v1/api-keys');
  }
  createApiKey(name: string, role: Role): Promise<CreatedKey> {
    return this.json('POST', '/api/v1/api-keys', { body: { name, role } });
  }
  revokeApiKey(id: string): Promise<void> {
    return this.json('DELETE', `/api/v1/api-keys/${encodeURIComponent(id)}`);
  }

  // ---- Dead letters (admins of the default tenant) ----
  deadLetterTopics(): Promise<DeadLetterTopic[]> {
    return this.json('GET', '/api/v1/dead-letters');
  }
  /** The newest `limit` letters of `topic` the filter takes, oldest first. */
  deadLetters(topic: string, q: DeadLetterFilter & { limit?: number } = {}): Promise<DeadLetter[]> {
    return this.json('GET', `/api/v1/dead-letters/${encodeURIComponent(topic)}`, { query: { ...q } });
  }
  /** Publishes the letters the filter takes back to their source topics (`dryRun`: counts
   *  only; `again`: those an earlier replay sent too). */
  replayDeadLetters(topic: string, filter: DeadLetterFilter, dryRun: boolean, again = false): Promise<Replayed> {
    const body: Record<string, unknown> = { dryRun };
    if (again) body.again = true;
    if (filter.reason) body.reason = filter.reason;
    if (filter.since) body.since = filter.since;
    return this.json('POST', `/api/v1/dead-letters/${encodeURIComponent(topic)}/replay`, { body });
  }

  // ---- Plant ----
  assets(): Promise<Asset[]> {
    return this.json('GET', '/api/v1/assets', { query: { limit: 1000 } });
  }
  asset(id: string): Promise<AssetDetail> {
    return this.json('GET', `/api/v1/assets/${encodeURIComponent(id)}`);
  }
  overview(): Promise<AssetHealth[]> {
    return this.json('GET', '/api/v1/overview');
  }

  // ---- Time series ----
  readings(sensorId: string, q: { from?: string; to?: string; points?: number } = {}): Promise<Readings> {
    return this.json('GET', `/api/v1/sensors/${encodeURIComponent(sensorId)}/readings`, { query: q });
  }
  anomalyScores(assetId: string, limit = 500): Promise<AnomalyScore[]> {
    return this.json('GET', `/api/v1/assets/${encodeURIComponent(assetId)}/anomaly-scores`, {
      query: { limit },
    });
  }
  anomalies(q: { assetId?: string; limit?: number } = {}): Promise<Anomaly[]> {
    return this.json('GET', '/api/v1/anomalies', { query: q });
  }
  rul(assetId: string, limit = 500): Promise<RulPrediction[]> {
    return this.json('GET', `/api/v1/assets/${encodeURIComponent(assetId)}/rul`, { query: { limit } });
  }
  maintenanceEvents(assetId: string, limit = 100): Promise<MaintenanceEvent[]> {
    return this.json('GET', `/api/v1/assets/${encodeURIComponent(assetId)}/events`, { query: { limit } });
  }
  production(assetId: string, q: { from?: string; to?: string; limit?: number } = {}): Promise<ProductionCount[]> {
    return this.json('GET', `/api/v1/assets/${encodeURIComponent(assetId)}/production`, { query: q });
  }
  /** Records counts (all or none); a count for a start recorded before replaces it. */
  async recordProduction(assetId: string, counts: NewProductionCount[]): Promise<ProductionCount[]> {
    const r = await this.json<{ counts: ProductionCount[] }>('POST', `/api/v1/assets/${encodeURIComponent(assetId)}/production`, {
      body: { counts },
    });
    return r.counts;
  }
  /** Removes the counts starting within `[from, to)`; answers how many. */
  async removeProduction(assetId: string, from: string, to: string): Promise<number> {
    const r = await this.json<{ removed: number }>('DELETE', `/api/v1/assets/${encodeURIComponent(assetId)}/production`, {
      query: { from, to },
    });
    return r.removed;
  }

  // ---- Alerts ----
  alerts(q: { state?: AlertState; assetId?: string; limit?: number } = {}): Promise<Alert[]> {
    return this.json('GET', '/api/v1/alerts', { query: q });
  }
  acknowledgeAlert(id: string, note?: string): Promise<Alert> {
    return this.json('POST', `/api/v1/alerts/${encodeURIComponent(id)}/acknowledge`, {
      body: note ? { note } : {},
    });
  }
  assignAlert(id: string, assignee: string): Promise<Alert> {
    return this.json('POST', `/api/v1/alerts/${encodeURIComponent(id)}/assign`, { body: { assignee } });
  }

  // ---- Work orders ----
  workOrders(q: { status?: WorkOrderStatus[]; assetId?: string; limit?: number } = {}): Promise<WorkOrder[]> {
    return this.json('GET', '/api/v1/work-orders', {
      query: { status: q.status?.length ? q.status.join(',') : undefined, assetId: q.assetId, limit: q.limit },
    });
  }
  createWorkOrder(wo: NewWorkOrder): Promise<WorkOrder> {
    return this.json('POST', '/api/v1/work-orders', { body: wo });
  }
  /** `readAt`: the `updatedAt` of the order the change was made from (refused, 412, if it changed since). */
  updateWorkOrder(id: string, patch: WorkOrderPatch, readAt?: string): Promise<WorkOrder> {
    return this.json('PATCH', `/api/v1/work-orders/${encodeURIComponent(id)}`, { body: patch, ifMatch: readAt });
  }
  transitionWorkOrder(id: string, to: WorkOrderStatus, readAt?: string): Promise<WorkOrder> {
    return this.json('POST', `/api/v1/work-orders/${encodeURIComponent(id)}/transition`, {
      body: { to },
      ifMatch: readAt,
    });
  }
  completeWorkOrder(
    id: string,
    outcome: Outcome,
    note: string,
    occurredAt?: string,
    readAt?: string,
  ): Promise<CompleteResponse> {
    return this.json('POST', `/api/v1/work-orders/${encodeURIComponent(id)}/complete`, {
      body: occurredAt ? { outcome, note, occurredAt } : { outcome, note },
      ifMatch: readAt,
    });
  }

  // ---- KPIs ----
  kpis(q: { from: string; to: string; assetId?: string; line?: string }): Promise<KpiReport> {
    return this.json('GET', '/api/v1/kpis', { query: q });
  }
  /** Each asset type's life model; with both costs, its best preventive replacement interval. */
  reliability(q: { preventiveCost?: number; failureCost?: number }): Promise<ReliabilityReport> {
    const both = q.preventiveCost !== undefined && q.failureCost !== undefined;
    return this.json('GET', '/api/v1/reliability', { query: both ? { ...q } : {} });
  }
  /** The planned stops overlapping the period, by start (at most 1000). */
  plannedStops(q: { from: string; to: string; assetId?: string }): Promise<PlannedStop[]> {
    return this.json('GET', '/api/v1/planned-stops', { query: { ...q, limit: 1000 } });
  }
  /** Records a stop, or its repetitions (all or none). */
  addPlannedStop(stop: NewPlannedStop): Promise<{ stops: PlannedStop[] }> {
    return this.json('POST', '/api/v1/planned-stops', { body: stop });
  }
  removePlannedStop(id: string): Promise<void> {
    return this.json('DELETE', `/api/v1/planned-stops/${encodeURIComponent(id)}`);
  }
  /** Removes the stops of a repetition starting at or after `from`. */
  removePlannedStopSeries(series: string, from: string): Promise<{ removed: number }> {
    return this.json('DELETE', '/api/v1/planned-stops', { query: { series, from } });
  }
  // ---- Planning ----
  technicians(): Promise<Technician[]> {
    return this.json('GET', '/api/v1/technicians');
  }
  saveTechnician(name: string, member: CrewMember): Promise<Technician> {
    return this.json('PUT', `/api/v1/technicians/${encodeURIComponent(name)}`, { body: member });
  }
  removeTechnician(name: string): Promise<void> {
    return this.json('DELETE', `/api/v1/technicians/${encodeURIComponent(name)}`);
  }
  /** Time off overlapping the coming year (from now), by start. */
  timeOff(): Promise<TimeOff[]> {
    return this.json('GET', '/api/v1/time-off', { query: { limit: 1000 } });
  }
  addTimeOff(timeOff: NewTimeOff): Promise<TimeOff> {
    return this.json('POST', '/api/v1/time-off', { body: timeOff });
  }
  removeTimeOff(id: string): Promise<void> {
    return this.json('DELETE', `/api/v1/time-off/${encodeURIComponent(id)}`);
  }
  /** The plan for the active work orders over the next `hours` (nothing changes). */
  // ---- Stores ----
  spareParts(): Promise<StockLevel[]> {
    return this.json('GET', '/api/v1/spare-parts');
  }
  /** Adds a part (`create`: refused with 412 when the number is taken) or changes one. */
  saveSparePart(partNumber: string, part: PartDefinition, create = false): Promise<StockLevel> {
    return this.json('PUT', `/api/v1/spare-parts/${encodeURIComponent(partNumber)}`, { body: part, createOnly: create });
  }
  removeSparePart(partNumber: string): Promise<void> {
    return this.json('DELETE', `/api/v1/spare-parts/${encodeURIComponent(partNumber)}`);
  }
  /** A delivery (RECEIVED, added) or a stocktake (COUNTED, the count becomes it). */
  recordStock(partNumber: string, kind: 'RECEIVED' | 'COUNTED', quantity: number, note: string): Promise<RecordedMovement> {
    return this.json('POST', `/api/v1/spare-parts/${encodeURIComponent(partNumber)}/movements`, {
      body: { kind, quantity, note },
    });
  }
  stockMovements(partNumber: string, limit = 50): Promise<StockMovement[]> {
    return this.json('GET', `/api/v1/spare-parts/${encodeURIComponent(partNumber)}/movements`, { query: { limit } });
  }

  schedule(hours: number): Promise<MaintenancePlan> {
    return this.json('GET', '/api/v1/schedule', { query: { hours } });
  }
  /** Plans and applies: assigns technicians, records planned slots, schedules open orders. */
  applySchedule(hours: number): Promise<MaintenancePlan> {
    return this.json('POST', '/api/v1/schedule/apply', { body: { hours } });
  }

  /** The KPI report as CSV (`?format=csv`), fetched with the bearer token. */
  async kpisCsv(q: { from: string; to: string; assetId?: string; line?: string }): Promise<Blob> {
    const res = await this.raw('GET', '/api/v1/kpis', { query: { ...q, format: 'csv' }, accept: 'text/csv' });
    return res.blob();
  }
}
