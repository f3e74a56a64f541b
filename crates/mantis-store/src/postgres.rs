//! PostgreSQL backend (cluster mode), with TimescaleDB hypertables where the extension exists.
//!
//! [`PgStore::connect`] opens a pool, applies `migrations/postgres` (sqlx takes an advisory lock,
//! so replicas starting together migrate once) and then runs [`prepare_time_series`]: when the
//! server offers the `timescaledb` extension, the time-series tables become hypertables with
//! compression and retention policies ([`HYPERTABLES`]); otherwise they stay plain tables and
//! the store says so in [`Store::describe`](crate::Store::describe) and in a warning. Queries
//! are the same either way.

use crate::Result;
use crate::sql::{SqlBackend, db_error, migration_error};
use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// The PostgreSQL migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections per process by default: the services are I/O-light per request and share a
/// server (see [`PgStore::connect_with`]).
pub const MAX_CONNECTIONS: u32 = 10;

/// How long a caller waits for a free (or new) connection before getting
/// [`crate::Error::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Key of the advisory lock held while converting tables, so that replicas starting together
/// do not race on `create_hypertable` (any constant unique to MANTIS; "MANTIS" in ASCII).
const TIME_SERIES_LOCK: i64 = 0x0000_4d41_4e54_4953;

/// How the time-series tables are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSeriesMode {
    /// TimescaleDB hypertables with compression and retention policies.
    Hypertables,
    /// Plain PostgreSQL tables (the server has no TimescaleDB): no automatic compression or
    /// retention.
    PlainTables,
}

/// How one time-series table becomes a hypertable.
#[derive(Clone, Copy, Debug)]
pub struct Hypertable {
    /// The table.
    pub table: &'static str,
    /// Its time column (part of its primary key).
    pub time_column: &'static str,
    /// Compressed chunks are segmented by this column (the series id).
    pub segment_by: &'static str,
    /// Chunk length.
    pub chunk_interval: &'static str,
    /// Chunks older than this are compressed.
    pub compress_after: &'static str,
    /// Chunks older than this are dropped.
    pub retain_for: &'static str,
}

/// The hypertables and their policies. Raw readings are kept for 90 days (windows, features
/// and scores carry the history beyond that); derived series for one to two years.
pub const HYPERTABLES: [Hypertable; 5] = [
    Hypertable {
        table: "sensor_data_raw",
        time_column: "time",
        segment_by: "sensor_id",
        chunk_interval: "1 day",
        compress_after: "7 days",
        retain_for: "90 days",
    },
    Hypertable {
        table: "sensor_data_windowed",
        time_column: "window_start",
        segment_by: "sensor_id",
        chunk_interval: "7 days",
        compress_after: "14 days",
        retain_for: "365 days",
    },
    Hypertable {
        table: "sensor_features",
        time_column: "window_start",
        segment_by: "sensor_id",
        chunk_interval: "7 days",
        compress_after: "30 days",
        retain_for: "730 days",
    },
    Hypertable {
        table: "anomaly_scores",
        time_column: "time",
        segment_by: "sensor_id",
        chunk_interval: "30 days",
        compress_after: "30 days",
        retain_for: "730 days",
    },
    Hypertable {
        table: "rul_predictions",
        time_column: "predicted_at",
        segment_by: "asset_id",
        chunk_interval: "30 days",
        compress_after: "30 days",
        retain_for: "730 days",
    },
];

/// The PostgreSQL [`Store`](crate::Store).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    time_series: TimeSeriesMode,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), applies the migrations and prepares
    /// the time-series tables ([`prepare_time_series`]).
    ///
    /// Fails with [`crate::Error::Unavailable`] when the server cannot be reached, and with
    /// [`crate::Error::Migration`] when the schema cannot be brought up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, MAX_CONNECTIONS).await
    }

    /// [`connect`](Self::connect) with a pool of at most `max_connections` connections (at
    /// least one): every replica of every service opens its own pool, and together they must
    /// stay within the server's `max_connections`.
    #[tracing::instrument(name = "pg_connect", skip_all)]
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(db_error)?;
        MIGRATOR.run(&pool).await.map_err(migration_error)?;
        let time_series = prepare_time_series(&pool).await?;
        tracing::info!(?time_series, "PostgreSQL store ready");
        Ok(Self { pool, time_series })
    }

    /// How the time-series tables are stored.
    pub fn time_series_mode(&self) -> TimeSeriesMode {
        self.time_series
    }

    /// The connection pool, for administration and tests; services go through
    /// [`Store`](crate::Store).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl SqlBackend for PgStore {
    type Db = sqlx::Postgres;

    fn sql_pool(&self) -> &PgPool {
        &self.pool
    }

    fn reading_buckets_sql(&self) -> &'static str {
        crate::sql::queries::READING_BUCKETS_POSTGRES
    }

    fn count_seconds_sql(&self) -> &'static str {
        crate::sql::queries::COUNT_SECONDS_POSTGRES
    }

    fn expires_time_series(&self) -> bool {
        self.time_series == TimeSeriesMode::Hypertables
    }

    fn describe_backend(&self) -> String {
        match self.time_series {
            TimeSeriesMode::Hypertables => "postgres (timescaledb)".to_owned(),
            TimeSeriesMode::PlainTables => "postgres (plain tables)".to_owned(),
        }
    }
}

/// Whether the server can install the `timescaledb` extension.
pub async fn timescaledb_available(pool: &PgPool) -> Result<bool> {
    let (available,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
    )
    .fetch_one(pool)
    .await
    .map_err(db_error)?;
    Ok(available)
}

/// Turns the time-series tables into TimescaleDB hypertables when the extension is available,
/// and otherwise keeps them as plain tables ([`TimeSeriesMode::PlainTables`], with a warning).
/// Idempotent: run at every start, after the migrations.
///
/// A server that lists the extension but cannot create it (e.g. not in
/// `shared_preload_libraries`) also falls back to plain tables, with the reason logged.
pub async fn prepare_time_series(pool: &PgPool) -> Result<TimeSeriesMode> {
    if timescaledb_available(pool).await? {
        match convert_to_hypertables(pool).await {
            Ok(()) => {
                tracing::info!("time-series tables are TimescaleDB hypertables");
                return Ok(TimeSeriesMode::Hypertables);
            }
            Err(error) => {
                tracing::warn!(%error, "TimescaleDB is available but could not be set up");
            }
        }
    }
    Ok(fall_back_to_plain_tables())
}

/// The fallback: the migrations already created the tables as plain tables, so there is
/// nothing to change; only say so.
fn fall_back_to_plain_tables() -> TimeSeriesMode {
    tracing::warn!(
        "TimescaleDB is not available: time-series tables stay plain PostgreSQL tables \
         (no automatic compression or retention)"
    );
    TimeSeriesMode::PlainTables
}

/// Creates the extension and converts every table of [`HYPERTABLES`], in one transaction under
/// an advisory lock.
///
/// NOT EXERCISED BY THE TESTS of this repository: the development and CI machines have no
/// TimescaleDB (PostgreSQL 15 from Debian, no package). The statements follow the TimescaleDB
/// 2.x API (`create_hypertable(..., if_not_exists, migrate_data)`, `timescaledb.compress`,
/// `add_compression_policy`, `add_retention_policy`); check them on a TimescaleDB server
/// before relying on this branch.
async fn convert_to_hypertables(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(TIME_SERIES_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    for h in HYPERTABLES {
        // Identifiers and intervals come from the constant table above, never from input.
        let create = format!(
            "SELECT create_hypertable('{table}', '{time}', \
             chunk_time_interval => INTERVAL '{chunk}', \
             if_not_exists => TRUE, migrate_data => TRUE)",
            table = h.table,
            time = h.time_column,
            chunk = h.chunk_interval,
        );
        execute(&mut tx, create).await?;

        // Compression settings cannot be changed once chunks are compressed: set them only the
        // first time, so that a restart does not fail here.
        let (compression_enabled,): (bool,) = sqlx::query_as(
            "SELECT compression_enabled FROM timescaledb_information.hypertables \
             WHERE hypertable_name = $1",
        )
        .bind(h.table)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if !compression_enabled {
            let compress = format!(
                "ALTER TABLE {table} SET (timescaledb.compress, \
                 timescaledb.compress_segmentby = '{segment}', \
                 timescaledb.compress_orderby = '{time} DESC')",
                table = h.table,
                segment = h.segment_by,
                time = h.time_column,
            );
            execute(&mut tx, compress).await?;
        }

        let compression_policy = format!(
            "SELECT add_compression_policy('{table}', INTERVAL '{after}', if_not_exists => TRUE)",
            table = h.table,
            after = h.compress_after,
        );
        execute(&mut tx, compression_policy).await?;
        let retention_policy = format!(
            "SELECT add_retention_policy('{table}', INTERVAL '{retain}', if_not_exists => TRUE)",
            table = h.table,
            retain = h.retain_for,
        );
        execute(&mut tx, retention_policy).await?;
    }
    tx.commit().await.map_err(db_error)
}

/// Runs one statement built from constants (see [`HYPERTABLES`]).
async fn execute(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, sql: String) -> Result<()> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}
