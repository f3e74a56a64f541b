//! The conformance suite: what every [`ObjectStore`] must do, and the [`ModelRegistry`] on top of
//! it, written once and run against each implementation (feature `conformance`).
//!
//! Each body takes a fresh, empty store as `Arc<dyn ObjectStore>`, arranges its own objects,
//! acts, and asserts behaviour (never timing). A backend's test file runs them all with
//! [`conformance_tests!`](crate::conformance_tests), handing each body a store through a helper
//! of its own (`with_store` in `tests/conformance_local.rs`, a temporary directory; in
//! `tests/conformance_s3.rs`, a moto server and bucket of its own).

use crate::registry::{ModelMetadata, ModelRegistry, ModelSeries, TrainingPeriod};
use crate::{Bytes, Error, ObjectStore};
use chrono::{TimeZone, Utc};
use std::sync::Arc;

/// Generates one `#[tokio::test]` per conformance body. `$with_store` is an async function
/// taking a closure `FnOnce(Arc<dyn ObjectStore>) -> impl Future<Output = ()> + Send + 'static`,
/// that hands the closure a fresh, empty store and cleans up afterwards.
#[macro_export]
macro_rules! conformance_tests {
    ($with_store:path) => {
        $crate::conformance_tests!($with_store, without_racing_new_objects);
        $crate::conformance_tests!(@each $with_store; racing_new_objects_store_exactly_one);
    };
    // For a test server that does not make `put_new` atomic (moto checks `If-None-Match`,
    // but two racers can both pass the check): every body but the race.
    ($with_store:path, without_racing_new_objects) => {
        $crate::conformance_tests!(@each $with_store;
            bytes_round_trip_including_empty_and_five_megabyte_objects,
            keys_with_spaces_and_unicode_round_trip,
            a_put_replaces_the_previous_object,
            a_new_object_is_stored_only_where_none_is,
            a_missing_object_reads_as_none,
            delete_removes_and_is_idempotent,
            list_is_sorted_and_matches_whole_segments,
            invalid_keys_are_rejected_by_every_operation,
            concurrent_puts_of_different_keys_all_land,
            readers_never_see_a_partial_object,
            the_store_describes_itself,
            registered_versions_are_numbered_from_one_and_read_back,
            series_are_numbered_independently,
            racing_registrations_get_distinct_consecutive_versions,
            promotions_and_rollbacks_follow_the_history,
            a_rollback_to_a_damaged_version_moves_nothing,
            a_model_that_does_not_match_its_metadata_is_corrupt,
            a_registration_skips_a_version_another_writer_claimed,
        );
    };
    (@each $with_store:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $with_store(|store| async move {
                    $crate::conformance::$name(store).await;
                })
                .await;
            }
        )*
    };
}

/// `len` bytes that are not a repeated pattern of small period (so that an offset error shows).
fn pseudo_random(len: usize, seed: u32) -> Bytes {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Empty, binary and 5 MB objects read back byte for byte, with their sizes.
pub async fn bytes_round_trip_including_empty_and_five_megabyte_objects(
    store: Arc<dyn ObjectStore>,
) {
    let binary: Bytes = (0..=255u8).collect::<Vec<u8>>().into();
    let large = pseudo_random(5 * 1024 * 1024, 7);
    for (key, value) in [
        ("objects/empty", Bytes::new()),
        ("objects/binary.bin", binary),
        ("objects/large.bin", large),
    ] {
        store.put(key, value.clone()).await.expect("put");
        let back = store.get(key).await.expect("get");
        assert!(
            back.as_ref() == Some(&value),
            "`{key}` read back {:?} bytes, wrote {}",
            back.as_ref().map(Bytes::len),
            value.len()
        );
        let info = store.head(key).await.expect("head").expect("exists");
        assert_eq!(info.key, key);
        assert_eq!(info.size, value.len() as u64);
        assert!(store.exists(key).await.expect("exists"));
    }
}

/// Keys with spaces, punctuation and non-ASCII letters are stored and listed as given.
pub async fn keys_with_spaces_and_unicode_round_trip(store: Arc<dyn ObjectStore>) {
    let key = "imports/2024 Q1 (pumps)/Ünïcode+ключ=1.csv";
    store
        .put(key, Bytes::from_static(b"t,v\n"))
        .await
        .expect("put");
    assert_eq!(
        store.get(key).await.expect("get"),
        Some(Bytes::from_static(b"t,v\n"))
    );
    let listed: Vec<String> = store
        .list("imports")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, [key]);
}

/// Putting again replaces the object (content and size).
pub async fn a_put_replaces_the_previous_object(store: Arc<dyn ObjectStore>) {
    let key = "state/cursor.json";
    store
        .put(key, Bytes::from_static(b"a much longer first value"))
        .await
        .expect("put");
    store
        .put(key, Bytes::from_static(b"short"))
        .await
        .expect("put again");
    assert_eq!(
        store.get(key).await.expect("get"),
        Some(Bytes::from_static(b"short"))
    );
    assert_eq!(
        store.head(key).await.expect("head").map(|i| i.size),
        Some(5)
    );
    assert_eq!(store.list("state").await.expect("list").len(), 1);
}

/// `put_new` stores where no object is, and where one is leaves it as it is (answering
/// `false`); a deleted object's key takes a new one again; invalid keys are refused.
pub async fn a_new_object_is_stored_only_where_none_is(store: Arc<dyn ObjectStore>) {
    let key = "models/rul/fleet/v000001/model.bin";
    assert!(
        store
            .put_new(key, Bytes::from_static(b"first"))
            .await
            .expect("put_new")
    );
    assert!(
        !store
            .put_new(key, Bytes::from_static(b"second, longer"))
            .await
            .expect("put_new where one is"),
        "an object is there"
    );
    assert_eq!(
        store.get(key).await.expect("get"),
        Some(Bytes::from_static(b"first"))
    );
    assert_eq!(
        store.list("models").await.expect("list").len(),
        1,
        "nothing left behind"
    );
    store.delete(key).await.expect("delete");
    assert!(
        store
            .put_new(key, Bytes::from_static(b"third"))
            .await
            .expect("put_new after a delete")
    );
    assert_eq!(
        store.get(key).await.expect("get"),
        Some(Bytes::from_static(b"third"))
    );
    assert!(matches!(
        store.put_new("a//b", Bytes::from_static(b"x")).await,
        Err(Error::InvalidKey { .. })
    ));
}

/// Of writers racing to store a new object under one key, exactly one does; the object is
/// whole and is that writer's.
pub async fn racing_new_objects_store_exactly_one(store: Arc<dyn ObjectStore>) {
    for round in 0..10u32 {
        let key = format!("claims/v{round:06}/model.bin");
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..8u32 {
            let (store, key) = (Arc::clone(&store), key.clone());
            tasks.spawn(async move {
                let stored = store
                    .put_new(&key, pseudo_random(50_000, round * 8 + writer + 1))
                    .await
                    .expect("put_new");
                (stored, writer)
            });
        }
        let mut winners = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (stored, writer) = done.expect("task");
            if stored {
                winners.push(writer);
            }
        }
        let [winner] = winners[..] else {
            panic!("round {round}: {winners:?} stored")
        };
        assert_eq!(
            store.get(&key).await.expect("get"),
            Some(pseudo_random(50_000, round * 8 + winner + 1)),
            "round {round}"
        );
    }
    assert_eq!(store.list("claims").await.expect("list").len(), 10);
}

/// An absent object reads as `None`, including under an absent prefix and at a key that is
/// only a prefix of other keys.
pub async fn a_missing_object_reads_as_none(store: Arc<dyn ObjectStore>) {
    assert_eq!(store.get("nothing/here").await.expect("get"), None);
    assert_eq!(store.head("nothing/here").await.expect("head"), None);
    assert!(!store.exists("nothing/here").await.expect("exists"));
    store
        .put("dir/child", Bytes::from_static(b"x"))
        .await
        .expect("put");
    assert_eq!(store.get("dir").await.expect("get a prefix"), None);
    assert_eq!(store.head("dir").await.expect("head a prefix"), None);
    assert_eq!(
        store
            .get("dir/child/deeper")
            .await
            .expect("get below an object"),
        None
    );
}

/// Delete removes; deleting an absent object (or one already deleted) is fine, and a deleted
/// object is no longer listed.
pub async fn delete_removes_and_is_idempotent(store: Arc<dyn ObjectStore>) {
    store
        .delete("never/was")
        .await
        .expect("deleting an absent key");
    store
        .put("trash/a", Bytes::from_static(b"x"))
        .await
        .expect("put");
    store
        .put("trash/b", Bytes::from_static(b"y"))
        .await
        .expect("put");
    store.delete("trash/a").await.expect("delete");
    assert_eq!(store.get("trash/a").await.expect("get"), None);
    store.delete("trash/a").await.expect("delete again");
    let left: Vec<String> = store
        .list("trash")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(left, ["trash/b"]);
    store.delete("trash/b").await.expect("delete the last one");
    assert!(store.list("trash").await.expect("list").is_empty());
    // The emptied prefix can hold objects again.
    store
        .put("trash/c", Bytes::from_static(b"z"))
        .await
        .expect("put after emptying");
    assert!(store.exists("trash/c").await.expect("exists"));
}

/// Listing returns the objects under whole-segment prefixes, sorted by key, with sizes.
pub async fn list_is_sorted_and_matches_whole_segments(store: Arc<dyn ObjectStore>) {
    for (key, len) in [
        ("models/ab/x", 1),
        ("models/a/z", 2),
        ("models/a/b/y", 3),
        ("models/a/c", 4),
        ("other/q", 5),
    ] {
        store
            .put(key, Bytes::from(vec![b'x'; len]))
            .await
            .expect("put");
    }
    let listed = |prefix: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .list(prefix)
                .await
                .expect("list")
                .into_iter()
                .map(|o| (o.key, o.size))
                .collect::<Vec<_>>()
        }
    };
    let under_a = vec![
        ("models/a/b/y".to_owned(), 3),
        ("models/a/c".to_owned(), 4),
        ("models/a/z".to_owned(), 2),
    ];
    assert_eq!(listed("models/a").await, under_a);
    assert_eq!(
        listed("models/a/").await,
        under_a,
        "a trailing / is ignored"
    );
    assert_eq!(listed("models").await.len(), 4);
    let all: Vec<String> = listed("").await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        all,
        [
            "models/a/b/y",
            "models/a/c",
            "models/a/z",
            "models/ab/x",
            "other/q"
        ]
    );
    assert!(
        listed("models/a/c").await.is_empty(),
        "an object is not a prefix"
    );
    assert!(listed("absent").await.is_empty());
    assert!(
        listed("mod").await.is_empty(),
        "prefixes match whole segments"
    );
}

/// Traversal, empty segments, absolute keys and backslashes are refused before any I/O.
pub async fn invalid_keys_are_rejected_by_every_operation(store: Arc<dyn ObjectStore>) {
    for key in [
        "", "/abs", "a//b", "a/", "../up", "a/../b", "a/./b", "a\\b", ".hidden",
    ] {
        let is_invalid = |r: Result<(), Error>| matches!(r, Err(Error::InvalidKey { .. }));
        assert!(
            is_invalid(store.put(key, Bytes::from_static(b"x")).await),
            "put {key:?}"
        );
        assert!(is_invalid(store.get(key).await.map(|_| ())), "get {key:?}");
        assert!(
            is_invalid(store.head(key).await.map(|_| ())),
            "head {key:?}"
        );
        assert!(
            is_invalid(store.exists(key).await.map(|_| ())),
            "exists {key:?}"
        );
        assert!(is_invalid(store.delete(key).await), "delete {key:?}");
    }
    for prefix in ["/abs", "a//b", "../up", "a\\b"] {
        assert!(
            matches!(store.list(prefix).await, Err(Error::InvalidKey { .. })),
            "list {prefix:?}"
        );
    }
    assert!(
        store.list("").await.expect("list").is_empty(),
        "nothing was written"
    );
}

/// Puts of different keys from many tasks at once all land.
pub async fn concurrent_puts_of_different_keys_all_land(store: Arc<dyn ObjectStore>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u32 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            // Half share a directory, half get their own, to race directory creation too.
            let key = if i % 2 == 0 {
                format!("burst/shared/{i:02}")
            } else {
                format!("burst/own-{i:02}/object")
            };
            store
                .put(&key, pseudo_random(10_000, i + 1))
                .await
                .expect("concurrent put");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    let listed = store.list("burst").await.expect("list");
    assert_eq!(listed.len(), 16);
    for i in 0..16u32 {
        let key = if i % 2 == 0 {
            format!("burst/shared/{i:02}")
        } else {
            format!("burst/own-{i:02}/object")
        };
        assert_eq!(
            store.get(&key).await.expect("get"),
            Some(pseudo_random(10_000, i + 1)),
            "{key}"
        );
    }
}

/// While one task overwrites an object, another only ever reads a whole old or new version.
pub async fn readers_never_see_a_partial_object(store: Arc<dyn ObjectStore>) {
    const LEN: usize = 1024 * 1024;
    let key = "atomic/model.bin";
    store
        .put(key, Bytes::from(vec![0u8; LEN]))
        .await
        .expect("first put");
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for round in 1..=8u8 {
                store
                    .put(key, Bytes::from(vec![round; LEN]))
                    .await
                    .expect("overwrite");
            }
        })
    };
    let mut reads = 0;
    loop {
        let finished = writer.is_finished();
        let seen = store.get(key).await.expect("get").expect("always present");
        reads += 1;
        assert_eq!(seen.len(), LEN, "read {reads} saw a partial object");
        let first = seen[0];
        assert!(
            seen.iter().all(|b| *b == first),
            "read {reads} mixed two versions"
        );
        if finished {
            break;
        }
    }
    writer.await.expect("writer");
    assert_eq!(
        store.get(key).await.expect("get"),
        Some(Bytes::from(vec![8u8; LEN]))
    );
}

/// The description names the implementation.
pub async fn the_store_describes_itself(store: Arc<dyn ObjectStore>) {
    let d = store.describe();
    assert!(
        d.starts_with("local (") || d.starts_with("s3 (") || d.starts_with("memory ("),
        "{d}"
    );
}

fn metadata(format: &str, rmse: f64) -> ModelMetadata {
    let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single();
    let to = Utc.with_ymd_and_hms(2024, 3, 31, 23, 59, 59).single();
    let mut m = ModelMetadata::new(format);
    m.training_period = from.zip(to).map(|(from, to)| TrainingPeriod { from, to });
    m.metrics.insert("rmse".into(), rmse);
    m.metrics.insert("mae".into(), rmse / 2.0);
    m.contract = serde_json::json!({"features": ["rms", "kurtosis"], "window_s": 60});
    m
}

fn series(kind: &str, scope: &str) -> ModelSeries {
    ModelSeries::new(kind, scope).expect("a valid series")
}

/// Versions count from 1; each reads back with its bytes and metadata; unknown ones are `None`.
pub async fn registered_versions_are_numbered_from_one_and_read_back(store: Arc<dyn ObjectStore>) {
    let registry = ModelRegistry::new(store);
    let rul = series("rul", "pump-7");
    assert!(registry.versions(&rul).await.expect("versions").is_empty());

    let first = metadata("onnx", 12.5);
    let v1 = registry
        .register(&rul, Bytes::from_static(b"model one"), first.clone())
        .await
        .expect("register");
    let v2 = registry
        .register(&rul, Bytes::new(), metadata("forust-json", 9.0))
        .await
        .expect("register an empty model");
    assert_eq!((v1, v2), (1, 2));

    let versions = registry.versions(&rul).await.expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[0].metadata, first, "metadata round-trips exactly");
    assert_eq!(
        (versions[0].kind.as_str(), versions[0].scope.as_str()),
        ("rul", "pump-7")
    );
    assert_eq!(versions[0].size_bytes, 9);

    let model = registry.get(&rul, 1).await.expect("get").expect("exists");
    assert_eq!(model.bytes, Bytes::from_static(b"model one"));
    assert_eq!(model.version, versions[0]);
    let empty = registry.get(&rul, 2).await.expect("get").expect("exists");
    assert!(empty.bytes.is_empty());
    assert_eq!(empty.version.metadata.format, "forust-json");

    assert!(registry.get(&rul, 3).await.expect("get").is_none());
    assert!(registry.version(&rul, 0).await.expect("version").is_none());
    assert_eq!(
        registry.version(&rul, 2).await.expect("version"),
        Some(versions[1].clone())
    );

    let bad = registry
        .register(&rul, Bytes::new(), metadata("onnx", f64::INFINITY))
        .await;
    assert!(matches!(bad, Err(Error::Invalid(_))), "got {bad:?}");
    assert_eq!(registry.versions(&rul).await.expect("versions").len(), 2);
}

/// Each (kind, scope) has its own numbering, also for scopes that are prefixes of each other.
pub async fn series_are_numbered_independently(store: Arc<dyn ObjectStore>) {
    let registry = ModelRegistry::new(store);
    let fleet = series("anomaly", "fleet");
    let fleet2 = series("anomaly", "fleet2");
    let rul = series("rul", "fleet");
    for _ in 0..3 {
        registry
            .register(&fleet, Bytes::from_static(b"a"), metadata("iforest", 1.0))
            .await
            .expect("register");
    }
    assert_eq!(
        registry
            .register(&fleet2, Bytes::from_static(b"b"), metadata("iforest", 1.0))
            .await
            .expect("register"),
        1
    );
    assert_eq!(
        registry
            .register(&rul, Bytes::from_static(b"c"), metadata("onnx", 1.0))
            .await
            .expect("register"),
        1
    );
    assert_eq!(registry.versions(&fleet).await.expect("versions").len(), 3);
    assert_eq!(registry.versions(&fleet2).await.expect("versions").len(), 1);
    registry.promote(&fleet2, 1).await.expect("promote");
    assert_eq!(registry.promoted(&fleet).await.expect("promoted"), None);
}

/// Registrations racing in one process, through two registries over the same store, get
/// distinct consecutive versions, each with its own bytes.
pub async fn racing_registrations_get_distinct_consecutive_versions(store: Arc<dyn ObjectStore>) {
    let registries = [
        ModelRegistry::new(Arc::clone(&store)),
        ModelRegistry::new(store),
    ];
    let anomaly = series("anomaly", "fleet");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let registry = registries[usize::from(i % 2)].clone();
        let anomaly = anomaly.clone();
        tasks.spawn(async move {
            let version = registry
                .register(
                    &anomaly,
                    Bytes::from(vec![i; 100]),
                    metadata("iforest", 1.0),
                )
                .await
                .expect("register");
            (version, i)
        });
    }
    let mut got = Vec::new();
    while let Some(done) = tasks.join_next().await {
        got.push(done.expect("task"));
    }
    got.sort_unstable();
    assert_eq!(
        got.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u64>>()
    );
    for (version, i) in got {
        let model = registries[0]
            .get(&anomaly, version)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(model.bytes, Bytes::from(vec![i; 100]), "version {version}");
    }
}

/// Promote moves the pointer and remembers the previous one; rollback walks back through the
/// promotions; promoting an unknown version or rolling back with no history is refused.
pub async fn promotions_and_rollbacks_follow_the_history(store: Arc<dyn ObjectStore>) {
    let registry = ModelRegistry::new(store);
    let rul = series("rul", "press-3");
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), None);
    assert!(registry.load_promoted(&rul).await.expect("load").is_none());
    assert!(registry.promotions(&rul).await.expect("history").is_empty());
    assert!(matches!(
        registry.rollback(&rul).await,
        Err(Error::NoRollback { .. })
    ));
    assert!(matches!(
        registry.promote(&rul, 1).await,
        Err(Error::NotFound { .. })
    ));

    for i in 1..=3u8 {
        registry
            .register(&rul, Bytes::from(vec![i]), metadata("onnx", f64::from(i)))
            .await
            .expect("register");
    }
    registry.promote(&rul, 1).await.expect("promote 1");
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), Some(1));
    registry.promote(&rul, 2).await.expect("promote 2");
    registry
        .promote(&rul, 2)
        .await
        .expect("promoting again changes nothing");
    registry.promote(&rul, 3).await.expect("promote 3");
    assert!(matches!(
        registry.promote(&rul, 4).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), Some(3));
    let history: Vec<u64> = registry
        .promotions(&rul)
        .await
        .expect("history")
        .iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(history, [1, 2, 3]);
    let served = registry
        .load_promoted(&rul)
        .await
        .expect("load")
        .expect("promoted");
    assert_eq!(
        (served.version.version, served.bytes),
        (3, Bytes::from(vec![3u8]))
    );

    assert_eq!(registry.rollback(&rul).await.expect("rollback"), 2);
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), Some(2));
    assert_eq!(registry.rollback(&rul).await.expect("rollback"), 1);
    assert!(matches!(
        registry.rollback(&rul).await,
        Err(Error::NoRollback { .. })
    ));
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), Some(1));

    // After a rollback, a new promotion builds on what is promoted now.
    registry.promote(&rul, 3).await.expect("promote 3 again");
    assert_eq!(registry.rollback_target(&rul).await.expect("target"), 1);
    assert_eq!(registry.rollback(&rul).await.expect("rollback"), 1);
    assert!(matches!(
        registry.rollback_target(&rul).await,
        Err(Error::NoRollback { .. })
    ));
}

/// A rollback to a version whose bytes are gone or damaged is refused and leaves the promoted
/// version as it was.
pub async fn a_rollback_to_a_damaged_version_moves_nothing(store: Arc<dyn ObjectStore>) {
    let registry = ModelRegistry::new(Arc::clone(&store));
    let rul = series("rul", "press-4");
    for i in 1..=3u8 {
        registry
            .register(
                &rul,
                Bytes::from(vec![i; 10]),
                metadata("onnx", f64::from(i)),
            )
            .await
            .expect("register");
        registry.promote(&rul, u64::from(i)).await.expect("promote");
    }
    store
        .put(
            "models/rul/press-4/v000002/model.bin",
            Bytes::from_static(b"damaged"),
        )
        .await
        .expect("tamper with v2");
    assert!(matches!(
        registry.rollback(&rul).await,
        Err(Error::Corrupt(_))
    ));
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), Some(3));
    store
        .delete("models/rul/press-4/v000002/model.bin")
        .await
        .expect("delete v2's bytes");
    assert!(registry.rollback(&rul).await.is_err());
    assert_eq!(registry.promoted(&rul).await.expect("promoted"), Some(3));
}

/// Bytes that do not match their metadata, or metadata that is not JSON, are reported as
/// corrupt rather than served; a version with damaged metadata is left out of the listing (the
/// others are listed) and its number is not taken again.
pub async fn a_model_that_does_not_match_its_metadata_is_corrupt(store: Arc<dyn ObjectStore>) {
    let registry = ModelRegistry::new(Arc::clone(&store));
    let anomaly = series("anomaly", "fan-1");
    let v = registry
        .register(
            &anomaly,
            Bytes::from_static(b"trained"),
            metadata("iforest", 1.0),
        )
        .await
        .expect("register");
    let model_key = format!("models/anomaly/fan-1/v{v:06}/model.bin");
    store
        .put(&model_key, Bytes::from_static(b"trainee"))
        .await
        .expect("tamper with the bytes");
    let got = registry.get(&anomaly, v).await;
    assert!(matches!(got, Err(Error::Corrupt(_))), "got {got:?}");

    store
        .put(
            "models/anomaly/fan-1/promoted.json",
            Bytes::from_static(b"{not json"),
        )
        .await
        .expect("tamper with the pointer");
    assert!(matches!(
        registry.promoted(&anomaly).await,
        Err(Error::Corrupt(_))
    ));
    store
        .put(
            &format!("models/anomaly/fan-1/v{v:06}/meta.json"),
            Bytes::from_static(b"[]"),
        )
        .await
        .expect("tamper with the metadata");
    assert!(matches!(
        registry.version(&anomaly, v).await,
        Err(Error::Corrupt(_))
    ));
    let next = registry
        .register(
            &anomaly,
            Bytes::from_static(b"again"),
            metadata("iforest", 1.0),
        )
        .await
        .expect("register");
    assert_eq!(next, v + 1, "the damaged version's number is not reused");
    let listed: Vec<u64> = registry
        .versions(&anomaly)
        .await
        .expect("one damaged record does not fail the listing")
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(listed, vec![next]);
}

/// A version number that another writer has begun to use (its `model.bin` exists, its
/// `meta.json` not yet) is skipped, never overwritten, and not listed.
pub async fn a_registration_skips_a_version_another_writer_claimed(store: Arc<dyn ObjectStore>) {
    let registry = ModelRegistry::new(Arc::clone(&store));
    let rul = series("rul", "fleet");
    registry
        .register(&rul, Bytes::from_static(b"one"), metadata("onnx", 1.0))
        .await
        .expect("register");
    store
        .put(
            "models/rul/fleet/v000002/model.bin",
            Bytes::from_static(b"another process"),
        )
        .await
        .expect("another writer's half-done registration");
    let v = registry
        .register(&rul, Bytes::from_static(b"three"), metadata("onnx", 1.0))
        .await
        .expect("register");
    assert_eq!(v, 3);
    assert_eq!(
        store
            .get("models/rul/fleet/v000002/model.bin")
            .await
            .expect("get"),
        Some(Bytes::from_static(b"another process"))
    );
    let listed: Vec<u64> = registry
        .versions(&rul)
        .await
        .expect("versions")
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, [1, 3]);
}
