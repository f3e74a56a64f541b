//! MQTT message → readings (pure). Accepted payloads:
//!
//! - one reading object, in the REST shape (`{"timestamp":…,"sensorCode":"P1-TEMP","value":…}`)
//!   or the seed's device shape (`{"sensor_id":"TEMP-001","temperature":22.3,"timestamp":…,
//!   "unit":"celsius"}`: the value is the member named by the topic's `{type}` level, or the
//!   only numeric member besides the known ones);
//! - an array of such objects (a batch);
//! - a bare JSON number or boolean (the value; the sensor comes from the topic).
//!
//! The sensor is, in this order: the explicit topic map of the configuration, the payload's
//! `sensorId`/`sensor_id`/`sensorCode`/`sensor_code` (a UUID is an id, anything else a code),
//! the configured template over the topic levels. `timestamp` (or `ts`) is RFC 3339 or epoch
//! milliseconds (numbers below 10^11 are taken as epoch seconds); without one the reading is
//! stamped with the time the message arrived. Invalid elements of a batch are reported one by
//! one; the valid ones are kept.

use mantis_domain::json::{JsonBody, JsonBudget, VALUES_PER_READING};
use mantis_domain::{AssetId, IncomingReading, Quality, SensorRef, Timestamp};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What the topic says about a message.
#[derive(Clone, Debug, Default)]
pub(crate) struct TopicInfo {
    /// From the explicit topic map.
    pub(crate) mapped: Option<SensorRef>,
    /// From the template over the topic levels.
    pub(crate) templated: Option<SensorRef>,
    /// The `{type}` level, naming the value member of the device shape.
    pub(crate) value_member: Option<String>,
}

/// Members with a meaning of their own (never taken as the value).
const KNOWN: [&str; 14] = [
    "timestamp",
    "ts",
    "sensorId",
    "sensor_id",
    "sensorCode",
    "sensor_code",
    "assetId",
    "asset_id",
    "unit",
    "quality",
    "metadata",
    "device_id",
    "deviceId",
    "sensor_type",
];

/// Readings one message may carry (a batch of more is refused whole, as the REST API refuses a
/// request of more): a reading takes about 160 bytes held, ten times its JSON, so a 1-MiB
/// message of tiny objects would otherwise hold ~90 000 of them, and a batch of messages
/// millions.
pub(crate) const MAX_READINGS_PER_MESSAGE: usize = 10_000;

/// Parses one message. Returns the readings found and a description of each invalid part
/// (`[2]: value is missing`); never panics on any input.
pub(crate) fn parse_message(
    payload: &[u8],
    topic: &TopicInfo,
    received_at: Timestamp,
) -> (Vec<IncomingReading>, Vec<String>) {
    let mut budget = JsonBudget::new(MAX_READINGS_PER_MESSAGE * VALUES_PER_READING);
    let value = match budget.read(payload, MAX_READINGS_PER_MESSAGE) {
        Ok(JsonBody::One(v)) => v,
        Ok(JsonBody::Many(items)) => Value::Array(items),
        Err(mantis_domain::json::JsonLimitError::Syntax(e)) => {
            return (Vec::new(), vec![format!("the payload is not JSON: {e}")]);
        }
        Err(e) => {
            return (
                Vec::new(),
                vec![format!(
                    "the payload holds {e}; a message carries at most {MAX_READINGS_PER_MESSAGE} readings"
                )],
            );
        }
    };
    let mut readings = Vec::new();
    let mut errors = Vec::new();
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                errors.push("the batch is empty".into());
            }
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(obj) => match parse_object(obj, topic, received_at) {
                        Ok(r) => readings.push(r),
                        Err(e) => errors.push(format!("[{i}]: {e}")),
                    },
                    _ => errors.push(format!("[{i}]: a reading must be a JSON object")),
                }
            }
        }
        Value::Object(obj) => match parse_object(&obj, topic, received_at) {
            Ok(r) => readings.push(r),
            Err(e) => errors.push(e),
        },
        Value::Number(_) | Value::Bool(_) => match (number(&value), topic_sensor(topic)) {
            (Some(v), Some(sensor)) => readings.push(reading(sensor, v, received_at)),
            (_, None) => errors.push(
                "a bare value needs the sensor from the topic (map or template), which gave none"
                    .into(),
            ),
            (None, _) => errors.push("the value is not a finite number".into()),
        },
        _ => {
            errors.push("the payload must be a reading object, an array of them or a number".into())
        }
    }
    (readings, errors)
}

fn topic_sensor(topic: &TopicInfo) -> Option<SensorRef> {
    topic.mapped.clone().or_else(|| topic.templated.clone())
}

fn reading(sensor: SensorRef, value: f64, at: Timestamp) -> IncomingReading {
    IncomingReading {
        timestamp: at,
        asset_id: None,
        sensor,
        value,
        unit: None,
        quality: Quality::GOOD,
        metadata: BTreeMap::new(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn string_member<'a>(
    obj: &'a Map<String, Value>,
    names: &[&str],
) -> Result<Option<&'a str>, String> {
    for name in names {
        match obj.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if !s.trim().is_empty() => return Ok(Some(s.as_str())),
            Some(_) => return Err(format!("`{name}` must be a non-empty string")),
        }
    }
    Ok(None)
}

fn parse_object(
    obj: &Map<String, Value>,
    topic: &TopicInfo,
    received_at: Timestamp,
) -> Result<IncomingReading, String> {
    let from_payload = string_member(obj, &["sensorId", "sensor_id"])?
        .or(string_member(obj, &["sensorCode", "sensor_code"])?)
        .map(SensorRef::parse);
    let sensor = topic
        .mapped
        .clone()
        .or(from_payload)
        .or_else(|| topic.templated.clone())
        .ok_or("no sensor: the payload names none and the topic does not match the hierarchy")?;
    let value = match obj.get("value") {
        Some(v) => number(v).ok_or("`value` must be a number")?,
        None => value_member(obj, topic)?,
    };
    let timestamp = match obj.get("timestamp").or_else(|| obj.get("ts")) {
        None | Some(Value::Null) => received_at,
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| format!("`timestamp` `{s}` is not an RFC 3339 date-time: {e}"))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|t| {
                if t.unsigned_abs() < 100_000_000_000 {
                    t.saturating_mul(1000)
                } else {
                    t
                }
            })
            .and_then(mantis_domain::timestamp_from_millis)
            .ok_or("`timestamp` must be epoch milliseconds (or seconds) or RFC 3339")?,
        Some(_) => return Err("`timestamp` must be a string or a number".into()),
    };
    let asset_id = match string_member(obj, &["assetId", "asset_id"])? {
        Some(s) => Some(AssetId::parse(s).map_err(|_| format!("`assetId` `{s}` is not a UUID"))?),
        None => None,
    };
    let unit = string_member(obj, &["unit"])?.map(str::to_owned);
    let quality = match obj.get("quality") {
        None | Some(Value::Null) => Quality::GOOD,
        Some(v) => v
            .as_i64()
            .and_then(|q| Quality::new(q).ok())
            .ok_or("`quality` must be an integer within 0..=100")?,
    };
    let mut metadata = BTreeMap::new();
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        metadata.insert(k.clone(), s.clone());
                    }
                    Value::Number(_) | Value::Bool(_) => {
                        metadata.insert(k.clone(), v.to_string());
                    }
                    _ => return Err(format!("`metadata.{k}` must be a string")),
                }
            }
        }
        Some(_) => return Err("`metadata` must be an object of strings".into()),
    }
    IncomingReading::check_metadata_size(&metadata).map_err(|e| format!("`metadata`: {e}"))?;
    Ok(IncomingReading {
        timestamp,
        asset_id,
        sensor,
        value,
        unit,
        quality,
        metadata,
    })
}

/// The value of the device shape: the member named by the `{type}` level, else the only
/// numeric member that has no meaning of its own.
fn value_member(obj: &Map<String, Value>, topic: &TopicInfo) -> Result<f64, String> {
    if let Some(name) = &topic.value_member
        && let Some(v) = obj.get(name)
    {
        return number(v).ok_or_else(|| format!("`{name}` must be a number"));
    }
    let candidates: Vec<(&String, f64)> = obj
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .filter_map(|(k, v)| number(v).map(|n| (k, n)))
        .collect();
    match candidates.as_slice() {
        [(_, v)] => Ok(*v),
        [] => Err("`value` is missing".into()),
        _ => Err(format!(
            "`value` is missing and {} numeric members could be it",
            candidates.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        mantis_domain::timestamp_from_millis(1_763_892_000_000).expect("valid")
    }

    fn topic(code: &str, kind: &str) -> TopicInfo {
        TopicInfo {
            mapped: None,
            templated: Some(SensorRef::Code(code.into())),
            value_member: Some(kind.into()),
        }
    }

    #[test]
    fn metadata_beyond_the_size_limit_is_refused() {
        let t = topic("P1-VIB", "vibration");
        let big = "x".repeat(IncomingReading::MAX_METADATA_BYTES);
        let payload = format!(r#"{{"value":1,"metadata":{{"note":"{big}"}}}}"#);
        let (r, e) = parse_message(payload.as_bytes(), &t, at());
        assert!(r.is_empty());
        assert!(e[0].contains("metadata"), "{e:?}");
    }

    #[test]
    fn the_rest_shape_and_a_batch_are_read() {
        let t = topic("FROM-TOPIC", "vibration");
        let (r, e) = parse_message(
            br#"{"timestamp":"2026-11-23T10:00:00Z","sensorCode":"P1-VIB","value":4.5,"unit":"mm/s","quality":80}"#,
            &t,
            at(),
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r[0].sensor, SensorRef::Code("P1-VIB".into()));
        assert_eq!(r[0].value, 4.5);
        assert_eq!(r[0].quality.get(), 80);
        assert_eq!(r[0].unit.as_deref(), Some("mm/s"));
        let (r, e) = parse_message(
            br#"[{"timestamp":1763892000000,"value":1},{"timestamp":1763892001,"value":2},{"value":"x"}]"#,
            &t,
            at(),
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].sensor, SensorRef::Code("FROM-TOPIC".into()));
        // Epoch seconds are recognised.
        assert_eq!(r[1].timestamp.timestamp_millis(), 1_763_892_001_000);
        assert_eq!(e, vec!["[2]: `value` must be a number".to_string()]);
    }

    #[test]
    fn the_seed_device_shape_takes_its_value_from_the_type_level() {
        let t = topic("ignored", "temperature");
        let (r, e) = parse_message(
            br#"{"sensor_id":"TEMP-001","temperature":22.3,"timestamp":"2025-01-15T10:30:45.123Z","unit":"celsius"}"#,
            &t,
            at(),
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r[0].sensor, SensorRef::Code("TEMP-001".into()));
        assert_eq!(r[0].value, 22.3);
        assert_eq!(r[0].timestamp.timestamp_millis() % 1000, 123);
        // Without a {type} level, the only numeric member is the value.
        let (r, _) = parse_message(
            br#"{"sensor_id":"T","pressure":3}"#,
            &TopicInfo::default(),
            at(),
        );
        assert_eq!(r[0].value, 3.0);
        assert_eq!(r[0].timestamp, at());
    }

    #[test]
    fn the_explicit_map_wins_and_bare_values_use_the_topic() {
        let t = TopicInfo {
            mapped: Some(SensorRef::Code("MAPPED".into())),
            templated: Some(SensorRef::Code("TEMPLATED".into())),
            value_member: None,
        };
        let (r, _) = parse_message(br#"{"sensorCode":"PAYLOAD","value":1}"#, &t, at());
        assert_eq!(r[0].sensor, SensorRef::Code("MAPPED".into()));
        let (r, e) = parse_message(b" 42.5 ", &t, at());
        assert!(e.is_empty());
        assert_eq!((r[0].value, r[0].timestamp), (42.5, at()));
        let (r, _) = parse_message(b"true", &t, at());
        assert_eq!(r[0].value, 1.0);
    }

    #[test]
    fn garbage_never_panics_and_is_explained() {
        let t = TopicInfo::default();
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"{",
            b"\"text\"",
            b"null",
            b"[]",
            b"[1]",
            b"{\"value\":1}",
            b"{\"sensorCode\":\"S\",\"a\":1,\"b\":2}",
            b"{\"sensorCode\":\"S\",\"value\":1,\"quality\":101}",
            b"{\"sensorCode\":\"S\",\"value\":1,\"timestamp\":\"yesterday\"}",
            b"{\"sensorCode\":\"S\",\"value\":1,\"timestamp\":99999999999999999}",
            b"{\"sensorCode\":\"S\",\"value\":1,\"assetId\":\"nope\"}",
            b"{\"sensorCode\":\"S\",\"value\":1,\"timestamp\":-9223372036854775808}",
            b"42",
        ] {
            let (r, e) = parse_message(bad, &t, at());
            assert!(r.is_empty(), "{:?}", String::from_utf8_lossy(bad));
            assert!(!e.is_empty(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_message_of_more_readings_than_allowed_is_refused_whole() {
        let t = topic("P1-VIB", "vibration");
        let within = format!(
            "[{}]",
            vec![r#"{"value":1}"#; MAX_READINGS_PER_MESSAGE].join(",")
        );
        let (r, e) = parse_message(within.as_bytes(), &t, at());
        assert_eq!((r.len(), e.len()), (MAX_READINGS_PER_MESSAGE, 0));
        let over = format!(
            "[{}]",
            vec![r#"{"value":1}"#; MAX_READINGS_PER_MESSAGE + 1].join(",")
        );
        let (r, e) = parse_message(over.as_bytes(), &t, at());
        assert!(r.is_empty());
        assert_eq!(
            e,
            vec![format!(
                "the payload holds more than {MAX_READINGS_PER_MESSAGE} items; a message carries at most {MAX_READINGS_PER_MESSAGE} readings"
            )]
        );
    }
}
