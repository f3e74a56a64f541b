//! The conformance suite on local disk (a temporary directory per test), plus what is specific
//! to files: where objects live, crash leftovers, directory clean-up and sabotage.

use mantis_objects::{Bytes, Error, LocalObjects, ObjectStore, ObjectStoreSettings, connect};
use std::future::Future;
use std::panic::resume_unwind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Hands `body` a store in a fresh temporary directory, removed afterwards (even when `body`
/// panics).
async fn with_store<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn ObjectStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = LocalObjects::open(dir.path().join("objects")).expect("open");
    let outcome = tokio::spawn(body(Arc::new(store))).await;
    drop(dir);
    if let Err(e) = outcome {
        resume_unwind(e.into_panic());
    }
}

mantis_objects::conformance_tests!(with_store);

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir");
                found.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn objects_are_plain_files_and_nothing_is_left_in_staging() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LocalObjects::open(dir.path()).expect("open");
    store
        .put(
            "models/rul/fleet/v000001/model.bin",
            Bytes::from_static(b"m"),
        )
        .await
        .expect("put");
    assert_eq!(
        std::fs::read(dir.path().join("models/rul/fleet/v000001/model.bin")).expect("a file"),
        b"m"
    );
    assert_eq!(
        files_under(dir.path()),
        ["models/rul/fleet/v000001/model.bin"],
        "the staging directory is empty after a put"
    );
    assert!(dir.path().join(".staging").is_dir());
    assert_eq!(store.root(), dir.path());
}

#[tokio::test]
async fn data_survives_reopening_the_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    LocalObjects::open(dir.path())
        .expect("open")
        .put("a/b", Bytes::from_static(b"kept"))
        .await
        .expect("put");
    let reopened = LocalObjects::open(dir.path()).expect("reopen");
    assert_eq!(
        reopened.get("a/b").await.expect("get"),
        Some(Bytes::from_static(b"kept"))
    );
}

#[tokio::test]
async fn crash_leftovers_are_not_objects_and_old_ones_are_swept_on_open() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LocalObjects::open(dir.path()).expect("open");
    let staging = dir.path().join(".staging");
    let fresh = staging.join("1-0-fresh.tmp");
    let stale = staging.join("1-1-stale.tmp");
    std::fs::write(&fresh, b"being written").expect("write");
    std::fs::write(&stale, b"crashed").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(2 * 3600)))
        .expect("age the leftover");
    std::fs::write(dir.path().join(".DS_Store"), b"junk").expect("write");
    assert!(store.list("").await.expect("list").is_empty());

    LocalObjects::open(dir.path()).expect("reopen");
    assert!(
        fresh.exists(),
        "a recent staging file may belong to a live writer"
    );
    assert!(
        !stale.exists(),
        "an hour-old staging file is a crash leftover"
    );
}

#[tokio::test]
async fn deleting_the_last_object_of_a_directory_removes_the_emptied_directories() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LocalObjects::open(dir.path()).expect("open");
    store
        .put("a/b/c/d", Bytes::from_static(b"x"))
        .await
        .expect("put");
    store
        .put("a/e", Bytes::from_static(b"y"))
        .await
        .expect("put");
    store.delete("a/b/c/d").await.expect("delete");
    assert!(!dir.path().join("a/b").exists());
    assert!(dir.path().join("a").is_dir(), "a/e is still there");
    assert!(dir.path().exists(), "the root stays");
}

#[tokio::test]
async fn a_key_that_is_also_a_prefix_is_a_conflict_on_local_disk() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LocalObjects::open(dir.path()).expect("open");
    store
        .put("a/b", Bytes::from_static(b"x"))
        .await
        .expect("put");
    let result = store.put("a", Bytes::from_static(b"y")).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "got {result:?}");
    store.put("f", Bytes::from_static(b"x")).await.expect("put");
    let result = store.put("f/g/h", Bytes::from_static(b"y")).await;
    assert!(
        matches!(result, Err(Error::Conflict(ref m)) if m.contains("`f`")),
        "got {result:?}"
    );
    assert_eq!(
        files_under(dir.path()),
        ["a/b", "f"],
        "nothing half-written is left behind"
    );
}

#[tokio::test]
async fn a_root_replaced_by_a_file_makes_operations_fail_with_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("objects");
    let store = LocalObjects::open(&root).expect("open");
    std::fs::remove_dir_all(&root).expect("sabotage");
    std::fs::write(&root, b"not a directory").expect("sabotage");

    let put = store.put("a/b", Bytes::from_static(b"x")).await;
    assert!(
        matches!(put, Err(Error::Storage { op: "put", .. })),
        "got {put:?}"
    );
    assert_eq!(store.get("a/b").await.expect("get"), None);
    assert!(LocalObjects::open(&root).is_err());
}

#[tokio::test]
async fn connect_puts_local_objects_in_the_data_dir_by_default() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = connect(&ObjectStoreSettings::default(), dir.path()).expect("connect");
    assert_eq!(
        store.describe(),
        format!("local ({})", dir.path().join("objects").display())
    );
    assert!(dir.path().join("objects").is_dir());

    let relative = ObjectStoreSettings::Local {
        path: Some(PathBuf::from("blobs")),
    };
    let store = connect(&relative, dir.path()).expect("connect");
    store.put("k", Bytes::from_static(b"v")).await.expect("put");
    assert!(dir.path().join("blobs/k").is_file());

    let absolute = dir.path().join("elsewhere");
    let store = connect(
        &ObjectStoreSettings::Local {
            path: Some(absolute.clone()),
        },
        std::path::Path::new("/ignored"),
    )
    .expect("connect");
    store.put("k", Bytes::from_static(b"v")).await.expect("put");
    assert!(absolute.join("k").is_file());
}
