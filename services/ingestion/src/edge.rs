//! The edge buffer: readings keep being accepted while the bus is unavailable.
//!
//! Every record the ingestion service publishes goes through an [`EdgePublisher`]. While the
//! bus takes records it publishes them directly (behind the [`CircuitBreaker`]); when a
//! publish fails with an error that retrying may cure (the bus is unreachable, a publish took
//! longer than `publish_timeout_ms`, a topic vanished with a restarted broker) or the circuit
//! is open, the records go to the [`EdgeBuffer`] instead, and the caller's batch counts as
//! accepted once the buffer has them on disk.
//!
//! The buffer is the embedded log of `mantis-bus` opened on `<data_dir>/edge-buffer` (topic
//! `edge.buffer`, one partition, fsync before an append returns), so it is crash-safe with the
//! same recovery as the embedded bus. One entry holds the records of one accepted batch
//! (`codec`), so a batch costs one fsync. A drainer (the service's `edge-buffer` worker) reads
//! the entries in order, publishes their records to the bus, and commits an entry in the
//! consumer group `edge-drain` only after the bus acknowledged all of its records
//! (at-least-once: a crash mid-entry publishes part of it again, which the idempotent
//! writes downstream absorb).
//!
//! Order: once anything is buffered, every new record is buffered too until the drainer has
//! caught up (global FIFO, hence per-key order); only then do publishes go to the bus
//! directly again. The log is then retired and started afresh, which returns its disk space.
//! Until then, every segment of the log whose entries are all drained is deleted after the
//! round that drained it, so the footprint falls while new records keep arriving (a steady
//! intake can keep the drainer just behind for long).
//! Records are published in chunks whose delivery reports are awaited together, directly and
//! when drained; a chunk that fails part-way is published again from its first record the bus
//! did not acknowledge, so after a broker failure a key's records can repeat (at-least-once)
//! and a repeated record can follow later ones of its key: the idempotent writes downstream
//! keep one copy of each.
//!
//! A record the bus refuses for good (`mantis_bus::Error::Invalid`: the broker answered that the
//! record, or the topic's policy, is the problem) is offered once to the dead-letter topic
//! `dlq.ingestion`, with the reason and
//! the topic it was meant for (headers `mantis.dlq.reason`, `mantis.dlq.source-topic`), where
//! an operator can inspect and replay it; the records after it go on, since it must not block
//! them. When the dead-letter topic does not take it either (a refusal by size is one: the
//! letter is the record plus two headers), the direct path refuses the batch
//! (`EdgeError::Refused`), and the drainer, which holds records already accepted, logs, counts
//! (`mantis_edge_buffer_refused_records_total`) and skips it.
//!
//! Bound: `max_bytes` bounds the buffer's disk footprint. When it is reached, new records are
//! refused (`EdgeError::Full`: REST answers 503 with `Retry-After`, connectors get
//! `SinkError::Unavailable` and retry without acknowledging); nothing accepted is dropped.
//!
//! Dead letters of device messages that yielded no reading (`EdgePublisher::send_dead_letters`)
//! travel the same way, with one exception: where the broker refuses to create
//! `dlq.ingestion` (a policy or missing rights, and the topic not created by the operator),
//! they are logged, counted (`mantis_dead_letters_dropped_total`) and dropped, directly or
//! when drained (after [`DEAD_LETTER_ATTEMPTS`] refusals), so that they never hold the
//! readings behind them; a missing dead-letter topic does not count against the circuit
//! breaker either.

mod buffer;
mod codec;

pub use buffer::EdgeBuffer;

use crate::breaker::{CircuitBreaker, CircuitState, Permit};
use mantis_bus::{Bus, OutboundRecord};
use mantis_runtime::Publisher;
use mantis_telemetry::Health;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Topic of the buffer's log.
pub const BUFFER_TOPIC: &str = "edge.buffer";
/// Consumer group of the drainer in the buffer's log.
pub const DRAIN_GROUP: &str = "edge-drain";
/// Name whose dead-letter topic (`dlq.ingestion`) takes the records the bus refuses for good.
pub const DEAD_LETTER_GROUP: &str = "ingestion";

/// Settings of the edge buffer (`[ingestion.edge_buffer]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Whether readings are buffered on disk while the bus is unavailable. Unset (the
    /// default): on in the cluster mode (Kafka), off in the embedded mode, whose bus is the
    /// local disk already.
    pub enabled: Option<bool>,
    /// Directory of the buffer. Default `<data_dir>/edge-buffer`. One ingestion process per
    /// directory.
    pub dir: Option<PathBuf>,
    /// Largest disk footprint of the buffer; beyond it new readings are refused (503).
    /// Default 256 MiB.
    pub max_bytes: u64,
    /// Segment size of the buffer's log, the unit in which drained space is returned while
    /// the drainer is still behind: at most a quarter of `max_bytes` (and at least 64 KiB).
    /// Default 8 MiB.
    pub segment_bytes: u64,
    /// How long a publish may wait for the bus before its records go to the buffer.
    /// Default 2 000 ms.
    pub publish_timeout_ms: u64,
    /// First pause of the drainer after a failed publish, doubled up to `retry_max_ms`.
    /// Default 100 ms.
    pub retry_initial_ms: u64,
    /// Longest pause of the drainer between publish attempts. Default 5 000 ms.
    pub retry_max_ms: u64,
    /// `Retry-After` (seconds) of the 503 answered when the buffer is full. Default 5.
    pub retry_after_secs: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            dir: None,
            max_bytes: 256 << 20,
            segment_bytes: 8 << 20,
            publish_timeout_ms: 2_000,
            retry_initial_ms: 100,
            retry_max_ms: 5_000,
            retry_after_secs: 5,
        }
    }
}

impl EdgeConfig {
    fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms.max(1))
    }
}

/// Why records could be neither published nor buffered.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The buffer has reached `max_bytes`; retry later.
    #[error("the bus is unavailable and the edge buffer is full ({used} of {max} bytes)")]
    Full {
        /// Disk footprint of the buffer.
        used: u64,
        /// Its bound.
        max: u64,
    },
    /// The bus is unavailable and there is no edge buffer.
    #[error("the message bus is unavailable: {0}")]
    Unavailable(String),
    /// The buffer's log failed (disk error).
    #[error("the edge buffer failed: {0}")]
    Buffer(String),
    /// The bus refused a record for good (too large, invalid topic...), and the dead-letter
    /// topic did not take it either.
    #[error("the message bus refused the record: {0}")]
    Refused(String),
}

/// What `/health` shows of the edge buffer (`details.edgeBuffer`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeStatus {
    /// `direct` (publishing to the bus), `buffering` (new records go to the buffer until it
    /// is drained) or `disabled`.
    pub mode: &'static str,
    /// State of the circuit breaker around the producer.
    pub circuit: CircuitState,
    /// Records in the buffer, not yet acknowledged by the bus.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Disk footprint of the buffer.
    pub disk_bytes: u64,
    /// Bound of the disk footprint.
    pub max_bytes: u64,
    /// Records drained to the bus since the start.
    pub drained_total: u64,
    /// Records drained per second (over the last seconds).
    pub drain_rate: f64,
    /// Whether new records are refused because the buffer is full.
    pub full: bool,
    /// The last error of the buffer or the drainer.
    pub last_error: Option<String>,
}

/// Publishes records to the bus, or to the edge buffer while the bus is unavailable.
pub struct EdgePublisher {
    publisher: Publisher,
    bus: Arc<dyn Bus>,
    breaker: Arc<CircuitBreaker>,
    buffer: Option<Arc<EdgeBuffer>>,
    config: EdgeConfig,
    /// Where the status is shown (`details.edgeBuffer` of `/health`), kept current.
    health: OnceLock<Health>,
    /// Whether the dead-letter topic is known to exist.
    dead_letter_ready: AtomicBool,
    /// When the broker last refused to create the dead-letter topic: not asked again for
    /// [`DEAD_LETTER_REFUSAL_TTL`] (each letter meanwhile is dropped at once).
    dead_letter_refused: std::sync::Mutex<Option<std::time::Instant>>,
}

impl EdgePublisher {
    /// A publisher behind `breaker`, buffering to `buffer` when given.
    pub fn new(
        publisher: Publisher,
        bus: Arc<dyn Bus>,
        breaker: Arc<CircuitBreaker>,
        buffer: Option<Arc<EdgeBuffer>>,
        config: EdgeConfig,
    ) -> Self {
        Self {
            publisher,
            bus,
            breaker,
            buffer,
            config,
            health: OnceLock::new(),
            dead_letter_ready: AtomicBool::new(false),
            dead_letter_refused: std::sync::Mutex::new(None),
        }
    }

    /// Shows the status in `health` (`details.edgeBuffer`) from now on: whenever the buffer
    /// changes and on every [`EdgePublisher::tick`].
    pub fn show_in(&self, health: Health) {
        let _ = self.health.set(health);
        self.refresh();
    }

    /// Updates the drain rate, the gauges and the shown status (call about once a second).
    pub fn tick(&self) {
        if let Some(b) = &self.buffer {
            b.tick();
        }
        self.refresh();
    }

    fn refresh(&self) {
        if let Some(health) = self.health.get() {
            health.set_detail(
                "edgeBuffer",
                serde_json::to_value(self.status()).unwrap_or_default(),
            );
        }
    }

    /// The buffer, when there is one.
    pub fn buffer(&self) -> Option<&Arc<EdgeBuffer>> {
        self.buffer.as_ref()
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// Publishes `records` in order: directly while the bus takes them, the rest to the edge
    /// buffer from the first that the bus cannot take (or at once while the buffer is being
    /// drained or the circuit is open). `Ok` means every record is on the bus or durably in
    /// the buffer.
    pub async fn send_all(&self, records: Vec<OutboundRecord>) -> Result<(), EdgeError> {
        let mut sent = 0;
        let mut reason = String::from("the circuit breaker is open");
        while sent < records.len() {
            if self.buffer.as_ref().is_some_and(|b| b.is_buffering()) {
                reason = "the edge buffer is being drained".into();
                break;
            }
            if self.breaker.is_blocking() || self.breaker.try_acquire() != Permit::Granted {
                break;
            }
            let end = (sent + PUBLISH_CHUNK).min(records.len());
            let (accepted, attempt) = self.publish_chunk(&records[sent..end]).await;
            sent += accepted.min(end - sent);
            match attempt {
                Attempt::Published => {}
                Attempt::Retryable { reason: e, .. } => {
                    reason = e;
                    break;
                }
                Attempt::Refused(e) => {
                    // `Bus::publish_all` stopped at the refused record: it goes to the
                    // dead-letter topic and the records after it go on.
                    let Some(record) = records.get(sent).filter(|_| sent < end) else {
                        continue;
                    };
                    if is_dead_letter(record) {
                        // A dead letter itself (a device message that yielded no reading):
                        // nowhere else to keep it.
                        dropped_dead_letter(record, &e);
                        sent += 1;
                        continue;
                    }
                    match self.dead_letter(record, &e).await {
                        Ok(()) => sent += 1,
                        Err(d) => {
                            return Err(EdgeError::Refused(format!(
                                "{e}; the dead-letter topic did not take it either: {d}"
                            )));
                        }
                    }
                }
            }
        }
        let rest = &records[sent..];
        if rest.is_empty() {
            return Ok(());
        }
        let result = match &self.buffer {
            Some(buffer) => buffer.append(rest).await,
            None => Err(EdgeError::Unavailable(reason)),
        };
        self.refresh();
        result
    }

    /// One attempt at publishing `records` in order, at once (their delivery reports awaited
    /// together), under the circuit breaker (the permit was granted) and within one publish
    /// timeout when there is a buffer to fall back on. Returns how many, from the first, the
    /// bus accepted, and what stopped the others (`Published` when nothing did). After a
    /// timeout none counts as accepted: those that were go to the buffer too (at-least-once).
    async fn publish_chunk(&self, records: &[OutboundRecord]) -> (usize, Attempt) {
        let timeout = if self.buffer.is_some() {
            self.config.publish_timeout()
        } else {
            Duration::MAX
        };
        match tokio::time::timeout(timeout, self.publisher.send_all(records)).await {
            Ok((accepted, None)) => {
                self.breaker.on_success();
                (accepted, Attempt::Published)
            }
            Ok((accepted, Some(e))) => {
                let e = mantis_runtime::Error::Bus(e);
                if is_transient(&e) {
                    let missing = match &e {
                        mantis_runtime::Error::Bus(mantis_bus::Error::UnknownTopic(t)) => Some(t),
                        _ => None,
                    };
                    let missing_topic = missing.is_some();
                    // A missing dead-letter topic says nothing of the bus's health.
                    if missing.is_none_or(|t| *t != dead_letter_topic()) {
                        self.breaker.on_failure();
                    }
                    (
                        accepted,
                        Attempt::Retryable {
                            reason: e.to_string(),
                            missing_topic,
                        },
                    )
                } else {
                    // The bus answered: it is up, the record is the problem.
                    self.breaker.on_success();
                    (accepted, Attempt::Refused(e.to_string()))
                }
            }
            Err(_) => {
                self.breaker.on_failure();
                (
                    0,
                    Attempt::Retryable {
                        reason: format!(
                            "the bus did not acknowledge within {} ms",
                            timeout.as_millis()
                        ),
                        missing_topic: false,
                    },
                )
            }
        }
    }

    /// Publishes drained records in order, `chunk` at once (as `send_all` does), retrying from
    /// the first one the bus did not acknowledge, with back-off (and recreating the catalogue's
    /// topics when they vanished, as with a broker restarted without its storage), until all
    /// are acknowledged. Returns `false` when `token` was cancelled first. A record the bus
    /// refuses for good is offered to the dead-letter topic, else logged, counted and skipped:
    /// it must not block the records after it. So is a dead letter whose topic is still missing
    /// after [`DEAD_LETTER_ATTEMPTS`] attempts to create it (topic creation forbidden, and
    /// `dlq.ingestion` not created by the operator).
    /// One round trip per chunk, not per record: the drain outpaces a steady intake (one
    /// sensor's key included), so the buffer empties and direct publishing resumes.
    async fn deliver_all(
        &self,
        records: &[OutboundRecord],
        chunk: usize,
        token: &CancellationToken,
    ) -> bool {
        let initial = Duration::from_millis(self.config.retry_initial_ms.max(1));
        let max_delay = Duration::from_millis(self.config.retry_max_ms.max(1));
        let mut delay = initial;
        let mut sent = 0;
        // Failed attempts at the dead letter `sent` while its topic is missing.
        let mut missing_dead_letter_topic = 0;
        while sent < records.len() {
            if token.is_cancelled() {
                return false;
            }
            if let Permit::Denied { retry_in } = self.breaker.try_acquire() {
                tokio::select! {
                    _ = token.cancelled() => return false,
                    _ = tokio::time::sleep(retry_in.min(Duration::from_secs(1))) => {}
                }
                continue;
            }
            let end = (sent + chunk.max(1)).min(records.len());
            let (accepted, attempt) = self.publish_chunk(&records[sent..end]).await;
            if accepted > 0 {
                missing_dead_letter_topic = 0;
            }
            sent += accepted.min(end - sent);
            match attempt {
                Attempt::Published => {
                    delay = initial;
                    continue;
                }
                Attempt::Refused(e) => {
                    // The record at `sent` is the refused one (`Bus::publish_all`).
                    let Some(record) = records.get(sent).filter(|_| sent < end) else {
                        continue;
                    };
                    missing_dead_letter_topic = 0;
                    if is_dead_letter(record) {
                        dropped_dead_letter(record, &e);
                        sent += 1;
                        delay = initial;
                        continue;
                    }
                    // One offer: a dead-letter topic that is away must not hold the buffer.
                    if let Err(d) = self.dead_letter(record, &e).await {
                        metrics::counter!("mantis_edge_buffer_refused_records_total").increment(1);
                        tracing::error!(topic = %record.topic, error = %e, dead_letter = %d, "the bus refused a buffered record for good, and the dead-letter topic did not take it; skipped");
                    }
                    sent += 1;
                    delay = initial;
                    continue;
                }
                Attempt::Retryable {
                    reason: e,
                    missing_topic,
                } => {
                    tracing::debug!(error = %e, "the bus does not take buffered records yet");
                    if let Some(buffer) = &self.buffer {
                        buffer.set_error(&e);
                    }
                    let refused = self.recreate_topics().await;
                    if let Some(record) = records
                        .get(sent)
                        .filter(|r| refused && missing_topic && is_dead_letter(r))
                    {
                        missing_dead_letter_topic += 1;
                        if missing_dead_letter_topic >= DEAD_LETTER_ATTEMPTS {
                            dropped_dead_letter(record, &e);
                            missing_dead_letter_topic = 0;
                            sent += 1;
                            delay = initial;
                            continue;
                        }
                    }
                }
            }
            tokio::select! {
                _ = token.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(max_delay);
        }
        true
    }

    /// Publishes `letters` (records for `dlq.ingestion`, made by the ingestion service itself)
    /// as [`EdgePublisher::send_all`] does: to the edge buffer while the bus is unavailable.
    /// While publishing directly, the dead-letter topic is created first when it is not known
    /// to exist: when the broker refuses to create it, the letters are logged, counted
    /// (`mantis_dead_letters_dropped_total`) and dropped, since nothing else could keep them;
    /// when the bus does not answer, they go to the buffer, whose drainer creates the topic.
    pub async fn send_dead_letters(&self, letters: Vec<OutboundRecord>) -> Result<(), EdgeError> {
        let direct =
            !self.breaker.is_blocking() && !self.buffer.as_ref().is_some_and(|b| b.is_buffering());
        if direct && !self.dead_letter_ready.load(Ordering::Acquire) {
            let refused_lately = self
                .dead_letter_refused
                .lock()
                .ok()
                .and_then(|at| *at)
                .is_some_and(|at| at.elapsed() < DEAD_LETTER_REFUSAL_TTL);
            let refusal = if refused_lately {
                Some("the broker refused to create the dead-letter topic lately".to_owned())
            } else {
                match self.ensure_dead_letter_topic().await {
                    Ensured::Refused(e) => {
                        Some(format!("the dead-letter topic cannot be created: {e}"))
                    }
                    Ensured::Ready | Ensured::NoAnswer => None,
                }
            };
            if let Some(reason) = refusal {
                for letter in &letters {
                    dropped_dead_letter(letter, &reason);
                }
                return Ok(());
            }
        }
        self.send_all(letters).await
    }

    /// Publishes `record`, which the bus refused for good (`reason`), to the dead-letter topic
    /// `dlq.ingestion` (created when missing), with the reason and the topic it was meant for:
    /// one attempt, within the publish timeout. `Err` says why it did not take it.
    async fn dead_letter(&self, record: &OutboundRecord, reason: &str) -> Result<(), String> {
        let topic = dead_letter_topic();
        let letter = record.to_dead_letter(&topic, reason);
        if !self.dead_letter_ready.load(Ordering::Acquire) {
            match self.ensure_dead_letter_topic().await {
                Ensured::Ready => {}
                Ensured::Refused(e) => {
                    return Err(format!("the dead-letter topic cannot be created: {e}"));
                }
                Ensured::NoAnswer => return Err("the dead-letter topic cannot be checked".into()),
            }
        }
        let timeout = self.config.publish_timeout();
        match tokio::time::timeout(timeout, self.bus.publish(letter)).await {
            Ok(Ok(_)) => {
                metrics::counter!("mantis_records_dead_lettered_total", "topic" => record.topic.clone())
                    .increment(1);
                tracing::warn!(topic = %record.topic, %reason, dead_letter = %topic, "the bus refused a record for good; dead-lettered");
                Ok(())
            }
            Ok(Err(e)) => {
                self.dead_letter_ready.store(false, Ordering::Release);
                Err(e.to_string())
            }
            Err(_) => {
                self.dead_letter_ready.store(false, Ordering::Release);
                Err(format!(
                    "no acknowledgement within {} ms",
                    timeout.as_millis()
                ))
            }
        }
    }

    /// Creates the catalogue's topics and, apart (a broker that refuses it still gets the
    /// others), `dlq.ingestion` when missing: a broker restarted without its storage lost them;
    /// the services created them at their start. Each bounded by the publish timeout. Returns
    /// whether the broker refused to create the dead-letter topic.
    async fn recreate_topics(&self) -> bool {
        let timeout = self.config.publish_timeout();
        let topics = mantis_bus::topics::catalogue();
        match tokio::time::timeout(timeout, self.bus.ensure_topics(&topics)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "topics cannot be checked yet"),
            Err(_) => tracing::debug!("topics cannot be checked yet (timed out)"),
        }
        matches!(self.ensure_dead_letter_topic().await, Ensured::Refused(_))
    }

    /// Creates `dlq.ingestion` when missing, within the publish timeout, remembering a
    /// refusal.
    async fn ensure_dead_letter_topic(&self) -> Ensured {
        let spec = mantis_bus::topics::dead_letter_spec(DEAD_LETTER_GROUP);
        let timeout = self.config.publish_timeout();
        let answer = tokio::time::timeout(timeout, self.bus.ensure_topics(&[spec])).await;
        let ensured = match answer {
            Ok(Ok(())) => {
                self.dead_letter_ready.store(true, Ordering::Release);
                Ensured::Ready
            }
            // The broker answered, and not that it is unavailable: a policy, missing rights.
            Ok(Err(
                e @ (mantis_bus::Error::Invalid(_)
                | mantis_bus::Error::Other(_)
                | mantis_bus::Error::Denied(_)),
            )) => Ensured::Refused(e.to_string()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the dead-letter topic cannot be checked yet");
                Ensured::NoAnswer
            }
            Err(_) => Ensured::NoAnswer,
        };
        if let Ok(mut at) = self.dead_letter_refused.lock() {
            *at = matches!(ensured, Ensured::Refused(_)).then(std::time::Instant::now);
        }
        ensured
    }

    /// The status shown in `/health`.
    pub fn status(&self) -> EdgeStatus {
        match &self.buffer {
            Some(b) => b.status(self.breaker.state()),
            None => EdgeStatus {
                mode: "disabled",
                circuit: self.breaker.state(),
                records: 0,
                bytes: 0,
                disk_bytes: 0,
                max_bytes: 0,
                drained_total: 0,
                drain_rate: 0.0,
                full: false,
                last_error: None,
            },
        }
    }

    /// Runs the drainer until `token` is cancelled (returns at once without a buffer).
    pub async fn drain(self: Arc<Self>, token: CancellationToken) {
        if let Some(buffer) = self.buffer.clone() {
            buffer.drain(&self, token).await;
        }
    }

    /// Called by the drainer after each drained entry.
    fn drained(&self) {
        self.refresh();
    }
}

/// Records published at once by [`EdgePublisher::send_all`] (each chunk within one publish
/// timeout), and by the drainer across all the keys it drains at once.
pub(crate) const PUBLISH_CHUNK: usize = 500;

enum Attempt {
    Published,
    Retryable {
        reason: String,
        /// The bus says a topic of the records does not exist.
        missing_topic: bool,
    },
    Refused(String),
}

/// Attempts at a buffered dead letter whose topic is missing, each after the broker refused to
/// create it, before the letter is dropped (so that it does not hold the buffer for good).
const DEAD_LETTER_ATTEMPTS: u32 = 5;

/// How long a refusal to create the dead-letter topic is remembered.
const DEAD_LETTER_REFUSAL_TTL: Duration = Duration::from_secs(60);

/// What became of creating the dead-letter topic.
enum Ensured {
    Ready,
    /// The broker refused (why).
    Refused(String),
    /// No clear answer (the bus is away, or slow).
    NoAnswer,
}

/// `dlq.ingestion`.
pub(crate) fn dead_letter_topic() -> String {
    mantis_bus::topics::dead_letter_topic(DEAD_LETTER_GROUP)
}

/// Whether `record` is a dead letter of this service (on `dlq.ingestion`).
fn is_dead_letter(record: &OutboundRecord) -> bool {
    record.topic == dead_letter_topic()
}

/// Logs and counts a dead letter that no topic takes; it is dropped.
fn dropped_dead_letter(record: &OutboundRecord, reason: &str) {
    metrics::counter!("mantis_dead_letters_dropped_total").increment(1);
    let why = record
        .headers
        .iter()
        .find(|(k, _)| k == mantis_bus::DLQ_REASON)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    tracing::error!(topic = %record.topic, error = %reason, dead_letter_reason = %why, bytes = record.payload.len(), "a dead letter could not be kept anywhere; dropped");
}

/// Whether a failed publish should go to the buffer (and be tried again): every bus error but
/// the broker refusing the record itself (`Invalid`: too large, invalid, a bad topic name). So
/// the bus being unreachable or slow, a topic missing (a broker that lost its storage; the
/// drainer recreates it), and errors the client does not explain (as the consumers treat
/// them): what was accepted waits in the buffer rather than leaving for the dead-letter topic;
/// a broker that keeps failing that way fills the buffer, and then REST answers 503.
fn is_transient(e: &mantis_runtime::Error) -> bool {
    match e {
        mantis_runtime::Error::Bus(b) => !matches!(b, mantis_bus::Error::Invalid(_)),
        _ => false,
    }
}
