//! [`Codec`]: writes records with the latest schema of their topic, reads any registered version.

use crate::registry::EmbeddedRegistry;
use crate::schemas;
use crate::{Error, Record, Result, SchemaRegistry, wire};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// Encodes and decodes MANTIS records in the Confluent wire format.
///
/// It writes each topic's latest compiled-in schema, under the id the registry gave it, and
/// reads any version the registry knows: the writer's schema is fetched by the id in the message
/// (once, then cached) and resolved to the topic's latest schema. Cheap to share behind an `Arc`.
pub struct Codec {
    registry: Arc<dyn SchemaRegistry>,
    topics: HashMap<&'static str, TopicSchema>,
    writers: RwLock<HashMap<u32, Arc<Schema>>>,
}

/// The schema a topic is written with, and read into.
struct TopicSchema {
    id: u32,
    schema: Arc<Schema>,
}

impl Codec {
    /// Registers the latest schema of every topic under `<topic>-value` and keeps the ids. A
    /// registry that already has a schema returns its id; one that finds a schema incompatible
    /// refuses it ([`Error::Incompatible`]), which stops the service before it writes anything.
    #[tracing::instrument(skip(registry))]
    pub async fn new(registry: Arc<dyn SchemaRegistry>) -> Result<Self> {
        let mut topics = HashMap::new();
        for s in schemas::latest() {
            let subject = s.subject();
            let schema = schemas::parsed(s.id).ok_or_else(|| Error::InvalidSchema {
                what: s.file_name(),
                reason: "it did not parse".into(),
            })?;
            let id = registry.register(&subject, s.source).await?;
            if let Some(latest) = registry.latest(&subject).await?
                && latest.id != id
            {
                // Not an error: this build still writes a version every reader accepts. But a
                // newer build has registered a newer version, so this one is being replaced.
                tracing::warn!(
                    subject,
                    writing = id,
                    latest = latest.id,
                    "the registry has a newer schema than this build writes"
                );
            }
            tracing::debug!(subject, id, version = s.version, "schema registered");
            topics.insert(
                s.topic,
                TopicSchema {
                    id,
                    schema: Arc::new(schema.clone()),
                },
            );
        }
        Ok(Self::with_topics(registry, topics))
    }

    /// A codec on a fresh [`EmbeddedRegistry`], with the compiled-in ids ([`SCHEMAS`]); no I/O,
    /// hence synchronous. For the embedded deployment and tests.
    ///
    /// [`SCHEMAS`]: crate::SCHEMAS
    pub fn embedded() -> Self {
        let topics = schemas::latest()
            .filter_map(|s| {
                let schema = schemas::parsed(s.id)?.clone();
                Some((
                    s.topic,
                    TopicSchema {
                        id: s.id,
                        schema: Arc::new(schema),
                    },
                ))
            })
            .collect();
        Self::with_topics(Arc::new(EmbeddedRegistry::new()), topics)
    }

    fn with_topics(
        registry: Arc<dyn SchemaRegistry>,
        topics: HashMap<&'static str, TopicSchema>,
    ) -> Self {
        // What this codec writes it also reads, without asking the registry.
        let writers = topics
            .values()
            .map(|t| (t.id, Arc::clone(&t.schema)))
            .collect();
        Self {
            registry,
            topics,
            writers: RwLock::new(writers),
        }
    }

    /// The id of the schema `topic` is written with, `None` for a topic without a schema.
    pub fn schema_id(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(|t| t.id)
    }

    /// Encodes `value` with its topic's latest schema: `0x00`, the schema id, the Avro datum.
    /// No I/O.
    pub fn encode<R: Record>(&self, value: &R) -> Result<Vec<u8>> {
        let topic = self.topic(R::TOPIC)?;
        let failed = |e: apache_avro::Error| Error::Encode {
            topic: R::TOPIC,
            reason: e.to_string(),
        };
        let writer = GenericDatumWriter::builder(&topic.schema)
            .build()
            .map_err(failed)?;
        let mut bytes = wire::header(topic.id, 128);
        writer
            .write_value_ref(&mut bytes, &value.to_avro())
            .map_err(failed)?;
        Ok(bytes)
    }

    /// Decodes a framed record of `R`'s topic, written with any version of its schema. The
    /// writer's schema is fetched from the registry the first time its id is seen.
    pub async fn decode<R: Record>(&self, bytes: &[u8]) -> Result<R> {
        let (id, mut datum) = wire::split(bytes)?;
        let reader = &self.topic(R::TOPIC)?.schema;
        let unreadable = |reason: String| Error::Datum {
            topic: R::TOPIC,
            id,
            reason,
        };
        // A schema id in the message naming a schema that is not Avro (a Protobuf or JSON
        // schema of a shared registry) is the message's fault: the record cannot be read.
        let writer = self.writer_schema(id).await.map_err(|e| match e {
            Error::InvalidSchema { reason, .. } => {
                unreadable(format!("its writer schema is not an Avro schema: {reason}"))
            }
            other => other,
        })?;
        // Avro resolves records of the same name only; say so rather than report a missing field.
        if let (Some(w), Some(r)) = (writer.name(), reader.name())
            && w.name() != r.name()
        {
            return Err(unreadable(format!(
                "it was written as a `{}` record, not `{}`",
                w.name(),
                r.name()
            )));
        }
        let value = GenericDatumReader::builder(&writer)
            .reader_schema(reader)
            .build()
            .and_then(|r| r.read_value(&mut datum))
            .map_err(|e| unreadable(e.to_string()))?;
        if !datum.is_empty() {
            return Err(unreadable(format!(
                "{} bytes are left after the datum",
                datum.len()
            )));
        }
        R::from_avro(value)
    }

    fn topic(&self, topic: &'static str) -> Result<&TopicSchema> {
        self.topics.get(topic).ok_or_else(|| Error::UnknownTopic {
            topic: topic.to_owned(),
        })
    }

    async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>> {
        // The cache only grows, so a poisoned lock still holds valid entries.
        let cached = self
            .writers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned();
        if let Some(schema) = cached {
            return Ok(schema);
        }
        let text = self.registry.schema_by_id(id).await?;
        let schema = Schema::parse_str(&text).map_err(|e| Error::InvalidSchema {
            what: format!("id {id}"),
            reason: e.to_string(),
        })?;
        tracing::debug!(id, "writer schema fetched from the registry");
        let mut writers = self.writers.write().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(
            writers.entry(id).or_insert_with(|| Arc::new(schema)),
        ))
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: BTreeMap<_, _> = self.topics.iter().map(|(t, s)| (*t, s.id)).collect();
        f.debug_struct("Codec").field("schema_ids", &ids).finish()
    }
}
