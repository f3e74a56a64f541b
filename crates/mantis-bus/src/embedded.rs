//! The embedded bus: a durable, partitioned, append-only log on local disk.
//!
//! Layout under the root directory:
//!
//! ```text
//! LOCK                                   locked while a bus has the directory open
//! topics/<topic>/topic.json              partition count and retention
//! topics/<topic>/<partition>/<base>.log  segments, named by their first offset (20 digits)
//! topics/<topic>/<partition>/<base>.index the offset index of a sealed segment
//! groups/<group>.json                    committed offsets of a consumer group
//! ```
//!
//! A segment is a run of frames `len: u32 | crc32(body): u32 | body` with the body
//! `offset: i64 | timestamp_ms: i64 | key_len: i32 (-1: no key) | key | header_count: u32 |
//! (name_len: u32 | name | value_len: u32 | value)* | payload`, all little-endian.
//!
//! A record becomes visible to readers, and `publish` returns, only after an fsync covering it;
//! concurrent publishers of one partition share fsyncs (group commit). When a segment rolls, its
//! offset index is written beside it (checksummed, with the segment's size), so opening reads
//! the index of every sealed segment instead of scanning it; a sealed segment without a valid
//! index for its current size (a crash before the index was written, an older log) is scanned
//! and indexed then. The last segment is always scanned: a torn frame at its tail (a crash
//! mid-append, also one that left a hole before later unsynced frames) is cut off, any other
//! damage is [`Error::Corrupt`]. Damage inside an indexed segment is found when its records are
//! read (every frame's checksum and offset are checked then). Retention deletes whole
//! segments (never the active one) on open and whenever a segment rolls.
//!
//! Consumer groups live in the process. The partitions of a topic are dealt round-robin over the
//! group's members reading it, recomputed whenever a member joins or leaves (a dropped
//! subscription leaves; `session_timeout` is not needed in one process). A partition a member
//! gains starts at the group's committed offset, or where the group started (`StartFrom`, fixed
//! when the group first reads the partition); committed offsets are written atomically to disk.
//! Subscriptions read frames from the segment files in bounded batches; nothing is kept in memory
//! beyond one batch and the offset index (the position of every 64th record).

use crate::{
    Bus, Delivery, Envelope, Error, Header, OutboundRecord, PartitionOffsets, Position, Result,
    StartFrom, SubscribeOptions, Subscription, TopicOffsets, TopicSpec,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Length and checksum in front of every frame body.
const FRAME_HEADER: u64 = 8;
/// offset + timestamp + key length + header count.
const MIN_BODY: u64 = 24;
/// Largest accepted frame body.
const MAX_BODY: usize = 256 << 20;
/// Most records and bytes read from a segment in one go by a subscription.
const READ_BATCH: usize = 256;
const READ_BYTES: u64 = 1 << 20;
/// The offset index keeps the file position of every this many records of a segment (8 bytes
/// per 64 records in memory rather than per record: a week of 2 000 readings a second indexes
/// in 150 MB, not 10 GB); a read starts at the indexed record at or before the wanted one and
/// skips the frames in between.
const INDEX_EVERY: usize = 64;
/// Bytes read at once while skipping or collecting frames.
const READ_CHUNK: u64 = 64 << 10;
/// A partition's recovery point: the offset below which its log was on disk (fsynced) when it
/// was written: when the partition is opened, every [`RECORD_RECOVERY_EVERY`] while records
/// arrive (a thread of the bus), and when the bus closes. Damage in the last segment at or
/// past it is what a crash leaves (frames not acknowledged, or acknowledged less than that long
/// ago): cut off, the bytes kept beside it. Damage below it hit data that was on disk:
/// [`Error::Corrupt`], unless only a crash can leave its shape.
const RECOVERY_POINT: &str = "recovery-point";
const RECORD_RECOVERY_EVERY: Duration = Duration::from_secs(1);

/// How long opening waits for the directory's lock held by a bus that is closing.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Partitions of a topic at most.
const MAX_PARTITIONS: i32 = 10_000;

/// First bytes of a segment index file, and its format version.
const INDEX_MAGIC: &[u8; 4] = b"MIDX";
const INDEX_VERSION: u32 = 1;

/// Tuning of an [`EmbeddedBus`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// A partition starts a new segment once its current one reaches this size (default 64 MiB).
    pub segment_bytes: u64,
    /// At most about this many bytes per partition, besides the topic's retention time (Kafka's
    /// `retention.bytes`): checked when a segment rolls (and on open), the oldest segments go
    /// first, never the active one, so a partition may hold up to one segment more; segments
    /// are then at most a quarter of it (so at least three quarters of the budget is kept).
    /// Default: no limit.
    pub retention_bytes: Option<u64>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            retention_bytes: None,
        }
    }
}

/// What a partition keeps: segments whose newest record is younger than `age` and, when
/// `bytes` is set, no more than that many bytes of them (oldest whole segments deleted first;
/// never the active one).
#[derive(Clone, Copy, Debug)]
struct Keep {
    age: Duration,
    bytes: Option<u64>,
}

/// The durable on-disk bus of the single-process mode. Cheap to clone (shared state).
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBus {
    /// Opens (creating if needed) the log in `dir` with default options, recovering its state.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EmbeddedOptions::default()).await
    }

    /// Opens (creating if needed) the log in `dir`. Fails with [`Error::Unavailable`] when
    /// another bus holds the directory, [`Error::Corrupt`] when a segment is damaged.
    pub async fn open_with(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Self> {
        if options.segment_bytes == 0 {
            return Err(Error::Invalid("segment_bytes must be positive".into()));
        }
        if options.retention_bytes == Some(0) {
            return Err(Error::Invalid(
                "retention_bytes (infra.bus.retention_bytes_per_partition) must be positive; absent: no limit".into(),
            ));
        }
        let mut options = options;
        if let Some(limit) = options.retention_bytes {
            // Retention deletes whole segments, so a segment must be a small part of the
            // budget: one as large would be deleted as soon as it is finished, before its
            // records are read.
            options.segment_bytes = options.segment_bytes.min((limit / 4).max(4096));
        }
        let root = dir.as_ref().to_path_buf();
        let inner = Arc::new(blocking(move || Inner::open(root, options)).await?);
        record_recovery_points_until_closed(Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// Deletes the records of `topic`'s `partition` below `offset` (as Kafka's DeleteRecords),
    /// in whole segments: every sealed segment whose records all lie below `offset` goes, oldest
    /// first; the active segment never. Subscriptions positioned below move up to the new log
    /// start. Returns the bytes of the segment files deleted (0 when none could go).
    pub async fn delete_records_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<u64> {
        let partition = self.inner.partition(topic, partition)?;
        blocking(move || Ok(partition.delete_before(offset))).await
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn ensure_topics(&self, topics: &[TopicSpec]) -> Result<()> {
        let (inner, specs) = (self.inner.clone(), topics.to_vec());
        blocking(move || inner.ensure_topics(&specs)).await
    }

    async fn publish(&self, record: OutboundRecord) -> Result<Delivery> {
        let (partition, keep) = self.inner.route(&record)?;
        let segment_bytes = self.inner.options.segment_bytes;
        blocking(move || {
            let offset = partition.append(&record, segment_bytes, keep)?;
            Ok(Delivery {
                partition: partition.id,
                offset,
            })
        })
        .await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        let inner = self.inner.clone();
        let sub = blocking(move || Inner::join(&inner, options)).await?;
        Ok(Box::new(sub))
    }

    async fn topic_offsets(&self, prefix: &str) -> Result<Vec<TopicOffsets>> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.to_owned();
        blocking(move || {
            let topics = inner.topics.read().unwrap_or_else(PoisonError::into_inner);
            let mut found: Vec<TopicOffsets> = topics
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .map(|(name, topic)| TopicOffsets {
                    name: name.clone(),
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|p| PartitionOffsets {
                            partition: p.id,
                            earliest: p.log_start(),
                            end: *p.end.borrow(),
                        })
                        .collect(),
                })
                .collect();
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(found)
        })
        .await
    }

    async fn group_positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Option<BTreeMap<i32, i64>>> {
        let inner = Arc::clone(&self.inner);
        let (group, topic, partitions) = (group.to_owned(), topic.to_owned(), partitions.to_vec());
        blocking(move || {
            let mut found = BTreeMap::new();
            let groups = lock(&inner.groups);
            if let Some(g) = groups.get(&group) {
                for &p in &partitions {
                    let tp = (topic.clone(), p);
                    let at = g.committed.get(&topic).and_then(|c| c.get(&p));
                    if let Some(&at) = at.or_else(|| g.initial.get(&tp)) {
                        found.insert(p, at);
                    }
                }
                return Ok(Some(found));
            }
            drop(groups);
            // A group no member of this process joined: what it committed, from its file.
            let path = inner.group_path(&group);
            let mut committed: BTreeMap<String, BTreeMap<i32, i64>> = match fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))?,
                Err(e) if e.kind() == ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => return Err(e.into()),
            };
            let of_topic = committed.remove(&topic).unwrap_or_default();
            found.extend(of_topic.into_iter().filter(|(p, _)| partitions.contains(p)));
            Ok(Some(found))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        tokio::fs::metadata(&self.inner.root).await?;
        // A partition that stopped taking writes makes the bus unready (a restart scans it
        // again): `/ready` says so, rather than every publish to it failing unseen.
        let topics = self
            .inner
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for topic in topics.values() {
            for partition in &topic.partitions {
                partition.check_usable()?;
            }
        }
        Ok(())
    }
}

/// (topic, partition).
type Tp = (String, i32);
/// A partition given to a member, with the group's generation in which that member got it: it
/// changes when the partition went to another member in between, even if the member never
/// looked while it was away.
type Assigned = (Tp, u64);

struct Inner {
    root: PathBuf,
    options: EmbeddedOptions,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
    /// Holds the directory lock for the lifetime of the bus.
    _lock: File,
}

struct Topic {
    keep: Keep,
    partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TopicMeta {
    partitions: i32,
    retention_ms: u64,
}

struct Partition {
    topic: String,
    id: i32,
    dir: PathBuf,
    /// Held for a write or an index lookup, never across an fsync.
    log: Mutex<Log>,
    /// Offsets below this value are on disk; serialises fsyncs (group commit).
    synced: Mutex<i64>,
    /// The recovery point file ([`RECOVERY_POINT`]) and the offset it holds.
    recovery: Mutex<(File, i64)>,
    /// Durable end offset: what readers may read and wait on.
    end: watch::Sender<i64>,
    /// Set when a write could not be undone or an fsync failed: what the file holds is no
    /// longer known (after a failed fsync Linux marks the lost pages clean, so a later fsync
    /// "succeeds" without them). Appends are refused until the partition is opened again,
    /// which scans the file.
    failed: std::sync::atomic::AtomicBool,
    /// The end of the log when it was opened: no group can have read past it before.
    opened_end: i64,
}

struct Log {
    segments: Vec<Segment>,
    /// The last segment, open for appending.
    active: Arc<File>,
    next_offset: i64,
}

struct Segment {
    base: i64,
    path: PathBuf,
    /// Records in the segment.
    records: usize,
    /// File position of the records `base`, `base + INDEX_EVERY`, `base + 2 * INDEX_EVERY`, ...
    index: Vec<u64>,
    size: u64,
    max_timestamp: i64,
}

#[derive(Default)]
struct Group {
    committed: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Start positions of partitions the group has no commit for, fixed when first assigned so
    /// a partition handed to another member continues where the group started.
    initial: HashMap<Tp, i64>,
    members: BTreeMap<u64, Member>,
    /// Rebalances so far.
    generation: u64,
    /// Serialises writes of the group file.
    persist: Arc<Mutex<()>>,
}

struct Member {
    topics: Vec<String>,
    start: StartFrom,
    assignment: watch::Sender<Arc<[Assigned]>>,
}

impl Inner {
    fn open(root: PathBuf, options: EmbeddedOptions) -> Result<Self> {
        create_dir_durably(&root.join("topics"))?;
        create_dir_durably(&root.join("groups"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("LOCK"))?;
        // A bus of this process closing (its recovery points being recorded, by the thread
        // that held it last) lets go within moments: waited for briefly.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::Unavailable(format!(
                        "the log directory {} is in use by another bus",
                        root.display()
                    )));
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::Io(e)),
            }
        }
        let mut topics = HashMap::new();
        for entry in fs::read_dir(root.join("topics"))? {
            let dir = entry?.path();
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let meta_path = dir.join("topic.json");
            if !meta_path.exists() {
                warn!(topic = %name, "ignoring a topic whose creation did not complete");
                continue;
            }
            let meta: TopicMeta = serde_json::from_slice(&fs::read(&meta_path)?)
                .map_err(|e| corrupt(&meta_path, e))?;
            if !(1..=MAX_PARTITIONS).contains(&meta.partitions) {
                return Err(corrupt(
                    &meta_path,
                    format!("{} partitions (1..={MAX_PARTITIONS})", meta.partitions),
                ));
            }
            let keep = Keep {
                age: Duration::from_millis(meta.retention_ms),
                bytes: options.retention_bytes,
            };
            let topic = Topic::open(&dir, &name, meta.partitions, keep)?;
            topics.insert(name, Arc::new(topic));
        }
        info!(root = %root.display(), topics = topics.len(), "opened the embedded log");
        Ok(Self {
            root,
            options,
            topics: RwLock::new(topics),
            groups: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(0),
            _lock: lock,
        })
    }

    fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<()> {
        for spec in specs {
            validate_topic(&spec.name)?;
            if !(1..=MAX_PARTITIONS).contains(&spec.partitions) {
                return Err(Error::Invalid(format!(
                    "topic `{}`: {} partitions",
                    spec.name, spec.partitions
                )));
            }
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        for spec in specs {
            if let Some(topic) = topics.get(&spec.name) {
                // Kept as created: more partitions would move keys to others (Kafka lets an
                // operator add them; here the catalogue's change waits for a new log).
                if topic.partitions.len() != spec.partitions as usize
                    || topic.keep.age != spec.retention
                {
                    warn!(topic = %spec.name, partitions = topic.partitions.len(), wanted_partitions = spec.partitions, retention_secs = topic.keep.age.as_secs(), wanted_retention_secs = spec.retention.as_secs(), "an existing topic differs from the catalogue; it is kept as it is");
                }
                continue;
            }
            let dir = self.root.join("topics").join(&spec.name);
            let keep = Keep {
                age: spec.retention,
                bytes: self.options.retention_bytes,
            };
            let topic = Topic::open(&dir, &spec.name, spec.partitions, keep)?;
            let meta = TopicMeta {
                partitions: spec.partitions,
                retention_ms: u64::try_from(spec.retention.as_millis()).unwrap_or(u64::MAX),
            };
            let bytes = serde_json::to_vec(&meta).map_err(|e| Error::Other(e.to_string()))?;
            // The metadata file is written last: it marks the topic as complete.
            write_atomic(&dir.join("topic.json"), &bytes)?;
            sync_dir(&self.root.join("topics"))?;
            info!(topic = %spec.name, partitions = spec.partitions, "created topic");
            topics.insert(spec.name.clone(), Arc::new(topic));
        }
        Ok(())
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>> {
        let t = self.topic(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p).cloned())
            .ok_or_else(|| Error::Invalid(format!("topic `{topic}` has no partition {partition}")))
    }

    /// Picks the partition of a record: keyed records by murmur2 of the key (as Kafka's Java
    /// client does), unkeyed ones round-robin.
    fn route(&self, record: &OutboundRecord) -> Result<(Arc<Partition>, Keep)> {
        let topic = self.topic(&record.topic)?;
        let n = topic.partitions.len() as u32;
        let slot = match &record.key {
            Some(key) => (murmur2(key) & 0x7fff_ffff) % n,
            None => topic.round_robin.fetch_add(1, Ordering::Relaxed) % n,
        };
        let partition = topic.partitions[slot as usize].clone();
        Ok((partition, topic.keep))
    }

    /// Moves a group's positions, as read from its file (written before the log was opened),
    /// back to the end of a log that is shorter than them (records lost to damage, a segment
    /// removed by hand): the offsets past that end are given to new records, which the group
    /// would otherwise skip until they passed its old position.
    fn clamp_to_log(&self, group: &str, committed: &mut BTreeMap<String, BTreeMap<i32, i64>>) {
        for (topic, partitions) in committed.iter_mut() {
            for (id, position) in partitions.iter_mut() {
                let Ok(partition) = self.partition(topic, *id) else {
                    continue;
                };
                if *position > partition.opened_end {
                    tracing::error!(group, topic = %topic, partition = id, committed = *position, end = partition.opened_end, "the group had read past the end of the log as it was opened; it reads on from that end");
                    *position = partition.opened_end;
                }
            }
        }
    }

    fn group_path(&self, group: &str) -> PathBuf {
        let mut name = String::with_capacity(group.len() + 5);
        for b in group.bytes() {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                name.push(char::from(b));
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        name.push_str(".json");
        self.root.join("groups").join(name)
    }

    fn join(self: &Arc<Self>, options: SubscribeOptions) -> Result<EmbeddedSubscription> {
        if options.group.is_empty() || options.topics.is_empty() {
            return Err(Error::Invalid(
                "a subscription needs a group and topics".into(),
            ));
        }
        for t in &options.topics {
            self.topic(t)?;
        }
        let member = self.next_member.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Arc::from(Vec::new()));
        {
            let mut groups = lock(&self.groups);
            if !groups.contains_key(&options.group) {
                let path = self.group_path(&options.group);
                let mut committed: BTreeMap<String, BTreeMap<i32, i64>> = match fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e))?,
                    Err(e) if e.kind() == ErrorKind::NotFound => BTreeMap::new(),
                    Err(e) => return Err(e.into()),
                };
                self.clamp_to_log(&options.group, &mut committed);
                let group = Group {
                    committed,
                    ..Group::default()
                };
                groups.insert(options.group.clone(), group);
            }
            let Some(group) = groups.get_mut(&options.group) else {
                return Err(Error::Closed);
            };
            group.members.insert(
                member,
                Member {
                    topics: options.topics.clone(),
                    start: options.start,
                    assignment: tx,
                },
            );
            self.rebalance(group);
        }
        debug!(group = %options.group, member, "joined consumer group");
        let mut sub = EmbeddedSubscription {
            inner: self.clone(),
            group: options.group,
            member,
            assignment: rx,
            current: Arc::from(Vec::new()),
            owned: Vec::new(),
            buffer: VecDeque::new(),
            pending: None,
            turn: 0,
            left: false,
            revoked: Vec::new(),
            returned_under: HashMap::new(),
        };
        sub.reassign();
        Ok(sub)
    }

    /// Spreads every partition of the group's topics over the members reading that topic.
    fn rebalance(&self, group: &mut Group) {
        let mut plan: BTreeMap<u64, Vec<Tp>> =
            group.members.keys().map(|m| (*m, Vec::new())).collect();
        let topics: BTreeSet<&String> = group.members.values().flat_map(|m| &m.topics).collect();
        for name in topics {
            let Ok(topic) = self.topic(name) else {
                continue;
            };
            let readers: Vec<(&u64, &Member)> = group
                .members
                .iter()
                .filter(|(_, m)| m.topics.contains(name))
                .collect();
            for (i, partition) in topic.partitions.iter().enumerate() {
                let (id, member) = readers[i % readers.len()];
                let tp = (name.clone(), partition.id);
                let committed = group.committed.get(name).and_then(|c| c.get(&partition.id));
                if committed.is_none() {
                    group
                        .initial
                        .entry(tp.clone())
                        .or_insert_with(|| match member.start {
                            StartFrom::Earliest => partition.log_start(),
                            StartFrom::Latest => *partition.end.borrow(),
                        });
                }
                if let Some(tps) = plan.get_mut(id) {
                    tps.push(tp);
                }
            }
        }
        group.generation += 1;
        let generation = group.generation;
        for (id, tps) in plan {
            if let Some(member) = group.members.get(&id) {
                member.assignment.send_if_modified(|current| {
                    // A partition the member keeps keeps its generation.
                    let next: Vec<Assigned> = tps
                        .iter()
                        .map(|tp| {
                            let since = current
                                .iter()
                                .find(|(t, _)| t == tp)
                                .map_or(generation, |(_, g)| *g);
                            (tp.clone(), since)
                        })
                        .collect();
                    let changed = **current != *next;
                    if changed {
                        *current = next.into();
                    }
                    changed
                });
            }
        }
    }

    fn commit(&self, group: &str, position: &Position) -> Result<()> {
        self.partition(&position.topic, position.partition)?;
        if position.next_offset < 0 {
            return Err(Error::Invalid(format!("negative offset in {position:?}")));
        }
        let persist = lock(&self.groups)
            .get(group)
            .map(|g| g.persist.clone())
            .ok_or(Error::Closed)?;
        let _serial = lock(&persist);
        let mut committed = lock(&self.groups)
            .get(group)
            .map(|g| g.committed.clone())
            .ok_or(Error::Closed)?;
        committed
            .entry(position.topic.clone())
            .or_default()
            .insert(position.partition, position.next_offset);
        let bytes = serde_json::to_vec(&committed).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.group_path(group), &bytes)?;
        if let Some(g) = lock(&self.groups).get_mut(group) {
            g.committed = committed;
        }
        Ok(())
    }
}

impl Topic {
    fn open(dir: &Path, name: &str, partitions: i32, keep: Keep) -> Result<Self> {
        let partitions = (0..partitions)
            .map(|id| Partition::open(dir.join(id.to_string()), name, id, keep).map(Arc::new))
            .collect::<Result<_>>()?;
        Ok(Self {
            keep,
            partitions,
            round_robin: AtomicU32::new(0),
        })
    }
}

impl Partition {
    fn open(dir: PathBuf, topic: &str, id: i32, keep: Keep) -> Result<Self> {
        create_dir_durably(&dir)?;
        let recovery_path = dir.join(RECOVERY_POINT);
        let recorded = read_recovery_point(&recovery_path);
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                let base = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<i64>().ok());
                let base = base.ok_or_else(|| corrupt(&path, "segment name is not an offset"))?;
                found.push((base, path));
            }
        }
        found.sort();
        let mut segments: Vec<Segment> = Vec::with_capacity(found.len().max(1));
        for (i, (base, path)) in found.iter().enumerate() {
            if let Some(prev) = segments.last() {
                let expected = prev.end();
                if *base != expected {
                    return Err(corrupt(
                        path,
                        format!("segment starts at {base}, expected {expected}"),
                    ));
                }
            }
            let last = i + 1 == found.len();
            let segment = match (!last).then(|| Segment::load_index(*base, path)).flatten() {
                Some(indexed) => indexed,
                None => {
                    let scanned = Segment::scan(*base, path, last, recorded)?;
                    if !last {
                        scanned.persist_index();
                    }
                    scanned
                }
            };
            segments.push(segment);
        }
        let active = match segments.last() {
            Some(last) => open_segment(&last.path)?,
            None => {
                let (segment, file) = Segment::create(&dir, 0)?;
                segments.push(segment);
                file
            }
        };
        apply_retention(&mut segments, keep, now_ms());
        let next_offset = segments.last().map_or(0, Segment::end);
        if let Some(recorded) = recorded.filter(|r| *r > next_offset) {
            // Records that were on disk are gone: a segment damaged or deleted by hand. Their
            // offsets are given again; consumer groups past them are moved back when assigned.
            tracing::error!(
                topic,
                partition = id,
                recorded,
                end = next_offset,
                "the log ends before its recorded recovery point: records that were on disk are missing"
            );
        }
        let recovery = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&recovery_path)?;
        // Unless the point already covers the whole log (a bus closed in order), what was read
        // back is made durable (a killed process leaves its writes in the page cache, not yet
        // on disk), then recorded as the recovery point.
        if recorded != Some(next_offset) {
            active.sync_data()?;
            write_recovery_point(&recovery, next_offset)?;
        }
        Ok(Self {
            topic: topic.to_owned(),
            id,
            dir,
            log: Mutex::new(Log {
                segments,
                active: Arc::new(active),
                next_offset,
            }),
            synced: Mutex::new(next_offset),
            recovery: Mutex::new((recovery, next_offset)),
            end: watch::Sender::new(next_offset),
            failed: std::sync::atomic::AtomicBool::new(false),
            opened_end: next_offset,
        })
    }

    /// Refuses appends once a write or an fsync failed (see [`Partition::failed`]).
    fn check_usable(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::Unavailable(format!(
                "partition {} of `{}` refuses writes since a write to its log failed; it is scanned again when the bus is opened again (restart)",
                self.id, self.topic
            )));
        }
        Ok(())
    }

    /// Records what is on disk as the recovery point, when it moved (not after a failed
    /// write, when what is on disk is not known). A failure only leaves an older point: logged.
    fn record_recovery_point(&self) {
        if self.failed.load(Ordering::Acquire) {
            return;
        }
        let mut recovery = lock(&self.recovery);
        let upto = *lock(&self.synced);
        if upto <= recovery.1 {
            return;
        }
        match write_recovery_point(&recovery.0, upto) {
            Ok(()) => recovery.1 = upto,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.id, error = %e, "the recovery point was not recorded");
            }
        }
    }

    /// Marks the partition failed after `e` (an I/O error of a write or an fsync).
    fn fail(&self, what: &str, e: std::io::Error) -> Error {
        self.failed.store(true, Ordering::Release);
        tracing::error!(topic = %self.topic, partition = self.id, error = %e, what, "the log's write failed; the partition refuses writes until it is opened again");
        Error::Io(e)
    }

    fn log_start(&self) -> i64 {
        lock(&self.log).segments.first().map_or(0, |s| s.base)
    }

    /// Deletes the sealed segments that end at or before `offset`; returns their bytes.
    fn delete_before(&self, offset: i64) -> u64 {
        let mut log = lock(&self.log);
        let mut freed = 0;
        while log.segments.len() > 1 && log.segments[0].end() <= offset {
            let size = log.segments[0].size;
            if !delete_oldest(&mut log.segments, "below the deletion offset") {
                break;
            }
            freed += size;
        }
        freed
    }

    /// Appends a record and returns its offset once it is on disk.
    fn append(&self, record: &OutboundRecord, segment_bytes: u64, keep: Keep) -> Result<i64> {
        let timestamp = now_ms();
        self.check_usable()?;
        let offset = {
            let mut guard = lock(&self.log);
            // Checked again under the lock: a failure may have come meanwhile.
            self.check_usable()?;
            let log = &mut *guard;
            let offset = log.next_offset;
            let frame = encode(offset, timestamp, record)?;
            if log
                .segments
                .last()
                .is_some_and(|s| s.size >= segment_bytes && s.records > 0)
            {
                // The finished segment must be durable before records go to the next one.
                log.active
                    .sync_data()
                    .map_err(|e| self.fail("fsync of a finished segment", e))?;
                if let Some(sealed) = log.segments.last() {
                    sealed.persist_index();
                }
                let (segment, file) = Segment::create(&self.dir, offset)?;
                debug!(topic = %self.topic, partition = self.id, base = offset, "rolled segment");
                log.segments.push(segment);
                log.active = Arc::new(file);
                apply_retention(&mut log.segments, keep, timestamp);
            }
            let Some(segment) = log.segments.last_mut() else {
                return Err(Error::Other("partition has no segment".into()));
            };
            let pos = segment.size;
            if let Err(e) = log.active.write_all_at(&frame, pos) {
                // Leave no partial frame behind for the next append to follow.
                if let Err(undo) = log.active.set_len(pos) {
                    tracing::error!(error = %undo, "a failed write could not be undone");
                    return Err(self.fail("write", e));
                }
                return Err(e.into());
            }
            segment.push(pos);
            segment.size += frame.len() as u64;
            segment.max_timestamp = segment.max_timestamp.max(timestamp);
            log.next_offset += 1;
            offset
        };
        // Group commit: whoever holds `synced` fsyncs everything written so far.
        let mut synced = lock(&self.synced);
        if *synced <= offset {
            // A failed fsync of another append may have dropped this record's pages.
            self.check_usable()?;
            let (file, written) = {
                let log = lock(&self.log);
                (log.active.clone(), log.next_offset)
            };
            file.sync_data()
                .map_err(|e| self.fail("fsync (group commit)", e))?;
            *synced = written;
            self.end.send_if_modified(|end| {
                let advanced = *end < written;
                *end = (*end).max(written);
                advanced
            });
        }
        Ok(offset)
    }

    /// Reads durable records from `from` (moved up to the log start if retention removed it),
    /// within one segment and bounded in count and bytes. Returns the effective start.
    fn read(&self, from: i64, end: i64) -> Result<(i64, Vec<Envelope>)> {
        let (from, file, start, skip, available, limit, upto) = {
            let log = lock(&self.log);
            let from = from.max(log.segments.first().map_or(0, |s| s.base));
            if from >= end {
                return Ok((from, Vec::new()));
            }
            let idx = log
                .segments
                .partition_point(|s| s.base <= from)
                .saturating_sub(1);
            let Some(seg) = log.segments.get(idx) else {
                return Ok((from, Vec::new()));
            };
            let rel = (from - seg.base) as usize;
            let available = (seg.records.saturating_sub(rel))
                .min((end - from) as usize)
                .min(READ_BATCH);
            let Some(&start) = seg.index.get(rel / INDEX_EVERY) else {
                return Ok((from, Vec::new()));
            };
            if available == 0 {
                return Ok((from, Vec::new()));
            }
            let file = if idx + 1 == log.segments.len() {
                Ok(log.active.clone())
            } else {
                Err(seg.path.clone())
            };
            // The indexed record after the last one wanted bounds the bytes to read at once.
            let upto = seg
                .index
                .get((rel + available).div_ceil(INDEX_EVERY))
                .copied()
                .unwrap_or(seg.size);
            (
                from,
                file,
                start,
                rel % INDEX_EVERY,
                available,
                seg.size,
                upto,
            )
        };
        let (file, path) = match file {
            Ok(file) => (file, None),
            Err(path) => match File::open(&path) {
                Ok(file) => (Arc::new(file), Some(path)),
                // Retention removed the segment meanwhile: continue from the new log start.
                Err(e) if e.kind() == ErrorKind::NotFound && self.log_start() > from => {
                    return Ok((self.log_start(), Vec::new()));
                }
                Err(e) => return Err(e.into()),
            },
        };
        let path = path.unwrap_or_else(|| self.dir.clone());
        let mut frames = Frames {
            file: &file,
            limit,
            buf: Vec::new(),
            buf_start: start,
        };
        // One read for the whole batch in the common case (records smaller than READ_BYTES).
        frames
            .prefetch(upto.min(start + READ_BYTES))
            .map_err(|e| corrupt(&path, e))?;
        // Skip from the indexed record to `from`, then take up to `available` records within
        // READ_BYTES (at least one).
        let mut pos = start;
        for _ in 0..skip {
            pos = frames.frame_end(pos).map_err(|e| corrupt(&path, e))?;
        }
        let first = pos;
        let mut out = Vec::with_capacity(available);
        while out.len() < available {
            let frame_end = frames.frame_end(pos).map_err(|e| corrupt(&path, e))?;
            if !out.is_empty() && frame_end - first > READ_BYTES {
                break;
            }
            let frame = frames
                .bytes(pos, frame_end)
                .map_err(|e| corrupt(&path, e))?;
            let (body, _) = split_frame(frame).ok_or_else(|| corrupt(&path, "bad frame"))?;
            let env =
                decode(body, &self.topic, self.id).ok_or_else(|| corrupt(&path, "bad record"))?;
            let expected = from + out.len() as i64;
            if env.offset != expected {
                return Err(corrupt(
                    &path,
                    format!("offset {} where {expected} was expected", env.offset),
                ));
            }
            out.push(env);
            pos = frame_end;
        }
        Ok((from, out))
    }
}

/// Frames of one segment file read through a buffer: a run of consecutive frames costs one
/// read per [`READ_CHUNK`] rather than one per frame.
struct Frames<'a> {
    file: &'a File,
    /// Bytes of the segment that hold complete frames.
    limit: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
}

impl Frames<'_> {
    /// Reads the bytes up to `to` at once, while nothing is buffered yet.
    fn prefetch(&mut self, to: u64) -> std::result::Result<(), String> {
        let to = to.min(self.limit);
        if self.buf.is_empty() && to > self.buf_start {
            self.buf.resize((to - self.buf_start) as usize, 0);
            self.file
                .read_exact_at(&mut self.buf, self.buf_start)
                .map_err(|e| format!("reading at byte {}: {e}", self.buf_start))?;
        }
        Ok(())
    }

    /// The bytes `[from, to)` of the file, reading more when the buffer ends before `to`.
    fn bytes(&mut self, from: u64, to: u64) -> std::result::Result<&[u8], String> {
        if from < self.buf_start || to > self.limit {
            return Err(format!("frame at byte {from} runs past the segment"));
        }
        let have = self.buf_start + self.buf.len() as u64;
        if to > have {
            // Keep what is buffered from `from` on; read on to a chunk beyond it, or to `to`.
            if from >= have {
                self.buf.clear();
            } else {
                self.buf.drain(..(from - self.buf_start) as usize);
            }
            self.buf_start = from;
            let have = from + self.buf.len() as u64;
            let upto = self.limit.min(to.max(have + READ_CHUNK));
            let old = self.buf.len();
            self.buf.resize((upto - from) as usize, 0);
            self.file
                .read_exact_at(&mut self.buf[old..], have)
                .map_err(|e| format!("reading at byte {have}: {e}"))?;
        }
        let a = (from - self.buf_start) as usize;
        let b = (to - self.buf_start) as usize;
        Ok(&self.buf[a..b])
    }

    /// Where the frame at `pos` ends.
    fn frame_end(&mut self, pos: u64) -> std::result::Result<u64, String> {
        let head = self.bytes(pos, pos + FRAME_HEADER)?;
        let body_len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        if body_len < MIN_BODY || body_len > MAX_BODY as u64 {
            return Err(format!("bad frame length {body_len} at byte {pos}"));
        }
        Ok(pos + FRAME_HEADER + body_len)
    }
}

impl Segment {
    fn create(dir: &Path, base: i64) -> Result<(Self, File)> {
        let path = dir.join(format!("{base:020}.log"));
        let file = open_segment(&path)?;
        sync_dir(dir)?;
        let segment = Self {
            base,
            path,
            records: 0,
            index: Vec::new(),
            size: 0,
            max_timestamp: i64::MIN,
        };
        Ok((segment, file))
    }

    /// Counts the record at file position `pos`, indexing every [`INDEX_EVERY`]th.
    fn push(&mut self, pos: u64) {
        if self.records.is_multiple_of(INDEX_EVERY) {
            self.index.push(pos);
        }
        self.records += 1;
    }

    /// The offset after the segment's last record.
    fn end(&self) -> i64 {
        self.base + self.records as i64
    }

    /// Where the index of this segment is kept once it is sealed.
    fn index_path(&self) -> PathBuf {
        index_path_of(&self.path)
    }

    /// The index file: `MIDX | version: u32 | base: i64 | records: u64 | size: u64 |
    /// max_timestamp: i64 | count: u64 | position: u64 * count | crc32 of all before: u32`.
    fn encode_index(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + 8 * self.index.len() + 4);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&self.base.to_le_bytes());
        out.extend_from_slice(&(self.records as u64).to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.max_timestamp.to_le_bytes());
        out.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        for pos in &self.index {
            out.extend_from_slice(&pos.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes the index of a sealed segment beside it. Best effort: without it the segment is
    /// scanned on the next open, as before.
    fn persist_index(&self) {
        if let Err(e) = write_atomic(&self.index_path(), &self.encode_index()) {
            warn!(path = %self.path.display(), error = %e, "could not write a segment index (the segment will be scanned on open)");
        }
    }

    /// The sealed segment `path` from its index file, when there is one that is intact and
    /// describes the segment as it is (same base, same size); `None` means: scan it.
    fn load_index(base: i64, path: &Path) -> Option<Self> {
        let index_path = index_path_of(path);
        let bytes = match fs::read(&index_path) {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    warn!(path = %index_path.display(), error = %e, "segment index unreadable; scanning the segment");
                }
                return None;
            }
        };
        let segment = Self::decode_index(base, path, &bytes);
        if segment.is_none() {
            warn!(path = %index_path.display(), "segment index damaged or stale; scanning the segment");
        }
        segment
    }

    fn decode_index(base: i64, path: &Path, bytes: &[u8]) -> Option<Self> {
        let (content, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(content) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let (magic, rest) = content.split_at_checked(INDEX_MAGIC.len())?;
        let (version, rest) = rest.split_at_checked(4)?;
        if magic != INDEX_MAGIC || u32::from_le_bytes(version.try_into().ok()?) != INDEX_VERSION {
            return None;
        }
        let mut words = rest.chunks_exact(8);
        let mut next = || {
            words
                .next()
                .and_then(|w| w.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let (stored_base, records, size, max_timestamp, count) =
            (next()? as i64, next()?, next()?, next()? as i64, next()?);
        let records = usize::try_from(records).ok()?;
        if stored_base != base
            || records == 0
            || count != records.div_ceil(INDEX_EVERY) as u64
            || Some(rest.len() as u64) != count.checked_add(5).and_then(|w| w.checked_mul(8))
            || fs::metadata(path).ok()?.len() != size
        {
            return None;
        }
        let index: Vec<u64> = (0..count).map(|_| next()).collect::<Option<_>>()?;
        // Positions strictly increase from the segment's start and stay inside it.
        let ordered = index.first() == Some(&0)
            && index.windows(2).all(|w| w[0] < w[1])
            && index
                .last()
                .is_some_and(|&p| p + FRAME_HEADER + MIN_BODY <= size);
        ordered.then(|| Self {
            base,
            path: path.to_owned(),
            records,
            index,
            size,
            max_timestamp,
        })
    }

    /// Rebuilds the index of a segment file. A damaged frame of the last segment is a torn
    /// write, and is cut off with everything after it, when it is at or past the partition's
    /// recorded recovery point (`recorded`: below it the log was on disk, past it a crash may
    /// have left any mix of old and new sectors), or has a shape only a crash leaves: it
    /// reaches the end of the file, is followed only by zeros, or holds a hole (a zero header
    /// or a zeroed page; a crash lets unsynced pages reach the disk in any order, so the frames
    /// after a hole were never acknowledged either: an fsync covering them would have covered
    /// the hole). Other damage below the recovery point (or in a log of an older version
    /// without one) is [`Error::Corrupt`].
    fn scan(base: i64, path: &Path, last: bool, recorded: Option<i64>) -> Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut seg = Self {
            base,
            path: path.to_owned(),
            records: 0,
            index: Vec::new(),
            size: 0,
            max_timestamp: i64::MIN,
        };
        let (mut head, mut body) = ([0u8; FRAME_HEADER as usize], Vec::new());
        'frames: while seg.size < len {
            let pos = seg.size;
            let remaining = len - pos;
            let (problem, frame_end) = 'frame: {
                if remaining < FRAME_HEADER {
                    break 'frame ("truncated frame header", len);
                }
                reader.read_exact(&mut head)?;
                let body_len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
                let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                let frame_end = pos.saturating_add(FRAME_HEADER + body_len);
                if body_len < MIN_BODY || frame_end > len {
                    ("bad frame length", frame_end)
                } else {
                    body.resize(body_len as usize, 0);
                    reader.read_exact(&mut body)?;
                    if crc32fast::hash(&body) != crc {
                        ("checksum mismatch", frame_end)
                    } else {
                        let offset = read_i64(&body, 0);
                        let expected = seg.end();
                        if offset != expected {
                            // Past the recovery point even a whole frame of another time (a
                            // block of a deleted file that a crash exposed) is a leftover.
                            if last && recorded.is_some_and(|r| expected >= r) {
                                break 'frame ("offset out of sequence", frame_end);
                            }
                            return Err(corrupt(
                                path,
                                format!("offset {offset} at byte {pos}, expected {expected}"),
                            ));
                        }
                        seg.push(pos);
                        seg.size = frame_end;
                        seg.max_timestamp = seg.max_timestamp.max(read_i64(&body, 8));
                        continue 'frames;
                    }
                }
            };
            let past = recorded.is_none_or(|r| seg.end() >= r);
            let torn = if !last {
                None
            } else if recorded.is_some() && past {
                Some("past the recovery point")
            } else if frame_end >= len || zeros_from(&file, pos, len)? {
                Some("at the end of the log")
            } else if holds_a_hole(&file, pos, frame_end.min(len), len)? {
                Some("a hole before later unsynced frames")
            } else {
                None
            };
            if let Some(shape) = torn {
                if !past {
                    // Only a crash leaves such a shape, but these frames were on disk: the
                    // disk lost what it had acknowledged (a volatile write cache that lies
                    // about its flushes). Cut, as the frames after them are unreadable anyway.
                    tracing::error!(path = %path.display(), at = pos, offset = seg.end(), recovery_point = recorded, shape, "frames below the recovery point were lost: the disk did not keep what it acknowledged");
                }
                // Kept beside the segment unless all zeros: should the damage have been media
                // corruption of acknowledged frames rather than a crash, nothing is destroyed.
                let kept = if zeros_from(&file, pos, len)? {
                    None
                } else {
                    // Never over the bytes an earlier cut at the same place kept.
                    let kept = (0..)
                        .map(|n| match n {
                            0 => path.with_extension(format!("log.torn-{pos}")),
                            n => path.with_extension(format!("log.torn-{pos}.{n}")),
                        })
                        .find(|p| !p.exists())
                        .unwrap_or_else(|| path.with_extension(format!("log.torn-{pos}")));
                    let mut bytes = vec![0u8; remaining as usize];
                    file.read_exact_at(&mut bytes, pos)?;
                    fs::write(&kept, &bytes)?;
                    File::open(&kept)?.sync_all()?;
                    // Durable before the segment is cut: the only copy once it is.
                    if let Some(dir) = path.parent() {
                        sync_dir(dir)?;
                    }
                    Some(kept.display().to_string())
                };
                warn!(path = %path.display(), at = pos, dropped = remaining, problem, shape, kept = kept.as_deref().unwrap_or("-"), "cutting off a torn write of the log (the bytes cut are kept beside it)");
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(pos)?;
                file.sync_all()?;
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                break;
            }
            return Err(corrupt(path, format!("{problem} at byte {pos}")));
        }
        Ok(seg)
    }
}

/// Where the index of the segment file `segment` is kept once the segment is sealed.
fn index_path_of(segment: &Path) -> PathBuf {
    segment.with_extension("index")
}

/// Deletes whole segments, oldest first and never the active one, whose newest record is older
/// than the retention time, or while the partition holds more than its byte limit.
fn apply_retention(segments: &mut Vec<Segment>, keep: Keep, now: i64) {
    let cutoff = now.saturating_sub(i64::try_from(keep.age.as_millis()).unwrap_or(i64::MAX));
    let mut total: u64 = segments.iter().map(|s| s.size).sum();
    while segments.len() > 1 {
        let expired = segments[0].max_timestamp < cutoff;
        let over = keep.bytes.is_some_and(|limit| total > limit);
        if !(expired || over) {
            return;
        }
        let reason = if expired {
            "older than the retention"
        } else {
            "over the byte limit"
        };
        let size = segments[0].size;
        if !delete_oldest(segments, reason) {
            return;
        }
        total -= size;
    }
}

/// Deletes the oldest segment's files and drops it from `segments`; `false` (logged) when a
/// file could not be deleted, and the segment stays.
fn delete_oldest(segments: &mut Vec<Segment>, reason: &str) -> bool {
    let Some(oldest) = segments.first() else {
        return false;
    };
    let path = oldest.path.clone();
    // The index first: a crash between the two leaves a segment that is scanned again.
    if let Err(e) = fs::remove_file(oldest.index_path())
        && e.kind() != ErrorKind::NotFound
    {
        warn!(path = %path.display(), error = %e, reason, "could not delete a segment's index");
        return false;
    }
    if let Err(e) = fs::remove_file(&path) {
        warn!(path = %path.display(), error = %e, reason, "could not delete a segment");
        return false;
    }
    info!(path = %path.display(), reason, "deleted segment");
    segments.remove(0);
    true
}

/// A member of a consumer group of the embedded bus.
struct EmbeddedSubscription {
    inner: Arc<Inner>,
    group: String,
    member: u64,
    assignment: watch::Receiver<Arc<[Assigned]>>,
    /// The assignment `owned` reflects.
    current: Arc<[Assigned]>,
    owned: Vec<Owned>,
    /// Records read ahead from one partition; positions advance only when one is returned.
    buffer: VecDeque<Envelope>,
    /// A read in flight (partition, from): kept across cancelled `next` calls.
    pending: Option<(Tp, i64, PendingRead)>,
    turn: usize,
    left: bool,
    /// Partitions taken from this member by rebalances, not yet reported.
    revoked: Vec<Tp>,
    /// The generation of the assignment under which the last record of each partition was
    /// returned (see [`Subscription::owns`]).
    returned_under: HashMap<Tp, u64>,
}

struct Owned {
    tp: Tp,
    /// The generation in which it was given (see [`Assigned`]).
    since: u64,
    partition: Arc<Partition>,
    /// Next offset to deliver.
    position: i64,
    end: watch::Receiver<i64>,
}

/// A segment read running on the blocking pool: (effective start, records).
type PendingRead = tokio::task::JoinHandle<Result<(i64, Vec<Envelope>)>>;

type Change<'a> = Pin<Box<dyn Future<Output = Result<(), watch::error::RecvError>> + Send + 'a>>;

impl EmbeddedSubscription {
    /// Applies the latest assignment: revoked partitions are dropped (with their read-ahead),
    /// new ones start at the group's committed offset.
    fn reassign(&mut self) {
        let assigned = self.assignment.borrow_and_update().clone();
        self.current = assigned.clone();
        // Taken: not assigned any more, or given back since (another member may have read and
        // committed it meanwhile: it starts again from the group's commit).
        let kept = |o: &Owned| {
            assigned
                .iter()
                .any(|(tp, since)| *tp == o.tp && *since == o.since)
        };
        for o in &self.owned {
            if !kept(o) {
                debug!(group = %self.group, member = self.member, topic = %o.tp.0, partition = o.tp.1, "partition revoked");
                self.revoked.push(o.tp.clone());
            }
        }
        self.owned.retain(kept);
        let owned: Vec<Tp> = self.owned.iter().map(|o| o.tp.clone()).collect();
        self.buffer.retain(|e| {
            owned
                .iter()
                .any(|(t, p)| *t == e.topic && *p == e.partition)
        });
        let groups = lock(&self.inner.groups);
        let group = groups.get(&self.group);
        for (tp, since) in assigned.iter() {
            if self.owned.iter().any(|o| o.tp == *tp) {
                continue;
            }
            let Ok(partition) = self.inner.partition(&tp.0, tp.1) else {
                continue;
            };
            let mut position = group
                .and_then(|g| {
                    let committed = g.committed.get(&tp.0).and_then(|c| c.get(&tp.1));
                    committed.or_else(|| g.initial.get(tp)).copied()
                })
                .unwrap_or_else(|| partition.log_start());
            let end = partition.end.subscribe();
            let durable_end = *end.borrow();
            if position > durable_end {
                // The log is shorter than what the group read (records lost to damage, a
                // segment deleted by hand): from its end, or the offsets given again to new
                // records would be skipped until they pass the old position.
                tracing::error!(group = %self.group, topic = %tp.0, partition = tp.1, committed = position, end = durable_end, "the group's position is past the end of the log; it reads on from the end");
                position = durable_end;
            }
            self.owned.push(Owned {
                tp: tp.clone(),
                since: *since,
                partition,
                position,
                end,
            });
        }
    }

    fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut groups = lock(&self.inner.groups);
        if let Some(group) = groups.get_mut(&self.group) {
            group.members.remove(&self.member);
            self.inner.rebalance(group);
        }
        debug!(group = %self.group, member = self.member, "left consumer group");
    }
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Envelope> {
        loop {
            // Compared by identity: `changed()` below marks new assignments as seen.
            if !Arc::ptr_eq(&self.assignment.borrow(), &self.current) {
                self.reassign();
            }
            if let Some(env) = self.buffer.pop_front() {
                if let Some(o) = self
                    .owned
                    .iter_mut()
                    .find(|o| o.tp.0 == env.topic && o.tp.1 == env.partition)
                {
                    o.position = env.offset + 1;
                    self.returned_under.insert(o.tp.clone(), o.since);
                }
                return Ok(env);
            }
            if self.pending.is_none() {
                let n = self.owned.len();
                let ready = (0..n)
                    .map(|i| (self.turn + i) % n)
                    .find(|&i| self.owned[i].position < *self.owned[i].end.borrow_and_update());
                if let Some(i) = ready {
                    self.turn = i + 1;
                    let o = &self.owned[i];
                    let (partition, from, end) = (o.partition.clone(), o.position, *o.end.borrow());
                    let read = tokio::task::spawn_blocking(move || partition.read(from, end));
                    self.pending = Some((o.tp.clone(), from, read));
                }
            }
            if let Some((_, _, read)) = &mut self.pending {
                // Awaited by reference: if this call is dropped, the next one picks the read up.
                let result = read.await;
                let Some((tp, from, _)) = self.pending.take() else {
                    continue;
                };
                let (start, batch) =
                    result.map_err(|e| Error::Other(format!("log read failed: {e}")))??;
                // Use the batch only if the partition is still owned at the position it was read from.
                if let Some(o) = self
                    .owned
                    .iter_mut()
                    .find(|o| o.tp == tp && o.position == from)
                {
                    if start > from {
                        warn!(group = %self.group, topic = %tp.0, partition = tp.1, skipped = start - from, "records were deleted by retention before this group read them");
                    }
                    o.position = start;
                    self.buffer.extend(batch);
                }
                continue;
            }
            // Nothing to read: wait for a publish to an owned partition or a new assignment.
            let Self {
                owned, assignment, ..
            } = self;
            let mut changes: Vec<Change<'_>> = owned
                .iter_mut()
                .map(|o| Box::pin(o.end.changed()) as Change<'_>)
                .collect();
            changes.push(Box::pin(assignment.changed()));
            let (result, _, _) = futures::future::select_all(changes).await;
            result.map_err(|_| Error::Closed)?;
        }
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        let (inner, group, position) = (self.inner.clone(), self.group.clone(), position.clone());
        blocking(move || inner.commit(&group, &position)).await
    }

    fn take_revoked(&mut self) -> Vec<(String, i32)> {
        // A rebalance since the last `next` counts now, not at the next record.
        if !Arc::ptr_eq(&self.assignment.borrow(), &self.current) {
            self.reassign();
        }
        std::mem::take(&mut self.revoked)
    }

    fn owns(&self, topic: &str, partition: i32) -> bool {
        let now = self
            .assignment
            .borrow()
            .iter()
            .find(|((t, p), _)| t == topic && *p == partition)
            .map(|(_, since)| *since);
        // Given back since the last record of it was returned (taken and given back after
        // it was read): that record is the old assignment's, read again from the commit.
        match (now, self.returned_under.get(&(topic.to_owned(), partition))) {
            (None, _) => false,
            (Some(since), Some(read_under)) => since == *read_under,
            (Some(_), None) => true,
        }
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        self.leave();
        Ok(())
    }
}

impl Inner {
    /// Records every partition's recovery point that moved.
    fn record_recovery_points(&self) {
        let topics: Vec<Arc<Topic>> = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for topic in topics {
            for partition in &topic.partitions {
                partition.record_recovery_point();
            }
        }
    }
}

impl Drop for Inner {
    /// A bus closed in order records where each partition is (while it still holds the
    /// directory's lock: no other bus can have opened the log meanwhile).
    fn drop(&mut self) {
        self.record_recovery_points();
    }
}

/// Records the recovery points of `inner` every [`RECORD_RECOVERY_EVERY`] until the bus is
/// dropped.
fn record_recovery_points_until_closed(inner: std::sync::Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("mantis-log-recovery".into())
        .spawn(move || {
            loop {
                std::thread::sleep(RECORD_RECOVERY_EVERY);
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                inner.record_recovery_points();
            }
        });
    if let Err(e) = spawned {
        // Recovery then treats the log as of an older version past the point set at open.
        warn!(error = %e, "no thread records the log's recovery points");
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        self.leave();
    }
}

fn encode(offset: i64, timestamp: i64, record: &OutboundRecord) -> Result<Vec<u8>> {
    fn len32(n: usize) -> Result<[u8; 4]> {
        u32::try_from(n)
            .map(u32::to_le_bytes)
            .map_err(|_| Error::Invalid("record field too large".into()))
    }
    let headers = record.wire_headers();
    let mut frame = vec![0u8; FRAME_HEADER as usize];
    frame.extend_from_slice(&offset.to_le_bytes());
    frame.extend_from_slice(&timestamp.to_le_bytes());
    match &record.key {
        Some(key) => {
            let len =
                i32::try_from(key.len()).map_err(|_| Error::Invalid("key too large".into()))?;
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(key);
        }
        None => frame.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    frame.extend_from_slice(&len32(headers.len())?);
    for (name, value) in &headers {
        frame.extend_from_slice(&len32(name.len())?);
        frame.extend_from_slice(name.as_bytes());
        frame.extend_from_slice(&len32(value.len())?);
        frame.extend_from_slice(value);
    }
    frame.extend_from_slice(&record.payload);
    let body_len = frame.len() - FRAME_HEADER as usize;
    if body_len > MAX_BODY {
        return Err(Error::Invalid(format!(
            "record of {body_len} bytes exceeds {MAX_BODY}"
        )));
    }
    let crc = crc32fast::hash(&frame[FRAME_HEADER as usize..]);
    frame[..4].copy_from_slice(&len32(body_len)?);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// Splits one checked frame body off the front of `buf`.
fn split_frame(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (head, rest) = buf.split_at_checked(FRAME_HEADER as usize)?;
    let len = u32::from_le_bytes(head.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head.get(4..8)?.try_into().ok()?);
    let (body, rest) = rest.split_at_checked(len)?;
    (crc32fast::hash(body) == crc).then_some((body, rest))
}

fn decode(body: &[u8], topic: &str, partition: i32) -> Option<Envelope> {
    let mut r = body;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = r.split_at_checked(n)?;
        r = rest;
        Some(head)
    };
    let offset = i64::from_le_bytes(take(8)?.try_into().ok()?);
    let timestamp_ms = i64::from_le_bytes(take(8)?.try_into().ok()?);
    let key_len = i32::from_le_bytes(take(4)?.try_into().ok()?);
    let key = match usize::try_from(key_len) {
        Ok(n) => Some(take(n)?.to_vec()),
        Err(_) => None,
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut headers: Vec<Header> = Vec::new();
    for _ in 0..count {
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let name = String::from_utf8(take(n)?.to_vec()).ok()?;
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        headers.push((name, take(n)?.to_vec()));
    }
    Some(Envelope {
        topic: topic.to_owned(),
        partition,
        offset,
        key,
        headers,
        timestamp_ms,
        payload: r.to_vec(),
    })
}

fn read_i64(body: &[u8], at: usize) -> i64 {
    body.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(i64::MIN, i64::from_le_bytes)
}

/// Whether the damaged frame `[pos, end)` of a file of `len` bytes holds a hole a crash can
/// leave (an unsynced page that never reached the disk): an all-zero header, or a page of the
/// file (4 KiB, aligned) starting inside the frame that is all zeros (up to the end of the
/// file).
fn holds_a_hole(file: &File, pos: u64, end: u64, len: u64) -> Result<bool> {
    const PAGE: u64 = 4096;
    if end >= pos + FRAME_HEADER && zeros_from(file, pos, pos + FRAME_HEADER)? {
        return Ok(true);
    }
    let mut page = pos.div_ceil(PAGE) * PAGE;
    while page < end {
        if zeros_from(file, page, (page + PAGE).min(len))? {
            return Ok(true);
        }
        page += PAGE;
    }
    Ok(false)
}

/// Whether the file holds only zero bytes from `pos` to `len` (a preallocated, unwritten tail).
fn zeros_from(file: &File, pos: u64, len: u64) -> Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    let mut at = pos;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Kafka's murmur2 (the Java client's default partitioner hash), so a key lands in the same
/// partition number as with Kafka clients using `murmur2`.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

fn validate_topic(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| Error::Invalid(format!("bad topic name `{name}`")))
}

fn open_segment(path: &Path) -> Result<File> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?)
}

/// Replaces `path` atomically: write a temporary file, fsync it, rename, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let file = File::create(&tmp)?;
        file.write_all_at(bytes, 0)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates `dir` (and missing parents) so that it survives a power loss: each directory
/// created is synced into its parent.
fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// The recovery point recorded in `path` ([`RECOVERY_POINT`]): 8 bytes of offset and their
/// CRC-32; `None` when there is none or it does not check out (a torn write of it).
fn read_recovery_point(path: &Path) -> Option<i64> {
    let bytes = fs::read(path).ok()?;
    let (offset, crc) = (bytes.get(..8)?, bytes.get(8..12)?);
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    if crc32fast::hash(offset) != crc {
        warn!(path = %path.display(), "a recovery point that does not check out is ignored");
        return None;
    }
    Some(i64::from_le_bytes(offset.try_into().ok()?))
}

/// Records `offset` as the recovery point in `file` (one 12-byte write, then fsync).
fn write_recovery_point(file: &File, offset: i64) -> std::io::Result<()> {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&offset.to_le_bytes());
    bytes[8..].copy_from_slice(&crc32fast::hash(&offset.to_le_bytes()).to_le_bytes());
    file.write_all_at(&bytes, 0)?;
    file.sync_data()
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Other(format!("log task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_kafka_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(
                murmur2(data) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn frames_round_trip_and_reject_damage() {
        let record = OutboundRecord::new(
            "t",
            Some(b"k".to_vec()),
            b"payload".to_vec(),
            crate::TraceContext::new_root(),
        )
        .with_header("h", b"v".to_vec());
        let frame = encode(7, 1234, &record).expect("encode");
        let (body, rest) = split_frame(&frame).expect("frame");
        assert!(rest.is_empty());
        let env = decode(body, "t", 2).expect("decode");
        assert_eq!((env.offset, env.timestamp_ms, env.partition), (7, 1234, 2));
        assert_eq!(env.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(env.headers, record.wire_headers());
        assert_eq!(env.payload, b"payload");
        let mut damaged = frame.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(split_frame(&damaged).is_none());
        assert!(split_frame(&frame[..frame.len() - 1]).is_none());
    }

    /// Every offset reads back from the sparse index: within and across segments, before and
    /// after reopening, with frames smaller than the index stride and larger than a read chunk
    /// or a whole batch.
    #[test]
    fn every_offset_is_read_back_through_the_sparse_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let retention = Keep {
            age: Duration::from_secs(3600),
            bytes: None,
        };
        let payload = |i: usize| -> Vec<u8> {
            let len = match i {
                100 => (READ_CHUNK as usize) * 3,
                200 => READ_BYTES as usize + 10,
                _ => i % 50,
            };
            (0..len).map(|b| (b + i) as u8).collect()
        };
        let n = 300;
        let check = |partition: &Partition| {
            let end = n as i64;
            for from in 0..end {
                let (start, got) = partition.read(from, end).expect("read");
                assert_eq!(start, from);
                let first = got.first().expect("at least one record");
                assert_eq!(first.offset, from);
                assert_eq!(first.payload, payload(from as usize), "offset {from}");
                for (i, env) in got.iter().enumerate() {
                    assert_eq!(env.offset, from + i as i64);
                }
            }
            let mut next = 0;
            while next < end {
                let (_, got) = partition.read(next, end).expect("read");
                next += got.len() as i64;
            }
            assert_eq!(next, end);
        };
        let path = dir.path().join("0");
        {
            let partition = Partition::open(path.clone(), "t", 0, retention).expect("open");
            for i in 0..n {
                let record =
                    OutboundRecord::new("t", None, payload(i), crate::TraceContext::new_root());
                let offset = partition
                    .append(&record, 4 << 10, retention)
                    .expect("append");
                assert_eq!(offset, i as i64);
            }
            assert!(lock(&partition.log).segments.len() > 3, "several segments");
            check(&partition);
        }
        let reopened = Partition::open(path, "t", 0, retention).expect("reopen");
        check(&reopened);
    }

    /// A sealed segment's index is written beside it when it rolls and read instead of the
    /// segment on open (exactly what a scan finds; damage inside is found when read); a missing,
    /// damaged or stale index makes open scan the segment and write the index again; retention
    /// deletes an index with its segment.
    #[test]
    fn sealed_segments_open_from_their_index_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keep = Keep {
            age: Duration::from_secs(3600),
            bytes: None,
        };
        let n = 300i64;
        let payload = |i: i64| vec![(i % 251) as u8; (i % 50) as usize];
        let read_all = |partition: &Partition| {
            let mut next = 0;
            while next < n {
                let (_, got) = partition.read(next, n).expect("read");
                for env in &got {
                    assert_eq!(env.offset, next);
                    assert_eq!(env.payload, payload(next));
                    next += 1;
                }
            }
        };
        let path = dir.path().join("0");
        let sealed: Vec<(i64, PathBuf)> = {
            let partition = Partition::open(path.clone(), "t", 0, keep).expect("open");
            for i in 0..n {
                let record =
                    OutboundRecord::new("t", None, payload(i), crate::TraceContext::new_root());
                partition.append(&record, 2 << 10, keep).expect("append");
            }
            let log = lock(&partition.log);
            assert!(log.segments.len() > 4, "several segments");
            let last = log.segments.last().expect("a segment");
            assert!(
                !last.index_path().exists(),
                "the active segment has no index"
            );
            log.segments[..log.segments.len() - 1]
                .iter()
                .map(|s| (s.base, s.path.clone()))
                .collect()
        };
        let index_path = |p: &PathBuf| index_path_of(p);
        for (base, seg) in &sealed {
            let indexed = Segment::load_index(*base, seg).expect("an index for a sealed segment");
            let scanned = Segment::scan(*base, seg, false, None).expect("scan");
            assert_eq!(
                (
                    indexed.records,
                    &indexed.index,
                    indexed.size,
                    indexed.max_timestamp
                ),
                (
                    scanned.records,
                    &scanned.index,
                    scanned.size,
                    scanned.max_timestamp
                ),
                "the index of segment {base} is what a scan finds"
            );
        }
        read_all(&Partition::open(path.clone(), "t", 0, keep).expect("reopen"));

        // Missing, damaged and stale (another segment's) indexes: scanned, then written again.
        fs::remove_file(index_path(&sealed[0].1)).expect("remove index");
        let mut damaged = fs::read(index_path(&sealed[1].1)).expect("read index");
        damaged[20] ^= 0x40;
        fs::write(index_path(&sealed[1].1), damaged).expect("damage index");
        fs::copy(index_path(&sealed[3].1), index_path(&sealed[2].1)).expect("stale index");
        read_all(&Partition::open(path.clone(), "t", 0, keep).expect("reopen"));
        for (base, seg) in &sealed[..3] {
            assert!(
                Segment::load_index(*base, seg).is_some(),
                "index {base} rebuilt"
            );
        }

        // Open reads the index, not the segment: damage inside it shows when it is read.
        let (base, seg) = &sealed[1];
        let file = OpenOptions::new()
            .write(true)
            .open(seg)
            .expect("open segment");
        file.write_all_at(&[0xff], FRAME_HEADER + 30)
            .expect("damage");
        let partition = Partition::open(path.clone(), "t", 0, keep).expect("open from the index");
        assert!(matches!(
            partition.read(*base, n),
            Err(Error::Corrupt { .. })
        ));
        assert!(partition.read(sealed[2].0, n).is_ok());
        drop(partition);
        fs::remove_file(index_path(seg)).expect("remove index");
        assert!(matches!(
            Partition::open(path.clone(), "t", 0, keep),
            Err(Error::Corrupt { .. })
        ));

        // Retention takes the index with its segment (the two oldest removed by hand first: the
        // damaged one and the one before it).
        for (_, seg) in &sealed[..2] {
            fs::remove_file(seg).expect("remove segment");
            let _ = fs::remove_file(index_path(seg));
        }
        let by_bytes = Keep {
            age: keep.age,
            bytes: Some(1),
        };
        let partition = Partition::open(path.clone(), "t", 0, by_bytes).expect("open");
        assert_eq!(
            lock(&partition.log).segments.len(),
            1,
            "only the active one left"
        );
        let count = |ext: &str| {
            fs::read_dir(&path)
                .expect("list")
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                .count()
        };
        assert_eq!((count("log"), count("index")), (1, 0));
    }

    #[test]
    fn group_file_names_escape_odd_characters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner =
            Inner::open(dir.path().to_path_buf(), EmbeddedOptions::default()).expect("open");
        let path = inner.group_path("a/b c");
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("a%2Fb%20c.json")
        );
    }
}
