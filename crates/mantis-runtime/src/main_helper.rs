//! The shared `main` of the seven service binaries.

use crate::{App, Infra, InfraSettings, Result, load_section};
use serde::{Serialize, de::DeserializeOwned};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Runs one service as its own process: logging and metrics, configuration (an optional TOML
/// file named by the first argument or `MANTIS_CONFIG`, with `[infra]` and `[<section>]`
/// tables, then `MANTIS_*` variables), infrastructure, topics, then `build` and run until
/// SIGTERM/SIGINT.
pub async fn service_main<C, F, Fut>(section: &'static str, build: F) -> Result<()>
where
    C: Default + Serialize + DeserializeOwned,
    F: FnOnce(Infra, C) -> Fut,
    Fut: std::future::Future<Output = Result<App>>,
{
    mantis_telemetry::init_tracing(mantis_telemetry::LogFormat::from_env());
    mantis_telemetry::metrics_handle();
    let file: Option<PathBuf> = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("MANTIS_CONFIG").ok())
        .map(PathBuf::from);
    run_service(section, file, build).await
}

/// Runs one service until SIGTERM/SIGINT with the configuration in `file` (plus `MANTIS_*`
/// variables); logging must already be set up. Used by [`service_main`] and `mantis service`.
pub async fn run_service<C, F, Fut>(
    section: &'static str,
    file: Option<PathBuf>,
    build: F,
) -> Result<()>
where
    C: Default + Serialize + DeserializeOwned,
    F: FnOnce(Infra, C) -> Fut,
    Fut: std::future::Future<Output = Result<App>>,
{
    let infra_settings: InfraSettings = load_section(file.as_deref(), "infra")?;
    let config: C = load_section(file.as_deref(), section)?;
    let infra = Infra::connect(&infra_settings).await?;
    infra.ensure_topics(&[]).await?;
    let app = build(infra, config).await?;
    tracing::info!(service = section, port = app.port(), "service started");
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        mantis_telemetry::shutdown_signal().await;
        trigger.cancel();
    });
    app.run(shutdown).await
}
