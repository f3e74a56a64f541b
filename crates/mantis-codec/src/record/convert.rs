//! Small conversions between Avro values and domain values, shared by every [`Record`]
//! implementation. Reading conversions return a human reason on failure, which the field and
//! record wrappers prefix with where it happened.
//!
//! [`Record`]: crate::Record

use crate::{Error, Result};
use apache_avro::schema::SchemaKind;
use apache_avro::types::Value;
use mantis_domain::{DomainError, Quality, Timestamp, timestamp_from_millis};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::str::FromStr;

/// A conversion's outcome: the value or why it does not fit.
pub(super) type Conv<T> = std::result::Result<T, String>;

// ---- domain → Avro ----------------------------------------------------------------------------

/// A record from its fields, in schema order.
pub(super) fn record<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// A string, an enum symbol or an id (anything displayed).
pub(super) fn text(s: impl Display) -> Value {
    Value::String(s.to_string())
}

/// A `timestamp-millis`.
pub(super) fn millis(t: &Timestamp) -> Value {
    Value::TimestampMillis(t.timestamp_millis())
}

/// A `["null", T]` union.
pub(super) fn nullable(v: Option<Value>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// A map of string keys.
pub(super) fn avro_map<V>(m: &BTreeMap<String, V>, f: impl Fn(&V) -> Value) -> Value {
    Value::Map(m.iter().map(|(k, v)| (k.clone(), f(v))).collect())
}

// ---- Avro → domain ----------------------------------------------------------------------------

/// The fields of a record being read; each is taken once.
pub(super) struct Fields(HashMap<String, Value>);

impl Fields {
    /// Converts field `name` with `conv`.
    pub(super) fn get<T>(&mut self, name: &str, conv: impl FnOnce(Value) -> Conv<T>) -> Conv<T> {
        let value = self
            .0
            .remove(name)
            .ok_or_else(|| format!("field `{name}` is missing"))?;
        conv(value).map_err(|reason| format!("field `{name}`: {reason}"))
    }
}

/// Reads a whole record of `topic` with `build`, turning a failure into [`Error::InvalidRecord`].
pub(super) fn decode<T>(
    topic: &'static str,
    value: Value,
    build: impl FnOnce(&mut Fields) -> Conv<T>,
) -> Result<T> {
    fields(value)
        .and_then(|mut f| build(&mut f))
        .map_err(|reason| Error::InvalidRecord { topic, reason })
}

/// The fields of a (possibly nested) record.
pub(super) fn fields(value: Value) -> Conv<Fields> {
    match value {
        Value::Record(fields) => Ok(Fields(fields.into_iter().collect())),
        other => Err(unexpected("a record", &other)),
    }
}

pub(super) fn string(value: Value) -> Conv<String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(unexpected("a string", &other)),
    }
}

pub(super) fn double(value: Value) -> Conv<f64> {
    match value {
        Value::Double(x) => Ok(x),
        Value::Float(x) => Ok(f64::from(x)),
        other => Err(unexpected("a double", &other)),
    }
}

pub(super) fn long(value: Value) -> Conv<i64> {
    match value {
        Value::Long(x) => Ok(x),
        Value::Int(x) => Ok(i64::from(x)),
        other => Err(unexpected("a long", &other)),
    }
}

pub(super) fn boolean(value: Value) -> Conv<bool> {
    match value {
        Value::Boolean(b) => Ok(b),
        other => Err(unexpected("a boolean", &other)),
    }
}

pub(super) fn timestamp(value: Value) -> Conv<Timestamp> {
    let ms = match value {
        Value::TimestampMillis(ms) | Value::Long(ms) => ms,
        other => return Err(unexpected("a timestamp-millis", &other)),
    };
    timestamp_from_millis(ms).ok_or_else(|| format!("{ms} ms since the epoch is out of range"))
}

/// A typed id from its UUID text.
pub(super) fn id<T>(value: Value) -> Conv<T>
where
    T: FromStr,
    T::Err: Display,
{
    let text = match value {
        Value::Uuid(u) => return u.to_string().parse().map_err(|e: T::Err| e.to_string()),
        Value::String(s) => s,
        other => return Err(unexpected("a UUID string", &other)),
    };
    text.parse()
        .map_err(|e: T::Err| format!("`{text}` is not a UUID: {e}"))
}

/// An enum symbol, parsed into its domain type.
pub(super) fn symbol<T>(
    parse: fn(&str) -> std::result::Result<T, DomainError>,
) -> impl FnOnce(Value) -> Conv<T> {
    move |value| match value {
        Value::Enum(_, s) | Value::String(s) => parse(&s).map_err(|e| e.to_string()),
        other => Err(unexpected("an enum symbol", &other)),
    }
}

pub(super) fn quality(value: Value) -> Conv<Quality> {
    Quality::new(long(value)?).map_err(|e| e.to_string())
}

/// A count that must fit in a `u32`.
pub(super) fn count(value: Value) -> Conv<u32> {
    let n = long(value)?;
    u32::try_from(n).map_err(|_| format!("{n} is not a valid count"))
}

/// A `["null", T]` union.
pub(super) fn optional<T>(
    conv: impl FnOnce(Value) -> Conv<T>,
) -> impl FnOnce(Value) -> Conv<Option<T>> {
    move |value| match value {
        Value::Null => Ok(None),
        Value::Union(_, inner) if *inner == Value::Null => Ok(None),
        Value::Union(_, inner) => conv(*inner).map(Some),
        other => conv(other).map(Some),
    }
}

pub(super) fn array<T>(conv: impl Fn(Value) -> Conv<T>) -> impl FnOnce(Value) -> Conv<Vec<T>> {
    move |value| match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| conv(item).map_err(|reason| format!("item {i}: {reason}")))
            .collect(),
        other => Err(unexpected("an array", &other)),
    }
}

pub(super) fn map<T>(
    conv: impl Fn(Value) -> Conv<T>,
) -> impl FnOnce(Value) -> Conv<BTreeMap<String, T>> {
    move |value| match value {
        Value::Map(entries) => entries
            .into_iter()
            .map(|(k, v)| match conv(v) {
                Ok(v) => Ok((k, v)),
                Err(reason) => Err(format!("key `{k}`: {reason}")),
            })
            .collect(),
        other => Err(unexpected("a map", &other)),
    }
}

fn unexpected(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {:?}", SchemaKind::from(found))
}
