//! # mantis-codec
//!
//! Turns MANTIS domain records into Avro in the Confluent wire format and back: byte `0x00`, the
//! 4-byte big-endian schema id, then the Avro datum (no container file). Decoding fetches the
//! writer's schema by id and resolves it to this build's schema of the topic, so records written
//! by older producers (e.g. `sensor.raw` v1) still decode. The crate does no I/O of its own apart
//! from asking the [`SchemaRegistry`] for schemas.
//!
//! Layout:
//! - `schemas`: the compiled-in `schemas/<topic>.v<N>.avsc` files and their fixed ids
//!   ([`SCHEMAS`]); subjects follow the TopicNameStrategy ([`subject_for`]).
//! - `wire`: the Confluent framing ([`wire::frame`], [`wire::split`]).
//! - `registry`: the [`SchemaRegistry`] seam, with [`EmbeddedRegistry`] (in memory, for the
//!   embedded deployment and tests) and [`HttpRegistry`] (a Confluent-compatible registry).
//! - `record`: the [`Record`] trait and its implementations for the domain types.
//! - `codec`: [`Codec`], which encodes with the latest schema of a topic and decodes any version.
//!
//! Avro types stay inside this crate; the only one in the public API is [`AvroValue`], in the
//! signature of [`Record`].
//!
//! ```
//! use mantis_codec::{Codec, Record};
//! use mantis_domain::{AssetId, RulPrediction, timestamp_from_millis};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let codec = Codec::embedded();
//! let prediction = RulPrediction {
//!     asset_id: AssetId::new_random(),
//!     predicted_at: timestamp_from_millis(1_700_000_000_000).ok_or("bad timestamp")?,
//!     rul_cycles: 120.0,
//!     confidence_lower: 90.0,
//!     confidence_upper: 150.0,
//!     model_version: "weibull-1".into(),
//! };
//!
//! let bytes = codec.encode(&prediction)?;
//! assert_eq!(bytes[0], 0x00); // magic byte, then the schema id
//! assert_eq!(mantis_codec::wire::split(&bytes)?.0, codec.schema_id(RulPrediction::TOPIC).unwrap());
//!
//! let decoded: RulPrediction = codec.decode(&bytes).await?;
//! assert_eq!(decoded, prediction);
//! # Ok(())
//! # }
//! ```

mod codec;
mod error;
mod record;
mod registry;
mod schemas;
pub mod wire;

pub use codec::Codec;
pub use error::{Error, Result};
pub use record::{AvroValue, Record};
pub use registry::{EmbeddedRegistry, HttpRegistry, LatestSchema, SchemaRegistry};
pub use schemas::{EmbeddedSchema, SCHEMAS, subject_for};

/// Settings for [`HttpRegistry::from_settings`] (several URLs, authentication, headers, timeout),
/// re-exported so that callers need not depend on `schema_registry_converter`.
pub use schema_registry_converter::async_impl::schema_registry::SrSettings;
