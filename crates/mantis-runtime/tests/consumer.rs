//! The consumer loop against the real embedded log and an in-memory SQLite store: poison
//! records are dead-lettered with their reason and never block the stream, transient failures
//! are retried without losing or skipping the record, and shutdown commits what was handled.

use async_trait::async_trait;
use mantis_bus::{
    DLQ_REASON, DLQ_SOURCE_TOPIC, OutboundRecord, Position, StartFrom, SubscribeOptions,
    TraceContext, embedded::EmbeddedBus, topics,
};
use mantis_domain::{AssetId, FeatureVector, SensorId, SensorType};
use mantis_runtime::{HandleError, Handler, Infra, Publisher, RecordContext, run_consumer};
use mantis_store::sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

async fn infra(dir: &std::path::Path) -> Infra {
    let bus = EmbeddedBus::open(dir).await.expect("log opens");
    let infra = Infra::in_process(
        Arc::new(bus),
        Arc::new(SqliteStore::in_memory().await.expect("sqlite")),
    );
    infra.ensure_topics(&[]).await.expect("topics");
    infra
}

fn vector(n: i64) -> FeatureVector {
    let t = mantis_domain::timestamp_from_millis(1_763_892_000_000 + n * 1000).expect("valid");
    FeatureVector {
        asset_id: AssetId::new_random(),
        sensor_id: SensorId::new_random(),
        sensor_type: SensorType::Current,
        window_start: t,
        window_end: t,
        feature_set_version: "test".into(),
        features: [("rms".to_string(), n as f64)].into_iter().collect(),
    }
}

/// Records what it handled; fails `transient_failures` times on the first record it sees and
/// refuses (permanently) vectors whose rms is negative.
struct Recorder {
    seen: mpsc::UnboundedSender<f64>,
    transient_failures: usize,
}

#[async_trait]
impl Handler for Recorder {
    type Input = FeatureVector;
    async fn handle(
        &mut self,
        fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        if self.transient_failures > 0 {
            self.transient_failures -= 1;
            return Err(HandleError::Transient("database restarting".into()));
        }
        let rms = fv.features["rms"];
        if rms < 0.0 {
            return Err(HandleError::Permanent("negative RMS".into()));
        }
        let _ = self.seen.send(rms);
        Ok(ctx.done())
    }
}

type Running = (
    mpsc::UnboundedReceiver<f64>,
    CancellationToken,
    tokio::task::JoinHandle<mantis_runtime::Result<()>>,
);

/// Starts a `Recorder` consumer in `group`.
fn spawn_recorder(infra: &Infra, group: &'static str, transient_failures: usize) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        infra.clone(),
        group,
        Recorder {
            seen: tx,
            transient_failures,
        },
        shutdown.clone(),
    ));
    (rx, shutdown, task)
}

async fn stop(
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<mantis_runtime::Result<()>>,
) {
    shutdown.cancel();
    task.await.expect("joins").expect("clean stop");
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<f64>) -> f64 {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a record is handled in time")
        .expect("channel open")
}

async fn publish_vector(p: &Publisher, n: i64) {
    p.publish(
        Some("a".into()),
        &vector(n),
        TraceContext::new_root(),
        vec![],
    )
    .await
    .expect("published");
}

/// The first `n` dead letters of `group`.
async fn dead_letters(infra: &Infra, group: &str, n: usize) -> Vec<mantis_bus::Envelope> {
    let mut dlq = infra
        .bus
        .subscribe(SubscribeOptions::new(
            "dlq-reader",
            [topics::dead_letter_topic(group)],
            StartFrom::Earliest,
        ))
        .await
        .expect("dlq subscription");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let env = tokio::time::timeout(Duration::from_secs(30), dlq.next())
            .await
            .expect("dead letter arrives")
            .expect("dead letter");
        out.push(env);
    }
    out
}

/// Publishes bytes that are not a record.
async fn publish_garbage(infra: &Infra) {
    let garbage = OutboundRecord::new(
        topics::FEATURES_EXTRACTED,
        Some(b"a".to_vec()),
        b"not avro".to_vec(),
        TraceContext::new_root(),
    );
    infra.bus.publish(garbage).await.expect("garbage published");
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    publish_vector(&publisher, 1).await;
    publish_garbage(&infra).await;
    publish_vector(&publisher, -5).await;
    publish_vector(&publisher, 2).await;

    let (mut rx, shutdown, task) = spawn_recorder(&infra, "recorder", 2);
    let got = vec![next_seen(&mut rx).await, next_seen(&mut rx).await];
    assert_eq!(
        got,
        vec![1.0, 2.0],
        "transient failures retried, poison skipped"
    );

    let mut reasons = Vec::new();
    for env in dead_letters(&infra, "recorder", 2).await {
        assert_eq!(
            env.header(DLQ_SOURCE_TOPIC),
            Some(topics::FEATURES_EXTRACTED.as_bytes())
        );
        let reason = env.header(DLQ_REASON).expect("reason");
        reasons.push(String::from_utf8_lossy(reason).into_owned());
    }
    assert!(reasons[0].starts_with("undecodable record"), "{reasons:?}");
    assert!(reasons[1].contains("negative RMS"), "{reasons:?}");

    // Shutdown commits what was handled: a new member of the group gets only what is new.
    stop(shutdown, task).await;
    publish_vector(&publisher, 3).await;
    let (mut rx, shutdown, task) = spawn_recorder(&infra, "recorder", 0);
    assert_eq!(
        next_seen(&mut rx).await,
        3.0,
        "nothing handled is redelivered"
    );
    stop(shutdown, task).await;
}

#[tokio::test]
async fn a_record_whose_handling_never_succeeded_is_redelivered_after_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    publish_vector(&publisher, 7).await;

    // The database stays down: the record is retried until shutdown, never skipped.
    let (mut rx, shutdown, task) = spawn_recorder(&infra, "patient", usize::MAX);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop(shutdown, task).await;
    assert!(rx.try_recv().is_err());

    let (mut rx, shutdown, task) = spawn_recorder(&infra, "patient", 0);
    assert_eq!(next_seen(&mut rx).await, 7.0);
    stop(shutdown, task).await;
}

/// Holds vectors whose rms is at least 100 in its state (as the windowing handler holds the
/// readings of an open window: not committed until the window closes) and refuses negative
/// ones; after a dead letter it answers the position of the first record it holds.
struct Holder {
    seen: mpsc::UnboundedSender<f64>,
    held_from: Option<Position>,
}

#[async_trait]
impl Handler for Holder {
    type Input = FeatureVector;
    async fn handle(
        &mut self,
        fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let rms = fv.features["rms"];
        if rms < 0.0 {
            return Err(HandleError::Permanent("negative RMS".into()));
        }
        let _ = self.seen.send(rms);
        if rms >= 100.0 {
            let env = ctx.envelope;
            self.held_from.get_or_insert(Position {
                topic: env.topic.clone(),
                partition: env.partition,
                next_offset: env.offset,
            });
            return Ok(None);
        }
        Ok(self.held_from.clone().or_else(|| ctx.done()))
    }

    fn skipped(&mut self, envelope: &mantis_bus::Envelope) -> Option<Position> {
        Some(
            self.held_from
                .clone()
                .unwrap_or_else(|| envelope.next_position()),
        )
    }
}

#[tokio::test]
async fn a_dead_letter_never_commits_past_records_a_handler_still_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    publish_vector(&publisher, 100).await;
    publish_garbage(&infra).await;
    publish_vector(&publisher, -5).await;

    let spawn = || {
        let (tx, rx) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_consumer(
            infra.clone(),
            "holder",
            Holder {
                seen: tx,
                held_from: None,
            },
            shutdown.clone(),
        ));
        (rx, shutdown, task)
    };
    let (mut rx, shutdown, task) = spawn();
    assert_eq!(next_seen(&mut rx).await, 100.0);
    dead_letters(&infra, "holder", 2).await;
    // Stopped while the first record is still held: after the restart it comes again (the two
    // dead letters did not commit past it).
    stop(shutdown, task).await;
    let (mut rx, shutdown, task) = spawn();
    assert_eq!(
        next_seen(&mut rx).await,
        100.0,
        "the held record is redelivered"
    );
    stop(shutdown, task).await;
}

/// Records `topic` retains, once they reach `n` (waits up to 30 s).
async fn retained_reaches(infra: &Infra, topic: &str, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held = infra
            .bus
            .topic_offsets(topic)
            .await
            .expect("offsets")
            .first()
            .map_or(0, mantis_bus::TopicOffsets::retained);
        if held >= n {
            assert_eq!(held, n, "{topic}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic}: {held} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets aside on `dlq` a record read from `source` (offset 7), refused.
async fn set_aside(infra: &Infra, source: &str, dlq: &str) {
    let read = mantis_bus::Envelope {
        topic: source.into(),
        partition: 0,
        offset: 7,
        key: Some(b"k".to_vec()),
        headers: Vec::new(),
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
        payload: b"a record".to_vec(),
    };
    infra
        .bus
        .publish(read.to_dead_letter(dlq, "refused"))
        .await
        .expect("dead-lettered");
}

/// A dead letter replayed (`mantis dlq replay`) reaches the consumers that set it aside alone
/// (another group of the topic passes over it); a second replay leaves it (sent already) and
/// sends its copy (set aside again) instead; sent `again`, the letter goes once and its
/// copies are left.
#[tokio::test]
async fn a_replayed_letter_reaches_its_own_consumers_alone_and_is_not_doubled() {
    use mantis_runtime::dead_letters::{Filter, ReplayOptions, replay};
    let once = ReplayOptions::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    let (_seen_a, stop_a, task_a) = spawn_recorder(&infra, "refuser", 0);
    let (_seen_b, stop_b, task_b) = spawn_recorder(&infra, "bystander", 0);
    publish_vector(&publisher, -5).await;
    // Both refuse it (a negative RMS), each on its own dead-letter topic.
    retained_reaches(&infra, "dlq.refuser", 1).await;
    retained_reaches(&infra, "dlq.bystander", 1).await;

    let done = replay(infra.bus.as_ref(), "dlq.refuser", &Filter::default(), &once)
        .await
        .expect("replayed");
    assert_eq!(done.published[topics::FEATURES_EXTRACTED], 1);
    // The refuser reads it again (and refuses it again); the bystander passes over it.
    retained_reaches(&infra, "dlq.refuser", 2).await;
    let copy = dead_letters(&infra, "refuser", 2).await.remove(1);
    assert_eq!(
        copy.header(mantis_bus::REPLAY_OF),
        Some(&b"dlq.refuser/0/0"[..])
    );
    // Replayed again: the letter was sent, its copy is the record to send.
    let twice = replay(infra.bus.as_ref(), "dlq.refuser", &Filter::default(), &once)
        .await
        .expect("replayed");
    assert_eq!(
        (
            twice.published[topics::FEATURES_EXTRACTED],
            twice.already_replayed,
            twice.copies
        ),
        (1, 1, 0)
    );
    retained_reaches(&infra, "dlq.refuser", 3).await;
    // Everything sent again when asked: the letter once, its copies (and their copies) left.
    let again = ReplayOptions {
        again: true,
        ..ReplayOptions::default()
    };
    let all = replay(
        infra.bus.as_ref(),
        "dlq.refuser",
        &Filter::default(),
        &again,
    )
    .await
    .expect("replayed");
    assert_eq!(
        (all.published[topics::FEATURES_EXTRACTED], all.copies),
        (1, 2)
    );
    retained_reaches(&infra, "dlq.refuser", 4).await;
    let none = replay(infra.bus.as_ref(), "dlq.refuser", &Filter::default(), &once)
        .await
        .expect("replayed");
    assert_eq!(
        (
            none.published.get(topics::FEATURES_EXTRACTED).copied(),
            none.already_replayed,
            none.copies
        ),
        (Some(1), 3, 0),
        "the letters each replay went through are left; the copy the last one caused is sent"
    );
    // A publish the bystander handles still reaches it (it went on past the replays).
    publish_vector(&publisher, -6).await;
    retained_reaches(&infra, "dlq.bystander", 2).await;
    let second = dead_letters(&infra, "bystander", 2).await.remove(1);
    assert_eq!(
        second.header(mantis_bus::REPLAY_OF),
        None,
        "the bystander's second letter is the new record's, not the replay's"
    );
    stop(stop_a, task_a).await;
    stop(stop_b, task_b).await;
}

/// Handles a record when let through (one permit each).
struct Gate(Arc<tokio::sync::Semaphore>);

#[async_trait]
impl Handler for Gate {
    type Input = FeatureVector;
    async fn handle(
        &mut self,
        _fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        self.0
            .acquire()
            .await
            .map_err(|_| HandleError::Transient("gate closed".into()))?
            .forget();
        Ok(ctx.done())
    }
}

/// The gauge `metric` of `group` as the Prometheus recorder renders it.
fn lag_of(metric: &str, group: &str) -> Option<f64> {
    let wanted = format!("group=\"{group}\"");
    let rendered = mantis_telemetry::metrics_handle()
        .expect("the Prometheus recorder")
        .render();
    rendered.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        labels
            .contains(&wanted)
            .then(|| value.trim().parse().ok())?
    })
}

async fn lag_becomes(metric: &str, group: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + mantis_runtime::LAG_EVERY * 3;
    loop {
        let lag = lag_of(metric, group);
        if lag == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{metric} of {group} stays {lag:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn how_far_a_consumer_is_behind_its_topic_is_measured() {
    // Installed before the consumer's gauge is made.
    mantis_telemetry::metrics_handle().expect("the Prometheus recorder");
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    // One key: one partition, received from as soon as its first record is.
    for n in 0..6 {
        publish_vector(&publisher, n).await;
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        infra.clone(),
        "lag-measured",
        Gate(gate.clone()),
        shutdown.clone(),
    ));
    // The first record in the handler's hands (held: a handler retrying it), five after it;
    // the group has handled none of the six (it reads on from the first).
    let (received, group) = (
        "mantis_consumer_lag_records",
        "mantis_consumer_group_lag_records",
    );
    lag_becomes(received, "lag-measured", 5.0).await;
    lag_becomes(group, "lag-measured", 6.0).await;
    gate.add_permits(6);
    lag_becomes(received, "lag-measured", 0.0).await;
    lag_becomes(group, "lag-measured", 0.0).await;
    stop(shutdown, task).await;
}

/// A letter whose source topic is not there (deleted, or a leader election) is not replayable
/// now, and is not taken for sent: once the topic is there, the next replay sends it, and
/// leaves the one the first replay sent.
#[tokio::test]
async fn a_letter_whose_topic_was_missing_is_sent_by_a_later_replay() {
    use mantis_runtime::dead_letters::{Filter, ReplayOptions, replay, show};
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let spec = |name: &str| mantis_bus::TopicSpec {
        name: name.into(),
        partitions: 1,
        retention: Duration::from_secs(3600),
    };
    infra
        .bus
        .ensure_topics(&[spec("dlq.later")])
        .await
        .expect("topics");
    for source in ["later.topic", topics::FEATURES_EXTRACTED] {
        set_aside(&infra, source, "dlq.later").await;
    }
    let once = ReplayOptions::default();
    let first = replay(infra.bus.as_ref(), "dlq.later", &Filter::default(), &once)
        .await
        .expect("replayed");
    assert_eq!(
        (first.published.len(), first.not_replayable),
        (1, 1),
        "{first:?}"
    );
    infra
        .bus
        .ensure_topics(&[spec("later.topic")])
        .await
        .expect("the topic is back");
    let shown = show(infra.bus.as_ref(), "dlq.later", &Filter::default(), 10)
        .await
        .expect("shown");
    assert_eq!(
        shown
            .iter()
            .map(|l| l.replayed_at.is_some())
            .collect::<Vec<_>>(),
        [false, true]
    );
    let second = replay(infra.bus.as_ref(), "dlq.later", &Filter::default(), &once)
        .await
        .expect("replayed");
    assert_eq!(second.published.get("later.topic"), Some(&1), "{second:?}");
    assert_eq!(
        (second.published.len(), second.already_replayed),
        (1, 1),
        "{second:?}"
    );
}

/// A replay holds a lease in the store while it runs: another process's replay of the topic
/// (a gateway replica, `mantis dlq`) holding it, nothing is published and the error says who
/// runs it; a dry run is not held; once the other is done, the replay runs and gives the lease
/// back at its end.
#[tokio::test]
async fn a_replay_runs_alone_across_the_processes_sharing_the_store() {
    use mantis_runtime::dead_letters::{Error, Filter, ReplayOptions, lease_of, replay_alone};
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let topic = "dlq.alone";
    infra
        .bus
        .ensure_topics(&[mantis_bus::TopicSpec {
            name: topic.into(),
            partitions: 1,
            retention: Duration::from_secs(3600),
        }])
        .await
        .expect("topics");
    set_aside(&infra, topics::FEATURES_EXTRACTED, topic).await;
    let other = "admin on gateway-1#7.abcdef";
    let (bus, store) = (infra.bus.as_ref(), infra.store.as_ref());
    let take = async || {
        store
            .acquire_lease(
                &lease_of(topic),
                other,
                chrono::Utc::now(),
                Duration::from_secs(60),
            )
            .await
            .expect("store")
    };
    let lease = take().await;
    assert!(lease.is_held_by(other));

    let options = ReplayOptions {
        by: "mantis dlq (ops)".into(),
        ..ReplayOptions::default()
    };
    let busy = replay_alone(store, bus, topic, &Filter::default(), &options)
        .await
        .expect_err("another replay runs");
    match &busy {
        Error::Busy {
            topic: t,
            by,
            until,
        } => {
            assert_eq!((t.as_str(), by.as_str()), (topic, "admin on gateway-1"));
            assert_eq!(*until, lease.expires_at);
        }
        e => panic!("not busy: {e}"),
    }
    assert!(busy.to_string().contains("admin on gateway-1"), "{busy}");
    async fn sent(bus: &dyn mantis_bus::Bus) -> i64 {
        bus.topic_offsets(topics::FEATURES_EXTRACTED)
            .await
            .expect("offsets")
            .iter()
            .map(mantis_bus::TopicOffsets::retained)
            .sum()
    }
    assert_eq!(sent(bus).await, 0, "nothing published while another runs");

    let dry = ReplayOptions {
        dry_run: true,
        ..options.clone()
    };
    let counted = replay_alone(store, bus, topic, &Filter::default(), &dry)
        .await
        .expect("a dry run is not held");
    assert_eq!(counted.published[topics::FEATURES_EXTRACTED], 1);

    assert!(
        store
            .release_lease(&lease_of(topic), other, None)
            .await
            .expect("store")
    );
    let done = replay_alone(store, bus, topic, &Filter::default(), &options)
        .await
        .expect("replayed");
    assert_eq!(done.published[topics::FEATURES_EXTRACTED], 1);
    assert_eq!(sent(bus).await, 1);
    assert!(
        take().await.is_held_by(other),
        "given back at the replay's end"
    );
}
