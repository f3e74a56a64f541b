//! # mantis-gateway
//!
//! The front door for people and enterprise systems: a REST API over what the services hold
//! (assets and sensors, alerts, work orders) and a WebSocket (`/ws/alerts`) that pushes every
//! alert live as it is raised.
//!
//! Each gateway instance follows `alerts.critical` with its own consumer group starting at the
//! newest record, so every instance sees every alert and can fan it out to its clients.
//! Duplicate deliveries of one alert are dropped (alerts carry stable ids).

mod api;
mod live;

use mantis_runtime::{App, Infra, Result, run_consumer_from};
use serde::{Deserialize, Serialize};

/// Configuration of the gateway (`[gateway]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8000`.
    pub bind: String,
    /// Alerts buffered per WebSocket client before the slowest ones skip ahead. Default 256.
    pub ws_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8000".into(),
            ws_buffer: 256,
        }
    }
}

/// Builds the gateway.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let health = App::health("gateway", &infra);
    let hub = live::AlertHub::new(config.ws_buffer.max(1));
    let group = format!("gateway.{}", uuid::Uuid::new_v4().simple());
    let routes =
        api::router(infra.store.clone(), infra.cache.clone()).merge(live::router(hub.clone()));
    let handler = live::AlertFanOut::new(hub);
    Ok(App::new("gateway", &config.bind, routes, health)
        .await?
        .worker("alert stream", move |shutdown| async move {
            run_consumer_from(
                infra,
                &group,
                mantis_bus::StartFrom::Latest,
                handler,
                shutdown,
            )
            .await
        }))
}
