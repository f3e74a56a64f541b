//! Signals: raw readings, windows of readings, feature vectors and data-quality issues.

use crate::{AssetId, DomainError, SensorId, SensorType, Timestamp, deterministic_uuid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Data quality of a reading, 0 (unusable) to 100 (good). Below 50 is "low" (brief: routing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quality(u8);

impl Quality {
    /// Full quality.
    pub const GOOD: Quality = Quality(100);
    /// Readings below this are routed to `data.quality.issues`.
    pub const LOW_THRESHOLD: u8 = 50;

    /// Checks that `q` is within 0..=100.
    pub fn new(q: i64) -> Result<Self, DomainError> {
        if (0..=100).contains(&q) {
            Ok(Self(q as u8))
        } else {
            Err(DomainError::OutOfRange {
                what: "quality",
                value: q as f64,
                min: 0.0,
                max: 100.0,
            })
        }
    }

    /// The numeric value.
    pub fn get(&self) -> u8 {
        self.0
    }

    /// Whether the reading is of low quality (< 50).
    pub fn is_low(&self) -> bool {
        self.0 < Self::LOW_THRESHOLD
    }
}

impl Default for Quality {
    fn default() -> Self {
        Self::GOOD
    }
}

impl TryFrom<i64> for Quality {
    type Error = DomainError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<Quality> for i64 {
    fn from(q: Quality) -> i64 {
        i64::from(q.0)
    }
}

/// The protocol a reading came in through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceProtocol {
    /// OPC UA subscription.
    OpcUa,
    /// MQTT topic.
    Mqtt,
    /// Modbus TCP polling.
    ModbusTcp,
    /// MTConnect agent.
    Mtconnect,
    /// REST push (`POST /api/v1/sensors/data`).
    Rest,
    /// Batch import of history files.
    Batch,
    /// The built-in plant simulator.
    Simulator,
}

impl SourceProtocol {
    /// The symbol as sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OpcUa => "OPC_UA",
            Self::Mqtt => "MQTT",
            Self::ModbusTcp => "MODBUS_TCP",
            Self::Mtconnect => "MTCONNECT",
            Self::Rest => "REST",
            Self::Batch => "BATCH",
            Self::Simulator => "SIMULATOR",
        }
    }

    /// Parses a symbol (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "OPC_UA" => Ok(Self::OpcUa),
            "MQTT" => Ok(Self::Mqtt),
            "MODBUS_TCP" => Ok(Self::ModbusTcp),
            "MTCONNECT" => Ok(Self::Mtconnect),
            "REST" => Ok(Self::Rest),
            "BATCH" => Ok(Self::Batch),
            "SIMULATOR" => Ok(Self::Simulator),
            _ => Err(DomainError::UnknownSymbol {
                what: "source protocol",
                value: s.to_owned(),
                expected: "OPC_UA, MQTT, MODBUS_TCP, MTCONNECT, REST, BATCH, SIMULATOR",
            }),
        }
    }
}

impl fmt::Display for SourceProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sensor value at one instant, as published on `sensor.raw`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// When the value was measured.
    pub timestamp: Timestamp,
    /// The asset the sensor is mounted on.
    pub asset_id: AssetId,
    /// The sensor.
    pub sensor_id: SensorId,
    /// The sensor's code.
    pub sensor_code: String,
    /// What the sensor measures.
    pub sensor_type: SensorType,
    /// The measured value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Data quality 0..=100.
    pub quality: Quality,
    /// How it reached MANTIS.
    pub source: SourceProtocol,
    /// Free-form tags from the connector.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Why a reading was flagged as a data-quality issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QualityReason {
    /// The device reported quality below 50.
    LowQuality,
    /// Value outside the sensor's [min, max].
    OutOfRange,
    /// The unit does not match the sensor's unit.
    UnitMismatch,
    /// The sensor id is not registered.
    UnknownSensor,
    /// NaN or infinite value.
    NotFinite,
    /// Timestamp too far in the future or the past.
    BadTimestamp,
}

impl QualityReason {
    /// The symbol as sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::LowQuality => "LOW_QUALITY",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::UnitMismatch => "UNIT_MISMATCH",
            Self::UnknownSensor => "UNKNOWN_SENSOR",
            Self::NotFinite => "NOT_FINITE",
            Self::BadTimestamp => "BAD_TIMESTAMP",
        }
    }

    /// Parses a symbol.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s {
            "LOW_QUALITY" => Ok(Self::LowQuality),
            "OUT_OF_RANGE" => Ok(Self::OutOfRange),
            "UNIT_MISMATCH" => Ok(Self::UnitMismatch),
            "UNKNOWN_SENSOR" => Ok(Self::UnknownSensor),
            "NOT_FINITE" => Ok(Self::NotFinite),
            "BAD_TIMESTAMP" => Ok(Self::BadTimestamp),
            _ => Err(DomainError::UnknownSymbol {
                what: "quality reason",
                value: s.to_owned(),
                expected: "LOW_QUALITY, OUT_OF_RANGE, UNIT_MISMATCH, UNKNOWN_SENSOR, NOT_FINITE, BAD_TIMESTAMP",
            }),
        }
    }
}

/// A reading that failed a data-quality check, published on `data.quality.issues`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataQualityIssue {
    /// When the reading was measured.
    pub timestamp: Timestamp,
    /// The asset, when known.
    pub asset_id: Option<AssetId>,
    /// The sensor, when known.
    pub sensor_id: Option<SensorId>,
    /// The value (may be non-finite).
    pub value: f64,
    /// The unit received.
    pub unit: String,
    /// The quality received.
    pub quality: Quality,
    /// Why it was flagged.
    pub reason: QualityReason,
    /// Human explanation.
    pub detail: String,
}

/// Statistics of one sensor's readings over one window, with the samples themselves so that
/// feature extraction can work on the signal (published on `sensor.windowed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// The asset.
    pub asset_id: AssetId,
    /// The sensor.
    pub sensor_id: SensorId,
    /// What the sensor measures.
    pub sensor_type: SensorType,
    /// Inclusive start.
    pub window_start: Timestamp,
    /// Exclusive end.
    pub window_end: Timestamp,
    /// Number of samples.
    pub count: u32,
    /// Mean of the samples.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// The samples in time order.
    pub values: Vec<f64>,
    /// Samples per second of `values` (the grid they were resampled to); 0 when not known
    /// (records written before it was carried): see [`Window::rate_hz`].
    #[serde(default)]
    pub sample_rate_hz: f64,
}

impl Window {
    /// Samples per second of `values`: the carried rate, or else (older records) the samples
    /// over the window's duration, which is wrong for a window holding only part of its span
    /// (a gap cut it short); 1 when neither is known.
    pub fn rate_hz(&self) -> f64 {
        if self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0 {
            return self.sample_rate_hz;
        }
        let secs = (self.window_end - self.window_start).num_milliseconds() as f64 / 1000.0;
        if secs > 0.0 && !self.values.is_empty() {
            self.values.len() as f64 / secs
        } else {
            1.0
        }
    }

    /// A stable key for idempotent writes: the same window always maps to the same id.
    pub fn key(&self) -> uuid::Uuid {
        deterministic_uuid(
            "window",
            &[
                &self.sensor_id.to_string(),
                &self.window_start.timestamp_millis().to_string(),
            ],
        )
    }
}

/// Features of one sensor's window (published on `features.extracted`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureVector {
    /// The asset.
    pub asset_id: AssetId,
    /// The sensor.
    pub sensor_id: SensorId,
    /// What the sensor measures.
    pub sensor_type: SensorType,
    /// Window start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub window_start: Timestamp,
    /// Window end.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub window_end: Timestamp,
    /// Version of the feature set, so consumers know which names to expect.
    pub feature_set_version: String,
    /// Feature name → value.
    pub features: BTreeMap<String, f64>,
}

impl FeatureVector {
    /// Name of the feature holding how many samples the window had, so consumers can tell a
    /// window cut short (a sensor that fell silent) from a full one.
    pub const SAMPLE_COUNT: &'static str = "sample_count";

    /// The number of samples of the window, when the producer recorded it.
    pub fn sample_count(&self) -> Option<f64> {
        self.features.get(Self::SAMPLE_COUNT).copied()
    }
}
