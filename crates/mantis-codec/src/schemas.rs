//! The compiled-in schemas: `schemas/<topic>.v<N>.avsc` at the workspace root, the single source
//! of truth, with the ids the embedded registry gives them.

use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::LazyLock;

/// One version of one topic's schema, compiled into the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddedSchema {
    /// Its id in the [`EmbeddedRegistry`](crate::EmbeddedRegistry); fixed forever.
    pub id: u32,
    /// The topic whose values it describes.
    pub topic: &'static str,
    /// Its version within the topic, from 1.
    pub version: u32,
    /// The schema text (the `.avsc` file).
    pub source: &'static str,
}

impl EmbeddedSchema {
    /// Its file name in `schemas/`, e.g. `sensor.raw.v2.avsc`.
    pub fn file_name(&self) -> String {
        format!("{}.v{}.avsc", self.topic, self.version)
    }

    /// Its registry subject, e.g. `sensor.raw-value`.
    pub fn subject(&self) -> String {
        subject_for(self.topic)
    }

    /// Whether it is the newest version of its topic, the one the codec writes.
    pub fn is_latest(&self) -> bool {
        SCHEMAS
            .iter()
            .all(|s| s.topic != self.topic || s.version <= self.version)
    }
}

/// The registry subject of a topic's record values (Confluent's TopicNameStrategy).
pub fn subject_for(topic: &str) -> String {
    format!("{topic}-value")
}

macro_rules! schema {
    ($id:literal, $topic:literal, $version:literal) => {
        EmbeddedSchema {
            id: $id,
            topic: $topic,
            version: $version,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../schemas/",
                $topic,
                ".v",
                stringify!($version),
                ".avsc"
            )),
        }
    };
}

/// Every schema version this build knows, with its embedded-registry id.
///
/// Ids are fixed forever because stored records carry them: add a version or a topic at the end
/// with the next id; never renumber, reuse or remove one. The tests check that every file in
/// `schemas/` is listed here and that each version is backward compatible with the previous one.
pub const SCHEMAS: &[EmbeddedSchema] = &[
    schema!(1, "sensor.raw", 1),
    schema!(2, "sensor.raw", 2),
    schema!(3, "sensor.windowed", 1),
    schema!(4, "features.extracted", 1),
    schema!(5, "anomaly.detected", 1),
    schema!(6, "rul.predicted", 1),
    schema!(7, "maintenance.scheduled", 1),
    schema!(8, "alerts.critical", 1),
    schema!(9, "data.quality.issues", 1),
    schema!(10, "sensor.windowed", 2),
];

/// The compiled-in schemas, parsed once. They are part of the build, not input, and the test
/// suite parses every one, so a failure here is a broken build rather than a runtime condition.
static PARSED: LazyLock<HashMap<u32, Schema>> = LazyLock::new(|| {
    SCHEMAS
        .iter()
        .map(|s| match Schema::parse_str(s.source) {
            Ok(schema) => (s.id, schema),
            Err(e) => panic!(
                "compiled-in schema {} is not valid Avro: {e}",
                s.file_name()
            ),
        })
        .collect()
});

/// The parsed form of a compiled-in schema.
pub(crate) fn parsed(id: u32) -> Option<&'static Schema> {
    PARSED.get(&id)
}

/// The newest version of every topic.
pub(crate) fn latest() -> impl Iterator<Item = &'static EmbeddedSchema> {
    SCHEMAS.iter().filter(|s| s.is_latest())
}

/// A schema's parsed form as JSON: what the registry compares to recognise a schema it already
/// has (whitespace, key order and non-semantic formatting do not matter; defaults and logical
/// types do, unlike the Avro Parsing Canonical Form, which drops defaults). `None` (never seen
/// in practice) matches nothing.
pub(crate) fn normal_form(schema: &Schema) -> Option<serde_json::Value> {
    serde_json::to_value(schema).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_versions_count_from_one() {
        let mut ids: Vec<u32> = SCHEMAS.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), SCHEMAS.len());
        for s in SCHEMAS {
            assert!(
                (1..=s.version)
                    .all(|v| SCHEMAS.iter().any(|o| o.topic == s.topic && o.version == v)),
                "{} has a gap before it",
                s.file_name()
            );
            assert!(parsed(s.id).is_some());
        }
    }

    #[test]
    fn every_topic_has_exactly_one_latest_version() {
        let latest: Vec<_> = latest().map(|s| s.file_name()).collect();
        assert!(latest.contains(&"sensor.raw.v2.avsc".to_owned()));
        assert!(!latest.contains(&"sensor.raw.v1.avsc".to_owned()));
        assert_eq!(latest.len(), 8);
    }
}
