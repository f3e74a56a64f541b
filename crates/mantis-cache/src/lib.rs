//! # mantis-cache
//!
//! The online cache of MANTIS: small values that services and the API read often and that may
//! be recomputed from the store (the latest feature vector per asset, the latest anomaly score),
//! with a time to live. One [`Cache`] trait, two implementations:
//!
//! - [`InProcessCache`] (embedded mode): a map in the process, shared by the seven services of
//!   the `mantis` binary; expired entries are dropped lazily and by a bounded sweep.
//! - [`RedisCache`] (cluster mode): Redis `SET key value PX ttl`, shared by every replica.
//!
//! The conformance suite (`conformance`, feature `conformance`) runs the same test bodies against
//! both. Keys are namespaced by the caller (e.g. `features:latest:<asset>`).
//!
//! ```
//! # async fn demo() -> Result<(), mantis_cache::Error> {
//! use mantis_cache::{Cache, InProcessCache};
//! use std::time::Duration;
//! let cache = InProcessCache::new(10_000);
//! cache.set("k", b"v".to_vec(), Duration::from_secs(60)).await?;
//! assert_eq!(cache.get("k").await?, Some(b"v".to_vec()));
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[cfg(feature = "conformance")]
pub mod conformance;

/// The cache keys MANTIS services share, defined once so writers and readers agree.
pub mod keys {
    /// The latest feature vector of a sensor (JSON), written by the feature-extraction service.
    pub fn latest_features(
        asset: impl std::fmt::Display,
        sensor: impl std::fmt::Display,
    ) -> String {
        format!("features:latest:{asset}:{sensor}")
    }
}

/// Errors of the cache.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache server cannot be reached; callers fall back to the store.
    #[error("the cache is unavailable: {0}")]
    Unavailable(String),
    /// The request was invalid (empty key, zero TTL), or the server refuses this client (a
    /// wrong password): waiting does not mend it.
    #[error("invalid cache request: {0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A key-value cache with per-entry time to live.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The value of `key`, `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl` (replacing any previous value and TTL).
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()>;
    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Checks that the cache answers (readiness probes).
    async fn ping(&self) -> Result<()>;
    /// Which implementation this is, for logs.
    fn describe(&self) -> String;
}

/// The longest TTL taken: ten years (a cache entry, not a record).
pub const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

fn check(key: &str, ttl: Option<Duration>) -> Result<()> {
    if key.is_empty() {
        return Err(Error::Invalid("the key must not be empty".into()));
    }
    if ttl.is_some_and(|t| t.as_millis() == 0) {
        return Err(Error::Invalid("the TTL must be at least 1 ms".into()));
    }
    // Both caches alike (one would overflow its clock, the other take it).
    if ttl.is_some_and(|t| t > MAX_TTL) {
        return Err(Error::Invalid(format!(
            "the TTL must be at most {} days",
            MAX_TTL.as_secs() / 86_400
        )));
    }
    Ok(())
}

/// The in-process cache of the embedded mode, bounded in entries.
#[derive(Debug)]
pub struct InProcessCache {
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    capacity: usize,
}

impl InProcessCache {
    /// A cache holding at most `capacity` live entries; when full, expired entries are swept
    /// and, if still full, the entry closest to expiry is evicted.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }
}

#[async_trait]
impl Cache for InProcessCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check(key, None)?;
        let mut entries = self.entries.lock().await;
        match entries.get(key) {
            Some((_, expires)) if *expires <= Instant::now() => {
                entries.remove(key);
                Ok(None)
            }
            Some((v, _)) => Ok(Some(v.clone())),
            None => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        check(key, Some(ttl))?;
        let now = Instant::now();
        let mut entries = self.entries.lock().await;
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key.to_owned(), (value, now + ttl));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check(key, None)?;
        self.entries.lock().await.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("in-process (capacity {})", self.capacity)
    }
}

/// The Redis cache of the cluster mode.
///
/// One multiplexed connection, opened again when it fails: a Redis restart or failover, or a
/// proxy that cut an idle connection, costs the calls in flight (answered
/// [`Error::Unavailable`], or tried once more on a new connection when the old one was found
/// closed), never the cache for the rest of the process's life.
#[derive(Clone)]
pub struct RedisCache {
    client: redis::Client,
    /// The connection and its number (how many were opened before it), `None` after it
    /// failed until a call opens another.
    conn: Arc<std::sync::Mutex<Held>>,
    /// The server's address, as shown (never the URL: it may carry a password).
    addr: String,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A Redis failure: the server refusing this client (a wrong password or user, a setting it
/// does not take) is [`Error::Invalid`], which waiting does not mend; anything else
/// [`Error::Unavailable`].
fn redis_error(e: redis::RedisError) -> Error {
    let refused = matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
    if refused {
        Error::Invalid(format!("Redis refuses this client: {e}"))
    } else {
        Error::Unavailable(e.to_string())
    }
}

/// Bound of every Redis round trip: a slow cache must not stall the pipeline.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection a [`RedisCache`] holds.
#[derive(Default)]
struct Held {
    /// Connections opened so far (the number of the one held).
    opened: u64,
    conn: Option<redis::aio::MultiplexedConnection>,
    /// When opening one last failed: the calls meanwhile answer at once rather than each
    /// waiting for a connect of its own to a server that does not answer.
    failed_at: Option<Instant>,
    /// Whether a call is opening one now: the others answer at once meanwhile.
    connecting: bool,
}

/// Clears [`Held::connecting`] however the connect ends (a caller that goes away included).
struct Connecting<'a>(&'a std::sync::Mutex<Held>);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .connecting = false;
    }
}

/// How long after a failed connect the calls answer [`Error::Unavailable`] without trying.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How a Redis call failed.
enum Failure {
    /// The connection is gone (closed, reset: `dropped`; or no answer in time): open another.
    Connection { error: Error, dropped: bool },
    /// The server answered with an error: the connection is fine.
    Answer(Error),
}

impl Failure {
    fn error(self) -> Error {
        match self {
            Failure::Connection { error, .. } | Failure::Answer(error) => error,
        }
    }
}

async fn bounded<T>(
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> std::result::Result<T, Failure> {
    match tokio::time::timeout(REDIS_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e))
            if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
        {
            Err(Failure::Connection {
                dropped: e.is_connection_dropped() && !e.is_timeout(),
                error: redis_error(e),
            })
        }
        Ok(Err(e)) => Err(Failure::Answer(redis_error(e))),
        // A connection that does not answer (a half-open socket after a NAT or proxy dropped
        // it) is not trusted again.
        Err(_) => Err(Failure::Connection {
            error: Error::Unavailable(format!("no answer within {} s", REDIS_TIMEOUT.as_secs())),
            dropped: false,
        }),
    }
}

impl RedisCache {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self> {
        let cache = Self::lazy(url)?;
        // A command, not only a connection: a server that wants a password this client does
        // not give answers the first command (NOAUTH), not the connect.
        cache.ping().await?;
        Ok(cache)
    }

    /// The cache at `url`, connected at its first use (a service that starts while Redis is
    /// down answers [`Error::Unavailable`] until it is up, rather than failing to start). Only
    /// the URL is checked ([`Error::Invalid`]).
    pub fn lazy(url: &str) -> Result<Self> {
        let client = Self::client(url)?;
        Ok(Self {
            addr: client.get_connection_info().addr().to_string(),
            client,
            conn: Arc::default(),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Held only for a few assignments, never across an await: a panic cannot leave it
        // half-changed.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open connection and its number, or a new one (opened by one caller at a time; the
    /// others, and every caller within [`RECONNECT_AFTER`] of a failed connect, are answered
    /// [`Error::Unavailable`] at once).
    async fn connection(&self) -> Result<(u64, redis::aio::MultiplexedConnection)> {
        {
            let mut held = self.held();
            if let Some(c) = &held.conn {
                return Ok((held.opened, c.clone()));
            }
            if held.connecting
                || held
                    .failed_at
                    .is_some_and(|at| at.elapsed() < RECONNECT_AFTER)
            {
                return Err(Error::Unavailable(format!(
                    "Redis at {} does not answer; trying again shortly",
                    self.addr
                )));
            }
            held.connecting = true;
        }
        let _connecting = Connecting(&self.conn);
        // The client's own bounds as the cache's (its defaults: a 500 ms answer, which a
        // latency blip exceeds, would drop the connection).
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let opened = bounded(
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let mut held = self.held();
        match opened {
            Ok(c) => {
                held.opened += 1;
                held.conn = Some(c.clone());
                held.failed_at = None;
                Ok((held.opened, c))
            }
            Err(f) => {
                held.failed_at = Some(Instant::now());
                Err(f.error())
            }
        }
    }

    /// Runs `command` (idempotent: GET, SET, DEL, PING). A connection found gone is dropped,
    /// so the next call opens another; the command is tried once more on a new one when the
    /// connection was found closed (not when it only did not answer in time: the caller has
    /// waited long enough).
    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T> {
        let mut tried_again = false;
        loop {
            let (number, mut conn) = self.connection().await?;
            match bounded(command.query_async::<T>(&mut conn)).await {
                Ok(v) => return Ok(v),
                Err(Failure::Answer(e)) => return Err(e),
                Err(Failure::Connection { error, dropped }) => {
                    // Dropped, unless another call has put a new one in its place already.
                    {
                        let mut held = self.held();
                        if held.opened == number {
                            held.conn = None;
                        }
                    }
                    if tried_again || !dropped {
                        return Err(error);
                    }
                    tracing::debug!(addr = %self.addr, error = %error, "Redis connection lost; opening another");
                    tried_again = true;
                }
            }
        }
    }

    /// Checks `url` (`redis://host:port/db`, `unix:///path`; TLS is not built in) without
    /// connecting. The error does not quote the URL, which may carry a password.
    pub fn check_url(url: &str) -> Result<()> {
        Self::client(url).map(drop)
    }

    fn client(url: &str) -> Result<redis::Client> {
        redis::Client::open(url).map_err(|e| Error::Invalid(format!("Redis URL: {e}")))
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check(key, None)?;
        self.run(redis::cmd("GET").arg(key)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<()> {
        check(key, Some(ttl))?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.run(redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check(key, None)?;
        self.run::<i64>(redis::cmd("DEL").arg(key))
            .await
            .map(|_| ())
    }

    async fn ping(&self) -> Result<()> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "unexpected PING answer `{pong}`"
            )))
        }
    }

    fn describe(&self) -> String {
        format!("redis ({})", self.addr)
    }
}
