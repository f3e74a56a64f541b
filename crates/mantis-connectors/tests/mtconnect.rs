//! The MTConnect connector against MTConnect documents served by a local HTTP server (axum on
//! port 0). No public MTConnect agent is reachable from here and none can be installed (the
//! reference cppagent is not packaged in any registry this machine reaches), so the test plays
//! the agent (`common/mtconnect_agent.rs`): a Fanuc-like device with the agent's circular
//! buffer of numbered observations and its `/probe`, `/current` and `/sample?from=&count=`
//! semantics, including `OUT_OF_RANGE` when `from` fell out of the buffer.

mod common;

use common::mtconnect_agent::{Agent, Shared, serve};
use common::peers::eventually;
use common::{RecordingSink, Running};
use mantis_connectors::ConnectorState;
use mantis_domain::{IncomingReading, SourceProtocol};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn source(url: &str, count: u32) -> serde_json::Value {
    json!({
        "kind": "mtconnect",
        "name": "fanuc-01",
        "url": url,
        "poll_interval_ms": 50,
        "count": count,
        "request_timeout_ms": 2000,
        "silence_timeout_secs": 5,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 200,
        "data_items": [
            {"sensor": "X-POS", "data_item": "f01_Xact", "unit": "mm"},
            {"sensor": "SPINDLE-SPEED", "data_item": "S1speed"},
            {"sensor": "SPINDLE-LOAD", "data_item": "S1load"},
            {"sensor": "LOAD-COND", "data_item": "f01_S1load_cond"},
        ],
    })
}

fn sequences(readings: &[IncomingReading]) -> Vec<u64> {
    readings
        .iter()
        .map(|r| {
            r.metadata
                .get("mtconnectSequence")
                .and_then(|s| s.parse().ok())
                .expect("every reading names its sequence")
        })
        .collect()
}

fn values(readings: &[IncomingReading]) -> Vec<f64> {
    readings.iter().map(|r| r.value).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_observation_is_read_once_in_sequence_across_polls() {
    let agent: Shared = Arc::new(Mutex::new(Agent::new(10_000)));
    let url = serve(agent.clone()).await;
    let sink = Arc::new(RecordingSink::default());
    // A small `count`, so a backlog takes several requests.
    let run = Running::start(sink.clone(), vec![source(&url, 7)]);

    // The first values come from /current; an UNAVAILABLE load is quality 0.
    eventually(
        20,
        "the current values",
        || sink.at_least("X-POS", 1),
        || sink.summary(),
    )
    .await;
    let load = sink.of("SPINDLE-LOAD");
    assert_eq!(load.len(), 1, "{}", sink.summary());
    assert_eq!(load[0].quality.get(), 0);
    assert_eq!(sink.of("SPINDLE-SPEED")[0].value, 1200.0);
    assert_eq!(sink.of("LOAD-COND")[0].value, 0.0, "Normal → 0");

    // The machine moves: 300 positions in bursts, with other items interleaved.
    for burst in 0..30u32 {
        {
            let mut a = agent.lock().expect("agent");
            for i in 1..=10u32 {
                a.push("f01_Xact", &format!("{}", burst * 10 + i));
                if i % 4 == 0 {
                    a.push("f01_execution", "ACTIVE");
                }
            }
            if burst == 10 {
                a.push("f01_S1load", "37.5");
                a.push("f01_S1load_cond", "Warning");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let x = eventually(
        30,
        "every position",
        || sink.at_least("X-POS", 301),
        || format!("{} / {:?}", sink.summary(), run.status("fanuc-01")),
    )
    .await;
    // Exactly once each, in order: the initial 0, then 1..=300.
    let expected: Vec<f64> = (0..=300).map(f64::from).collect();
    assert_eq!(values(&x), expected);
    let seqs = sequences(&x);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequences increase: {seqs:?}"
    );
    assert_eq!(
        values(&sink.of("SPINDLE-LOAD")),
        vec![0.0, 37.5],
        "UNAVAILABLE then a value"
    );
    assert_eq!(sink.of("SPINDLE-LOAD")[1].quality.get(), 100);
    assert_eq!(values(&sink.of("LOAD-COND")), vec![0.0, 1.0], "Warning → 1");
    assert_eq!(x[1].unit.as_deref(), Some("mm"));
    assert!(
        sink.all()
            .iter()
            .all(|(_, p)| *p == SourceProtocol::Mtconnect)
    );

    // Only /current once; the rest was /sample continuing at each nextSequence.
    let requests = agent.lock().expect("agent").requests.clone();
    assert_eq!(
        requests.iter().filter(|r| *r == "current").count(),
        1,
        "{requests:?}"
    );
    let status = run.status("fanuc-01");
    assert_eq!(status.state, ConnectorState::Connected, "{status:?}");
    assert_eq!(
        status.active,
        vec!["S1load", "S1speed", "f01_S1load_cond", "f01_Xact"]
    );
    assert!(status.last_error.is_none(), "{status:?}");
    // The agent's DataItems can be listed (to map them).
    let items = run
        .connectors
        .browse("fanuc-01", None)
        .await
        .expect("browse");
    assert!(
        items
            .iter()
            .any(|n| n.node_id == "f01_Xact" && n.browse_name == "Xact"),
        "{items:?}"
    );
    run.stop().await;
}

/// Takes the agent offline and waits until the source has noticed.
async fn take_offline(agent: &Shared, run: &Running) {
    agent.lock().expect("agent").offline = true;
    eventually(
        20,
        "the source noticing",
        || (run.status("fanuc-01").state != ConnectorState::Connected).then_some(()),
        || format!("{:?}", run.status("fanuc-01")),
    )
    .await;
}

/// An agent whose buffer holds `buffer` observations, a source reading it into a new sink (its
/// cursor kept under `data_dir` when given), and the first X positions 1..=`positions` read
/// after the current values.
async fn reading_positions(
    buffer: u64,
    positions: u32,
    data_dir: Option<&std::path::Path>,
) -> (Shared, String, Arc<RecordingSink>, Running) {
    let agent: Shared = Arc::new(Mutex::new(Agent::new(buffer)));
    let url = serve(agent.clone()).await;
    let sink = Arc::new(RecordingSink::default());
    let sources = vec![source(&url, 100)];
    let run = match data_dir {
        Some(dir) => Running::start_in(sink.clone(), sources, dir),
        None => Running::start(sink.clone(), sources),
    };
    eventually(
        20,
        "the current values",
        || sink.at_least("X-POS", 1),
        || sink.summary(),
    )
    .await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 1..=positions {
            a.push("f01_Xact", &i.to_string());
        }
    }
    eventually(
        20,
        "the first positions",
        || sink.at_least("X-POS", positions as usize + 1),
        || sink.summary(),
    )
    .await;
    (agent, url, sink, run)
}

/// A sample that is not a number yields no reading; it is handed to the sink to be kept (the
/// ingestion service dead-letters it) with its DataItem, sequence and value, and the readings
/// around it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_that_is_not_a_number_is_kept_as_unreadable_and_the_rest_goes_on() {
    let (agent, _url, sink, run) = reading_positions(64, 2, None).await;
    let sequence = {
        let mut a = agent.lock().expect("agent");
        a.push("f01_Xact", "not-a-position");
        let sequence = a.last();
        a.push("f01_Xact", "3");
        sequence
    };
    eventually(
        20,
        "the position after the bad one",
        || sink.of("X-POS").into_iter().find(|r| r.value == 3.0),
        || sink.summary(),
    )
    .await;
    assert_eq!(values(&sink.of("X-POS")), vec![0.0, 1.0, 2.0, 3.0]);
    sink.the_unreadable(
        "fanuc-01",
        SourceProtocol::Mtconnect,
        &format!("f01_Xact@{sequence}"),
        b"not-a-position",
        "not a number",
    )
    .await;
    let status = run.status("fanuc-01");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("f01_Xact") && e.contains("not a number")),
        "{status:?}"
    );
    run.stop().await;
}

/// An observation whose time cannot be read is kept as unreadable (stamped "now" instead, the
/// item's observations of one answer would share a time and all but one be dropped); one
/// written without its `Z` is read as UTC, the standard's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observation_without_a_readable_time_is_kept_as_unreadable_and_one_without_z_is_utc() {
    let (agent, _url, sink, run) = reading_positions(64, 2, None).await;
    let sequence = {
        let mut a = agent.lock().expect("agent");
        let sequence = a.push("f01_Xact", "5");
        if let Some(o) = a.all.last_mut() {
            o.timestamp = "yesterday".into();
        }
        a.push("f01_Xact", "6");
        if let Some(o) = a.all.last_mut() {
            o.timestamp = "2024-05-01T10:00:01.5".into();
        }
        a.push("f01_Xact", "7");
        sequence
    };
    eventually(
        20,
        "the position after them",
        || sink.of("X-POS").into_iter().find(|r| r.value == 7.0),
        || sink.summary(),
    )
    .await;
    let read = sink.of("X-POS");
    assert_eq!(values(&read), vec![0.0, 1.0, 2.0, 6.0, 7.0]);
    assert_eq!(
        read[3].timestamp.to_rfc3339(),
        "2024-05-01T10:00:01.500+00:00"
    );
    sink.the_unreadable(
        "fanuc-01",
        SourceProtocol::Mtconnect,
        &format!("f01_Xact@{sequence}"),
        b"5",
        "timestamp `yesterday` is not an ISO 8601 UTC date-time",
    )
    .await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_buffer_is_read_on_from_its_oldest_observation_and_the_gap_reported() {
    let (agent, _url, sink, run) = reading_positions(16, 5, None).await;

    // The agent stops answering while the machine produces far more than its buffer holds.
    let cursor = agent.lock().expect("agent").last() + 1;
    take_offline(&agent, &run).await;
    let (first_kept, last) = {
        let mut a = agent.lock().expect("agent");
        for i in 6..=105 {
            a.push("f01_Xact", &i.to_string());
        }
        a.offline = false;
        (a.first(), a.last())
    };
    assert!(first_kept > cursor, "the buffer wrapped past the cursor");

    // Back online: the gap is reported, reading resumes from the oldest observation the
    // agent still holds, and new observations follow without duplicates.
    let status = eventually(
        20,
        "the gap report",
        || {
            let s = run.status("fanuc-01");
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("wrapped"))
                .then_some(s)
        },
        || format!("{} / {:?}", sink.summary(), run.status("fanuc-01")),
    )
    .await;
    let lost = first_kept - cursor;
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains(&format!("{lost} observations")),
        "{lost} lost: {error}"
    );
    eventually(
        20,
        "the newest position",
        || sink.of("X-POS").into_iter().find(|r| r.value == 105.0),
        || sink.summary(),
    )
    .await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 106..=110 {
            a.push("f01_Xact", &i.to_string());
        }
    }
    let x = eventually(
        20,
        "the positions after the resync",
        || {
            let x = sink.of("X-POS");
            x.last().is_some_and(|r| r.value == 110.0).then_some(x)
        },
        || sink.summary(),
    )
    .await;
    // 0..=5 before, then every position the agent still held (the last pushes: 106 minus
    // its buffer's length up to 105), then 106..=110: nothing twice, nothing held skipped.
    let held = i32::try_from(last - first_kept + 1).expect("small");
    let mut expected: Vec<f64> = (0..=5).map(f64::from).collect();
    expected.extend((106 - held..=105).map(f64::from));
    expected.extend((106..=110).map(f64::from));
    assert_eq!(values(&x), expected, "last sequence {last}");
    let seqs = sequences(&x);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    eventually(
        20,
        "the connected state",
        || (run.status("fanuc-01").state == ConnectorState::Connected).then_some(()),
        || format!("{:?}", run.status("fanuc-01")),
    )
    .await;
    run.stop().await;
}

/// An agent that restarts (a new `instanceId`, its sequences from 1 again) is read from the
/// start of its new buffer: what it saw since the restart arrives whole, not only the newest
/// value of each item that `/current` would show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_restarted_is_read_from_the_start_of_its_new_buffer() {
    let (agent, _url, sink, run) = reading_positions(1_000, 3, None).await;
    take_offline(&agent, &run).await;
    {
        // Restarted: a new instance whose buffer starts again, three positions in it.
        let mut a = agent.lock().expect("agent");
        a.instance += 1;
        a.all.clear();
        for v in ["100", "101", "102"] {
            a.push("f01_Xact", v);
        }
        a.offline = false;
    }
    let x = eventually(
        20,
        "the restarted agent's positions",
        || {
            let x = sink.of("X-POS");
            x.last().is_some_and(|r| r.value == 102.0).then_some(x)
        },
        || sink.summary(),
    )
    .await;
    assert_eq!(values(&x), vec![0.0, 1.0, 2.0, 3.0, 100.0, 101.0, 102.0]);
    run.stop().await;
}

/// The cursor is kept on disk: a restart of the service reads on from where it stopped, so
/// what the machine produced meanwhile arrives whole (once), not only the newest values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_the_service_reads_on_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, url, _before, run) = reading_positions(1_000, 3, Some(dir.path())).await;
    run.stop().await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 4..=8 {
            a.push("f01_Xact", &i.to_string());
        }
    }
    let after = Arc::new(RecordingSink::default());
    let run = Running::start_in(after.clone(), vec![source(&url, 100)], dir.path());
    let x = eventually(
        20,
        "the positions produced while stopped",
        || {
            let x = after.of("X-POS");
            x.last().is_some_and(|r| r.value == 8.0).then_some(x)
        },
        || after.summary(),
    )
    .await;
    assert_eq!(values(&x), vec![4.0, 5.0, 6.0, 7.0, 8.0]);
    let requests = agent.lock().expect("agent").requests.clone();
    assert_eq!(
        requests.iter().filter(|r| *r == "current").count(),
        1,
        "/current only on the very first start: {requests:?}"
    );
    run.stop().await;
}

/// An agent whose full buffer moves on with every observation (a busy machine): after a gap,
/// the oldest sequence may be overwritten again before it is asked for. The connector asks at
/// once and, missing it again, reads on from `/current`: it never stalls chasing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_agent_after_a_gap_is_read_on_not_chased() {
    let (agent, _url, sink, run) = reading_positions(16, 5, None).await;
    take_offline(&agent, &run).await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 6..=105 {
            a.push("f01_Xact", &i.to_string());
        }
        a.offline = false;
    }
    // A new position every 2 ms, 16 observations a buffer: the oldest is gone within 32 ms.
    let busy = agent.clone();
    let machine = tokio::spawn(async move {
        for i in 1_000..30_000 {
            busy.lock().expect("agent").push("f01_Xact", &i.to_string());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    eventually(
        20,
        "positions of the busy machine",
        || sink.of("X-POS").into_iter().find(|r| r.value >= 1_000.0),
        || format!("{} / {:?}", sink.summary(), run.status("fanuc-01")),
    )
    .await;
    machine.abort();
    run.stop().await;
}

/// Cursors kept in memory and shared, as the replicas of the ingestion service share theirs in
/// the database.
#[derive(Default)]
struct SharedCursors(Mutex<std::collections::HashMap<String, serde_json::Value>>);

#[async_trait::async_trait]
impl mantis_connectors::CursorStore for SharedCursors {
    async fn load(&self, source: &str) -> Result<Option<serde_json::Value>, String> {
        Ok(self.0.lock().expect("cursors").get(source).cloned())
    }
    async fn save(&self, source: &str, cursor: serde_json::Value) -> Result<(), String> {
        self.0
            .lock()
            .expect("cursors")
            .insert(source.to_owned(), cursor);
        Ok(())
    }
}

/// Two instances' directories, the cursors they share, and an agent.
struct Sharing {
    dir_a: tempfile::TempDir,
    dir_b: tempfile::TempDir,
    cursors: Arc<SharedCursors>,
    agent: Shared,
    url: String,
}

impl Sharing {
    async fn start() -> Self {
        let agent: Shared = Arc::new(Mutex::new(Agent::new(1_000)));
        let url = serve(agent.clone()).await;
        Self {
            dir_a: tempfile::tempdir().expect("tempdir"),
            dir_b: tempfile::tempdir().expect("tempdir"),
            cursors: Arc::default(),
            agent,
            url,
        }
    }
}

/// The machine moves the X axis to each position of `range`.
fn push_positions(agent: &Shared, range: std::ops::RangeInclusive<u32>) {
    let mut a = agent.lock().expect("agent");
    for i in range {
        a.push("f01_Xact", &i.to_string());
    }
}

/// A source moving between two instances that share their cursors (each with a directory of
/// its own): each reads on where the other stopped, so what the machine produced in between
/// arrives once — not lost, not read again — also when the source comes back to an instance
/// that read it before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_moving_between_instances_sharing_cursors_reads_on_where_the_other_stopped() {
    let Sharing {
        dir_a,
        dir_b,
        cursors,
        agent,
        url,
    } = Sharing::start().await;
    let push = |range: std::ops::RangeInclusive<u32>| push_positions(&agent, range);
    // Reads `expected` new positions on an instance over `dir`, then stops it.
    let run_on = |dir: std::path::PathBuf, expected: Vec<f64>| {
        let cursors = cursors.clone();
        let url = url.clone();
        async move {
            let sink = Arc::new(RecordingSink::default());
            let run = Running::start_sharing(sink.clone(), vec![source(&url, 100)], &dir, cursors);
            let last = *expected.last().expect("positions");
            let x = eventually(
                20,
                "the positions produced meanwhile",
                || {
                    let x = sink.of("X-POS");
                    x.last().is_some_and(|r| r.value == last).then_some(x)
                },
                || sink.summary(),
            )
            .await;
            run.stop().await;
            x
        }
    };

    let first = run_on(dir_a.path().to_owned(), vec![0.0]).await;
    assert_eq!(first.len(), 1, "the current value: {first:?}");
    push(1..=3);
    let on_b = run_on(dir_b.path().to_owned(), vec![1.0, 2.0, 3.0]).await;
    assert_eq!(
        values(&on_b),
        vec![1.0, 2.0, 3.0],
        "B reads on from A's cursor"
    );
    push(4..=6);
    let back_on_a = run_on(dir_a.path().to_owned(), vec![4.0, 5.0, 6.0]).await;
    assert_eq!(
        values(&back_on_a),
        vec![4.0, 5.0, 6.0],
        "A reads on from B's cursor, not its own older one"
    );
}

/// The same source object stood by and started again (as a replica losing and regaining a
/// source's lease): it reads on from the cursor another instance kept meanwhile, not from its
/// own older one (which would read again what the other read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_started_again_reads_on_from_the_cursor_another_instance_kept() {
    let Sharing {
        dir_a,
        dir_b,
        cursors,
        agent,
        url,
    } = Sharing::start().await;
    let push = |range: std::ops::RangeInclusive<u32>| push_positions(&agent, range);
    let sink_a = Arc::new(RecordingSink::default());
    let a = mantis_connectors::Connectors::with_cursor_store(
        sink_a.clone(),
        dir_a.path(),
        cursors.clone(),
    );
    a.start_on_demand();
    a.add(serde_json::from_value(source(&url, 100)).expect("source"))
        .expect("added");
    let stop_a = tokio_util::sync::CancellationToken::new();
    let runner = a.clone();
    let token = stop_a.clone();
    let task = tokio::spawn(async move { runner.run(token).await });
    let last_is = |sink: &Arc<RecordingSink>, v: f64| {
        let sink = sink.clone();
        move || {
            sink.of("X-POS")
                .last()
                .is_some_and(|r| r.value == v)
                .then_some(())
        }
    };
    eventually(
        10,
        "run started",
        || a.activate("fanuc-01").then_some(()),
        String::new,
    )
    .await;
    eventually(20, "the current value on A", last_is(&sink_a, 0.0), || {
        sink_a.summary()
    })
    .await;
    push(1..=3);
    eventually(20, "1..=3 on A", last_is(&sink_a, 3.0), || sink_a.summary()).await;

    // A stands by; B reads on from A's cursor.
    a.stand_by("fanuc-01", Some("b"), None);
    eventually(
        20,
        "A standing by",
        || (a.status("fanuc-01").expect("status").state == ConnectorState::Standby).then_some(()),
        || format!("{:?}", a.status("fanuc-01")),
    )
    .await;
    let sink_b = Arc::new(RecordingSink::default());
    let b = Running::start_sharing(
        sink_b.clone(),
        vec![source(&url, 100)],
        dir_b.path(),
        cursors.clone(),
    );
    push(4..=6);
    eventually(20, "4..=6 on B", last_is(&sink_b, 6.0), || sink_b.summary()).await;
    assert_eq!(values(&sink_b.of("X-POS")), vec![4.0, 5.0, 6.0]);
    b.stop().await;

    // A starts again: it reads what came after B, not 4..=6 again.
    push(7..=9);
    eventually(
        10,
        "A started again",
        || a.activate("fanuc-01").then_some(()),
        String::new,
    )
    .await;
    eventually(20, "7..=9 on A", last_is(&sink_a, 9.0), || sink_a.summary()).await;
    assert_eq!(
        values(&sink_a.of("X-POS")),
        vec![0.0, 1.0, 2.0, 3.0, 7.0, 8.0, 9.0]
    );
    stop_a.cancel();
    task.await.expect("connectors stop");
}
