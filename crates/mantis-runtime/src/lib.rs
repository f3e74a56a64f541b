//! # mantis-runtime
//!
//! The kit every MANTIS service is built from, so that the seven services differ only in their
//! domain logic:
//!
//! - `settings`: layered configuration (defaults → TOML file → `MANTIS_SECTION__KEY`
//!   environment variables) and the infrastructure settings shared by all services.
//! - `infra`: [`Infra`] bundles the bus, the store and the codec, built for the embedded mode
//!   (durable on-disk log, SQLite) or the cluster mode (Kafka, PostgreSQL, a schema registry),
//!   with readiness checks for each.
//! - `consumer`: [`run_consumer`], the at-least-once consumer loop: decode, hand to a
//!   [`Handler`], retry transient failures, dead-letter poison records with the reason in the
//!   headers, commit only what was fully handled, stop cleanly on shutdown.
//! - `publish`: [`Publisher`], encode a record and publish it with trace context.
//! - `http`: [`serve`], an axum server with graceful shutdown, and [`Problem`] bodies.
//! - `app`: [`App`], a built service (bound listener, router, workers) run until shutdown.
//! - `lease`: [`while_holding`], work that one replica does at a time (a lease in the store),
//!   ([`hold`] says who holds it otherwise), and [`lease_holder`], this process's name in the
//!   leases.
//!
//! ```no_run
//! # async fn demo() -> mantis_runtime::Result<()> {
//! use mantis_runtime::{Infra, InfraSettings};
//! let infra = Infra::connect(&InfraSettings::default()).await?;
//! infra.ensure_topics(&[]).await?;
//! # Ok(()) }
//! ```

mod app;
mod consumer;
pub mod dead_letters;
mod http;
mod infra;
mod lease;
mod main_helper;
mod publish;
mod settings;

pub use app::App;
pub use consumer::{
    HandleError, Handler, LAG_EVERY, RecordContext, run_consumer, run_consumer_from,
    run_consumer_with,
};
pub use http::{
    FieldError, Problem, bind, json_bodies, method_not_allowed, no_such_route, parse_json,
    parse_json_object, problem_bodies, serve,
};
pub use infra::{Infra, connect_bus, connect_store};
pub use lease::{
    LeaseWatch, hold, hold_watched, holder_name, host_name, lease_holder, note_time, noted_within,
    while_holding,
};
pub use main_helper::{BusAtStart, run_service, run_service_with, service_main, service_main_with};
pub use publish::Publisher;
pub use settings::{
    BusSettings, EnvSettings, InfraSettings, env_provider, load_section, load_settings,
    redacted_url,
};

/// Header of a request that the gateway forwards to a service on behalf of an authenticated
/// caller: the caller's tenant (a UUID). A service that takes it acts within that tenant only
/// (ingestion: readings of that tenant's sensors). The services' own ports are not reachable
/// from other hosts (loopback, network policies), so only the gateway can set it.
pub const TENANT_HEADER: &str = "x-mantis-tenant";

/// Largest body of `POST /api/v1/sensors/data`, at the ingestion service and at the gateway
/// that forwards it there (16 MiB).
pub const MAX_READINGS_BODY: usize = 16 << 20;

/// Errors of the service kit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The message bus failed.
    #[error(transparent)]
    Bus(#[from] mantis_bus::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mantis_store::Error),
    /// Encoding or decoding a record failed.
    #[error(transparent)]
    Codec(#[from] mantis_codec::Error),
    /// Local I/O failed (binding a port, creating a directory).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
