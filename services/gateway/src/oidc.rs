//! Access tokens of an external OpenID Connect provider (Keycloak, Entra ID, Okta...),
//! validated with the provider's published keys (JWKS). The role and the tenant come from
//! claims the provider is configured to add.

use crate::auth::{Credential, OidcConfig, Principal, unauthorized};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use mantis_domain::{Role, TenantId};
use mantis_runtime::Problem;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// Keys are fetched again at most this often when a token names an unknown key (rotation).
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// Asymmetric algorithms only: a provider's token is never checked with a shared secret.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub(crate) struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
    /// When the keys were last fetched or tried: one fetch at a time, and at most one per
    /// [`REFETCH_AFTER`] whatever the tokens name (tokens naming made-up keys, or a provider
    /// that is down, must not turn every request into a request to the provider).
    fetched: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Oidc {
    pub(crate) fn new(config: OidcConfig) -> Self {
        Self {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(None),
            fetched: tokio::sync::Mutex::new(None),
        }
    }

    async fn fetch(&self) -> Result<JwkSet, Problem> {
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                tracing::warn!(error = %e, url = %self.config.jwks_url, "JWKS unreachable");
                Problem::unavailable("the identity provider's keys cannot be fetched")
            })?;
        response.json::<JwkSet>().await.map_err(|e| {
            tracing::warn!(error = %e, "JWKS is not a key set");
            Problem::unavailable("the identity provider's keys cannot be read")
        })
    }

    /// The key `kid` names (or the only key when the token names none).
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, Problem> {
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let stale = {
            let cached = self.keys.read().await;
            match cached.as_ref() {
                Some((_, set)) => {
                    if let Some(jwk) = find(set) {
                        return DecodingKey::from_jwk(&jwk)
                            .map_err(|_| unauthorized("the provider's key is not usable"));
                    }
                    cached
                        .as_ref()
                        .is_none_or(|(at, _)| at.elapsed() > REFETCH_AFTER)
                }
                None => true,
            }
        };
        if !stale {
            return Err(unauthorized("the token's key is not one of the provider's"));
        }
        let mut fetched = self.fetched.lock().await;
        // Another request may have fetched the keys while this one waited.
        let cached = self.keys.read().await.as_ref().map(|(_, set)| find(set));
        if let Some(Some(jwk)) = &cached {
            return DecodingKey::from_jwk(jwk)
                .map_err(|_| unauthorized("the provider's key is not usable"));
        }
        if let Some((at, ok)) = *fetched
            && at.elapsed() <= REFETCH_AFTER
        {
            // Asked moments ago: a key it did not have is not one of its keys; a provider that
            // did not answer is unavailable (a token of a rotated key may be fine).
            return Err(if ok {
                unauthorized("the token's key is not one of the provider's")
            } else {
                Problem::unavailable("the identity provider's keys cannot be fetched")
            });
        }
        // Recorded once the attempt is over (with the lock held throughout): a request given up
        // mid-fetch leaves the next one to fetch.
        let result = self.fetch().await;
        *fetched = Some((Instant::now(), result.is_ok()));
        let set = result?;
        let jwk = find(&set);
        *self.keys.write().await = Some((Instant::now(), set));
        let jwk =
            jwk.ok_or_else(|| unauthorized("the token's key is not one of the provider's"))?;
        DecodingKey::from_jwk(&jwk).map_err(|_| unauthorized("the provider's key is not usable"))
    }

    pub(crate) async fn validate(
        &self,
        token: &str,
        header: &Header,
    ) -> Result<Principal, Problem> {
        if !ALLOWED.contains(&header.alg) {
            return Err(unauthorized("the token's algorithm is not accepted"));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        if !self.config.issuer.is_empty() {
            validation.set_issuer(&[self.config.issuer.as_str()]);
        }
        if self.config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[self.config.audience.as_str()]);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                unauthorized("the token has expired")
            }
            _ => unauthorized("the provider's token is not valid"),
        })?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let role = text(&self.config.role_claim)
            .and_then(|r| Role::parse(&r).ok())
            .ok_or_else(|| {
                Problem::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "the token carries no MANTIS role (claim `{}`)",
                        self.config.role_claim
                    ),
                )
            })?;
        let tenant_id = match text(&self.config.tenant_claim) {
            Some(t) => TenantId::parse(&t)
                .map_err(|_| unauthorized("the token's tenant claim is not a tenant id"))?,
            None => self.config.default_tenant.ok_or_else(|| {
                Problem::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "the token names no tenant (claim `{}`)",
                        self.config.tenant_claim
                    ),
                )
            })?,
        };
        let username = text(&self.config.username_claim)
            .or_else(|| text("sub"))
            .ok_or_else(|| unauthorized("the token names no user"))?;
        // `key:<name>` is how API keys act (what they recorded is theirs to replace): a user of
        // the identity provider who chose such a name would act as the key.
        if username.starts_with("key:") {
            return Err(unauthorized(
                "the token's user name begins with `key:`, reserved for API keys",
            ));
        }
        Ok(Principal {
            display_name: text("name").unwrap_or_else(|| username.clone()),
            username,
            role,
            tenant_id,
            credential: Credential::Oidc,
        })
    }
}
