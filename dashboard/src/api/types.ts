// Types mirroring services/gateway/API.md. JSON is camelCase; timestamps are RFC 3339 UTC
// strings; ids are UUID strings.

export type Ts = string;
export type Uuid = string;

export type Criticality = 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
export type Severity = 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL';
export type WorkOrderStatus = 'OPEN' | 'SCHEDULED' | 'IN_PROGRESS' | 'COMPLETED' | 'CANCELLED';
export type Priority = 'URGENT' | 'HIGH' | 'NORMAL' | 'LOW';
export type AlertKind = 'ANOMALY' | 'RUL';
export type SensorType = 'TEMPERATURE' | 'VIBRATION' | 'PRESSURE' | 'CURRENT' | 'SPEED' | 'FLOW';
export type Role = 'operator' | 'technician' | 'manager' | 'admin';
export type HealthStatus = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
export type Outcome = 'FAILURE' | 'REPLACEMENT' | 'REPAIR' | 'INSPECTION';
export type AlertState = 'open' | 'acknowledged' | 'all';

export const WORK_ORDER_STATUSES: WorkOrderStatus[] = [
  'OPEN',
  'SCHEDULED',
  'IN_PROGRESS',
  'COMPLETED',
  'CANCELLED',
];
export const PRIORITIES: Priority[] = ['URGENT', 'HIGH', 'NORMAL', 'LOW'];
export const CRITICALITIES: Criticality[] = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'];
export const HEALTH_STATUSES: HealthStatus[] = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'];
export const OUTCOMES: Outcome[] = ['FAILURE', 'REPLACEMENT', 'REPAIR', 'INSPECTION'];

/** RFC 9457-style problem body (`application/problem+json`). */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  errors?: { pointer: string; detail: string }[];
}

export interface User {
  username: string;
  displayName: string;
  role: Role;
  tenantId: Uuid;
}

/** `GET /api/v1/users` (admin): a user of the plant. */
export interface Account extends User {
  disabled: boolean;
  createdAt: Ts;
}

export interface NewUser {
  username: string;
  displayName: string;
  role: Role;
  password: string;
}

/** `PATCH /api/v1/users/{username}`: only the fields given change. */
export interface UserPatch {
  displayName?: string;
  role?: Role;
  password?: string;
  disabled?: boolean;
}

/** `GET /api/v1/api-keys` (admin): a machine's key (never the key itself). */
export interface ApiKey {
  id: Uuid;
  tenantId: Uuid;
  name: string;
  prefix: string;
  role: Role;
  createdAt: Ts;
  revokedAt: Ts | null;
}

/** `POST /api/v1/api-keys`: the key, shown this once. */
export interface CreatedKey extends ApiKey {
  key: string;
}

export interface LoginResponse {
  token: string;
  expiresAt: Ts;
  user: User;
}

export interface Asset {
  id: Uuid;
  tenantId: Uuid;
  code: string;
  name: string;
  assetType: string;
  location: string;
  line: string;
  criticality: Criticality;
}

export interface Sensor {
  id: Uuid;
  assetId: Uuid;
  code: string;
  sensorType: SensorType;
  unit: string;
  minValue: number | null;
  maxValue: number | null;
  samplingRateHz: number | null;
}

export interface AssetDetail {
  asset: Asset;
  sensors: Sensor[];
}

export interface AssetHealth {
  asset: Asset;
  status: HealthStatus;
  anomaly: { score: number; threshold: number; windowStart: Ts } | null;
  rul: { cycles: number; lower: number; upper: number; threshold: number; predictedAt: Ts } | null;
  openAlerts: number;
  openWorkOrders: number;
  lastSeen: Ts | null;
}

export interface ReadingBucket {
  t: Ts;
  min: number;
  max: number;
  avg: number;
  n: number;
}

export interface Readings {
  sensorId: Uuid;
  from: Ts;
  to: Ts;
  bucketSecs: number;
  points: ReadingBucket[];
}

export interface AnomalyScore {
  windowStart: Ts;
  sensorId: Uuid | null;
  assetId: Uuid;
  anomalyId: Uuid | null;
  ensembleScore: number;
  threshold: number;
  severity: Severity | null;
  method: string;
  modelVersion: string;
  zscoreScore: number | null;
  isolationForestScore: number | null;
  ocsvmScore: number | null;
  autoencoderScore: number | null;
}

export interface Contribution {
  feature: string;
  sensorId: Uuid | null;
  value: number;
  zScore: number;
}

export interface Anomaly {
  id: Uuid;
  assetId: Uuid;
  sensorId: Uuid | null;
  windowStart: Ts;
  detectedAt: Ts;
  score: number;
  threshold: number;
  severity: Severity;
  criticality: Criticality;
  method: string;
  contributions: Contribution[];
}

export interface RulPrediction {
  assetId: Uuid;
  predictedAt: Ts;
  rulCycles: number;
  confidenceLower: number;
  confidenceUpper: number;
  modelVersion: string;
}

export interface Alert {
  id: Uuid;
  assetId: Uuid;
  severity: Severity;
  kind: AlertKind;
  message: string;
  createdAt: Ts;
  workOrderId: Uuid | null;
  triggerEvent: string | null;
  notifyOnCall: boolean;
  acknowledgedBy?: string | null;
  acknowledgedAt?: Ts | null;
  assignee?: string | null;
  /** When someone last acknowledged or assigned it (null: as raised). */
  changedAt?: Ts | null;
}

export interface Part {
  partNumber: string;
  quantity: number;
}

export interface WorkOrder {
  id: Uuid;
  code: string;
  assetId: Uuid;
  cause: string | null;
  priority: Priority;
  status: WorkOrderStatus;
  createdAt: Ts;
  dueBy: Ts | null;
  description: string;
  rule: string | null;
  triggerEvent: string | null;
  technician?: string | null;
  parts?: Part[];
  /** When it is planned to be done (the plan applied, or set by hand). */
  planned?: { start: Ts; end: Ts } | null;
  /** Whether the technician is the planner's (it may give the work to someone else) or a person's (kept). */
  technicianByPlanner?: boolean;
  /** Whether the planned slot is the planner's (it may move it) or a person's (kept). */
  plannedByPlanner?: boolean;
  /** Done while the asset runs (an inspection): the plan does not move it into planned stops. */
  whileRunning?: boolean;
  updatedAt?: Ts;
}

export interface NewWorkOrder {
  assetId: Uuid;
  description: string;
  priority: Priority;
  dueBy?: Ts;
  technician?: string;
  parts?: Part[];
  whileRunning?: boolean;
}

export interface WorkOrderPatch {
  description?: string;
  priority?: Priority;
  dueBy?: Ts | null;
  technician?: string | null;
  parts?: Part[];
  whileRunning?: boolean;
}

/** A maintenance event (`GET /api/v1/assets/{id}/events`, and `complete`'s `event`). */
export interface MaintenanceEvent {
  id: Uuid;
  assetId: Uuid;
  kind: Outcome;
  occurredAt: Ts;
  workOrderId: Uuid | null;
  note: string;
}

/** Units an asset made in a period (`/api/v1/assets/{id}/production`). */
export interface ProductionCount {
  assetId: Uuid;
  startsAt: Ts;
  endsAt: Ts;
  good: number;
  rejected: number;
  /** Seconds a unit takes at the asset's ideal rate, when stated (OEE's performance term). */
  idealCycleSeconds?: number | null;
  recordedBy: string;
  recordedAt: Ts;
}

export interface NewProductionCount {
  startsAt: Ts;
  endsAt: Ts;
  good: number;
  rejected: number;
  idealCycleSeconds?: number | null;
}

export interface CompleteResponse {
  workOrder: WorkOrder;
  event: MaintenanceEvent | null;
  /** After a FAILURE: the REPAIR recorded at the completion (back in service). */
  restored?: MaintenanceEvent | null;
}

/** One shift's figures over every occurrence of that shift in the period. */
export interface ShiftKpi {
  shift: string;
  /** Hours of that shift within the period. */
  hours: number;
  /** Hours of the shift's occurrences in planned stops (a group's: the mean over its assets). */
  plannedStopHours?: number;
  availability: number | null;
  /** Ideal cycle × units ÷ run time in the shift's hours, else the asset's speed; null when unmeasured. */
  performance?: number | null;
  /** Good ÷ all units counted in the shift's hours; null without production counts. */
  quality: number | null;
  goodUnits: number;
  rejectedUnits: number;
  oee: number | null;
}

export interface Kpi {
  assetId?: Uuid;
  availability: number | null;
  mtbfHours: number | null;
  mttrHours: number | null;
  failures: number;
  /** Downtime outside planned stops. */
  downtimeHours: number;
  /** Hours of the period in planned stops (a group's: summed over its assets); the rest is planned production time. */
  plannedStopHours?: number;
  /**
   * Ideal cycle × units ÷ run time of the counts stating an ideal cycle time, else mean speed ÷
   * rated speed; null when neither is measured (a group's: the mean over the measured assets).
   */
  performance?: number | null;
  /** Good ÷ all units counted; null without production counts. */
  quality: number | null;
  goodUnits: number;
  rejectedUnits: number;
  oee: number | null;
  /** Which OEE terms were measured and which assumed 1. */
  oeeBasis?: string;
  shifts: ShiftKpi[];
}

export interface KpiReport {
  from: Ts;
  to: Ts;
  scope: { assetId?: Uuid; line?: string };
  assets: Kpi[];
  total: Kpi;
}

/** `GET /api/v1/reliability`: per asset type, the Weibull model of its recorded lives. */
export interface TypeReliability {
  assetType: string;
  assets: number;
  failures: number;
  suspensions: number;
  weibull: { shape: number; scale: number } | null;
  failureRate: 'decreasing' | 'constant' | 'increasing' | null;
  meanLifeHours: number | null;
  b10Hours: number | null;
  replacement: { intervalHours: number; costPerHour: number; runToFailureCostPerHour: number; saving: number } | null;
  reason: string | null;
}

export interface ReliabilityReport {
  at: Ts;
  items: TypeReliability[];
}

// ---- Planning ----

export type Day = 'MON' | 'TUE' | 'WED' | 'THU' | 'FRI' | 'SAT' | 'SUN';

export interface Shift {
  days: Day[];
  start: string;
  end: string;
}

/** `GET /api/v1/technicians`: a member of the crew. */
export interface Technician {
  tenantId: Uuid;
  name: string;
  skills: string[];
  shifts: Shift[];
  utcOffsetMinutes: number;
  /** IANA time zone of the shifts (daylight saving time followed); else the fixed offset. */
  timeZone?: string | null;
  active: boolean;
  updatedAt: Ts;
}

export interface CrewMember {
  skills: string[];
  shifts: Shift[];
  utcOffsetMinutes: number;
  timeZone?: string | null;
  active: boolean;
}

export interface PlannedWorkOrder {
  workOrderId: Uuid;
  code: string;
  assetId: Uuid;
  asset: string;
  priority: Priority;
  status: WorkOrderStatus;
  technician: string;
  start: Ts;
  end: Ts;
  dueBy: Ts;
  lateHours: number;
  skill: string | null;
  /** It waits for parts on order, expected then. */
  partsExpectedAt?: Ts | null;
  /** Kept here by a person's slot though its parts are short: what it lacks. */
  partsShort?: string | null;
  /** A kept slot where its technician does not work: why (time off, outside the shifts). */
  offShift?: string | null;
  /** Hours of it within its asset's planned stops (the asset stops for the rest). */
  plannedStopHours: number;
  /** Done while the asset runs: costs no production, not moved into planned stops. */
  whileRunning: boolean;
}

export interface UnplacedWorkOrder {
  workOrderId: Uuid;
  code: string;
  assetId: Uuid;
  asset: string;
  priority: Priority;
  status: WorkOrderStatus;
  dueBy: Ts;
  hours: number;
  skill: string | null;
  reason: string;
}

export interface CrewLoad {
  name: string;
  skills: string[];
  active: boolean;
  /** Shift hours within the horizon, less time off. */
  availableHours: number;
  /** Shift hours lost to time off (theirs and the whole crew's). */
  timeOffHours?: number;
  busyHours: number;
  plannedHours: number;
}

/** `GET /api/v1/time-off`: time in which a technician, or the whole crew, takes no work. */
export interface TimeOff {
  id: Uuid;
  tenantId: Uuid;
  /** The crew member away; null: the whole crew (a plant holiday, a shutdown). */
  technician: string | null;
  startsAt: Ts;
  endsAt: Ts;
  reason: string;
  createdBy: string;
  createdAt: Ts;
}

/** `GET /api/v1/planned-stops`: the production calendar, time an asset (or the whole plant) is not planned to produce. */
export interface PlannedStop {
  id: Uuid;
  tenantId: Uuid;
  /** The asset stopped; null: the whole plant. */
  assetId: Uuid | null;
  startsAt: Ts;
  endsAt: Ts;
  reason: string;
  createdBy: string;
  createdAt: Ts;
  /** The repetition it was recorded with (its first stop's id); null: recorded once. */
  seriesId?: Uuid | null;
}

export type WeekDay = 'MON' | 'TUE' | 'WED' | 'THU' | 'FRI' | 'SAT' | 'SUN';

/** A stop also on these days of the week, at its time of day on `timeZone`'s clock, until `until`. */
export interface Repeat {
  days: WeekDay[];
  until: Ts;
  timeZone?: string;
}

export interface NewPlannedStop {
  assetId: Uuid | null;
  startsAt: Ts;
  endsAt: Ts;
  reason: string;
  repeat?: Repeat;
}

export interface NewTimeOff {
  technician: string | null;
  startsAt: Ts;
  endsAt: Ts;
  reason: string;
}

/** `GET /api/v1/schedule`: who does which active work order, and when. */
export interface MaintenancePlan {
  from: Ts;
  to: Ts;
  assignments: PlannedWorkOrder[];
  unassigned: UnplacedWorkOrder[];
  technicians: CrewLoad[];
  weightedLateHours: number;
  /** Hours of the planned work outside its assets' planned stops: production it stops. */
  downtimeHours: number;
  truncated: boolean;
  timedOut: boolean;
  applied: number;
  skipped: number;
}

// ---- WebSocket messages ----

export type LiveChannel = 'alerts' | 'workOrders' | 'readings';

export interface LiveReading {
  sensorId: Uuid;
  t: Ts;
  value: number;
}

export type ClientMessage =
  | { type: 'subscribe'; channel: 'alerts' | 'workOrders' }
  | { type: 'subscribe'; channel: 'readings'; assetId: Uuid }
  | { type: 'unsubscribe'; channel: LiveChannel }
  | { type: 'ping' };

export type ServerMessage =
  | { type: 'hello'; user: User }
  | { type: 'alert'; data: Alert }
  | { type: 'workOrder'; data: WorkOrder }
  | { type: 'readings'; assetId: Uuid; data: LiveReading[] }
  | { type: 'lagged'; channel: string; skipped: number }
  | { type: 'pong' }
  | { type: 'error'; detail: string }
  /** Made by the client, never sent by the gateway: events may have been missed (the
   *  connection was down, or the gateway skipped this client ahead): reload what is shown. */
  | { type: 'resync'; reason: 'reconnected' | 'lagged' };

/** `GET /api/v1/spare-parts`: a part of the stores with what is reserved of it. */
export interface StockLevel {
  tenantId: Uuid;
  partNumber: string;
  description: string;
  location: string;
  onHand: number;
  reorderPoint: number;
  onOrder: number;
  expectedAt?: Ts | null;
  updatedAt: Ts;
  /** Listed by the active work orders. */
  reserved: number;
  /** On the shelf and not reserved (negative: reserved beyond the shelf). */
  free: number;
  /** Free plus on order is below the reorder point. */
  reorder: boolean;
}

/** `PUT /api/v1/spare-parts/{partNumber}`. */
/** Fields left out keep their values (a new part's: empty, 0, none). */
export interface PartDefinition {
  description?: string;
  location?: string;
  reorderPoint?: number;
  onOrder?: number;
  expectedAt?: Ts | null;
  /** A count: always recorded as a COUNTED movement (the same count too). */
  onHand?: number;
}

export type StockMovementKind = 'RECEIVED' | 'COUNTED' | 'CONSUMED';

export interface StockMovement {
  partNumber: string;
  kind: StockMovementKind;
  delta: number;
  onHand: number;
  at: Ts;
  workOrderId?: Uuid | null;
  by: string;
  note: string;
}

export interface RecordedMovement {
  movement: StockMovement;
  part: StockLevel;
}

/** `GET /api/v1/dead-letters` (admins of the default tenant): a dead-letter topic. */
export interface DeadLetterTopic {
  /** `dlq.<consumer group>`, or `dlq.ingestion`. */
  topic: string;
  /** Records it retains. */
  records: number;
  partitions: number;
}

/** `GET /api/v1/dead-letters/{topic}`: a record set aside, with why. */
export interface DeadLetter {
  partition: number;
  offset: number;
  /** When it was set aside. */
  at: Ts | null;
  reason: string;
  /** `topic/partition/offset` it came from; the topic alone for a record the bus refused
   *  before it was written; none for a device message. */
  source: string | null;
  key: string | null;
  payloadBytes: number;
  /** Its other headers (`mantis.dlq.connector`, …). */
  headers: Record<string, string>;
  /** When a replay first sent it again, if one did. */
  replayedAt: Ts | null;
}

/** `POST /api/v1/dead-letters/{topic}/replay` `{reason?, since?, dryRun?, again?}`. */
export interface DeadLetterFilter {
  /** Only those whose reason contains this (case-insensitive). */
  reason?: string;
  /** RFC 3339, or this long ago (`30m`, `12h`, `7d`). */
  since?: string;
}

/** What a replay did (or, dry, would do). */
export interface Replayed {
  /** Records published back, per source topic. */
  published: Record<string, number>;
  /** Letters the filter left. */
  filtered: number;
  /** Copies of letters this replay sends (a replayed record set aside again): left. */
  copies: number;
  /** Device messages, and records whose topic is gone. */
  notReplayable: number;
  /** Letters an earlier replay sent: left (unless `again`). */
  alreadyReplayed: number;
  /** Records the bus refused for good. */
  refused: number;
  /** Why the replay stopped before the end: what is counted was published. */
  stopped: string | null;
  /** The start of the period the filter took, resolved on the gateway's clock: sent back
   *  with the replay a dry run counted. */
  since: string | null;
}
