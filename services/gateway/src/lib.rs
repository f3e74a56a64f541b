//! # mantis-gateway
//!
//! The one front door of MANTIS for people, machines and enterprise systems:
//! - the REST API over what the services hold (assets and sensors, health overview, readings
//!   downsampled on the server, anomalies with explanations, RUL history, alerts, work orders,
//!   maintenance events, KPIs), JSON or CSV, errors as problem bodies;
//! - authentication (logins issuing JWTs, API keys, optional OIDC tokens), roles enforced per
//!   endpoint from one policy table ([`POLICY`]), tenant isolation, rate limiting, request ids;
//! - a WebSocket (`/ws`) pushing alerts, work-order changes and an asset's live readings;
//! - the React dashboard (`dashboard/`), embedded in the binary at build time.
//!
//! Each gateway instance follows `alerts.critical` with its own consumer group starting at the
//! newest record, so every instance sees every alert and can fan it out to its clients.
//! Layout: `auth` (+ `oidc`), `api` (routing, shared helpers, CSV), `plant`, `operations`,
//! `access`, `kpi`, `live`, `web`, `openapi`.

mod access;
mod api;
mod auth;
mod calendar;
mod catalog;
mod dead_letters;
mod ingest;
mod kpi;
mod live;
mod oidc;
mod openapi;
mod operations;
mod planning;
mod plant;
mod production;
mod reliability;
mod stores;
mod web;

pub use auth::{
    AuthConfig, AuthError, Bootstrap, MIN_PASSWORD_CHARS, OidcConfig, POLICY, ResetError,
    StaticApiKey, generate_password, password_matches, password_problem, required_role,
    reset_password,
};
pub use kpi::{ShiftConfig, default_shifts};
pub use planning::PlanningConfig;

use mantis_runtime::{App, Infra, Result, run_consumer_with};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Configuration of the gateway (`[gateway]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8000`.
    pub bind: String,
    /// Live events buffered per tenant for its WebSocket clients before the slowest ones skip
    /// ahead. Default 256.
    pub ws_buffer: usize,
    /// How often a WebSocket session's credentials are checked again, in seconds. Default 30.
    pub ws_recheck_secs: u64,
    /// The ingestion service, to which `POST /api/v1/sensors/data` forwards readings with the
    /// caller's tenant (e.g. `http://ingestion:8001`). Empty: that endpoint answers 503; `mantis`
    /// (all services in one process) sets it to its own ingestion service.
    pub ingestion_url: String,
    /// Origins allowed to call the API from a browser (CORS); empty: same origin only.
    pub cors_origins: Vec<String>,
    /// Authentication and rate limits.
    pub auth: AuthConfig,
    /// The plant's shifts, for KPIs per shift.
    pub shifts: Vec<ShiftConfig>,
    /// Planning by the gateway itself (off by default).
    pub planning: PlanningConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8000".into(),
            ws_buffer: 256,
            ws_recheck_secs: 30,
            ingestion_url: String::new(),
            cors_origins: Vec::new(),
            auth: AuthConfig::default(),
            shifts: default_shifts(),
            planning: PlanningConfig::default(),
        }
    }
}

/// Builds the gateway.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    build_with_bootstrap(infra, config)
        .await
        .map(|(app, _)| app)
}

/// The cluster binary: refuses generated or placeholder secrets.
pub async fn build_cluster(infra: Infra, config: Config) -> Result<App> {
    let config = cluster_config(config);
    if config.ingestion_url.trim().is_empty() {
        tracing::warn!(
            "[gateway] ingestion_url is not set: readings posted to the gateway are refused (503)"
        );
    }
    build(infra, config).await
}

/// The cluster binary's configuration: generated or placeholder secrets are refused.
pub fn cluster_config(mut config: Config) -> Config {
    config.auth.require_explicit_secrets = true;
    config
}

/// What the configuration yields before anything is connected.
struct Prepared {
    shifts: kpi::Shifts,
    rules: mantis_rules::RuleSet,
    estimates: mantis_rules::plan::Estimates,
    ingest: ingest::Upstream,
    cors: Option<tower_http::cors::CorsLayer>,
}

/// Checks `config` as [`build`] does before it touches the database (`mantis config check`):
/// secrets, API keys, OIDC, shifts, planning, CORS origins, the ingestion URL and the rules in
/// `infra.rules_dir`.
pub fn check_config(infra: &mantis_runtime::InfraSettings, config: &Config) -> Result<()> {
    prepare(infra, config).map(drop)
}

fn prepare(infra: &mantis_runtime::InfraSettings, config: &Config) -> Result<Prepared> {
    config
        .auth
        .check()
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let shifts = kpi::Shifts::parse(&config.shifts)
        .map_err(|e| mantis_runtime::Error::Config(format!("[gateway] shifts: {e}")))?;
    let rules = mantis_rules::RuleSet::load_or_builtin(infra.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let estimates = mantis_rules::plan::Estimates::load_or_builtin(infra.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let ingest = ingest::Upstream::new(&config.ingestion_url)
        .map_err(|e| mantis_runtime::Error::Config(format!("[gateway] {e}")))?;
    config
        .planning
        .validate()
        .map_err(mantis_runtime::Error::Config)?;
    let cors = if config.cors_origins.is_empty() {
        None
    } else {
        Some(cors(&config.cors_origins)?)
    };
    Ok(Prepared {
        shifts,
        rules,
        estimates,
        ingest,
        cors,
    })
}

/// Builds the gateway and says what the first start created (the first admin's generated
/// password, to show the person who started MANTIS).
pub async fn build_with_bootstrap(infra: Infra, config: Config) -> Result<(App, Bootstrap)> {
    let Prepared {
        shifts,
        rules,
        estimates,
        ingest,
        cors,
    } = prepare(&infra.settings, &config)?;
    infra.check_object_store().await;
    // Ready while the database answers: the gateway publishes nothing, and reads the cache
    // only to spare the database, so a bus or Redis outage must not take the dashboard and
    // the API out of the load balancer (the live alerts resume with the bus).
    let health = mantis_telemetry::Health::with_checks(
        "gateway",
        infra
            .readiness_checks()
            .into_iter()
            .filter(|c| c.name() == "database")
            .collect(),
    );
    let (auth, bootstrap) = auth::Auth::new(infra.store.clone(), infra.cache.clone(), &config.auth)
        .await
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let live = live::LiveHub::new(config.ws_buffer);
    let state = api::ApiState {
        store: infra.store.clone(),
        cache: infra.cache.clone(),
        bus: infra.bus.clone(),
        auth: Arc::new(auth),
        live: live.clone(),
        shifts,
        objects: infra.objects.clone(),
        rules_dir: infra.settings.rules_dir.clone(),
        rules: Arc::new(rules),
        estimates: Arc::new(estimates),
        planner: Arc::new(tokio::sync::Semaphore::new(2)),
        ws_recheck: std::time::Duration::from_secs(config.ws_recheck_secs.max(1)),
        ingest,
    };
    let planner =
        (config.planning.auto_apply_secs > 0).then(|| (state.clone(), config.planning.clone()));
    let mut routes = api::router(state);
    if let Some(cors) = cors {
        routes = routes.layer(cors);
    }
    if !web::embedded() {
        tracing::warn!("this build carries no dashboard (dashboard/dist was empty)");
    }
    // Every replica sees every alert: a group of its own. The embedded log has one gateway
    // (one process holds it) and keeps a group's file for good, so there it is one group for
    // every start rather than a new file each time.
    let group = match infra.settings.bus {
        mantis_runtime::BusSettings::Embedded { .. } => "gateway.live".to_owned(),
        mantis_runtime::BusSettings::Kafka { .. } => {
            format!("gateway.{}", uuid::Uuid::new_v4().simple())
        }
    };
    let handler = live::AlertFanOut::new(live.clone(), infra.store.clone());
    let changes_store = infra.store.clone();
    let mut app = App::with_own_fallback("gateway", &config.bind, routes, health)
        .await?
        .worker("change feed", move |shutdown| {
            live::follow_changes(live, changes_store, shutdown)
        })
        .worker("alert stream", move |shutdown| async move {
            // One dead-letter topic for every replica and start (`dlq.gateway.live`).
            run_consumer_with(
                infra,
                &group,
                "gateway.live",
                mantis_bus::StartFrom::Latest,
                handler,
                shutdown,
            )
            .await
        });
    if let Some((state, planning)) = planner {
        tracing::info!(
            every_secs = planning.auto_apply_secs,
            horizon_hours = planning.horizon_hours,
            "the gateway applies the maintenance plan by itself"
        );
        app = app.worker("planner", move |shutdown| {
            planning::auto_apply(state, planning, shutdown)
        });
    }
    Ok((app, bootstrap))
}

fn cors(origins: &[String]) -> Result<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o)
                .map_err(|_| mantis_runtime::Error::Config(format!("CORS origin `{o}` is invalid")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::ETAG,
        ])
        .max_age(std::time::Duration::from_secs(600)))
}
