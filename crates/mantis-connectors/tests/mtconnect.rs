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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_buffer_is_resynchronised_from_current_and_the_gap_reported() {
    let agent: Shared = Arc::new(Mutex::new(Agent::new(16)));
    let url = serve(agent.clone()).await;
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![source(&url, 100)]);
    eventually(
        20,
        "the current values",
        || sink.at_least("X-POS", 1),
        || sink.summary(),
    )
    .await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 1..=5 {
            a.push("f01_Xact", &i.to_string());
        }
    }
    eventually(
        20,
        "the first positions",
        || sink.at_least("X-POS", 6),
        || sink.summary(),
    )
    .await;

    // The agent stops answering while the machine produces far more than its buffer holds.
    let cursor = {
        let mut a = agent.lock().expect("agent");
        a.offline = true;
        a.last() + 1
    };
    eventually(
        20,
        "the source noticing",
        || (run.status("fanuc-01").state != ConnectorState::Connected).then_some(()),
        || format!("{:?}", run.status("fanuc-01")),
    )
    .await;
    let (first_kept, last) = {
        let mut a = agent.lock().expect("agent");
        for i in 6..=105 {
            a.push("f01_Xact", &i.to_string());
        }
        a.offline = false;
        (a.first(), a.last())
    };
    assert!(first_kept > cursor, "the buffer wrapped past the cursor");

    // Back online: the gap is reported, reading resumes from /current, and new observations
    // follow without duplicates.
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
        "the current position",
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
    // 0..=5 before, then /current's 105 (the newest), then 106..=110: nothing twice.
    let mut expected: Vec<f64> = (0..=5).map(f64::from).collect();
    expected.push(105.0);
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
