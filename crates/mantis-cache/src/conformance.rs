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

/// Generates one `#[tokio::test]` per conformance body for a cache built by `$make` (an async
/// expression).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@one $make, set_then_get, set_replaces, entries_expire, delete_removes, binary_values_round_trip, invalid_requests_are_refused);
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
