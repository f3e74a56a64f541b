//! A reading as a source delivers it, before it is checked against its sensor's metadata.
//!
//! Every source (REST push, the device connectors, the simulator) produces [`IncomingReading`]s
//! and hands them to the ingestion service, which validates them and publishes
//! [`Reading`](crate::Reading)s; the type lives here so that the connectors need not depend on
//! the service.

use crate::{AssetId, Quality, SensorId, Timestamp};
use std::collections::BTreeMap;

/// How a reading names its sensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SensorRef {
    /// By id.
    Id(SensorId),
    /// By code.
    Code(String),
}

impl SensorRef {
    /// A sensor named by a UUID string or, failing that, by code (`s` trimmed).
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        match SensorId::parse(s) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Code(s.to_owned()),
        }
    }
}

impl std::fmt::Display for SensorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Code(code) => f.write_str(code),
        }
    }
}

/// A reading as received, before it is checked against the sensor's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingReading {
    /// When the value was measured.
    pub timestamp: Timestamp,
    /// The asset, when the sender names it (must then match the sensor's asset).
    pub asset_id: Option<AssetId>,
    /// The sensor.
    pub sensor: SensorRef,
    /// The value (may be non-finite when it comes from a device connector).
    pub value: f64,
    /// The unit, when the sender names it (must then match the sensor's unit).
    pub unit: Option<String>,
    /// Quality, 100 when absent.
    pub quality: Quality,
    /// Free-form tags. A device connector explains a low quality under
    /// [`IncomingReading::QUALITY_REASON`].
    pub metadata: BTreeMap<String, String>,
}

impl IncomingReading {
    /// The metadata key under which a source says why a reading's quality is low (e.g. a Modbus
    /// exception code or a timeout).
    pub const QUALITY_REASON: &'static str = "qualityReason";

    /// Most bytes of metadata keys and values together that a reading may carry: a record
    /// must stay far below what a bus takes (Kafka's default: 1 MB), or a valid reading
    /// would be refused by the bus after it was accepted.
    pub const MAX_METADATA_BYTES: usize = 16 * 1024;

    /// Refuses metadata of more than [`MAX_METADATA_BYTES`](Self::MAX_METADATA_BYTES) of keys
    /// and values together, saying how much it holds (every parser of incoming readings calls
    /// it: REST, batch import, MQTT).
    pub fn check_metadata_size(metadata: &BTreeMap<String, String>) -> Result<(), String> {
        let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > Self::MAX_METADATA_BYTES {
            return Err(format!(
                "{bytes} bytes of keys and values; at most {} are taken",
                Self::MAX_METADATA_BYTES
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sensor_is_named_by_uuid_or_by_code() {
        let id = SensorId::new_random();
        assert_eq!(SensorRef::parse(&id.to_string()), SensorRef::Id(id));
        assert_eq!(
            SensorRef::parse(" P1-TEMP "),
            SensorRef::Code("P1-TEMP".into())
        );
        assert_eq!(SensorRef::parse("P1-TEMP").to_string(), "P1-TEMP");
    }
}
