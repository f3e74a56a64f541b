//! SQLite backend (embedded mode): one database file, nothing to install.
//!
//! [`SqliteStore::open`] creates the file if needed, switches it to WAL (readers never block the
//! writer), turns foreign keys on, waits up to [`BUSY_TIMEOUT`] for a lock instead of failing,
//! and applies `migrations/sqlite`. Commits are synchronous (`synchronous = FULL`, sqlx's
//! default): accepted data survives a crash or a power cut. Ids are stored as text, instants
//! as integer Unix milliseconds (exact); see `migrations/sqlite`.

use crate::Result;
use crate::sql::{SqlBackend, db_error, migration_error};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::time::Duration;

/// The SQLite migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How long a statement waits for another connection's write lock before failing with
/// [`crate::Error::Unavailable`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to a database file: several readers alongside the one writer WAL allows.
const MAX_CONNECTIONS: u32 = 4;

/// The SQLite [`Store`](crate::Store).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies the migrations.
    #[tracing::instrument(name = "sqlite_open", skip_all, fields(path = %path.as_ref().display()))]
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::migrated(pool, path.display().to_string()).await
    }

    /// A private database in memory, gone when the store is dropped (tests, demos).
    ///
    /// An in-memory SQLite database lives as long as its connection, and every connection gets
    /// its own: the pool therefore holds exactly one connection and never closes it.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::migrated(pool, "in memory".to_owned()).await
    }

    async fn migrated(pool: SqlitePool, location: String) -> Result<Self> {
        MIGRATOR.run(&pool).await.map_err(migration_error)?;
        tracing::info!(%location, "SQLite store ready");
        Ok(Self { pool, location })
    }

    /// The connection pool, for administration and tests; services go through
    /// [`Store`](crate::Store).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl SqlBackend for SqliteStore {
    type Db = sqlx::Sqlite;

    fn sql_pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn reading_buckets_sql(&self) -> &'static str {
        crate::sql::queries::READING_BUCKETS_SQLITE
    }

    fn count_seconds_sql(&self) -> &'static str {
        crate::sql::queries::COUNT_SECONDS_SQLITE
    }

    fn describe_backend(&self) -> String {
        format!("sqlite ({})", self.location)
    }
}
