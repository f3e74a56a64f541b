//! Log set-up.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (containers, log shippers).
    Json,
    /// Human-readable, for terminals.
    Pretty,
}

impl LogFormat {
    /// `MANTIS_LOG_FORMAT=json|pretty` when set, otherwise pretty on a terminal and JSON elsewhere.
    pub fn from_env() -> Self {
        match std::env::var("MANTIS_LOG_FORMAT").ok().as_deref() {
            Some("json") => Self::Json,
            Some("pretty") => Self::Pretty,
            _ => {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    Self::Pretty
                } else {
                    Self::Json
                }
            }
        }
    }
}

/// Installs the global tracing subscriber writing to stderr, filtered by `RUST_LOG`
/// (default `info`). Calling it twice is harmless (the second call does nothing), so tests can
/// call it freely; tests stay quiet unless `TEST_LOG` is set.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // Already initialised (tests, or embedded mode starting several services): keep the first.
    let _ = result;
}

/// Initialises logging for tests: silent unless `TEST_LOG` is set.
pub fn init_test_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        init_tracing(LogFormat::Pretty);
    }
}
