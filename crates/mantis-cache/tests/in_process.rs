//! The conformance suite against the in-process cache, plus its capacity bound.

use mantis_cache::{Cache, InProcessCache};
use std::time::Duration;

mantis_cache::conformance_tests!(async { InProcessCache::new(1000) });

#[tokio::test]
async fn a_full_cache_evicts_the_entry_closest_to_expiry() {
    let cache = InProcessCache::new(2);
    cache
        .set("short", vec![1], Duration::from_secs(10))
        .await
        .expect("set");
    cache
        .set("long", vec![2], Duration::from_secs(100))
        .await
        .expect("set");
    cache
        .set("new", vec![3], Duration::from_secs(50))
        .await
        .expect("set");
    assert_eq!(cache.get("short").await.expect("get"), None);
    assert_eq!(cache.get("long").await.expect("get"), Some(vec![2]));
    assert_eq!(cache.get("new").await.expect("get"), Some(vec![3]));
}
