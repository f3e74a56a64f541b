//! The dead-letter topics of the platform — what was set aside, why, and sending it again once
//! the cause is mended: `mantis dlq` on the command line, `/api/v1/dead-letters` in the
//! gateway (which reaches them while the embedded platform runs).
//!
//! Every consumer sets aside what it cannot handle on `dlq.<its group>` (and ingestion the
//! device messages that yielded no reading on `dlq.ingestion`), with the reason and, for a
//! record a consumer read, the topic, partition and offset it came from (headers
//! `mantis.dlq.*`). `list` counts what each topic retains, `show` prints its records (newest
//! last), `replay` publishes the records that came from a topic back to it, unchanged but for
//! the dead-letter headers and two of its own: `mantis.replay.for` names the consumers that
//! set it aside, the only ones that read it (the others of the topic pass over it: another
//! webhook, the live view; a record the bus refused before it was written has none: it is for
//! every consumer), and `mantis.replay.of` the letter it was, so that, refused again
//! and set aside again, its new letter is known for a copy and a later replay sends the
//! letter once, not twice. A dead letter stays where it is (until its topic's retention).
//! Each replay leaves on `dlq-replays` what it went through (the letters its filter took, up to
//! an offset of each partition, and who ran it when): a later replay leaves the letters an
//! earlier one sent, unless asked to send them again, and `show` says when a letter was
//! replayed. A replay holds a lease in the store while it runs ([`replay_alone`]): one replay
//! of a topic at a time, across the processes sharing the store.
//! Device messages (no source topic) are shown, never replayed: they are what the device
//! sent, not a record of the platform.
//!
//! `mantis dlq` runs in its own process over the configured infrastructure: Kafka in the
//! cluster mode (while the services run); in the embedded mode the platform's log, which must
//! not be in use by a running `mantis run` (the gateway's API reaches it then).

use chrono::{DateTime, Utc};
use mantis_bus::{
    Bus, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, Envelope,
    OutboundRecord, REPLAY_FOR, REPLAY_OF, StartFrom, SubscribeOptions, Subscription, TopicOffsets,
    TopicSpec, TraceContext,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The prefix of every dead-letter topic.
pub const PREFIX: &str = "dlq.";

/// Where each replay leaves what it went through (one partition; keyed by the dead-letter
/// topic; kept as long as the letters are). Not a dead-letter topic itself.
pub const REPLAYS: &str = "dlq-replays";

fn replays_spec() -> TopicSpec {
    TopicSpec {
        name: REPLAYS.into(),
        partitions: 1,
        retention: Duration::from_secs(30 * 86_400),
    }
}

/// Why a dead-letter command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] mantis_bus::Error),
    /// The topic named is not a dead-letter topic of the platform.
    #[error("`{0}` is not a dead-letter topic (`mantis dlq list` names them)")]
    NotADeadLetterTopic(String),
    /// A record the topic says it holds did not come.
    #[error("{0}")]
    Unavailable(String),
    /// A replay cannot leave what it sends on [`REPLAYS`]: it sends nothing.
    #[error(
        "replays are recorded on `{REPLAYS}`, which cannot be written ({0}): nothing was \
         published (lacking the rights, grant the platform Create, Write and Read on it, or \
         create it with 1 partition)"
    )]
    NotRecorded(mantis_bus::Error),
    /// Another replay of the topic runs (in another process: a gateway replica, `mantis dlq`).
    #[error(
        "a replay of `{topic}` is running ({by}; its lease lapses at {until} unless renewed): \
         try again once it is done"
    )]
    Busy {
        topic: String,
        /// Who runs it, on which host.
        by: String,
        until: DateTime<Utc>,
    },
    /// The store, where a replay takes its lease, failed: nothing was published.
    #[error("replays take a lease in the store, which failed ({0}): nothing was published")]
    Store(mantis_store::Error),
}

/// A dead letter as shown.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// When a replay first sent it again (RFC 3339), if one did.
    pub replayed_at: Option<String>,
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
            replayed_at: None,
        }
    }
}

/// What a replay went through, as left on [`REPLAYS`]: every letter of `topic` its filter
/// took, up to `through` in each partition, was sent again or found not replayable (or a copy).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Done {
    topic: String,
    at: DateTime<Utc>,
    /// Who ran it: a user of the API, `mantis dlq` and its user on the host.
    by: String,
    /// What it took (its `reason` and `since`).
    #[serde(flatten)]
    filter: Filter,
    /// Per partition of the dead-letter topic, the offset it went through.
    through: BTreeMap<i32, i64>,
    /// Per partition, the time the last letter it went through was set aside (the letters'
    /// own clock): a letter set aside later is not one it sent, though its offset is below
    /// `through` (a topic deleted and made again starts its offsets over).
    #[serde(default)]
    through_ms: BTreeMap<i32, i64>,
    /// Source topics it did not find (deleted): it sent none of their
    /// letters, so a later replay takes them.
    #[serde(default)]
    missing: std::collections::BTreeSet<String>,
}

impl Done {
    /// Whether this replay sent `e` (or found it a copy of one it sent): a letter set aside
    /// after it ran is not (a topic deleted and made again starts its offsets over).
    fn covers(&self, e: &Envelope) -> bool {
        self.through
            .get(&e.partition)
            .is_some_and(|t| e.offset <= *t)
            && e.timestamp_ms
                <= self
                    .through_ms
                    .get(&e.partition)
                    .copied()
                    .unwrap_or_else(|| self.at.timestamp_millis())
            && source_of(e).is_some_and(|s| !self.missing.contains(s))
            && self.filter.takes(e)
    }
}

/// The replays of `topic` so far, oldest first (none when nothing was ever replayed). One
/// that cannot be read (written by a later version) is left out, said in the log.
async fn replays_of(bus: &dyn Bus, topic: &str) -> Result<Vec<Done>, Error> {
    let Some(mut reader) = Reader::open_topic(bus, REPLAYS).await? else {
        return Ok(Vec::new());
    };
    // A run records after each chunk, each record holding the ones before: its last is kept.
    let mut found: BTreeMap<(DateTime<Utc>, String), Done> = BTreeMap::new();
    let read = async {
        while let Some(e) = reader.next().await? {
            if e.key.as_deref() != Some(topic.as_bytes()) {
                continue;
            }
            match serde_json::from_slice::<Done>(&e.payload) {
                Ok(done) if done.topic == topic => {
                    found.insert((done.at, done.by.clone()), done);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(topic, offset = e.offset, error = %err, "a replay's record is not read")
                }
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    reader.close().await;
    read?;
    Ok(found.into_values().collect())
}

/// When the first of `replays` that went through `e` ran.
fn replayed_at(replays: &[Done], e: &Envelope) -> Option<DateTime<Utc>> {
    replays.iter().filter(|d| d.covers(e)).map(|d| d.at).min()
}

/// The dead-letter topics and how many records each retains.
pub async fn list(bus: &dyn Bus) -> Result<Vec<TopicOffsets>, Error> {
    Ok(bus.topic_offsets(PREFIX).await?)
}

/// Which dead letters a command takes.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
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

/// The last `limit` dead letters of `topic` that `filter` takes, oldest first (by the time
/// they were set aside, then partition and offset).
pub async fn show(
    bus: &dyn Bus,
    topic: &str,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<Letter>, Error> {
    if !topic.starts_with(PREFIX) {
        return Err(Error::NotADeadLetterTopic(topic.to_owned()));
    }
    let (reader, replays) = futures::join!(Reader::open(bus, topic), replays_of(bus, topic));
    let mut reader = reader?;
    // Without the record of the replays the letters are shown all the same.
    let replays = replays.unwrap_or_else(|e| {
        tracing::warn!(topic, error = %e, "the replays are not read: the letters are shown without when they were replayed");
        Vec::new()
    });
    // The last `limit` of each partition: the last `limit` of all are among them. Kept as
    // shown (no payload), with the time they were set aside to order them.
    let mut kept: BTreeMap<i32, VecDeque<(i64, Letter)>> = BTreeMap::new();
    let read = async {
        while let Some(e) = reader.next().await? {
            if limit == 0 || !filter.takes(&e) {
                continue;
            }
            let held = kept.entry(e.partition).or_default();
            if held.len() == limit {
                held.pop_front();
            }
            let mut letter = Letter::of(&e);
            // A device message is never sent, whatever a replay went through.
            if source_of(&e).is_some() {
                letter.replayed_at = replayed_at(&replays, &e)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
            held.push_back((e.timestamp_ms, letter));
        }
        Ok::<(), Error>(())
    }
    .await;
    reader.close().await;
    read?;
    let mut all: Vec<(i64, Letter)> = kept.into_values().flatten().collect();
    all.sort_by_key(|(at, l)| (*at, l.partition, l.offset));
    let skip = all.len().saturating_sub(limit);
    Ok(all.into_iter().skip(skip).map(|(_, l)| l).collect())
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    /// Records published back to their source topic, per topic.
    pub published: BTreeMap<String, u64>,
    /// Dead letters the filter left.
    pub filtered: u64,
    /// Letters that are copies of a letter this run replays (a replayed record set aside
    /// again): left, so that the record is sent once.
    pub copies: u64,
    /// Device messages and records whose source topic no longer exists: not replayable.
    pub not_replayable: u64,
    /// Letters an earlier replay sent: left (unless sent [`ReplayOptions::again`]).
    pub already_replayed: u64,
    /// The start of the period the filter took (RFC 3339; a duration such as `24h` resolved
    /// on this host's clock): a replay confirmed after its dry run sends this back to cover
    /// the same period.
    pub since: Option<String>,
    /// Records the bus refused for good (too large, the topic's policy): the replay stopped
    /// there.
    pub refused: u64,
    /// Why the replay stopped before the end (the bus went away or refused a record, a read
    /// failed, its progress could not be recorded): what is counted in `published` was
    /// published (in a dry run: would have been). A later replay leaves what was recorded and
    /// sends the rest — the records sent after a refused one included, as they may or may not
    /// be in; a record refused for good is met again (filter past it by time).
    pub stopped: Option<String>,
}

/// How a replay runs.
#[derive(Clone, Debug, Default)]
pub struct ReplayOptions {
    /// Count what would be published; publish nothing (and leave no record of it).
    pub dry_run: bool,
    /// Send again the letters an earlier replay sent too.
    pub again: bool,
    /// Who runs it (kept with what it went through).
    pub by: String,
}

/// Records published at once.
const CHUNK: usize = 500;

/// How long a replay's lease lasts unless renewed (every third of it while the replay runs):
/// how long a replay that died holds the next one back.
const LEASE: Duration = Duration::from_secs(60);

/// The lease a replay of `topic` holds in the store while it runs.
pub fn lease_of(topic: &str) -> String {
    format!("dead-letters.replay.{topic}")
}

/// [`replay`] under a lease in `store` ([`lease_of`] the topic), so that two replays of one
/// topic never run at once across processes sharing the store (gateway replicas, `mantis dlq`
/// beside them): each would send what the other had not recorded yet. [`Error::Busy`] while
/// another runs, [`Error::Store`] when the lease cannot be taken (nothing is published either
/// way); a dry run takes none. `options.by` names the holder, with this host.
pub async fn replay_alone(
    store: &dyn mantis_store::Store,
    bus: &dyn Bus,
    topic: &str,
    filter: &Filter,
    options: &ReplayOptions,
) -> Result<Replayed, Error> {
    if options.dry_run {
        return replay(bus, topic, filter, options).await;
    }
    if !topic.starts_with(PREFIX) {
        return Err(Error::NotADeadLetterTopic(topic.to_owned()));
    }
    let name = format!("{} on {}", options.by, crate::host_name("an unnamed host"));
    let holder = crate::lease_holder(Some(&name), "mantis");
    let run = |lease| replay_watched(bus, topic, filter, options, Some(lease));
    match crate::hold_watched(store, &lease_of(topic), &holder, LEASE, run).await {
        Ok(Ok(done)) => done,
        Ok(Err(lease)) => Err(Error::Busy {
            topic: topic.to_owned(),
            by: crate::holder_name(&lease.holder).to_owned(),
            until: lease.expires_at,
        }),
        Err(e) => Err(Error::Store(e)),
    }
}

/// Publishes the dead letters of `topic` that `filter` takes back to the topics they came
/// from (with `dry_run`, counts what it would), each for the consumers that set it aside
/// alone when consumers did (header `mantis.replay.for`: the others of its topic pass over
/// it; a record refused before it was written is for all) and marked with the letter it was
/// (`mantis.replay.of`). A letter that is a copy of one this run replays is left, so that
/// replaying again does not send the record twice (dead-letter topics have one partition, so
/// a letter is read before its copies), and so is a letter an earlier replay sent, unless
/// [`ReplayOptions::again`]. Publishes as it reads, in chunks, leaving on [`REPLAYS`] after
/// each what it went through; a bus that goes away or refuses a record for good stops the
/// replay (said in [`Replayed::stopped`]). Keeps the position of each letter it sends
/// (16 bytes each) to know copies.
pub async fn replay(
    bus: &dyn Bus,
    topic: &str,
    filter: &Filter,
    options: &ReplayOptions,
) -> Result<Replayed, Error> {
    replay_watched(bus, topic, filter, options, None).await
}

/// [`replay`], stopping before it publishes more once `lease` is lost.
async fn replay_watched(
    bus: &dyn Bus,
    topic: &str,
    filter: &Filter,
    options: &ReplayOptions,
    lease: Option<crate::LeaseWatch>,
) -> Result<Replayed, Error> {
    let mut outcome = Replayed {
        since: filter
            .since
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ..Replayed::default()
    };
    if !topic.starts_with(PREFIX) {
        return Err(Error::NotADeadLetterTopic(topic.to_owned()));
    }
    let (reader, earlier) = futures::join!(Reader::open(bus, topic), replays_of(bus, topic));
    let mut reader = reader?;
    let earlier = match earlier {
        Ok(r) => r,
        Err(e) => {
            reader.close().await;
            return Err(e);
        }
    };
    let mut run = Run {
        bus,
        dry_run: options.dry_run,
        done: Done {
            topic: topic.to_owned(),
            at: Utc::now(),
            by: options.by.clone(),
            filter: filter.clone(),
            through: BTreeMap::new(),
            through_ms: BTreeMap::new(),
            missing: std::collections::BTreeSet::new(),
        },
        read_ms: BTreeMap::new(),
        read: BTreeMap::new(),
        chunk: Vec::with_capacity(CHUNK),
        letters: Vec::with_capacity(CHUNK),
        recorded: false,
        sent_any: false,
        lease,
    };
    // Made sure of before anything is sent (its opening record covers nothing): a replay that
    // could not record what it sends would send it again at every run.
    if !options.dry_run
        && let Err(e) = run.record().await
    {
        reader.close().await;
        return Err(Error::NotRecorded(e));
    }
    let consumers = topic.strip_prefix(PREFIX).unwrap_or(topic).to_owned();
    // Source topics found to exist (one not found is not looked for again in this run, and its
    // letters are left for a later one).
    let mut sources: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // The letters of this run that are replayed: a copy of one of them is left.
    let mut taken: std::collections::HashSet<(i32, i64)> = std::collections::HashSet::new();
    let result: Result<(), Error> = async {
        while let Some(e) = reader.next().await? {
            run.read.insert(e.partition, e.offset);
            let at = run.read_ms.entry(e.partition).or_insert(e.timestamp_ms);
            *at = (*at).max(e.timestamp_ms);
            if !filter.takes(&e) {
                outcome.filtered += 1;
                continue;
            }
            if copy_of(&e, topic).is_some_and(|of| taken.contains(&of)) {
                // A copy of a copy is one too.
                taken.insert((e.partition, e.offset));
                outcome.copies += 1;
                continue;
            }
            let Some(record) = again(&e, topic, &consumers) else {
                outcome.not_replayable += 1;
                continue;
            };
            if !options.again && earlier.iter().any(|d| d.covers(&e)) {
                outcome.already_replayed += 1;
                continue;
            }
            if run.done.missing.contains(&record.topic) {
                outcome.not_replayable += 1;
                continue;
            }
            if !sources.contains(&record.topic) {
                if bus.offsets_of(&record.topic).await?.is_some() {
                    sources.insert(record.topic.clone());
                } else {
                    // None of its letters is sent by this replay: a later one looks again.
                    run.done.missing.insert(record.topic.clone());
                    outcome.not_replayable += 1;
                    continue;
                }
            }
            taken.insert((e.partition, e.offset));
            run.chunk.push(record);
            // With the latest time read of its partition: the letters before it are covered
            // with it (a copy set aside later than its original, left, included).
            let latest = run
                .read_ms
                .get(&e.partition)
                .copied()
                .unwrap_or(e.timestamp_ms);
            run.letters.push((e.partition, e.offset, latest));
            if run.chunk.len() == CHUNK && !run.flush(&mut outcome).await {
                return Ok(());
            }
        }
        run.flush(&mut outcome).await;
        Ok(())
    }
    .await;
    reader.close().await;
    match result {
        Ok(()) => Ok(outcome),
        // Stopped part way: what was published is said, not lost in the error (a later replay
        // leaves only what was recorded).
        Err(e) if !outcome.published.is_empty() => {
            outcome.stopped = Some(e.to_string());
            Ok(outcome)
        }
        Err(e) => Err(e),
    }
}

/// A replay under way: what it read, the chunk it is about to publish and what it will leave
/// on [`REPLAYS`].
struct Run<'a> {
    bus: &'a dyn Bus,
    dry_run: bool,
    /// What it went through so far (left on [`REPLAYS`] after each chunk published).
    done: Done,
    /// The last offset read of each partition.
    read: BTreeMap<i32, i64>,
    /// The latest time a letter read of each partition was set aside.
    read_ms: BTreeMap<i32, i64>,
    chunk: Vec<OutboundRecord>,
    /// The letter of each record of `chunk`: partition, offset, when it was set aside.
    letters: Vec<(i32, i64, i64)>,
    /// Whether [`REPLAYS`] was made sure of.
    recorded: bool,
    /// Whether it published anything yet.
    sent_any: bool,
    /// The lease it runs under ([`replay_alone`]): lost, it publishes no more.
    lease: Option<crate::LeaseWatch>,
}

impl Run<'_> {
    /// Publishes the chunk and leaves what the replay went through on [`REPLAYS`]; `false`
    /// when it stopped (said in `outcome.stopped`).
    async fn flush(&mut self, outcome: &mut Replayed) -> bool {
        if !self.dry_run && self.lease.as_ref().is_some_and(crate::LeaseWatch::lost) {
            // Nothing left to publish: done, without another record (the lease is not ours).
            if self.chunk.is_empty() {
                return true;
            }
            tracing::warn!(topic = %self.done.topic, "a replay's lease is lost; it stops");
            outcome.stopped = Some(
                "its lease in the store was lost (the store did not answer in time, or another \
                 replay took it): stopped before publishing more; a later replay goes on from \
                 what this one recorded"
                    .to_owned(),
            );
            self.chunk.clear();
            self.letters.clear();
            return false;
        }
        let letters = std::mem::take(&mut self.letters);
        let (sent, went_on) = publish(self.bus, &mut self.chunk, self.dry_run, outcome).await;
        self.sent_any |= sent > 0;
        // Nothing to record in a dry run, nor before anything was sent; a last chunk with
        // nothing in it still records the letters read after the last one sent (copies left).
        let moved =
            went_on && (self.done.through != self.read || self.done.through_ms != self.read_ms);
        if self.dry_run || !self.sent_any || (sent == 0 && !moved) {
            return went_on;
        }
        if went_on {
            // Every letter read so far was sent or left.
            self.done.through = self.read.clone();
            self.done.through_ms = self.read_ms.clone();
        } else {
            // The letters up to the last one sent, in each partition.
            for &(partition, offset, at) in &letters[..sent] {
                let through = self.done.through.entry(partition).or_insert(offset);
                *through = (*through).max(offset);
                let through_ms = self.done.through_ms.entry(partition).or_insert(at);
                *through_ms = (*through_ms).max(at);
            }
        }
        match self.record().await {
            Ok(()) => went_on,
            Err(e) => {
                tracing::warn!(topic = %self.done.topic, error = %e, "a replay's progress is not recorded; it stops");
                let unrecorded = format!(
                    "the last records published are not recorded on `{REPLAYS}` ({e}): a later \
                     replay sends them again"
                );
                outcome.stopped = Some(match outcome.stopped.take() {
                    Some(why) => format!("{why}; {unrecorded}"),
                    None => unrecorded,
                });
                false
            }
        }
    }

    async fn record(&mut self) -> Result<(), mantis_bus::Error> {
        if !self.recorded {
            self.bus.ensure_topics(&[replays_spec()]).await?;
            self.recorded = true;
        }
        let payload =
            serde_json::to_vec(&self.done).map_err(|e| mantis_bus::Error::Other(e.to_string()))?;
        let record = OutboundRecord::new(
            REPLAYS,
            Some(self.done.topic.as_bytes().to_vec()),
            payload,
            TraceContext::new_root(),
        );
        self.bus.publish(record).await.map(|_| ())
    }
}

/// Publishes `chunk` (emptied), counting each record; answers how many were published and
/// `false` when it stopped (said in `outcome.stopped`): the bus went away, or refused a record for good — then the records
/// after it in the chunk may or may not be in already (Kafka sends a batch at once and
/// answers its first failure), so they are not sent again, and the replay stops there.
async fn publish(
    bus: &dyn Bus,
    chunk: &mut Vec<OutboundRecord>,
    dry_run: bool,
    outcome: &mut Replayed,
) -> (usize, bool) {
    let records = std::mem::take(chunk);
    let (sent, failed) = if dry_run {
        (records.len(), None)
    } else {
        bus.publish_all(&records).await
    };
    for record in &records[..sent] {
        *outcome.published.entry(record.topic.clone()).or_default() += 1;
    }
    let Some(e) = failed else {
        return (sent, true);
    };
    let after = records.len() - sent - 1;
    if e.is_retryable() || matches!(e, mantis_bus::Error::Denied(_)) {
        outcome.stopped = Some(e.to_string());
    } else {
        outcome.refused += 1;
        let topic = records.get(sent).map_or("", |r| r.topic.as_str());
        tracing::warn!(%topic, error = %e, "a replayed record is refused by the bus; the replay stops");
        outcome.stopped = Some(format!(
            "a record for `{topic}` was refused ({e}); the {after} sent after it with it may or \
             may not be in (a later replay sends them again); it stops every replay that \
             reaches it: filter past it by time"
        ));
    }
    (sent, false)
}

/// The letter `e` is a copy of (a replayed record set aside again), when it is one of `topic`.
fn copy_of(e: &Envelope, topic: &str) -> Option<(i32, i64)> {
    let of = std::str::from_utf8(e.header(REPLAY_OF)?).ok()?;
    let mut parts = of.rsplitn(3, '/');
    let offset = parts.next()?.parse::<i64>().ok()?;
    let partition = parts.next()?.parse::<i32>().ok()?;
    (parts.next()? == topic).then_some((partition, offset))
}

/// The topic the letter `e` came from, when it can be sent back there: none for a device
/// message, or a letter of a dead-letter topic.
fn source_of(e: &Envelope) -> Option<&str> {
    let source = std::str::from_utf8(e.header(DLQ_SOURCE_TOPIC)?).ok()?;
    (!source.starts_with(PREFIX) && !source.is_empty()).then_some(source)
}

/// The record a dead letter was, for its source topic: its key, payload, headers (less the
/// dead-letter and replay ones) and trace, addressed to `consumers` and marked with the letter
/// it was; `None` when it has no source topic (a device message) or its source is a
/// dead-letter topic itself.
fn again(e: &Envelope, topic: &str, consumers: &str) -> Option<OutboundRecord> {
    let source = source_of(e)?;
    let mut record = OutboundRecord::new(source, e.key.clone(), e.payload.clone(), e.trace());
    record.headers = e
        .headers
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("mantis.dlq.")
                && !k.starts_with("mantis.replay.")
                && k != mantis_bus::TRACEPARENT
        })
        .cloned()
        .collect();
    // For the consumers that set it aside, when consumers did (a record read: its partition
    // and offset are said); a record the bus refused before it was written is for them all.
    if e.header(DLQ_SOURCE_OFFSET).is_some() {
        record
            .headers
            .push((REPLAY_FOR.into(), consumers.as_bytes().to_vec()));
    }
    record.headers.push((
        REPLAY_OF.into(),
        format!("{topic}/{}/{}", e.partition, e.offset).into_bytes(),
    ));
    Some(record)
}

/// How long a read waits for a record the topic's end says is there.
const READ_PATIENCE: Duration = Duration::from_secs(30);

/// Every record a dead-letter topic held when opened, in order per partition, read by a group
/// of its own that commits nothing (the services' groups are not touched).
struct Reader<'a> {
    bus: &'a dyn Bus,
    topic: String,
    sub: Option<Box<dyn Subscription>>,
    /// Per partition still to read: the next offset expected and where it ended when opened.
    left: BTreeMap<i32, (i64, i64)>,
}

impl<'a> Reader<'a> {
    async fn open(bus: &'a dyn Bus, topic: &str) -> Result<Self, Error> {
        if !topic.starts_with(PREFIX) {
            return Err(Error::NotADeadLetterTopic(topic.to_owned()));
        }
        Self::open_topic(bus, topic)
            .await?
            .ok_or_else(|| Error::NotADeadLetterTopic(topic.to_owned()))
    }

    /// A reader of any topic; `None` when there is no such topic.
    async fn open_topic(bus: &'a dyn Bus, topic: &str) -> Result<Option<Self>, Error> {
        let Some(offsets) = bus
            .topic_offsets(topic)
            .await?
            .into_iter()
            .find(|t| t.name == topic)
        else {
            return Ok(None);
        };
        // Where each partition ends now: records set aside meanwhile wait for the next run.
        let left: BTreeMap<i32, (i64, i64)> = offsets
            .partitions
            .iter()
            .filter(|p| p.end > p.earliest)
            .map(|p| (p.partition, (p.earliest, p.end)))
            .collect();
        let sub = if left.is_empty() {
            None
        } else {
            // A group no other reader has: this process, this moment, this call.
            static READERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let group = format!(
                "mantis.dlq.reader.{}.{}.{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros(),
                READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            Some(
                bus.subscribe(SubscribeOptions::new(group, [topic], StartFrom::Earliest))
                    .await?,
            )
        };
        Ok(Some(Self {
            bus,
            topic: topic.to_owned(),
            sub,
            left,
        }))
    }

    /// The next record, `None` once every partition is read to where it ended when opened. A
    /// record delivered again (a rebalance of this reader's group, which commits nothing,
    /// starts over) is passed over; a partition whose records were deleted meanwhile (its
    /// retention) is done.
    async fn next(&mut self) -> Result<Option<Envelope>, Error> {
        while !self.left.is_empty() {
            let Some(sub) = self.sub.as_mut() else {
                return Ok(None);
            };
            let e = match tokio::time::timeout(READ_PATIENCE, sub.next()).await {
                Ok(e) => e?,
                Err(_) => {
                    self.drop_deleted().await?;
                    if self.left.is_empty() {
                        return Ok(None);
                    }
                    return Err(Error::Unavailable(format!(
                        "`{}`: no record within {} s although the topic holds more; try again",
                        self.topic,
                        READ_PATIENCE.as_secs()
                    )));
                }
            };
            let Some(&(expected, end)) = self.left.get(&e.partition) else {
                continue;
            };
            if e.offset < expected {
                continue;
            }
            if e.offset >= end {
                self.left.remove(&e.partition);
                continue;
            }
            if e.offset + 1 >= end {
                self.left.remove(&e.partition);
            } else {
                self.left.insert(e.partition, (e.offset + 1, end));
            }
            return Ok(Some(e));
        }
        Ok(None)
    }

    /// Forgets the partitions whose remaining records are gone (deleted by retention).
    async fn drop_deleted(&mut self) -> Result<(), Error> {
        let now = self
            .bus
            .topic_offsets(&self.topic)
            .await?
            .into_iter()
            .find(|t| t.name == self.topic);
        let starts: BTreeMap<i32, i64> = now
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition, p.earliest))
                    .collect()
            })
            .unwrap_or_default();
        // Gone only when the partition says so; one not answering now (no leader) is waited
        // for by the caller's next try, not taken for empty.
        if self.left.keys().any(|p| !starts.contains_key(p)) {
            return Ok(());
        }
        self.left
            .retain(|p, (_, end)| starts.get(p).is_some_and(|earliest| earliest < end));
        Ok(())
    }

    async fn close(mut self) {
        if let Some(sub) = self.sub.take() {
            let _ = sub.close().await;
        }
    }
}

/// Parses `--since`: RFC 3339, or a duration back from now (`30m`, `12h`, `7d`).
pub fn parse_since(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let wrong = || format!("`{raw}`: a time (RFC 3339) or a duration such as 30m, 12h, 7d");
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = number.parse().map_err(|_| wrong())?;
    let back = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(wrong)?;
    chrono::Utc::now()
        .checked_sub_signed(back)
        .ok_or_else(|| format!("`{raw}`: too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(offset: i64, set_aside_ms: i64, source: &str, reason: &str) -> Envelope {
        Envelope {
            topic: "dlq.x".into(),
            partition: 0,
            offset,
            key: None,
            headers: vec![
                (DLQ_SOURCE_TOPIC.into(), source.as_bytes().to_vec()),
                (DLQ_REASON.into(), reason.as_bytes().to_vec()),
            ],
            timestamp_ms: set_aside_ms,
            payload: Vec::new(),
        }
    }

    #[test]
    fn a_replay_covers_the_letters_it_went_through_and_took() {
        let done = Done {
            topic: "dlq.x".into(),
            at: DateTime::from_timestamp_millis(5_000).expect("a time"),
            by: "test".into(),
            filter: Filter {
                reason: Some("timeout".into()),
                since: None,
            },
            through: BTreeMap::from([(0, 10)]),
            through_ms: BTreeMap::from([(0, 2_000)]),
            missing: ["gone".to_owned()].into(),
        };
        assert!(done.covers(&letter(3, 1_500, "sensor.raw", "a Timeout")));
        assert!(done.covers(&letter(10, 2_000, "sensor.raw", "timeout")));
        // Beyond where it went, left by its filter, of a topic it did not find, a device
        // message, or set aside after it went through (a topic made again: offsets over).
        assert!(!done.covers(&letter(11, 1_500, "sensor.raw", "timeout")));
        assert!(!done.covers(&letter(3, 1_500, "sensor.raw", "not a number")));
        assert!(!done.covers(&letter(3, 1_500, "gone", "timeout")));
        assert!(!done.covers(&letter(3, 1_500, "", "timeout")));
        assert!(!done.covers(&letter(3, 2_500, "sensor.raw", "timeout")));
        // A record of an earlier version (no times per partition): the time it ran.
        let older: Done = serde_json::from_str(
            r#"{"topic":"dlq.x","at":"1970-01-01T00:00:05Z","by":"t","reason":null,"since":null,"through":{"0":10}}"#,
        )
        .expect("read");
        assert!(older.covers(&letter(3, 4_000, "sensor.raw", "x")));
        assert!(!older.covers(&letter(3, 6_000, "sensor.raw", "x")));
    }

    /// A replay whose lease is lost publishes nothing more and says why; a dry run counts on.
    #[tokio::test]
    async fn a_replay_whose_lease_is_lost_stops_before_publishing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = mantis_bus::embedded::EmbeddedBus::open(dir.path())
            .await
            .expect("log");
        let spec = |name: &str| TopicSpec {
            name: name.into(),
            partitions: 1,
            retention: Duration::from_secs(3600),
        };
        bus.ensure_topics(&[spec("dlq.x"), spec("source.topic")])
            .await
            .expect("topics");
        let mut read = letter(3, Utc::now().timestamp_millis(), "", "");
        read.topic = "source.topic".into();
        read.headers.clear();
        bus.publish(read.to_dead_letter("dlq.x", "refused"))
            .await
            .expect("dead-lettered");
        let lost = crate::LeaseWatch::default();
        lost.lose();
        let options = ReplayOptions::default();
        let done = replay_watched(
            &bus,
            "dlq.x",
            &Filter::default(),
            &options,
            Some(lost.clone()),
        )
        .await
        .expect("stopped, not failed");
        assert!(done.published.is_empty(), "{done:?}");
        assert!(
            done.stopped.as_deref().is_some_and(|s| s.contains("lease")),
            "{done:?}"
        );
        let sent = bus.topic_offsets("source.topic").await.expect("offsets")[0].retained();
        assert_eq!(sent, 0);
        let dry = ReplayOptions {
            dry_run: true,
            ..ReplayOptions::default()
        };
        let counted = replay_watched(&bus, "dlq.x", &Filter::default(), &dry, Some(lost))
            .await
            .expect("counted");
        assert_eq!(counted.published.get("source.topic"), Some(&1));
    }
}
