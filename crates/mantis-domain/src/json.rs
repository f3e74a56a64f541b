//! JSON from outside read within bounds: how many items a top-level array may have and how many
//! values the whole document may hold (every scalar, array and object key counts one, an object
//! [`OBJECT_WEIGHT`]: what it costs held), both checked while it is read. A body within the byte limit can still hold millions of tiny
//! values (`[{"":0},{"":0},…]`), and a `serde_json::Value` costs tens of bytes each: read whole
//! first, 16 MiB of them take gigabytes before any check on their number could refuse them.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Why a document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonLimitError {
    /// Not JSON (or not one JSON document).
    #[error("not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// The top-level array has more items than allowed.
    #[error("more than {0} items")]
    TooManyItems(usize),
    /// The document holds more values than allowed.
    #[error("more than {0} JSON values")]
    TooManyValues(usize),
}

/// A document's top level: an array's items, or any other value.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonBody {
    /// Not an array: an object, a number, …
    One(Value),
    /// The items of a top-level array.
    Many(Vec<Value>),
}

/// JSON values allowed per reading of a batch (its members, their values, its metadata's):
/// a request of `n` readings may hold `n ×` this many in all: a reading of a dozen members and
/// 50 metadata entries takes about 140, so a full batch of such readings passes; the budget is
/// the request's, so a few readings may carry far more.
pub const VALUES_PER_READING: usize = 160;

/// What an object counts as: a map holds its entries in nodes of several hundred bytes, so a
/// document of tiny objects costs far more held than one of scalars.
pub const OBJECT_WEIGHT: usize = 8;

/// How many JSON values may still be read: one budget for a request, spent by each document
/// read of it (the lines of an NDJSON body share one).
#[derive(Clone, Debug)]
pub struct JsonBudget {
    max_values: usize,
    left: usize,
}

impl JsonBudget {
    /// A budget of `max_values` values in all.
    pub fn new(max_values: usize) -> Self {
        Self {
            max_values,
            left: max_values,
        }
    }

    /// Reads `bytes` as one JSON document whose top-level array (if it is one) has at most
    /// `max_items` items, spending the budget.
    pub fn read(&mut self, bytes: &[u8], max_items: usize) -> Result<JsonBody, JsonLimitError> {
        self.read_with(bytes, |limits, de| Top(limits, max_items).deserialize(de))
    }

    /// Reads `bytes` as one JSON value of any kind (an array as one value), spending the budget.
    pub fn read_value(&mut self, bytes: &[u8]) -> Result<Value, JsonLimitError> {
        self.read_with(bytes, |limits, de| Bounded(limits).deserialize(de))
    }

    fn read_with<T>(
        &mut self,
        bytes: &[u8],
        read: impl FnOnce(
            &Limits,
            &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
        ) -> Result<T, serde_json::Error>,
    ) -> Result<T, JsonLimitError> {
        let limits = Limits {
            max_values: self.max_values,
            left: Cell::new(self.left),
            hit: Cell::new(None),
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let out = read(&limits, &mut de).and_then(|v| de.end().map(|()| v));
        self.left = limits.left.get();
        out.map_err(|e| limits.hit.take().unwrap_or(JsonLimitError::Syntax(e)))
    }
}

struct Limits {
    max_values: usize,
    left: Cell<usize>,
    /// The limit that stopped the reading (its error reaches serde as a message only).
    hit: Cell<Option<JsonLimitError>>,
}

impl Limits {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        self.count_n(1)
    }

    fn count_n<E: de::Error>(&self, n: usize) -> Result<(), E> {
        match self.left.get().checked_sub(n) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(self.stop(JsonLimitError::TooManyValues(self.max_values))),
        }
    }

    fn stop<E: de::Error>(&self, why: JsonLimitError) -> E {
        let error = E::custom(&why);
        self.hit.set(Some(why));
        error
    }
}

/// The top level: an array read item by item (refused past its `.1` items), else one value.
struct Top<'a>(&'a Limits, usize);

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = JsonBody;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JsonBody, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! one {
    ($($method:ident($t:ty)),*) => {
        $(fn $method<E: de::Error>(self, v: $t) -> Result<Self::Value, E> {
            Bounded(self.0).$method(v).map(JsonBody::One)
        })*
    };
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = JsonBody;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    one!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str),
        visit_string(String)
    );

    fn visit_unit<E: de::Error>(self) -> Result<JsonBody, E> {
        Bounded(self.0).visit_unit().map(JsonBody::One)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JsonBody, A::Error> {
        Bounded(self.0).visit_map(map).map(JsonBody::One)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonBody, A::Error> {
        self.0.count()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Bounded(self.0))? {
            if items.len() == self.1 {
                return Err(self.0.stop(JsonLimitError::TooManyItems(self.1)));
            }
            items.push(item);
        }
        Ok(JsonBody::Many(items))
    }
}

/// A `Value` counted against the limit as it is read.
struct Bounded<'a>(&'a Limits);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.count()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.count()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.count()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.count()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.count()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.count()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.count()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.count()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Bounded(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.count_n(OBJECT_WEIGHT)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.0.count()?;
            let value = map.next_value_seed(Bounded(self.0))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `bytes` read with a budget of `max_values` and at most `max_items` top-level items.
    fn read_bounded(
        bytes: &[u8],
        max_items: usize,
        max_values: usize,
    ) -> Result<JsonBody, JsonLimitError> {
        JsonBudget::new(max_values).read(bytes, max_items)
    }

    #[test]
    fn documents_within_the_limits_read_as_serde_json_reads_them() {
        let text =
            r#"[{"a": 1, "b": [true, null, -2, 3.5, "x"], "c": {"d": 18446744073709551615}}, 7]"#;
        let expected: Value = serde_json::from_str(text).expect("json");
        match read_bounded(text.as_bytes(), 2, 100).expect("read") {
            JsonBody::Many(items) => assert_eq!(Value::Array(items), expected),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            read_bounded(br#" {"k": "v"} "#, 1, 10).expect("read"),
            JsonBody::One(json!({"k": "v"}))
        );
        assert_eq!(
            read_bounded(b"42", 0, 1).expect("read"),
            JsonBody::One(json!(42))
        );
        assert_eq!(
            read_bounded(b"[]", 0, 1).expect("read"),
            JsonBody::Many(vec![])
        );
        // Duplicate keys: the last one, as serde_json.
        assert_eq!(
            read_bounded(br#"{"k": 1, "k": 2}"#, 1, 20).expect("read"),
            JsonBody::One(json!({"k": 2}))
        );
    }

    #[test]
    fn an_array_past_its_items_or_a_document_past_its_values_is_refused() {
        assert!(matches!(
            read_bounded(b"[1, 2, 3]", 2, 100),
            Err(JsonLimitError::TooManyItems(2))
        ));
        // The array (1), its two objects (8 each), their keys and values (4): 21.
        let text = br#"[{"a": 1}, {"b": 2}]"#;
        assert!(read_bounded(text, 10, 21).is_ok());
        assert!(matches!(
            read_bounded(text, 10, 20),
            Err(JsonLimitError::TooManyValues(20))
        ));
        // Nested deep inside one item counts the same: 8 + 1 + 3 + 3.
        assert!(read_bounded(br#"{"m": [[[1, 2, 3]]]}"#, 10, 15).is_ok());
        assert!(matches!(
            read_bounded(br#"{"m": [[[1, 2, 3]]]}"#, 10, 14),
            Err(JsonLimitError::TooManyValues(14))
        ));
    }

    #[test]
    fn a_huge_batch_is_refused_after_its_first_items_not_after_reading_it_all() {
        // 2 million tiny objects (14 MB); refused at the 1 001st: the rest is never parsed,
        // so a syntax error after it is not even seen.
        let mut text = String::from("[");
        for _ in 0..2_000_000 {
            text.push_str(r#"{"":0},"#);
        }
        text.push_str("oops]");
        assert!(matches!(
            read_bounded(text.as_bytes(), 1_000, 1_000_000),
            Err(JsonLimitError::TooManyItems(1_000))
        ));
    }

    #[test]
    fn documents_read_with_one_budget_share_it() {
        // 3 values, then 10 more: the budget is spent.
        let mut budget = JsonBudget::new(13);
        assert_eq!(budget.read_value(b"[1, 2]").expect("read"), json!([1, 2]));
        assert_eq!(
            budget.read_value(br#"{"a": 1}"#).expect("read"),
            json!({"a": 1})
        );
        assert!(matches!(
            budget.read_value(b"[]"),
            Err(JsonLimitError::TooManyValues(13))
        ));
    }

    #[test]
    fn what_is_not_one_json_document_is_a_syntax_error() {
        for text in [&b""[..], b"{", b"[1,]", b"1 2", b"{\"a\" 1}", b"NaN"] {
            assert!(
                matches!(read_bounded(text, 10, 10), Err(JsonLimitError::Syntax(_))),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }
}
