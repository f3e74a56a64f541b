//! The [`Store`] implementation shared by both SQL backends.
//!
//! Layout: `codec` (how ids and instants are laid out in each database), `rows` (rows ↔
//! domain values), `queries` (the SQL, one text for both dialects). This module holds the
//! logic — binds, transactions, idempotency, the work-order race — once, generic over the
//! sqlx [`Database`]; [`crate::postgres`] and [`crate::sqlite`] only connect, migrate and say
//! which backend they are, through [`SqlBackend`].

mod codec;
pub(crate) mod queries;
mod rows;

use crate::{
    AlertFilter, AlertRecord, AlertState, Error, Expired, GroupProduction, KeepStored, Lease,
    LifeEnds, OpenWork, OpenedWorkOrder, ProductionPeriod, ProductionSpan, ReadingBucket, Result,
    Retention, Store, UserChanges, WindowSummary, WorkOrderChanges, WorkOrderFilter,
    WorkOrderRecord,
};
use async_trait::async_trait;
use chrono::Utc;
use codec::{DbId, DbTime};
use mantis_domain::{
    Alert, AlertId, Anomaly, AnomalyScore, ApiKey, ApiKeyId, Asset, AssetId, FeatureVector,
    MaintenanceEvent, MaintenanceEventId, PlannedStop, PlannedStopId, ProductionCount,
    ProductionTotals, Reading, RulPrediction, Sensor, SensorId, SparePart, StockChange,
    StockMovement, StockMovementKind, Technician, TenantId, TimeOff, TimeOffId, Timestamp, User,
    Window, WorkOrder, WorkOrderId, WorkOrderStatus,
};
use rows::{
    AlertRecordRow, AlertRow, AnomalyMetadata, AnomalyRow, AnomalyScoreRow, ApiKeyRow, AssetRow,
    BucketRow, FeatureRow, MaintenanceEventRow, PlannedStopRow, ProductionRow, ReadingRow, RulRow,
    SensorRow, SpanProductionRow, SparePartRow, StockMovementRow, TechnicianRow, TimeOffRow,
    UserRow, WindowSummaryRow, WorkOrderRecordRow, WorkOrderRow, convert_all,
};
use sqlx::error::ErrorKind;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use std::collections::BTreeMap;

/// Readings per `INSERT` statement: 500 × 10 parameters stays well below the parameter limits
/// of both databases (PostgreSQL 65 535, SQLite 32 766).
const READINGS_PER_STATEMENT: usize = 500;

/// How often `open_work_order` retries when the active work order it collided with was closed
/// before it could be read back.
const OPEN_WORK_ORDER_ATTEMPTS: usize = 5;

/// The default limit of [`Store::list_work_orders`].
const DEFAULT_WORK_ORDER_LIMIT: u32 = 100;

/// Binds a sensor's columns to [`queries::UPSERT_SENSOR`].
macro_rules! bind_sensor {
    ($query:expr, $sensor:expr) => {
        $query
            .bind(DbId::from($sensor.id))
            .bind(DbId::from($sensor.asset_id))
            .bind($sensor.code.clone())
            .bind($sensor.sensor_type.as_str().to_owned())
            .bind($sensor.unit.clone())
            .bind($sensor.min_value)
            .bind($sensor.max_value)
            .bind($sensor.sampling_rate_hz)
            .bind(DbTime(Utc::now()))
            .bind(DbId::from(TenantId::DEFAULT))
    };
}

/// Binds a work order's id and plan changes to [`queries::UPDATE_WORK_ORDER`].
macro_rules! bind_plan {
    ($query:expr, $id:expr, $changes:expr, $at:expr, $expected:expr) => {
        $query
            .bind(DbId::from($id))
            .bind($changes.description.clone())
            .bind($changes.priority.map(|p| p.as_str().to_owned()))
            .bind($changes.due_by.map(DbTime))
            .bind($changes.technician.is_some())
            .bind($changes.technician.clone().flatten())
            .bind(parts_json($changes)?)
            .bind(DbTime($at))
            .bind($changes.planned.is_some())
            .bind($changes.planned.flatten().map(|p| DbTime(p.start)))
            .bind($changes.planned.flatten().map(|p| DbTime(p.end)))
            .bind($changes.by_planner)
            .bind($expected.map(DbTime))
            .bind($changes.while_running)
    };
}

/// When a change to a work order last changed at `before` is made: now, and after `before`
/// (both stores keep milliseconds), so every change writes a new `updated_at` and a client
/// holding an old one (`If-Match`) cannot miss a change, even within one millisecond or
/// with hosts' clocks apart.
fn changed_at(before: Timestamp) -> Timestamp {
    Utc::now().max(before + chrono::Duration::milliseconds(1))
}

/// When a change made at `at` to an alert last changed at `before` is stamped: at `at`, and
/// after `before`, so that every change of an alert has a later time than the one before it
/// (the live feed and the dashboard tell its states apart by it), whatever the clocks of
/// the replicas that made them.
fn alert_changed_at(at: Timestamp, before: Option<Timestamp>) -> Timestamp {
    before.map_or(at, |b| at.max(b + chrono::Duration::milliseconds(1)))
}

/// How often a compare-and-set of a part's count (or an alert's change) is tried again when
/// another writer changed it between its read and its write.
const MAX_COUNT_RACES: usize = 20;

/// A work order's status (as stored) and last change, or [`Error::NotFound`] from the
/// calling function.
macro_rules! work_order_state {
    ($store:expr, $id:expr) => {{
        let Some((status, DbTime(before))) =
            sqlx::query_as::<_, (String, DbTime)>(queries::WORK_ORDER_STATE)
                .bind(DbId::from($id))
                .fetch_optional($store.sql_pool())
                .await
                .map_err(db_error)?
        else {
            return Err(Error::NotFound {
                what: "work order",
                id: $id.to_string(),
            });
        };
        (status, before)
    }};
}

/// An alert's acknowledgement and last change (as stored), or [`Error::NotFound`] from the
/// calling function.
macro_rules! alert_change {
    ($store:expr, $id:expr) => {{
        let Some((acknowledged, changed)) =
            sqlx::query_as::<_, (Option<DbTime>, Option<DbTime>)>(queries::ALERT_CHANGE)
                .bind(DbId::from($id))
                .fetch_optional($store.sql_pool())
                .await
                .map_err(db_error)?
        else {
            return Err(Error::NotFound {
                what: "alert",
                id: $id.to_string(),
            });
        };
        (acknowledged.map(|t| t.0), changed.map(|t| t.0))
    }};
}

/// Binds a work order's columns to [`queries::INSERT_WORK_ORDER_IF_NONE_ACTIVE`].
macro_rules! bind_work_order {
    ($query:expr, $order:expr) => {
        $query
            .bind(DbId::from($order.id))
            .bind($order.code.clone())
            .bind(DbId::from($order.asset_id))
            .bind($order.cause.clone())
            .bind($order.priority.as_str().to_owned())
            .bind($order.status.as_str().to_owned())
            .bind(DbTime($order.created_at))
            .bind(DbTime($order.due_by))
            .bind($order.description.clone())
            .bind($order.rule.clone())
            .bind($order.trigger_event.clone())
            .bind(DbTime(Utc::now()))
            .bind(DbId::from(TenantId::DEFAULT))
    };
}

/// The parts of a plan change as the JSON column holds them (`None`: unchanged).
fn parts_json(changes: &WorkOrderChanges) -> Result<Option<Json<serde_json::Value>>> {
    changes
        .parts
        .as_ref()
        .map(|parts| {
            serde_json::to_value(parts)
                .map(Json)
                .map_err(|e| Error::Database(e.to_string()))
        })
        .transpose()
}

/// What a SQL backend adds to the shared implementation: its pool and its description.
pub(crate) trait SqlBackend: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// The connection pool.
    fn sql_pool(&self) -> &Pool<Self::Db>;
    /// See [`Store::describe`].
    fn describe_backend(&self) -> String;
    /// The dialect's reading-bucket query (`queries::READING_BUCKETS_*`).
    fn reading_buckets_sql(&self) -> &'static str;
    /// The dialect's length of a production count in seconds (`queries::COUNT_SECONDS_*`).
    fn count_seconds_sql(&self) -> &'static str;
    /// Whether the database expires the time series itself (TimescaleDB's policies).
    fn expires_time_series(&self) -> bool {
        false
    }
}

/// Number of rows a statement changed (sqlx has no database-independent accessor).
pub(crate) trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn affected(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// Maps a driver error to the store's error, by what the caller can do about it.
pub(crate) fn db_error(err: sqlx::Error) -> Error {
    classify(&err)
}

fn classify(err: &sqlx::Error) -> Error {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match db.kind() {
                ErrorKind::UniqueViolation => Error::Conflict(db.message().to_owned()),
                ErrorKind::ForeignKeyViolation => Error::Conflict(format!(
                    "{} (a referenced row does not exist)",
                    db.message()
                )),
                _ if is_transient(&code) => Error::Unavailable(db.message().to_owned()),
                _ if is_refused_value(&code) => Error::Rejected(db.message().to_owned()),
                _ => Error::Database(db.message().to_owned()),
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => Error::Corrupt(err.to_string()),
        _ => Error::Database(err.to_string()),
    }
}

/// Maps a migration failure: a lost connection stays retryable, anything else is a migration
/// problem (a changed or missing migration, a failing statement).
pub(crate) fn migration_error(err: sqlx::migrate::MigrateError) -> Error {
    use sqlx::migrate::MigrateError;
    if let MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) = &err
        && let unavailable @ Error::Unavailable(_) = classify(e)
    {
        return unavailable;
    }
    Error::Migration(err.to_string())
}

/// Whether a database error code means "try again later" rather than "this is wrong".
fn is_transient(code: &str) -> bool {
    // PostgreSQL SQLSTATE: connection exceptions (class 08), disk full, out of memory, too many
    // connections, shutdowns, I/O errors, serialization failures and deadlocks. A full disk is
    // the environment's fault, not the record's: the record waits (is retried) rather than
    // going to the dead-letter topic.
    let pg = code.starts_with("08")
        || matches!(
            code,
            "53100" | "53200" | "53300" | "57P01" | "57P02" | "57P03" | "58030" | "40001" | "40P01"
        );
    // SQLite (extended) result codes, at most four digits (a SQLSTATE has five, some of them
    // all digits): the primary code is the low byte; 5 = SQLITE_BUSY, 6 = SQLITE_LOCKED,
    // 7 = SQLITE_NOMEM, 10 = SQLITE_IOERR, 13 = SQLITE_FULL.
    let sqlite = code.len() < 5
        && code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 7 | 10 | 13));
    pg || sqlite
}

/// Whether a database error code means "this value cannot be stored as given": PostgreSQL's
/// character_not_in_repertoire (a NUL in a text) and untranslatable_character (a `\u0000` in
/// a JSON document).
fn is_refused_value(code: &str) -> bool {
    matches!(code, "22021" | "22P05")
}

/// An upsert that found the id in use by another tenant (it changed nothing: an asset or a
/// sensor never moves to another tenant). Worded as the gateway's own check words it: the
/// caller learns the id is taken, not by whom.
fn another_tenants(what: &str, id: impl std::fmt::Display) -> Error {
    Error::Conflict(format!("{what} id {id} is not available"))
}

/// A `u32` limit as the `BIGINT` both databases take.
fn sql_limit(n: u32) -> i64 {
    i64::from(n)
}

/// Rows of a statement's own list: periods of [`Store::production_totals`] and spans of
/// [`Store::production_overlapping`] (at most 4 parameters each), sensors of
/// [`Store::mean_readings`]; far below both databases' limits.
const VALUES_PER_STATEMENT: usize = 500;

/// `rows` VALUES rows of `columns` placeholders each, numbered from `$first`:
/// `($3, $4, $5), ($6, $7, $8)`.
fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", first + r * columns + c));
        }
        out.push(')');
    }
    out
}

/// A period as errors show it.
fn period(from: Timestamp, to: Timestamp) -> String {
    format!("{} to {}", from.to_rfc3339(), to.to_rfc3339())
}

/// A unit count as stored (`bigint`, `INTEGER`).
fn stored_count(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::Invalid(format!("a count of {n} units")))
}

// Every `SqlBackend` (PgStore, SqliteStore) is a `Store`, through this one implementation.
// The bounds list what the shared code needs from a database: an executor for its pool, and
// encoders/decoders for the column types it binds and the row structs it reads. Both sqlx
// backends satisfy them; `codec` supplies the two that differ (ids and instants).
#[async_trait]
impl<B> Store for B
where
    B: SqlBackend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    <B::Db as Database>::QueryResult: RowsAffected,
    for<'q> DbId: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<DbId>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> DbTime: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> f64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<f64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i16: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<bool>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Json<serde_json::Value>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<Json<serde_json::Value>>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<DbTime>: Encode<'q, B::Db> + Type<B::Db>,
    for<'r> AssetRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> TechnicianRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> TimeOffRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> PlannedStopRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> ProductionRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> SpanProductionRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbTime, DbTime): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId, Option<f64>): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> SparePartRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> StockMovementRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId, Json<serde_json::Value>): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String, DbTime): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String, DbTime, DbTime): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String, String, DbTime, DbTime): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> SensorRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> ReadingRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> FeatureRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> AnomalyRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> AnomalyScoreRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> RulRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> WorkOrderRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> AlertRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> MaintenanceEventRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> WorkOrderRecordRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> AlertRecordRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> UserRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> ApiKeyRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> BucketRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> WindowSummaryRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbTime,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (Option<DbTime>, Option<DbTime>): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId, DbTime): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId, i64, i64, i64): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId, i64, i64, i64, f64, f64): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (DbId, DbTime, i64): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (Json<serde_json::Value>,): FromRow<'r, <B::Db as Database>::Row>,
{
    async fn ping(&self) -> Result<()> {
        sqlx::query(queries::PING)
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.describe_backend()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn expire_time_series(
        &self,
        retention: &Retention,
        now: Timestamp,
    ) -> Result<Option<Vec<Expired>>> {
        if self.expires_time_series() {
            return Ok(None);
        }
        retention.validate()?;
        let ids = |sql: &'static str| async move {
            sqlx::query_as::<_, (DbId,)>(sql)
                .fetch_all(self.sql_pool())
                .await
                .map_err(db_error)
        };
        let sensors = ids(queries::ALL_SENSOR_IDS).await?;
        let assets = ids(queries::ALL_ASSET_IDS).await?;
        let days = [
            retention.readings_days,
            retention.windows_days,
            retention.features_days,
            retention.scores_days,
            retention.predictions_days,
        ];
        let mut report = Vec::with_capacity(days.len());
        for (table, days) in queries::EXPIRING.iter().zip(days) {
            let cutoff = now - chrono::Duration::days(i64::from(days));
            let batch = i64::from((retention.batch_rows / table.batch_divisor).max(1));
            let mut rows = 0;
            for (id,) in if table.by_asset { &assets } else { &sensors } {
                // A batch at a time: the time of the row after the batch bounds the delete.
                loop {
                    let next = sqlx::query_as::<_, (DbTime,)>(table.nth_expired)
                        .bind(*id)
                        .bind(DbTime(cutoff))
                        .bind(batch)
                        .fetch_optional(self.sql_pool())
                        .await
                        .map_err(db_error)?;
                    let before = next.as_ref().map_or(cutoff, |(t,)| t.0);
                    rows += sqlx::query(table.delete_before)
                        .bind(*id)
                        .bind(DbTime(before))
                        .execute(self.sql_pool())
                        .await
                        .map_err(db_error)?
                        .affected();
                    if next.is_none() {
                        break;
                    }
                }
            }
            report.push(Expired {
                table: table.table,
                rows,
            });
        }
        Ok(Some(report))
    }

    async fn upsert_asset(&self, asset: &Asset) -> Result<()> {
        self.register_asset(asset, &[]).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(asset = %asset.id, sensors = sensors.len()))]
    async fn register_asset(&self, asset: &Asset, sensors: &[Sensor]) -> Result<()> {
        if let Some(other) = sensors.iter().find(|s| s.asset_id != asset.id) {
            return Err(Error::Invalid(format!(
                "sensor {} is mounted on asset {}, not on {}",
                other.id, other.asset_id, asset.id
            )));
        }
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(asset.tenant_id))
            .bind(asset.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let stored = sqlx::query(queries::UPSERT_ASSET)
            .bind(DbId::from(asset.id))
            .bind(DbId::from(asset.tenant_id))
            .bind(asset.code.clone())
            .bind(asset.name.clone())
            .bind(asset.asset_type.clone())
            .bind(asset.location.clone())
            .bind(asset.criticality.as_str().to_owned())
            .bind(DbTime(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if stored.affected() == 0 {
            return Err(another_tenants("asset", asset.id));
        }
        // In code order: two registrations of the same codes take their locks in one order.
        let mut ordered: Vec<&Sensor> = sensors.iter().collect();
        ordered.sort_by(|a, b| a.code.cmp(&b.code));
        for sensor in ordered {
            let stored = bind_sensor!(sqlx::query(queries::UPSERT_SENSOR), sensor)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if stored.affected() == 0 {
                return Err(another_tenants("sensor", sensor.id));
            }
        }
        tx.commit().await.map_err(db_error)
    }

    async fn get_asset(&self, id: AssetId) -> Result<Option<Asset>> {
        sqlx::query_as::<_, AssetRow>(queries::GET_ASSET)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(Asset::try_from)
            .transpose()
    }

    async fn list_assets(&self, tenant: Option<TenantId>) -> Result<Vec<Asset>> {
        let rows = sqlx::query_as::<_, AssetRow>(queries::LIST_ASSETS)
            .bind(tenant.map(DbId::from))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sensor = %sensor.id))]
    async fn upsert_sensor(&self, sensor: &Sensor) -> Result<()> {
        let result = bind_sensor!(sqlx::query(queries::UPSERT_SENSOR), sensor)
            .execute(self.sql_pool())
            .await;
        match result {
            Ok(stored) if stored.affected() == 0 => Err(another_tenants("sensor", sensor.id)),
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.kind() == ErrorKind::ForeignKeyViolation => {
                Err(Error::NotFound {
                    what: "asset",
                    id: sensor.asset_id.to_string(),
                })
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn get_sensor(&self, id: SensorId) -> Result<Option<Sensor>> {
        sqlx::query_as::<_, SensorRow>(queries::GET_SENSOR)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(Sensor::try_from)
            .transpose()
    }

    async fn list_sensors(&self, asset: Option<AssetId>) -> Result<Vec<Sensor>> {
        let rows = sqlx::query_as::<_, SensorRow>(queries::LIST_SENSORS)
            .bind(asset.map(DbId::from))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn tenant_sensors(&self, tenant: TenantId) -> Result<Vec<Sensor>> {
        let rows = sqlx::query_as::<_, SensorRow>(queries::TENANT_SENSORS)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(readings = readings.len()))]
    async fn insert_readings(&self, readings: &[Reading]) -> Result<u64> {
        if readings.is_empty() {
            return Ok(0);
        }
        // One transaction for the whole batch, multi-row statements within it: a batch is
        // stored entirely or not at all, and a redelivered batch inserts nothing twice.
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        let mut inserted = 0;
        for chunk in readings.chunks(READINGS_PER_STATEMENT) {
            let mut sql = String::from(queries::INSERT_READINGS_HEAD);
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&queries::reading_values(
                    2 + i * queries::READING_VALUES_WIDTH,
                ));
            }
            sql.push_str(queries::INSERT_READINGS_TAIL);
            // The text is built only from the constant fragments above and numbered
            // placeholders; every value is bound.
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(DbId::from(TenantId::DEFAULT));
            for r in chunk {
                query = query
                    .bind(DbTime(r.timestamp))
                    .bind(DbId::from(r.sensor_id))
                    .bind(DbId::from(r.asset_id))
                    .bind(r.sensor_code.clone())
                    .bind(r.sensor_type.as_str().to_owned())
                    .bind(rows::nan_as_null(r.value))
                    .bind(r.unit.clone())
                    .bind(i16::from(r.quality.get()))
                    .bind(r.source.as_str().to_owned())
                    .bind(rows::to_json(&r.metadata)?);
            }
            let result = query.execute(&mut *tx).await.map_err(db_error)?;
            inserted += result.affected();
        }
        tx.commit().await.map_err(db_error)?;
        Ok(inserted)
    }

    async fn list_readings(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Reading>> {
        let rows = sqlx::query_as::<_, ReadingRow>(queries::LIST_READINGS)
            .bind(DbId::from(sensor))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn reading_buckets(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        bucket_ms: i64,
    ) -> Result<Vec<ReadingBucket>> {
        let bucket_ms = bucket_ms.max(1);
        let rows = sqlx::query_as::<_, BucketRow>(AssertSqlSafe(self.reading_buckets_sql()))
            .bind(DbId::from(sensor))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .bind(bucket_ms)
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_bucket(from, bucket_ms))
            .collect())
    }

    async fn mean_readings(
        &self,
        sensors: &[SensorId],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(SensorId, f64)>> {
        let mut means = Vec::with_capacity(sensors.len());
        for chunk in sensors.chunks(VALUES_PER_STATEMENT) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = queries::mean_readings_sql(&list);
            let mut query = sqlx::query_as::<_, (DbId, Option<f64>)>(AssertSqlSafe(sql))
                .bind(DbTime(from))
                .bind(DbTime(to));
            for sensor in chunk {
                query = query.bind(DbId::from(*sensor));
            }
            for (id, avg) in query.fetch_all(self.sql_pool()).await.map_err(db_error)? {
                // SQLite keeps NaN as NULL (see `null_as_nan`).
                means.push((id.0.into(), avg.unwrap_or(f64::NAN)));
            }
        }
        Ok(means)
    }

    async fn last_reading_at(&self, asset: AssetId) -> Result<Option<Timestamp>> {
        let row = sqlx::query_as::<_, (DbTime,)>(queries::LAST_READING_AT)
            .bind(DbId::from(asset))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(row.map(|(t,)| t.0))
    }

    async fn last_readings_at(&self, tenant: TenantId) -> Result<Vec<(AssetId, Timestamp)>> {
        let rows = sqlx::query_as::<_, (DbId, DbTime)>(queries::LAST_READINGS_AT)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, t)| (AssetId(id.0), t.0))
            .collect())
    }

    async fn list_windows(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<WindowSummary>> {
        let rows = sqlx::query_as::<_, WindowSummaryRow>(queries::LIST_WINDOWS)
            .bind(DbId::from(sensor))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(WindowSummary::from).collect())
    }

    async fn insert_window(&self, window: &Window) -> Result<bool> {
        let result = sqlx::query(queries::INSERT_WINDOW)
            .bind(DbTime(window.window_start))
            .bind(DbId::from(window.sensor_id))
            .bind(DbId::from(window.asset_id))
            .bind(window.sensor_type.as_str().to_owned())
            .bind(DbTime(window.window_end))
            .bind(i64::from(window.count))
            .bind(rows::nan_as_null(window.mean))
            .bind(rows::nan_as_null(window.std))
            .bind(rows::nan_as_null(window.min))
            .bind(rows::nan_as_null(window.max))
            .bind(rows::numbers_json(&window.values))
            .bind(DbId::from(TenantId::DEFAULT))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn count_windows(&self, sensor: Option<SensorId>) -> Result<u64> {
        let (n,) = sqlx::query_as::<_, (i64,)>(queries::COUNT_WINDOWS)
            .bind(sensor.map(DbId::from))
            .fetch_one(self.sql_pool())
            .await
            .map_err(db_error)?;
        u64::try_from(n).map_err(|_| Error::Corrupt(format!("negative window count {n}")))
    }

    async fn insert_features(&self, features: &FeatureVector) -> Result<bool> {
        let column = |name: &str| {
            features
                .features
                .get(name)
                .copied()
                .and_then(rows::nan_as_null)
        };
        let result = sqlx::query(queries::INSERT_FEATURES)
            .bind(DbTime(features.window_start))
            .bind(DbId::from(features.sensor_id))
            .bind(DbId::from(features.asset_id))
            .bind(features.sensor_type.as_str().to_owned())
            .bind(DbTime(features.window_end))
            .bind(features.feature_set_version.clone())
            .bind(column("rms"))
            .bind(column("kurtosis"))
            .bind(column("skewness"))
            .bind(column("crest_factor"))
            .bind(column("peak_frequency"))
            .bind(column("spectral_entropy"))
            .bind(rows::named_numbers_json(&features.features))
            .bind(DbId::from(TenantId::DEFAULT))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn latest_features(&self, asset: AssetId) -> Result<Vec<FeatureVector>> {
        let rows = sqlx::query_as::<_, FeatureRow>(queries::LATEST_FEATURES)
            .bind(DbId::from(asset))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(anomaly = %anomaly.id))]
    async fn insert_anomaly(&self, anomaly: &Anomaly) -> Result<bool> {
        let metadata = rows::to_json(&AnomalyMetadata::of(anomaly))?;
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        let result = sqlx::query(queries::INSERT_ANOMALY)
            .bind(DbId::from(anomaly.id))
            .bind(DbId::from(anomaly.asset_id))
            .bind(DbId::from(anomaly.sensor_id))
            .bind(DbTime(anomaly.window_start))
            .bind(DbTime(anomaly.detected_at))
            .bind(anomaly.severity.as_str().to_owned())
            .bind(anomaly.score)
            .bind(anomaly.threshold)
            .bind(anomaly.criticality.as_str().to_owned())
            .bind(anomaly.method.clone())
            .bind(metadata)
            .bind(DbId::from(TenantId::DEFAULT))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let inserted = result.affected() > 0;
        if inserted {
            sqlx::query(queries::INSERT_ANOMALY_SCORE)
                .bind(DbTime(anomaly.window_start))
                .bind(DbId::from(anomaly.sensor_id))
                .bind(DbId::from(anomaly.asset_id))
                .bind(DbId::from(anomaly.id))
                .bind(anomaly.score)
                .bind(anomaly.threshold)
                .bind(anomaly.severity.as_str().to_owned())
                .bind(anomaly.method.clone())
                .bind(DbId::from(TenantId::DEFAULT))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(inserted)
    }

    async fn upsert_anomaly_score(&self, score: &AnomalyScore) -> Result<()> {
        sqlx::query(queries::UPSERT_ANOMALY_SCORE)
            .bind(DbTime(score.window_start))
            .bind(DbId::from(score.sensor_id))
            .bind(DbId::from(score.asset_id))
            .bind(score.anomaly_id.map(DbId::from))
            .bind(score.ensemble_score)
            .bind(score.threshold)
            .bind(score.severity.map(|s| s.as_str().to_owned()))
            .bind(score.method.clone())
            .bind(DbId::from(TenantId::DEFAULT))
            .bind(score.zscore_score)
            .bind(score.isolation_forest_score)
            .bind(score.ocsvm_score)
            .bind(score.autoencoder_score)
            .bind(score.model_version.clone())
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_anomaly_scores(&self, asset: AssetId, limit: u32) -> Result<Vec<AnomalyScore>> {
        let rows = sqlx::query_as::<_, AnomalyScoreRow>(queries::LIST_ANOMALY_SCORES)
            .bind(DbId::from(asset))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn newest_anomaly_scores(&self, tenant: TenantId) -> Result<Vec<AnomalyScore>> {
        let rows = sqlx::query_as::<_, AnomalyScoreRow>(queries::NEWEST_ANOMALY_SCORES)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn recent_features(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<FeatureVector>> {
        let rows = sqlx::query_as::<_, FeatureRow>(queries::RECENT_FEATURES)
            .bind(DbId::from(sensor))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        let mut vectors: Vec<FeatureVector> = convert_all(rows)?;
        vectors.reverse();
        Ok(vectors)
    }

    async fn first_features(
        &self,
        sensor: SensorId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<FeatureVector>> {
        let rows = sqlx::query_as::<_, FeatureRow>(queries::FIRST_FEATURES)
            .bind(DbId::from(sensor))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn list_anomalies(&self, asset: Option<AssetId>, limit: u32) -> Result<Vec<Anomaly>> {
        let rows = sqlx::query_as::<_, AnomalyRow>(queries::LIST_ANOMALIES)
            .bind(asset.map(DbId::from))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn list_tenant_anomalies(&self, tenant: TenantId, limit: u32) -> Result<Vec<Anomaly>> {
        let rows = sqlx::query_as::<_, AnomalyRow>(queries::LIST_TENANT_ANOMALIES)
            .bind(DbId::from(tenant))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn insert_rul_prediction(&self, prediction: &RulPrediction) -> Result<bool> {
        let result = sqlx::query(queries::INSERT_RUL_PREDICTION)
            .bind(DbTime(prediction.predicted_at))
            .bind(DbId::from(prediction.asset_id))
            .bind(prediction.rul_cycles)
            .bind(prediction.confidence_lower)
            .bind(prediction.confidence_upper)
            .bind(prediction.model_version.clone())
            .bind(DbId::from(TenantId::DEFAULT))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn get_rul_prediction(
        &self,
        asset: AssetId,
        predicted_at: Timestamp,
    ) -> Result<Option<RulPrediction>> {
        let row = sqlx::query_as::<_, RulRow>(queries::GET_RUL_PREDICTION)
            .bind(DbId::from(asset))
            .bind(DbTime::from(predicted_at))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(row.map(RulPrediction::from))
    }

    async fn list_rul_predictions(&self, asset: AssetId, limit: u32) -> Result<Vec<RulPrediction>> {
        let rows = sqlx::query_as::<_, RulRow>(queries::LIST_RUL_PREDICTIONS)
            .bind(DbId::from(asset))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(RulPrediction::from).collect())
    }

    async fn newest_rul_predictions(&self, tenant: TenantId) -> Result<Vec<RulPrediction>> {
        let rows = sqlx::query_as::<_, RulRow>(queries::NEWEST_RUL_PREDICTIONS)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(RulPrediction::from).collect())
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(asset = %candidate.asset_id, cause = %candidate.cause)
    )]
    async fn open_work_order(&self, candidate: &WorkOrder) -> Result<OpenedWorkOrder> {
        // Opened before (the same id): as stored, whatever its status now.
        if let Some(existing) = self.get_work_order(candidate.id).await? {
            return Ok(OpenedWorkOrder {
                work_order: existing,
                created: false,
            });
        }
        // Insert-or-read without a lock held in this process: the partial unique index decides
        // between concurrent callers (in this process or another). When the insert yields to an
        // active work order, read that one back; if it was closed in between, try again.
        for _ in 0..OPEN_WORK_ORDER_ATTEMPTS {
            let inserted = bind_work_order!(
                sqlx::query_as::<_, WorkOrderRow>(queries::INSERT_WORK_ORDER_IF_NONE_ACTIVE),
                candidate
            )
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error);
            let inserted = match inserted {
                // The same candidate inserted by a concurrent caller (a primary-key clash).
                Err(Error::Conflict(why)) => match self.get_work_order(candidate.id).await? {
                    Some(existing) => {
                        return Ok(OpenedWorkOrder {
                            work_order: existing,
                            created: false,
                        });
                    }
                    None => return Err(Error::Conflict(why)),
                },
                other => other?,
            };
            if let Some(row) = inserted {
                tracing::debug!(work_order = %candidate.id, "work order opened");
                return Ok(OpenedWorkOrder {
                    work_order: WorkOrder::try_from(row)?,
                    created: true,
                });
            }
            let active = sqlx::query_as::<_, WorkOrderRow>(queries::GET_ACTIVE_WORK_ORDER)
                .bind(DbId::from(candidate.asset_id))
                .bind(candidate.cause.clone())
                .fetch_optional(self.sql_pool())
                .await
                .map_err(db_error)?;
            if let Some(row) = active {
                return Ok(OpenedWorkOrder {
                    work_order: WorkOrder::try_from(row)?,
                    created: false,
                });
            }
        }
        Err(Error::Conflict(format!(
            "the active work order of asset {} for `{}` kept changing; gave up after {} attempts",
            candidate.asset_id, candidate.cause, OPEN_WORK_ORDER_ATTEMPTS
        )))
    }

    async fn last_closed_work_order(
        &self,
        asset: AssetId,
        cause: &str,
    ) -> Result<Option<Timestamp>> {
        let row = sqlx::query_as::<_, (DbTime,)>(queries::LAST_CLOSED_WORK_ORDER)
            .bind(DbId::from(asset))
            .bind(cause.to_owned())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(row.map(|(t,)| t.0))
    }

    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>> {
        sqlx::query_as::<_, WorkOrderRow>(queries::GET_WORK_ORDER)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(WorkOrder::try_from)
            .transpose()
    }

    async fn list_work_order_records(
        &self,
        filter: &WorkOrderFilter,
    ) -> Result<Vec<WorkOrderRecord>> {
        // Distinct statuses fill the fixed slots of the statement, the first one repeated.
        let mut wanted: Vec<WorkOrderStatus> = Vec::with_capacity(queries::STATUS_SLOTS);
        for status in &filter.statuses {
            if !wanted.contains(status) {
                wanted.push(*status);
            }
        }
        if wanted.len() > queries::STATUS_SLOTS {
            return Err(Error::Database(format!(
                "cannot filter work orders on more than {} distinct statuses",
                queries::STATUS_SLOTS
            )));
        }
        let first = wanted.first().copied().unwrap_or(WorkOrderStatus::Open);
        let sql = if filter.soonest_due_first {
            queries::LIST_WORK_ORDERS_BY_DUE
        } else {
            queries::LIST_WORK_ORDERS
        };
        let mut query = sqlx::query_as::<_, WorkOrderRecordRow>(sql)
            .bind(filter.asset_id.map(DbId::from))
            .bind(wanted.is_empty());
        for slot in 0..queries::STATUS_SLOTS {
            let status = wanted.get(slot).copied().unwrap_or(first);
            query = query.bind(status.as_str().to_owned());
        }
        let rows = query
            .bind(sql_limit(filter.limit.unwrap_or(DEFAULT_WORK_ORDER_LIMIT)))
            .bind(filter.tenant.map(DbId::from))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn list_work_orders(&self, filter: &WorkOrderFilter) -> Result<Vec<WorkOrder>> {
        Ok(self
            .list_work_order_records(filter)
            .await?
            .into_iter()
            .map(|r| r.order)
            .collect())
    }

    async fn list_overdue_work_orders(
        &self,
        due_before: Timestamp,
        after: Option<(Timestamp, WorkOrderId)>,
        limit: u32,
    ) -> Result<Vec<WorkOrder>> {
        let query = match after {
            None => sqlx::query_as::<_, WorkOrderRecordRow>(queries::LIST_OVERDUE_WORK_ORDERS)
                .bind(DbTime(due_before))
                .bind(sql_limit(limit)),
            Some((due, id)) => {
                sqlx::query_as::<_, WorkOrderRecordRow>(queries::LIST_OVERDUE_WORK_ORDERS_AFTER)
                    .bind(DbTime(due_before))
                    .bind(sql_limit(limit))
                    .bind(DbTime(due))
                    .bind(DbId::from(id))
            }
        };
        let rows = query.fetch_all(self.sql_pool()).await.map_err(db_error)?;
        Ok(convert_all::<_, WorkOrderRecord>(rows)?
            .into_iter()
            .map(|r| r.order)
            .collect())
    }

    async fn work_orders_changed_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<WorkOrderRecord>> {
        let rows = sqlx::query_as::<_, WorkOrderRecordRow>(queries::WORK_ORDERS_CHANGED_SINCE)
            .bind(DbTime(since))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn get_work_order_record(&self, id: WorkOrderId) -> Result<Option<WorkOrderRecord>> {
        sqlx::query_as::<_, WorkOrderRecordRow>(queries::GET_WORK_ORDER_RECORD)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(WorkOrderRecord::try_from)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn transition_work_order(
        &self,
        id: WorkOrderId,
        from: WorkOrderStatus,
        to: WorkOrderStatus,
        unchanged_since: Option<Timestamp>,
    ) -> Result<bool> {
        for _ in 0..MAX_COUNT_RACES {
            let (status, before) = work_order_state!(self, id);
            if unchanged_since.is_some_and(|t| t != before) {
                return Err(Error::Stale(format!(
                    "work order {id} was changed meanwhile"
                )));
            }
            if status != from.as_str() {
                return Ok(false);
            }
            let now = changed_at(before);
            let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
            let result = sqlx::query(queries::TRANSITION_WORK_ORDER)
                .bind(DbId::from(id))
                .bind(from.as_str().to_owned())
                .bind(to.as_str().to_owned())
                .bind(DbTime(now))
                .bind(DbTime(before))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if result.affected() == 0 {
                // Changed between the read and the write: read it again.
                continue;
            }
            if to == WorkOrderStatus::Completed && from.is_active() {
                // The parts it lists leave the shelf with it, in this transaction.
                let (tenant, Json(parts)) =
                    sqlx::query_as::<_, (DbId, Json<serde_json::Value>)>(queries::WORK_ORDER_PARTS)
                        .bind(DbId::from(id))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db_error)?;
                for (part_number, wanted) in crate::part_totals(&rows::parts_of(parts)?) {
                    let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
                    // Compare and set from the count read (a delivery or a count recorded
                    // meanwhile is not overwritten); never completed without its movement.
                    let mut recorded = false;
                    for _ in 0..MAX_COUNT_RACES {
                        let Some((on_hand,)) =
                            sqlx::query_as::<_, (i64,)>(queries::SPARE_PART_ON_HAND)
                                .bind(tenant)
                                .bind(part_number.clone())
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(db_error)?
                        else {
                            recorded = true; // Not a part the stores keep.
                            break;
                        };
                        let taken = on_hand.min(wanted);
                        let set = sqlx::query(queries::SET_SPARE_PART_ON_HAND)
                            .bind(tenant)
                            .bind(part_number.clone())
                            .bind(on_hand - taken)
                            .bind(DbTime(now))
                            .bind(on_hand)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                        if set.affected() == 0 {
                            continue;
                        }
                        let note = if taken < wanted {
                            format!("{wanted} wanted, {on_hand} on record")
                        } else {
                            String::new()
                        };
                        sqlx::query(queries::INSERT_STOCK_MOVEMENT)
                            .bind(DbId(mantis_domain::deterministic_uuid(
                                "stock-consumed",
                                &[&id.to_string(), &part_number],
                            )))
                            .bind(tenant)
                            .bind(part_number.clone())
                            .bind(StockMovementKind::Consumed.as_str().to_owned())
                            .bind(-taken)
                            .bind(on_hand - taken)
                            .bind(DbTime(now))
                            .bind(Some(DbId::from(id)))
                            .bind("system".to_owned())
                            .bind(note)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                        recorded = true;
                        break;
                    }
                    if !recorded {
                        // Rolled back: completed with its parts, or not at all.
                        return Err(Error::Conflict(format!(
                            "the count of {part_number} kept changing while work order {id} \
                             was completed; try again"
                        )));
                    }
                }
            }
            tx.commit().await.map_err(db_error)?;
            return Ok(true);
        }
        Err(Error::Conflict(format!(
            "work order {id} kept changing while it was being moved; try again"
        )))
    }

    #[tracing::instrument(level = "debug", skip(self, changes))]
    async fn update_work_order(&self, id: WorkOrderId, changes: &WorkOrderChanges) -> Result<()> {
        // Compare and set from the state read, checked in the statement itself: a completion
        // that lands between the read and the change still wins (a closed work order keeps
        // the plan it was closed with, and its closing time does not move), and the time
        // written is always after the one read.
        for _ in 0..MAX_COUNT_RACES {
            let (status, before) = work_order_state!(self, id);
            if changes.unchanged_since.is_some_and(|t| t != before) {
                return Err(Error::Stale(format!(
                    "work order {id} was changed meanwhile"
                )));
            }
            let status = rows::stored_status(&status)?;
            if !status.is_active() {
                return Err(Error::Conflict(format!(
                    "work order {id} is {} and can no longer be changed",
                    status.as_str()
                )));
            }
            let result = bind_plan!(
                sqlx::query(queries::UPDATE_WORK_ORDER),
                id,
                changes,
                changed_at(before),
                Some(before)
            )
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
            if result.affected() > 0 {
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "work order {id} kept changing while it was being changed; try again"
        )))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(work_order = %order.id))]
    async fn create_work_order(&self, order: &WorkOrder, plan: &WorkOrderChanges) -> Result<()> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        let inserted = bind_work_order!(
            sqlx::query_as::<_, WorkOrderRow>(queries::INSERT_WORK_ORDER_IF_NONE_ACTIVE),
            order
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.is_none() {
            return Err(Error::Conflict(format!(
                "asset {} already has an active work order for `{}`",
                order.asset_id, order.cause
            )));
        }
        if *plan != WorkOrderChanges::default() {
            bind_plan!(
                sqlx::query(queries::UPDATE_WORK_ORDER),
                order.id,
                plan,
                Utc::now(),
                None::<Timestamp>
            )
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn set_work_order_status(&self, id: WorkOrderId, status: WorkOrderStatus) -> Result<()> {
        for _ in 0..MAX_COUNT_RACES {
            let (_, before) = work_order_state!(self, id);
            let result = sqlx::query(queries::SET_WORK_ORDER_STATUS)
                .bind(DbId::from(id))
                .bind(status.as_str().to_owned())
                .bind(DbTime(changed_at(before)))
                .bind(DbTime(before))
                .execute(self.sql_pool())
                .await
                .map_err(db_error)?;
            if result.affected() > 0 {
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "work order {id} kept changing while its status was set; try again"
        )))
    }

    async fn insert_maintenance_event(&self, event: &MaintenanceEvent) -> Result<bool> {
        let result = sqlx::query(queries::INSERT_MAINTENANCE_EVENT)
            .bind(DbId::from(event.id))
            .bind(DbId::from(event.asset_id))
            .bind(event.kind.as_str().to_owned())
            .bind(DbTime(event.occurred_at))
            .bind(event.work_order_id.map(DbId::from))
            .bind(event.note.clone())
            .bind(DbId::from(TenantId::DEFAULT))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn get_maintenance_event(
        &self,
        id: MaintenanceEventId,
    ) -> Result<Option<MaintenanceEvent>> {
        sqlx::query_as::<_, MaintenanceEventRow>(queries::GET_MAINTENANCE_EVENT)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(MaintenanceEvent::try_from)
            .transpose()
    }

    async fn last_life_end(&self, asset: AssetId) -> Result<Option<Timestamp>> {
        let row = sqlx::query_as::<_, (DbTime,)>(queries::LAST_LIFE_END)
            .bind(DbId::from(asset))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(row.map(|(t,)| t.0))
    }

    async fn life_ends(&self) -> Result<Vec<LifeEnds>> {
        let rows = sqlx::query_as::<_, (DbId, DbTime, i64)>(queries::LIFE_ENDS)
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(asset, latest, count)| LifeEnds {
                asset_id: AssetId(asset.0),
                latest: latest.0,
                count: u64::try_from(count).unwrap_or(0),
            })
            .collect())
    }

    async fn list_maintenance_events(
        &self,
        asset: Option<AssetId>,
        limit: u32,
    ) -> Result<Vec<MaintenanceEvent>> {
        let rows = sqlx::query_as::<_, MaintenanceEventRow>(queries::LIST_MAINTENANCE_EVENTS)
            .bind(asset.map(DbId::from))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn tenant_maintenance_events(
        &self,
        tenant: TenantId,
        per_asset: u32,
    ) -> Result<Vec<MaintenanceEvent>> {
        let rows = sqlx::query_as::<_, MaintenanceEventRow>(queries::TENANT_MAINTENANCE_EVENTS)
            .bind(DbId::from(tenant))
            .bind(sql_limit(per_asset))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(asset = %asset, counts = counts.len()))]
    async fn record_production(
        &self,
        asset: AssetId,
        counts: &[ProductionCount],
        replace_others: bool,
    ) -> Result<()> {
        let mut sorted = Vec::with_capacity(counts.len());
        for c in counts {
            if c.asset_id != asset {
                return Err(Error::Invalid(format!(
                    "a production count of asset {} recorded as {asset}'s",
                    c.asset_id
                )));
            }
            sorted.push(
                c.clone()
                    .normalise()
                    .map_err(|e| Error::Invalid(e.to_string()))?,
            );
        }
        sorted.sort_by_key(|c| c.starts_at);
        if let Some(pair) = sorted.windows(2).find(|w| w[0].overlaps(&w[1])) {
            return Err(Error::Conflict(format!(
                "production counts {} and {} of one batch overlap",
                period(pair[0].starts_at, pair[0].ends_at),
                period(pair[1].starts_at, pair[1].ends_at)
            )));
        }
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        let Some((tenant,)) = sqlx::query_as::<_, (DbId,)>(queries::LOCK_ASSET)
            .bind(DbId::from(asset))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
        else {
            return Err(Error::NotFound {
                what: "asset",
                id: asset.to_string(),
            });
        };
        for c in &sorted {
            if let Some((DbTime(b), DbTime(e))) =
                sqlx::query_as::<_, (DbTime, DbTime)>(queries::PRODUCTION_OVERLAP)
                    .bind(DbId::from(asset))
                    .bind(DbTime(c.starts_at))
                    .bind(DbTime(c.ends_at))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
            {
                return Err(Error::Conflict(format!(
                    "production count {} overlaps the one recorded for {} (remove it first)",
                    period(c.starts_at, c.ends_at),
                    period(b, e)
                )));
            }
            if !replace_others
                && let Some((by,)) = sqlx::query_as::<_, (String,)>(queries::PRODUCTION_RECORDED_BY)
                    .bind(DbId::from(asset))
                    .bind(DbTime(c.starts_at))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                && by != c.recorded_by
            {
                return Err(Error::Conflict(format!(
                    "the production count from {} was recorded by {by}: only a manager replaces \
                     another's count",
                    c.starts_at.to_rfc3339()
                )));
            }
            sqlx::query(queries::UPSERT_PRODUCTION)
                .bind(DbId::from(asset))
                .bind(tenant)
                .bind(DbTime(c.starts_at))
                .bind(DbTime(c.ends_at))
                .bind(stored_count(c.good)?)
                .bind(stored_count(c.rejected)?)
                .bind(c.recorded_by.clone())
                .bind(DbTime(c.recorded_at))
                .bind(c.ideal_cycle_seconds)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn list_production(
        &self,
        asset: AssetId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<ProductionCount>> {
        let rows = sqlx::query_as::<_, ProductionRow>(queries::LIST_PRODUCTION)
            .bind(DbId::from(asset))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_production(
        &self,
        asset: AssetId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64> {
        let result = sqlx::query(queries::DELETE_PRODUCTION)
            .bind(DbId::from(asset))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected())
    }

    async fn production_totals(
        &self,
        tenant: TenantId,
        asset: Option<AssetId>,
        periods: &[ProductionPeriod],
    ) -> Result<Vec<GroupProduction>> {
        if let Some(p) = periods.iter().find(|p| p.from >= p.to) {
            return Err(Error::Invalid(format!(
                "empty period {}",
                period(p.from, p.to)
            )));
        }
        if periods.windows(2).any(|w| w[0].to != w[1].from) {
            return Err(Error::Invalid(
                "the periods of production totals must follow one another".into(),
            ));
        }
        let Some(first) = periods.first() else {
            return Ok(Vec::new());
        };
        let group = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut totals: BTreeMap<(AssetId, usize), ProductionTotals> = BTreeMap::new();
        // The counts lying within one period, summed per group by the database; a few hundred
        // periods per statement keep far below both databases' parameter limits.
        for chunk in periods.chunks(VALUES_PER_STATEMENT) {
            let sql = queries::production_within_sql(
                asset.is_some(),
                self.count_seconds_sql(),
                &placeholders(chunk.len(), 3, 3),
            );
            let mut query =
                sqlx::query_as::<_, (DbId, i64, i64, i64, f64, f64)>(AssertSqlSafe(sql))
                    .bind(DbId::from(tenant))
                    .bind(asset.map(DbId::from));
            for p in chunk {
                query = query
                    .bind(DbTime(p.from))
                    .bind(DbTime(p.to))
                    .bind(group(p.group));
            }
            for (id, g, good, rejected, ideal_seconds, timed_seconds) in
                query.fetch_all(self.sql_pool()).await.map_err(db_error)?
            {
                let g = usize::try_from(g)
                    .map_err(|_| Error::Corrupt(format!("production group {g}")))?;
                totals
                    .entry((id.0.into(), g))
                    .or_default()
                    .add(ProductionTotals {
                        good: good as f64,
                        rejected: rejected as f64,
                        ideal_seconds,
                        timed_seconds,
                    });
            }
        }
        // The counts crossing a period's end, found through the period they start in, and
        // those crossing the first period's start (each asset's last before it): few, as an
        // asset's counts do not overlap; shared out here.
        let mut across = sqlx::query_as::<_, ProductionRow>(AssertSqlSafe(
            queries::production_before_sql(asset.is_some()),
        ))
        .bind(DbId::from(tenant))
        .bind(asset.map(DbId::from))
        .bind(DbTime(first.from))
        .fetch_all(self.sql_pool())
        .await
        .map_err(db_error)?;
        for chunk in periods.chunks(VALUES_PER_STATEMENT) {
            let sql =
                queries::production_across_sql(asset.is_some(), &placeholders(chunk.len(), 2, 3));
            let mut query = sqlx::query_as::<_, ProductionRow>(AssertSqlSafe(sql))
                .bind(DbId::from(tenant))
                .bind(asset.map(DbId::from));
            for p in chunk {
                query = query.bind(DbTime(p.from)).bind(DbTime(p.to));
            }
            across.extend(query.fetch_all(self.sql_pool()).await.map_err(db_error)?);
        }
        for row in across {
            let count = ProductionCount::try_from(row)?;
            // The periods it touches: from the last one starting before its end, back.
            let last = periods.partition_point(|p| p.from < count.ends_at);
            for p in periods[..last].iter().rev() {
                if p.to <= count.starts_at {
                    break;
                }
                totals
                    .entry((count.asset_id, p.group))
                    .or_default()
                    .add(count.within(p.from, p.to));
            }
        }
        Ok(totals
            .into_iter()
            .map(|((asset_id, group), units)| GroupProduction {
                asset_id,
                group,
                units,
            })
            .collect())
    }

    async fn production_overlapping(
        &self,
        tenant: TenantId,
        spans: &[ProductionSpan],
    ) -> Result<Vec<(usize, ProductionCount)>> {
        if let Some(s) = spans.iter().find(|s| s.from >= s.to) {
            return Err(Error::Invalid(format!(
                "empty span {}",
                period(s.from, s.to)
            )));
        }
        let mut found = Vec::new();
        for (c, chunk) in spans.chunks(VALUES_PER_STATEMENT).enumerate() {
            let sql = queries::production_overlapping_sql(&placeholders(chunk.len(), 4, 2));
            let mut query =
                sqlx::query_as::<_, SpanProductionRow>(AssertSqlSafe(sql)).bind(DbId::from(tenant));
            for (i, s) in chunk.iter().enumerate() {
                let index = i64::try_from(c * VALUES_PER_STATEMENT + i).unwrap_or(i64::MAX);
                query = query
                    .bind(DbId::from(s.asset_id))
                    .bind(DbTime(s.from))
                    .bind(DbTime(s.to))
                    .bind(index);
            }
            for row in query.fetch_all(self.sql_pool()).await.map_err(db_error)? {
                let span = usize::try_from(row.span)
                    .map_err(|_| Error::Corrupt(format!("production span {}", row.span)))?;
                found.push((span, ProductionCount::try_from(row.count)?));
            }
        }
        Ok(found)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(stops = stops.len()))]
    async fn insert_planned_stops(&self, stops: &[PlannedStop]) -> Result<usize> {
        let Some(tenant) = stops.first().map(|s| s.tenant_id) else {
            return Ok(0);
        };
        if stops.iter().any(|s| s.tenant_id != tenant) {
            return Err(Error::Invalid(
                "planned stops of several tenants in one batch".into(),
            ));
        }
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(tenant))
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let mut assets: Vec<AssetId> = stops.iter().filter_map(|s| s.asset_id).collect();
        assets.sort_unstable_by_key(|a| a.as_uuid());
        assets.dedup();
        for asset in assets {
            let owner = sqlx::query_as::<_, (DbId,)>(queries::ASSET_TENANT)
                .bind(DbId::from(asset))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
            if owner.is_none_or(|(t,)| t.0 != tenant.as_uuid()) {
                return Err(Error::NotFound {
                    what: "asset",
                    id: asset.to_string(),
                });
            }
        }
        let mut inserted = 0;
        for stop in stops {
            let result = sqlx::query(queries::INSERT_PLANNED_STOP)
                .bind(DbId::from(stop.id))
                .bind(DbId::from(stop.tenant_id))
                .bind(stop.asset_id.map(DbId::from))
                .bind(DbTime(stop.starts_at))
                .bind(DbTime(stop.ends_at))
                .bind(stop.reason.clone())
                .bind(stop.created_by.clone())
                .bind(DbTime(stop.created_at))
                .bind(stop.series_id.map(DbId::from))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            inserted += usize::from(result.affected() > 0);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(inserted)
    }

    async fn list_planned_stops(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
        asset: Option<AssetId>,
        limit: u32,
    ) -> Result<Vec<PlannedStop>> {
        Ok(
            sqlx::query_as::<_, PlannedStopRow>(queries::LIST_PLANNED_STOPS)
                .bind(DbId::from(tenant))
                .bind(DbTime(from))
                .bind(DbTime(to))
                .bind(i64::from(limit))
                .bind(asset.map(DbId::from))
                .fetch_all(self.sql_pool())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(PlannedStop::from)
                .collect(),
        )
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_planned_stop(&self, tenant: TenantId, id: PlannedStopId) -> Result<bool> {
        let result = sqlx::query(queries::DELETE_PLANNED_STOP)
            .bind(DbId::from(tenant))
            .bind(DbId::from(id))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_planned_stops_starting(
        &self,
        tenant: TenantId,
        asset: Option<AssetId>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64> {
        let result = sqlx::query(queries::DELETE_PLANNED_STOPS_STARTING)
            .bind(DbId::from(tenant))
            .bind(asset.map(DbId::from))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_planned_stop_series(
        &self,
        tenant: TenantId,
        series: PlannedStopId,
        from: Option<Timestamp>,
    ) -> Result<u64> {
        let result = sqlx::query(queries::DELETE_PLANNED_STOP_SERIES)
            .bind(DbId::from(tenant))
            .bind(DbId::from(series))
            .bind(from.map(DbTime))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected())
    }

    async fn insert_alert(&self, alert: &Alert) -> Result<bool> {
        let result = sqlx::query(queries::INSERT_ALERT)
            .bind(DbId::from(alert.id))
            .bind(DbId::from(alert.asset_id))
            .bind(alert.severity.as_str().to_owned())
            .bind(alert.kind.as_str().to_owned())
            .bind(alert.message.clone())
            .bind(DbTime(alert.created_at))
            .bind(alert.work_order_id.map(DbId::from))
            .bind(alert.trigger_event.clone())
            .bind(alert.notify_on_call)
            .bind(DbId::from(TenantId::DEFAULT))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>> {
        sqlx::query_as::<_, AlertRow>(queries::GET_ALERT)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(Alert::try_from)
            .transpose()
    }

    async fn list_alerts(&self, limit: u32) -> Result<Vec<Alert>> {
        let rows = sqlx::query_as::<_, AlertRow>(queries::LIST_ALERTS)
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn get_alert_record(&self, id: AlertId) -> Result<Option<AlertRecord>> {
        sqlx::query_as::<_, AlertRecordRow>(queries::GET_ALERT_RECORD)
            .bind(DbId::from(id))
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(AlertRecord::try_from)
            .transpose()
    }

    async fn list_alert_records(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>> {
        let state = match filter.state {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::All => "all",
        };
        let rows = sqlx::query_as::<_, AlertRecordRow>(queries::LIST_ALERT_RECORDS)
            .bind(filter.tenant.map(DbId::from))
            .bind(filter.asset_id.map(DbId::from))
            .bind(state.to_owned())
            .bind(sql_limit(filter.limit.unwrap_or(DEFAULT_WORK_ORDER_LIMIT)))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn alerts_changed_since(&self, since: Timestamp, limit: u32) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query_as::<_, AlertRecordRow>(queries::ALERTS_CHANGED_SINCE)
            .bind(DbTime(since))
            .bind(sql_limit(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn open_work(&self, tenant: TenantId) -> Result<Vec<OpenWork>> {
        let rows = sqlx::query_as::<_, (DbId, i64, i64, i64)>(queries::OPEN_WORK)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(rows
            .into_iter()
            .map(|(id, alerts, critical, orders)| OpenWork {
                asset_id: AssetId(id.0),
                open_alerts: count(alerts),
                critical_alerts: count(critical),
                active_work_orders: count(orders),
            })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip(self, note))]
    async fn acknowledge_alert(
        &self,
        id: AlertId,
        by: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<bool> {
        for _ in 0..MAX_COUNT_RACES {
            let (acknowledged, before) = alert_change!(self, id);
            if acknowledged.is_some() {
                return Ok(false);
            }
            let result = sqlx::query(queries::ACKNOWLEDGE_ALERT)
                .bind(DbId::from(id))
                .bind(by.to_owned())
                .bind(DbTime(at))
                .bind(note.to_owned())
                .bind(DbTime(alert_changed_at(at, before)))
                .execute(self.sql_pool())
                .await
                .map_err(db_error)?;
            if result.affected() > 0 {
                return Ok(true);
            }
        }
        Err(Error::Conflict(format!(
            "alert {id} kept changing while it was acknowledged; try again"
        )))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn assign_alert(&self, id: AlertId, assignee: Option<&str>, at: Timestamp) -> Result<()> {
        for _ in 0..MAX_COUNT_RACES {
            let (_, before) = alert_change!(self, id);
            let result = sqlx::query(queries::ASSIGN_ALERT)
                .bind(DbId::from(id))
                .bind(assignee.map(str::to_owned))
                .bind(DbTime(alert_changed_at(at, before)))
                .execute(self.sql_pool())
                .await
                .map_err(db_error)?;
            if result.affected() > 0 {
                return Ok(());
            }
        }
        Err(Error::Conflict(format!(
            "alert {id} kept changing while it was assigned; try again"
        )))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user.username))]
    async fn upsert_user(&self, user: &User) -> Result<()> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(user.tenant_id))
            .bind(user.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(queries::UPSERT_USER)
            .bind(user.username.clone())
            .bind(DbId::from(user.tenant_id))
            .bind(user.display_name.clone())
            .bind(user.role.as_str().to_owned())
            .bind(user.password_hash.clone())
            .bind(user.disabled)
            .bind(DbTime(user.created_at))
            .bind(DbTime(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user.username))]
    async fn insert_user(&self, user: &User) -> Result<bool> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(user.tenant_id))
            .bind(user.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let result = sqlx::query(queries::INSERT_USER)
            .bind(user.username.clone())
            .bind(DbId::from(user.tenant_id))
            .bind(user.display_name.clone())
            .bind(user.role.as_str().to_owned())
            .bind(user.password_hash.clone())
            .bind(user.disabled)
            .bind(DbTime(user.created_at))
            .bind(DbTime(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(queries::GET_USER)
            .bind(username.to_owned())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(User::try_from)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %username))]
    async fn update_user(
        &self,
        tenant: TenantId,
        username: &str,
        changes: &UserChanges,
    ) -> Result<Option<User>> {
        sqlx::query_as::<_, UserRow>(queries::UPDATE_USER)
            .bind(username.to_owned())
            .bind(DbId::from(tenant))
            .bind(changes.display_name.clone())
            .bind(changes.role.map(|r| r.as_str().to_owned()))
            .bind(changes.disabled)
            .bind(changes.password_hash.clone())
            .bind(DbTime(Utc::now()))
            .bind(changes.password_hash_was.clone())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(User::try_from)
            .transpose()
    }

    async fn list_users(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
        let rows = sqlx::query_as::<_, UserRow>(queries::LIST_USERS)
            .bind(tenant.map(DbId::from))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key = %key.prefix))]
    async fn insert_api_key(&self, key: &ApiKey) -> Result<()> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(key.tenant_id))
            .bind(key.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(queries::INSERT_API_KEY)
            .bind(DbId(key.id.as_uuid()))
            .bind(DbId::from(key.tenant_id))
            .bind(key.name.clone())
            .bind(key.prefix.clone())
            .bind(key.key_hash.clone())
            .bind(key.role.as_str().to_owned())
            .bind(DbTime(key.created_at))
            .bind(key.revoked_at.map(DbTime))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(queries::FIND_API_KEY)
            .bind(prefix.to_owned())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(queries::LIST_API_KEYS)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn revoke_api_key(&self, id: ApiKeyId, at: Timestamp) -> Result<bool> {
        let result = sqlx::query(queries::REVOKE_API_KEY)
            .bind(DbId(id.as_uuid()))
            .bind(DbTime(at))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(technician = %technician.name))]
    async fn upsert_technician(&self, technician: &Technician) -> Result<()> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(technician.tenant_id))
            .bind(technician.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(queries::UPSERT_TECHNICIAN)
            .bind(DbId::from(technician.tenant_id))
            .bind(technician.name.clone())
            .bind(rows::to_json(&technician.skills)?)
            .bind(rows::to_json(&technician.shifts)?)
            .bind(i64::from(technician.utc_offset_minutes))
            .bind(technician.active)
            .bind(DbTime(technician.updated_at))
            .bind(technician.time_zone.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_technician(&self, tenant: TenantId, name: &str) -> Result<Option<Technician>> {
        Ok(sqlx::query_as::<_, TechnicianRow>(queries::GET_TECHNICIAN)
            .bind(DbId::from(tenant))
            .bind(name.to_owned())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(Technician::try_from)
            .transpose()?)
    }

    async fn list_technicians(&self, tenant: TenantId) -> Result<Vec<Technician>> {
        let rows = sqlx::query_as::<_, TechnicianRow>(queries::LIST_TECHNICIANS)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(technician = %name))]
    async fn delete_technician(&self, tenant: TenantId, name: &str) -> Result<bool> {
        let result = sqlx::query(queries::DELETE_TECHNICIAN)
            .bind(DbId::from(tenant))
            .bind(name.to_owned())
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(id = %time_off.id))]
    async fn insert_time_off(&self, time_off: &TimeOff) -> Result<bool> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(time_off.tenant_id))
            .bind(time_off.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let result = sqlx::query(queries::INSERT_TIME_OFF)
            .bind(DbId(time_off.id.as_uuid()))
            .bind(DbId::from(time_off.tenant_id))
            .bind(time_off.technician.clone())
            .bind(DbTime(time_off.starts_at))
            .bind(DbTime(time_off.ends_at))
            .bind(time_off.reason.clone())
            .bind(time_off.created_by.clone())
            .bind(DbTime(time_off.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    async fn list_time_off(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
        technician: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TimeOff>> {
        Ok(sqlx::query_as::<_, TimeOffRow>(queries::LIST_TIME_OFF)
            .bind(DbId::from(tenant))
            .bind(DbTime(from))
            .bind(DbTime(to))
            .bind(i64::from(limit))
            .bind(technician.map(str::to_owned))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(TimeOff::from)
            .collect())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_time_off(&self, tenant: TenantId, id: TimeOffId) -> Result<bool> {
        let result = sqlx::query(queries::DELETE_TIME_OFF)
            .bind(DbId::from(tenant))
            .bind(DbId(id.as_uuid()))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(part = %part.part_number))]
    async fn upsert_spare_part(&self, part: &SparePart, keep: KeepStored) -> Result<()> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(part.tenant_id))
            .bind(part.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(queries::UPSERT_SPARE_PART)
            .bind(DbId::from(part.tenant_id))
            .bind(part.part_number.clone())
            .bind(part.description.clone())
            .bind(part.location.clone())
            .bind(i64::from(part.on_hand))
            .bind(i64::from(part.reorder_point))
            .bind(i64::from(part.on_order))
            .bind(part.expected_at.map(DbTime))
            .bind(DbTime(part.updated_at))
            .bind(keep.on_order)
            .bind(keep.expected_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn add_spare_part(&self, part: &SparePart) -> Result<bool> {
        let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
        sqlx::query(queries::ENSURE_TENANT)
            .bind(DbId::from(part.tenant_id))
            .bind(part.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let added = sqlx::query(queries::ADD_SPARE_PART)
            .bind(DbId::from(part.tenant_id))
            .bind(part.part_number.clone())
            .bind(part.description.clone())
            .bind(part.location.clone())
            .bind(i64::from(part.on_hand))
            .bind(i64::from(part.reorder_point))
            .bind(i64::from(part.on_order))
            .bind(part.expected_at.filter(|_| part.on_order > 0).map(DbTime))
            .bind(DbTime(part.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .affected()
            > 0;
        tx.commit().await.map_err(db_error)?;
        Ok(added)
    }

    async fn get_spare_part(
        &self,
        tenant: TenantId,
        part_number: &str,
    ) -> Result<Option<SparePart>> {
        sqlx::query_as::<_, SparePartRow>(queries::GET_SPARE_PART)
            .bind(DbId::from(tenant))
            .bind(part_number.to_owned())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?
            .map(SparePart::try_from)
            .transpose()
    }

    async fn list_spare_parts(&self, tenant: TenantId) -> Result<Vec<SparePart>> {
        let rows = sqlx::query_as::<_, SparePartRow>(queries::LIST_SPARE_PARTS)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(part = %part_number))]
    async fn delete_spare_part(&self, tenant: TenantId, part_number: &str) -> Result<bool> {
        let result = sqlx::query(queries::DELETE_SPARE_PART)
            .bind(DbId::from(tenant))
            .bind(part_number.to_owned())
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(result.affected() > 0)
    }

    #[tracing::instrument(level = "debug", skip(self, note))]
    async fn record_stock_movement(
        &self,
        tenant: TenantId,
        part_number: &str,
        change: StockChange,
        by: &str,
        note: &str,
    ) -> Result<StockMovement> {
        let missing = || Error::NotFound {
            what: "spare part",
            id: part_number.to_owned(),
        };
        for _ in 0..MAX_COUNT_RACES {
            let now = Utc::now();
            // A count is set from the count read (compare and set: a movement recorded
            // meanwhile makes it read again); a delivery adds in one statement.
            let before = match change {
                StockChange::Received(_) => None,
                StockChange::Counted(_) => Some(
                    sqlx::query_as::<_, (i64,)>(queries::SPARE_PART_ON_HAND)
                        .bind(DbId::from(tenant))
                        .bind(part_number.to_owned())
                        .fetch_optional(self.sql_pool())
                        .await
                        .map_err(db_error)?
                        .ok_or_else(missing)?
                        .0,
                ),
            };
            let mut tx = self.sql_pool().begin().await.map_err(db_error)?;
            let (kind, delta, after) = match (change, before) {
                (StockChange::Received(n), _) => {
                    let received = sqlx::query_as::<_, (i64,)>(queries::RECEIVE_SPARE_PART)
                        .bind(DbId::from(tenant))
                        .bind(part_number.to_owned())
                        .bind(i64::from(n))
                        .bind(DbTime(now))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    let Some((after,)) = received else {
                        let known = sqlx::query_as::<_, (i64,)>(queries::SPARE_PART_ON_HAND)
                            .bind(DbId::from(tenant))
                            .bind(part_number.to_owned())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_error)?;
                        return Err(match known {
                            None => missing(),
                            Some((on_hand,)) => Error::Rejected(format!(
                                "{n} more {part_number} would make {} on the shelf, more than {}",
                                on_hand + i64::from(n),
                                mantis_domain::MAX_PART_QUANTITY
                            )),
                        });
                    };
                    (StockMovementKind::Received, i64::from(n), after)
                }
                (StockChange::Counted(n), Some(before)) => {
                    let set = sqlx::query(queries::SET_SPARE_PART_ON_HAND)
                        .bind(DbId::from(tenant))
                        .bind(part_number.to_owned())
                        .bind(i64::from(n))
                        .bind(DbTime(now))
                        .bind(before)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_error)?;
                    if set.affected() == 0 {
                        continue;
                    }
                    (
                        StockMovementKind::Counted,
                        i64::from(n) - before,
                        i64::from(n),
                    )
                }
                (StockChange::Counted(_), None) => return Err(missing()),
            };
            let movement = StockMovement {
                part_number: part_number.to_owned(),
                kind,
                delta,
                on_hand: u32::try_from(after)
                    .map_err(|_| Error::Corrupt(format!("spare_parts.on_hand: {after}")))?,
                at: chrono::SubsecRound::trunc_subsecs(now, 3),
                work_order_id: None,
                by: by.to_owned(),
                note: note.to_owned(),
            };
            sqlx::query(queries::INSERT_STOCK_MOVEMENT)
                .bind(DbId(uuid::Uuid::new_v4()))
                .bind(DbId::from(tenant))
                .bind(movement.part_number.clone())
                .bind(kind.as_str().to_owned())
                .bind(delta)
                .bind(after)
                .bind(DbTime(now))
                .bind(None::<DbId>)
                .bind(movement.by.clone())
                .bind(movement.note.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            return Ok(movement);
        }
        Err(Error::Conflict(format!(
            "the count of {part_number} kept changing while it was being recorded; try again"
        )))
    }

    async fn list_stock_movements(
        &self,
        tenant: TenantId,
        part_number: &str,
        limit: u32,
    ) -> Result<Vec<StockMovement>> {
        let rows = sqlx::query_as::<_, StockMovementRow>(queries::LIST_STOCK_MOVEMENTS)
            .bind(DbId::from(tenant))
            .bind(part_number.to_owned())
            .bind(i64::from(limit))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        convert_all(rows)
    }

    async fn reserved_parts(&self, tenant: TenantId) -> Result<BTreeMap<String, u64>> {
        let lists = sqlx::query_as::<_, (Json<serde_json::Value>,)>(queries::ACTIVE_PARTS)
            .bind(DbId::from(tenant))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        let mut reserved = BTreeMap::new();
        for (Json(parts),) in lists {
            for (part_number, n) in crate::part_totals(&rows::parts_of(parts)?) {
                *reserved.entry(part_number).or_insert(0) += n;
            }
        }
        Ok(reserved)
    }

    async fn get_state(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query_as::<_, (Json<serde_json::Value>,)>(queries::GET_STATE)
            .bind(key.to_owned())
            .fetch_optional(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(row.map(|(Json(value),)| value))
    }

    async fn put_state(&self, key: &str, value: &serde_json::Value) -> Result<()> {
        sqlx::query(queries::PUT_STATE)
            .bind(key.to_owned())
            .bind(Json(value.clone()))
            .bind(DbTime(Utc::now()))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        at: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Lease> {
        let ttl = chrono::Duration::from_std(ttl)
            .ok()
            .filter(|d| *d > chrono::Duration::zero())
            .ok_or_else(|| Error::Invalid(format!("lease {name}: ttl must be positive")))?;
        let until = at
            .checked_add_signed(ttl)
            .ok_or_else(|| Error::Invalid(format!("lease {name}: ttl out of range")))?;
        sqlx::query(queries::ACQUIRE_LEASE)
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .bind(DbTime(at))
            .bind(DbTime(until))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        let (holder, DbTime(acquired_at), DbTime(expires_at)) = sqlx::query_as::<
            _,
            (String, DbTime, DbTime),
        >(queries::GET_LEASE)
        .bind(name.to_owned())
        .fetch_optional(self.sql_pool())
        .await
        .map_err(db_error)?
        // Released by its holder between the two statements: it was never ours.
        .ok_or_else(|| Error::Unavailable(format!("lease {name} changed hands; try again")))?;
        Ok(Lease {
            name: name.to_owned(),
            holder,
            acquired_at,
            expires_at,
        })
    }

    async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        expiring_by: Option<Timestamp>,
    ) -> Result<bool> {
        let done = sqlx::query(queries::RELEASE_LEASE)
            .bind(name.to_owned())
            .bind(holder.to_owned())
            .bind(expiring_by.map(DbTime))
            .execute(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(done.affected() > 0)
    }

    async fn live_leases(&self, prefix: &str, at: Timestamp) -> Result<Vec<Lease>> {
        let length = i64::try_from(prefix.chars().count())
            .map_err(|_| Error::Invalid("lease prefix too long".into()))?;
        let rows = sqlx::query_as::<_, (String, String, DbTime, DbTime)>(queries::LIVE_LEASES)
            .bind(prefix.to_owned())
            .bind(length)
            .bind(DbTime(at))
            .fetch_all(self.sql_pool())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(name, holder, DbTime(acquired_at), DbTime(expires_at))| Lease {
                    name,
                    holder,
                    acquired_at,
                    expires_at,
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_connection_codes_are_transient_and_constraint_codes_are_not() {
        assert!(is_transient("08006"));
        assert!(is_transient("40P01"));
        assert!(is_transient("5")); // SQLITE_BUSY
        assert!(is_transient("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(is_transient("13")); // SQLITE_FULL: an edge box's disk full
        assert!(is_transient("266")); // SQLITE_IOERR_READ
        assert!(is_transient("53100")); // disk_full
        assert!(is_transient("58030")); // io_error
        assert!(!is_transient("23505"));
        // SQLSTATEs of the record's or the setup's fault, all digits: not SQLite codes.
        assert!(!is_transient("22023")); // invalid_parameter_value
        assert!(!is_transient("22021")); // character_not_in_repertoire
        assert!(is_refused_value("22021"));
        assert!(is_refused_value("22P05"));
        assert!(!is_refused_value("23505"));
        assert!(!is_transient("42501")); // insufficient_privilege
        assert!(!is_transient("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!is_transient(""));
    }

    #[test]
    fn the_default_retention_is_timescaledbs() {
        let r = crate::Retention::default();
        let days = [
            r.readings_days,
            r.windows_days,
            r.features_days,
            r.scores_days,
            r.predictions_days,
        ];
        for ((expiring, h), days) in queries::EXPIRING
            .iter()
            .zip(crate::postgres::HYPERTABLES)
            .zip(days)
        {
            assert_eq!(expiring.table, h.table);
            assert_eq!(format!("{days} days"), h.retain_for, "{}", h.table);
            assert!(expiring.nth_expired.contains(h.time_column));
        }
    }

    #[test]
    fn pool_exhaustion_is_retryable() {
        assert!(db_error(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!db_error(sqlx::Error::RowNotFound).is_retryable());
    }
}
