//! The SQLite store: the whole conformance suite on a database file (WAL, several connections)
//! and on an in-memory database (one connection), plus what is specific to SQLite.

use mantis_domain::{Asset, AssetId, Criticality, TenantId};
use mantis_store::sqlite::SqliteStore;
use mantis_store::{Error, Store};
use std::future::Future;
use std::panic::resume_unwind;

/// Hands `body` a store on a fresh database file in a temporary directory, removed afterwards
/// (even when `body` panics).
async fn with_file_store<F, Fut>(body: F)
where
    F: FnOnce(SqliteStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = SqliteStore::open(dir.path().join("mantis.db"))
        .await
        .expect("open a SQLite file");
    let outcome = tokio::spawn(body(store)).await;
    drop(dir);
    if let Err(e) = outcome {
        resume_unwind(e.into_panic());
    }
}

/// Hands `body` a store on a fresh in-memory database.
async fn with_memory_store<F, Fut>(body: F)
where
    F: FnOnce(SqliteStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = SqliteStore::in_memory().await.expect("open in memory");
    body(store).await;
}

mod file {
    mantis_store::conformance_tests!(super::with_file_store);
}

mod memory {
    mantis_store::conformance_tests!(super::with_memory_store);
}

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

#[tokio::test]
async fn a_database_file_is_created_in_wal_mode_with_foreign_keys_on() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("edge.db");
    let store = SqliteStore::open(&path).await.expect("open");
    assert!(path.exists());

    let (journal_mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("journal mode");
    assert_eq!(journal_mode, "wal");
    let (foreign_keys,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .expect("foreign keys");
    assert_eq!(foreign_keys, 1);
    assert!(store.describe().starts_with("sqlite ("));
}

#[tokio::test]
async fn data_survives_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("edge.db");
    let asset = motor();
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.upsert_asset(&asset).await.expect("write");
        store.pool().close().await;
    }
    let reopened = SqliteStore::open(&path)
        .await
        .expect("reopen (migrations again)");
    assert_eq!(
        reopened.get_asset(asset.id).await.expect("read"),
        Some(asset)
    );
}

#[tokio::test]
async fn a_missing_table_makes_writes_fail_with_an_error_not_a_panic() {
    let store = SqliteStore::in_memory().await.expect("open");
    sqlx::query("DROP TABLE work_orders")
        .execute(store.pool())
        .await
        .expect("sabotage");
    sqlx::query("DROP TABLE assets")
        .execute(store.pool())
        .await
        .expect("sabotage");

    let result = store.upsert_asset(&motor()).await;
    assert!(
        matches!(result, Err(Error::Database(ref m)) if m.contains("assets")),
        "got {result:?}"
    );
    let listed = store.list_assets(None).await;
    assert!(matches!(listed, Err(Error::Database(_))), "got {listed:?}");
}

#[tokio::test]
async fn a_closed_store_is_unavailable_and_retryable() {
    let store = SqliteStore::in_memory().await.expect("open");
    store.pool().close().await;

    let result = store.ping().await;
    assert!(
        matches!(result, Err(ref e @ Error::Unavailable(_)) if e.is_retryable()),
        "got {result:?}"
    );
    assert!(matches!(
        store.upsert_asset(&motor()).await,
        Err(Error::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_stored_value_the_domain_does_not_know_is_reported_as_corrupt() {
    let store = SqliteStore::in_memory().await.expect("open");
    let asset = motor();
    store.upsert_asset(&asset).await.expect("write");
    sqlx::query("UPDATE assets SET criticality = 'APOCALYPTIC'")
        .execute(store.pool())
        .await
        .expect("sabotage");

    let result = store.get_asset(asset.id).await;
    assert!(
        matches!(result, Err(Error::Corrupt(ref m)) if m.contains("criticality")),
        "got {result:?}"
    );
}
