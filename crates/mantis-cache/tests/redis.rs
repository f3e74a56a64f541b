//! The conformance suite against the machine's real Redis (`MANTIS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Fails, never skips, when Redis is down.

use mantis_cache::{Cache, Error, RedisCache};

fn url() -> String {
    std::env::var("MANTIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis() -> RedisCache {
    RedisCache::connect(&url()).await.unwrap_or_else(|e| {
        panic!("Redis is needed at {} for these tests ({e}); start it with `redis-server --daemonize yes`", url())
    })
}

mantis_cache::conformance_tests!(redis());

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let e = RedisCache::connect("redis://127.0.0.1:1/")
        .await
        .expect_err("nothing listens there");
    assert!(matches!(e, Error::Unavailable(_)), "{e}");
}

#[tokio::test]
async fn describes_itself() {
    assert!(redis().await.describe().starts_with("redis ("));
}
