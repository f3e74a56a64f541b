//! The at-least-once consumer loop shared by every consuming service.

use crate::{Infra, Publisher, Result};
use async_trait::async_trait;
use mantis_bus::{Envelope, Position, StartFrom, SubscribeOptions, TraceContext, topics};
use mantis_codec::Record;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why a record could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// A dependency is down (database, bus): the record is retried with back-off and is not
    /// committed until it succeeds.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The record itself cannot be processed: it goes to the dead-letter topic with this reason.
    #[error("cannot process record: {0}")]
    Permanent(String),
}

impl From<mantis_store::Error> for HandleError {
    fn from(e: mantis_store::Error) -> Self {
        if e.is_retryable() {
            Self::Transient(e.to_string())
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

impl From<crate::Error> for HandleError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Store(e) => e.into(),
            crate::Error::Bus(e)
                if !e.is_retryable()
                    && !matches!(
                        e,
                        mantis_bus::Error::Other(_) | mantis_bus::Error::Denied(_)
                    ) =>
            {
                Self::Permanent(e.to_string())
            }
            crate::Error::Codec(e) => Self::Permanent(e.to_string()),
            other => Self::Transient(other.to_string()),
        }
    }
}

/// What a handler knows about the record it handles.
#[derive(Debug)]
pub struct RecordContext<'a> {
    /// The received envelope.
    pub envelope: &'a Envelope,
    /// The trace context for what this record causes (a child of the record's).
    pub trace: TraceContext,
}

impl RecordContext<'_> {
    /// The position that marks this record handled.
    pub fn done(&self) -> Option<Position> {
        Some(self.envelope.next_position())
    }
}

/// A service's record handler.
#[async_trait]
pub trait Handler: Send + 'static {
    /// The record type consumed.
    type Input: Record + Send + Sync;

    /// Handles one record. Returns the position to commit (usually [`RecordContext::done`]);
    /// `None` when the record is held in state (e.g. an open window) and must be redelivered
    /// after a restart. Must be idempotent: a redelivered record must not create duplicates.
    async fn handle(
        &mut self,
        input: &Self::Input,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError>;

    /// Called every [`Handler::tick_interval`]: flush time-based state (idle windows). Returns
    /// positions that became committable.
    async fn tick(&mut self) -> Result<Vec<Position>, HandleError> {
        Ok(Vec::new())
    }

    /// How often [`Handler::tick`] runs; `None` never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// The position to commit once `envelope` went to the dead-letter topic (undecodable, or
    /// [`HandleError::Permanent`]); by default the next one. A handler that holds earlier
    /// records in state (open windows) answers its own committable position instead, so a
    /// dead-lettered record never commits past records it still needs after a restart.
    fn skipped(&mut self, envelope: &Envelope) -> Option<Position> {
        Some(envelope.next_position())
    }

    /// `partitions` of the input topic were taken from this consumer by a rebalance (another
    /// replica owns them now, or they are handed out again): their records after the group's
    /// committed position are delivered again to their next owner. A handler holding state
    /// built from their records (open windows) drops it and reports no position of them any
    /// more. Called before the next record or tick; by default nothing is held.
    fn revoked(&mut self, partitions: &[i32]) {
        let _ = partitions;
    }
}

/// Consumes `topic` as consumer group `group` until `shutdown` is cancelled: decodes each
/// record, hands it to `handler`, commits what the handler reports done, retries transient
/// failures with back-off (never skipping a record), and sends undecodable or unprocessable
/// records to `dlq.<group>` with the reason in the `mantis.dlq.reason` header. On shutdown the
/// record in flight is finished first, then the subscription is closed. How far behind the
/// topic's end it is, is measured every [`LAG_EVERY`] (`mantis_consumer_lag_records`).
pub async fn run_consumer<H: Handler>(
    infra: Infra,
    group: &str,
    handler: H,
    shutdown: CancellationToken,
) -> Result<()> {
    run_consumer_from(infra, group, StartFrom::Earliest, handler, shutdown).await
}

/// Commits `position`. A commit the bus cannot take now (an outage, a coordinator moving, a
/// rebalance) is not fatal: the group's committed offset stays older, and the records after it
/// are delivered again after a restart or a rebalance (at-least-once; the handlers are
/// idempotent). A later commit covers this one.
async fn commit(
    sub: &mut Box<dyn mantis_bus::Subscription>,
    position: &Position,
    group: &str,
) -> Result<()> {
    match sub.commit(position).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_retryable() => {
            metrics::counter!("mantis_consumer_commit_failures_total", "group" => group.to_owned())
                .increment(1);
            tracing::warn!(group, error = %e, "offset commit failed; the records after the last commit will be delivered again");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// [`run_consumer`] with an explicit start position for a new group.
pub async fn run_consumer_from<H: Handler>(
    infra: Infra,
    group: &str,
    start: StartFrom,
    handler: H,
    shutdown: CancellationToken,
) -> Result<()> {
    run_consumer_with(infra, group, group, start, handler, shutdown).await
}

/// [`run_consumer_from`] whose dead letters go to `dlq.<dead_letters>` rather than the group's
/// own topic: for a group named anew at every start (one per replica, each reading every
/// record), which would otherwise leave a dead-letter topic behind at every start.
pub async fn run_consumer_with<H: Handler>(
    infra: Infra,
    group: &str,
    dead_letters: &str,
    start: StartFrom,
    mut handler: H,
    shutdown: CancellationToken,
) -> Result<()> {
    let topic = H::Input::TOPIC;
    let dlq = topics::dead_letter_topic(dead_letters);
    infra
        .bus
        .ensure_topics(&[topics::dead_letter_spec(dead_letters)])
        .await?;
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "consumer");
    let mut sub = infra
        .bus
        .subscribe(SubscribeOptions::new(group, [topic], start))
        .await?;
    tracing::info!(group, topic, "consumer started");
    let mut owned = Ownership {
        group,
        topic,
        away: HashSet::new(),
        pending: HashMap::new(),
        next: Reading::default(),
    };
    // Measured beside the loop: a handler retrying a record for minutes is when it matters.
    // Labelled with the dead-letter name: the same across starts for a group named anew at
    // each (the gateways' live view).
    let measuring = CancellationToken::new();
    tokio::spawn(measure_lag(
        infra.bus.clone(),
        Groups {
            id: group.to_owned(),
            start,
            label: dead_letters.to_owned(),
        },
        topic,
        owned.next.clone(),
        measuring.clone(),
    ));
    let _stop_measuring = measuring.drop_guard();
    let mut flushing = tokio::time::interval(COMMIT_EVERY);
    flushing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticker = handler.tick_interval().map(|d| {
        let mut t = tokio::time::interval(d);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });

    'records: loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break 'records,
            _ = flushing.tick() => {
                owned.flush(&mut sub, &mut handler).await?;
                continue 'records;
            }
            _ = async { match ticker.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                owned.take_revoked(&mut sub, &mut handler);
                match handler.tick().await {
                    Ok(positions) => for p in positions { owned.commit(&mut sub, &mut handler, &p); },
                    Err(e) => tracing::warn!(group, error = %e, "tick failed; will retry"),
                }
                continue 'records;
            }
            next = sub.next() => next,
        };
        let env = match next {
            Ok(env) => env,
            Err(e) if e.is_retryable() => {
                tracing::warn!(group, error = %e, "bus unavailable; retrying");
                if sleep_or_cancel(Duration::from_secs(1), &shutdown).await {
                    break 'records;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if owned
            .take_revoked(&mut sub, &mut handler)
            .contains(&env.partition)
            && !sub.owns(topic, env.partition)
        {
            // Taken while this record was being received: its next owner gets it. (Taken and
            // given back within the receive, as Kafka's eager rebalance does, the record is
            // the first of the new assignment, read from the group's commit: handled, its
            // partition's old state dropped.)
            continue;
        }
        owned.received(&env);
        metrics::counter!("mantis_records_consumed_total", "group" => group.to_owned(), "topic" => topic)
            .increment(1);
        // Replayed from another consumer's dead letters (`mantis dlq replay`): theirs alone.
        if env
            .header(mantis_bus::REPLAY_FOR)
            .is_some_and(|to| to != dead_letters.as_bytes())
        {
            if let Some(position) = handler.skipped(&env) {
                owned.commit(&mut sub, &mut handler, &position);
            }
            continue;
        }
        let input = loop {
            match infra.codec.decode::<H::Input>(&env.payload).await {
                Ok(v) => break Some(v),
                Err(e) if e.is_dead_letter() => {
                    dead_letter(
                        &publisher,
                        &env,
                        &dlq,
                        &format!("undecodable record: {e}"),
                        &shutdown,
                    )
                    .await?;
                    if let Some(position) = handler.skipped(&env) {
                        owned.commit(&mut sub, &mut handler, &position);
                    }
                    break None;
                }
                Err(e) => {
                    // Not the record's fault (the schema registry unreachable or refusing this
                    // service's credentials, a misconfigured codec): never dead-letter a valid
                    // record; wait until the environment is mended.
                    metrics::counter!("mantis_decode_retries_total", "group" => group.to_owned())
                        .increment(1);
                    tracing::warn!(group, error = %e, retriable = e.is_retriable(), "cannot decode for a reason outside the record; retrying");
                    if sleep_or_cancel(Duration::from_secs(1), &shutdown).await {
                        break 'records;
                    }
                }
            }
        };
        let Some(input) = input else { continue };
        let ctx = RecordContext {
            envelope: &env,
            trace: env.trace().child(),
        };
        let span = tracing::info_span!("handle", group, topic, partition = env.partition, offset = env.offset, trace_id = %ctx.trace.trace_id_hex());
        let mut backoff = Duration::from_millis(100);
        loop {
            match handler.handle(&input, &ctx).instrument(span.clone()).await {
                Ok(Some(position)) => {
                    owned.commit(&mut sub, &mut handler, &position);
                    break;
                }
                Ok(None) => break,
                Err(HandleError::Permanent(reason)) => {
                    dead_letter(&publisher, &env, &dlq, &reason, &shutdown).await?;
                    if let Some(position) = handler.skipped(&env) {
                        owned.commit(&mut sub, &mut handler, &position);
                    }
                    break;
                }
                Err(HandleError::Transient(reason)) => {
                    metrics::counter!("mantis_handler_retries_total", "group" => group.to_owned())
                        .increment(1);
                    tracing::warn!(group, %reason, retry_in = ?backoff, "transient failure; retrying the record");
                    if sleep_or_cancel(backoff, &shutdown).await {
                        // Not committed: the record is redelivered after the restart.
                        break 'records;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
    tracing::info!(group, topic, "consumer stopping");
    owned.flush(&mut sub, &mut handler).await?;
    sub.close().await?;
    Ok(())
}

/// What a rebalance took from the consumer: the partitions of its topic it received nothing
/// from since they were taken. Their state is dropped and nothing of them is committed: their
/// next owner reads them again from the group's commit.
struct Ownership<'a> {
    group: &'a str,
    topic: &'a str,
    away: HashSet<i32>,
    /// The latest position of each partition handled since the last commit: committed
    /// together every [`COMMIT_EVERY`] and at shutdown (a commit per record, an fsync each on
    /// the embedded log, bounded a consumer to a few thousand records a second). A crash
    /// redelivers what was handled since (every sink is idempotent).
    pending: HashMap<(String, i32), Position>,
    /// The offset after the last record received from each partition still this consumer's.
    next: Reading,
}

/// The offset after the last record a consumer received, per partition of its topic (shared
/// with its lag measurement).
#[derive(Clone, Default)]
struct Reading(Arc<Mutex<HashMap<i32, i64>>>);

impl Reading {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How often a consumer measures how far behind its topic's end it is.
pub const LAG_EVERY: Duration = Duration::from_secs(15);

/// Records of `ends` from `at` of each partition on: what `next` says was received (one not
/// received from since the consumer started or was given it is not known, and not counted
/// until its first record), or where the group reads on from (one it has no position in is
/// not counted). A position before the partition's earliest retained record counts from that
/// record (retention took the rest), one past its end (a topic recreated) counts none.
fn behind(ends: &[mantis_bus::PartitionOffsets], at: impl Fn(i32) -> Option<i64>) -> i64 {
    ends.iter()
        .filter_map(|p| at(p.partition).map(|n| (p.end - n.max(p.earliest)).max(0)))
        .sum()
}

/// A consumer group's id on the bus, where it starts a partition it has no commit of, and the
/// name its metrics carry (its dead-letter name: the same across starts for a group named anew
/// at each, the gateways' live view).
struct Groups {
    id: String,
    start: StartFrom,
    label: String,
}

/// Sets, every [`LAG_EVERY`] until `stop`, `mantis_consumer_lag_records{group, topic}`: the
/// records of `topic` after those this consumer received (handled, or in its hands now), and
/// `mantis_consumer_group_lag_records{group, topic}`: those after where its group reads on
/// from (its commits; a partition without one, from the earliest record for a group that
/// starts there; every partition of the group, received from or not; the same in each
/// replica), set from its first measurement on. The bus's end offsets of the topic and the
/// group's positions are asked for each time (the embedded log's are in memory; Kafka's are
/// the topic's metadata, a watermark request per partition and an offset fetch); a gauge
/// whose measurement the bus does not answer keeps its last value,
/// `mantis_consumer_lag_failures_total` counts it and the first failure after a success is
/// warned of.
async fn measure_lag(
    bus: Arc<dyn mantis_bus::Bus>,
    groups: Groups,
    topic: &'static str,
    next: Reading,
    stop: CancellationToken,
) {
    let Groups {
        id,
        start,
        label: group,
    } = groups;
    let gauge =
        metrics::gauge!("mantis_consumer_lag_records", "group" => group.clone(), "topic" => topic);
    // Made at its first value: registered, it would read 0 meanwhile.
    let mut group_gauge = None;
    let failures = metrics::counter!("mantis_consumer_lag_failures_total", "group" => group.clone(), "topic" => topic);
    let mut every = tokio::time::interval(LAG_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let measured = async {
            let lag = "the consumer's lag is not measured";
            let Some(ends) = bus.offsets_of(topic).await.map_err(|e| (lag, e))? else {
                return Ok(());
            };
            let received = {
                let next = next.lock();
                behind(&ends, |p| next.get(&p).copied())
            };
            gauge.set(received as f64);
            let partitions: Vec<i32> = ends.iter().map(|p| p.partition).collect();
            let group_lag = "its group's lag is not measured";
            let positions = bus.group_positions(&id, topic, &partitions).await;
            let Some(at) = positions.map_err(|e| (group_lag, e))? else {
                return Ok(());
            };
            let from = |p: i32| {
                at.get(&p).copied().or_else(|| {
                    let earliest = ends.iter().find(|e| e.partition == p)?.earliest;
                    matches!(start, StartFrom::Earliest).then_some(earliest)
                })
            };
            if ends.iter().any(|p| from(p.partition).is_some()) {
                group_gauge
                    .get_or_insert_with(|| metrics::gauge!("mantis_consumer_group_lag_records", "group" => group.clone(), "topic" => topic))
                    .set(behind(&ends, from) as f64);
            }
            Ok::<_, (&str, mantis_bus::Error)>(())
        };
        let measured = tokio::select! {
            () = stop.cancelled() => return,
            measured = measured => measured,
        };
        match measured {
            Ok(()) => failing = false,
            Err((what, e)) => {
                failures.increment(1);
                if !failing {
                    tracing::warn!(%group, topic, error = %e, "{what} (its last value stays); tried again every 15 s");
                }
                failing = true;
            }
        }
    }
}

/// How often a consumer commits what it handled.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

impl Ownership<'_> {
    /// Hands the partitions a rebalance took from `sub` since the last call to `handler`;
    /// returns them.
    fn take_revoked<H: Handler>(
        &mut self,
        sub: &mut Box<dyn mantis_bus::Subscription>,
        handler: &mut H,
    ) -> Vec<i32> {
        let revoked: Vec<i32> = sub
            .take_revoked()
            .into_iter()
            .filter(|(t, _)| t == self.topic)
            .map(|(_, p)| p)
            .collect();
        if !revoked.is_empty() {
            // Not committed now: the new owner commits (it reads from the last commit, and
            // handles again what was handled since, idempotently).
            self.pending
                .retain(|(t, p), _| t != self.topic || !revoked.contains(p));
            metrics::counter!("mantis_consumer_partitions_revoked_total", "group" => self.group.to_owned())
                .increment(revoked.len() as u64);
            tracing::info!(group = self.group, topic = self.topic, partitions = ?revoked, "partitions revoked");
            self.away.extend(&revoked);
            self.next.lock().retain(|p, _| !revoked.contains(p));
            handler.revoked(&revoked);
        }
        revoked
    }

    /// `env` was received: its partition is this consumer's (again).
    fn received(&mut self, env: &Envelope) {
        self.away.remove(&env.partition);
        self.next.lock().insert(env.partition, env.offset + 1);
    }

    /// Commits `position` (with the next ones, at the next [`COMMIT_EVERY`]) unless its partition
    /// was taken (a handler that was busy when the rebalance came reports the position of a
    /// record it had started).
    fn commit<H: Handler>(
        &mut self,
        sub: &mut Box<dyn mantis_bus::Subscription>,
        handler: &mut H,
        position: &Position,
    ) {
        self.take_revoked(sub, handler);
        if position.topic == self.topic && self.away.contains(&position.partition) {
            tracing::debug!(
                group = self.group,
                partition = position.partition,
                "not committed: the partition was taken"
            );
            return;
        }
        self.pending.insert(
            (position.topic.clone(), position.partition),
            position.clone(),
        );
    }

    /// Commits the positions handled since the last commit, of the partitions still this
    /// consumer's.
    async fn flush<H: Handler>(
        &mut self,
        sub: &mut Box<dyn mantis_bus::Subscription>,
        handler: &mut H,
    ) -> Result<()> {
        self.take_revoked(sub, handler);
        let pending: Vec<Position> = self.pending.drain().map(|(_, p)| p).collect();
        for position in pending {
            if position.topic == self.topic && self.away.contains(&position.partition) {
                continue;
            }
            commit(sub, &position, self.group).await?;
        }
        Ok(())
    }
}

/// Publishes `env` to the dead-letter topic, retrying while the bus is unavailable.
async fn dead_letter(
    publisher: &Publisher,
    env: &Envelope,
    dlq: &str,
    reason: &str,
    shutdown: &CancellationToken,
) -> Result<()> {
    tracing::warn!(topic = %env.topic, partition = env.partition, offset = env.offset, %reason, "dead-lettering record");
    metrics::counter!("mantis_records_dead_lettered_total", "topic" => env.topic.clone())
        .increment(1);
    let record = env.to_dead_letter(dlq, reason);
    loop {
        match publisher.send(record.clone()).await {
            Ok(_) => return Ok(()),
            Err(crate::Error::Bus(e)) if e.is_retryable() => {
                tracing::warn!(error = %e, "cannot dead-letter yet; retrying");
                if sleep_or_cancel(Duration::from_secs(1), shutdown).await {
                    return Err(crate::Error::Bus(e));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sleeps `d`; returns `true` when shutdown came first.
async fn sleep_or_cancel(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_bus::PartitionOffsets;

    #[test]
    fn lag_counts_the_partitions_received_from_after_what_was_received() {
        let ends: Vec<PartitionOffsets> = [(0, 10), (1, 7), (2, 5)]
            .into_iter()
            .map(|(partition, end)| PartitionOffsets {
                partition,
                earliest: 0,
                end,
            })
            .collect();
        // Partition 2 not received from: not known, not counted; 1 ahead of a truncated end
        // (a topic recreated) is not negative.
        let next = HashMap::from([(0, 4), (1, 9)]);
        assert_eq!(behind(&ends, |p| next.get(&p).copied()), 6);
        assert_eq!(behind(&ends, |_| None), 0);
        // A position retention has passed counts from the earliest record retained.
        let trimmed = [PartitionOffsets {
            partition: 0,
            earliest: 8,
            end: 10,
        }];
        assert_eq!(behind(&trimmed, |_| Some(3)), 2);
    }
}
