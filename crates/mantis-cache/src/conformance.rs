//! One conformance suite for every [`Cache`](crate::Cache) implementation. Each body takes the
//! cache and a unique key prefix, so suites may run concurrently against one server.

use crate::{Cache, Error};
use std::time::Duration;

/// A value written is read back; an absent key reads as `None`.
pub async fn set_then_get<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:a");
    assert_eq!(cache.get(&key).await.expect("get"), None);
    cache
        .set(&key, b"first".to_vec(), Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(cache.get(&key).await.expect("get"), Some(b"first".to_vec()));
}

/// Setting again replaces the value.
pub async fn set_replaces<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:b");
    cache
        .set(&key, b"1".to_vec(), Duration::from_secs(60))
        .await
        .expect("set");
    cache
        .set(&key, b"2".to_vec(), Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(cache.get(&key).await.expect("get"), Some(b"2".to_vec()));
}

/// An entry is gone once its TTL has passed.
pub async fn entries_expire<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:c");
    cache
        .set(&key, b"x".to_vec(), Duration::from_millis(200))
        .await
        .expect("set");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if cache.get(&key).await.expect("get").is_none() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Delete removes; deleting an absent key is fine.
pub async fn delete_removes<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:d");
    cache
        .set(&key, b"x".to_vec(), Duration::from_secs(60))
        .await
        .expect("set");
    cache.delete(&key).await.expect("delete");
    assert_eq!(cache.get(&key).await.expect("get"), None);
    cache.delete(&key).await.expect("deleting an absent key");
}

/// Binary values (not UTF-8) round-trip unchanged.
pub async fn binary_values_round_trip<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:e");
    let value: Vec<u8> = (0..=255u8).collect();
    cache
        .set(&key, value.clone(), Duration::from_secs(60))
        .await
        .expect("set");
    assert_eq!(cache.get(&key).await.expect("get"), Some(value));
}

/// Empty keys, zero TTLs and TTLs beyond [`crate::MAX_TTL`] are refused.
pub async fn invalid_requests_are_refused<C: Cache + ?Sized>(cache: &C, ns: &str) {
    assert!(matches!(cache.get("").await, Err(Error::Invalid(_))));
    assert!(matches!(
        cache.set(&format!("{ns}:f"), vec![], Duration::ZERO).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        cache
            .set(&format!("{ns}:f"), vec![], Duration::from_secs(u64::MAX))
            .await,
        Err(Error::Invalid(_))
    ));
    cache
        .set(&format!("{ns}:f"), vec![1], crate::MAX_TTL)
        .await
        .expect("ten years is taken");
    cache.ping().await.expect("ping");
}

/// A counter starts at zero with the window of its first addition, which later additions
/// neither lengthen nor shorten; it takes negative and zero additions and reads through `get`.
pub async fn counters_count_within_their_window<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:g");
    let minute = Duration::from_secs(60);
    let first = cache.count(&key, 1, minute).await.expect("count");
    assert_eq!(first.value, 1);
    assert!(
        first.ends_in <= minute && first.ends_in > Duration::from_secs(50),
        "{first:?}"
    );
    let second = cache
        .count(&key, 2, Duration::from_secs(5))
        .await
        .expect("count");
    assert_eq!(second.value, 3);
    assert!(
        second.ends_in > Duration::from_secs(50),
        "the window is the first addition's: {second:?}"
    );
    let third = cache
        .count(&key, 1, Duration::from_secs(3600))
        .await
        .expect("count");
    assert!(
        third.ends_in <= minute,
        "nor lengthened by a later one: {third:?}"
    );
    assert_eq!(cache.count(&key, -2, minute).await.expect("count").value, 2);
    assert_eq!(cache.count(&key, 0, minute).await.expect("read").value, 2);
    assert_eq!(cache.get(&key).await.expect("get"), Some(b"2".to_vec()));
    // Taken back below zero: zero, in the same window.
    let floored = cache.count(&key, -5, minute).await.expect("count");
    assert_eq!(floored.value, 0);
    assert!(floored.ends_in > Duration::from_secs(50), "{floored:?}");
    assert_eq!(cache.count(&key, 1, minute).await.expect("count").value, 1);
    // Taken back where there is none: none is started.
    let absent = format!("{ns}:g-absent");
    let none = cache.count(&absent, -1, minute).await.expect("count");
    assert_eq!((none.value, none.ends_in), (0, Duration::ZERO));
    assert_eq!(cache.get(&absent).await.expect("get"), None);
}

/// Once its window has passed, a counter starts again from zero with a new window.
pub async fn counters_start_again_after_their_window<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:h");
    let short = Duration::from_millis(200);
    assert_eq!(cache.count(&key, 5, short).await.expect("count").value, 5);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.get(&key).await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "counter never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = cache
        .count(&key, 1, Duration::from_secs(60))
        .await
        .expect("count");
    assert_eq!(again.value, 1);
    assert!(again.ends_in > Duration::from_secs(50), "{again:?}");
}

/// Additions made at once are all counted, each answered its own value.
pub async fn concurrent_additions_are_all_counted<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let key = format!("{ns}:i");
    let add = || cache.count(&key, 1, Duration::from_secs(60));
    let (a, b, c, d, e, f, g, h) =
        tokio::join!(add(), add(), add(), add(), add(), add(), add(), add());
    let mut values: Vec<i64> = [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|r| r.expect("count").value)
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=8).collect::<Vec<_>>());
}

/// A key holding something other than a counter, and an addition past `i64`, are refused and
/// change nothing.
pub async fn what_is_not_a_counter_is_refused<C: Cache + ?Sized>(cache: &C, ns: &str) {
    let minute = Duration::from_secs(60);
    let text = format!("{ns}:j");
    cache
        .set(&text, b"not a number".to_vec(), minute)
        .await
        .expect("set");
    let e = cache
        .count(&text, 1, minute)
        .await
        .expect_err("not a counter");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert_eq!(
        cache.get(&text).await.expect("get"),
        Some(b"not a number".to_vec())
    );
    let full = format!("{ns}:k");
    cache.count(&full, i64::MAX, minute).await.expect("count");
    let e = cache.count(&full, 1, minute).await.expect_err("overflow");
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert_eq!(
        cache.count(&full, 0, minute).await.expect("read").value,
        i64::MAX
    );
    assert!(matches!(
        cache.count(&full, 1, Duration::ZERO).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        cache.count("", 1, minute).await,
        Err(Error::Invalid(_))
    ));
}

/// Generates one `#[tokio::test]` per conformance body for a cache built by `$make` (an async
/// expression).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@one $make, set_then_get, set_replaces, entries_expire, delete_removes, binary_values_round_trip, invalid_requests_are_refused, counters_count_within_their_window, counters_start_again_after_their_window, concurrent_additions_are_all_counted, what_is_not_a_counter_is_refused);
    };
    (@one $make:expr, $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let cache = $make.await;
                let ns = format!("mantis-test:{}:{}", stringify!($name), uuid::Uuid::new_v4().simple());
                $crate::conformance::$name(&cache, &ns).await;
            }
        )*
    };
}
