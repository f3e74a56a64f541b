//! An in-memory registry that starts with every compiled-in schema under its fixed id.

use crate::schemas::{self, SCHEMAS};
use crate::{Error, LatestSchema, Result, SchemaRegistry};
use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use async_trait::async_trait;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A schema registry in memory, for the embedded deployment and tests.
///
/// It knows every schema of [`SCHEMAS`](crate::SCHEMAS) under its fixed id, so records written
/// by any build keep decoding after a restart. Registering one of them (recognised by its parsed
/// form, whatever the formatting) returns that id; registering another schema checks it is
/// backward compatible with the subject's latest version and gives it the next free id, for the
/// life of the process.
pub struct EmbeddedRegistry {
    entries: Mutex<Vec<Entry>>,
}

struct Entry {
    id: u32,
    subject: String,
    version: u32,
    source: String,
    schema: Schema,
    form: Option<serde_json::Value>,
}

impl Entry {
    fn same_schema(&self, form: &Option<serde_json::Value>) -> bool {
        self.form.is_some() && self.form == *form
    }
}

impl EmbeddedRegistry {
    /// A registry holding every compiled-in schema.
    pub fn new() -> Self {
        let entries = SCHEMAS
            .iter()
            .filter_map(|s| {
                let schema = schemas::parsed(s.id)?.clone();
                Some(Entry {
                    id: s.id,
                    subject: s.subject(),
                    version: s.version,
                    source: s.source.to_owned(),
                    form: schemas::normal_form(&schema),
                    schema,
                })
            })
            .collect();
        Self {
            entries: Mutex::new(entries),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Vec<Entry>> {
        // The entries are only ever appended to, so they stay consistent even if a holder panicked.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for EmbeddedRegistry {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl SchemaRegistry for EmbeddedRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        let parsed = Schema::parse_str(schema).map_err(|e| Error::InvalidSchema {
            what: format!("for subject `{subject}`"),
            reason: e.to_string(),
        })?;
        let form = schemas::normal_form(&parsed);
        let mut entries = self.entries();
        if let Some(known) = entries
            .iter()
            .find(|e| e.subject == subject && e.same_schema(&form))
        {
            return Ok(known.id);
        }
        let previous = entries
            .iter()
            .filter(|e| e.subject == subject)
            .max_by_key(|e| e.version);
        if let Some(previous) = previous {
            // BACKWARD: the new schema must read everything the latest one wrote. `Partial`
            // (a writer enum symbol or union branch the reader lacks, with no default) is
            // incompatible for Confluent too.
            let reason = match SchemaCompatibility::can_read(&previous.schema, &parsed) {
                Ok(Compatibility::Full) => None,
                Ok(Compatibility::Partial) => Some(
                    "it cannot read every record of the latest version (an enum symbol or \
                     union branch is missing, with no default)"
                        .to_owned(),
                ),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = reason {
                return Err(Error::Incompatible {
                    subject: subject.to_owned(),
                    reason,
                });
            }
        }
        let version = previous.map_or(1, |p| p.version + 1);
        let id = match entries.iter().find(|e| e.same_schema(&form)) {
            Some(same) => same.id,
            None => entries.iter().map(|e| e.id).max().unwrap_or(0) + 1,
        };
        entries.push(Entry {
            id,
            subject: subject.to_owned(),
            version,
            source: schema.to_owned(),
            schema: parsed,
            form,
        });
        Ok(id)
    }

    async fn schema_by_id(&self, id: u32) -> Result<String> {
        self.entries()
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.source.clone())
            .ok_or(Error::UnknownSchemaId { id })
    }

    async fn latest(&self, subject: &str) -> Result<Option<LatestSchema>> {
        Ok(self
            .entries()
            .iter()
            .filter(|e| e.subject == subject)
            .max_by_key(|e| e.version)
            .map(|e| LatestSchema {
                id: e.id,
                version: e.version,
                schema: e.source.clone(),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUL_V2: &str = r#"{"type":"record","name":"RulPrediction","namespace":"com.mantis.avro",
        "fields":[{"name":"assetId","type":"string"},
        {"name":"predictedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"rulCycles","type":"double"},{"name":"confidenceLower","type":"double"},
        {"name":"confidenceUpper","type":"double"},{"name":"modelVersion","type":"string"},
        {"name":"horizonDays","type":"double","default":30.0}]}"#;

    #[tokio::test]
    async fn compiled_in_schemas_keep_their_ids_whatever_the_formatting() {
        let registry = EmbeddedRegistry::new();
        for s in SCHEMAS {
            let compact = serde_json::to_string(
                &serde_json::from_str::<serde_json::Value>(s.source).expect("valid JSON"),
            )
            .expect("serialisable");
            assert_eq!(
                registry.register(&s.subject(), &compact).await.ok(),
                Some(s.id)
            );
            assert_eq!(
                registry.schema_by_id(s.id).await.ok().as_deref(),
                Some(s.source)
            );
        }
        let latest = registry.latest("sensor.raw-value").await.expect("latest");
        assert_eq!(latest.map(|l| (l.id, l.version)), Some((2, 2)));
        assert_eq!(registry.latest("nope-value").await.ok(), Some(None));
    }

    #[tokio::test]
    async fn a_new_compatible_version_gets_the_next_id_once() {
        let registry = EmbeddedRegistry::new();
        let next = SCHEMAS.iter().map(|s| s.id).max().expect("schemas") + 1;
        assert_eq!(
            registry.register("rul.predicted-value", RUL_V2).await.ok(),
            Some(next)
        );
        assert_eq!(
            registry.register("rul.predicted-value", RUL_V2).await.ok(),
            Some(next)
        );
        let latest = registry
            .latest("rul.predicted-value")
            .await
            .expect("latest");
        assert_eq!(latest.map(|l| (l.id, l.version)), Some((next, 2)));
    }

    #[tokio::test]
    async fn incompatible_and_invalid_schemas_are_refused() {
        let registry = EmbeddedRegistry::new();
        // A new field without a default cannot be read from old records.
        let breaking = RUL_V2.replace(r#","default":30.0"#, "");
        assert!(matches!(
            registry.register("rul.predicted-value", &breaking).await,
            Err(Error::Incompatible { .. })
        ));
        // Dropping an enum symbol without a default: old records with it could not be read.
        let colour =
            |symbols: &str| format!(r#"{{"type":"enum","name":"Colour","symbols":[{symbols}]}}"#);
        assert_eq!(
            registry
                .register("colour-value", &colour(r#""RED","GREEN""#))
                .await
                .ok(),
            // The first id after the compiled-in schemas.
            SCHEMAS.iter().map(|s| s.id).max().map(|id| id + 1)
        );
        assert!(matches!(
            registry.register("colour-value", &colour(r#""RED""#)).await,
            Err(Error::Incompatible { .. })
        ));
        assert!(matches!(
            registry.register("x-value", "{not json").await,
            Err(Error::InvalidSchema { .. })
        ));
        assert!(matches!(
            registry.schema_by_id(4242).await,
            Err(Error::UnknownSchemaId { id: 4242 })
        ));
    }
}
