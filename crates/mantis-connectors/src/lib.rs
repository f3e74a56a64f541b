//! # mantis-connectors
//!
//! Device connectors: MANTIS reads plant equipment where it is, over MQTT (rumqttc, 3.1.1 and
//! 5, TLS with client certificates, persistent sessions, manual acknowledgements), Modbus TCP
//! (tokio-modbus, polled register maps with block reads), OPC UA (async-opcua client:
//! subscriptions with sampling intervals and deadbands, security policies None and
//! Basic256Sha256, anonymous or user name/password, browsing) and MTConnect (an agent's
//! `/probe`, `/current` and `/sample` over HTTP, with sequence tracking). Each configured source runs as a
//! supervised task with a status, a watchdog and metrics, and hands its readings to a
//! [`ReadingSink`]. The crate knows nothing of the ingestion service: the service implements
//! the sink with its validator and publisher, so every source goes through the same checks.
//!
//! Layout:
//! - `config`: [`SourceConfig`] (`[[ingestion.sources]]`), validated with field pointers;
//! - `sink`: the [`ReadingSink`] trait and its acknowledgement contract;
//! - `runtime`: [`Connectors`], the registry and the supervisor (back-off, watchdog);
//! - `status`: [`ConnectorStatus`] and the messages-per-second window;
//! - `mqtt`, `modbus`, `opcua`, `mtconnect`: the protocols (each with its pure parts,
//!   `payload`/`topic`, `decode`/`plan`, `node`, `xml`, unit-tested beside them);
//! - `metrics`: the `mantis_connector_*` metrics, defined once.
//!
//! ```no_run
//! use async_trait::async_trait;
//! use mantis_connectors::{
//!     Connectors, Delivered, ReadingSink, SinkError, SourceConfig, Unreadable,
//! };
//! use mantis_domain::{IncomingReading, SourceProtocol};
//! use std::sync::Arc;
//!
//! struct Print;
//!
//! #[async_trait]
//! impl ReadingSink for Print {
//!     async fn deliver(&self, batch: Vec<IncomingReading>, source: SourceProtocol)
//!         -> Result<Delivered, SinkError> {
//!         println!("{} readings over {source}", batch.len());
//!         Ok(Delivered { accepted: batch.len(), refused: 0 })
//!     }
//!
//!     async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> Result<(), SinkError> {
//!         for m in messages {
//!             eprintln!("{} sent no reading on {}: {}", m.connector, m.origin, m.reason);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), mantis_connectors::Error> {
//! let source: SourceConfig = serde_json::from_str(r#"{
//!     "kind": "mqtt", "name": "line-1", "host": "127.0.0.1",
//!     "topics": ["plant-a/+/+/+"]
//! }"#).expect("valid JSON");
//! let connectors = Connectors::new(Arc::new(Print));
//! connectors.add(source)?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! connectors.run(shutdown).await;
//! # Ok(()) }
//! ```

mod config;
mod metrics;
mod modbus;
mod mqtt;
mod mtconnect;
mod opcua;
mod runtime;
mod sink;
mod status;

pub use config::{
    ConfigError, DataType, DeadbandType, ModbusConfig, MqttConfig, MqttTls, MqttVersion,
    MtConnectConfig, MtConnectItem, OpcUaConfig, OpcUaNode, OpcUaSecurityMode, OpcUaSecurityPolicy,
    Order, RegisterPoint, RegisterTable, Secret, SourceConfig,
};
pub use mqtt::tls::TlsSetupError;
pub use mtconnect::{CursorStore, FileCursors};
pub use runtime::{BrowseError, BrowsedNode, Connectors, Prepared};
pub use sink::{Delivered, ReadingSink, SinkError, Unreadable};
pub use status::{ConnectorState, ConnectorStatus, RATE_WINDOW_SECS};

/// Errors of the connector registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A source of that name exists already.
    #[error("a source named `{0}` exists already")]
    Duplicate(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
