//! Where connectors deliver readings: the [`ReadingSink`] trait.

use async_trait::async_trait;
use mantis_domain::{IncomingReading, SourceProtocol};

/// Receives the readings of every connector. The ingestion service implements it with its
/// `Ingestor`, so validation, data-quality routing and publishing stay in one place; tests
/// implement it with a recorder.
///
/// The contract is what makes acknowledgements safe: a connector acknowledges a message to its
/// device (an MQTT PUBACK) only after `deliver` returned `Ok`, and retries (without
/// acknowledging) after an `Err`. So `Ok` must mean that every reading of the batch was either
/// accepted for publishing or refused *and reported* (refusals are final: sending them again
/// would not help), and `Err` that the batch may be retried as a whole (readings already
/// published before the failure are then published again: delivery is at least once).
#[async_trait]
pub trait ReadingSink: Send + Sync + 'static {
    /// Delivers `batch`, read by a connector speaking `source`.
    async fn deliver(
        &self,
        batch: Vec<IncomingReading>,
        source: SourceProtocol,
    ) -> Result<Delivered, SinkError>;

    /// Keeps `messages`, which yielded no reading, with their reasons, where an operator can
    /// inspect and replay them (the ingestion service: its dead-letter topic). The same
    /// contract as [`ReadingSink::deliver`]: a connector acknowledges such a message only
    /// after `Ok`, and retries after an `Err`.
    async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> Result<(), SinkError>;
}

/// A device message, or one value of it, that yields no reading: a payload that does not
/// parse, a value that is not a number. Counted and logged by the connector, and handed to the
/// sink ([`ReadingSink::keep_unreadable`]) so that nothing a device sent disappears without a
/// trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The source (connector) it came through.
    pub connector: String,
    /// The source's protocol.
    pub protocol: SourceProtocol,
    /// Where it came from: the MQTT topic, the OPC UA node, the MTConnect DataItem.
    pub origin: String,
    /// What the device sent: an MQTT payload as received; an OPC UA or MTConnect value as
    /// text.
    pub payload: Vec<u8>,
    /// Why no reading came of it.
    pub reason: String,
}

/// What became of a delivered batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Readings accepted for publishing.
    pub accepted: usize,
    /// Readings refused by validation (and reported on `data.quality.issues` by the sink).
    pub refused: usize,
}

/// Why a sink could not take a batch.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SinkError {
    /// The sink cannot take readings right now (the bus or the database is down); retry later.
    #[error("the sink is unavailable: {0}")]
    Unavailable(String),
}
