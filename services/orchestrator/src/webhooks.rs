//! Signed webhooks: alerts and scheduled maintenance pushed to the plant's own systems (a
//! CMMS, a pager or chat bridge, an MES), `[orchestrator.webhooks.<name>]`.
//!
//! Each webhook reads `alerts.critical` and/or `maintenance.scheduled` as its own consumer
//! group (`orchestrator.webhook.<name>.alert`, `….maintenance`): every record of a kind
//! published since the webhook was first started with that kind (the time is kept in the store
//! per kind, so a restart before its first delivery skips nothing, and a kind added to a
//! webhook later starts when it was added, not with the records retained since the webhook
//! began). A record is committed only once the receiver answered 2xx, so
//! nothing is lost across restarts, outages of the receiver or of MANTIS; a receiver that is
//! down or misconfigured (connection refused, timeout, 3xx, 400, 401, 403, 404, 408, 429, 5xx:
//! a bad signature, a wrong path) holds that webhook only, retried with back-off, in order; one
//! that refuses the event itself (413, 415, 422) sends it to the group's dead-letter topic with
//! the answer as the reason, and the next one goes on.
//!
//! A delivery is a JSON `POST`:
//!
//! ```json
//! {"id": "alert:<alert id>", "type": "alert", "sentAt": "…", "asset": {…}, "data": {…}}
//! ```
//!
//! `data` is the alert or work order as the API shows it, `asset` the asset it concerns (code,
//! name, location, criticality). Headers: `X-Mantis-Event` (the type), `X-Mantis-Delivery` (the
//! id: the same on every retry, for the receiver to drop duplicates: delivery is at least
//! once), `X-Mantis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed
//! with the webhook's secret>` (the receiver checks it, and that `t` is recent), and the
//! `traceparent` of the event. While a secret is being rotated (`previous_secret`), the header
//! carries a second `v1=`, keyed with the previous secret: a receiver accepts the delivery when
//! any `v1` matches, so it can move to the new secret whenever it is ready.

use async_trait::async_trait;
use chrono::Utc;
use hmac::{Hmac, Mac};
use mantis_bus::Position;
use mantis_domain::{Alert, Severity, TenantId, WorkOrder};
use mantis_runtime::{HandleError, Handler, RecordContext};
use mantis_store::Store;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// One webhook (`[orchestrator.webhooks.<name>]`; the name is `[a-z0-9_-]`, at most 48).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Where to `POST` (http or https).
    pub url: String,
    /// The HMAC-SHA256 key of the signature (at least 16 bytes). Or `secret_env`.
    #[serde(default)]
    pub secret: Option<String>,
    /// The environment variable holding the secret instead (e.g. from a Kubernetes Secret).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The secret being replaced, while the receiver moves to `secret`: each delivery is also
    /// signed with it (a second `v1`). Remove it once the receiver has the new one. Or
    /// `previous_secret_env`.
    #[serde(default)]
    pub previous_secret: Option<String>,
    /// The environment variable holding the previous secret instead.
    #[serde(default)]
    pub previous_secret_env: Option<String>,
    /// What to send: `alert`, `maintenance` (work orders scheduled). Default both.
    #[serde(default = "every_event")]
    pub events: Vec<EventKind>,
    /// Alerts below this severity are not sent. Default `LOW` (all).
    #[serde(default = "lowest")]
    pub min_severity: Severity,
    /// Only alerts flagged for the on-call technician (assets of CRITICAL criticality).
    #[serde(default)]
    pub on_call_only: bool,
    /// Only the events of this tenant's assets. Default: every tenant.
    #[serde(default)]
    pub tenant: Option<TenantId>,
    /// Seconds to wait for the receiver's answer (1–30: a delivery in flight is finished
    /// before the service stops). Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &shown(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("secret_env", &self.secret_env)
            .field(
                "previous_secret",
                &self.previous_secret.as_ref().map(|_| "…"),
            )
            .field("previous_secret_env", &self.previous_secret_env)
            .field("events", &self.events)
            .field("min_severity", &self.min_severity)
            .field("on_call_only", &self.on_call_only)
            .field("tenant", &self.tenant)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// What a webhook is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Alerts (`alerts.critical`).
    Alert,
    /// Work orders scheduled for maintenance (`maintenance.scheduled`).
    Maintenance,
}

impl EventKind {
    /// Its name in the configuration, the consumer groups and the store.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::Maintenance => "maintenance",
        }
    }
}

fn every_event() -> Vec<EventKind> {
    vec![EventKind::Alert, EventKind::Maintenance]
}

fn lowest() -> Severity {
    Severity::Low
}

fn default_timeout() -> u64 {
    10
}

/// A webhook configuration that cannot work, with the key to mend.
#[derive(Debug, thiserror::Error)]
#[error("orchestrator.webhooks.{name}{key}: {problem}")]
pub struct WebhookError {
    name: String,
    key: &'static str,
    problem: String,
}

/// A webhook checked and ready to deliver.
#[derive(Clone)]
pub(crate) struct Ready {
    pub(crate) name: String,
    pub(crate) settings: Webhook,
    url: reqwest::Url,
    /// The secret, then the previous one while it is rotated.
    secrets: Arc<[Vec<u8>]>,
    client: reqwest::Client,
}

impl Ready {
    /// Checks `settings` (and reads its secret from the environment when it is there).
    pub(crate) fn new(name: &str, settings: &Webhook) -> Result<Self, WebhookError> {
        let fail = |key: &'static str, problem: String| WebhookError {
            name: name.to_owned(),
            key,
            problem,
        };
        let name_ok = !name.is_empty()
            && name.len() <= 48
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(fail(
                "",
                "a webhook's name is 1 to 48 of a-z, 0-9, - and _ (it names its consumer groups)"
                    .into(),
            ));
        }
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|e| fail(".url", format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(fail(
                ".url",
                "an http:// or https:// URL with a host".into(),
            ));
        }
        let secret = read_secret(
            &settings.secret,
            &settings.secret_env,
            ".secret",
            ".secret_env",
        )
        .map_err(|p| fail(p.0, p.1))?
        .ok_or_else(|| {
            fail(
                ".secret",
                "required (or `secret_env`): deliveries are signed".into(),
            )
        })?;
        let previous = read_secret(
            &settings.previous_secret,
            &settings.previous_secret_env,
            ".previous_secret",
            ".previous_secret_env",
        )
        .map_err(|p| fail(p.0, p.1))?;
        if previous.as_ref() == Some(&secret) {
            return Err(fail(
                ".previous_secret",
                "the same as `secret`: give the secret being replaced, or remove it".into(),
            ));
        }
        if settings.events.is_empty() {
            return Err(fail(".events", "at least one of alert, maintenance".into()));
        }
        if !(1..=30).contains(&settings.timeout_secs) {
            return Err(fail(".timeout_secs", "1 to 30".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            // A redirect would turn the POST into a GET (or send the signature elsewhere): the
            // URL is to be mended instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mantis-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail(".url", format!("no HTTP client for it ({e})")))?;
        Ok(Self {
            name: name.to_owned(),
            settings: settings.clone(),
            url,
            secrets: std::iter::once(secret)
                .chain(previous)
                .map(String::into_bytes)
                .collect(),
            client,
        })
    }

    /// The URL as shown in health and logs: see [`shown`].
    pub(crate) fn shown_url(&self) -> String {
        shown(self.url.as_str())
    }

    /// The marker in the store of when this webhook was first started with `kind`.
    pub(crate) fn since_key(&self, kind: EventKind) -> String {
        format!("orchestrator.webhook.{}.{}.since", self.name, kind.name())
    }

    /// The marker of earlier versions: when the webhook was first started, whatever it sent.
    fn webhook_since_key(&self) -> String {
        format!("orchestrator.webhook.{}.since", self.name)
    }

    /// The consumer group delivering `kind` to this webhook.
    pub(crate) fn group(&self, kind: EventKind) -> String {
        format!("orchestrator.webhook.{}.{}", self.name, kind.name())
    }

    /// When this webhook was first started with `kind` (ms since the epoch): read from the
    /// store, or now, written there, the first time.
    pub(crate) async fn started_with(
        &self,
        kind: EventKind,
        store: &dyn Store,
    ) -> Result<i64, mantis_store::Error> {
        let since_ms =
            |doc: &serde_json::Value| doc.get("sinceMs").and_then(serde_json::Value::as_i64);
        let key = self.since_key(kind);
        if let Some(ms) = store.get_state(&key).await?.as_ref().and_then(since_ms) {
            return Ok(ms);
        }
        // Earlier versions kept one time per webhook. It stands for the kinds the webhook
        // sends when first started by this version (recorded beside it, so every replica and
        // restart reads the same); a kind added after that starts when it is added.
        let webhook_key = self.webhook_since_key();
        if let Some(doc) = store.get_state(&webhook_key).await?
            && let Some(ms) = since_ms(&doc)
        {
            let kinds: Vec<EventKind> = match doc.get("kinds") {
                // Unreadable (edited by hand): the kinds configured, as at the upgrade.
                Some(kinds) => serde_json::from_value(kinds.clone())
                    .unwrap_or_else(|_| self.settings.events.clone()),
                None => {
                    let kinds = self.settings.events.clone();
                    store
                        .put_state(
                            &webhook_key,
                            &serde_json::json!({ "sinceMs": ms, "kinds": kinds }),
                        )
                        .await?;
                    kinds
                }
            };
            if kinds.contains(&kind) {
                return Ok(ms);
            }
        }
        let now = Utc::now().timestamp_millis();
        store
            .put_state(&key, &serde_json::json!({ "sinceMs": now }))
            .await?;
        tracing::info!(webhook = %self.name, kind = kind.name(), "webhook started: events of this kind from now on are sent");
        Ok(now)
    }
}

/// A secret given in the configuration (`value`) or in the environment variable `env` (not
/// both; at least 16 bytes); none when neither is given. The error names the key.
fn read_secret(
    value: &Option<String>,
    env: &Option<String>,
    key: &'static str,
    env_key: &'static str,
) -> Result<Option<String>, (&'static str, String)> {
    let secret = match (value, env) {
        (None, None) => return Ok(None),
        (Some(s), None) => s.clone(),
        (None, Some(var)) => std::env::var(var).map_err(|e| {
            (
                env_key,
                match e {
                    std::env::VarError::NotPresent => {
                        format!("the environment variable {var} is not set")
                    }
                    std::env::VarError::NotUnicode(_) => {
                        format!("the environment variable {var} is not UTF-8")
                    }
                },
            )
        })?,
        (Some(_), Some(_)) => {
            return Err((
                key,
                format!("give `{}` or `{}`, not both", &key[1..], &env_key[1..]),
            ));
        }
    };
    if secret.len() < 16 {
        let key = if value.is_some() { key } else { env_key };
        return Err((key, "at least 16 bytes".into()));
    }
    Ok(Some(secret))
}

/// A webhook URL without anything that may be a credential: scheme, host and port only (hook
/// URLs of chat tools carry their token in the path, others in the query or user info).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", u.scheme()),
            (Some(host), None) => format!("{}://{host}/…", u.scheme()),
            _ => "(not a URL)".into(),
        },
        Err(_) => "(not a URL)".into(),
    }
}

/// Checks every webhook of the configuration.
pub(crate) fn ready_all(webhooks: &BTreeMap<String, Webhook>) -> Result<Vec<Ready>, WebhookError> {
    webhooks
        .iter()
        .map(|(name, settings)| Ready::new(name, settings))
        .collect()
}

/// The signature header's value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    signatures(&[secret], t, body)
}

/// The signature header's value for `body` sent at `t`, with one `v1` per secret, in order
/// (the secret, then the previous one while it is rotated).
pub fn signatures(secrets: &[&[u8]], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        // HMAC takes a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| {
            unreachable!("HMAC accepts every key length");
        });
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        header.push_str(",v1=");
        header.extend(digest.iter().map(|b| format!("{b:02x}")));
    }
    header
}

/// A record a webhook can be sent.
pub(crate) trait Event: mantis_codec::Record + Serialize + Send + Sync + 'static {
    /// `type` of the delivery and `X-Mantis-Event`.
    const TYPE: &'static str;
    /// Its id (stable across redeliveries).
    fn id(&self) -> String;
    /// The asset it concerns.
    fn asset(&self) -> mantis_domain::AssetId;
    /// Whether the webhook's filters let it through (the tenant aside).
    fn wanted(&self, hook: &Webhook) -> bool;
}

impl Event for Alert {
    const TYPE: &'static str = "alert";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn asset(&self) -> mantis_domain::AssetId {
        self.asset_id
    }
    fn wanted(&self, hook: &Webhook) -> bool {
        self.severity >= hook.min_severity && (self.notify_on_call || !hook.on_call_only)
    }
}

impl Event for WorkOrder {
    const TYPE: &'static str = "maintenance.scheduled";
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn asset(&self) -> mantis_domain::AssetId {
        self.asset_id
    }
    fn wanted(&self, _hook: &Webhook) -> bool {
        true
    }
}

/// The body of a delivery.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a, R> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    sent_at: chrono::DateTime<Utc>,
    asset: Option<&'a mantis_domain::Asset>,
    data: &'a R,
}

/// Delivers the records of one topic to one webhook.
pub(crate) struct Delivery<R> {
    hook: Ready,
    store: Arc<dyn Store>,
    kind: EventKind,
    board: Board,
    /// Records published before this time (ms, the bus's) are not sent: the webhook did not
    /// exist yet.
    since_ms: i64,
    _record: PhantomData<fn() -> R>,
}

impl<R> Delivery<R> {
    /// The delivery of `hook`, from when it was first started with `kind` (now, the first time: written to
    /// the store so that a restart keeps it).
    pub(crate) async fn start(
        hook: Ready,
        store: Arc<dyn Store>,
        kind: EventKind,
        board: Board,
    ) -> Result<Self, mantis_store::Error> {
        let since_ms = hook.started_with(kind, store.as_ref()).await?;
        Ok(Self {
            hook,
            store,
            kind,
            board,
            since_ms,
            _record: PhantomData,
        })
    }
}

/// Delivers the records of `R`'s topic to `hook` as consumer group `group` until `shutdown`.
pub(crate) async fn deliver<R: Event>(
    infra: mantis_runtime::Infra,
    hook: Ready,
    kind: EventKind,
    board: Board,
    group: &str,
    shutdown: tokio_util::sync::CancellationToken,
) -> mantis_runtime::Result<()> {
    let delivery = loop {
        match Delivery::<R>::start(hook.clone(), infra.store.clone(), kind, board.clone()).await {
            Ok(d) => break d,
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "webhook not started: the store does not answer; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    // From the start of the topic: what was published before the webhook first started is
    // skipped by time (a group's start position is not kept before its first commit).
    mantis_runtime::run_consumer_from(
        infra,
        group,
        mantis_bus::StartFrom::Earliest,
        delivery,
        shutdown,
    )
    .await
}

/// What operators see of each webhook's deliveries: the `webhooks` detail of the health
/// (`state` `DELIVERING` or `FAILING`, `failingSince`, `lastError`, `oldestUndeliveredAt`: the
/// publication time of the event held at the head, `lastDeliveredAt`) and the gauges
/// `mantis_webhook_failing{webhook}` (0 / 1) and `mantis_webhook_oldest_undelivered_seconds
/// {webhook}` (how old the event held at the head is; 0 when nothing is held).
#[derive(Clone)]
pub(crate) struct Board {
    health: mantis_telemetry::Health,
    entries: Arc<std::sync::Mutex<BTreeMap<String, Shown>>>,
}

/// One webhook as the health shows it.
struct Shown {
    url: String,
    events: Vec<EventKind>,
    last_delivered_at: Option<chrono::DateTime<Utc>>,
    /// Per kind of event held at the head of its backlog.
    failing: BTreeMap<EventKind, Held>,
}

/// An event a webhook cannot deliver.
struct Held {
    since: chrono::DateTime<Utc>,
    error: String,
    /// When the event was published (ms, the bus's).
    published_ms: i64,
}

impl Board {
    /// The board of `hooks`, shown at once (all delivering).
    pub(crate) fn new(health: mantis_telemetry::Health, hooks: &[Ready]) -> Self {
        let entries = hooks
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    Shown {
                        url: h.shown_url(),
                        events: h.settings.events.clone(),
                        last_delivered_at: None,
                        failing: BTreeMap::new(),
                    },
                )
            })
            .collect();
        let board = Self {
            health,
            entries: Arc::new(std::sync::Mutex::new(entries)),
        };
        board.show(None);
        board
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Shown>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The receiver took an event of `kind` (or refused that event alone).
    fn delivered(&self, name: &str, kind: EventKind) {
        {
            let mut entries = self.entries();
            let Some(e) = entries.get_mut(name) else {
                return;
            };
            e.last_delivered_at = Some(Utc::now());
            if e.failing.remove(&kind).is_some() {
                tracing::info!(webhook = %name, ?kind, "webhook delivering again");
            }
        }
        self.show(Some(name));
    }

    /// The event of `kind` published at `published_ms` could not be delivered (`why`).
    fn failing(&self, name: &str, kind: EventKind, why: &str, published_ms: i64) {
        {
            let mut entries = self.entries();
            let Some(e) = entries.get_mut(name) else {
                return;
            };
            let held = e.failing.entry(kind).or_insert_with(|| Held {
                since: Utc::now(),
                error: String::new(),
                published_ms,
            });
            held.error = why.to_owned();
            held.published_ms = published_ms;
        }
        self.show(Some(name));
    }

    /// Sets the health detail, and the gauges of `name`.
    fn show(&self, name: Option<&str>) {
        let entries = self.entries();
        let now = Utc::now();
        if let Some(e) = name.and_then(|n| entries.get(n).map(|e| (n, e))) {
            let (n, e) = e;
            let oldest = e.failing.values().map(|f| f.published_ms).min();
            metrics::gauge!("mantis_webhook_failing", "webhook" => n.to_owned())
                .set(if e.failing.is_empty() { 0.0 } else { 1.0 });
            metrics::gauge!("mantis_webhook_oldest_undelivered_seconds", "webhook" => n.to_owned())
                .set(oldest.map_or(0.0, |ms| {
                    (now.timestamp_millis() - ms).max(0) as f64 / 1000.0
                }));
        }
        let shown: Vec<serde_json::Value> = entries
            .iter()
            .map(|(name, e)| {
                let since = e.failing.values().map(|f| f.since).min();
                let last_error = e
                    .failing
                    .values()
                    .max_by_key(|f| f.since)
                    .map(|f| f.error.clone());
                let oldest = e
                    .failing
                    .values()
                    .map(|f| f.published_ms)
                    .min()
                    .and_then(chrono::DateTime::from_timestamp_millis);
                serde_json::json!({
                    "name": name,
                    "url": e.url,
                    "events": e.events,
                    "state": if e.failing.is_empty() { "DELIVERING" } else { "FAILING" },
                    "failingSince": since,
                    "lastError": last_error,
                    "oldestUndeliveredAt": oldest,
                    "lastDeliveredAt": e.last_delivered_at,
                })
            })
            .collect();
        self.health.set_detail("webhooks", serde_json::json!(shown));
    }
}

/// The error's own text and its causes (a reqwest error's text alone does not tell a timeout
/// from a refused connection).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// At most `max` bytes of `response`'s body, as text.
async fn excerpt(mut response: reqwest::Response, max: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(max);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// How a receiver's answer is taken.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Delivered,
    /// The event itself is refused: dead-lettered.
    Refused,
    /// The receiver is away or misconfigured: retried.
    Retry,
}

fn answer(status: reqwest::StatusCode) -> Answer {
    match status.as_u16() {
        200..=299 => Answer::Delivered,
        413 | 415 | 422 => Answer::Refused,
        _ => Answer::Retry,
    }
}

fn counted(webhook: &str, outcome: &'static str) {
    metrics::counter!("mantis_webhook_deliveries_total", "webhook" => webhook.to_owned(), "outcome" => outcome)
        .increment(1);
}

#[async_trait]
impl<R: Event> Handler for Delivery<R> {
    type Input = R;

    async fn handle(
        &mut self,
        record: &R,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let hook = &self.hook;
        // Published before the webhook existed: not its to send. A record without a time
        // (a broker that gives none: 0) is not taken for an old one.
        if ctx.envelope.timestamp_ms > 0 && ctx.envelope.timestamp_ms < self.since_ms {
            counted(&hook.name, "before_start");
            return Ok(ctx.done());
        }
        if !record.wanted(&hook.settings) {
            counted(&hook.name, "filtered");
            return Ok(ctx.done());
        }
        let asset = self.store.get_asset(record.asset()).await?;
        if let Some(tenant) = hook.settings.tenant
            && asset.as_ref().is_none_or(|a| a.tenant_id != tenant)
        {
            counted(&hook.name, "filtered");
            return Ok(ctx.done());
        }
        let id = format!("{}:{}", R::TYPE, record.id());
        let body = serde_json::to_vec(&Body {
            id: &id,
            kind: R::TYPE,
            sent_at: Utc::now(),
            asset: asset.as_ref(),
            data: record,
        })
        .map_err(|e| HandleError::Permanent(format!("not serialisable: {e}")))?;
        let keys: Vec<&[u8]> = hook.secrets.iter().map(Vec::as_slice).collect();
        let signed = signatures(&keys, Utc::now().timestamp(), &body);
        let sent = hook
            .client
            .post(hook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Mantis-Event", R::TYPE)
            .header("X-Mantis-Delivery", &id)
            .header("X-Mantis-Signature", signed)
            .header("traceparent", ctx.trace.to_traceparent())
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                counted(&hook.name, "retried");
                let why = format!(
                    "webhook {} not reached: {}",
                    hook.name,
                    // Its URL may carry a credential.
                    chain(&e.without_url())
                );
                self.board
                    .failing(&hook.name, self.kind, &why, ctx.envelope.timestamp_ms);
                return Err(HandleError::Transient(why));
            }
        };
        let status = response.status();
        match answer(status) {
            Answer::Delivered => {
                counted(&hook.name, "delivered");
                self.board.delivered(&hook.name, self.kind);
                tracing::debug!(webhook = %hook.name, delivery = %id, %status, "webhook delivered");
                Ok(ctx.done())
            }
            outcome => {
                let text = excerpt(response, 300).await;
                let why = format!("webhook {} answered {status}: {text}", hook.name);
                if outcome == Answer::Refused {
                    counted(&hook.name, "refused");
                    // The receiver answers: only this event is refused (dead-lettered).
                    self.board.delivered(&hook.name, self.kind);
                    Err(HandleError::Permanent(why))
                } else {
                    counted(&hook.name, "retried");
                    self.board
                        .failing(&hook.name, self.kind, &why, ctx.envelope.timestamp_ms);
                    Err(HandleError::Transient(why))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Webhook {
        Webhook {
            url: "https://cmms.example/hooks/mantis".into(),
            secret: Some("0123456789abcdef".into()),
            secret_env: None,
            previous_secret: None,
            previous_secret_env: None,
            events: every_event(),
            min_severity: Severity::Low,
            on_call_only: false,
            tenant: None,
            timeout_secs: 10,
        }
    }

    #[tokio::test]
    async fn each_kind_starts_when_first_sent_and_an_earlier_webhook_time_covers_its_kinds_then() {
        let store = mantis_store::sqlite::SqliteStore::in_memory()
            .await
            .expect("sqlite");
        let mut alerts_only = hook();
        alerts_only.events = vec![EventKind::Alert];
        let ready = Ready::new("cmms", &alerts_only).expect("valid");
        let alert = ready
            .started_with(EventKind::Alert, &store)
            .await
            .expect("store");
        assert_eq!(
            ready
                .started_with(EventKind::Alert, &store)
                .await
                .expect("store"),
            alert,
            "kept"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        // `maintenance` added later: from then on, not from the webhook's first start.
        let both = Ready::new("cmms", &hook()).expect("valid");
        let maintenance = both
            .started_with(EventKind::Maintenance, &store)
            .await
            .expect("store");
        assert!(maintenance > alert, "{maintenance} > {alert}");
        assert_eq!(
            both.started_with(EventKind::Alert, &store)
                .await
                .expect("store"),
            alert
        );

        // A webhook started by an earlier version (one time for the webhook): the time holds
        // for the kinds it sends at the upgrade, a kind added after that starts when added.
        let old = Ready::new("pager", &alerts_only).expect("valid");
        store
            .put_state(
                "orchestrator.webhook.pager.since",
                &serde_json::json!({ "sinceMs": 1_000 }),
            )
            .await
            .expect("store");
        assert_eq!(
            old.started_with(EventKind::Alert, &store)
                .await
                .expect("store"),
            1_000
        );
        let added = Ready::new("pager", &hook()).expect("valid");
        assert!(
            added
                .started_with(EventKind::Maintenance, &store)
                .await
                .expect("store")
                > 1_000
        );
        assert_eq!(
            added
                .started_with(EventKind::Alert, &store)
                .await
                .expect("store"),
            1_000
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_and_the_body() {
        // Python: hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
        let sig = signature(b"key", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(
            sig,
            signature(b"key", 1_700_000_001, b"{}"),
            "the time is signed"
        );
        assert_ne!(sig, signature(b"kez", 1_700_000_000, b"{}"), "keyed");
        // While a secret is rotated: the same `t`, one `v1` per secret, the new one first.
        let both = signatures(&[b"kez", b"key"], 1_700_000_000, b"{}");
        let kez = signature(b"kez", 1_700_000_000, b"{}");
        assert_eq!(
            both,
            format!("{kez},v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae")
        );
    }

    #[test]
    fn answers_that_refuse_the_event_dead_letter_it_others_are_retried() {
        use reqwest::StatusCode as S;
        for ok in [S::OK, S::CREATED, S::ACCEPTED, S::NO_CONTENT] {
            assert_eq!(answer(ok), Answer::Delivered);
        }
        for refused in [
            S::PAYLOAD_TOO_LARGE,
            S::UNSUPPORTED_MEDIA_TYPE,
            S::UNPROCESSABLE_ENTITY,
        ] {
            assert_eq!(answer(refused), Answer::Refused);
        }
        for retried in [
            S::MOVED_PERMANENTLY,
            // Also what receivers often answer to a bad signature: a wrong secret must not
            // drain the stream into the dead-letter topic.
            S::BAD_REQUEST,
            S::UNAUTHORIZED,
            S::FORBIDDEN,
            S::NOT_FOUND,
            S::REQUEST_TIMEOUT,
            S::TOO_MANY_REQUESTS,
            S::INTERNAL_SERVER_ERROR,
            S::BAD_GATEWAY,
            S::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(answer(retried), Answer::Retry, "{retried}");
        }
    }

    #[test]
    fn a_webhook_that_cannot_work_is_refused_with_its_key_named() {
        assert!(Ready::new("cmms", &hook()).is_ok());
        type Spoil = fn(&mut Webhook);
        let bad: [(&str, &str, Spoil); 13] = [
            ("CMMS", "orchestrator.webhooks.CMMS:", |_| {}),
            ("cmms", ".url", |h| h.url = "cmms.example/hooks".into()),
            ("cmms", ".url", |h| h.url = "ftp://cmms.example/".into()),
            ("cmms", ".secret", |h| h.secret = None),
            ("cmms", ".secret", |h| h.secret = Some("short".into())),
            ("cmms", ".secret", |h| {
                h.secret_env = Some("MANTIS_TEST_UNSET_SECRET".into());
            }),
            ("cmms", ".secret_env", |h| {
                h.secret = None;
                h.secret_env = Some("MANTIS_TEST_UNSET_SECRET".into());
            }),
            ("cmms", ".previous_secret", |h| {
                h.previous_secret = Some("short".into());
            }),
            ("cmms", ".previous_secret", |h| {
                h.previous_secret = h.secret.clone();
            }),
            ("cmms", ".previous_secret_env", |h| {
                h.previous_secret_env = Some("MANTIS_TEST_UNSET_SECRET".into());
            }),
            ("cmms", ".events", |h| h.events.clear()),
            ("cmms", ".timeout_secs", |h| h.timeout_secs = 0),
            ("cmms", ".timeout_secs", |h| h.timeout_secs = 31),
        ];
        for (name, key, spoil) in bad {
            let mut h = hook();
            spoil(&mut h);
            let message = Ready::new(name, &h).err().expect(key).to_string();
            assert!(message.contains(key), "{key}: {message}");
        }
        let mut from_env = hook();
        from_env.secret = None;
        from_env.secret_env = Some("MANTIS_TEST_UNSET_SECRET_2".into());
        let message = Ready::new("cmms", &from_env)
            .err()
            .expect("unset")
            .to_string();
        assert!(
            message.contains("MANTIS_TEST_UNSET_SECRET_2 is not set"),
            "{message}"
        );
        let mut tokened = hook();
        tokened.url = "https://u:p@hooks.example:8443/services/T0/B0/XYZ?token=abc".into();
        let shown = format!("{tokened:?}");
        assert!(
            !shown.contains("0123456789abcdef"),
            "no secret in debug output"
        );
        assert!(shown.contains("https://hooks.example:8443/…"), "{shown}");
        for credential in ["XYZ", "abc", "u:p"] {
            assert!(!shown.contains(credential), "{shown}");
        }
    }

    /// A webhook set from the environment alone (a container's configuration), its secret
    /// from another variable (a Kubernetes Secret).
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
    fn a_webhook_is_configured_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "MANTIS_ORCHESTRATOR__WEBHOOKS__PAGER__URL",
                "https://pager.example/v1/mantis",
            );
            jail.set_env(
                "MANTIS_ORCHESTRATOR__WEBHOOKS__PAGER__SECRET_ENV",
                "PAGER_KEY",
            );
            jail.set_env(
                "MANTIS_ORCHESTRATOR__WEBHOOKS__PAGER__EVENTS",
                "[\"alert\"]",
            );
            jail.set_env("MANTIS_ORCHESTRATOR__WEBHOOKS__PAGER__ON_CALL_ONLY", "true");
            jail.set_env("PAGER_KEY", "a-key-from-a-secret");
            jail.set_env(
                "MANTIS_ORCHESTRATOR__WEBHOOKS__PAGER__PREVIOUS_SECRET_ENV",
                "PAGER_OLD_KEY",
            );
            jail.set_env("PAGER_OLD_KEY", "the-key-being-replaced");
            let config: crate::Config =
                mantis_runtime::load_section(None, "orchestrator").map_err(|e| e.to_string())?;
            let hooks = ready_all(&config.webhooks).map_err(|e| e.to_string())?;
            assert_eq!(hooks.len(), 1);
            assert_eq!(hooks[0].name, "pager");
            assert_eq!(hooks[0].settings.events, vec![EventKind::Alert]);
            assert!(hooks[0].settings.on_call_only);
            let secrets: Vec<&[u8]> = hooks[0].secrets.iter().map(Vec::as_slice).collect();
            assert_eq!(
                secrets,
                [&b"a-key-from-a-secret"[..], &b"the-key-being-replaced"[..]],
                "the secret, then the previous one"
            );
            assert_eq!(
                hooks[0].group(EventKind::Alert),
                "orchestrator.webhook.pager.alert"
            );
            Ok(())
        });
    }

    #[test]
    fn filters_pick_alerts_by_severity_and_on_call() {
        let alert = |severity, notify_on_call| Alert {
            id: Alert::id_for("x"),
            asset_id: mantis_domain::AssetId::new_random(),
            severity,
            kind: mantis_domain::AlertKind::Anomaly,
            message: "m".into(),
            created_at: Utc::now(),
            work_order_id: None,
            trigger_event: "x".into(),
            notify_on_call,
        };
        let mut h = hook();
        h.min_severity = Severity::High;
        assert!(!alert(Severity::Medium, true).wanted(&h));
        assert!(alert(Severity::High, false).wanted(&h));
        h.on_call_only = true;
        assert!(!alert(Severity::Critical, false).wanted(&h));
        assert!(alert(Severity::Critical, true).wanted(&h));
    }
}
