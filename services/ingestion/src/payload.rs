//! The JSON shapes readings arrive in, parsed with an error that points at the bad field.

use mantis_domain::json::{
    JsonBody, JsonBudget, JsonLimitError, OBJECT_WEIGHT, VALUES_PER_READING,
};
use mantis_domain::{AssetId, IncomingReading, Quality, SensorId, SensorRef, Timestamp};
use mantis_runtime::{FieldError, Problem};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The budget of JSON values of a request of at most `max_batch` readings.
fn budget(max_batch: usize) -> JsonBudget {
    JsonBudget::new(max_batch.max(1).saturating_mul(VALUES_PER_READING))
}

/// The 400 for a body refused while it was read (not JSON, or past a limit).
fn unreadable(e: JsonLimitError, max_batch: usize) -> Problem {
    match e {
        JsonLimitError::TooManyItems(_) => Problem::bad_request(format!(
            "the batch has more than {max_batch} readings; at most {max_batch} are accepted per request"
        )),
        JsonLimitError::TooManyValues(n) => Problem::bad_request(format!(
            "the body holds more than {n} JSON values ({VALUES_PER_READING} per reading of a \
             batch of at most {max_batch}, an object counting {OBJECT_WEIGHT}): split it"
        )),
        e => Problem::bad_request(format!("the body is {e}")),
    }
}

/// Parses a request body: one reading object or an array of them (at most `max_batch`).
/// Every invalid field is reported with a JSON pointer (`/3/value`). A batch over the limit
/// is refused as soon as its reading passes it, not after the whole body was parsed.
pub fn parse_body(body: &[u8], max_batch: usize) -> Result<Vec<IncomingReading>, Problem> {
    let (items, batch) = match budget(max_batch).read(body, max_batch) {
        Ok(JsonBody::Many(items)) => (items, true),
        Ok(JsonBody::One(obj @ Value::Object(_))) => (vec![obj], false),
        Ok(JsonBody::One(_)) => {
            return Err(Problem::bad_request(
                "the body must be a reading object or an array of reading objects",
            ));
        }
        Err(e) => return Err(unreadable(e, max_batch)),
    };
    if items.is_empty() {
        return Err(Problem::bad_request("the batch is empty"));
    }
    let mut readings = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = if batch {
            format!("/{i}")
        } else {
            String::new()
        };
        match parse_reading(item) {
            Ok(r) => readings.push(r),
            Err(errs) => errors.extend(errs.into_iter().map(|(field, detail)| FieldError {
                pointer: format!("{prefix}/{field}"),
                detail,
            })),
        }
    }
    if errors.is_empty() {
        Ok(readings)
    } else {
        let first = errors
            .first()
            .map(|e| format!("{}: {}", e.pointer, e.detail))
            .unwrap_or_default();
        let mut p =
            Problem::bad_request(format!("{} invalid field(s); first: {first}", errors.len()));
        p.errors = errors;
        Err(p)
    }
}

/// Parses an NDJSON body (`application/x-ndjson`): one reading object per line, blank lines
/// ignored, at most `max_batch` readings. Returns the readings with their 1-based line
/// numbers; every invalid field is reported with a pointer `/line/<n>/<field>`.
pub fn parse_ndjson(
    body: &[u8],
    max_batch: usize,
) -> Result<(Vec<IncomingReading>, Vec<usize>), Problem> {
    let mut readings = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut budget = budget(max_batch);
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if lines.len() >= max_batch {
            return Err(Problem::bad_request(format!(
                "the body has more than {max_batch} readings; at most {max_batch} are accepted per request"
            )));
        }
        let item: Value = match budget.read_value(line) {
            Ok(v) => v,
            Err(e @ JsonLimitError::TooManyValues(_)) => return Err(unreadable(e, max_batch)),
            Err(e) => {
                errors.push(FieldError {
                    pointer: format!("/line/{line_no}"),
                    detail: e.to_string(),
                });
                lines.push(line_no);
                continue;
            }
        };
        lines.push(line_no);
        match parse_reading(&item) {
            Ok(r) => readings.push(r),
            Err(errs) => errors.extend(errs.into_iter().map(|(field, detail)| FieldError {
                pointer: if field.is_empty() {
                    format!("/line/{line_no}")
                } else {
                    format!("/line/{line_no}/{field}")
                },
                detail,
            })),
        }
    }
    if lines.is_empty() {
        return Err(Problem::bad_request("the body holds no reading"));
    }
    if errors.is_empty() {
        Ok((readings, lines))
    } else {
        let first = errors
            .first()
            .map(|e| format!("{}: {}", e.pointer, e.detail))
            .unwrap_or_default();
        let mut p =
            Problem::bad_request(format!("{} invalid field(s); first: {first}", errors.len()));
        p.errors = errors;
        Err(p)
    }
}

pub(crate) type FieldErrors = Vec<(&'static str, String)>;

pub(crate) fn parse_reading(item: &Value) -> Result<IncomingReading, FieldErrors> {
    let Some(obj) = item.as_object() else {
        return Err(vec![("", "a reading must be a JSON object".into())]);
    };
    let mut errs: FieldErrors = Vec::new();
    let timestamp = parse_timestamp(obj, &mut errs);
    let asset_id = match obj.get("assetId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match AssetId::parse(s) {
            Ok(id) => Some(id),
            Err(_) => {
                errs.push(("assetId", format!("`{s}` is not a UUID")));
                None
            }
        },
        Some(_) => {
            errs.push(("assetId", "must be a UUID string".into()));
            None
        }
    };
    let sensor = match (obj.get("sensorId"), obj.get("sensorCode")) {
        (Some(Value::String(s)), _) => match SensorId::parse(s) {
            Ok(id) => Some(SensorRef::Id(id)),
            Err(_) => {
                errs.push(("sensorId", format!("`{s}` is not a UUID")));
                None
            }
        },
        (Some(_), _) => {
            errs.push(("sensorId", "must be a UUID string".into()));
            None
        }
        (None, Some(Value::String(code))) if !code.trim().is_empty() => {
            Some(SensorRef::Code(code.trim().to_owned()))
        }
        (None, Some(_)) => {
            errs.push(("sensorCode", "must be a non-empty string".into()));
            None
        }
        (None, None) => {
            errs.push(("sensorId", "is required (or give sensorCode)".into()));
            None
        }
    };
    let value = match obj.get("value") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => {
            errs.push(("value", "must be a number".into()));
            None
        }
        None => {
            errs.push(("value", "is required".into()));
            None
        }
    };
    let unit = match obj.get("unit") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(("unit", "must be a string".into()));
            None
        }
    };
    let quality = match obj.get("quality") {
        None | Some(Value::Null) => Some(Quality::GOOD),
        Some(v) => match v.as_i64().map(Quality::new) {
            Some(Ok(q)) => Some(q),
            _ => {
                errs.push(("quality", "must be an integer within 0..=100".into()));
                None
            }
        },
    };
    let metadata = parse_metadata(obj, &mut errs);
    match (timestamp, sensor, value, quality, errs.is_empty()) {
        (Some(timestamp), Some(sensor), Some(value), Some(quality), true) => Ok(IncomingReading {
            timestamp,
            asset_id,
            sensor,
            value,
            unit,
            quality,
            metadata,
        }),
        _ => Err(errs),
    }
}

fn parse_timestamp(obj: &Map<String, Value>, errs: &mut FieldErrors) -> Option<Timestamp> {
    match obj.get("timestamp") {
        Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                errs.push((
                    "timestamp",
                    format!("`{s}` is not an RFC 3339 date-time: {e}"),
                ));
                None
            }
        },
        Some(Value::Number(n)) => match n.as_i64().and_then(mantis_domain::timestamp_from_millis) {
            Some(t) => Some(t),
            None => {
                errs.push((
                    "timestamp",
                    "must be milliseconds since the Unix epoch or an RFC 3339 string".into(),
                ));
                None
            }
        },
        Some(_) => {
            errs.push((
                "timestamp",
                "must be an RFC 3339 string or epoch milliseconds".into(),
            ));
            None
        }
        None => {
            errs.push(("timestamp", "is required".into()));
            None
        }
    }
}

fn parse_metadata(obj: &Map<String, Value>, errs: &mut FieldErrors) -> BTreeMap<String, String> {
    match obj.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => {
            let mut out = BTreeMap::new();
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    Value::Number(_) | Value::Bool(_) => {
                        out.insert(k.clone(), v.to_string());
                    }
                    _ => errs.push(("metadata", format!("value of `{k}` must be a string"))),
                }
            }
            if let Err(e) = IncomingReading::check_metadata_size(&out) {
                errs.push(("metadata", e));
            }
            out
        }
        Some(_) => {
            errs.push(("metadata", "must be an object of strings".into()));
            BTreeMap::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENSOR: &str = "4b0b6f0e-4c8e-4c5e-9d43-1f3f0b1e9a11";

    #[test]
    fn parses_a_single_reading_and_a_batch() {
        let one = format!(
            r#"{{"timestamp":"2026-11-23T10:00:00Z","sensorId":"{SENSOR}","value":4.2,"unit":"mm/s"}}"#
        );
        let r = parse_body(one.as_bytes(), 10).expect("valid");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].value, 4.2);
        assert_eq!(r[0].quality, Quality::GOOD);
        let batch = format!(
            r#"[{{"timestamp":1763892000000,"sensorCode":"MTR-1-VIB","value":1,"quality":40}},{{"timestamp":"2026-11-23T10:00:01+01:00","sensorId":"{SENSOR}","value":-3}}]"#
        );
        let r = parse_body(batch.as_bytes(), 10).expect("valid");
        assert_eq!(r[0].sensor, SensorRef::Code("MTR-1-VIB".into()));
        assert_eq!(r[0].quality.get(), 40);
        assert_eq!(r[1].timestamp.to_rfc3339(), "2026-11-23T09:00:01+00:00");
    }

    #[test]
    fn metadata_beyond_the_size_limit_is_refused_with_its_pointer() {
        let big = "x".repeat(IncomingReading::MAX_METADATA_BYTES);
        let body = format!(
            r#"{{"timestamp":"2026-11-23T10:00:00Z","sensorId":"{SENSOR}","value":1,"metadata":{{"note":"{big}"}}}}"#
        );
        let err = parse_body(body.as_bytes(), 10).expect_err("too much metadata");
        assert!(format!("{err:?}").contains("/metadata"), "{err:?}");
    }

    #[test]
    fn every_bad_field_is_named_with_a_pointer() {
        let body = format!(
            r#"[{{"timestamp":"2026-11-23T10:00:00Z","sensorId":"{SENSOR}","value":1}},{{"timestamp":"yesterday","sensorId":"nope","value":"high","quality":101}}]"#
        );
        let p = parse_body(body.as_bytes(), 10).expect_err("invalid");
        assert_eq!(p.status, 400);
        let pointers: Vec<&str> = p.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec!["/1/timestamp", "/1/sensorId", "/1/value", "/1/quality"]
        );
    }

    #[test]
    fn refuses_non_json_empty_and_oversized_bodies() {
        assert!(parse_body(b"not json", 10).is_err());
        assert!(
            parse_body(b"[]", 10)
                .expect_err("empty")
                .detail
                .contains("empty")
        );
        assert!(parse_body(b"42", 10).is_err());
        let body = format!(
            "[{}]",
            [r#"{"timestamp":0,"sensorCode":"x","value":1}"#; 3].join(",")
        );
        assert!(
            parse_body(body.as_bytes(), 2)
                .expect_err("too big")
                .detail
                .contains("at most 2")
        );
    }

    #[test]
    fn a_body_of_more_json_values_than_its_readings_need_is_refused_while_read() {
        // A reading whose metadata has 700 entries (1 423 values: its two objects count 8
        // each) is taken in a request of at most 100 readings (16 000 values: the budget is the
        // request's, not each reading's); twelve of them are not.
        let metadata: Vec<String> = (0..700).map(|i| format!(r#""k{i}":"v""#)).collect();
        let one = format!(
            r#"{{"timestamp":0,"sensorCode":"x","value":1,"metadata":{{{}}}}}"#,
            metadata.join(",")
        );
        assert!(parse_body(one.as_bytes(), 100).is_ok());
        let many = format!("[{}]", [one.as_str(); 12].join(","));
        let p = parse_body(many.as_bytes(), 100).expect_err("too many values");
        assert_eq!(p.status, 400);
        assert!(
            p.detail.contains("more than 16000 JSON values"),
            "{}",
            p.detail
        );
        // NDJSON: the lines share the request's budget.
        let lines = [one.as_str(); 12].join("\n");
        let p = parse_ndjson(lines.as_bytes(), 100).expect_err("too many values");
        assert!(
            p.detail.contains("more than 16000 JSON values"),
            "{}",
            p.detail
        );
        // Not JSON: said so, as before.
        assert!(
            parse_body(b"{", 10)
                .expect_err("not json")
                .detail
                .starts_with("the body is not valid JSON")
        );
    }

    #[test]
    fn ndjson_has_one_reading_per_line_and_line_pointers() {
        let body = format!(
            "{{\"timestamp\":1763892000000,\"sensorCode\":\"A\",\"value\":1}}\n\n{{\"timestamp\":\"2026-11-23T10:00:00Z\",\"sensorId\":\"{SENSOR}\",\"value\":2}}\r\n"
        );
        let (readings, lines) = parse_ndjson(body.as_bytes(), 10).expect("valid");
        assert_eq!(readings.len(), 2);
        assert_eq!(lines, vec![1, 3], "blank lines are skipped but counted");
        assert_eq!(readings[1].value, 2.0);

        let bad = "{\"timestamp\":0,\"sensorCode\":\"A\",\"value\":1}\n{\"timestamp\":0,\"value\":\"x\"}\nnot json\n[1]\n";
        let p = parse_ndjson(bad.as_bytes(), 10).expect_err("invalid");
        let pointers: Vec<&str> = p.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            vec!["/line/2/sensorId", "/line/2/value", "/line/3", "/line/4"]
        );
    }

    #[test]
    fn ndjson_refuses_empty_and_oversized_bodies() {
        assert!(
            parse_ndjson(b"\n \n", 10)
                .expect_err("empty")
                .detail
                .contains("no reading")
        );
        let line = r#"{"timestamp":0,"sensorCode":"x","value":1}"#;
        let body = [line; 3].join("\n");
        assert!(parse_ndjson(body.as_bytes(), 3).is_ok());
        assert!(
            parse_ndjson(body.as_bytes(), 2)
                .expect_err("too big")
                .detail
                .contains("at most 2")
        );
    }

    #[test]
    fn missing_fields_are_required() {
        let p = parse_body(b"{}", 10).expect_err("invalid");
        let pointers: Vec<&str> = p.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/timestamp", "/sensorId", "/value"]);
    }
}
