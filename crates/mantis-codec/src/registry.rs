//! Where schemas live: the [`SchemaRegistry`] seam, an in-memory registry for the embedded
//! deployment and tests, and a client for a Confluent-compatible registry.

mod embedded;
mod http;

pub use embedded::EmbeddedRegistry;
pub use http::HttpRegistry;

use crate::Result;
use async_trait::async_trait;

/// The latest version registered under a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatestSchema {
    /// Its global schema id.
    pub id: u32,
    /// Its version within the subject, from 1.
    pub version: u32,
    /// The schema text.
    pub schema: String,
}

/// A schema registry, mirroring the three calls of the Confluent API that MANTIS uses. Schema
/// ids are global (the same schema has the same id under every subject); subjects are
/// `<topic>-value` ([`subject_for`](crate::subject_for)).
#[async_trait]
pub trait SchemaRegistry: Send + Sync {
    /// Registers an Avro `schema` (JSON text) under `subject` and returns its id
    /// (`POST /subjects/{subject}/versions`). A schema the subject already has keeps its id; a new
    /// one must be backward compatible with the subject's latest version
    /// ([`Error::Incompatible`](crate::Error::Incompatible) otherwise).
    async fn register(&self, subject: &str, schema: &str) -> Result<u32>;

    /// The text of the schema with this id (`GET /schemas/ids/{id}`), or
    /// [`Error::UnknownSchemaId`](crate::Error::UnknownSchemaId).
    async fn schema_by_id(&self, id: u32) -> Result<String>;

    /// The latest version under `subject` (`GET /subjects/{subject}/versions/latest`), `None`
    /// when nothing is registered under it.
    async fn latest(&self, subject: &str) -> Result<Option<LatestSchema>>;
}
