//! The buffer's log and its drainer (see the parent module for the design).

use super::{
    BUFFER_TOPIC, DRAIN_GROUP, EdgeConfig, EdgeError, EdgePublisher, EdgeStatus, PUBLISH_CHUNK,
    codec,
};
use crate::breaker::CircuitState;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use mantis_bus::embedded::{EmbeddedBus, EmbeddedOptions};
use mantis_bus::{
    Bus, OutboundRecord, StartFrom, SubscribeOptions, Subscription, TopicSpec, TraceContext,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes a log frame adds to an entry: length and checksum, offset, timestamp, key length,
/// header count and the `traceparent` header.
const FRAME_OVERHEAD: u64 = 8 + 8 + 8 + 4 + 4 + (4 + 11 + 4 + 55);

/// Records drained in one round at most (then committed together).
const ROUND_RECORDS: usize = 5_000;
/// Keys published concurrently while draining.
const KEY_CONCURRENCY: usize = 64;

/// Records kept by the buffer's log: effectively forever (it is retired once drained).
const RETENTION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

struct State {
    /// `None` only when reopening after a retirement failed (then retried on the next append).
    log: Option<EmbeddedBus>,
    /// The next offset of the log.
    end: i64,
}

/// The disk-backed, crash-safe FIFO of records that wait for the bus. See the module docs of
/// `edge`.
pub struct EdgeBuffer {
    dir: PathBuf,
    config: EdgeConfig,
    /// Held across appends (one at a time, in order) and by the drainer when it checks that
    /// it caught up and retires the log.
    state: tokio::sync::Mutex<State>,
    /// Whether new records must go to the buffer (something is buffered and not yet drained).
    buffering: AtomicBool,
    records: AtomicU64,
    bytes: AtomicU64,
    disk_bytes: AtomicU64,
    drained_total: AtomicU64,
    /// Records drained per second, updated by [`EdgeBuffer::tick`].
    drain_rate: Mutex<(Instant, u64, f64)>,
    full: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl EdgeBuffer {
    /// Opens the buffer in `dir` (creating it), recovering what a previous process left in
    /// it: records that were not drained are drained first, before anything new is published
    /// directly. Fails when another process holds the directory.
    pub async fn open(dir: impl AsRef<Path>, config: EdgeConfig) -> Result<Self, EdgeError> {
        let dir = dir.as_ref().to_path_buf();
        remove_retired(&dir).await;
        let log = open_log(&dir, &config).await?;
        // The end of the log is learned by appending an empty entry: once the drainer has
        // committed it, everything before it is drained too.
        let marker = log
            .publish(entry(Vec::new()))
            .await
            .map_err(|e| EdgeError::Buffer(e.to_string()))?
            .offset;
        let (records, bytes) = pending(&log, marker).await?;
        let buffer = Self {
            dir,
            config,
            state: tokio::sync::Mutex::new(State {
                log: Some(log),
                end: marker + 1,
            }),
            buffering: AtomicBool::new(true),
            records: AtomicU64::new(records),
            bytes: AtomicU64::new(bytes),
            disk_bytes: AtomicU64::new(0),
            drained_total: AtomicU64::new(0),
            drain_rate: Mutex::new((Instant::now(), 0, 0.0)),
            full: AtomicBool::new(false),
            last_error: Mutex::new(None),
        };
        if records == 0 {
            let mut state = buffer.state.lock().await;
            buffer.retire(&mut state).await;
        } else {
            let disk = dir_size(buffer.dir.clone()).await;
            buffer.disk_bytes.store(disk, Ordering::Relaxed);
            tracing::warn!(
                records,
                bytes,
                dir = %buffer.dir.display(),
                "the edge buffer holds readings from before the restart; they are drained first"
            );
        }
        buffer.report();
        Ok(buffer)
    }

    /// Whether new records must go to the buffer.
    pub fn is_buffering(&self) -> bool {
        self.buffering.load(Ordering::Acquire)
    }

    /// Whether the last append was refused because the buffer is full.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Appends `records` as one entry; returns once it is on disk.
    pub(crate) async fn append(&self, records: &[OutboundRecord]) -> Result<(), EdgeError> {
        let payload = codec::encode(records).map_err(|e| EdgeError::Refused(e.to_string()))?;
        let size = payload.len() as u64 + FRAME_OVERHEAD;
        let bytes = payload.len() as u64;
        let mut state = self.state.lock().await;
        let used = self.disk_bytes.load(Ordering::Relaxed);
        if used + size > self.config.max_bytes {
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    used,
                    max = self.config.max_bytes,
                    "the edge buffer is full; readings are refused until it drains"
                );
            }
            metrics::counter!("mantis_edge_buffer_full_refusals_total").increment(1);
            return Err(EdgeError::Full {
                used,
                max: self.config.max_bytes,
            });
        }
        if state.log.is_none() {
            self.reopen(&mut state).await?;
        }
        let Some(log) = state.log.as_ref() else {
            return Err(EdgeError::Buffer("the buffer's log is not open".into()));
        };
        // Set before the append, under the lock: a batch accepted after this one must not
        // overtake it by going to the bus directly.
        let was_buffering = self.buffering.swap(true, Ordering::AcqRel);
        match log.publish(entry(payload)).await {
            Ok(delivery) => {
                state.end = delivery.offset + 1;
                let n = records.len() as u64;
                self.records.fetch_add(n, Ordering::Relaxed);
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.disk_bytes.fetch_add(size, Ordering::Relaxed);
                self.full.store(false, Ordering::Relaxed);
                metrics::counter!("mantis_edge_buffer_appended_records_total").increment(n);
                if !was_buffering {
                    tracing::warn!("the bus is unavailable; readings go to the edge buffer");
                }
                self.report();
                Ok(())
            }
            Err(e) => {
                if !was_buffering {
                    self.buffering.store(false, Ordering::Release);
                }
                let e = EdgeError::Buffer(e.to_string());
                self.set_error(&e.to_string());
                Err(e)
            }
        }
    }

    /// Drains the buffer through `out` until `token` is cancelled.
    pub(crate) async fn drain(&self, out: &EdgePublisher, token: CancellationToken) {
        let mut sub: Option<Box<dyn Subscription>> = None;
        let retry = Duration::from_millis(self.config.retry_max_ms.max(1));
        loop {
            if sub.is_none() {
                match self.subscribe().await {
                    Ok(s) => sub = Some(s),
                    Err(e) => {
                        self.set_error(&e.to_string());
                        tracing::error!(error = %e, "the edge buffer cannot be read; retrying");
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(retry) => continue,
                        }
                    }
                }
            }
            let Some(s) = sub.as_mut() else { continue };
            let next = tokio::select! {
                _ = token.cancelled() => return,
                next = s.next() => next,
            };
            let env = match next {
                Ok(env) => env,
                Err(e) => {
                    self.set_error(&e.to_string());
                    tracing::error!(error = %e, "reading the edge buffer failed; retrying");
                    sub = None;
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(retry) => continue,
                    }
                }
            };
            // More entries that are already read ahead join this round (no waiting).
            let mut entries = vec![env];
            let mut count = 0;
            while count < ROUND_RECORDS {
                match s.next().now_or_never() {
                    Some(Ok(env)) => {
                        count += codec::count(&env.payload).unwrap_or(0);
                        entries.push(env);
                    }
                    Some(Err(_)) | None => break,
                }
            }
            let started = std::time::Instant::now();
            let mut records = Vec::new();
            for env in &entries {
                if env.payload.is_empty() {
                    // The end marker appended by `open`: no records.
                    continue;
                }
                match codec::decode(&env.payload) {
                    Ok(r) => records.extend(r),
                    Err(e) => {
                        // The log's checksums make this a version mismatch, not damage.
                        metrics::counter!("mantis_edge_buffer_undecodable_entries_total")
                            .increment(1);
                        tracing::error!(offset = env.offset, error = %e, "skipping an edge-buffer entry");
                    }
                }
            }
            let n = records.len() as u64;
            if !deliver_in_key_order(out, records, &token).await {
                return;
            }
            let Some(last) = entries.last() else { continue };
            if let Err(e) = s.commit(&last.next_position()).await {
                // Read again from the last commit: these records go out twice.
                self.set_error(&e.to_string());
                tracing::error!(error = %e, "committing the edge buffer failed; re-reading");
                sub = None;
                continue;
            }
            let bytes: usize = entries.iter().map(|e| e.payload.len()).sum();
            sub_saturating(&self.records, n);
            sub_saturating(&self.bytes, bytes as u64);
            self.drained_total.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("mantis_edge_buffer_drained_records_total").increment(n);
            tracing::debug!(records = n, entries = entries.len(), elapsed = ?started.elapsed(), "drained edge-buffer entries");
            let drained_to = last.offset + 1;
            let mut state = self.state.lock().await;
            if state.end == drained_to {
                // Caught up: direct publishing resumes, and the log starts afresh.
                sub = None;
                self.retire(&mut state).await;
                tracing::info!(
                    drained = self.drained_total.load(Ordering::Relaxed),
                    "the edge buffer is drained; publishing directly again"
                );
            } else if let Some(log) = state.log.clone() {
                // Still behind (records keep arriving): return the space of what is drained.
                // Under the lock, as appends check the space: a refusal cannot come after the
                // release with the space it freed unseen.
                self.release(&log, drained_to).await;
            }
            drop(state);
            self.report();
            out.drained();
        }
    }

    /// Deletes the log's segments whose entries are all drained (below `drained_to`), so the
    /// footprint falls while the drainer is still behind: under a steady intake it may not
    /// catch up (and retire the log) for a long time, and the buffer must not fill up with
    /// records the bus already has. Whole segments (`segment_bytes`) only; the active one stays.
    async fn release(&self, log: &EmbeddedBus, drained_to: i64) {
        match log.delete_records_before(BUFFER_TOPIC, 0, drained_to).await {
            Ok(0) => {}
            Ok(freed) => {
                sub_saturating(&self.disk_bytes, freed);
                // Readiness follows: an append that was refused would now fit.
                self.full.store(false, Ordering::Relaxed);
                metrics::counter!("mantis_edge_buffer_released_bytes_total").increment(freed);
                tracing::debug!(
                    freed,
                    disk_bytes = self.disk_bytes.load(Ordering::Relaxed),
                    "released drained edge-buffer segments"
                );
            }
            Err(e) => {
                // Retried after the next round; retiring the log returns the space anyway.
                tracing::warn!(error = %e, "drained edge-buffer segments could not be deleted");
            }
        }
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, EdgeError> {
        let mut state = self.state.lock().await;
        if state.log.is_none() {
            self.reopen(&mut state).await?;
        }
        let log = state
            .log
            .as_ref()
            .ok_or_else(|| EdgeError::Buffer("the buffer's log is not open".into()))?;
        log.subscribe(SubscribeOptions::new(
            DRAIN_GROUP,
            [BUFFER_TOPIC],
            StartFrom::Earliest,
        ))
        .await
        .map_err(|e| EdgeError::Buffer(e.to_string()))
    }

    /// Replaces the drained log with an empty one (the caller dropped its subscription) and
    /// returns to direct publishing. Renaming first makes the retirement atomic: a crash
    /// leaves either the old log (drained again: duplicates at worst) or an empty one.
    async fn retire(&self, state: &mut State) {
        state.log = None;
        let retired = retired_path(&self.dir);
        if let Err(e) = tokio::fs::rename(&self.dir, &retired).await {
            tracing::warn!(error = %e, "the drained edge buffer could not be retired");
        }
        remove_retired(&self.dir).await;
        state.end = 0;
        self.records.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.disk_bytes.store(0, Ordering::Relaxed);
        self.full.store(false, Ordering::Relaxed);
        if let Err(e) = self.reopen(state).await {
            tracing::error!(error = %e, "the edge buffer could not be reopened; retrying on the next append");
        }
        self.buffering.store(false, Ordering::Release);
    }

    async fn reopen(&self, state: &mut State) -> Result<(), EdgeError> {
        let log = open_log(&self.dir, &self.config).await?;
        state.log = Some(log);
        state.end = 0;
        Ok(())
    }

    pub(crate) fn set_error(&self, e: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e.to_owned());
        }
    }

    /// Updates the drain rate (call about once a second) and the gauges.
    pub(crate) fn tick(&self) {
        let drained = self.drained_total.load(Ordering::Relaxed);
        if let Ok(mut rate) = self.drain_rate.lock() {
            let (at, before, ewma) = *rate;
            let secs = at.elapsed().as_secs_f64();
            if secs > 0.0 {
                let now = drained.saturating_sub(before) as f64 / secs;
                // Smooth over a few seconds; a buffer that is empty drains at 0.
                let smoothed = if self.records.load(Ordering::Relaxed) == 0 && now == 0.0 {
                    0.0
                } else {
                    0.5 * ewma + 0.5 * now
                };
                *rate = (Instant::now(), drained, smoothed);
            }
        }
        self.report();
    }

    fn report(&self) {
        metrics::gauge!("mantis_edge_buffer_records")
            .set(self.records.load(Ordering::Relaxed) as f64);
        metrics::gauge!("mantis_edge_buffer_bytes").set(self.bytes.load(Ordering::Relaxed) as f64);
        metrics::gauge!("mantis_edge_buffer_disk_bytes")
            .set(self.disk_bytes.load(Ordering::Relaxed) as f64);
        let rate = self.drain_rate.lock().map(|r| r.2).unwrap_or(0.0);
        metrics::gauge!("mantis_edge_buffer_drain_rate").set(rate);
    }

    /// The status shown in `/health`.
    pub(crate) fn status(&self, circuit: CircuitState) -> EdgeStatus {
        EdgeStatus {
            mode: if self.is_buffering() {
                "buffering"
            } else {
                "direct"
            },
            circuit,
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            disk_bytes: self.disk_bytes.load(Ordering::Relaxed),
            max_bytes: self.config.max_bytes,
            drained_total: self.drained_total.load(Ordering::Relaxed),
            drain_rate: self.drain_rate.lock().map(|r| r.2).unwrap_or(0.0),
            full: self.is_full(),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// Publishes `records` keeping the order of each key (topic and record key): the records of
/// one key in order, in batches ([`EdgePublisher::deliver_all`]: one round trip per chunk, so
/// one busy sensor drains as fast as many), different keys concurrently (at most
/// `KEY_CONCURRENCY` at a time: concurrent publishers share the embedded log's fsyncs), which
/// is the order the bus itself guarantees. The keys in flight share [`PUBLISH_CHUNK`] between
/// them, so at most about that many records await their acknowledgement at once, as when
/// publishing directly (a slow broker is not flooded with copies of timed-out chunks).
/// `false` when cancelled.
async fn deliver_in_key_order(
    out: &EdgePublisher,
    records: Vec<OutboundRecord>,
    token: &CancellationToken,
) -> bool {
    let mut keys: HashMap<(&str, Option<&[u8]>), usize> = HashMap::new();
    let slots: Vec<usize> = records
        .iter()
        .map(|r| {
            let next = keys.len();
            *keys
                .entry((r.topic.as_str(), r.key.as_deref()))
                .or_insert(next)
        })
        .collect();
    let mut groups: Vec<Vec<OutboundRecord>> = (0..keys.len()).map(|_| Vec::new()).collect();
    drop(keys);
    for (record, slot) in records.into_iter().zip(slots) {
        groups[slot].push(record);
    }
    let chunk = (PUBLISH_CHUNK / groups.len().clamp(1, KEY_CONCURRENCY)).max(1);
    let mut groups = groups.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < KEY_CONCURRENCY {
            match groups.next() {
                Some(group) => running.push(deliver_group(out, group, chunk, token)),
                None => break,
            }
        }
        match running.next().await {
            Some(true) => {}
            Some(false) => return false,
            None => return true,
        }
    }
}

async fn deliver_group(
    out: &EdgePublisher,
    group: Vec<OutboundRecord>,
    chunk: usize,
    token: &CancellationToken,
) -> bool {
    out.deliver_all(&group, chunk, token).await
}

fn sub_saturating(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// An entry of the buffer's log.
fn entry(payload: Vec<u8>) -> OutboundRecord {
    OutboundRecord::new(BUFFER_TOPIC, None, payload, TraceContext::new_root())
}

async fn open_log(dir: &Path, config: &EdgeConfig) -> Result<EmbeddedBus, EdgeError> {
    let options = EmbeddedOptions {
        // Drained space comes back in whole segments: at most a quarter of the bound each.
        segment_bytes: config.segment_bytes.min(config.max_bytes / 4).max(64 << 10),
        ..EmbeddedOptions::default()
    };
    let log = EmbeddedBus::open_with(dir, options)
        .await
        .map_err(|e| EdgeError::Buffer(format!("{}: {e}", dir.display())))?;
    log.ensure_topics(&[TopicSpec {
        name: BUFFER_TOPIC.into(),
        partitions: 1,
        retention: RETENTION,
    }])
    .await
    .map_err(|e| EdgeError::Buffer(e.to_string()))?;
    Ok(log)
}

/// Counts the records and bytes of the entries before `marker` that the drain group has not
/// committed. Reads them once; the drainer reads them again from the committed position.
async fn pending(log: &EmbeddedBus, marker: i64) -> Result<(u64, u64), EdgeError> {
    let mut sub = log
        .subscribe(SubscribeOptions::new(
            DRAIN_GROUP,
            [BUFFER_TOPIC],
            StartFrom::Earliest,
        ))
        .await
        .map_err(|e| EdgeError::Buffer(e.to_string()))?;
    let (mut records, mut bytes) = (0u64, 0u64);
    loop {
        let env = sub
            .next()
            .await
            .map_err(|e| EdgeError::Buffer(e.to_string()))?;
        if env.offset >= marker {
            break;
        }
        records += codec::count(&env.payload).unwrap_or(0) as u64;
        bytes += env.payload.len() as u64;
    }
    sub.close()
        .await
        .map_err(|e| EdgeError::Buffer(e.to_string()))?;
    Ok((records, bytes))
}

fn retired_path(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".drained");
    dir.with_file_name(name)
}

/// Deletes a retired log left by a crash or by [`EdgeBuffer::retire`].
async fn remove_retired(dir: &Path) {
    let retired = retired_path(dir);
    match tokio::fs::remove_dir_all(&retired).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %retired.display(), error = %e, "a retired edge buffer could not be deleted")
        }
    }
}

/// Total size of the files under `dir`.
async fn dir_size(dir: PathBuf) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => 0,
            })
            .sum()
    }
    tokio::task::spawn_blocking(move || walk(&dir))
        .await
        .unwrap_or(0)
}
