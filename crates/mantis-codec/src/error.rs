//! The crate's error type. Messages are written for people: the ones about a message's bytes
//! become dead-letter reasons.

/// Result with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why encoding, decoding or a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the 5-byte Confluent header.
    #[error(
        "message is too short for the Confluent wire format: {len} bytes, need at least 5 (magic byte and schema id)"
    )]
    TooShort {
        /// Length of the message.
        len: usize,
    },
    /// The first byte is not the Confluent magic byte `0x00`.
    #[error(
        "message does not start with the Confluent magic byte 0x00 (found {found:#04x}): it was not written by a schema-registry serializer"
    )]
    BadMagicByte {
        /// The byte found.
        found: u8,
    },
    /// The registry has no schema with this id.
    #[error("schema id {id} is not known to the schema registry")]
    UnknownSchemaId {
        /// The id read from the message.
        id: u32,
    },
    /// No schema is known for this topic (a [`Record`](crate::Record) without a schema file).
    #[error("no schema is known for topic `{topic}`")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// A schema text is not valid Avro.
    #[error("schema {what} is not valid Avro: {reason}")]
    InvalidSchema {
        /// Which schema (subject or id).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry refused a schema because it is not backward compatible with the subject's
    /// latest version.
    #[error(
        "schema for subject `{subject}` is not backward compatible with its latest version: {reason}"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The datum cannot be read with its writer schema, or not resolved to the topic's schema.
    #[error("payload with schema id {id} cannot be read as a `{topic}` record: {reason}")]
    Datum {
        /// The topic whose record was expected.
        topic: &'static str,
        /// The writer schema id read from the message.
        id: u32,
        /// What went wrong.
        reason: String,
    },
    /// The datum is valid Avro but a value does not fit the domain (bad UUID, quality 250, ...).
    #[error("`{topic}` record is invalid: {reason}")]
    InvalidRecord {
        /// The topic.
        topic: &'static str,
        /// Which field and why.
        reason: String,
    },
    /// A domain value could not be written with the topic's schema (a bug in this crate).
    #[error("could not encode a `{topic}` record: {reason}")]
    Encode {
        /// The topic.
        topic: &'static str,
        /// Why.
        reason: String,
    },
    /// The registry could not be reached or answered with an error.
    #[error("schema registry request failed: {reason}")]
    Registry {
        /// What failed.
        reason: String,
        /// Whether trying again later may succeed (network failure, 5xx).
        retriable: bool,
    },
    /// The registry's client cannot be made of what it was given (its URL, its CA).
    #[error("schema registry: {0}")]
    RegistrySettings(String),
}

impl Error {
    /// Whether the error lies in the message's bytes, so that retrying cannot help and the record
    /// belongs on the dead-letter topic. The other errors come from the environment (registry
    /// down, misconfiguration) or from this crate, and must not cost records.
    pub fn is_dead_letter(&self) -> bool {
        matches!(
            self,
            Self::TooShort { .. }
                | Self::BadMagicByte { .. }
                | Self::UnknownSchemaId { .. }
                | Self::Datum { .. }
                | Self::InvalidRecord { .. }
        )
    }

    /// Whether calling again later may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::Registry {
                retriable: true,
                ..
            }
        )
    }
}
