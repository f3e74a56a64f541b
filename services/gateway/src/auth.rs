//! Who is calling, and whether they may: logins issuing JWTs (argon2id password hashes),
//! API keys for machines, optional tokens of an external OIDC provider, roles enforced per
//! endpoint from one policy table, tenant isolation and rate limiting.

use crate::oidc::Oidc;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mantis_domain::{ApiKey, ApiKeyId, Role, TenantId, Timestamp, User};
use mantis_runtime::Problem;
use mantis_store::Store;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Secrets that must never run a cluster: the placeholders of examples and tutorials.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "",
    "secret",
    "changeme",
    "change-me",
    "change_me",
    "mantis",
    "admin",
    "password",
    "jwt-secret",
    "please-change-me",
];

/// The issuer of MANTIS's own tokens.
const ISSUER: &str = "mantis";

/// Key under which the embedded gateway keeps its generated signing secret.
const SECRET_STATE_KEY: &str = "gateway.jwt-secret";

/// `[gateway.auth]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 signing secret of the gateway's tokens (at least 32 characters). Empty: the
    /// embedded gateway generates one and keeps it in the store; cluster mode refuses to start.
    pub jwt_secret: String,
    /// Lifetime of a login token, in minutes. Default 480 (one shift).
    pub token_ttl_minutes: u64,
    /// Login name of the first admin, created when no user exists. Default `admin`.
    pub admin_username: String,
    /// Password of the first admin. Empty: a random one is generated and logged once (and, in
    /// the embedded platform, written to `<data_dir>/admin-password`). Cluster mode refuses to
    /// start without one when there is no user yet.
    pub admin_password: String,
    /// Keys given in the configuration (for example from a Kubernetes secret), besides those
    /// created through the API.
    pub api_keys: Vec<StaticApiKey>,
    /// Tokens of an external OpenID Connect provider, validated with its JWKS.
    pub oidc: Option<OidcConfig>,
    /// Requests per minute per user, key or address (0: unlimited). Default 1200.
    pub rate_limit_per_minute: u32,
    /// Requests allowed in a burst above the rate. Default 200.
    pub rate_limit_burst: u32,
    /// Failed logins per minute per address and username before 429 (and six times as many
    /// per address whatever the username). Default 10. Counted by each gateway and, through
    /// the cache (Redis in the cluster), across all of them: more replicas do not give more
    /// guesses.
    pub login_attempts_per_minute: u32,
    /// Reverse proxies (addresses or networks: `10.0.0.0/8`, `fd00::/8`) whose
    /// `X-Forwarded-For` names the client: behind an ingress or a load balancer every login
    /// comes from the proxy's address, so without it logins are throttled as if from one
    /// client (anyone's failures would lock everyone out). The client is the last address of
    /// the header that is not one of these. Default: none (the header is ignored).
    pub trusted_proxies: Vec<String>,
    /// Refuse to start with generated or placeholder secrets (set by the cluster binaries).
    pub require_explicit_secrets: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: String::new(),
            token_ttl_minutes: 480,
            admin_username: "admin".into(),
            admin_password: String::new(),
            api_keys: Vec::new(),
            oidc: None,
            rate_limit_per_minute: 1200,
            rate_limit_burst: 200,
            login_attempts_per_minute: 10,
            trusted_proxies: Vec::new(),
            require_explicit_secrets: false,
        }
    }
}

/// An API key from the configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticApiKey {
    /// What it is for.
    pub name: String,
    /// The key itself (at least 24 characters).
    pub key: String,
    /// What it may do.
    pub role: Role,
    /// Its tenant (default: the default tenant).
    #[serde(default = "default_tenant")]
    pub tenant: TenantId,
}

fn default_tenant() -> TenantId {
    TenantId::DEFAULT
}

/// `[gateway.auth.oidc]`: an external identity provider whose access tokens the gateway takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Where the provider publishes its keys (JWKS).
    pub jwks_url: String,
    /// Expected `aud` (empty: not checked).
    pub audience: String,
    /// Claim holding the MANTIS role. Default `mantis_role`.
    pub role_claim: String,
    /// Claim holding the tenant id (default tenant when absent). Default `mantis_tenant`.
    pub tenant_claim: String,
    /// Claim naming the user. Default `preferred_username` (then `sub`).
    pub username_claim: String,
    /// Tenant of tokens without a tenant claim; none: such tokens are refused.
    pub default_tenant: Option<TenantId>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            jwks_url: String::new(),
            audience: String::new(),
            role_claim: "mantis_role".into(),
            tenant_claim: "mantis_tenant".into(),
            username_claim: "preferred_username".into(),
            default_tenant: None,
        }
    }
}

/// Why the gateway cannot start with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A secret is missing, too short or a placeholder.
    #[error("refusing to start: {0}")]
    UnsafeSecret(String),
    /// The configuration is inconsistent.
    #[error("invalid [gateway.auth] configuration: {0}")]
    Config(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mantis_store::Error),
}

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Credential {
    /// A token from `POST /api/v1/auth/login`.
    Login,
    /// An `X-API-Key`.
    ApiKey,
    /// A token of the external OIDC provider.
    Oidc,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Principal {
    /// Username, or `key:<name>` for an API key.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// What the caller may do.
    pub role: Role,
    /// Whose assets the caller sees.
    #[schema(value_type = String, format = Uuid)]
    pub tenant_id: TenantId,
    /// How they authenticated.
    #[serde(skip)]
    pub credential: Credential,
}

impl Principal {
    /// Whose request budget a request spends: names are unique within a tenant only (two
    /// tenants may both have a user `admin` or a key `scada`), so the tenant is part of it.
    pub(crate) fn rate_key(&self) -> String {
        format!("{}/{}", self.tenant_id, self.username)
    }
}

/// The credentials a request presented, kept by long-lived sessions (the WebSocket) to check
/// again that they still hold.
#[derive(Clone, Debug)]
pub(crate) struct Presented {
    headers: HeaderMap,
    ws_token: Option<String>,
}

impl Presented {
    /// Who these credentials are now (an expired token, a disabled user, a changed password or
    /// a revoked key fail).
    pub(crate) async fn recheck(&self, auth: &Auth) -> Result<Principal, Problem> {
        auth.authenticate(&self.headers, self.ws_token.as_deref())
            .await
    }
}

/// Claims of the gateway's own tokens.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    tenant: TenantId,
    iss: String,
    iat: i64,
    exp: i64,
    /// Fingerprint of the password and token epoch the token was issued for: changing the
    /// password, or disabling the account, ends every token issued before.
    pwd: String,
}

/// A short fingerprint of a user's password hash (which is itself salted and slow to invert)
/// and token epoch (epoch 0, what every account had before epochs, adds nothing: tokens issued
/// then stay valid).
fn password_fingerprint(user: &User) -> String {
    let hash = &user.password_hash;
    let digest = if user.token_epoch == 0 {
        sha256_hex(hash.as_bytes())
    } else {
        sha256_hex(format!("{hash}\u{0}{}", user.token_epoch).as_bytes())
    };
    digest[..16].to_owned()
}

/// A token bucket per caller.
struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

/// Per-key token buckets, pruned when they grow.
struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; `Err(seconds)` to wait when there is none.
    fn take(&self, key: &str) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_minute) / 60.0;
        let capacity = f64::from(self.burst.max(1));
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: forget them.
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < capacity);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Gives back the token of a request that should not count (a successful login).
    fn refund(&self, key: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(f64::from(self.burst.max(1)));
        }
    }
}

/// The window of the login counts shared by the gateway's replicas.
const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Login attempts counted in the cache, which the gateway's replicas share (Redis in the
/// cluster): per address and username, and per address whatever the username, in windows of
/// a minute, with the limits of the local buckets. Each replica's own buckets still hold when
/// the cache is away (the count is then per replica, as it was before).
struct SharedLogins {
    cache: Arc<dyn mantis_cache::Cache>,
    per_minute: u32,
    /// The key of the digests naming the counts: derived from the token signing secret, so
    /// the replicas agree, another deployment sharing the Redis counts apart, and a digest
    /// (of what may be a password typed as a name) cannot be checked against a dictionary.
    digest_key: [u8; 32],
    /// When the cache last failed to count (said once a minute at most).
    warned: Mutex<Option<std::time::Instant>>,
}

impl SharedLogins {
    fn new(cache: Arc<dyn mantis_cache::Cache>, per_minute: u32, secret: &str) -> Self {
        let digest_key: [u8; 32] =
            Sha256::digest([b"mantis login counts\0".as_slice(), secret.as_bytes()].concat())
                .into();
        Self {
            cache,
            per_minute,
            digest_key,
            warned: Mutex::new(None),
        }
    }

    /// HMAC-SHA-256 of `parts` (joined by NUL) keyed with [`Self::digest_key`], hex, 128 bits.
    fn digest(&self, parts: &[&str]) -> String {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(parts.join("\u{0}").as_bytes());
        let full = hex(&mac.finalize().into_bytes());
        full.get(..32).unwrap_or_default().to_owned()
    }

    /// Says (once a minute at most, and always in a metric) that the replicas' counts are not
    /// kept: each replica's own buckets alone hold meanwhile.
    fn unshared(&self, e: &mantis_cache::Error) {
        metrics::counter!("mantis_login_counts_unshared_total").increment(1);
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60)) {
            *warned = Some(std::time::Instant::now());
            tracing::warn!(error = %e, "login attempts are not counted across the gateway's replicas (the cache does not count): each replica's own limit holds meanwhile");
        }
    }

    /// The cache keys of `client`'s attempts as `username` and of all its attempts, with
    /// their limits.
    fn keys(&self, client: &str, username: &str) -> [(String, u32, &'static str); 2] {
        let user = self.digest(&[client, username]);
        let address = self.digest(&[client]);
        [
            (
                format!("login:address:{address}"),
                self.per_minute.saturating_mul(6),
                "too many logins from this address; wait before trying again",
            ),
            (
                format!("login:user:{user}"),
                self.per_minute,
                "too many failed logins; wait before trying again",
            ),
        ]
    }

    /// Counts an attempt: 429 when either count is over its limit; otherwise the keys counted
    /// (to take back if the login succeeds). A cache that does not answer counts nothing.
    async fn take(&self, client: &str, username: &str) -> Result<Vec<String>, Problem> {
        let mut counted = Vec::new();
        if self.per_minute == 0 {
            return Ok(counted);
        }
        for (key, limit, detail) in self.keys(client, username) {
            match self.cache.count(&key, 1, LOGIN_WINDOW).await {
                Ok(count) if count.value > i64::from(limit) => {
                    // This attempt does not run: what it counted is taken back.
                    counted.push(key);
                    self.refund(&counted).await;
                    let wait = count.ends_in.as_secs_f64().ceil().max(1.0) as u64;
                    return Err(too_many(wait, detail));
                }
                Ok(_) => counted.push(key),
                Err(e) => self.unshared(&e),
            }
        }
        Ok(counted)
    }

    /// Takes back an attempt that should not count (a successful login).
    async fn refund(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.cache.count(key, -1, LOGIN_WINDOW).await {
                self.unshared(&e);
            }
        }
    }
}

/// Authenticates requests and issues tokens.
pub(crate) struct Auth {
    store: Arc<dyn Store>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
    static_keys: Vec<(String, StaticApiKey)>,
    oidc: Option<Oidc>,
    limiter: RateLimiter,
    logins: RateLimiter,
    /// Login attempts per client address, whatever the username.
    login_addresses: RateLimiter,
    /// The same two counts shared by every replica of the gateway.
    shared_logins: SharedLogins,
    /// Password verifications running at once (each takes ~19 MiB and a core for tens of ms).
    hashing: tokio::sync::Semaphore,
    /// A hash verified when the user does not exist, so that the answer takes as long.
    dummy_hash: String,
    /// [`AuthConfig::trusted_proxies`], parsed.
    proxies: Vec<Network>,
}

/// An address or a network of them (`10.0.0.0/8`, `192.168.1.10`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or a network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be within 0..={max}"))?
        };
        Ok(Self {
            addr: addr.to_canonical(),
            prefix,
        })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client a request comes from: `peer`, or when `peer` is one of `proxies`, the last
/// address of `X-Forwarded-For` (of every such header, in order) that is not a proxy (each
/// proxy appends the address it was reached from; what comes before a proxy we do not trust
/// may be forged by the client). `unknown` without a peer.
pub(crate) fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    proxies: &[Network],
) -> String {
    let Some(peer) = peer else {
        return "unknown".to_owned();
    };
    let trusted = |ip: IpAddr| proxies.iter().any(|n| n.contains(ip));
    if !trusted(peer) {
        return peer.to_canonical().to_string();
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted(ip) => continue,
            Ok(ip) => return ip.to_canonical().to_string(),
            // Not an address (`unknown`, an obfuscated name): nothing before it is to be
            // trusted; the last proxy is the client as far as we know.
            Err(_) => break,
        }
    }
    peer.to_canonical().to_string()
}

/// What the first start created: the admin's password when it was generated.
pub struct Bootstrap {
    /// The generated password of the first admin (None when configured or users exist).
    pub generated_admin_password: Option<String>,
    /// The admin's login name.
    pub admin_username: String,
}

impl Auth {
    /// Checks the configuration, creates the first admin when there is no user and prepares
    /// the keys.
    pub(crate) async fn new(
        store: Arc<dyn Store>,
        cache: Arc<dyn mantis_cache::Cache>,
        config: &AuthConfig,
    ) -> Result<(Self, Bootstrap), AuthError> {
        config.check()?;
        let secret = signing_secret(store.as_ref(), config).await?;
        let static_keys = config
            .api_keys
            .iter()
            .map(|k| (sha256_hex(k.key.as_bytes()), k.clone()))
            .collect();
        let bootstrap = bootstrap_admin(store.as_ref(), config).await?;
        let oidc = config.oidc.clone().map(Oidc::new);
        let proxies = config
            .trusted_proxies
            .iter()
            .map(|p| Network::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuthError::Config(format!("[gateway.auth] trusted_proxies: {e}")))?;
        let dummy_hash = hash_password("not a real password")
            .map_err(|e| AuthError::Config(format!("argon2: {e}")))?;
        Ok((
            Self {
                store,
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                ttl: Duration::minutes(
                    i64::try_from(config.token_ttl_minutes.max(1)).unwrap_or(480),
                ),
                static_keys,
                oidc,
                limiter: RateLimiter::new(config.rate_limit_per_minute, config.rate_limit_burst),
                logins: RateLimiter::new(
                    config.login_attempts_per_minute,
                    config.login_attempts_per_minute.max(1),
                ),
                login_addresses: RateLimiter::new(
                    config.login_attempts_per_minute.saturating_mul(6),
                    config.login_attempts_per_minute.saturating_mul(6).max(1),
                ),
                shared_logins: SharedLogins::new(cache, config.login_attempts_per_minute, &secret),
                hashing: tokio::sync::Semaphore::new(4),
                dummy_hash,
                proxies,
            },
            bootstrap,
        ))
    }

    /// Checks a username and password; issues a token.
    pub(crate) async fn login(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<(String, Timestamp, User), Problem> {
        let user = self.verify(username, password, client).await?;
        let (token, expires) = self.issue(&user)?;
        tracing::info!(username = %user.username, role = %user.role, "login");
        Ok((token, expires, user))
    }

    /// Checks a username and password as a login does (throttled per address and per address
    /// and user; a failure counted, a success refunded): the enabled user, or 401.
    pub(crate) async fn verify(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<User, Problem> {
        if username.chars().count() > 64 || password.len() > 256 {
            return Err(Problem::bad_request("username or password too long")
                .with_field("/username", "at most 64 characters (password: 256 bytes)"));
        }
        if let Err(wait) = self.login_addresses.take(client) {
            return Err(too_many(
                wait,
                "too many logins from this address; wait before trying again",
            ));
        }
        let throttle_key = format!("{client}|{username}");
        if let Err(wait) = self.logins.take(&throttle_key) {
            return Err(too_many(
                wait,
                "too many failed logins; wait before trying again",
            ));
        }
        // This gateway's buckets allow the attempt; the replicas' shared counts may not.
        let counted = match self.shared_logins.take(client, username).await {
            Ok(counted) => counted,
            Err(refused) => {
                self.logins.refund(&throttle_key);
                self.login_addresses.refund(client);
                return Err(refused);
            }
        };
        let user = self.store.get_user(username).await.map_err(Problem::from)?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let candidate = password.to_owned();
        let permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| Problem::unavailable("shutting down"))?;
        let verified = tokio::task::spawn_blocking(move || verify_password(&candidate, &hash))
            .await
            .unwrap_or(false);
        drop(permit);
        let known = user.is_some();
        let user = match user {
            Some(u) if verified && !u.disabled => u,
            _ => {
                if known {
                    tracing::warn!(username, client, "failed login");
                } else {
                    // What was typed as a name may be a password typed in the wrong field: not
                    // logged as it is. A digest keyed by this process's random key tells
                    // repeated attempts apart, and cannot be checked against a dictionary.
                    static KEY: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
                    let key = KEY.get_or_init(|| {
                        let mut k = [0u8; 16];
                        rand::rng().fill_bytes(&mut k);
                        k
                    });
                    let digest = sha256_hex(&[key.as_slice(), username.as_bytes()].concat());
                    let unknown_user = digest.get(..12).unwrap_or_default();
                    tracing::warn!(unknown_user, client, "failed login of an unknown user");
                }
                return Err(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "unknown user or wrong password",
                ));
            }
        };
        // Only failures count ("failed logins"): a busy site's successful ones behind one
        // address (a plant's NAT) do not use up the address's budget.
        self.logins.refund(&throttle_key);
        self.login_addresses.refund(client);
        self.shared_logins.refund(&counted).await;
        Ok(user)
    }

    /// A token for `user` as stored (its password and token epoch), valid for the configured
    /// time: what a login answers.
    pub(crate) fn issue(&self, user: &User) -> Result<(String, Timestamp), Problem> {
        let now = Utc::now();
        let expires = now + self.ttl;
        let claims = Claims {
            sub: user.username.clone(),
            role: user.role,
            tenant: user.tenant_id,
            iss: ISSUER.into(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            pwd: password_fingerprint(user),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(Problem::internal)?;
        Ok((token, expires))
    }

    /// Who sent this request, from its bearer token, its API key or (WebSocket upgrades)
    /// the token it offered as a subprotocol or in its `token` query parameter
    /// ([`ws_token`]).
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        ws_token: Option<&str>,
    ) -> Result<Principal, Problem> {
        if headers.contains_key("x-api-key") && headers.contains_key(header::AUTHORIZATION) {
            return Err(unauthorized(
                "send one credential: `Authorization` or `X-API-Key`, not both",
            ));
        }
        if let Some(key) = headers.get("x-api-key") {
            let key = key
                .to_str()
                .map_err(|_| unauthorized("the API key is not valid text"))?;
            return self.api_key(key).await;
        }
        let bearer = match headers.get(header::AUTHORIZATION) {
            Some(v) => {
                let v = v
                    .to_str()
                    .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
                match v.split_once(' ') {
                    Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                        Some(token.trim().to_owned())
                    }
                    _ => return Err(unauthorized("use `Authorization: Bearer <token>`")),
                }
            }
            None => ws_token.map(str::to_owned),
        };
        let Some(token) = bearer else {
            return Err(unauthorized(
                "log in (POST /api/v1/auth/login) and send `Authorization: Bearer <token>`, \
                 or send `X-API-Key`",
            ));
        };
        self.token(&token).await
    }

    async fn token(&self, token: &str) -> Result<Principal, Problem> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("the token is not a JWT"))?;
        if header.alg != Algorithm::HS256 {
            return match &self.oidc {
                Some(oidc) => oidc.validate(token, &header).await,
                None => Err(unauthorized("the token is not signed by this gateway")),
            };
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    unauthorized("the token has expired; log in again")
                }
                _ => unauthorized("the token is not valid"),
            },
        )?;
        // The user as they are now: a disabled user or a changed role takes effect at once.
        let user = self
            .store
            .get_user(&data.claims.sub)
            .await
            .map_err(Problem::from)?
            .filter(|u| !u.disabled)
            .ok_or_else(|| unauthorized("the user no longer exists or is disabled"))?;
        if !constant_time_eq(
            password_fingerprint(&user).as_bytes(),
            data.claims.pwd.as_bytes(),
        ) {
            return Err(unauthorized(
                "the password was changed or the account disabled since; log in again",
            ));
        }
        Ok(Principal {
            username: user.username,
            display_name: user.display_name,
            role: user.role,
            tenant_id: user.tenant_id,
            credential: Credential::Login,
        })
    }

    async fn api_key(&self, key: &str) -> Result<Principal, Problem> {
        let hash = sha256_hex(key.as_bytes());
        if let Some((_, k)) = self
            .static_keys
            .iter()
            .find(|(h, _)| constant_time_eq(h.as_bytes(), hash.as_bytes()))
        {
            return Ok(Principal {
                username: format!("key:{}", k.name),
                display_name: k.name.clone(),
                role: k.role,
                tenant_id: k.tenant,
                credential: Credential::ApiKey,
            });
        }
        let Some(prefix) = key_prefix(key) else {
            return Err(unauthorized("unknown API key"));
        };
        match self
            .store
            .find_api_key(prefix)
            .await
            .map_err(Problem::from)?
        {
            Some(k)
                if k.revoked_at.is_none()
                    && constant_time_eq(k.key_hash.as_bytes(), hash.as_bytes()) =>
            {
                Ok(Principal {
                    username: format!("key:{}", k.name),
                    display_name: k.name,
                    role: k.role,
                    tenant_id: k.tenant_id,
                    credential: Credential::ApiKey,
                })
            }
            Some(k) if constant_time_eq(k.key_hash.as_bytes(), hash.as_bytes()) => {
                Err(unauthorized("the API key was revoked"))
            }
            _ => Err(unauthorized("unknown API key")),
        }
    }

    /// Creates an API key: the stored record and the key, shown once.
    pub(crate) async fn create_api_key(
        &self,
        tenant: TenantId,
        name: &str,
        role: Role,
    ) -> Result<(ApiKey, String), Problem> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex(&bytes);
        let mut p = [0u8; 4];
        rand::rng().fill_bytes(&mut p);
        let prefix = format!("mk_{}", hex(&p));
        let key = format!("{prefix}_{secret}");
        let record = ApiKey {
            id: ApiKeyId::new_random(),
            tenant_id: tenant,
            name: name.to_owned(),
            prefix,
            key_hash: sha256_hex(key.as_bytes()),
            role,
            created_at: Utc::now(),
            revoked_at: None,
        };
        self.store
            .insert_api_key(&record)
            .await
            .map_err(Problem::from)?;
        Ok((record, key))
    }

    /// The client a request comes from, for throttling: see [`client_address`].
    pub(crate) fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> String {
        client_address(peer, headers, &self.proxies)
    }

    /// Counts a request against the caller's rate.
    pub(crate) fn rate_limit(&self, key: &str) -> Result<(), Problem> {
        self.limiter
            .take(key)
            .map_err(|wait| too_many(wait, "rate limit exceeded; slow down"))
    }
}

/// The public prefix of a key made by [`Auth::create_api_key`] (`mk_xxxxxxxx`).
fn key_prefix(key: &str) -> Option<&str> {
    let prefix = key.get(..11)?;
    (prefix.starts_with("mk_") && key.as_bytes().get(11) == Some(&b'_')).then_some(prefix)
}

impl AuthConfig {
    /// Checks what needs no database (what [`Auth`] checks first, and `mantis config check`):
    /// the signing secret (required in cluster mode), the static API keys and the OIDC settings
    /// (the first admin's: [`AuthConfig::first_admin_problem`]).
    pub fn check(&self) -> Result<(), AuthError> {
        let configured = self.jwt_secret.trim();
        if !configured.is_empty()
            && (configured.len() < 32
                || PLACEHOLDER_SECRETS.contains(&configured.to_ascii_lowercase().as_str()))
        {
            return Err(AuthError::UnsafeSecret(
                "[gateway.auth] jwt_secret must be at least 32 characters and not a placeholder"
                    .into(),
            ));
        }
        if configured.is_empty() && self.require_explicit_secrets {
            return Err(AuthError::UnsafeSecret(
                "cluster mode needs [gateway.auth] jwt_secret (MANTIS_GATEWAY__AUTH__JWT_SECRET), \
                 at least 32 random characters shared by every gateway replica"
                    .into(),
            ));
        }
        for k in &self.api_keys {
            if k.key.len() < 24 || PLACEHOLDER_SECRETS.contains(&k.key.as_str()) {
                return Err(AuthError::Config(format!(
                    "API key `{}` must be at least 24 characters",
                    k.name
                )));
            }
        }
        for proxy in &self.trusted_proxies {
            Network::parse(proxy)
                .map_err(|e| AuthError::Config(format!("[gateway.auth] trusted_proxies: {e}")))?;
        }
        if let Some(c) = &self.oidc
            && (c.jwks_url.is_empty() || c.issuer.is_empty() || c.audience.is_empty())
        {
            return Err(AuthError::Config(
                "[gateway.auth.oidc] needs jwks_url, issuer and audience (tokens the \
                 provider issued for other applications must not get in)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What keeps the first admin from being created (an empty username; in cluster mode no
    /// password; a short or placeholder one). Refused only when no user exists yet, as these
    /// settings serve nothing else; `mantis config check` shows it as a note.
    pub fn first_admin_problem(&self) -> Option<AuthError> {
        if self.admin_username.trim().is_empty() {
            return Some(AuthError::Config("admin_username must not be empty".into()));
        }
        if self.admin_password.is_empty() {
            return self.require_explicit_secrets.then(|| {
                AuthError::UnsafeSecret(
                    "cluster mode needs [gateway.auth] admin_password \
                     (MANTIS_GATEWAY__AUTH__ADMIN_PASSWORD) for the first admin"
                        .into(),
                )
            });
        }
        (self.admin_password.len() < 8
            || PLACEHOLDER_SECRETS.contains(&self.admin_password.to_ascii_lowercase().as_str()))
        .then(|| {
            AuthError::UnsafeSecret(
                "[gateway.auth] admin_password must be at least 8 characters and not a placeholder"
                    .into(),
            )
        })
    }
}

/// The signing secret: configured (checked by [`AuthConfig::check`]), or (embedded) generated
/// once and kept in the store.
async fn signing_secret(store: &dyn Store, config: &AuthConfig) -> Result<String, AuthError> {
    let configured = config.jwt_secret.trim();
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    if let Some(serde_json::Value::String(s)) = store.get_state(SECRET_STATE_KEY).await?
        && s.len() >= 32
    {
        return Ok(s);
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex(&bytes);
    store
        .put_state(SECRET_STATE_KEY, &serde_json::Value::String(secret.clone()))
        .await?;
    tracing::info!("generated the gateway's token signing secret (kept in the store)");
    Ok(secret)
}

/// Creates the first admin when no user exists.
async fn bootstrap_admin(store: &dyn Store, config: &AuthConfig) -> Result<Bootstrap, AuthError> {
    let username = config.admin_username.trim().to_owned();
    let mut result = Bootstrap {
        generated_admin_password: None,
        admin_username: username.clone(),
    };
    if !store.list_users(None).await?.is_empty() {
        return Ok(result);
    }
    if let Some(problem) = config.first_admin_problem() {
        return Err(problem);
    }
    let password = if config.admin_password.is_empty() {
        let generated = generate_password();
        result.generated_admin_password = Some(generated.clone());
        generated
    } else {
        config.admin_password.clone()
    };
    let hash = hash_password(&password).map_err(|e| AuthError::Config(format!("argon2: {e}")))?;
    store
        .upsert_user(&User {
            username: username.clone(),
            tenant_id: TenantId::DEFAULT,
            display_name: "Administrator".into(),
            role: Role::Admin,
            password_hash: hash,
            disabled: false,
            created_at: Utc::now(),
            token_epoch: 0,
        })
        .await?;
    tracing::warn!(username = %username, "created the first admin; change its password after the first login");
    Ok(result)
}

/// Shortest password a person may set (the API's rule; a generated first-admin password is
/// 18 hex characters).
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Passwords of ten characters or more found at the top of published breach lists, and the
/// like: refused whatever their case (NIST SP 800-63B, 5.1.1.2).
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "0987654321",
    "1111111111",
    "0000000000",
    "123123123123",
    "1234512345",
    "123456789a",
    "a123456789",
    "123456789q",
    "q123456789",
    "12345678910",
    "1122334455",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "q1w2e3r4t5",
    "q1w2e3r4t5y6",
    "1qaz2wsx3edc",
    "zaq12wsxcde3",
    "qazwsxedcrfv",
    "1qazxsw23edc",
    "asdfghjkl1",
    "asdfghjkl;",
    "zxcvbnm123",
    "1234qwerasdf",
    "qwertyqwerty",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "password1!",
    "passw0rd123",
    "p@ssw0rd123",
    "p@ssword123",
    "passwordpassword",
    "mypassword",
    "mypassword1",
    "administrator",
    "admin12345",
    "admin123456",
    "welcome123",
    "welcome1234",
    "changeme123",
    "letmein1234",
    "iloveyou12",
    "iloveyou123",
    "football123",
    "baseball123",
    "princess123",
    "sunshine123",
    "superman123",
    "starwars123",
    "trustno1234",
    "monkey12345",
    "dragon12345",
    "master12345",
    "michael123",
    "abc1234567",
    "abcd123456",
    "a1b2c3d4e5",
    "abcdefghij",
    "abcdefghijk",
    "computer123",
    "internet123",
    "letmeinnow",
    "whatever123",
    "secret1234",
    "qwertyuiop123",
    "1234567890q",
    "q1234567890",
];

/// Keyboard rows, the alphabet and the digits: a password lying within one of them (either
/// way) is a walk, not a secret.
const SEQUENCES: &[&str] = &[
    "1234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "abcdefghijklmnopqrstuvwxyz",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qazwsxedcrfvtgbyhnujmikolp",
];

/// Why `password` may not be set for `username`, if it may not: shorter than
/// [`MIN_PASSWORD_CHARS`] or longer than 256 bytes, one of the commonest passwords, one
/// character repeated or a walk along the keyboard or the alphabet, or little more than the
/// username or the product's name (under six characters besides). The rules of NIST SP
/// 800-63B: length and a list of known-bad passwords, no composition rules.
pub fn password_problem(password: &str, username: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 256 {
        return Some(format!(
            "the password must be {MIN_PASSWORD_CHARS} characters to 256 bytes"
        ));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Some("the password is one of the commonest passwords".into());
    }
    let mut chars = lower.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Some("the password repeats one character".into());
    }
    let is_walk = SEQUENCES.iter().any(|s| {
        // Wrapping round (`7890123456`), forwards or backwards.
        let twice = format!("{s}{s}");
        let reversed: String = twice.chars().rev().collect();
        twice.contains(&lower) || reversed.contains(&lower)
    });
    if is_walk {
        return Some("the password is a walk along the keyboard or the alphabet".into());
    }
    for (word, what) in [
        (username.to_lowercase(), "the username"),
        ("mantis".into(), "the product's name"),
    ] {
        if word.chars().count() >= 3 && lower.contains(&word) {
            let rest = lower.replace(&word, "");
            if rest.chars().count() < 6 {
                return Some(format!(
                    "the password is little more than {what} (at least 6 other characters)"
                ));
            }
        }
    }
    None
}

/// Why a password could not be reset.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// No such user.
    #[error("no user `{username}` (users: {known})")]
    UnknownUser {
        /// Who was asked for.
        username: String,
        /// Who there is.
        known: String,
    },
    /// The password may not be set ([`password_problem`] says why).
    #[error("{0}")]
    BadPassword(String),
    /// Hashing failed.
    #[error("argon2: {0}")]
    Hash(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mantis_store::Error),
}

/// Sets `username`'s password (and, with `enable`, enables the account again) straight in the
/// store: the way back in for a locked-out admin (`mantis admin reset-password`). Every token
/// issued before ends, as with any password change. Returns the user as stored.
pub async fn reset_password(
    store: &dyn Store,
    username: &str,
    password: &str,
    enable: bool,
) -> Result<User, ResetError> {
    if let Some(why) = password_problem(password, username) {
        return Err(ResetError::BadPassword(why));
    }
    let Some(user) = store.get_user(username).await? else {
        let known: Vec<String> = store
            .list_users(None)
            .await?
            .into_iter()
            .map(|u| u.username)
            .collect();
        return Err(ResetError::UnknownUser {
            username: username.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    };
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| ResetError::Hash(e.to_string()))?
        .map_err(|e| ResetError::Hash(e.to_string()))?;
    let changes = mantis_store::UserChanges {
        password_hash: Some(hash),
        disabled: enable.then_some(false),
        ..mantis_store::UserChanges::default()
    };
    let updated = store
        .update_user(user.tenant_id, &user.username, &changes)
        .await?
        .ok_or_else(|| ResetError::UnknownUser {
            username: username.to_owned(),
            known: "(removed meanwhile)".to_owned(),
        })?;
    tracing::warn!(username = %updated.username, enabled = enable, "password reset outside the API");
    Ok(updated)
}

/// Whether `password` is the one `user`'s stored hash was made from.
pub fn password_matches(user: &User, password: &str) -> bool {
    verify_password(password, &user.password_hash)
}

/// A fresh random password (18 hex characters, 72 bits), as made for the first admin.
pub fn generate_password() -> String {
    let mut bytes = [0u8; 9];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The argon2id PHC string of `password` with a fresh salt.
pub(crate) fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
}

fn too_many(wait_secs: u64, detail: &str) -> Problem {
    Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests", detail)
        .with_retry_after(wait_secs)
}

/// The role each endpoint needs: `(method, route, role)`. An API route missing here is refused
/// to everyone (deny by default); the RBAC test walks this whole table for every role.
pub const POLICY: &[(&str, &str, Role)] = &[
    ("GET", "/api/v1/auth/me", Role::Operator),
    ("POST", "/api/v1/auth/password", Role::Operator),
    ("GET", "/api/v1/overview", Role::Operator),
    ("GET", "/api/v1/assets", Role::Operator),
    ("POST", "/api/v1/assets", Role::Manager),
    ("GET", "/api/v1/assets/{id}", Role::Operator),
    ("GET", "/api/v1/assets/{id}/events", Role::Operator),
    ("POST", "/api/v1/assets/{id}/events", Role::Technician),
    ("GET", "/api/v1/assets/{id}/anomaly-scores", Role::Operator),
    ("GET", "/api/v1/assets/{id}/rul", Role::Operator),
    ("GET", "/api/v1/assets/{id}/production", Role::Operator),
    ("POST", "/api/v1/assets/{id}/production", Role::Operator),
    ("DELETE", "/api/v1/assets/{id}/production", Role::Manager),
    ("POST", "/api/v1/sensors/data", Role::Technician),
    ("GET", "/api/v1/sensors/{id}/readings", Role::Operator),
    ("GET", "/api/v1/sensors/{id}/windows", Role::Operator),
    ("GET", "/api/v1/features/{asset_id}", Role::Operator),
    ("GET", "/api/v1/anomalies", Role::Operator),
    ("GET", "/api/v1/alerts", Role::Operator),
    ("POST", "/api/v1/alerts/{id}/acknowledge", Role::Operator),
    ("POST", "/api/v1/alerts/{id}/assign", Role::Manager),
    ("GET", "/api/v1/work-orders", Role::Operator),
    ("POST", "/api/v1/work-orders", Role::Manager),
    ("GET", "/api/v1/work-orders/{id}", Role::Operator),
    ("PATCH", "/api/v1/work-orders/{id}", Role::Technician),
    (
        "POST",
        "/api/v1/work-orders/{id}/transition",
        Role::Technician,
    ),
    (
        "POST",
        "/api/v1/work-orders/{id}/complete",
        Role::Technician,
    ),
    ("GET", "/api/v1/kpis", Role::Manager),
    ("GET", "/api/v1/planned-stops", Role::Operator),
    ("POST", "/api/v1/planned-stops", Role::Manager),
    ("DELETE", "/api/v1/planned-stops", Role::Manager),
    ("DELETE", "/api/v1/planned-stops/{id}", Role::Manager),
    ("GET", "/api/v1/reliability", Role::Manager),
    ("GET", "/api/v1/technicians", Role::Technician),
    ("PUT", "/api/v1/technicians/{name}", Role::Manager),
    ("DELETE", "/api/v1/technicians/{name}", Role::Manager),
    ("GET", "/api/v1/time-off", Role::Technician),
    ("POST", "/api/v1/time-off", Role::Manager),
    ("DELETE", "/api/v1/time-off/{id}", Role::Manager),
    ("GET", "/api/v1/spare-parts", Role::Technician),
    ("GET", "/api/v1/spare-parts/{partNumber}", Role::Technician),
    ("PUT", "/api/v1/spare-parts/{partNumber}", Role::Manager),
    ("DELETE", "/api/v1/spare-parts/{partNumber}", Role::Manager),
    (
        "GET",
        "/api/v1/spare-parts/{partNumber}/movements",
        Role::Technician,
    ),
    (
        "POST",
        "/api/v1/spare-parts/{partNumber}/movements",
        Role::Technician,
    ),
    ("GET", "/api/v1/schedule", Role::Technician),
    ("POST", "/api/v1/schedule/apply", Role::Manager),
    ("GET", "/api/v1/models", Role::Operator),
    ("GET", "/api/v1/rules", Role::Operator),
    ("GET", "/api/v1/users", Role::Admin),
    ("POST", "/api/v1/users", Role::Admin),
    ("PATCH", "/api/v1/users/{username}", Role::Admin),
    ("GET", "/api/v1/api-keys", Role::Admin),
    ("POST", "/api/v1/api-keys", Role::Admin),
    ("DELETE", "/api/v1/api-keys/{id}", Role::Admin),
    ("GET", "/api/v1/dead-letters", Role::Admin),
    ("GET", "/api/v1/dead-letters/{topic}", Role::Admin),
    ("POST", "/api/v1/dead-letters/{topic}/replay", Role::Admin),
    ("GET", "/ws", Role::Operator),
];

/// The role `method` on `route` needs, if the route is in [`POLICY`].
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    POLICY
        .iter()
        .find(|(m, r, _)| *r == route && method.as_str() == *m)
        .map(|(_, _, role)| *role)
}

/// Middleware of every protected route: authenticates, rate-limits, enforces [`POLICY`] and
/// hands the handler the [`Principal`].
pub(crate) async fn guard(
    State(auth): State<Arc<Auth>>,
    matched: Option<MatchedPath>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = matched.as_ref().map_or("", |m| m.as_str()).to_owned();
    let method = request.method().clone();
    // HEAD is GET without a body.
    let effective = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    let ws_token = if route == "/ws" {
        ws_token(request.headers(), request.uri().query())
    } else {
        None
    };
    let principal = match auth
        .authenticate(request.headers(), ws_token.as_deref())
        .await
    {
        Ok(p) => p,
        Err(problem) => return with_challenge(problem),
    };
    if let Err(problem) = auth.rate_limit(&principal.rate_key()) {
        return problem.into_response();
    }
    let Some(required) = required_role(&effective, &route) else {
        tracing::error!(%method, route, "no access policy for this endpoint: refused");
        return Problem::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "this endpoint has no access policy",
        )
        .into_response();
    };
    if !principal.role.includes(required) {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{} needs the {required} role; you are {}",
                route, principal.role
            ),
        )
        .into_response();
    }
    if route == "/ws" {
        let mut headers = HeaderMap::new();
        for name in [header::AUTHORIZATION.as_str(), "x-api-key"] {
            if let Some(v) = request.headers().get(name) {
                headers.insert(
                    axum::http::HeaderName::from_static(if name == "x-api-key" {
                        "x-api-key"
                    } else {
                        "authorization"
                    }),
                    v.clone(),
                );
            }
        }
        request
            .extensions_mut()
            .insert(Presented { headers, ws_token });
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn with_challenge(problem: Problem) -> Response {
    let mut response = problem.into_response();
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mantis\""),
        );
    }
    response
}

/// The subprotocol a WebSocket client offers beside its token (`bearer.<token>`), which the
/// gateway answers with: a browser cannot send an `Authorization` header with its upgrade, and
/// a token in the URL ends up in proxies' and browsers' logs. A browser that offers
/// subprotocols fails the handshake unless the answer names one, so `mantis.v1` must be
/// offered too.
pub(crate) const WS_PROTOCOL: &str = "mantis.v1";

/// Prefix of the subprotocol that carries a WebSocket client's token.
const WS_TOKEN_PROTOCOL: &str = "bearer.";

/// The token a WebSocket upgrade presents: offered as the subprotocol `bearer.<token>` (beside
/// [`WS_PROTOCOL`]), or, for clients that can do neither that nor a header, in the `token`
/// query parameter.
fn ws_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_TOKEN_PROTOCOL).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .or_else(|| query_param(query, "token"))
}

/// One query parameter, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_websocket_token_is_offered_as_a_subprotocol_or_in_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(ws_token(&headers, None), None);
        assert_eq!(
            ws_token(&headers, Some("token=a.b.c")).as_deref(),
            Some("a.b.c")
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mantis.v1, bearer.x.y.z"),
        );
        // The subprotocol first.
        assert_eq!(
            ws_token(&headers, Some("token=a.b.c")).as_deref(),
            Some("x.y.z")
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mantis.v1, bearer."),
        );
        assert_eq!(ws_token(&headers, None), None, "an empty token is none");
    }

    #[test]
    fn passwords_easy_to_guess_are_refused_and_long_ones_of_several_words_kept() {
        for ok in [
            "a long test password",
            "ana e2e password 1",
            "correct horse battery staple",
            "Tr0ub4dor&3x",
            "mantis is my favourite insect",
        ] {
            assert_eq!(password_problem(ok, "ana"), None, "{ok}");
        }
        for (weak, why) in [
            ("short", "10 characters"),
            ("PASSWORD123", "commonest"),
            ("qwertyuiop", "commonest"),
            ("aaaaaaaaaaaa", "repeats"),
            ("poiuytrewq", "walk"),
            ("7890123456", "walk"),
            ("hijklmnopqrs", "walk"),
            ("Ana2026ana!", "username"),
            ("mantis!2026", "product"),
        ] {
            let problem = password_problem(weak, "ana");
            assert!(
                problem.as_deref().is_some_and(|p| p.contains(why)),
                "{weak}: {problem:?}"
            );
        }
        let long = "x".repeat(200) + &"é".repeat(30);
        assert!(password_problem(&long, "ana").is_some(), "over 256 bytes");
        // A username under three characters is not looked for.
        assert_eq!(password_problem("jo jo jo jo jo", "jo"), None);
    }

    #[test]
    fn callers_of_the_same_name_in_two_tenants_spend_their_own_budgets() {
        let key = |tenant: u128| Principal {
            username: "key:scada".into(),
            display_name: "scada".into(),
            role: Role::Technician,
            tenant_id: TenantId(uuid::Uuid::from_u128(tenant)),
            credential: Credential::ApiKey,
        };
        assert_ne!(key(1).rate_key(), key(2).rate_key());
        assert_eq!(key(1).rate_key(), key(1).rate_key());
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(
            hash,
            hash_password("correct horse").expect("hash"),
            "salted"
        );
    }

    #[test]
    fn roles_include_the_ones_below_them() {
        assert!(Role::Admin.includes(Role::Operator));
        assert!(Role::Technician.includes(Role::Technician));
        assert!(!Role::Operator.includes(Role::Technician));
        assert!(!Role::Manager.includes(Role::Admin));
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(limiter.take("k").is_ok());
        }
        let wait = limiter.take("k").expect_err("over the burst");
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(limiter.take("other").is_ok(), "per key");
        limiter.refund("k");
        assert!(limiter.take("k").is_ok());
        assert!(RateLimiter::new(0, 0).take("k").is_ok(), "0 is unlimited");
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_address_it_did_not_add_itself() {
        let proxies: Vec<Network> = ["10.0.0.0/8", "fd00::/8", "192.168.1.10"]
            .iter()
            .map(|p| Network::parse(p).expect("network"))
            .collect();
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let forwarded = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
            }
            h
        };
        // Not through a trusted proxy: the peer, whatever the header says.
        let spoofed = forwarded(&["1.2.3.4"]);
        assert_eq!(
            client_address(ip("203.0.113.7"), &spoofed, &proxies),
            "203.0.113.7"
        );
        assert_eq!(client_address(ip("10.1.2.3"), &spoofed, &[]), "10.1.2.3");
        // Through the ingress (and a second proxy): the last address not a proxy; what the
        // client put before it is not believed.
        let chain = forwarded(&["6.6.6.6, 203.0.113.7", "10.9.9.9"]);
        assert_eq!(
            client_address(ip("10.1.2.3"), &chain, &proxies),
            "203.0.113.7"
        );
        assert_eq!(
            client_address(
                ip("::ffff:192.168.1.10"),
                &forwarded(&["2001:db8::1"]),
                &proxies
            ),
            "2001:db8::1"
        );
        // No header, only proxies in it, or garbage before them: the last proxy.
        assert_eq!(
            client_address(ip("10.1.2.3"), &HeaderMap::new(), &proxies),
            "10.1.2.3"
        );
        assert_eq!(
            client_address(ip("10.1.2.3"), &forwarded(&["10.0.0.9"]), &proxies),
            "10.1.2.3"
        );
        assert_eq!(
            client_address(ip("10.1.2.3"), &forwarded(&["8.8.8.8, unknown"]), &proxies),
            "10.1.2.3"
        );
        assert_eq!(client_address(None, &chain, &proxies), "unknown");
        // What is not a network is refused.
        for bad in ["", "10.0.0.0/33", "fd00::/129", "example.com", "10.0.0.0/x"] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Network::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            !Network::parse("10.0.0.0/8")
                .expect("net")
                .contains("fd00::1".parse().expect("ip"))
        );
    }

    #[test]
    fn key_prefixes_are_recognised_only_in_the_generated_shape() {
        assert_eq!(key_prefix("mk_0a1b2c3d_ffff"), Some("mk_0a1b2c3d"));
        assert_eq!(key_prefix("mk_0a1b2c3dXffff"), None);
        assert_eq!(key_prefix("short"), None);
        assert_eq!(key_prefix("ключ-ключ-ключ"), None);
    }

    #[test]
    fn every_policy_entry_is_unique_and_names_an_api_route() {
        for (i, (m, r, _)) in POLICY.iter().enumerate() {
            assert!(r.starts_with("/api/v1/") || *r == "/ws", "{r}");
            assert!(Method::from_bytes(m.as_bytes()).is_ok(), "{m}");
            assert!(
                !POLICY[i + 1..].iter().any(|(m2, r2, _)| m2 == m && r2 == r),
                "{m} {r} twice"
            );
        }
        assert_eq!(
            required_role(&Method::GET, "/api/v1/alerts"),
            Some(Role::Operator)
        );
        assert_eq!(required_role(&Method::DELETE, "/api/v1/alerts"), None);
    }
}
