//! The simulated devices of `mantis demo`: the plant's values served over real protocols, so
//! they reach MANTIS through the same connectors as a real plant's.
//!
//! - an OPC UA server (async-opcua, in-process): the motors and fans, one variable per sensor
//!   (`nsu=urn:mantis:demo-plant;s=<sensor code>`), each sample written with its timestamp;
//! - a Modbus TCP server (tokio-modbus, in-process): the pumps, one `f32` (two holding
//!   registers) per sensor. Modbus carries no timestamps: the connector stamps each poll, so
//!   it polls clock-aligned, half a sample interval after each sampling instant (the
//!   registers hold that sample then); [`Devices::stamp_delay`] tells the simulator, which
//!   stamps the pumps' replayed history the same way;
//! - an MQTT publisher (rumqttc) to the broker of `[demo.devices] mqtt_broker`: the conveyors,
//!   one JSON batch per machine and sample on `mantis-demo/<machine>/all/batch`. Without a
//!   reachable broker the conveyors stay on the in-process path (logged).
//!
//! The simulator's wear model stays the single source of values: it hands each sample to
//! [`Devices::publish`], which writes it where the machine's protocol is served. The matching
//! `[[ingestion.sources]]` come from [`Devices::sources`]. Until the simulator goes live (after
//! the history replay, which stays in-process because it is back-dated), the servers answer
//! "not ready" (OPC UA `BadWaitingForInitialData`, Modbus exception 0x06 "server device busy"):
//! the connectors turn that into quality-0 readings, which are stored but never windowed.

use mantis_connectors::SourceConfig;
use mantis_domain::IncomingReading;
use mantis_runtime::{Error, Result};
use opcua::server::address_space::VariableBuilder;
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{
    InMemoryNodeManager, SimpleNodeManager, SimpleNodeManagerImpl, simple_node_manager,
};
use opcua::server::{ServerBuilder, SubscriptionCache};
use opcua::types::{DataTypeId, DataValue, DateTime, NodeId, StatusCode, Variant};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Namespace of the demo plant's OPC UA variables.
pub const OPCUA_NAMESPACE: &str = "urn:mantis:demo-plant";
/// Topic prefix of the demo's MQTT publisher.
const MQTT_PREFIX: &str = "mantis-demo";

/// The simulated devices (`[demo.devices]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesConfig {
    /// Serve the machines over OPC UA, Modbus TCP and MQTT, read back by the connectors.
    /// Default `true`; `false`: every reading goes in-process.
    pub enabled: bool,
    /// Address the simulated servers listen on (and the connectors connect to). Default
    /// `127.0.0.1`.
    pub host: String,
    /// Port of the OPC UA server (motors, fans). Default 0: a free port.
    pub opcua_port: u16,
    /// Port of the Modbus TCP server (pumps). Default 0: a free port.
    pub modbus_port: u16,
    /// MQTT broker (`host:port`) the conveyors publish to. Default `127.0.0.1:1883`; empty:
    /// none. When it cannot be reached at start, the conveyors stay in-process.
    pub mqtt_broker: String,
    /// Monitored items the OPC UA server takes per subscription; 0: its default (1 000). Not
    /// configurable: tests use it to play a server with a small limit.
    #[serde(skip)]
    pub opcua_items_per_subscription: usize,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            host: "127.0.0.1".into(),
            opcua_port: 0,
            modbus_port: 0,
            mqtt_broker: "127.0.0.1:1883".into(),
            opcua_items_per_subscription: 0,
        }
    }
}

/// Which protocol serves a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The OPC UA server.
    OpcUa,
    /// The Modbus TCP server.
    Modbus,
    /// The MQTT publisher.
    Mqtt,
}

/// The protocol a machine is served over, by asset type.
pub fn protocol_of(asset_type: &str) -> Protocol {
    match asset_type {
        "pump" => Protocol::Modbus,
        "conveyor" => Protocol::Mqtt,
        _ => Protocol::OpcUa,
    }
}

/// One served machine: its code and its sensors' codes and units, in channel order.
#[derive(Clone, Debug)]
pub struct ServedMachine {
    /// The machine's code (`MTR-001`).
    pub code: String,
    /// (sensor code, unit).
    pub sensors: Vec<(String, String)>,
    /// The protocol it is served over.
    pub protocol: Protocol,
}

struct OpcUaSim {
    manager: Arc<InMemoryNodeManager<SimpleNodeManagerImpl>>,
    subscriptions: Arc<SubscriptionCache>,
    ns: u16,
}

#[derive(Clone)]
struct ModbusSim {
    /// Holding registers; `None` until the simulator first wrote one (a read of such a
    /// register is answered "server device busy": before its first sample, a pump has no
    /// value to give, and a zero would be read as 0 A, a spike on a healthy machine).
    words: Arc<Mutex<Vec<Option<u16>>>>,
    ready: Arc<AtomicBool>,
}

struct MqttSim {
    client: rumqttc::AsyncClient,
}

/// The running simulated devices.
pub struct Devices {
    opcua: Option<OpcUaSim>,
    modbus: Option<ModbusSim>,
    mqtt: Option<MqttSim>,
    /// Machine code → (protocol, first register/index).
    routes: HashMap<String, (Protocol, usize)>,
    sources: Vec<SourceConfig>,
    /// How long after its sampling instant a polled (Modbus) reading is stamped.
    poll_delay: Duration,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("routes", &self.routes)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn bind(host: &str, port: u16, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| {
            Error::Config(format!(
                "demo.devices: cannot listen for the {what} on {host}:{port}: {e}"
            ))
        })
}

impl Devices {
    /// Starts the servers (and the MQTT publisher when its broker answers) for `machines`,
    /// until `shutdown`. Machines whose protocol is not available stay in-process.
    /// The simulator samples every `sample_interval`, at whole multiples of it since the
    /// epoch.
    pub async fn start(
        config: &DevicesConfig,
        machines: &[ServedMachine],
        sample_interval: Duration,
        data_dir: &Path,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        let poll_ms = u64::try_from(sample_interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(10);
        let mut devices = Devices {
            opcua: None,
            modbus: None,
            mqtt: None,
            routes: HashMap::new(),
            sources: Vec::new(),
            poll_delay: Duration::from_millis(poll_ms / 2),
        };
        if !config.enabled {
            return Ok(devices);
        }
        let of = |p: Protocol| machines.iter().filter(move |m| m.protocol == p);

        // OPC UA.
        let opcua_machines: Vec<&ServedMachine> = of(Protocol::OpcUa).collect();
        if !opcua_machines.is_empty() {
            let listener = bind(&config.host, config.opcua_port, "OPC UA server").await?;
            let port = local_port(&listener)?;
            let pki = data_dir.join("demo").join("opcua-server-pki");
            let (sim, server) = opcua_server(config, port, &pki, &opcua_machines, &shutdown)?;
            tokio::spawn(async move {
                if let Err(e) = server.run_with(listener).await {
                    tracing::error!(error = %e, "demo OPC UA server stopped");
                }
            });
            let mut nodes = Vec::new();
            for (k, m) in opcua_machines.iter().enumerate() {
                devices.routes.insert(m.code.clone(), (Protocol::OpcUa, k));
                for (code, unit) in &m.sensors {
                    nodes.push(serde_json::json!({
                        "sensor": code,
                        "node_id": format!("nsu={OPCUA_NAMESPACE};s={code}"),
                        "unit": unit,
                    }));
                }
            }
            devices.sources.push(source(serde_json::json!({
                "kind": "opcua",
                "name": "demo-opcua",
                "endpoint": format!("opc.tcp://{}:{port}/", config.host),
                "pki_dir": data_dir.join("opcua").join("pki"),
                "publishing_interval_ms": 250,
                "sampling_interval_ms": 100,
                "queue_size": 20,
                "keep_alive_count": 20,
                "silence_timeout_secs": 30,
                "reconnect_min_ms": 200,
                "reconnect_max_ms": 2000,
                "nodes": nodes,
            }))?);
            devices.opcua = Some(sim);
            tracing::info!(port, machines = ?opcua_machines.iter().map(|m| &m.code).collect::<Vec<_>>(), "demo OPC UA server listening");
        }

        // Modbus TCP.
        let modbus_machines: Vec<&ServedMachine> = of(Protocol::Modbus).collect();
        if !modbus_machines.is_empty() {
            let listener = bind(&config.host, config.modbus_port, "Modbus TCP server").await?;
            let port = local_port(&listener)?;
            let registers: usize = modbus_machines.iter().map(|m| m.sensors.len() * 2).sum();
            let sim = ModbusSim {
                words: Arc::new(Mutex::new(vec![None; registers])),
                ready: Arc::new(AtomicBool::new(false)),
            };
            let mut points = Vec::new();
            let mut address = 0usize;
            for m in &modbus_machines {
                devices
                    .routes
                    .insert(m.code.clone(), (Protocol::Modbus, address));
                for (code, unit) in &m.sensors {
                    points.push(serde_json::json!({
                        "sensor": code, "address": address, "data_type": "f32", "unit": unit,
                    }));
                    address += 2;
                }
            }
            let served = sim.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let server = tokio_modbus::server::tcp::Server::new(listener);
                let service = Arc::new(served);
                let new_service = move |_addr: SocketAddr| Ok(Some(service.clone()));
                let on_connected = |stream, addr| {
                    let new_service = new_service.clone();
                    async move {
                        tokio_modbus::server::tcp::accept_tcp_connection(stream, addr, new_service)
                    }
                };
                let on_error =
                    |e: std::io::Error| tracing::debug!(error = %e, "demo Modbus connection ended");
                if let Err(e) = server
                    .serve_until(
                        &on_connected,
                        on_error,
                        async move { stop.cancelled().await },
                    )
                    .await
                {
                    tracing::error!(error = %e, "demo Modbus server stopped");
                }
            });
            devices.sources.push(source(serde_json::json!({
                "kind": "modbus",
                "name": "demo-modbus",
                "host": config.host,
                "port": port,
                "poll_interval_ms": poll_ms,
                "poll_offset_ms": poll_ms / 2,
                "silence_timeout_secs": 30,
                "reconnect_min_ms": 200,
                "reconnect_max_ms": 2000,
                "points": points,
            }))?);
            devices.modbus = Some(sim);
            tracing::info!(port, machines = ?modbus_machines.iter().map(|m| &m.code).collect::<Vec<_>>(), "demo Modbus TCP server listening");
        }

        // MQTT, when a broker answers.
        let mqtt_machines: Vec<&ServedMachine> = of(Protocol::Mqtt).collect();
        let broker = config.mqtt_broker.trim();
        if !mqtt_machines.is_empty() {
            let codes: Vec<&String> = mqtt_machines.iter().map(|m| &m.code).collect();
            match mqtt_publisher(broker, data_dir, &shutdown).await {
                Ok((client, host, port, client_id)) => {
                    for (k, m) in mqtt_machines.iter().enumerate() {
                        devices.routes.insert(m.code.clone(), (Protocol::Mqtt, k));
                    }
                    devices.sources.push(source(serde_json::json!({
                        "kind": "mqtt",
                        "name": "demo-mqtt",
                        "host": host,
                        "port": port,
                        "client_id": client_id,
                        "topics": [format!("{MQTT_PREFIX}/+/+/+")],
                        "silence_timeout_secs": 30,
                        "reconnect_min_ms": 200,
                        "reconnect_max_ms": 2000,
                    }))?);
                    devices.mqtt = Some(MqttSim { client });
                    tracing::info!(broker, machines = ?codes, "demo MQTT publisher connected");
                }
                Err(why) => {
                    tracing::warn!(broker, machines = ?codes, %why, "no MQTT broker for the demo: these machines stay on the in-process path");
                }
            }
        }
        Ok(devices)
    }

    /// The `[[ingestion.sources]]` reading the simulated devices.
    pub fn sources(&self) -> Vec<SourceConfig> {
        self.sources.clone()
    }

    /// The protocol `machine` is served over, `None` when it is fed in-process.
    pub fn route(&self, machine: &str) -> Option<Protocol> {
        self.routes.get(machine).map(|(p, _)| *p)
    }

    /// How much later than its sampling instant a live reading of `machine` is stamped: half a
    /// sample interval for the polled Modbus machines, nothing for the others (OPC UA and MQTT
    /// carry the sample's own timestamp). The replayed history is stamped the same way, so
    /// live windows are resampled exactly as the ones the models learned from.
    pub fn stamp_delay(&self, machine: &str) -> Duration {
        match self.route(machine) {
            Some(Protocol::Modbus) => self.poll_delay,
            _ => Duration::ZERO,
        }
    }

    /// The servers answer from now on (the simulator is live).
    pub fn go_live(&self) {
        if let Some(m) = &self.modbus {
            m.ready.store(true, Ordering::SeqCst);
        }
    }

    /// Serves one sample of `machine` (its readings in channel order, with their sensor codes).
    /// Returns `false` when the machine is fed in-process.
    pub async fn publish(&self, machine: &str, readings: &[(String, IncomingReading)]) -> bool {
        let Some(&(protocol, at)) = self.routes.get(machine) else {
            return false;
        };
        match protocol {
            Protocol::OpcUa => {
                let Some(o) = &self.opcua else { return false };
                let values: Vec<(NodeId, DataValue)> = readings
                    .iter()
                    .map(|(code, r)| {
                        let t = DateTime::from(r.timestamp);
                        (
                            NodeId::new(o.ns, code.as_str()),
                            DataValue {
                                value: Some(Variant::Double(r.value)),
                                status: Some(StatusCode::Good),
                                source_timestamp: Some(t),
                                source_picoseconds: None,
                                server_timestamp: Some(t),
                                server_picoseconds: None,
                            },
                        )
                    })
                    .collect();
                if let Err(e) = o.manager.set_values(
                    &o.subscriptions,
                    values.iter().map(|(id, v)| (id, None, v.clone())),
                ) {
                    tracing::warn!(%machine, error = %e, "demo OPC UA server: values not set");
                }
                true
            }
            Protocol::Modbus => {
                let Some(m) = &self.modbus else { return false };
                let mut words = lock(&m.words);
                for (i, (_, r)) in readings.iter().enumerate() {
                    let bits = (r.value as f32).to_bits();
                    let a = at + 2 * i;
                    if let Some(w) = words.get_mut(a..a + 2) {
                        w[0] = Some((bits >> 16) as u16);
                        w[1] = Some((bits & 0xFFFF) as u16);
                    }
                }
                true
            }
            Protocol::Mqtt => {
                let Some(m) = &self.mqtt else { return false };
                let batch: Vec<serde_json::Value> = readings
                    .iter()
                    .map(|(code, r)| {
                        serde_json::json!({
                            "timestamp": r.timestamp.timestamp_millis(),
                            "sensorCode": code,
                            "value": r.value,
                            "unit": r.unit,
                        })
                    })
                    .collect();
                let payload = serde_json::Value::Array(batch).to_string();
                if let Err(e) = m.client.try_publish(
                    format!("{MQTT_PREFIX}/{machine}/all/batch"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    payload,
                ) {
                    tracing::warn!(%machine, error = %e, "demo MQTT publisher: sample not sent");
                }
                true
            }
        }
    }
}

fn local_port(l: &tokio::net::TcpListener) -> Result<u16> {
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Other(format!("demo devices: {e}")))
}

fn source(v: serde_json::Value) -> Result<SourceConfig> {
    serde_json::from_value(v).map_err(|e| Error::Other(format!("demo source: {e}")))
}

/// Builds the OPC UA server (not yet running) with one variable per sensor, not ready.
fn opcua_server(
    config: &DevicesConfig,
    port: u16,
    pki: &Path,
    machines: &[&ServedMachine],
    shutdown: &CancellationToken,
) -> Result<(OpcUaSim, opcua::server::Server)> {
    let mut builder = ServerBuilder::new_anonymous("MANTIS demo plant");
    if config.opcua_items_per_subscription > 0 {
        builder
            .limits_mut()
            .subscriptions
            .max_monitored_items_per_sub = config.opcua_items_per_subscription;
    }
    let (server, handle) = builder
        .application_uri("urn:mantis:demo-plant:server")
        .product_uri("urn:mantis")
        .host(&config.host)
        .port(port)
        // Its certificate (made once, kept under the data directory) lets secured clients in.
        .create_sample_keypair(true)
        .pki_dir(pki)
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: OPCUA_NAMESPACE.to_owned(),
                ..Default::default()
            },
            "demo-plant",
        ))
        .token(shutdown.child_token())
        .build()
        .map_err(|e| Error::Other(format!("demo OPC UA server: {e}")))?;
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or_else(|| Error::Other("demo OPC UA server: no node manager".into()))?;
    let ns = handle
        .get_namespace_index(OPCUA_NAMESPACE)
        .ok_or_else(|| Error::Other("demo OPC UA server: no namespace".into()))?;
    let subscriptions = handle.subscriptions().clone();
    let mut ids = Vec::new();
    {
        let mut space = manager.address_space().write();
        let plant = NodeId::new(ns, "DemoPlant");
        space.add_folder(
            &plant,
            "DemoPlant",
            "Demo plant",
            &NodeId::objects_folder_id(),
        );
        for m in machines {
            let machine = NodeId::new(ns, m.code.as_str());
            space.add_folder(&machine, m.code.as_str(), m.code.as_str(), &plant);
            for (code, _) in &m.sensors {
                let id = NodeId::new(ns, code.as_str());
                VariableBuilder::new(&id, code.as_str(), code.as_str())
                    .data_type(DataTypeId::Double)
                    .value(0.0)
                    .organized_by(&machine)
                    .insert(&mut *space);
                ids.push(id);
            }
        }
    }
    // Not ready until the simulator is live.
    let waiting = DataValue {
        value: None,
        status: Some(StatusCode::BadWaitingForInitialData),
        source_timestamp: None,
        source_picoseconds: None,
        server_timestamp: Some(DateTime::now()),
        server_picoseconds: None,
    };
    manager
        .set_values(
            &subscriptions,
            ids.iter().map(|id| (id, None, waiting.clone())),
        )
        .map_err(|e| Error::Other(format!("demo OPC UA server: {e}")))?;
    Ok((
        OpcUaSim {
            manager,
            subscriptions,
            ns,
        },
        server,
    ))
}

/// Connects the MQTT publisher when `broker` answers within a second: (client, host, port,
/// the ingestion source's client id).
async fn mqtt_publisher(
    broker: &str,
    data_dir: &Path,
    shutdown: &CancellationToken,
) -> std::result::Result<(rumqttc::AsyncClient, String, u16, String), String> {
    if broker.is_empty() {
        return Err("no broker configured (demo.devices.mqtt_broker is empty)".into());
    }
    let (host, port) = broker
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        .ok_or_else(|| format!("`{broker}` is not host:port"))?;
    match tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("{broker}: {e}")),
        Err(_) => return Err(format!("{broker}: no answer within 1 s")),
    }
    // One client id per data directory, so two demos on one broker do not share sessions.
    let tag = mantis_domain::deterministic_uuid("demo-mqtt", &[&data_dir.display().to_string()])
        .simple()
        .to_string();
    let tag = &tag[..12];
    let mut options =
        rumqttc::MqttOptions::new(format!("mantis-demo-plant-{tag}"), host.clone(), port);
    options.set_keep_alive(Duration::from_secs(15));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 1000);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                e = events.poll() => match e {
                    Ok(_) => failing = false,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "demo MQTT publisher: connection lost; retrying");
                        }
                        failing = true;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    });
    Ok((client, host, port, format!("mantis-demo-ingestion-{tag}")))
}

impl tokio_modbus::server::Service for ModbusSim {
    type Request = tokio_modbus::Request<'static>;
    type Response = tokio_modbus::Response;
    type Exception = tokio_modbus::ExceptionCode;
    type Future = std::future::Ready<std::result::Result<Self::Response, Self::Exception>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        use tokio_modbus::{ExceptionCode, Request, Response};
        if !self.ready.load(Ordering::SeqCst) {
            return std::future::ready(Err(ExceptionCode::ServerDeviceBusy));
        }
        let words = lock(&self.words);
        let read = |addr: u16, count: u16| -> std::result::Result<Vec<u16>, ExceptionCode> {
            let (a, n) = (usize::from(addr), usize::from(count));
            words
                .get(a..a + n)
                .ok_or(ExceptionCode::IllegalDataAddress)?
                .iter()
                .map(|w| w.ok_or(ExceptionCode::ServerDeviceBusy))
                .collect()
        };
        std::future::ready(match req {
            Request::ReadHoldingRegisters(addr, count) => {
                read(addr, count).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(addr, count) => {
                read(addr, count).map(Response::ReadInputRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use mantis_connectors::{Connectors, Delivered, ReadingSink, SinkError, Unreadable};
    use mantis_domain::{Quality, SensorRef, SourceProtocol};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(IncomingReading, SourceProtocol)>>);

    /// A register the simulator has not written yet has no value: live or not, a read of it is
    /// "server device busy" (a zero would be a 0 A spike on a healthy pump).
    #[tokio::test]
    async fn registers_not_written_yet_are_busy_not_zero() {
        use tokio_modbus::server::Service;
        use tokio_modbus::{ExceptionCode, Request, Response};
        let sim = ModbusSim {
            words: Arc::new(Mutex::new(vec![None; 4])),
            ready: Arc::new(AtomicBool::new(true)),
        };
        let read = |sim: &ModbusSim| sim.call(Request::ReadHoldingRegisters(0, 2));
        assert_eq!(read(&sim).await, Err(ExceptionCode::ServerDeviceBusy));
        lock(&sim.words)[0] = Some(0x41F0);
        assert_eq!(
            read(&sim).await,
            Err(ExceptionCode::ServerDeviceBusy),
            "half a float"
        );
        lock(&sim.words)[1] = Some(0);
        assert_eq!(
            read(&sim).await,
            Ok(Response::ReadHoldingRegisters(vec![0x41F0, 0]))
        );
        assert_eq!(
            sim.call(Request::ReadHoldingRegisters(3, 2)).await,
            Err(ExceptionCode::IllegalDataAddress)
        );
    }

    #[async_trait]
    impl ReadingSink for Recorder {
        async fn deliver(
            &self,
            batch: Vec<IncomingReading>,
            source: SourceProtocol,
        ) -> std::result::Result<Delivered, SinkError> {
            let n = batch.len();
            lock(&self.0).extend(batch.into_iter().map(|r| (r, source)));
            Ok(Delivered {
                accepted: n,
                refused: 0,
            })
        }

        async fn keep_unreadable(
            &self,
            messages: Vec<Unreadable>,
        ) -> std::result::Result<(), SinkError> {
            // The simulated devices send numbers only: anything here is refused (and the
            // connector retries, so the tests waiting for readings fail).
            Err(SinkError::Unavailable(format!(
                "the demo devices send readings only, got {messages:?}"
            )))
        }
    }

    fn machine(code: &str, protocol: Protocol) -> ServedMachine {
        ServedMachine {
            code: code.into(),
            sensors: ["VIB", "TMP"]
                .iter()
                .map(|s| (format!("{code}-{s}"), "mm/s".to_owned()))
                .collect(),
            protocol,
        }
    }

    fn sample(
        code: &str,
        at: chrono::DateTime<chrono::Utc>,
        v: f64,
    ) -> Vec<(String, IncomingReading)> {
        ["VIB", "TMP"]
            .iter()
            .map(|s| {
                let c = format!("{code}-{s}");
                (
                    c.clone(),
                    IncomingReading {
                        timestamp: at,
                        asset_id: None,
                        sensor: SensorRef::Code(c),
                        value: v,
                        unit: Some("mm/s".into()),
                        quality: Quality::GOOD,
                        metadata: Default::default(),
                    },
                )
            })
            .collect()
    }

    /// The devices of `machines` (no MQTT broker) read by their connectors into a recorder,
    /// until `shutdown`.
    struct Plant {
        _dir: tempfile::TempDir,
        devices: Devices,
        sink: Arc<Recorder>,
        connectors: Connectors,
        task: tokio::task::JoinHandle<()>,
    }

    async fn plant(machines: &[ServedMachine], shutdown: &CancellationToken) -> Plant {
        plant_with(machines, shutdown, 0).await
    }

    /// The plant, its OPC UA server taking `items_per_subscription` (0: its default).
    async fn plant_with(
        machines: &[ServedMachine],
        shutdown: &CancellationToken,
        items_per_subscription: usize,
    ) -> Plant {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = DevicesConfig {
            mqtt_broker: String::new(),
            opcua_items_per_subscription: items_per_subscription,
            ..DevicesConfig::default()
        };
        let devices = Devices::start(
            &config,
            machines,
            Duration::from_secs(1),
            dir.path(),
            shutdown.clone(),
        )
        .await
        .expect("devices start");
        let sink = Arc::new(Recorder::default());
        let connectors = Connectors::with_data_dir(sink.clone(), dir.path());
        for s in devices.sources() {
            connectors.add(s).expect("valid demo source");
        }
        let runner = connectors.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { runner.run(token).await });
        Plant {
            _dir: dir,
            devices,
            sink,
            connectors,
            task,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_a_thousand_opcua_nodes_changing_at_once_all_arrive() {
        // 650 machines × 2 sensors: more monitored items than one call creates and than the
        // server takes in one subscription (async-opcua: 1 000), and publish responses that
        // must be split (each sample changes every node at once).
        every_change_arrives_once(650, 0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_taking_fewer_items_per_subscription_than_one_call_gets_them_all() {
        // 80 nodes, a server that takes 30 per subscription: refused calls are halved until
        // they fill what room is left, then new subscriptions take the rest.
        every_change_arrives_once(40, 30).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_beyond_what_the_server_takes_are_bad_quality_with_the_reason() {
        // 16 nodes, one per subscription, and async-opcua opens at most 10 subscriptions per
        // session: 10 monitored, each of the 6 others one bad-quality reading saying why.
        let shutdown = CancellationToken::new();
        let machines: Vec<ServedMachine> = (0..8)
            .map(|m| machine(&format!("MTR-{m:03}"), Protocol::OpcUa))
            .collect();
        let Plant {
            _dir,
            sink,
            connectors,
            task,
            ..
        } = plant_with(&machines, &shutdown, 1).await;
        let not_monitored = || -> Vec<String> {
            lock(&sink.0)
                .iter()
                .filter(|(r, _)| r.quality.get() == 0)
                .filter_map(|(r, _)| {
                    r.metadata
                        .get(IncomingReading::QUALITY_REASON)
                        .filter(|why| why.contains("not monitored"))
                        .cloned()
                })
                .collect()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while not_monitored().len() < 6 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nodes left out not reported within 60 s: {:?}",
                connectors.status("demo-opcua")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = connectors.status("demo-opcua").expect("source");
        assert_eq!(status.active.len(), 10, "{status:?}");
        let reasons = not_monitored();
        assert_eq!(
            reasons.len(),
            6,
            "one bad reading per node left out: {reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .all(|why| why.contains("no more subscriptions")),
            "{reasons:?}"
        );
        shutdown.cancel();
        let _ = task.await;
    }

    /// `machines` OPC UA machines of 2 sensors, served by a server that takes
    /// `items_per_subscription` (0: its default) monitored items per subscription: every node
    /// is monitored and every change of three samples arrives once.
    async fn every_change_arrives_once(machines: usize, items_per_subscription: usize) {
        let shutdown = CancellationToken::new();
        let machines: Vec<ServedMachine> = (0..machines)
            .map(|m| machine(&format!("MTR-{m:03}"), Protocol::OpcUa))
            .collect();
        let nodes = 2 * machines.len();
        let Plant {
            _dir,
            devices,
            sink,
            connectors,
            task,
        } = plant_with(&machines, &shutdown, items_per_subscription).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while connectors
            .status("demo-opcua")
            .is_none_or(|s| s.active.len() < nodes)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not every node monitored within 60 s: {:?}",
                connectors.status("demo-opcua").map(|s| (
                    s.state.as_str(),
                    s.active.len(),
                    s.last_error
                ))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        devices.go_live();
        let t0 = chrono::Utc::now() - chrono::Duration::seconds(10);
        for i in 0..3 {
            let at = t0 + chrono::Duration::seconds(i);
            for m in &machines {
                assert!(
                    devices
                        .publish(&m.code, &sample(&m.code, at, i as f64))
                        .await
                );
            }
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        let good = || {
            lock(&sink.0)
                .iter()
                .filter(|(r, _)| r.quality == Quality::GOOD)
                .count()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while good() < 3 * nodes && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = connectors.status("demo-opcua").expect("source");
        let summary = format!(
            "{} {}, {} monitored, last error {:?}",
            status.state.as_str(),
            status.endpoint,
            status.active.len(),
            status.last_error
        );
        assert_eq!(
            good(),
            3 * nodes,
            "every change of every node, once: {summary}"
        );
        assert_eq!(status.reconnects, 0, "the connection held: {summary}");
        shutdown.cancel();
        let _ = task.await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_reach_the_connectors_once_each_over_opcua_and_modbus() {
        let shutdown = CancellationToken::new();
        let machines = [
            machine("MTR-9", Protocol::OpcUa),
            machine("PMP-9", Protocol::Modbus),
            machine("CNV-9", Protocol::Mqtt),
        ];
        let Plant {
            _dir,
            devices,
            sink,
            connectors,
            task,
        } = plant(&machines, &shutdown).await;
        assert_eq!(devices.route("MTR-9"), Some(Protocol::OpcUa));
        assert_eq!(devices.route("PMP-9"), Some(Protocol::Modbus));
        assert_eq!(devices.route("CNV-9"), None, "no broker: in-process");
        assert_eq!(devices.stamp_delay("PMP-9"), Duration::from_millis(500));
        assert_eq!(devices.stamp_delay("MTR-9"), Duration::ZERO);
        assert_eq!(devices.stamp_delay("CNV-9"), Duration::ZERO);
        let good = |code: &str| -> Vec<IncomingReading> {
            lock(&sink.0)
                .iter()
                .filter(|(r, _)| {
                    r.sensor == SensorRef::Code(code.into()) && r.quality == Quality::GOOD
                })
                .map(|(r, _)| r.clone())
                .collect()
        };
        // Not live yet: the devices answer, but nothing good comes out. (A subscription only
        // sees the changes after it was made: wait for it before the first sample.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let s = connectors.statuses();
            let opcua_up = s
                .iter()
                .any(|c| c.name == "demo-opcua" && !c.active.is_empty());
            let modbus_polled = s
                .iter()
                .any(|c| c.name == "demo-modbus" && c.messages_total > 0);
            if opcua_up && modbus_polled {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "devices not read within 60 s: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(good("MTR-9-VIB").is_empty() && good("PMP-9-VIB").is_empty());
        devices.go_live();
        let t0 = chrono::Utc::now() - chrono::Duration::seconds(10);
        for i in 0..5 {
            let at = t0 + chrono::Duration::seconds(i);
            assert!(
                devices
                    .publish("MTR-9", &sample("MTR-9", at, i as f64))
                    .await
            );
            assert!(
                devices
                    .publish("PMP-9", &sample("PMP-9", at, i as f64))
                    .await
            );
            assert!(!devices.publish("CNV-9", &sample("CNV-9", at, 0.0)).await);
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while good("MTR-9-TMP").len() < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // OPC UA: each sample exactly once, with the simulator's timestamp.
        for code in ["MTR-9-VIB", "MTR-9-TMP"] {
            let got = good(code);
            let values: Vec<f64> = got.iter().map(|r| r.value).collect();
            assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0], "{code}");
            assert!(
                got.iter().enumerate().all(|(i, r)| (r.timestamp
                    - (t0 + chrono::Duration::seconds(i as i64)))
                .num_milliseconds()
                .abs()
                    < 1),
                "{code}: source timestamps kept"
            );
        }
        // Modbus: polled, so the last value is there; the polls are clock-aligned, half a
        // sample interval after each whole second (a loaded machine may delay a few).
        let polled = good("PMP-9-VIB");
        assert!(polled.iter().any(|r| r.value == 4.0), "modbus");
        let phases: Vec<i64> = polled
            .iter()
            .map(|r| r.timestamp.timestamp_millis().rem_euclid(1000))
            .collect();
        assert!(
            phases.iter().filter(|p| (500..750).contains(*p)).count() * 4 >= phases.len() * 3,
            "Modbus polls at whole seconds + 500 ms: {phases:?}"
        );
        let statuses = connectors.statuses();
        assert!(
            statuses.iter().all(|s| s.messages_total > 0),
            "{statuses:?}"
        );
        shutdown.cancel();
        let _ = task.await;
    }
}
