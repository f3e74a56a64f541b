//! # mantis-store
//!
//! Where MANTIS keeps its state: one [`Store`] trait with two implementations over sqlx.
//!
//! - [`postgres::PgStore`] (cluster): PostgreSQL, with TimescaleDB hypertables for the time-series
//!   tables when the extension is available, and plain tables otherwise
//!   ([`postgres::prepare_time_series`]).
//! - [`sqlite::SqliteStore`] (embedded): one SQLite file in WAL mode (or a private in-memory
//!   database for tests).
//!
//! Both run the same implementation (`sql`: the SQL text, the binds, the row ↔ domain
//! conversions and the transactions, written once and generic over the sqlx database); each
//! backend only connects, migrates and describes itself. Ids are `uuid`/hyphenated `TEXT` and
//! instants `timestamptz`/`INTEGER` Unix milliseconds, truncated to the millisecond in both.
//!
//! Migrations live in the workspace's `migrations/postgres` and `migrations/sqlite` and are
//! embedded at compile time. Every write that a redelivered record can repeat is idempotent:
//! keyed so that the second write of the same fact changes nothing. The conformance suite
//! (`conformance`, feature `conformance`) runs the same test bodies against both.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mantis_store::Error> {
//! use mantis_store::{Store, sqlite::SqliteStore};
//! // `SqliteStore::open("mantis.db")` for a file; `PgStore::connect(url)` for PostgreSQL.
//! let store = SqliteStore::in_memory().await?;
//! store.put_state("demo", &serde_json::json!({"step": 1})).await?;
//! assert_eq!(store.get_state("demo").await?, Some(serde_json::json!({"step": 1})));
//! assert!(store.list_assets(None).await?.is_empty());
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use mantis_domain::{
    Alert, AlertId, Anomaly, AnomalyScore, ApiKey, ApiKeyId, Asset, AssetId, FeatureVector,
    MaintenanceEvent, MaintenanceEventId, PlannedStop, PlannedStopId, Priority, ProductionCount,
    ProductionTotals, Reading, Role, RulPrediction, Sensor, SensorId, SparePart, StockChange,
    StockMovement, Technician, TenantId, TimeOff, TimeOffId, Timestamp, User, Window, WorkOrder,
    WorkOrderId, WorkOrderStatus,
};
use serde::{Deserialize, Serialize};

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod postgres;
mod sql;
pub mod sqlite;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database cannot be reached right now.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A referenced row does not exist.
    #[error("{what} `{id}` does not exist")]
    NotFound {
        /// Kind of row.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The write conflicts with existing data (e.g. a duplicate code).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A compare-and-set found the row changed since the time it was given (`unchanged_since`):
    /// nothing written.
    #[error("changed since it was read: {0}")]
    Stale(String),
    /// A stored value could not be turned back into a domain value.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// Anything else the driver reported.
    #[error("database error: {0}")]
    Database(String),
    /// A setting of the store, or an argument, is out of range.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database refused a value as given (a text holding a NUL character, which
    /// PostgreSQL cannot store): the caller's input is at fault, not the database.
    #[error("value refused by the database: {0}")]
    Rejected(String),
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Filter for listing work orders.
#[derive(Clone, Debug, Default)]
pub struct WorkOrderFilter {
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Only this asset.
    pub asset_id: Option<AssetId>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<WorkOrderStatus>,
    /// At most this many, newest first (None: 100).
    pub limit: Option<u32>,
    /// Soonest due first instead of newest first.
    pub soonest_due_first: bool,
}

/// Which alerts to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlertState {
    /// Not acknowledged yet.
    Open,
    /// Acknowledged by someone.
    Acknowledged,
    /// Both.
    #[default]
    All,
}

/// Filter for listing alerts.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Only this asset's.
    pub asset_id: Option<AssetId>,
    /// Open, acknowledged or all.
    pub state: AlertState,
    /// At most this many, newest first (None: 100).
    pub limit: Option<u32>,
}

/// An alert with what people did about it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    /// The alert as raised.
    #[serde(flatten)]
    pub alert: Alert,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When it was acknowledged.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub acknowledged_at: Option<Timestamp>,
    /// What they noted when acknowledging.
    pub ack_note: String,
    /// Who it is assigned to.
    pub assignee: Option<String>,
    /// When someone last changed it (acknowledged or assigned it); none while it is as
    /// raised.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub changed_at: Option<Timestamp>,
}

/// A part used or needed by a work order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Part {
    /// Part number in the plant's stores (one word: no spaces or commas; trimmed).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, pattern = r"^\s*[^\s,]+\s*$")
    )]
    pub part_number: String,
    /// How many.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub quantity: u32,
}

/// How many of each part (by trimmed number) a parts list names, summed: what a work order
/// reserves in the stores, and takes at its completion.
pub fn part_totals(parts: &[Part]) -> std::collections::BTreeMap<String, u64> {
    let mut totals = std::collections::BTreeMap::new();
    for part in parts {
        *totals
            .entry(part.part_number.trim().to_owned())
            .or_insert(0) += u64::from(part.quantity);
    }
    totals
}

/// A work order with what people planned on it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkOrderRecord {
    /// The work order.
    #[serde(flatten)]
    pub order: WorkOrder,
    /// The technician it is assigned to.
    pub technician: Option<String>,
    /// Parts it needs.
    pub parts: Vec<Part>,
    /// When it is planned to be done (by the planner, `POST /api/v1/schedule/apply`, or by a
    /// person).
    pub planned: Option<PlannedSlot>,
    /// Whether its technician is the planner's (it may give the work to someone else when it
    /// plans again), not a person's (kept).
    pub technician_by_planner: bool,
    /// Whether its planned slot is the planner's (it may move it), not a person's (kept).
    pub planned_by_planner: bool,
    /// Whether it can be done while its asset runs (an inspection, a measurement): the plan
    /// does not move it into the asset's planned stops, and it costs no production.
    pub while_running: bool,
    /// Last change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// When a work order is planned to be done.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannedSlot {
    /// Start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    /// End.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub end: Timestamp,
}

/// Changes to a work order's plan; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkOrderChanges {
    /// New description.
    pub description: Option<String>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New due date.
    pub due_by: Option<Timestamp>,
    /// New technician (`Some(None)` unassigns).
    pub technician: Option<Option<String>>,
    /// New parts list.
    pub parts: Option<Vec<Part>>,
    /// New planned slot (`Some(None)` clears it).
    pub planned: Option<Option<PlannedSlot>>,
    /// Whether the technician or planned slot set here is the planner's (else a person's).
    pub by_planner: bool,
    /// Whether it can be done while its asset runs.
    pub while_running: Option<bool>,
    /// Change it only if it was last changed at this time (else [`Error::Stale`]): nobody
    /// changed it since it was read. (Every change writes an `updated_at` later than the one
    /// it replaces.)
    pub unchanged_since: Option<Timestamp>,
}

/// Which fields of a known spare part an upsert leaves as they are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepStored {
    /// What is on order.
    pub on_order: bool,
    /// When it is expected.
    pub expected_at: bool,
}

/// Changes to a user's account; `None` leaves a field as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Disabled or enabled again.
    pub disabled: Option<bool>,
    /// New password hash (PHC string).
    pub password_hash: Option<String>,
    /// Change nothing unless the stored password hash is this one and the account is enabled
    /// (a password change checked against the current password: a change made meanwhile, or
    /// a disabling, is not overwritten).
    pub password_hash_was: Option<String>,
}

/// A stored window without its samples: what a list of windows shows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowSummary {
    /// The asset.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub asset_id: AssetId,
    /// The sensor.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub sensor_id: SensorId,
    /// Inclusive start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub window_start: Timestamp,
    /// Exclusive end.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub window_end: Timestamp,
    /// Number of samples.
    pub count: u64,
    /// Mean (None when no sample was a number).
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub std: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
}

/// Readings of one sensor aggregated over one time bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadingBucket {
    /// Start of the bucket.
    pub start: Timestamp,
    /// Smallest value (NaN when every reading of the bucket was not a number).
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub avg: f64,
    /// Number of readings.
    pub count: u64,
}

/// What is open on one asset: see [`Store::open_work`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenWork {
    /// The asset.
    pub asset_id: AssetId,
    /// Its unacknowledged alerts.
    pub open_alerts: u64,
    /// Those of them that are critical.
    pub critical_alerts: u64,
    /// Its work orders that are open, scheduled or in progress.
    pub active_work_orders: u64,
}

/// An asset's lives as its maintenance events record them: see [`Store::life_ends`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifeEnds {
    /// The asset.
    pub asset_id: AssetId,
    /// Its latest failure or replacement: the start of its current life.
    pub latest: Timestamp,
    /// How many failures and replacements it has, those at the same instant counted once
    /// (each ends a run to failure).
    pub count: u64,
}

/// How long the time series are kept where the database does not expire them itself (SQLite,
/// PostgreSQL without TimescaleDB; TimescaleDB's own policies are
/// [`postgres::HYPERTABLES`]): `[infra.retention]`. Alerts, anomalies, work orders and
/// maintenance events are kept: they are the plant's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Raw readings, in days. Default 90.
    pub readings_days: u32,
    /// Windows, in days. Default 365.
    pub windows_days: u32,
    /// Feature vectors, in days. Default 730.
    pub features_days: u32,
    /// Scored windows, in days. Default 730.
    pub scores_days: u32,
    /// RUL predictions, in days. Default 730.
    pub predictions_days: u32,
    /// Most readings, scored windows or predictions one statement deletes, so that writers
    /// wait briefly (a tenth as many feature vectors, a hundredth as many windows: they carry
    /// their values). Default 50 000.
    pub batch_rows: u32,
    /// Hours between two passes. Default 1.
    pub every_hours: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            readings_days: 90,
            windows_days: 365,
            features_days: 730,
            scores_days: 730,
            predictions_days: 730,
            batch_rows: 50_000,
            every_hours: 1,
        }
    }
}

impl Retention {
    /// The longest retention: a hundred years (a "keep forever" beyond it would overflow the
    /// time arithmetic).
    pub const MAX_DAYS: u32 = 36_500;

    /// Refuses zeros, and periods beyond [`Retention::MAX_DAYS`] days or a year between passes
    /// ([`Error::Invalid`], naming the key).
    pub fn validate(&self) -> Result<()> {
        for (key, value, max) in [
            ("readings_days", self.readings_days, Self::MAX_DAYS),
            ("windows_days", self.windows_days, Self::MAX_DAYS),
            ("features_days", self.features_days, Self::MAX_DAYS),
            ("scores_days", self.scores_days, Self::MAX_DAYS),
            ("predictions_days", self.predictions_days, Self::MAX_DAYS),
            ("every_hours", self.every_hours, 8_760),
        ] {
            if value > max {
                return Err(Error::Invalid(format!(
                    "infra.retention.{key} must be at most {max}"
                )));
            }
        }
        for (key, value) in [
            ("readings_days", self.readings_days),
            ("windows_days", self.windows_days),
            ("features_days", self.features_days),
            ("scores_days", self.scores_days),
            ("predictions_days", self.predictions_days),
            ("batch_rows", self.batch_rows),
            ("every_hours", self.every_hours),
        ] {
            if value == 0 {
                return Err(Error::Invalid(format!(
                    "infra.retention.{key} must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// Rows [`Store::expire_time_series`] deleted from one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The table.
    pub table: &'static str,
    /// Rows deleted.
    pub rows: u64,
}

/// The outcome of [`Store::open_work_order`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpenedWorkOrder {
    /// The active work order for the asset and cause (the new one, or the one already open).
    pub work_order: WorkOrder,
    /// Whether it was created by this call.
    pub created: bool,
}

/// Persistence of MANTIS.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers (readiness probes).
    async fn ping(&self) -> Result<()>;

    /// Which backend this is, e.g. `postgres (timescaledb)`, `postgres (plain tables)`, `sqlite`.
    fn describe(&self) -> String;

    /// Deletes the readings, windows, feature vectors, scored windows and RUL predictions older
    /// than `retention` keeps them at `now`, series by series, at most `retention.batch_rows`
    /// per statement. `None` when the database expires them itself (TimescaleDB).
    async fn expire_time_series(
        &self,
        retention: &Retention,
        now: Timestamp,
    ) -> Result<Option<Vec<Expired>>>;

    // --- metadata --------------------------------------------------------------------------

    /// Creates or updates an asset (by id). [`Error::Conflict`] when the id is another
    /// tenant's: an asset never moves to another tenant.
    async fn upsert_asset(&self, asset: &Asset) -> Result<()>;
    /// Creates or updates an asset and the given sensors of it (by id) in one transaction: all
    /// of them are stored or none (a sensor code taken by another sensor of the tenant, say,
    /// leaves the asset and its other sensors as they were: [`Error::Conflict`]). Every sensor
    /// must be mounted on `asset` ([`Error::Invalid`] otherwise).
    async fn register_asset(&self, asset: &Asset, sensors: &[Sensor]) -> Result<()>;
    /// One asset.
    async fn get_asset(&self, id: AssetId) -> Result<Option<Asset>>;
    /// All assets, of one tenant when given, ordered by code.
    async fn list_assets(&self, tenant: Option<TenantId>) -> Result<Vec<Asset>>;
    /// Creates or updates a sensor (by id). The asset must exist; [`Error::Conflict`] when the
    /// id is a sensor of another tenant's asset (a sensor never moves to another tenant).
    async fn upsert_sensor(&self, sensor: &Sensor) -> Result<()>;
    /// One sensor.
    async fn get_sensor(&self, id: SensorId) -> Result<Option<Sensor>>;
    /// Sensors of one asset, or all, ordered by code.
    async fn list_sensors(&self, asset: Option<AssetId>) -> Result<Vec<Sensor>>;
    /// The sensors of every asset of `tenant`, ordered by code (a fleet's KPIs in one query).
    async fn tenant_sensors(&self, tenant: TenantId) -> Result<Vec<Sensor>>;

    // --- time series (idempotent) -----------------------------------------------------------

    /// Stores raw readings; a reading with the same sensor and timestamp as a stored one is
    /// ignored. Returns how many rows were new.
    async fn insert_readings(&self, readings: &[Reading]) -> Result<u64>;
    /// The mean of each of `sensors`' readings within `[from, to)`, in one query however many
    /// sensors (a fleet's KPIs); a sensor without readings then is left out, one whose readings
    /// are all NaN answers NaN. Any order.
    async fn mean_readings(
        &self,
        sensors: &[SensorId],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(SensorId, f64)>>;
    /// Readings of a sensor in `[from, to)` aggregated into buckets of `bucket_ms`
    /// milliseconds counted from `from`, oldest first; empty buckets are left out.
    async fn reading_buckets(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        bucket_ms: i64,
    ) -> Result<Vec<ReadingBucket>>;
    /// When the asset last sent a reading.
    async fn last_reading_at(&self, asset: AssetId) -> Result<Option<Timestamp>>;
    /// When each of `tenant`'s assets last sent a reading, in one query (assets that never
    /// did are left out; any order).
    async fn last_readings_at(&self, tenant: TenantId) -> Result<Vec<(AssetId, Timestamp)>>;
    /// Readings of a sensor within `[from, to)`, oldest first.
    async fn list_readings(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>>;
    /// Stores a window; one row per sensor and window start. Returns whether it was new.
    async fn insert_window(&self, window: &Window) -> Result<bool>;
    /// Windows of a sensor starting in `[from, to)`, oldest first, at most `limit`.
    async fn list_windows(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<WindowSummary>>;
    /// Number of stored windows, of one sensor when given.
    async fn count_windows(&self, sensor: Option<SensorId>) -> Result<u64>;
    /// Stores a feature vector; one row per sensor and window start. Returns whether it was new.
    async fn insert_features(&self, features: &FeatureVector) -> Result<bool>;
    /// The latest feature vectors of an asset (one per sensor, newest window).
    async fn latest_features(&self, asset: AssetId) -> Result<Vec<FeatureVector>>;
    /// Stores an anomaly; one row per anomaly id. Returns whether it was new.
    async fn insert_anomaly(&self, anomaly: &Anomaly) -> Result<bool>;
    /// Stores the scores of a scored window (one row per sensor and window start; scoring
    /// the window again updates them and keeps the anomaly id it had).
    async fn upsert_anomaly_score(&self, score: &AnomalyScore) -> Result<()>;
    /// The latest scored windows of an asset, newest first.
    async fn list_anomaly_scores(&self, asset: AssetId, limit: u32) -> Result<Vec<AnomalyScore>>;
    /// The newest scored window of every sensor of `tenant`'s assets that has one, in one
    /// query (any order).
    async fn newest_anomaly_scores(&self, tenant: TenantId) -> Result<Vec<AnomalyScore>>;
    /// The newest `limit` feature vectors of a sensor whose window starts within
    /// `[from, to)`, oldest first.
    async fn recent_features(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<FeatureVector>>;
    /// The oldest `limit` feature vectors of a sensor whose window starts within `[from, to)`,
    /// oldest first (the first windows of a life: an early-life baseline).
    async fn first_features(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<FeatureVector>>;
    /// Anomalies, of one asset when given, newest first.
    async fn list_anomalies(&self, asset: Option<AssetId>, limit: u32) -> Result<Vec<Anomaly>>;
    /// Anomalies of one tenant's assets, newest first.
    async fn list_tenant_anomalies(&self, tenant: TenantId, limit: u32) -> Result<Vec<Anomaly>>;
    /// Stores a RUL prediction; one row per asset and prediction time. Returns whether new.
    async fn insert_rul_prediction(&self, prediction: &RulPrediction) -> Result<bool>;
    /// The RUL prediction of `asset` at `predicted_at`, as stored (the first one made).
    async fn get_rul_prediction(
        &self,
        asset: AssetId,
        predicted_at: Timestamp,
    ) -> Result<Option<RulPrediction>>;
    /// RUL predictions of an asset, newest first.
    async fn list_rul_predictions(&self, asset: AssetId, limit: u32) -> Result<Vec<RulPrediction>>;
    /// The newest RUL prediction of each of `tenant`'s assets that has one, in one query (any
    /// order).
    async fn newest_rul_predictions(&self, tenant: TenantId) -> Result<Vec<RulPrediction>>;

    // --- maintenance -----------------------------------------------------------------------

    /// Opens `candidate` unless the asset already has an active work order for the same cause,
    /// in which case that one is returned (one active work order per asset and cause, even
    /// under concurrent calls). A candidate stored before (its id exists: a redelivered event
    /// whose work order was closed meanwhile) is returned as stored, not created again.
    async fn open_work_order(&self, candidate: &WorkOrder) -> Result<OpenedWorkOrder>;
    /// When the newest of `asset`'s closed (completed or cancelled) work orders for `cause` was
    /// closed (the time of its last change); `None` when none was.
    async fn last_closed_work_order(
        &self,
        asset: AssetId,
        cause: &str,
    ) -> Result<Option<Timestamp>>;
    /// One work order.
    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>>;
    /// Work orders matching `filter`, newest first.
    async fn list_work_orders(&self, filter: &WorkOrderFilter) -> Result<Vec<WorkOrder>>;
    /// Every tenant's active (open, scheduled, in progress) work orders due before
    /// `due_before`, the longest overdue first (by due time, then id): at most `limit`, after
    /// `after` (the due time and id of the previous page's last one; `None` for the first
    /// page). Reads an index of the active ones only, however long the history.
    async fn list_overdue_work_orders(
        &self,
        due_before: Timestamp,
        after: Option<(Timestamp, WorkOrderId)>,
        limit: u32,
    ) -> Result<Vec<WorkOrder>>;
    /// Every tenant's work orders changed (created or updated) at or after `since`, the
    /// oldest change first (by `updated_at`, then id), at most `limit`: what the live feed of
    /// each gateway replica sends on, whichever process made the change.
    async fn work_orders_changed_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<WorkOrderRecord>>;
    /// Moves a work order to `status` (as it is: the stores' counts are not touched; its
    /// `updated_at` moves on as with every change).
    async fn set_work_order_status(&self, id: WorkOrderId, status: WorkOrderStatus) -> Result<()>;
    /// Moves a work order from `from` to `to` if it is still in `from` (compare and set).
    /// Returns whether it moved; [`Error::NotFound`] when there is no such work order,
    /// [`Error::Stale`] when `unchanged_since` is given and it was changed since (checked
    /// first; the move is then not made). Every change writes an `updated_at` later than the one it
    /// replaces, so a client's If-Match cannot miss a change. A move
    /// from an active status to COMPLETED takes the order's parts from the shelf, in the same
    /// transaction (a `CONSUMED` movement per stocked part, never below zero: what was taken
    /// beyond the count on record is noted): once, as the move happens once.
    async fn transition_work_order(
        &self,
        id: WorkOrderId,
        from: WorkOrderStatus,
        to: WorkOrderStatus,
        unchanged_since: Option<Timestamp>,
    ) -> Result<bool>;
    /// One work order with its plan.
    async fn get_work_order_record(&self, id: WorkOrderId) -> Result<Option<WorkOrderRecord>>;
    /// Work orders with their plans matching `filter`, newest first.
    async fn list_work_order_records(
        &self,
        filter: &WorkOrderFilter,
    ) -> Result<Vec<WorkOrderRecord>>;
    /// Changes a work order's plan; [`Error::NotFound`] when there is no such work order,
    /// [`Error::Stale`] when `changes.unchanged_since` is given and it was changed since
    /// (checked first), [`Error::Conflict`] when it is completed or cancelled (checked in the
    /// same statement).
    async fn update_work_order(&self, id: WorkOrderId, changes: &WorkOrderChanges) -> Result<()>;
    /// Stores a new work order together with its plan (`plan` applied as by
    /// [`Store::update_work_order`]) in one transaction: a work order planned by hand is never
    /// stored without its technician and parts. [`Error::Conflict`] when its id or code is
    /// taken or its asset already has an active work order for its cause.
    async fn create_work_order(&self, order: &WorkOrder, plan: &WorkOrderChanges) -> Result<()>;
    /// Records a maintenance event (failure, replacement, repair, inspection); one row per id.
    /// Returns whether it was new.
    async fn insert_maintenance_event(&self, event: &MaintenanceEvent) -> Result<bool>;
    /// One maintenance event.
    async fn get_maintenance_event(
        &self,
        id: MaintenanceEventId,
    ) -> Result<Option<MaintenanceEvent>>;
    /// When `asset`'s latest life-ending event (a failure or a replacement) occurred: the start
    /// of its current life. `None` when it has none.
    async fn last_life_end(&self, asset: AssetId) -> Result<Option<Timestamp>>;
    /// [`Store::last_life_end`] of every asset that has a failure or replacement, with how many
    /// it has, in one query (one row per such asset, any order; however long the plant's
    /// history).
    async fn life_ends(&self) -> Result<Vec<LifeEnds>>;
    /// Maintenance events, of one asset when given, newest (by `occurred_at`) first.
    async fn list_maintenance_events(
        &self,
        asset: Option<AssetId>,
        limit: u32,
    ) -> Result<Vec<MaintenanceEvent>>;
    /// The newest `per_asset` maintenance events of every asset of `tenant`, in one query (a
    /// fleet's reliability and KPIs), grouped by asset (in the order of their ids), newest
    /// first within each.
    async fn tenant_maintenance_events(
        &self,
        tenant: TenantId,
        per_asset: u32,
    ) -> Result<Vec<MaintenanceEvent>>;
    /// Stores an alert; one row per alert id. Returns whether it was new.
    async fn insert_alert(&self, alert: &Alert) -> Result<bool>;
    /// One alert.
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>>;
    /// Alerts, newest first.
    async fn list_alerts(&self, limit: u32) -> Result<Vec<Alert>>;
    /// One alert with its acknowledgement and assignment.
    async fn get_alert_record(&self, id: AlertId) -> Result<Option<AlertRecord>>;
    /// Alerts with their acknowledgement and assignment matching `filter`, newest first.
    async fn list_alert_records(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>>;
    /// Every tenant's alerts changed (acknowledged or assigned) at or after `since`, the
    /// oldest change first (by its time, then id), at most `limit` (the live feed, as
    /// [`Store::work_orders_changed_since`]).
    async fn alerts_changed_since(&self, since: Timestamp, limit: u32) -> Result<Vec<AlertRecord>>;
    /// What is open on each of `tenant`'s assets (every asset, zeros included), counted in
    /// one query whatever their number.
    async fn open_work(&self, tenant: TenantId) -> Result<Vec<OpenWork>>;
    /// Acknowledges an alert; the first acknowledgement is kept (returns whether this one
    /// was it). [`Error::NotFound`] when there is no such alert.
    async fn acknowledge_alert(
        &self,
        id: AlertId,
        by: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<bool>;
    /// Assigns an alert to someone (`None`: nobody) at `at` (its change time).
    /// [`Error::NotFound`] when there is no such alert.
    async fn assign_alert(&self, id: AlertId, assignee: Option<&str>, at: Timestamp) -> Result<()>;

    // --- production --------------------------------------------------------------------------

    /// Records `asset`'s production counts, all or none: a count replaces the one stored for
    /// the same asset and start (when recorded by someone else, only with `replace_others`).
    /// [`Error::Conflict`] when one overlaps a stored count of another start or another count
    /// of the batch (an asset's periods never overlap, so nothing is counted twice), or would
    /// replace another's without `replace_others`; [`Error::NotFound`] without the asset;
    /// [`Error::Invalid`] when a count names another asset or fails
    /// [`ProductionCount::normalise`]. Concurrent batches of one asset are serialised.
    async fn record_production(
        &self,
        asset: AssetId,
        counts: &[ProductionCount],
        replace_others: bool,
    ) -> Result<()>;
    /// `asset`'s counts overlapping `[from, to)`, newest first, at most `limit`.
    async fn list_production(
        &self,
        asset: AssetId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<ProductionCount>>;
    /// Removes `asset`'s counts starting within `[from, to)`; returns how many.
    async fn delete_production(
        &self,
        asset: AssetId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64>;
    /// The units made by `tenant`'s assets (or by `asset` alone, which must be the tenant's)
    /// within `periods` (contiguous: each starts where the one before ends), summed per asset
    /// and group of periods (e.g. per shift: every instance of a shift one group); a count
    /// spanning a period's edge is shared out by time ([`ProductionCount::within`]). The sums
    /// within the periods are the database's, so the answer holds one entry per asset and
    /// group with counts (by asset, then group) however many counts and periods there are.
    /// [`Error::Invalid`] when the periods are not contiguous or one is empty.
    async fn production_totals(
        &self,
        tenant: TenantId,
        asset: Option<AssetId>,
        periods: &[ProductionPeriod],
    ) -> Result<Vec<GroupProduction>>;
    /// The counts of each span's asset (of `tenant`) that overlap the span, as (index of the
    /// span in `spans`, count), in no particular order: index probes per span however long the
    /// asset's history (e.g. the counts within an asset's downtimes, for the KPIs'
    /// performance), one statement for hundreds of spans. [`Error::Invalid`] for an empty span.
    async fn production_overlapping(
        &self,
        tenant: TenantId,
        spans: &[ProductionSpan],
    ) -> Result<Vec<(usize, ProductionCount)>>;
    /// Records planned stops (an asset's, or the whole plant's; of one tenant), all or none;
    /// returns how many were new (one whose id was recorded before is left as it is).
    /// [`Error::NotFound`] when one names an asset its tenant does not have; [`Error::Invalid`]
    /// when they are of several tenants.
    async fn insert_planned_stops(&self, stops: &[PlannedStop]) -> Result<usize>;
    /// A tenant's planned stops overlapping `[from, to)`, by start, at most `limit`; with
    /// `asset`, only those that stop it (its own and the whole plant's).
    async fn list_planned_stops(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
        asset: Option<AssetId>,
        limit: u32,
    ) -> Result<Vec<PlannedStop>>;
    /// Removes a planned stop; returns whether the tenant had it.
    async fn delete_planned_stop(&self, tenant: TenantId, id: PlannedStopId) -> Result<bool>;
    /// Removes the planned stops of `asset` (none: the whole plant's) starting in
    /// `[from, to)`; returns how many.
    async fn delete_planned_stops_starting(
        &self,
        tenant: TenantId,
        asset: Option<AssetId>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64>;
    /// Removes the planned stops of a repetition (`series`, [`PlannedStop::series_id`])
    /// starting at or after `from` (none: all of them); returns how many.
    async fn delete_planned_stop_series(
        &self,
        tenant: TenantId,
        series: PlannedStopId,
        from: Option<Timestamp>,
    ) -> Result<u64>;

    // --- access ----------------------------------------------------------------------------

    /// Creates or replaces a user (by username).
    async fn upsert_user(&self, user: &User) -> Result<()>;
    /// Creates a user unless the username is taken (by anyone); returns whether it was created.
    async fn insert_user(&self, user: &User) -> Result<bool>;
    /// One user.
    async fn get_user(&self, username: &str) -> Result<Option<User>>;
    /// Changes the given fields of a user of `tenant` in one statement, leaving the others as
    /// they are now (a concurrent change of another field, an admin disabling the account, is
    /// kept); returns the user as stored, `None` when the tenant has no such user (or its
    /// password hash is not [`UserChanges::password_hash_was`], or it is disabled then).
    /// Disabling an enabled account moves its [`User::token_epoch`] on (only here: an upsert
    /// stores the user as given).
    async fn update_user(
        &self,
        tenant: TenantId,
        username: &str,
        changes: &UserChanges,
    ) -> Result<Option<User>>;
    /// Users, of one tenant when given, by username.
    async fn list_users(&self, tenant: Option<TenantId>) -> Result<Vec<User>>;
    /// Stores a new API key ([`Error::Conflict`] when its prefix is taken).
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()>;
    /// The API key with this prefix.
    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>>;
    /// A tenant's API keys, newest first.
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>>;
    /// Revokes an API key; returns whether it was active.
    async fn revoke_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<bool>;

    // --- crew ------------------------------------------------------------------------------

    /// Creates or replaces a technician (by tenant and name).
    async fn upsert_technician(&self, technician: &Technician) -> Result<()>;
    /// One of a tenant's technicians.
    async fn get_technician(&self, tenant: TenantId, name: &str) -> Result<Option<Technician>>;
    /// A tenant's technicians, by name.
    async fn list_technicians(&self, tenant: TenantId) -> Result<Vec<Technician>>;
    /// Removes a technician; returns whether there was one.
    async fn delete_technician(&self, tenant: TenantId, name: &str) -> Result<bool>;
    /// Records time off (a technician's, or the whole crew's); returns false when its id was
    /// recorded before (nothing is changed).
    async fn insert_time_off(&self, time_off: &TimeOff) -> Result<bool>;
    /// A tenant's time off overlapping `[from, to)`, by start, at most `limit`; with
    /// `technician`, only what keeps them from work (their own and the whole crew's).
    async fn list_time_off(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
        technician: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TimeOff>>;
    /// Removes a stretch of time off; returns whether the tenant had it.
    async fn delete_time_off(&self, tenant: TenantId, id: TimeOffId) -> Result<bool>;

    // --- stores ----------------------------------------------------------------------------

    /// Creates a spare part (its count on the shelf starting at `part.on_hand`), or changes
    /// its description, location, reorder point and what is on order, but for the fields
    /// `keep` names, left as stored (deliveries change them meanwhile; decided in the
    /// statement itself). What is on order is never expected when there is none. The count of
    /// a known part changes only by movements ([`Store::record_stock_movement`], completions).
    async fn upsert_spare_part(&self, part: &SparePart, keep: KeepStored) -> Result<()>;
    /// Adds `part` to the stores unless a part of its number is kept already (decided in the
    /// statement itself: of two racing additions one wins); returns whether it was added.
    async fn add_spare_part(&self, part: &SparePart) -> Result<bool>;
    /// One of a tenant's spare parts.
    async fn get_spare_part(
        &self,
        tenant: TenantId,
        part_number: &str,
    ) -> Result<Option<SparePart>>;
    /// A tenant's spare parts, by part number.
    async fn list_spare_parts(&self, tenant: TenantId) -> Result<Vec<SparePart>>;
    /// Removes a spare part and its movements; returns whether there was one.
    async fn delete_spare_part(&self, tenant: TenantId, part_number: &str) -> Result<bool>;
    /// Records a delivery (added; what is on order goes down by as many, and its expected time
    /// is cleared once nothing is) or a count (the count becomes it), with who and why, and
    /// returns the movement. [`Error::NotFound`] when there is no such part.
    async fn record_stock_movement(
        &self,
        tenant: TenantId,
        part_number: &str,
        change: StockChange,
        by: &str,
        note: &str,
    ) -> Result<StockMovement>;
    /// A part's movements, newest first, at most `limit`.
    async fn list_stock_movements(
        &self,
        tenant: TenantId,
        part_number: &str,
        limit: u32,
    ) -> Result<Vec<StockMovement>>;
    /// How many of each part the tenant's active work orders (open, scheduled, in progress)
    /// list: what is reserved on the shelf.
    async fn reserved_parts(
        &self,
        tenant: TenantId,
    ) -> Result<std::collections::BTreeMap<String, u64>>;

    // --- service state ---------------------------------------------------------------------

    /// Reads a service's persisted state document (e.g. an anomaly baseline).
    async fn get_state(&self, key: &str) -> Result<Option<serde_json::Value>>;
    /// Writes a service's state document (last write wins).
    async fn put_state(&self, key: &str, value: &serde_json::Value) -> Result<()>;

    // --- leases ------------------------------------------------------------------------------

    /// Takes or renews the lease `name` for `holder` until `at + ttl`: granted when nobody
    /// holds it, when `holder` already does (renewed: only ever extended; `acquired_at` kept
    /// unless it had lapsed), or when the other holder's lease expired before `at`. Atomic: of instances asking at once, one gets it.
    /// Returns the lease as it stands afterwards: held by `holder` when granted, else by the
    /// instance that holds it. `at` is the caller's clock: the instances sharing leases must
    /// keep their clocks within a small part of `ttl` (NTP).
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        at: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Lease>;
    /// Gives up `holder`'s lease `name`, so another instance may take it at once. False when
    /// `holder` did not hold it (expired and taken, or never held). With `expiring_by` (the
    /// expiry the caller last saw granted), only while the lease expires no later than that:
    /// a release that reaches the database late, after the holder took or renewed the lease
    /// again (which moves its expiry on), leaves that newer hold alone.
    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        expiring_by: Option<Timestamp>,
    ) -> Result<bool>;
    /// The leases whose names begin with `prefix` that have not expired at `at` (by name):
    /// e.g. the replicas of a service, each holding a lease of its own under a common prefix,
    /// counting one another.
    async fn live_leases(&self, prefix: &str, at: Timestamp) -> Result<Vec<Lease>>;
}

/// A period of [`Store::production_totals`], and the group its units are summed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductionPeriod {
    /// Its start.
    pub from: Timestamp,
    /// Its end.
    pub to: Timestamp,
    /// The group (e.g. the shift whose instance it is).
    pub group: usize,
}

/// A stretch of one asset's time asked of [`Store::production_overlapping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductionSpan {
    /// The asset.
    pub asset_id: AssetId,
    /// Its start.
    pub from: Timestamp,
    /// Its end.
    pub to: Timestamp,
}

/// Units an asset made within one group of the periods asked of [`Store::production_totals`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupProduction {
    /// The asset.
    pub asset_id: AssetId,
    /// The group.
    pub group: usize,
    /// What it made in the group's periods.
    pub units: ProductionTotals,
}

/// Who runs a singleton task of a replicated service, until when (see
/// [`Store::acquire_lease`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease's name, e.g. `ingestion.connector.line-1-plc`.
    pub name: String,
    /// The instance holding it.
    pub holder: String,
    /// Since when this holder holds it (without a lapse).
    pub acquired_at: Timestamp,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

impl Lease {
    /// Whether `holder` holds it.
    pub fn is_held_by(&self, holder: &str) -> bool {
        self.holder == holder
    }
}
