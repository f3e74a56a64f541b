//! `mantis dlq`: the dead-letter topics of the configured platform — what was set aside, why,
//! and sending it again once the cause is mended.
//!
//! Every consumer sets aside what it cannot handle on `dlq.<its group>` (and ingestion the
//! device messages that yielded no reading on `dlq.ingestion`), with the reason and, for a
//! record a consumer read, the topic, partition and offset it came from (headers
//! `mantis.dlq.*`). `list` counts what each topic retains, `show` prints its records (newest
//! last), `replay` publishes the records that came from a topic back to it, unchanged but for
//! the dead-letter headers: every consumer of that topic reads them again, as the consumers
//! are at least once and keyed, a record handled twice changes nothing. A dead letter stays
//! where it is (until its topic's retention) and a record refused again is dead-lettered
//! again. Device messages (no source topic) are shown, never replayed: they are what the
//! device sent, not a record of the platform.
//!
//! Runs in this process over the configured infrastructure: Kafka in the cluster mode (while
//! the services run); in the embedded mode the platform's log, which must not be in use by a
//! running `mantis run`.

use mantis_bus::{
    Bus, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, Envelope,
    OutboundRecord, StartFrom, SubscribeOptions, TopicOffsets,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The prefix of every dead-letter topic.
pub const PREFIX: &str = "dlq.";

/// Why a dead-letter command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The infrastructure cannot be reached or opened.
    #[error(transparent)]
    Infra(#[from] mantis_runtime::Error),
    /// The bus failed.
    #[error("the message bus: {0}")]
    Bus(#[from] mantis_bus::Error),
    /// The topic named is not a dead-letter topic of the platform.
    #[error("`{0}` is not a dead-letter topic (`mantis dlq list` names them)")]
    NotADeadLetterTopic(String),
    /// An option's value is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// A dead letter as shown.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Letter {
    /// Partition and offset in the dead-letter topic.
    pub partition: i32,
    /// Offset in the dead-letter topic.
    pub offset: i64,
    /// When it was dead-lettered (RFC 3339), when the bus gives a time.
    pub at: Option<String>,
    /// Why.
    pub reason: String,
    /// Where it came from: `topic/partition/offset` of a record a consumer read, the topic
    /// alone for a record refused before it was written, `None` for a device message.
    pub source: Option<String>,
    /// Its key, as text (lossy).
    pub key: Option<String>,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// The other headers (`mantis.dlq.connector`, …), as text (lossy).
    pub headers: BTreeMap<String, String>,
}

impl Letter {
    fn of(e: &Envelope) -> Self {
        let text = |name: &str| {
            e.header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let source = text(DLQ_SOURCE_TOPIC).map(|topic| {
            match (text(DLQ_SOURCE_PARTITION), text(DLQ_SOURCE_OFFSET)) {
                (Some(p), Some(o)) => format!("{topic}/{p}/{o}"),
                _ => topic,
            }
        });
        let shown = [
            DLQ_REASON,
            DLQ_SOURCE_TOPIC,
            DLQ_SOURCE_PARTITION,
            DLQ_SOURCE_OFFSET,
            mantis_bus::TRACEPARENT,
        ];
        Letter {
            partition: e.partition,
            offset: e.offset,
            at: (e.timestamp_ms > 0)
                .then(|| chrono::DateTime::from_timestamp_millis(e.timestamp_ms))
                .flatten()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            reason: text(DLQ_REASON).unwrap_or_default(),
            source,
            key: e
                .key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            payload_bytes: e.payload.len(),
            headers: e
                .headers
                .iter()
                .filter(|(k, _)| !shown.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
        }
    }
}

/// The dead-letter topics and how many records each retains.
pub async fn list(bus: &dyn Bus) -> Result<Vec<TopicOffsets>, Error> {
    Ok(bus.topic_offsets(PREFIX).await?)
}

/// Which dead letters a command takes.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only those whose reason contains this (case-insensitive).
    pub reason: Option<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

impl Filter {
    fn takes(&self, e: &Envelope) -> bool {
        let reason_ok = self.reason.as_ref().is_none_or(|wanted| {
            e.header(DLQ_REASON).is_some_and(|r| {
                String::from_utf8_lossy(r)
                    .to_lowercase()
                    .contains(&wanted.to_lowercase())
            })
        });
        let time_ok = self
            .since
            .is_none_or(|since| e.timestamp_ms >= since.timestamp_millis());
        reason_ok && time_ok
    }
}

/// The last `limit` dead letters of `topic` that `filter` takes, oldest first.
pub async fn show(
    bus: &dyn Bus,
    topic: &str,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<Letter>, Error> {
    let mut kept = VecDeque::with_capacity(limit.min(1024));
    read_all(bus, topic, |e| {
        if filter.takes(e) && limit > 0 {
            if kept.len() == limit {
                kept.pop_front();
            }
            kept.push_back(Letter::of(e));
        }
    })
    .await?;
    Ok(kept.into())
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Replayed {
    /// Records published back to their source topic, per topic.
    pub published: BTreeMap<String, u64>,
    /// Dead letters the filter left.
    pub filtered: u64,
    /// Device messages and records whose source topic no longer exists: not replayable.
    pub not_replayable: u64,
}

/// Publishes the dead letters of `topic` that `filter` takes back to the topics they came from
/// (with `dry_run`, counts what it would). Stops at the first record the bus refuses: what was
/// published before stays published (running again publishes it again: harmless, see the
/// module docs).
pub async fn replay(
    bus: &dyn Bus,
    topic: &str,
    filter: &Filter,
    dry_run: bool,
) -> Result<Replayed, Error> {
    let existing: Vec<String> = bus
        .topic_offsets("")
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let mut outcome = Replayed::default();
    let mut records = Vec::new();
    read_all(bus, topic, |e| {
        if !filter.takes(e) {
            outcome.filtered += 1;
            return;
        }
        match again(e) {
            Some(record) if existing.contains(&record.topic) => records.push(record),
            _ => outcome.not_replayable += 1,
        }
    })
    .await?;
    for chunk in records.chunks(500) {
        if !dry_run {
            let (sent, failed) = bus.publish_all(chunk).await;
            if let Some(e) = failed {
                for record in &chunk[..sent] {
                    *outcome.published.entry(record.topic.clone()).or_default() += 1;
                }
                return Err(Error::Bus(e));
            }
        }
        for record in chunk {
            *outcome.published.entry(record.topic.clone()).or_default() += 1;
        }
    }
    Ok(outcome)
}

/// The record a dead letter was, for its source topic: its key, payload, headers (less the
/// dead-letter ones) and trace; `None` when it has no source topic (a device message) or
/// its source is a dead-letter topic itself.
fn again(e: &Envelope) -> Option<OutboundRecord> {
    let source = std::str::from_utf8(e.header(DLQ_SOURCE_TOPIC)?).ok()?;
    if source.starts_with(PREFIX) || source.is_empty() {
        return None;
    }
    let mut record = OutboundRecord::new(source, e.key.clone(), e.payload.clone(), e.trace());
    record.headers = e
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("mantis.dlq.") && k != mantis_bus::TRACEPARENT)
        .cloned()
        .collect();
    Some(record)
}

/// How long a read waits for a record the topic's end says is there.
const READ_PATIENCE: Duration = Duration::from_secs(30);

/// Hands every record `topic` retains to `each`, in order per partition, as a reader of its
/// own that commits nothing (the services' groups are not touched).
async fn read_all(
    bus: &dyn Bus,
    topic: &str,
    mut each: impl FnMut(&Envelope),
) -> Result<(), Error> {
    if !topic.starts_with(PREFIX) {
        return Err(Error::NotADeadLetterTopic(topic.to_owned()));
    }
    let offsets = bus
        .topic_offsets(topic)
        .await?
        .into_iter()
        .find(|t| t.name == topic)
        .ok_or_else(|| Error::NotADeadLetterTopic(topic.to_owned()))?;
    // Where each partition ends now: records dead-lettered meanwhile wait for the next run.
    let mut left: BTreeMap<i32, i64> = offsets
        .partitions
        .iter()
        .filter(|p| p.end > p.earliest)
        .map(|p| (p.partition, p.end))
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    let group = format!("mantis.dlq.reader.{:016x}", rand::random::<u64>());
    let mut sub = bus
        .subscribe(SubscribeOptions::new(group, [topic], StartFrom::Earliest))
        .await?;
    let result = async {
        while !left.is_empty() {
            let e = tokio::time::timeout(READ_PATIENCE, sub.next())
                .await
                .map_err(|_| {
                    Error::Invalid(format!(
                        "`{topic}`: no record within {} s although the topic holds more; \
                         try again",
                        READ_PATIENCE.as_secs()
                    ))
                })??;
            let Some(&end) = left.get(&e.partition) else {
                continue;
            };
            if e.offset < end {
                each(&e);
            }
            if e.offset + 1 >= end {
                left.remove(&e.partition);
            }
        }
        Ok(())
    }
    .await;
    let _ = sub.close().await;
    result
}

/// Parses `--since`: RFC 3339, or a duration back from now (`30m`, `12h`, `7d`).
pub fn parse_since(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{raw}`: a time (RFC 3339) or a duration such as 30m, 12h, 7d"))?;
    let back = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(|| format!("`{raw}`: a time (RFC 3339) or a duration such as 30m, 12h, 7d"))?;
    Ok(chrono::Utc::now() - back)
}
