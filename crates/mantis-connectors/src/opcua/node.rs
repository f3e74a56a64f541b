//! The pure parts of the OPC UA source: node ids as configured, the status-code → quality
//! mapping, and data values → readings. No I/O; unit-tested here.
//!
//! Quality mapping (OPC UA Part 4, 7.39: the two top bits of a status code are its severity):
//!
//! | status code severity | reading quality | example |
//! |---|---|---|
//! | Good (`0b00`) | 100 | `Good`, `GoodLocalOverride` |
//! | Uncertain (`0b01`) | 50 | `UncertainLastUsableValue`, `UncertainSensorNotAccurate` |
//! | Bad (`0b10`, `0b11`) | 0 | `BadSensorFailure`, `BadCommunicationError`, `BadNoCommunication` |
//!
//! A reading that is not Good carries the status code's name in its metadata
//! (`qualityReason`, e.g. `BadSensorFailure (0x808B0000)`), so the data-quality report says why.
//! A Bad value without a value (servers often send none) carries the node's last good value
//! (0 before the first), as the Modbus source does.

use mantis_domain::{IncomingReading, Quality, SensorRef, Timestamp};
use opcua::types::{DataValue, NodeId, StatusCode, Variant};
use std::collections::BTreeMap;
use std::str::FromStr;

/// Quality of a reading whose status code is Uncertain.
pub(crate) const UNCERTAIN_QUALITY: u8 = 50;

/// A node as configured: a plain node id, or one whose namespace is named by its URI
/// (`nsu=urn:plant;s=Temperature`) and resolved against the server's namespace array.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeRef {
    /// `ns=2;s=...`, `i=2258`.
    Id(NodeId),
    /// `nsu=<uri>;<identifier>`.
    Uri {
        /// The namespace URI.
        uri: String,
        /// The identifier part (`s=...`, `i=...`).
        identifier: String,
    },
}

impl NodeRef {
    /// Parses a configured node id; the error says what is expected.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let expected = "expected a node id such as `ns=2;s=Line1.Temperature`, `ns=3;i=1001`, `i=2258` or `nsu=urn:plant;s=Temperature`";
        if let Some(rest) = s.strip_prefix("nsu=") {
            let (uri, identifier) = rest
                .split_once(';')
                .ok_or_else(|| format!("`{s}`: {expected}"))?;
            if uri.is_empty() {
                return Err(format!("`{s}`: the namespace URI is empty; {expected}"));
            }
            // The identifier must parse as a node id of some namespace.
            NodeId::from_str(identifier).map_err(|_| format!("`{s}`: {expected}"))?;
            return Ok(Self::Uri {
                uri: uri.to_owned(),
                identifier: identifier.to_owned(),
            });
        }
        NodeId::from_str(s)
            .map(Self::Id)
            .map_err(|_| format!("`{s}`: {expected}"))
    }

    /// The node id, given the namespace index of a URI (looked up by the caller).
    pub(crate) fn resolve(&self, index_of: impl Fn(&str) -> Option<u16>) -> Result<NodeId, String> {
        match self {
            Self::Id(id) => Ok(id.clone()),
            Self::Uri { uri, identifier } => {
                let ns = index_of(uri).ok_or_else(|| {
                    format!("the server has no namespace `{uri}` (see its NamespaceArray)")
                })?;
                NodeId::from_str(&format!("ns={ns};{identifier}"))
                    .map_err(|e| format!("`ns={ns};{identifier}`: {e}"))
            }
        }
    }
}

/// The reading quality of an OPC UA status code (see the module documentation).
pub(crate) fn quality_of(status: StatusCode) -> u8 {
    if status.is_good() {
        100
    } else if status.is_uncertain() {
        UNCERTAIN_QUALITY
    } else {
        0
    }
}

/// `BadSensorFailure (0x808B0000)`.
pub(crate) fn describe(status: StatusCode) -> String {
    format!("{} (0x{:08X})", status, status.bits())
}

/// A numeric value of a variant (booleans as 0/1); `None` for anything else.
pub(crate) fn number(v: &Variant) -> Option<f64> {
    match v {
        Variant::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        other => other.as_f64(),
    }
}

/// What a data change of a node becomes.
#[derive(Debug, PartialEq)]
pub(crate) enum Change {
    /// A reading (of any quality).
    Reading(IncomingReading),
    /// The value is not a number: nothing to read (the reason is logged, counted and the
    /// value dead-lettered).
    NotNumeric(String),
    /// A data change without a value (a variable not written yet, an empty variant) of good
    /// or uncertain quality: nothing to read, and nothing wrong.
    Empty,
}

/// The mapping of one monitored node.
#[derive(Clone, Debug)]
pub(crate) struct Mapped {
    /// The sensor it feeds.
    pub(crate) sensor: SensorRef,
    /// The configured unit.
    pub(crate) unit: Option<String>,
}

/// Turns the data value of `node` into a reading; `last_good` is the node's last good value.
pub(crate) fn to_change(
    node: &Mapped,
    value: &DataValue,
    last_good: Option<f64>,
    now: Timestamp,
) -> Change {
    let status = value.status.unwrap_or(StatusCode::Good);
    let quality = quality_of(status);
    let number = value.value.as_ref().and_then(number);
    let value_f = match (number, quality) {
        (Some(v), _) if v.is_finite() => v,
        // A bad value without a usable number: keep the last good value.
        (_, 0) => last_good.unwrap_or(0.0),
        (Some(v), _) => return Change::NotNumeric(format!("not a finite number: {v}")),
        (None, _) => {
            return match &value.value {
                None | Some(Variant::Empty) => Change::Empty,
                Some(v) => Change::NotNumeric(format!("not a number: {:?}", v.type_id())),
            };
        }
    };
    let timestamp = value
        .source_timestamp
        .or(value.server_timestamp)
        .map(|t| t.as_chrono())
        // OPC UA's null DateTime (1601) means "not given".
        .filter(|t| t.timestamp() > 0)
        .unwrap_or(now);
    let mut metadata = BTreeMap::new();
    if quality < 100 {
        metadata.insert(IncomingReading::QUALITY_REASON.into(), describe(status));
    }
    Change::Reading(IncomingReading {
        timestamp,
        asset_id: None,
        sensor: node.sensor.clone(),
        value: value_f,
        unit: node.unit.clone(),
        quality: Quality::new(i64::from(quality)).unwrap_or_default(),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped() -> Mapped {
        Mapped {
            sensor: SensorRef::Code("P1-TEMP".into()),
            unit: Some("degC".into()),
        }
    }

    fn dv(v: Option<Variant>, status: StatusCode) -> DataValue {
        DataValue {
            value: v,
            status: Some(status),
            source_timestamp: None,
            source_picoseconds: None,
            server_timestamp: None,
            server_picoseconds: None,
        }
    }

    fn reading(c: Change) -> IncomingReading {
        match c {
            Change::Reading(r) => r,
            other => panic!("reading expected, got {other:?}"),
        }
    }

    #[test]
    fn node_ids_parse_in_every_documented_form() {
        assert_eq!(
            NodeRef::parse("ns=2;s=Line1.Temperature"),
            Ok(NodeRef::Id(NodeId::new(2, "Line1.Temperature")))
        );
        assert_eq!(
            NodeRef::parse("i=2258"),
            Ok(NodeRef::Id(NodeId::new(0, 2258u32)))
        );
        let uri = NodeRef::parse("nsu=urn:plant:line1;s=Temp").expect("valid");
        assert_eq!(
            uri.resolve(|u| (u == "urn:plant:line1").then_some(4)),
            Ok(NodeId::new(4, "Temp"))
        );
        assert!(
            uri.resolve(|_| None)
                .is_err_and(|e| e.contains("urn:plant:line1"))
        );
        for bad in ["", "Temperature", "ns=x;s=a", "nsu=;s=a", "nsu=urn:a"] {
            assert!(NodeRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_codes_map_to_quality_by_severity() {
        assert_eq!(quality_of(StatusCode::Good), 100);
        assert_eq!(quality_of(StatusCode::UncertainLastUsableValue), 50);
        assert_eq!(quality_of(StatusCode::BadSensorFailure), 0);
        assert_eq!(quality_of(StatusCode::BadCommunicationError), 0);
    }

    #[test]
    fn a_good_value_is_a_full_quality_reading() {
        let r = reading(to_change(
            &mapped(),
            &dv(Some(Variant::Float(21.5)), StatusCode::Good),
            None,
            chrono::Utc::now(),
        ));
        assert_eq!((r.value, r.quality.get()), (21.5, 100));
        assert_eq!(r.unit.as_deref(), Some("degC"));
        assert!(r.metadata.is_empty());
        let b = reading(to_change(
            &mapped(),
            &dv(Some(Variant::Boolean(true)), StatusCode::Good),
            None,
            chrono::Utc::now(),
        ));
        assert_eq!(b.value, 1.0);
    }

    #[test]
    fn a_bad_value_keeps_the_last_good_one_and_says_why() {
        let r = reading(to_change(
            &mapped(),
            &dv(None, StatusCode::BadSensorFailure),
            Some(20.0),
            chrono::Utc::now(),
        ));
        assert_eq!((r.value, r.quality.get()), (20.0, 0));
        let reason = &r.metadata[IncomingReading::QUALITY_REASON];
        assert!(reason.starts_with("BadSensorFailure"), "{reason}");
        let u = reading(to_change(
            &mapped(),
            &dv(
                Some(Variant::Double(3.0)),
                StatusCode::UncertainLastUsableValue,
            ),
            None,
            chrono::Utc::now(),
        ));
        assert_eq!((u.value, u.quality.get()), (3.0, 50));
    }

    #[test]
    fn a_text_value_is_not_a_reading() {
        let c = to_change(
            &mapped(),
            &dv(Some(Variant::from("running")), StatusCode::Good),
            None,
            chrono::Utc::now(),
        );
        assert!(matches!(c, Change::NotNumeric(_)), "{c:?}");
    }

    /// A variable not written yet reports a data change without a value: nothing to read and
    /// nothing to dead-letter (the demo plant's OPC UA server does so for every node at first).
    #[test]
    fn a_change_without_a_value_is_nothing() {
        for value in [None, Some(Variant::Empty)] {
            let c = to_change(
                &mapped(),
                &dv(value, StatusCode::Good),
                None,
                chrono::Utc::now(),
            );
            assert_eq!(c, Change::Empty);
        }
    }
}
