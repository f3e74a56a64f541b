//! # mantis-telemetry
//!
//! Everything a MANTIS service needs to be observable and stoppable:
//!
//! - [`init_tracing`]: JSON logs in containers, human-readable logs on a terminal, quiet in
//!   tests unless `TEST_LOG` is set; filter from `RUST_LOG` (default `info`).
//! - [`metrics_handle`]: the process-wide Prometheus recorder (installed once; in the embedded
//!   mode seven services share it and are told apart by the `service` label).
//! - [`Health`]: liveness, readiness checks and service-specific status, served with
//!   [`ops_router`] as `/health`, `/ready` and `/metrics`.
//! - [`shutdown_signal`]: resolves on SIGTERM or SIGINT; only binaries call it, libraries take a
//!   [`tokio_util::sync::CancellationToken`].
//! - [`testing`]: helpers for the workspace's tests ([`init_test_tracing`] too).
//!
//! ```
//! use mantis_telemetry::Health;
//! let health = Health::new("features");
//! health.set_detail("featureSet", serde_json::json!("v1"));
//! let app: axum::Router = mantis_telemetry::ops_router(health);
//! ```

mod health;
mod logging;
pub mod testing;

pub use health::{Health, ReadinessCheck, ops_router};
pub use logging::{LogFormat, init_test_tracing, init_tracing};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus handle; installs the recorder on first call. `None` only when
/// another recorder was installed by someone else first.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "could not install the Prometheus recorder");
                None
            }
        })
        .clone()
}

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C, shutting down"),
        () = term => tracing::info!("received SIGTERM, shutting down"),
    }
}
