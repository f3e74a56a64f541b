//! The shared `main` of the seven service binaries.

use crate::{App, Error, Infra, InfraSettings, Result, load_section};
use serde::{Serialize, de::DeserializeOwned};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Whether a service may start while the bus cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BusAtStart {
    /// The service needs the bus from its first moment: the start fails without it (the
    /// orchestrator restarts the process).
    #[default]
    Required,
    /// The service works without the bus for a while (ingestion: its edge buffer takes what
    /// the bus cannot): it starts anyway, and the topics are created in the background once
    /// the bus answers.
    Optional,
}

/// How long the first topic check may wait for the bus when it is optional.
const OPTIONAL_BUS_FIRST_TRY: Duration = Duration::from_secs(10);
/// Longest pause between topic checks while the bus stays away.
const OPTIONAL_BUS_RETRY_MAX: Duration = Duration::from_secs(30);

/// Creates the topics, or, when the bus is optional and does not answer, schedules their
/// creation until it does.
async fn ensure_topics(infra: &Infra, bus: BusAtStart, shutdown: &CancellationToken) -> Result<()> {
    if bus == BusAtStart::Required {
        return infra.ensure_topics(&[]).await;
    }
    let first = tokio::time::timeout(OPTIONAL_BUS_FIRST_TRY, infra.ensure_topics(&[])).await;
    let why = match first {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(Error::Bus(e))) => e.to_string(),
        Ok(Err(e)) => return Err(e),
        Err(_) => format!("no answer within {OPTIONAL_BUS_FIRST_TRY:?}"),
    };
    tracing::warn!(reason = %why, "the bus is unavailable: starting without it, topics will be created when it answers");
    let (infra, shutdown) = (infra.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            match tokio::time::timeout(OPTIONAL_BUS_FIRST_TRY, infra.ensure_topics(&[])).await {
                Ok(Ok(())) => {
                    tracing::info!("the bus answers again: topics ensured");
                    return;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "topics cannot be ensured yet"),
                Err(_) => tracing::debug!("topics cannot be ensured yet (no answer)"),
            }
            pause = (pause * 2).min(OPTIONAL_BUS_RETRY_MAX);
        }
    });
    Ok(())
}

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
    service_main_with(section, BusAtStart::Required, build).await
}

/// [`service_main`] for a service that may start without the bus.
pub async fn service_main_with<C, F, Fut>(
    section: &'static str,
    bus: BusAtStart,
    build: F,
) -> Result<()>
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
    run_service_with(section, file, bus, build).await
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
    run_service_with(section, file, BusAtStart::Required, build).await
}

/// [`run_service`] for a service that may start without the bus.
pub async fn run_service_with<C, F, Fut>(
    section: &'static str,
    file: Option<PathBuf>,
    bus: BusAtStart,
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
    let shutdown = CancellationToken::new();
    ensure_topics(&infra, bus, &shutdown).await?;
    let app = build(infra, config).await?;
    tracing::info!(service = section, port = app.port(), "service started");
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        mantis_telemetry::shutdown_signal().await;
        trigger.cancel();
    });
    app.run(shutdown).await
}
