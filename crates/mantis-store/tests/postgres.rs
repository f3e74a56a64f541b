//! The PostgreSQL store against the machine's real server: the whole conformance suite, the
//! TimescaleDB fallback, and failure behaviour.
//!
//! Every test creates its own database (`mantis_test_<random>`) from the server named by
//! `MANTIS_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), runs the real
//! migrations in it, and drops it at the end, even when the test fails. A server that cannot be
//! reached fails the tests with a message saying so: they are never skipped silently.

use mantis_domain::{Asset, AssetId, Criticality, TenantId};
use mantis_store::postgres::{
    HYPERTABLES, PgStore, TimeSeriesMode, prepare_time_series, timescaledb_available,
};
use mantis_store::{Error, Store};
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::panic::resume_unwind;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn base_url() -> String {
    std::env::var("MANTIS_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let base = match before_query[authority_start..].find('/') {
        Some(slash) => &before_query[..authority_start + slash],
        None => before_query,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A database of its own for one test.
struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> Self {
        let base = base_url();
        let mut admin = PgConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for these tests and is not reachable at {base} ({e}). \
                 Start it, or point MANTIS_TEST_DATABASE_URL at a server where the user may \
                 CREATE DATABASE."
            )
        });
        let name = format!("mantis_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = with_database(&base, &name);
        Self { name, url }
    }

    /// Best effort: a leftover database is only clutter.
    async fn drop_database(self) {
        if let Ok(mut admin) = PgConnection::connect(&base_url()).await {
            let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
            if let Err(e) = dropped {
                eprintln!("could not drop test database {}: {e}", self.name);
            }
        }
    }
}

/// Hands `body` a store on a fresh, migrated database, and drops the database afterwards (even
/// when `body` panics).
async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(PgStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDatabase::create().await;
    let outcome = match PgStore::connect(&db.url).await {
        Ok(store) => tokio::spawn(body(store)).await,
        Err(e) => {
            db.drop_database().await;
            panic!("connect to and migrate the test database: {e}");
        }
    };
    db.drop_database().await;
    if let Err(e) = outcome {
        resume_unwind(e.into_panic());
    }
}

mantis_store::conformance_tests!(with_store);

fn motor() -> Asset {
    Asset {
        id: AssetId::new_random(),
        tenant_id: TenantId::DEFAULT,
        code: "MTR-001".to_owned(),
        name: "Main motor".to_owned(),
        asset_type: "motor".to_owned(),
        location: "Line 1".to_owned(),
        criticality: Criticality::Critical,
    }
}

#[test]
fn the_test_database_url_keeps_credentials_host_and_options() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// This machine's PostgreSQL has no TimescaleDB, so this exercises the fallback: the
/// time-series tables stay ordinary tables, the store says so, and it works. On a server with
/// TimescaleDB the same test checks the hypertables instead.
#[tokio::test]
async fn without_timescaledb_the_time_series_tables_stay_plain_tables() {
    with_store(|store| async move {
        let available = timescaledb_available(store.pool())
            .await
            .expect("query the available extensions");
        let again = prepare_time_series(store.pool())
            .await
            .expect("preparing twice is harmless");
        assert_eq!(again, store.time_series_mode());

        if available {
            assert_eq!(store.time_series_mode(), TimeSeriesMode::Hypertables);
            assert_eq!(store.describe(), "postgres (timescaledb)");
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM timescaledb_information.hypertables \
                 WHERE hypertable_name = ANY($1)",
            )
            .bind(HYPERTABLES.iter().map(|h| h.table).collect::<Vec<_>>())
            .fetch_one(store.pool())
            .await
            .expect("list hypertables");
            assert_eq!(n, HYPERTABLES.len() as i64);
        } else {
            assert_eq!(store.time_series_mode(), TimeSeriesMode::PlainTables);
            assert_eq!(store.describe(), "postgres (plain tables)");
            for h in HYPERTABLES {
                let (kind,): (String,) =
                    sqlx::query_as("SELECT relkind::text FROM pg_class WHERE relname = $1")
                        .bind(h.table)
                        .fetch_one(store.pool())
                        .await
                        .unwrap_or_else(|e| panic!("table {} exists: {e}", h.table));
                assert_eq!(kind, "r", "{} is an ordinary table", h.table);
            }
        }
        store.ping().await.expect("the store works either way");
    })
    .await;
}

/// Instants are native `timestamptz` columns (their millisecond round trip is in the
/// conformance suite).
#[tokio::test]
async fn instants_are_stored_as_timestamptz_columns() {
    with_store(|store| async move {
        let (column_type,): (String,) = sqlx::query_as(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name = 'sensor_data_raw' AND column_name = 'time'",
        )
        .fetch_one(store.pool())
        .await
        .expect("column type");
        assert_eq!(column_type, "timestamp with time zone");
    })
    .await;
}

/// A reading of an unregistered sensor, with `metadata`.
fn reading(metadata: std::collections::BTreeMap<String, String>) -> mantis_domain::Reading {
    mantis_domain::Reading {
        timestamp: chrono::Utc::now(),
        asset_id: AssetId::new_random(),
        sensor_id: mantis_domain::SensorId::new_random(),
        sensor_code: "X".to_owned(),
        sensor_type: mantis_domain::SensorType::Vibration,
        value: 1.0,
        unit: "mm/s".to_owned(),
        quality: mantis_domain::Quality::GOOD,
        source: mantis_domain::SourceProtocol::Rest,
        metadata,
    }
}

#[tokio::test]
async fn a_dropped_table_makes_writes_fail_with_an_error_not_a_panic() {
    with_store(|store| async move {
        sqlx::query("DROP TABLE sensor_data_raw")
            .execute(store.pool())
            .await
            .expect("sabotage");
        let reading = reading(Default::default());
        let result = store.insert_readings(&[reading]).await;
        assert!(
            matches!(result, Err(Error::Database(ref m)) if m.contains("sensor_data_raw")),
            "got {result:?}"
        );
        assert!(!result.is_err_and(|e| e.is_retryable()));
    })
    .await;
}

/// PostgreSQL cannot store a NUL character in a text (or a `\u0000` in a JSON document): the
/// caller's value is refused (an HTTP 400, a dead letter), neither a database failure nor
/// something to retry. (SQLite stores it.)
#[tokio::test]
async fn a_nul_character_is_a_refused_value_not_a_database_failure() {
    with_store(|store| async move {
        let mut asset = motor();
        asset.name = "motor\u{0}".to_owned();
        let result = store.upsert_asset(&asset).await;
        assert!(matches!(result, Err(Error::Rejected(_))), "got {result:?}");
        assert!(!result.is_err_and(|e| e.is_retryable()));
        let reading = reading([("note".to_owned(), "a\u{0}b".to_owned())].into());
        let result = store.insert_readings(&[reading]).await;
        assert!(matches!(result, Err(Error::Rejected(_))), "got {result:?}");
    })
    .await;
}

#[tokio::test]
async fn a_closed_pool_is_unavailable_and_retryable() {
    with_store(|store| async move {
        store.pool().close().await;
        let result = store.upsert_asset(&motor()).await;
        assert!(
            matches!(result, Err(ref e @ Error::Unavailable(_)) if e.is_retryable()),
            "got {result:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_server_that_refuses_connections_is_unavailable() {
    // Port 1 on the loopback: nothing listens there, the connection is refused at once.
    let result = PgStore::connect("postgres://postgres@127.0.0.1:1/nothing").await;
    assert!(
        matches!(result, Err(Error::Unavailable(_))),
        "got {:?}",
        result.err()
    );
}

/// A pool holds at most the connections it is given (every replica of every service has its
/// own: together they must stay within the server's `max_connections`): the third caller of
/// a pool of two waits for one of them, and gets it when it is given back.
#[tokio::test]
async fn a_pool_holds_at_most_the_connections_it_is_given() {
    let db = TestDatabase::create().await;
    let outcome = tokio::spawn({
        let url = db.url.clone();
        async move {
            let store = PgStore::connect_with(&url, 2).await.expect("connect");
            assert_eq!(store.pool().options().get_max_connections(), 2);
            let first = store.pool().acquire().await.expect("first");
            let _second = store.pool().acquire().await.expect("second");
            let third = tokio::time::timeout(
                std::time::Duration::from_millis(300),
                store.pool().acquire(),
            )
            .await;
            assert!(third.is_err(), "a third connection was opened");
            drop(first);
            store.pool().acquire().await.expect("given back");
        }
    })
    .await;
    db.drop_database().await;
    if let Err(e) = outcome {
        resume_unwind(e.into_panic());
    }
}
