//! # mantis-cache
//!
//! The online cache of MANTIS: small values that services and the API read often and that may
//! be recomputed from the store (the latest feature vector per asset, the latest anomaly score),
//! with a time to live, and counters shared by a service's replicas ([`Cache::count`]: login
//! failures counted across the gateway's replicas). One [`Cache`] trait, two implementations:
//!
//! - [`InProcessCache`] (embedded mode): a map in the process, shared by the seven services of
//!   the `mantis` binary; expired entries are dropped lazily and by a bounded sweep.
//! - [`RedisCache`] (cluster mode): Redis `SET key value PX ttl` (counters: `INCRBY` and
//!   `PEXPIRE` in one script), shared by every replica; over TLS with a `rediss://` URL
//!   ([`RedisTls`]: a private CA, a client certificate).
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
    /// Adds `delta` (negative to take back, zero to read) to the counter `key` and answers its
    /// new value and the time left of its window. A counter that does not exist starts at zero
    /// with a window of `window`, which later additions neither lengthen nor shorten: a
    /// fixed-window count shared by every process using this cache. A negative addition (a
    /// count taken back) never starts one (answering 0, no window left) and takes one no lower
    /// than zero. Atomic: concurrent
    /// additions are all counted. The counter reads through [`Cache::get`] as its decimal
    /// digits. A key holding something else, or an addition past the range of `i64`, is
    /// [`Error::Invalid`]. Never sent twice (an addition is not idempotent): a connection lost
    /// during the call answers [`Error::Unavailable`], and the addition may or may not have
    /// been made.
    async fn count(&self, key: &str, delta: i64, window: Duration) -> Result<Count>;
    /// Checks that the cache answers (readiness probes).
    async fn ping(&self) -> Result<()>;
    /// Which implementation this is, for logs.
    fn describe(&self) -> String;
}

/// A counter's value and the time left of its window, as [`Cache::count`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// The counter after the addition.
    pub value: i64,
    /// When the counter ends (the next addition starts it again from zero).
    pub ends_in: Duration,
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
        self.insert(&mut entries, key, value, now + ttl, now);
        Ok(())
    }

    async fn count(&self, key: &str, delta: i64, window: Duration) -> Result<Count> {
        check(key, Some(window))?;
        let now = Instant::now();
        let mut entries = self.entries.lock().await;
        let (before, ends) = match entries.get(key) {
            Some((value, expires)) if *expires > now => (
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::Invalid(format!("`{key}` holds a value that is not a counter"))
                    })?,
                *expires,
            ),
            _ if delta < 0 => {
                return Ok(Count {
                    value: 0,
                    ends_in: Duration::ZERO,
                });
            }
            _ => (0, now + window),
        };
        let value = before.checked_add(delta).ok_or_else(|| {
            Error::Invalid(format!("`{key}`: the counter would pass the range of i64"))
        })?;
        let value = if delta < 0 { value.max(0) } else { value };
        self.insert(&mut entries, key, value.to_string().into_bytes(), ends, now);
        Ok(Count {
            value,
            ends_in: ends.saturating_duration_since(now),
        })
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

impl InProcessCache {
    /// Stores `value` under `key` until `expires`, making room when the cache is full.
    fn insert(
        &self,
        entries: &mut HashMap<String, (Vec<u8>, Instant)>,
        key: &str,
        value: Vec<u8>,
        expires: Instant,
        now: Instant,
    ) {
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
        entries.insert(key.to_owned(), (value, expires));
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
    /// The client connections are opened with: built again from `url` and `tls` before each
    /// new connection when `tls` names files (a renewed certificate is taken then).
    client: Arc<std::sync::Mutex<redis::Client>>,
    /// The URL (never shown: it may carry a password) and the TLS files, to build it again.
    url: Arc<str>,
    tls: RedisTls,
    /// When the TLS files last could not be read again (said once a minute at most).
    unreadable_since: Arc<std::sync::Mutex<Option<Instant>>>,
    /// The connection and its number (how many were opened before it), `None` after it
    /// failed until a call opens another.
    conn: Arc<std::sync::Mutex<Held>>,
    /// The server's address, as shown (never the URL: it may carry a password).
    addr: String,
}

/// TLS of a `rediss://` connection beyond the defaults (the system's trusted CAs, no client
/// certificate): PEM files, read again before each new connection, so that certificates
/// renewed in place (a cert-manager Secret mounted in a pod) are taken without a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// The CAs to trust instead of the system's (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// This client's certificate chain and private key, for a server that asks for one
    /// (mutual TLS).
    pub client_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl RedisTls {
    fn is_default(&self) -> bool {
        self.ca_file.is_none() && self.client_files.is_none()
    }
}

fn read_pem(what: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("Redis TLS: the {what} `{}`: {e}", path.display())))
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
    if let Some(why) = tls_refusal(&e) {
        return Error::Invalid(format!("Redis over TLS: {why}"));
    }
    let refused = matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed | redis::ErrorKind::InvalidClientConfig
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
    if e.code() == Some(NOT_A_COUNTER) {
        return Error::Invalid(format!("not a counter: {}", e.detail().unwrap_or_default()));
    }
    if refused {
        Error::Invalid(format!("Redis refuses this client: {e}"))
    } else {
        Error::Unavailable(e.to_string())
    }
}

/// The TLS handshake's verdict on the server's certificate when it is a configuration to mend
/// (another CA signed it, it is not for the URL's host, not for a server), found in `e`'s
/// causes. Not a certificate out of its validity (expired, not yet valid): a renewal mends
/// that, which the cache takes at its next connection (an outage meanwhile, not a reason to
/// stop a start).
fn tls_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as Cert;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(rustls::Error::InvalidCertificate(why)) = as_rustls(c)
            && matches!(
                why,
                Cert::UnknownIssuer
                    | Cert::BadSignature
                    | Cert::BadEncoding
                    | Cert::NotValidForName
                    | Cert::NotValidForNameContext { .. }
                    | Cert::InvalidPurpose
                    | Cert::InvalidPurposeContext { .. }
            )
        {
            return Some(format!("the server's certificate is refused: {why:?}"));
        }
        cause = c.source();
    }
    None
}

/// `e` as the rustls error it is or wraps (in an I/O error, or shared as redis keeps its
/// causes).
fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    e.downcast_ref::<rustls::Error>()
        .or_else(|| as_rustls_io(e))
        .or_else(|| {
            let shared: &(dyn std::error::Error + 'static) = &**e.downcast_ref::<Shared>()?;
            shared
                .downcast_ref::<rustls::Error>()
                .or_else(|| as_rustls_io(shared))
        })
}

fn as_rustls_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    e.downcast_ref::<std::io::Error>()?
        .get_ref()?
        .downcast_ref::<rustls::Error>()
}

/// The error code [`COUNT_SCRIPT`] answers when the key is not a counter or the addition
/// overflows: the caller's mistake, not an outage.
const NOT_A_COUNTER: &str = "NOTCOUNTER";

/// [`Cache::count`] in one round trip, atomic on the server: `INCRBY`, then the window set
/// when the key had none (a new counter, or a value stored without a TTL). The value is
/// answered as its digits (`GET`): Lua numbers are doubles, exact only to 2^53.
const COUNT_SCRIPT: &str = r"
local taking = string.sub(ARGV[1], 1, 1) == '-'
if taking and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'0', 0}
end
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'table' and n.err then
  if string.find(n.err, 'WRONGTYPE', 1, true) or string.find(n.err, 'not an integer', 1, true)
      or string.find(n.err, 'overflow', 1, true) then
    return redis.error_reply('NOTCOUNTER ' .. n.err)
  end
  return n
end
if taking and n < 0 then
  redis.call('SET', KEYS[1], '0', 'KEEPTTL')
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {redis.call('GET', KEYS[1]), left}
";

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
    /// Connects to `url` (`redis://host:port/db`, `rediss://…` over TLS).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &RedisTls::default()).await
    }

    /// [`connect`](Self::connect) with `tls` for a `rediss://` URL.
    pub async fn connect_with(url: &str, tls: &RedisTls) -> Result<Self> {
        let cache = Self::lazy_with(url, tls)?;
        // A command, not only a connection: a server that wants a password this client does
        // not give answers the first command (NOAUTH), not the connect.
        cache.ping().await?;
        Ok(cache)
    }

    /// The cache at `url`, connected at its first use (a service that starts while Redis is
    /// down answers [`Error::Unavailable`] until it is up, rather than failing to start). Only
    /// the URL is checked ([`Error::Invalid`]).
    pub fn lazy(url: &str) -> Result<Self> {
        Self::lazy_with(url, &RedisTls::default())
    }

    /// [`lazy`](Self::lazy) with `tls` for a `rediss://` URL (its certificates are checked
    /// here: [`Error::Invalid`]).
    pub fn lazy_with(url: &str, tls: &RedisTls) -> Result<Self> {
        let client = Self::client(url, tls)?;
        Ok(Self {
            addr: client.get_connection_info().addr().to_string(),
            client: Arc::new(std::sync::Mutex::new(client)),
            url: Arc::from(url),
            tls: tls.clone(),
            unreadable_since: Arc::default(),
            conn: Arc::default(),
        })
    }

    /// The client to open a new connection with: built again from the TLS files when there
    /// are some (a renewed certificate); the one before if they cannot be read now (a renewal
    /// half done), said in the log.
    fn fresh_client(&self) -> redis::Client {
        let mut held = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.tls.is_default() {
            match Self::client(&self.url, &self.tls) {
                Ok(client) => *held = client,
                Err(e) => {
                    let mut said = self
                        .unreadable_since
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if said.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        *said = Some(Instant::now());
                        tracing::warn!(addr = %self.addr, error = %e, "the Redis TLS files cannot be read again; connecting with those read before");
                    }
                }
            }
        }
        held.clone()
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
        let client = self.fresh_client();
        let opened = bounded(client.get_multiplexed_async_connection_with_config(&config)).await;
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
        self.call(command, true).await
    }

    /// [`Self::run`], trying once more on a new connection only when `again` (never for a
    /// command that is not idempotent: the server may have run it before the connection went).
    async fn call<T: redis::FromRedisValue>(&self, command: &redis::Cmd, again: bool) -> Result<T> {
        let mut tried_again = !again;
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

    /// Checks `url` (`redis://host:port/db`, `rediss://…` over TLS, `unix:///path`) with `tls`
    /// (reads and parses its certificates and key) without connecting. The error does not
    /// quote the URL, which may carry a password.
    pub fn check(url: &str, tls: &RedisTls) -> Result<()> {
        Self::client(url, tls).map(drop)
    }

    fn client(url: &str, tls: &RedisTls) -> Result<redis::Client> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| Error::Invalid(format!("Redis URL: {e}")))?;
        if matches!(
            info.addr(),
            redis::ConnectionAddr::TcpTls { insecure: true, .. }
        ) {
            return Err(Error::Invalid(
                "Redis URL: `#insecure` (no certificate check) is not supported; trust the \
                 server's CA instead (infra.redis_tls.ca_file)"
                    .into(),
            ));
        }
        let secure = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        if secure {
            // The TLS client takes the process's crypto provider: ring, as everywhere in
            // MANTIS (another library may have set one already: kept).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if tls.is_default() {
            return redis::Client::open(info)
                .map_err(|e| Error::Invalid(format!("Redis URL: {e}")));
        }
        if !secure {
            return Err(Error::Invalid(
                "a CA or a client certificate for Redis needs a rediss:// URL".into(),
            ));
        }
        let root_cert = match &tls.ca_file {
            Some(file) => {
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                let pem = read_pem("CA file", file)?;
                if CertificateDer::pem_slice_iter(&pem).next().is_none() {
                    return Err(Error::Invalid(format!(
                        "Redis TLS: the CA file `{}` holds no PEM certificate",
                        file.display()
                    )));
                }
                Some(pem)
            }
            None => None,
        };
        let client_tls = match &tls.client_files {
            Some((cert, key)) => Some(redis::ClientTlsConfig {
                client_cert: read_pem("client certificate", cert)?,
                client_key: read_pem("client key", key)?,
            }),
            None => None,
        };
        let certificates = redis::TlsCertificates {
            client_tls,
            root_cert,
        };
        redis::Client::build_with_tls(info, certificates)
            .map_err(|e| Error::Invalid(format!("Redis TLS: {e}")))
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

    async fn count(&self, key: &str, delta: i64, window: Duration) -> Result<Count> {
        check(key, Some(window))?;
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let (value, left): (i64, i64) = self
            .call(
                redis::cmd("EVAL")
                    .arg(COUNT_SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(delta)
                    .arg(ms),
                false,
            )
            .await?;
        Ok(Count {
            value,
            ends_in: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
        })
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
