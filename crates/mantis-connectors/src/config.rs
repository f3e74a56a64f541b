//! The configuration of sources: one [`SourceConfig`] per `[[ingestion.sources]]` table (or per
//! `POST /api/v1/connectors` body, the same shape in JSON). Unknown keys are refused; every
//! default is documented on its field. [`SourceConfig::validate`] checks what serde cannot
//! (ranges, non-empty lists, readable certificate files, node ids, URLs) and names the
//! offending field.
//!
//! ```toml
//! [[ingestion.sources]]
//! kind = "opcua"
//! name = "line-2"
//! endpoint = "opc.tcp://10.0.0.9:4840"
//! security_policy = "Basic256Sha256"     # or "None" (default)
//! security_mode = "SignAndEncrypt"       # or "Sign"; default with Basic256Sha256
//! username = "mantis"
//! password = "…"
//! # pki_dir = "/var/lib/mantis/opcua/pki" # default <data_dir>/opcua/pki
//! # trust_server_certificate = true      # tests only: trusts any server (unsafe)
//! publishing_interval_ms = 1000
//! sampling_interval_ms = 500
//! deadband = 0.1                         # absolute; deadband_type = "percent" for EURange %
//! nodes = [
//!   { sensor = "L2-TEMP", node_id = "ns=2;s=Line2.Temperature", unit = "degC" },
//!   { sensor = "L2-PRS", node_id = "nsu=urn:plant:line2;s=Pressure", deadband = 0.5 },
//! ]
//!
//! [[ingestion.sources]]
//! kind = "mtconnect"
//! name = "fanuc-01"
//! url = "http://10.0.0.20:5000"          # a device path may follow: …:5000/FANUC-01
//! poll_interval_ms = 1000
//! count = 1000
//! data_items = [
//!   { sensor = "F01-X", data_item = "Xact", unit = "mm" },   # id or name
//!   { sensor = "F01-LOAD", data_item = "S1load" },
//! ]
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
// A handful of these exist per process, read once: boxing would only complicate the API.
#[allow(clippy::large_enum_variant)]
pub enum SourceConfig {
    /// An MQTT subscription (`kind = "mqtt"`).
    Mqtt(MqttConfig),
    /// A polled Modbus TCP device (`kind = "modbus"`).
    Modbus(ModbusConfig),
    /// An OPC UA server, read through a subscription (`kind = "opcua"`).
    #[serde(rename = "opcua")]
    OpcUa(OpcUaConfig),
    /// An MTConnect agent, read by `/sample` polling (`kind = "mtconnect"`).
    #[serde(rename = "mtconnect")]
    MtConnect(MtConnectConfig),
}

/// A password or other secret: shown as `***` in logs and debug output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// MQTT protocol version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (`"3.1.1"`, also `"4"`): the default.
    #[default]
    #[serde(rename = "3.1.1", alias = "4", alias = "v4", alias = "3")]
    V311,
    /// MQTT 5 (`"5"`).
    #[serde(rename = "5", alias = "v5")]
    V5,
}

/// TLS towards the broker (`[ingestion.sources.tls]`): the server is verified against `ca_file`
/// (its certificate must name the configured `host`, as DNS name or IP address); a client
/// certificate is presented when `client_cert_file` and `client_key_file` are given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file with the CA certificate(s) that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM file with the client certificate chain (device authentication).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file with the client's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// An MQTT source: subscribes to `topics` and turns each JSON message into readings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Unique name of the source (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// Broker host name or IP address.
    pub host: String,
    /// Broker port. Default 1883, or 8883 with `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `"3.1.1"` (default) or `"5"`.
    #[serde(default)]
    pub version: MqttVersion,
    /// Client id; fixed so that the broker keeps the session across restarts. Default
    /// `mantis-<name>`. Give each replica its own in cluster mode.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Start a clean session on every connection. Default `false`: a persistent session, so
    /// QoS 1 messages published while MANTIS was down are delivered when it is back.
    #[serde(default)]
    pub clean_session: bool,
    /// MQTT 5: how long the broker keeps the session after a disconnection. Default 86 400 s.
    #[serde(default = "default_session_expiry_secs")]
    pub session_expiry_secs: u32,
    /// Keep-alive interval. Default 30 s.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// Subscription QoS, 0 or 1. Default 1 (acknowledged only once the reading is taken).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Topic filters to subscribe to, wildcards allowed (`plant-a/+/+/+`, `plant-a/#`).
    pub topics: Vec<String>,
    /// Names of the topic levels, used by `sensor_code`. Default
    /// `{site}/{device}/{sensor}/{type}`. A message's `{type}` level also names the payload
    /// member holding the value when there is no `value` (`{"temperature": 22.3}`).
    #[serde(default = "default_topic_pattern")]
    pub topic_pattern: String,
    /// Template of the sensor code made from the topic levels when neither `sensors` nor the
    /// payload names the sensor. Default `{sensor}`; e.g. `{device}-{sensor}`.
    #[serde(default = "default_sensor_code")]
    pub sensor_code: String,
    /// Explicit map from topic (exact, no wildcards) to sensor code or UUID; wins over the
    /// payload and the template.
    #[serde(default)]
    pub sensors: BTreeMap<String, String>,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// TLS (port 8883): server verification and client certificates. Default: plain TCP.
    #[serde(default)]
    pub tls: Option<MqttTls>,
    /// Largest MQTT packet accepted (a batch payload must fit). Default 1 048 576 bytes.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: u32,
    /// At most this many messages are delivered to the sink together. Default 500.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Watchdog: reconnect when no message arrived for this long. Default 60 s; 0 disables it
    /// (for topics that may legitimately stay quiet).
    #[serde(default = "default_mqtt_silence_secs")]
    pub silence_timeout_secs: u64,
    /// First delay before reconnecting; doubled on each failure. Default 500 ms.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest delay before reconnecting. Default 30 000 ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
}

/// Which Modbus table a point is read from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTable {
    /// Holding registers (function 0x03): the default.
    #[default]
    Holding,
    /// Input registers (function 0x04).
    Input,
    /// Coils (function 0x01).
    Coil,
    /// Discrete inputs (function 0x02).
    DiscreteInput,
}

impl RegisterTable {
    /// Whether the table holds bits (coils, discrete inputs) rather than 16-bit registers.
    pub fn is_bits(&self) -> bool {
        matches!(self, Self::Coil | Self::DiscreteInput)
    }

    /// The name used in configuration and status.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Holding => "holding",
            Self::Input => "input",
            Self::Coil => "coil",
            Self::DiscreteInput => "discrete_input",
        }
    }
}

/// How a point's registers are decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
    /// One coil or discrete input: 0 or 1.
    Bool,
}

impl DataType {
    /// Registers (or bits) the type occupies.
    pub fn width(&self) -> u16 {
        match self {
            Self::U16 | Self::I16 | Self::Bool => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
        }
    }
}

/// Order of words in a 32-bit value, or of bytes in a register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Most significant first (the Modbus convention): the default.
    #[default]
    Big,
    /// Least significant first.
    Little,
}

/// One value read from a Modbus device, mapped to a sensor (`[[ingestion.sources.points]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPoint {
    /// The sensor: code or UUID.
    pub sensor: String,
    /// `holding` (default), `input`, `coil` or `discrete_input`.
    #[serde(default)]
    pub table: RegisterTable,
    /// Zero-based address of the (first) register or bit.
    pub address: u16,
    /// `u16` (default for registers), `i16`, `u32`, `i32`, `f32`; `bool` (the only type, and
    /// the default, for coils and discrete inputs).
    #[serde(default)]
    pub data_type: Option<DataType>,
    /// Word order of 32-bit types: `big` (default, high word first) or `little`.
    #[serde(default)]
    pub word_order: Order,
    /// Byte order inside each register: `big` (default) or `little` (bytes swapped).
    #[serde(default)]
    pub byte_order: Order,
    /// The value is `raw * scale + offset`. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Unit of the scaled value, checked against the sensor's unit when given.
    #[serde(default)]
    pub unit: Option<String>,
}

impl RegisterPoint {
    /// The data type in effect (`bool` for bit tables, `u16` when unset for registers).
    pub fn data_type(&self) -> DataType {
        match (self.data_type, self.table.is_bits()) {
            (Some(t), _) => t,
            (None, true) => DataType::Bool,
            (None, false) => DataType::U16,
        }
    }
}

/// A Modbus TCP device polled on a schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// Unique name of the source (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// Device (or gateway) host name or IP address.
    pub host: String,
    /// Port. Default 502.
    #[serde(default = "default_modbus_port")]
    pub port: u16,
    /// Unit identifier (slave id). Default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Time between two polls. Default 1000 ms.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Clock-aligned polling: when set, polls start at every multiple of `poll_interval_ms`
    /// since the Unix epoch (UTC midnight for intervals that divide a day) plus this offset,
    /// instead of every interval from when the connection opened. Readings of several
    /// connectors then share instants, and a device that updates its registers on a fixed
    /// schedule is read at the same point of each cycle (set the offset between its update and
    /// the next, e.g. half the interval). Must be below `poll_interval_ms`. When the wall clock
    /// steps back by up to a minute, instants already polled are not polled again (the device
    /// goes unread until the clock passes them); a larger step back restarts the polls at once
    /// (with a warning). Default: unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_offset_ms: Option<u64>,
    /// A request unanswered after this long is a timeout (quality 0, then a reconnection).
    /// Default 2000 ms.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Connecting longer than this fails. Default 5000 ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Largest block of registers read in one request (the protocol allows 125). Default 125.
    #[serde(default = "default_max_block_registers")]
    pub max_block_registers: u16,
    /// Unused registers tolerated inside one block to save a request. Default 0 (only
    /// contiguous points share a request; gaps may hold addresses the device refuses).
    #[serde(default)]
    pub max_block_gap: u16,
    /// Watchdog: reconnect when no poll was answered for this long. Default 30 s; at least
    /// twice the poll interval. 0 disables it.
    #[serde(default = "default_modbus_silence_secs")]
    pub silence_timeout_secs: u64,
    /// First delay before reconnecting; doubled on each failure. Default 500 ms.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest delay before reconnecting. Default 30 000 ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The values read.
    pub points: Vec<RegisterPoint>,
}

/// OPC UA security policy of the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpcUaSecurityPolicy {
    /// No security (`"None"`, also `"none"`): the default.
    #[default]
    #[serde(rename = "None", alias = "none")]
    None,
    /// Basic256Sha256 (`"Basic256Sha256"`, also `"basic256sha256"`): RSA-2048+, SHA-256.
    #[serde(rename = "Basic256Sha256", alias = "basic256sha256")]
    Basic256Sha256,
}

impl OpcUaSecurityPolicy {
    /// The policy's name in OPC UA (`None`, `Basic256Sha256`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Basic256Sha256 => "Basic256Sha256",
        }
    }
}

/// OPC UA message security mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpcUaSecurityMode {
    /// Messages neither signed nor encrypted (`"None"`): only with policy `None`.
    #[serde(rename = "None", alias = "none")]
    None,
    /// Messages signed (`"Sign"`).
    #[serde(rename = "Sign", alias = "sign")]
    Sign,
    /// Messages signed and encrypted (`"SignAndEncrypt"`, also `"sign_and_encrypt"`).
    #[serde(rename = "SignAndEncrypt", alias = "sign_and_encrypt")]
    SignAndEncrypt,
}

impl OpcUaSecurityMode {
    /// The mode's name in OPC UA.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Sign => "Sign",
            Self::SignAndEncrypt => "SignAndEncrypt",
        }
    }
}

/// How the change of a value is measured for report-by-exception (`deadband_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadbandType {
    /// In the value's own unit: a change smaller than `deadband` is not reported (default).
    #[default]
    Absolute,
    /// In percent of the node's `EURange` (the server must know it).
    Percent,
}

/// One OPC UA node monitored and mapped to a sensor (`[[ingestion.sources.nodes]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaNode {
    /// The sensor: code or UUID.
    pub sensor: String,
    /// The node: `ns=2;s=Line1.Temperature`, `ns=3;i=1001`, `i=2258`, or with the namespace
    /// named by its URI, which survives a server renumbering its namespaces:
    /// `nsu=urn:plant:line1;s=Temperature`.
    pub node_id: String,
    /// How often the server samples the value. Default: the source's `sampling_interval_ms`.
    #[serde(default)]
    pub sampling_interval_ms: Option<f64>,
    /// Report-by-exception: changes smaller than this are not sent. Default: the source's
    /// `deadband`.
    #[serde(default)]
    pub deadband: Option<f64>,
    /// Unit of the value, checked against the sensor's unit when given.
    #[serde(default)]
    pub unit: Option<String>,
}

/// An OPC UA server read through one subscription: every node is a monitored item with its
/// sampling interval and deadband; each data change becomes a reading whose quality comes from
/// the OPC UA status code (Good → 100, Uncertain → 50, Bad → 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConfig {
    /// Unique name of the source (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// The server's endpoint URL, `opc.tcp://host:4840/path`.
    pub endpoint: String,
    /// `"None"` (default) or `"Basic256Sha256"`.
    #[serde(default)]
    pub security_policy: OpcUaSecurityPolicy,
    /// `"None"`, `"Sign"` or `"SignAndEncrypt"`. Default: `None` with policy `None`,
    /// `SignAndEncrypt` otherwise.
    #[serde(default)]
    pub security_mode: Option<OpcUaSecurityMode>,
    /// User name; anonymous when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The client's PKI directory: its application instance certificate and key (`own/`,
    /// `private/`, made on first use), the trusted (`trusted/`) and rejected (`rejected/`)
    /// server certificates. Default: `<data_dir>/opcua/pki` of the service.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// Trust any server certificate and store it in `trusted/`. **Unsafe for production**:
    /// anyone on the path can impersonate the server. Meant for tests and first set-up; by
    /// default (`false`) an unknown server certificate is refused and put in `rejected/`, to be
    /// moved to `trusted/` by an operator.
    #[serde(default)]
    pub trust_server_certificate: bool,
    /// Application URI of MANTIS towards this server (also in its certificate). Default
    /// `urn:mantis:ingestion`.
    #[serde(default = "default_application_uri")]
    pub application_uri: String,
    /// How often the server sends the changes of the subscription. Default 1000 ms.
    #[serde(default = "default_publishing_interval_ms")]
    pub publishing_interval_ms: f64,
    /// Default sampling interval of the nodes. Default 1000 ms (0: as fast as the server can).
    #[serde(default = "default_sampling_interval_ms")]
    pub sampling_interval_ms: f64,
    /// Default deadband of the nodes. Default 0 (every change is reported).
    #[serde(default)]
    pub deadband: f64,
    /// `absolute` (default) or `percent` (of the node's EURange).
    #[serde(default)]
    pub deadband_type: DeadbandType,
    /// Changes queued per node on the server between two publications. Default 10.
    #[serde(default = "default_queue_size")]
    pub queue_size: u32,
    /// A publication is sent at least every `keep_alive_count` publishing intervals, even
    /// without changes (the watchdog takes it as a sign of life). Default 10.
    #[serde(default = "default_keep_alive_count")]
    pub keep_alive_count: u32,
    /// A request unanswered after this long fails. Default 10 000 ms.
    #[serde(default = "default_opcua_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Connecting (secure channel and session) longer than this fails. Default 15 000 ms.
    #[serde(default = "default_opcua_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// At most this many changes are delivered to the sink together. Default 500.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Watchdog: reconnect when neither a change nor a keep-alive arrived for this long.
    /// Default 60 s; at least three keep-alive periods. 0 disables it.
    #[serde(default = "default_mqtt_silence_secs")]
    pub silence_timeout_secs: u64,
    /// First delay before reconnecting; doubled on each failure. Default 500 ms.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest delay before reconnecting. Default 30 000 ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The monitored nodes.
    pub nodes: Vec<OpcUaNode>,
}

/// One MTConnect DataItem mapped to a sensor (`[[ingestion.sources.data_items]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtConnectItem {
    /// The sensor: code or UUID.
    pub sensor: String,
    /// The DataItem's `id` or, when no id matches, its `name` (`Xact`, `S1load`).
    pub data_item: String,
    /// Unit of the value, checked against the sensor's unit when given. Default: none (the
    /// probe's MTConnect units, `MILLIMETER`, `CELSIUS`, are not MANTIS units and are not sent).
    #[serde(default)]
    pub unit: Option<String>,
}

/// An MTConnect agent read over HTTP: `/probe` once per connection (the DataItems), `/current`
/// for the first values and the next sequence, then `/sample?from=&count=` on a schedule,
/// continuing exactly at the agent's `nextSequence` so no observation is skipped or read
/// twice. When the agent's buffer wrapped past our position, the source resynchronises with
/// `/current` and reports the gap (status `lastError`, metric).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtConnectConfig {
    /// Unique name of the source (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// The agent's base URL, `http://agent:5000` (a device path may follow:
    /// `http://agent:5000/Mazak`).
    pub url: String,
    /// Time between two `/sample` requests. Default 1000 ms.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Observations asked for per request (`count`). Default 1000.
    #[serde(default = "default_sample_count")]
    pub count: u32,
    /// A request unanswered after this long fails. Default 5000 ms.
    #[serde(default = "default_mtconnect_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Watchdog: reconnect when no answer arrived for this long. Default 30 s; at least twice
    /// the poll interval. 0 disables it.
    #[serde(default = "default_modbus_silence_secs")]
    pub silence_timeout_secs: u64,
    /// First delay before reconnecting; doubled on each failure. Default 500 ms.
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// Longest delay before reconnecting. Default 30 000 ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The DataItems read.
    pub data_items: Vec<MtConnectItem>,
}

fn default_application_uri() -> String {
    "urn:mantis:ingestion".into()
}
fn default_publishing_interval_ms() -> f64 {
    1000.0
}
fn default_sampling_interval_ms() -> f64 {
    1000.0
}
fn default_queue_size() -> u32 {
    10
}
fn default_keep_alive_count() -> u32 {
    10
}
fn default_opcua_request_timeout_ms() -> u64 {
    10_000
}
fn default_opcua_connect_timeout_ms() -> u64 {
    15_000
}
fn default_sample_count() -> u32 {
    1000
}
fn default_mtconnect_request_timeout_ms() -> u64 {
    5000
}

fn default_session_expiry_secs() -> u32 {
    86_400
}
fn default_keep_alive_secs() -> u64 {
    30
}
fn default_qos() -> u8 {
    1
}
fn default_topic_pattern() -> String {
    "{site}/{device}/{sensor}/{type}".into()
}
fn default_sensor_code() -> String {
    "{sensor}".into()
}
fn default_max_packet_bytes() -> u32 {
    1_048_576
}
fn default_max_batch() -> usize {
    500
}
fn default_mqtt_silence_secs() -> u64 {
    60
}
fn default_reconnect_min_ms() -> u64 {
    500
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_scale() -> f64 {
    1.0
}
fn default_modbus_port() -> u16 {
    502
}
fn default_unit_id() -> u8 {
    1
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_request_timeout_ms() -> u64 {
    2000
}
fn default_connect_timeout_ms() -> u64 {
    5000
}
fn default_max_block_registers() -> u16 {
    125
}
fn default_modbus_silence_secs() -> u64 {
    30
}

/// An invalid source configuration, with every offending field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid configuration of source `{source_name}`: {}", summary(.problems))]
pub struct ConfigError {
    /// The source's name as given.
    pub source_name: String,
    /// (JSON pointer into the source's configuration, what is wrong).
    pub problems: Vec<(String, String)>,
}

fn summary(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(p, d)| format!("{p}: {d}"))
        .collect::<Vec<_>>()
        .join("; ")
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Supervision settings shared by both kinds of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Supervision {
    pub(crate) silence: Option<Duration>,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
}

impl SourceConfig {
    /// The source's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Mqtt(c) => &c.name,
            Self::Modbus(c) => &c.name,
            Self::OpcUa(c) => &c.name,
            Self::MtConnect(c) => &c.name,
        }
    }

    /// `mqtt`, `modbus`, `opcua` or `mtconnect`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mqtt(_) => "mqtt",
            Self::Modbus(_) => "modbus",
            Self::OpcUa(_) => "opcua",
            Self::MtConnect(_) => "mtconnect",
        }
    }

    /// Where the source connects, for the status.
    pub fn endpoint(&self) -> String {
        match self {
            Self::Mqtt(c) => format!(
                "{}://{}:{}",
                if c.tls.is_some() { "mqtts" } else { "mqtt" },
                c.host,
                c.port()
            ),
            Self::Modbus(c) => format!("modbus://{}:{}/{}", c.host, c.port, c.unit_id),
            Self::OpcUa(c) => format!(
                "{} ({} {})",
                c.endpoint,
                c.security_policy.as_str(),
                c.security_mode().as_str()
            ),
            Self::MtConnect(c) => c.url.clone(),
        }
    }

    pub(crate) fn supervision(&self) -> Supervision {
        let (silence, min, max) = match self {
            Self::Mqtt(c) => (
                c.silence_timeout_secs,
                c.reconnect_min_ms,
                c.reconnect_max_ms,
            ),
            Self::Modbus(c) => (
                c.silence_timeout_secs,
                c.reconnect_min_ms,
                c.reconnect_max_ms,
            ),
            Self::OpcUa(c) => (
                c.silence_timeout_secs,
                c.reconnect_min_ms,
                c.reconnect_max_ms,
            ),
            Self::MtConnect(c) => (
                c.silence_timeout_secs,
                c.reconnect_min_ms,
                c.reconnect_max_ms,
            ),
        };
        Supervision {
            silence: (silence > 0).then(|| Duration::from_secs(silence)),
            reconnect_min: Duration::from_millis(min.max(1)),
            reconnect_max: Duration::from_millis(max.max(min).max(1)),
        }
    }

    /// Checks what serde cannot; every problem is named with a pointer into the source's
    /// configuration (`/points/2/address`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p: Vec<(String, String)> = Vec::new();
        let name = self.name();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            p.push((
                "/name".into(),
                "must be 1 to 64 letters, digits, `-`, `_` or `.`".into(),
            ));
        }
        let (min, max) = match self {
            Self::Mqtt(c) => (c.reconnect_min_ms, c.reconnect_max_ms),
            Self::Modbus(c) => (c.reconnect_min_ms, c.reconnect_max_ms),
            Self::OpcUa(c) => (c.reconnect_min_ms, c.reconnect_max_ms),
            Self::MtConnect(c) => (c.reconnect_min_ms, c.reconnect_max_ms),
        };
        if min == 0 || max < min || max > HOUR_MS {
            p.push((
                "/reconnect_max_ms".into(),
                "reconnect_min_ms must be positive and at most reconnect_max_ms, itself at most one hour"
                    .into(),
            ));
        }
        let silence = match self {
            Self::Mqtt(c) => c.silence_timeout_secs,
            Self::Modbus(c) => c.silence_timeout_secs,
            Self::OpcUa(c) => c.silence_timeout_secs,
            Self::MtConnect(c) => c.silence_timeout_secs,
        };
        if silence > DAY_MS / 1000 {
            p.push((
                "/silence_timeout_secs".into(),
                "must be at most one day (or 0 to disable the watchdog)".into(),
            ));
        }
        match self {
            Self::Mqtt(c) => c.check(&mut p),
            Self::Modbus(c) => c.check(&mut p),
            Self::OpcUa(c) => c.check(&mut p),
            Self::MtConnect(c) => c.check(&mut p),
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                source_name: name.to_owned(),
                problems: p,
            })
        }
    }
}

impl MqttConfig {
    /// The port in effect.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls.is_some() { 8883 } else { 1883 })
    }

    /// The client id in effect.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("mantis-{}", self.name))
    }

    fn check(&self, p: &mut Vec<(String, String)>) {
        if self.host.trim().is_empty() {
            p.push(("/host".into(), "must not be empty".into()));
        }
        if self.client_id().is_empty() || self.client_id().len() > 128 {
            p.push(("/client_id".into(), "must be 1 to 128 characters".into()));
        }
        if self.qos > 1 {
            p.push((
                "/qos".into(),
                format!("must be 0 or 1, got {} (QoS 2 is not supported)", self.qos),
            ));
        }
        if self.keep_alive_secs == 0 || self.keep_alive_secs > 65_535 {
            p.push(("/keep_alive_secs".into(), "must be within 1..=65535".into()));
        }
        if self.topics.is_empty() {
            p.push((
                "/topics".into(),
                "give at least one topic filter to subscribe to".into(),
            ));
        }
        for (i, t) in self.topics.iter().enumerate() {
            if let Err(e) = crate::mqtt::topic::check_filter(t) {
                p.push((format!("/topics/{i}"), e));
            }
        }
        for topic in self.sensors.keys() {
            if topic.contains(['+', '#']) || topic.is_empty() {
                p.push((
                    format!("/sensors/{topic}"),
                    "keys are exact topics, without wildcards".into(),
                ));
            }
        }
        if let Err(e) = crate::mqtt::topic::TopicPattern::parse(&self.topic_pattern) {
            p.push(("/topic_pattern".into(), e));
        } else if let Ok(pattern) = crate::mqtt::topic::TopicPattern::parse(&self.topic_pattern)
            && let Err(e) = pattern.check_template(&self.sensor_code)
        {
            p.push(("/sensor_code".into(), e));
        }
        if self.max_packet_bytes < 1024 {
            p.push(("/max_packet_bytes".into(), "must be at least 1024".into()));
        }
        if self.max_batch == 0 {
            p.push(("/max_batch".into(), "must be positive".into()));
        }
        if self.password.is_some() && self.username.is_none() {
            p.push(("/username".into(), "a password needs a user name".into()));
        }
        if let Some(tls) = &self.tls
            && let Err(e) = crate::mqtt::tls::client_config(tls)
        {
            p.push(("/tls".into(), e.to_string()));
        }
    }
}

impl ModbusConfig {
    fn check(&self, p: &mut Vec<(String, String)>) {
        if self.host.trim().is_empty() {
            p.push(("/host".into(), "must not be empty".into()));
        }
        if !(10..=DAY_MS).contains(&self.poll_interval_ms) {
            p.push((
                "/poll_interval_ms".into(),
                "must be within 10 ms and one day".into(),
            ));
        }
        if let Some(offset) = self.poll_offset_ms
            && offset >= self.poll_interval_ms
        {
            p.push((
                "/poll_offset_ms".into(),
                format!(
                    "must be below poll_interval_ms ({} ms)",
                    self.poll_interval_ms
                ),
            ));
        }
        if !(1..=HOUR_MS).contains(&self.request_timeout_ms) {
            p.push((
                "/request_timeout_ms".into(),
                "must be within 1 ms and one hour".into(),
            ));
        }
        if !(1..=HOUR_MS).contains(&self.connect_timeout_ms) {
            p.push((
                "/connect_timeout_ms".into(),
                "must be within 1 ms and one hour".into(),
            ));
        }
        if !(1..=125).contains(&self.max_block_registers) {
            p.push((
                "/max_block_registers".into(),
                "must be within 1..=125 (the Modbus limit)".into(),
            ));
        }
        if self.silence_timeout_secs > 0
            && self.silence_timeout_secs.saturating_mul(1000) < 2 * self.poll_interval_ms
        {
            p.push((
                "/silence_timeout_secs".into(),
                "must be at least twice the poll interval (or 0 to disable the watchdog)".into(),
            ));
        }
        if self.points.is_empty() {
            p.push(("/points".into(), "give at least one point to read".into()));
        }
        for (i, pt) in self.points.iter().enumerate() {
            let at = |f: &str| format!("/points/{i}/{f}");
            if pt.sensor.trim().is_empty() {
                p.push((at("sensor"), "must name a sensor (code or UUID)".into()));
            }
            let dt = pt.data_type();
            if pt.table.is_bits() != (dt == DataType::Bool) {
                p.push((
                    at("data_type"),
                    if pt.table.is_bits() {
                        format!("{} points are `bool`", pt.table.as_str())
                    } else {
                        format!(
                            "{} registers are u16, i16, u32, i32 or f32, not bool",
                            pt.table.as_str()
                        )
                    },
                ));
            }
            if u32::from(pt.address) + u32::from(dt.width()) > 65_536 {
                p.push((at("address"), "the value runs past address 65535".into()));
            }
            if !pt.scale.is_finite() || pt.scale == 0.0 {
                p.push((at("scale"), "must be a finite, non-zero number".into()));
            }
            if !pt.offset.is_finite() {
                p.push((at("offset"), "must be a finite number".into()));
            }
        }
    }
}

impl OpcUaConfig {
    /// The security mode in effect (`None` with policy `None`, `SignAndEncrypt` otherwise,
    /// unless set).
    pub fn security_mode(&self) -> OpcUaSecurityMode {
        self.security_mode.unwrap_or(match self.security_policy {
            OpcUaSecurityPolicy::None => OpcUaSecurityMode::None,
            OpcUaSecurityPolicy::Basic256Sha256 => OpcUaSecurityMode::SignAndEncrypt,
        })
    }

    fn check(&self, p: &mut Vec<(String, String)>) {
        match self.endpoint.strip_prefix("opc.tcp://") {
            Some(rest) if !rest.is_empty() && !rest.starts_with([':', '/']) => {}
            _ => p.push((
                "/endpoint".into(),
                "must be an `opc.tcp://host:port/...` URL".into(),
            )),
        }
        let none_policy = self.security_policy == OpcUaSecurityPolicy::None;
        let none_mode = self.security_mode() == OpcUaSecurityMode::None;
        if none_policy != none_mode {
            p.push((
                "/security_mode".into(),
                if none_policy {
                    "security policy `None` goes with security mode `None`".into()
                } else {
                    format!(
                        "security policy `{}` needs security mode `Sign` or `SignAndEncrypt`",
                        self.security_policy.as_str()
                    )
                },
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            p.push(("/username".into(), "a password needs a user name".into()));
        }
        if self.username.as_deref().is_some_and(|u| u.is_empty()) {
            p.push(("/username".into(), "must not be empty".into()));
        }
        if self.application_uri.trim().is_empty() {
            p.push(("/application_uri".into(), "must not be empty".into()));
        }
        if !(self.publishing_interval_ms.is_finite()
            && self.publishing_interval_ms >= 10.0
            && self.publishing_interval_ms <= HOUR_MS as f64)
        {
            p.push((
                "/publishing_interval_ms".into(),
                "must be within 10 ms and one hour".into(),
            ));
        }
        let sampling_ok = |v: f64| v.is_finite() && (0.0..=HOUR_MS as f64).contains(&v);
        let deadband_ok = |v: f64| {
            v.is_finite()
                && v >= 0.0
                && (self.deadband_type == DeadbandType::Absolute || v <= 100.0)
        };
        if !sampling_ok(self.sampling_interval_ms) {
            p.push((
                "/sampling_interval_ms".into(),
                "must be within 0 (as fast as the server can) and one hour".into(),
            ));
        }
        if !deadband_ok(self.deadband) {
            p.push((
                "/deadband".into(),
                "must be a finite number, at least 0 (at most 100 for `percent`)".into(),
            ));
        }
        if !(1..=10_000).contains(&self.queue_size) {
            p.push(("/queue_size".into(), "must be within 1..=10000".into()));
        }
        if !(1..=1000).contains(&self.keep_alive_count) {
            p.push(("/keep_alive_count".into(), "must be within 1..=1000".into()));
        }
        for (f, v) in [
            ("/request_timeout_ms", self.request_timeout_ms),
            ("/connect_timeout_ms", self.connect_timeout_ms),
        ] {
            if !(1..=HOUR_MS).contains(&v) {
                p.push((f.into(), "must be within 1 ms and one hour".into()));
            }
        }
        if self.max_batch == 0 {
            p.push(("/max_batch".into(), "must be positive".into()));
        }
        let keep_alive_ms = self.publishing_interval_ms * f64::from(self.keep_alive_count);
        if self.silence_timeout_secs > 0
            && (self.silence_timeout_secs as f64) * 1000.0 < 3.0 * keep_alive_ms
        {
            p.push((
                "/silence_timeout_secs".into(),
                format!(
                    "must be at least three keep-alive periods (publishing_interval_ms × keep_alive_count = {} ms), or 0 to disable the watchdog",
                    keep_alive_ms
                ),
            ));
        }
        if self.nodes.is_empty() {
            p.push(("/nodes".into(), "give at least one node to monitor".into()));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let at = |f: &str| format!("/nodes/{i}/{f}");
            if n.sensor.trim().is_empty() {
                p.push((at("sensor"), "must name a sensor (code or UUID)".into()));
            }
            if let Err(e) = crate::opcua::node::NodeRef::parse(&n.node_id) {
                p.push((at("node_id"), e));
            }
            if n.sampling_interval_ms.is_some_and(|v| !sampling_ok(v)) {
                p.push((
                    at("sampling_interval_ms"),
                    "must be within 0 and one hour".into(),
                ));
            }
            if n.deadband.is_some_and(|v| !deadband_ok(v)) {
                p.push((
                    at("deadband"),
                    "must be a finite number, at least 0 (at most 100 for `percent`)".into(),
                ));
            }
        }
    }
}

impl MtConnectConfig {
    fn check(&self, p: &mut Vec<(String, String)>) {
        match crate::mtconnect::agent_url(&self.url) {
            Ok(_) => {}
            Err(e) => p.push(("/url".into(), e)),
        }
        if !(10..=DAY_MS).contains(&self.poll_interval_ms) {
            p.push((
                "/poll_interval_ms".into(),
                "must be within 10 ms and one day".into(),
            ));
        }
        if !(1..=100_000).contains(&self.count) {
            p.push(("/count".into(), "must be within 1..=100000".into()));
        }
        if !(1..=HOUR_MS).contains(&self.request_timeout_ms) {
            p.push((
                "/request_timeout_ms".into(),
                "must be within 1 ms and one hour".into(),
            ));
        }
        if self.silence_timeout_secs > 0
            && self.silence_timeout_secs.saturating_mul(1000) < 2 * self.poll_interval_ms
        {
            p.push((
                "/silence_timeout_secs".into(),
                "must be at least twice the poll interval (or 0 to disable the watchdog)".into(),
            ));
        }
        if self.data_items.is_empty() {
            p.push((
                "/data_items".into(),
                "give at least one DataItem to read".into(),
            ));
        }
        for (i, d) in self.data_items.iter().enumerate() {
            if d.sensor.trim().is_empty() {
                p.push((
                    format!("/data_items/{i}/sensor"),
                    "must name a sensor (code or UUID)".into(),
                ));
            }
            if d.data_item.trim().is_empty() {
                p.push((
                    format!("/data_items/{i}/data_item"),
                    "must name a DataItem (id or name)".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_src: &str) -> Result<SourceConfig, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Root {
            sources: Vec<SourceConfig>,
        }
        let v: serde_json::Value = toml_to_json(toml_src)?;
        let root: Root = serde_json::from_value(v).map_err(|e| e.to_string())?;
        root.sources
            .into_iter()
            .next()
            .ok_or_else(|| "no source".to_string())
    }

    // The crate does not depend on `toml`; the tests write the JSON form of the same tables.
    fn toml_to_json(s: &str) -> Result<serde_json::Value, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn an_mqtt_source_has_documented_defaults() {
        let c = parse(
            r#"{"sources":[{"kind":"mqtt","name":"line-1","host":"broker","topics":["plant/+/+/+"]}]}"#,
        )
        .expect("valid");
        c.validate().expect("valid");
        let SourceConfig::Mqtt(m) = &c else {
            panic!("mqtt expected")
        };
        assert_eq!(m.port(), 1883);
        assert_eq!(m.version, MqttVersion::V311);
        assert_eq!(m.client_id(), "mantis-line-1");
        assert!(!m.clean_session);
        assert_eq!(m.qos, 1);
        assert_eq!(m.topic_pattern, "{site}/{device}/{sensor}/{type}");
        assert_eq!(c.endpoint(), "mqtt://broker:1883");
        assert_eq!(c.supervision().silence, Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_modbus_source_has_documented_defaults() {
        let c = parse(
            r#"{"sources":[{"kind":"modbus","name":"plc","host":"10.0.0.5","points":[
                {"sensor":"P1","address":3},{"sensor":"P2","table":"coil","address":0}]}]}"#,
        )
        .expect("valid");
        c.validate().expect("valid");
        let SourceConfig::Modbus(m) = &c else {
            panic!("modbus expected")
        };
        assert_eq!((m.port, m.unit_id, m.poll_interval_ms), (502, 1, 1000));
        assert_eq!(
            m.poll_offset_ms, None,
            "polls are not clock-aligned by default"
        );
        assert_eq!(m.points[0].data_type(), DataType::U16);
        assert_eq!(m.points[1].data_type(), DataType::Bool);
        assert_eq!(m.points[0].scale, 1.0);
        assert_eq!(c.endpoint(), "modbus://10.0.0.5:502/1");
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let e = parse(
            r#"{"sources":[{"kind":"mqtt","name":"a","host":"b","topics":["t"],"qos_level":1}]}"#,
        )
        .expect_err("unknown key");
        assert!(e.contains("qos_level"), "{e}");
        let e = parse(r#"{"sources":[{"kind":"profinet","name":"a"}]}"#).expect_err("unknown kind");
        assert!(e.contains("profinet"), "{e}");
        let e = parse(
            r#"{"sources":[{"kind":"modbus","name":"a","host":"b","points":[{"sensor":"s","address":1,"bits":3}]}]}"#,
        )
        .expect_err("unknown point key");
        assert!(e.contains("bits"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let c = parse(
            r#"{"sources":[{"kind":"mqtt","name":"bad name","host":"b","topics":["a/#/b"],"qos":2}]}"#,
        )
        .expect("parses");
        let e = c.validate().expect_err("invalid");
        let pointers: Vec<&str> = e.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, vec!["/name", "/qos", "/topics/0"]);
        let c = parse(
            r#"{"sources":[{"kind":"modbus","name":"plc","host":"h","points":[
                {"sensor":"s","table":"coil","address":1,"data_type":"f32"},
                {"sensor":"s","address":65535,"data_type":"u32"},
                {"sensor":"s","address":1,"scale":0}]}]}"#,
        )
        .expect("parses");
        let e = c.validate().expect_err("invalid");
        let pointers: Vec<&str> = e.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            vec![
                "/points/0/data_type",
                "/points/1/address",
                "/points/2/scale"
            ]
        );
        assert!(e.to_string().contains("coil points are `bool`"), "{e}");
        let c = parse(
            r#"{"sources":[{"kind":"modbus","name":"plc","host":"h","poll_interval_ms":500,
                "poll_offset_ms":500,"points":[{"sensor":"s","address":1}]}]}"#,
        )
        .expect("parses");
        let e = c.validate().expect_err("an offset of a whole interval");
        let pointers: Vec<&str> = e.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, vec!["/poll_offset_ms"]);
    }

    #[test]
    fn an_opcua_source_has_documented_defaults() {
        let c = parse(
            r#"{"sources":[{"kind":"opcua","name":"line-2","endpoint":"opc.tcp://10.0.0.9:4840",
                "nodes":[{"sensor":"L2-TEMP","node_id":"ns=2;s=Line2.Temperature"}]}]}"#,
        )
        .expect("valid");
        c.validate().expect("valid");
        let SourceConfig::OpcUa(o) = &c else {
            panic!("opcua expected")
        };
        assert_eq!(o.security_policy, OpcUaSecurityPolicy::None);
        assert_eq!(o.security_mode(), OpcUaSecurityMode::None);
        assert!(!o.trust_server_certificate, "trusting any server is opt-in");
        assert_eq!(o.application_uri, "urn:mantis:ingestion");
        assert_eq!(
            (o.publishing_interval_ms, o.sampling_interval_ms, o.deadband),
            (1000.0, 1000.0, 0.0)
        );
        assert_eq!((o.queue_size, o.keep_alive_count), (10, 10));
        assert_eq!(o.deadband_type, DeadbandType::Absolute);
        assert_eq!(c.endpoint(), "opc.tcp://10.0.0.9:4840 (None None)");
        assert_eq!(c.supervision().silence, Some(Duration::from_secs(60)));
        let secure = parse(
            r#"{"sources":[{"kind":"opcua","name":"s","endpoint":"opc.tcp://h:4840",
                "security_policy":"Basic256Sha256","nodes":[{"sensor":"x","node_id":"i=2258"}]}]}"#,
        )
        .expect("valid");
        let SourceConfig::OpcUa(o) = &secure else {
            panic!("opcua expected")
        };
        assert_eq!(o.security_mode(), OpcUaSecurityMode::SignAndEncrypt);
    }

    #[test]
    fn opcua_and_mtconnect_problems_name_the_field() {
        let c = parse(
            r#"{"sources":[{"kind":"opcua","name":"o","endpoint":"http://h:4840",
                "security_policy":"Basic256Sha256","security_mode":"None","password":"p",
                "publishing_interval_ms":1000,"keep_alive_count":10,"silence_timeout_secs":5,
                "nodes":[{"sensor":"s","node_id":"Temperature"},{"sensor":"t","node_id":"i=1","deadband":-1}]}]}"#,
        )
        .expect("parses");
        let e = c.validate().expect_err("invalid");
        let pointers: Vec<&str> = e.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            vec![
                "/endpoint",
                "/security_mode",
                "/username",
                "/silence_timeout_secs",
                "/nodes/0/node_id",
                "/nodes/1/deadband"
            ]
        );
        let c = parse(
            r#"{"sources":[{"kind":"mtconnect","name":"m","url":"https://agent:5000","count":0,
                "data_items":[{"sensor":"","data_item":"Xact"}]}]}"#,
        )
        .expect("parses");
        let e = c.validate().expect_err("invalid");
        let pointers: Vec<&str> = e.problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, vec!["/url", "/count", "/data_items/0/sensor"]);
        let ok = parse(
            r#"{"sources":[{"kind":"mtconnect","name":"m","url":"http://agent:5000/FANUC-01",
                "data_items":[{"sensor":"X","data_item":"Xact"}]}]}"#,
        )
        .expect("parses");
        ok.validate().expect("valid");
        let SourceConfig::MtConnect(m) = &ok else {
            panic!("mtconnect expected")
        };
        assert_eq!((m.poll_interval_ms, m.count), (1000, 1000));
    }

    #[test]
    fn secrets_are_not_shown() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }
}
