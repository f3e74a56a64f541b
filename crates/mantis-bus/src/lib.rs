//! # mantis-bus
//!
//! The message bus MANTIS services talk through: one [`Bus`] trait with two implementations.
//!
//! - [`embedded::EmbeddedBus`]: a durable, partitioned, append-only log on local disk, used by the
//!   single-process `mantis` binary (embedded and edge profiles). Segments are fsynced before a
//!   publish returns, consumer-group offsets are persisted, so a restart loses nothing accepted.
//! - [`kafka::KafkaBus`] (feature `kafka`): rdkafka with an idempotent producer and consumer
//!   groups, offsets stored only after the record was fully handled (at-least-once).
//!
//! Both give the semantics the services rely on: per-key order (records with the same key land
//! in the same partition), consumer groups sharing partitions, and redelivery of everything not
//! committed when a consumer restarts. Every record carries W3C trace context
//! ([`TraceContext`], header `traceparent`). The same conformance suite (`conformance`, feature
//! `conformance`) runs against both.
//!
//! Layout: `lib.rs` (trait and value types), `topics` (the topic catalogue of the brief),
//! `trace` (W3C trace context), `embedded` (the on-disk log), `kafka` (rdkafka adapter).
//!
//! ```
//! # async fn demo() -> Result<(), mantis_bus::Error> {
//! use mantis_bus::{Bus, OutboundRecord, SubscribeOptions, StartFrom, TraceContext, embedded::EmbeddedBus, topics};
//! let dir = tempfile::tempdir().unwrap();
//! let bus = EmbeddedBus::open(dir.path()).await?;
//! bus.ensure_topics(&topics::catalogue()).await?;
//! bus.publish(OutboundRecord::new(topics::SENSOR_RAW, Some(b"asset-1".to_vec()), b"payload".to_vec(), TraceContext::new_root())).await?;
//! let mut sub = bus.subscribe(SubscribeOptions::new("doc", [topics::SENSOR_RAW], StartFrom::Earliest)).await?;
//! let env = sub.next().await?;
//! sub.commit(&env.next_position()).await?;
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use std::time::Duration;

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod topics;
mod trace;

pub use trace::TraceContext;

/// Header carrying the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Header naming why a record was dead-lettered.
pub const DLQ_REASON: &str = "mantis.dlq.reason";
/// Header naming the topic a dead-lettered record came from.
pub const DLQ_SOURCE_TOPIC: &str = "mantis.dlq.source-topic";
/// Header naming the partition a dead-lettered record came from.
pub const DLQ_SOURCE_PARTITION: &str = "mantis.dlq.source-partition";
/// Header naming the offset a dead-lettered record came from.
pub const DLQ_SOURCE_OFFSET: &str = "mantis.dlq.source-offset";
/// Header of a record replayed from a dead-letter topic: the consumers it is for (the name in
/// `dlq.<name>`); the others of its topic pass over it.
pub const REPLAY_FOR: &str = "mantis.replay.for";
/// Header of a record replayed from a dead-letter topic: the letter it was
/// (`<topic>/<partition>/<offset>`), so that a letter it becomes again is known for a copy.
pub const REPLAY_OF: &str = "mantis.replay.of";
/// Header naming the connector (source) whose device message yielded no reading.
pub const DLQ_CONNECTOR: &str = "mantis.dlq.connector";
/// Header naming the protocol of that connector (`MQTT`, `OPC_UA`, `MTCONNECT`...).
pub const DLQ_PROTOCOL: &str = "mantis.dlq.protocol";
/// Header naming where in the device the message came from (an MQTT topic, an OPC UA node, an
/// MTConnect DataItem and sequence).
pub const DLQ_ORIGIN: &str = "mantis.dlq.origin";

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus cannot be reached right now; retrying later may succeed.
    #[error("the message bus is unavailable: {0}")]
    Unavailable(String),
    /// The topic does not exist.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// A request was malformed (bad topic name, bad option...).
    #[error("invalid request to the message bus: {0}")]
    Invalid(String),
    /// On-disk data failed its checksum or could not be parsed.
    #[error("corrupt log data in {path}: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The subscription or bus was closed.
    #[error("the subscription is closed")]
    Closed,
    /// Local I/O failed.
    #[error("I/O error on the message log: {0}")]
    Io(#[from] std::io::Error),
    /// The bus refused this service's credentials or rights (Kafka: an authentication failure,
    /// an ACL denying the topic, the group or the cluster operation). Not retryable: someone
    /// must mend the credentials or ACLs. A record that cannot be published for it is retried
    /// by its consumer and kept by the edge buffer; a subscription or commit denied stops the
    /// consumer (and its service).
    #[error("the message bus denied access (check this service's credentials and ACLs): {0}")]
    Denied(String),
    /// Anything else the underlying client reported.
    #[error("message bus error: {0}")]
    Other(String),
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Io(_))
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A record header (name, raw value).
pub type Header = (String, Vec<u8>);

/// A record to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRecord {
    /// Destination topic.
    pub topic: String,
    /// Partitioning key; `None` spreads records over partitions.
    pub key: Option<Vec<u8>>,
    /// The encoded value.
    pub payload: Vec<u8>,
    /// Extra headers (the `traceparent` header is added from `trace`).
    pub headers: Vec<Header>,
    /// Trace context carried in the `traceparent` header.
    pub trace: TraceContext,
}

impl OutboundRecord {
    /// A record with no extra headers.
    pub fn new(
        topic: impl Into<String>,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        trace: TraceContext,
    ) -> Self {
        Self {
            topic: topic.into(),
            key,
            payload,
            headers: Vec::new(),
            trace,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A dead-letter record for this record, which the bus refused for good before it was
    /// ever written: same key, payload, headers and trace, plus the reason and the topic it
    /// was meant for (no partition or offset: it has none).
    pub fn to_dead_letter(&self, dlq_topic: &str, reason: &str) -> OutboundRecord {
        let mut headers = self.headers.clone();
        headers.push((DLQ_REASON.into(), reason.as_bytes().to_vec()));
        headers.push((DLQ_SOURCE_TOPIC.into(), self.topic.as_bytes().to_vec()));
        OutboundRecord {
            topic: dlq_topic.to_owned(),
            key: self.key.clone(),
            payload: self.payload.clone(),
            headers,
            trace: self.trace,
        }
    }

    /// All headers as written on the wire: the extra ones plus `traceparent`.
    pub fn wire_headers(&self) -> Vec<Header> {
        let mut h = self.headers.clone();
        h.retain(|(k, _)| k != TRACEPARENT);
        h.push((
            TRACEPARENT.to_owned(),
            self.trace.to_traceparent().into_bytes(),
        ));
        h
    }
}

/// Where a published record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A received record, owned and independent of the underlying client.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Partitioning key.
    pub key: Option<Vec<u8>>,
    /// Headers, including `traceparent`.
    pub headers: Vec<Header>,
    /// Broker/log timestamp in milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The encoded value.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The trace context of the record, or a fresh root when it carries none or a bad one.
    pub fn trace(&self) -> TraceContext {
        self.header(TRACEPARENT)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(TraceContext::parse)
            .unwrap_or_else(TraceContext::new_root)
    }

    /// The position that marks this record (and everything before it in its partition) handled.
    pub fn next_position(&self) -> Position {
        Position {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset: self.offset + 1,
        }
    }

    /// The position of this record itself: committing it means "redeliver from here".
    pub fn position(&self) -> Position {
        Position {
            topic: self.topic.clone(),
            partition: self.partition,
            next_offset: self.offset,
        }
    }

    /// A dead-letter record for this envelope: same key, payload and headers, plus the reason
    /// and the source coordinates.
    pub fn to_dead_letter(&self, dlq_topic: &str, reason: &str) -> OutboundRecord {
        let mut headers: Vec<Header> = self
            .headers
            .iter()
            .filter(|(k, _)| k != TRACEPARENT)
            .cloned()
            .collect();
        headers.push((DLQ_REASON.into(), reason.as_bytes().to_vec()));
        headers.push((DLQ_SOURCE_TOPIC.into(), self.topic.as_bytes().to_vec()));
        headers.push((
            DLQ_SOURCE_PARTITION.into(),
            self.partition.to_string().into_bytes(),
        ));
        headers.push((
            DLQ_SOURCE_OFFSET.into(),
            self.offset.to_string().into_bytes(),
        ));
        OutboundRecord {
            topic: dlq_topic.to_owned(),
            key: self.key.clone(),
            payload: self.payload.clone(),
            headers,
            trace: self.trace(),
        }
    }
}

/// A consumer-group position: the next offset to read in one partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to deliver.
    pub next_offset: i64,
}

/// Where a consumer group with no committed offset starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// From the oldest retained record.
    Earliest,
    /// Only records published after joining.
    Latest,
}

/// Options of a subscription.
#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    /// Consumer group; members of one group share the partitions.
    pub group: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Where a group without committed offsets starts.
    pub start: StartFrom,
    /// How long a member may stay silent before the group gives its partitions to others.
    pub session_timeout: Duration,
}

impl SubscribeOptions {
    /// Options with a 10 s session timeout.
    pub fn new<I, S>(group: impl Into<String>, topics: I, start: StartFrom) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            start,
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// The records a partition retains: offsets `earliest..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition.
    pub partition: i32,
    /// The oldest retained offset.
    pub earliest: i64,
    /// The offset the next record will get.
    pub end: i64,
}

impl PartitionOffsets {
    /// How many records the partition retains.
    pub fn retained(&self) -> i64 {
        (self.end - self.earliest).max(0)
    }
}

/// A topic and the retained offsets of each of its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicOffsets {
    /// Name.
    pub name: String,
    /// Its partitions, by number.
    pub partitions: Vec<PartitionOffsets>,
}

impl TopicOffsets {
    /// How many records the topic retains.
    pub fn retained(&self) -> i64 {
        self.partitions.iter().map(PartitionOffsets::retained).sum()
    }
}

/// Description of a topic to create when missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// How long records are kept.
    pub retention: Duration,
}

/// The message bus.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Creates the topics that do not exist yet (existing ones are left as they are).
    async fn ensure_topics(&self, topics: &[TopicSpec]) -> Result<()>;

    /// Publishes one record and returns once it is durably accepted. Records with the same key
    /// keep their order.
    async fn publish(&self, record: OutboundRecord) -> Result<Delivery>;

    /// Publishes `records` in order, each as [`Bus::publish`] would, without waiting for one
    /// before sending the next where the bus can (Kafka: the batch's delivery reports are
    /// awaited together instead of one round trip per record). Returns how many records, from
    /// the first, were accepted, and the error that stopped the others (`None` when all were).
    /// Records after the first failure may have been accepted too: publishing them again is
    /// at-least-once, as any retry.
    async fn publish_all(&self, records: &[OutboundRecord]) -> (usize, Option<Error>) {
        for (i, record) in records.iter().enumerate() {
            if let Err(e) = self.publish(record.clone()).await {
                return (i, Some(e));
            }
        }
        (records.len(), None)
    }

    /// Joins a consumer group.
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>>;

    /// The topics whose names start with `prefix` (every topic but the broker's internal ones
    /// with `""`), sorted by name, each with the retained offsets of its partitions: what a
    /// reader from the earliest record gets (the dead-letter tools count and read them so).
    async fn topic_offsets(&self, prefix: &str) -> Result<Vec<TopicOffsets>>;

    /// The retained offsets of `topic`'s partitions (as [`Bus::topic_offsets`] gives them),
    /// `None` when there is no such topic: asks about this topic alone (the consumers' lag
    /// is measured with it every 15 s).
    async fn offsets_of(&self, topic: &str) -> Result<Option<Vec<PartitionOffsets>>> {
        Ok(self
            .topic_offsets(topic)
            .await?
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions))
    }

    /// Where `group` reads on from in each of `partitions` of `topic`: its committed offset
    /// (the next record it will handle) or, on the embedded log, where it started reading a
    /// partition it has committed nothing of; a partition of neither is left out. What the
    /// group has not handled past is behind it: a consumer stuck on a record, however many
    /// partitions it has not received from since (the consumers' group lag is measured with
    /// it every 15 s). `None`: this bus does not know (the default).
    async fn group_positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Option<std::collections::BTreeMap<i32, i64>>> {
        let _ = (group, topic, partitions);
        Ok(None)
    }

    /// Checks that the bus is reachable (readiness probes).
    async fn ping(&self) -> Result<()>;
}

/// A consumer-group membership.
#[async_trait]
pub trait Subscription: Send {
    /// Waits for the next record. Cancel-safe: dropping the future loses no record.
    async fn next(&mut self) -> Result<Envelope>;

    /// Records `position` as the group's committed position of that partition: on restart the
    /// group resumes there. Commit only after the records before it were fully handled.
    async fn commit(&mut self, position: &Position) -> Result<()>;

    /// The partitions (topic, partition) taken from this member since the last call: a
    /// rebalance gave them to another member (or, Kafka's eager protocol, took every partition
    /// from every member to hand them out again). The records after the group's committed position
    /// of such a partition are delivered again to whoever owns it next, possibly this member:
    /// a consumer that holds state built from a partition's records (open windows) drops it
    /// here, and commits nothing more for that partition, or another member would publish
    /// what it is rebuilding, or see its commits overwritten.
    fn take_revoked(&mut self) -> Vec<(String, i32)>;

    /// Whether `partition` of `topic` is assigned to this member now, by the assignment the
    /// last record received from it was read under. A record received just after its
    /// partition was reported taken comes from the assignment that gave it back (Kafka's
    /// eager protocol takes every partition and hands them out again within one receive),
    /// read from the group's committed position: it is handled, not skipped, when this is
    /// true; one read before the partition was taken and given back is read again.
    fn owns(&self, topic: &str, partition: i32) -> bool;

    /// Leaves the group cleanly (its partitions go to the other members at once).
    async fn close(self: Box<Self>) -> Result<()>;
}
