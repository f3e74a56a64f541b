//! # mantis-ingestion
//!
//! The front door for sensor data. Readings arrive over REST (`POST /api/v1/sensors/data`, one
//! reading or a batch), from the device connectors (MQTT, Modbus TCP: `[[ingestion.sources]]`,
//! see `mantis-connectors`) or from in-process sources (the demo simulator); each is validated against its sensor's metadata and published on `sensor.raw`,
//! keyed by asset. Readings that are out of range or of low quality are published AND reported
//! on `data.quality.issues`; readings that cannot be accepted (unknown sensor, wrong unit, bad
//! timestamp) are refused with a problem body naming the field, and reported there too, so
//! nothing disappears silently.
//!
//! While the bus is unavailable, every source keeps being accepted: records go to the
//! disk-backed [`edge`] buffer (behind a [`breaker`] around the producer) and are drained in
//! order when the bus is back; REST answers 503 only when that buffer is full. History files
//! (CSV, JSON, NDJSON) are loaded from a directory or S3 by the resumable [`import`].
//!
//! Layout: `payload` (parsing the JSON and NDJSON shapes with precise field errors),
//! `validate` (checks against sensor metadata), `ingestor` (the [`Ingestor`] that validates
//! and publishes), `edge` (the edge buffer and its drainer), `breaker` (the circuit breaker),
//! `routes` (the readings HTTP API), `connectors` (the connectors' sink, their HTTP API under
//! `/api/v1/connectors`, and the sources added through it), `import` (batch import).
//!
//! A source in the configuration file:
//!
//! ```toml
//! [[ingestion.sources]]
//! kind = "mqtt"
//! name = "press-line"
//! host = "broker.plant.local"
//! topics = ["plant-a/+/+/+"]          # {site}/{device}/{sensor}/{type}
//!
//! [[ingestion.sources]]
//! kind = "modbus"
//! name = "plc-7"
//! host = "10.0.0.7"
//! poll_interval_ms = 500
//! points = [
//!   { sensor = "P7-PRS", address = 100, data_type = "f32", scale = 0.01 },
//!   { sensor = "P7-RUN", table = "coil", address = 3 },
//! ]
//!
//! [ingestion.edge_buffer]     # on by default in the cluster mode
//! max_bytes = 268435456
//!
//! [ingestion.circuit_breaker]
//! failure_threshold = 5
//! failure_window_ms = 10000
//! open_ms = 30000
//!
//! [ingestion.connector_leases]   # several replicas: each source read by one (see `leases`)
//! enabled = true
//! ```

pub mod breaker;
mod connectors;
pub mod edge;
pub mod import;
mod ingestor;
pub mod leases;
mod payload;
mod routes;
mod validate;

pub use breaker::{BreakerConfig, CircuitBreaker, CircuitState};
pub use connectors::IngestorSink;
pub use edge::{EdgeBuffer, EdgeConfig, EdgeError, EdgePublisher, EdgeStatus};
pub use ingestor::{Accepted, IngestError, Ingestor};
pub use leases::LeaseConfig;
pub use mantis_domain::{IncomingReading, SensorRef};
pub use payload::{parse_body, parse_ndjson};
pub use validate::{Rejection, Verdict};

use async_trait::async_trait;
use mantis_connectors::Connectors;
use mantis_runtime::{App, BusSettings, Error, Infra, Publisher, Result};
use mantis_telemetry::{Health, ReadinessCheck};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Configuration of the ingestion service (`[ingestion]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8001` (`mantis`, all services in one process:
    /// `127.0.0.1:8001`; this API takes no credentials).
    pub bind: String,
    /// Readings stamped further than this in the future are refused. Default 300 s.
    pub max_future_skew_secs: u64,
    /// Readings older than this are refused. Default 7 days (the retention of `sensor.raw`).
    pub max_age_secs: u64,
    /// Largest batch accepted in one request. Default 10 000.
    pub max_batch: usize,
    /// Device connectors (`[[ingestion.sources]]`, `kind = "mqtt"`, `"modbus"`, `"opcua"` or
    /// `"mtconnect"`; see
    /// `mantis_connectors::SourceConfig` for every key and default). Default: none.
    pub sources: Vec<mantis_connectors::SourceConfig>,
    /// The edge buffer (`[ingestion.edge_buffer]`, see [`EdgeConfig`]).
    pub edge_buffer: EdgeConfig,
    /// The circuit breaker around the producer (`[ingestion.circuit_breaker]`, see
    /// [`BreakerConfig`]).
    pub circuit_breaker: BreakerConfig,
    /// Several replicas sharing the sources, each read by one (`[ingestion.connector_leases]`,
    /// see [`leases`]). Off by default.
    pub connector_leases: LeaseConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8001".into(),
            max_future_skew_secs: 300,
            max_age_secs: 7 * 24 * 3600,
            max_batch: 10_000,
            sources: Vec::new(),
            edge_buffer: EdgeConfig::default(),
            circuit_breaker: BreakerConfig::default(),
            connector_leases: LeaseConfig::default(),
        }
    }
}

impl Config {
    /// Checks the service's own settings and its sources (what serde cannot: addresses,
    /// points, unique names); the message names the first bad one, so a value that would
    /// refuse every reading or spin the drainer stops the start instead.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("ingestion.{m}")));
        let mut names = std::collections::BTreeSet::new();
        for source in &self.sources {
            source
                .validate()
                .map_err(|e| Error::Config(format!("ingestion.sources: {e}")))?;
            if !names.insert(source.name()) {
                return bad(&format!(
                    "sources: two sources are named `{}`",
                    source.name()
                ));
            }
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1 (readings per request)");
        }
        if self.max_age_secs == 0 {
            return bad("max_age_secs must be at least 1 (0 refuses every reading)");
        }
        let edge = &self.edge_buffer;
        if edge.max_bytes == 0 || edge.segment_bytes == 0 {
            return bad("edge_buffer.max_bytes and segment_bytes must be at least 1");
        }
        if edge.retry_initial_ms == 0 || edge.retry_max_ms < edge.retry_initial_ms {
            return bad(
                "edge_buffer.retry_initial_ms must be at least 1 and retry_max_ms at least retry_initial_ms",
            );
        }
        if let Err(e) = self.connector_leases.validate() {
            return bad(&format!("connector_leases.{e}"));
        }
        let breaker = &self.circuit_breaker;
        if breaker.failure_threshold == 0 || breaker.failure_window_ms == 0 || breaker.open_ms == 0
        {
            return bad(
                "circuit_breaker.failure_threshold, failure_window_ms and open_ms must be at least 1",
            );
        }
        Ok(())
    }
}

/// Builds the ingestion service. The returned [`Ingestor`] handle lets in-process sources (the
/// demo simulator) use the same validation and publishing path as the REST API and the device
/// connectors, which run as the service's `connectors` worker. An invalid source in `config`
/// fails the build with a message naming the field, and so does an edge buffer that cannot be
/// opened (another process holds its directory).
pub async fn build_with_ingestor(infra: Infra, config: Config) -> Result<(App, Arc<Ingestor>)> {
    config.validate()?;
    let buffer = open_edge_buffer(&infra, &config.edge_buffer).await?;
    let edge = Arc::new(EdgePublisher::new(
        Publisher::new(infra.bus.clone(), infra.codec.clone(), "ingestion"),
        infra.bus.clone(),
        Arc::new(CircuitBreaker::new(config.circuit_breaker.clone())),
        buffer.clone(),
        config.edge_buffer.clone(),
    ));
    let ingestor = Arc::new(Ingestor::with_edge(&infra, config.clone(), edge.clone()));
    let sink = Arc::new(IngestorSink::new(ingestor.clone()));
    let connectors = if config.connector_leases.enabled {
        // Shared by the replicas: the one taking an MTConnect source over reads on from it.
        Connectors::with_cursor_store(
            sink,
            &infra.settings.data_dir,
            Arc::new(connectors::StoreCursors {
                store: infra.store.clone(),
                files: mantis_connectors::FileCursors::new(
                    infra.settings.data_dir.join("mtconnect"),
                ),
            }),
        )
    } else {
        Connectors::with_data_dir(sink, &infra.settings.data_dir)
    };
    for source in config.sources.iter().cloned() {
        connectors
            .add(source)
            .map_err(|e| Error::Config(format!("ingestion.sources: {e}")))?;
    }
    connectors::restore_added(&connectors, infra.store.as_ref(), false).await;
    let leases = config.connector_leases.enabled.then(|| {
        leases::Leases::new(
            connectors.clone(),
            infra.store.clone(),
            &config.connector_leases,
        )
    });
    let mut checks = infra.readiness_checks();
    // The cache is not used here: a Redis outage must not refuse devices.
    checks.retain(|c| c.name() != "redis");
    if let Some(buffer) = &buffer {
        // With an edge buffer the service takes readings while the bus is down: it is not
        // ready only when the buffer is full. The bus's state shows in the details.
        checks.retain(|c| c.name() != "bus");
        checks.push(Arc::new(EdgeCheck(buffer.clone())));
    }
    let health = Health::with_checks("ingestion", checks);
    edge.show_in(health.clone());
    let runner = connectors.clone();
    let app = App::new(
        "ingestion",
        &config.bind,
        routes::router(
            ingestor.clone(),
            config.max_batch,
            config.edge_buffer.retry_after_secs,
        )
        .merge(connectors::router(
            connectors,
            infra.store.clone(),
            leases.as_ref().map(|l| l.holder().to_owned()),
        )),
        health,
    )
    .await?
    .worker("connectors", move |token| async move {
        match leases {
            None => runner.run(token).await,
            Some(leases) => {
                // The leases are handed back once the sources have stopped.
                let (stopped, on_stop) = tokio::sync::oneshot::channel::<()>();
                let sources = async {
                    runner.run(token.clone()).await;
                    let _ = stopped.send(());
                };
                let keep = leases.run(token.clone(), async {
                    let _ = on_stop.await;
                });
                tokio::join!(sources, keep);
            }
        }
        Ok(())
    })
    .worker("edge-buffer", move |token| async move {
        let status = async {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => edge.tick(),
                }
            }
        };
        tokio::join!(edge.clone().drain(token.clone()), status);
        Ok(())
    });
    Ok((app, ingestor))
}

/// Opens the edge buffer when it is enabled (by default in the cluster mode only).
async fn open_edge_buffer(infra: &Infra, config: &EdgeConfig) -> Result<Option<Arc<EdgeBuffer>>> {
    let cluster = matches!(infra.settings.bus, BusSettings::Kafka { .. });
    if !config.enabled.unwrap_or(cluster) {
        return Ok(None);
    }
    let dir = config
        .dir
        .clone()
        .unwrap_or_else(|| infra.settings.data_dir.join("edge-buffer"));
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let buffer = EdgeBuffer::open(&dir, config.clone())
        .await
        .map_err(|e| Error::Config(format!("ingestion.edge_buffer: {e}")))?;
    tracing::info!(dir = %dir.display(), max_bytes = config.max_bytes, "edge buffer open");
    Ok(Some(Arc::new(buffer)))
}

/// Readiness of a service with an edge buffer: down only while the buffer is full.
struct EdgeCheck(Arc<EdgeBuffer>);

#[async_trait]
impl ReadinessCheck for EdgeCheck {
    fn name(&self) -> &str {
        "edge-buffer"
    }
    async fn check(&self) -> Result<(), String> {
        if self.0.is_full() {
            Err("the edge buffer is full".into())
        } else {
            Ok(())
        }
    }
}

/// Builds the ingestion service (see [`build_with_ingestor`]).
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    Ok(build_with_ingestor(infra, config).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_connectors::{DataType, MqttVersion, RegisterTable, SourceConfig};

    /// A change that makes a valid configuration invalid.
    type Spoil = fn(&mut Config);

    #[test]
    fn the_services_own_settings_are_checked_and_named_when_bad() {
        assert!(Config::default().validate().is_ok());
        let bad: [(&str, Spoil); 6] = [
            ("ingestion.max_batch", |c| c.max_batch = 0),
            ("ingestion.max_age_secs", |c| c.max_age_secs = 0),
            ("ingestion.edge_buffer.max_bytes", |c| {
                c.edge_buffer.segment_bytes = 0;
            }),
            ("ingestion.edge_buffer.retry_initial_ms", |c| {
                c.edge_buffer.retry_max_ms = 50;
            }),
            ("ingestion.circuit_breaker", |c| {
                c.circuit_breaker.failure_threshold = 0;
            }),
            ("ingestion.circuit_breaker", |c| {
                c.circuit_breaker.open_ms = 0
            }),
        ];
        for (named, spoil) in bad {
            let mut config = Config::default();
            spoil(&mut config);
            let message = config.validate().expect_err(named).to_string();
            assert!(message.contains(named), "{named}: {message}");
        }
    }

    const TOML: &str = r#"
[ingestion]
bind = "127.0.0.1:0"

[[ingestion.sources]]
kind = "mqtt"
name = "press-line"
host = "broker.plant.local"
version = "5"
topics = ["plant-a/+/+/+"]
sensors = { "plant-a/press-1/t/temperature" = "P1-TEMP" }

[ingestion.sources.tls]
ca_file = "/etc/mantis/ca.pem"

[[ingestion.sources]]
kind = "modbus"
name = "plc-7"
host = "10.0.0.7"
points = [
  { sensor = "P7-PRS", address = 100, data_type = "f32", word_order = "little", scale = 0.01 },
  { sensor = "P7-RUN", table = "coil", address = 3 },
]
"#;

    #[test]
    fn sources_are_read_from_the_configuration_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mantis.toml");
        std::fs::write(&path, TOML).expect("write");
        let config: Config =
            mantis_runtime::load_section(Some(&path), "ingestion").expect("valid configuration");
        assert_eq!(config.sources.len(), 2);
        match &config.sources[0] {
            SourceConfig::Mqtt(m) => {
                assert_eq!(m.version, MqttVersion::V5);
                assert_eq!(m.port(), 8883, "TLS defaults to 8883");
                assert_eq!(m.sensors["plant-a/press-1/t/temperature"], "P1-TEMP");
            }
            other => panic!("expected MQTT, got {other:?}"),
        }
        match &config.sources[1] {
            SourceConfig::Modbus(m) => {
                assert_eq!(m.points[0].data_type(), DataType::F32);
                assert_eq!(m.points[1].table, RegisterTable::Coil);
                assert_eq!(m.poll_interval_ms, 1000);
            }
            other => panic!("expected Modbus, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_in_a_source_is_one_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mantis.toml");
        std::fs::write(
            &path,
            "[[ingestion.sources]]\nkind = \"modbus\"\nname = \"p\"\nhost = \"h\"\npoll_every = 3\npoints = []\n",
        )
        .expect("write");
        let e = mantis_runtime::load_section::<Config>(Some(&path), "ingestion")
            .expect_err("unknown key");
        assert!(e.to_string().contains("poll_every"), "{e}");
    }
}
