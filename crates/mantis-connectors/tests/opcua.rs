//! The OPC UA connector against a third-party server, Python `asyncua` (peers/opcua_server.py):
//! every security mode and identity, status codes as quality, deadband, browsing, a server
//! killed and restarted (subscriptions created again), and refused credentials.

mod common;

use common::peers::{OpcUaServer, eventually};
use common::{RecordingSink, Running, blocking};
use mantis_connectors::{BrowseError, ConnectorState};
use mantis_domain::{IncomingReading, SourceProtocol};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// A source reading `nodes` (`[(sensor, node id)]`) from `server`, quick to notice trouble.
fn source(
    name: &str,
    server: &OpcUaServer,
    pki: &Path,
    security: serde_json::Value,
    nodes: &[(&str, &str)],
) -> serde_json::Value {
    let mut s = json!({
        "kind": "opcua",
        "name": name,
        "endpoint": server.endpoint(),
        "pki_dir": pki,
        "trust_server_certificate": true,
        "publishing_interval_ms": 200,
        "sampling_interval_ms": 100,
        "keep_alive_count": 5,
        "silence_timeout_secs": 5,
        "connect_timeout_ms": 10000,
        "reconnect_min_ms": 200,
        "reconnect_max_ms": 1000,
        "nodes": nodes.iter().map(|(sensor, node)| json!({"sensor": sensor, "node_id": node})).collect::<Vec<_>>(),
    });
    if let (Some(obj), Some(extra)) = (s.as_object_mut(), security.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    s
}

const TEMPERATURE: &str = "ns=2;s=Line1.Temperature";

fn good(sink: &RecordingSink, code: &str) -> Vec<IncomingReading> {
    sink.of(code)
        .into_iter()
        .filter(|r| r.quality.get() == 100)
        .collect()
}

async fn start_server(dir: &Path, port: Option<u16>, epoch: u32) -> OpcUaServer {
    let d = dir.to_owned();
    blocking(move || OpcUaServer::start(&d, port, Some("alice:s3cret"), epoch)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_values_arrive_with_every_security_mode_and_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), None, 1).await;
    let pki = dir.path().join("pki");
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![
            source(
                "plain",
                &server,
                &pki,
                json!({}),
                &[("T-NONE", TEMPERATURE)],
            ),
            source(
                "signed",
                &server,
                &pki,
                json!({"security_policy": "Basic256Sha256", "security_mode": "Sign"}),
                &[("T-SIGN", TEMPERATURE)],
            ),
            source(
                "encrypted-user",
                &server,
                &pki,
                json!({"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt",
                       "username": "alice", "password": "s3cret"}),
                &[("T-ENC", TEMPERATURE)],
            ),
        ],
    );
    for code in ["T-NONE", "T-SIGN", "T-ENC"] {
        let readings = eventually(
            60,
            &format!("changing temperatures on {code}"),
            || {
                let g = good(&sink, code);
                let distinct = g
                    .iter()
                    .map(|r| r.value.to_bits())
                    .collect::<std::collections::HashSet<_>>();
                (distinct.len() >= 3).then_some(g)
            },
            || format!("{} / {:?}", sink.summary(), run.connectors.statuses()),
        )
        .await;
        assert!(
            readings.iter().all(|r| (20.0..=30.0).contains(&r.value)),
            "{readings:?}"
        );
    }
    assert!(
        sink.all().iter().all(|(_, p)| *p == SourceProtocol::OpcUa),
        "every reading is tagged OPC_UA"
    );
    for name in ["plain", "signed", "encrypted-user"] {
        let s = run.status(name);
        assert_eq!(s.state, ConnectorState::Connected, "{s:?}");
        assert_eq!(s.active, vec![TEMPERATURE], "{s:?}");
        assert!(s.messages_total > 0 && s.last_value_at.is_some(), "{s:?}");
    }
    assert!(
        run.status("signed")
            .endpoint
            .contains("Basic256Sha256 Sign"),
        "{:?}",
        run.status("signed")
    );
    // The client made its application instance certificate in the PKI directory, and trusted
    // the server's (trust_server_certificate).
    assert!(pki.join("own/cert.der").is_file(), "client certificate");
    let trusted = std::fs::read_dir(pki.join("trusted"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(trusted >= 1, "the server certificate is in trusted/");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_become_quality_deadbands_filter_and_the_server_can_be_browsed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), None, 1).await;
    let sink = Arc::new(RecordingSink::default());
    let mut config = source(
        "line1",
        &server,
        &dir.path().join("pki"),
        json!({}),
        &[
            ("BROKEN", "ns=2;s=Line1.Broken"),
            ("DOUBTFUL", "ns=2;s=Line1.Doubtful"),
            ("RUNNING", "ns=2;s=Line1.Running"),
            ("RAMP", "ns=2;s=Line1.Ramp"),
            ("COUNTER", "nsu=urn:mantis:test-plant;s=Line1.Counter"),
            ("MISSING", "ns=2;s=Line1.DoesNotExist"),
            ("TEMP-DB", TEMPERATURE),
        ],
    );
    // Report-by-exception with an absolute deadband of 0.15: the temperature moves by 0.2 per
    // tick (reported), the ramp by 0.1 (filtered out by the server after its first value).
    // asyncua compares each sample with the previous sample (the specification says: with the
    // last reported value), hence a deadband between the two step sizes.
    config["nodes"][3]["deadband"] = json!(0.15);
    config["nodes"][6]["deadband"] = json!(0.15);
    let run = Running::start(sink.clone(), vec![config]);

    let broken = eventually(
        30,
        "the Bad value",
        || sink.of("BROKEN").into_iter().next(),
        || sink.summary(),
    )
    .await;
    assert_eq!(broken.quality.get(), 0, "Bad → quality 0");
    let reason = broken
        .metadata
        .get(IncomingReading::QUALITY_REASON)
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("BadSensorFailure"), "{reason}");
    let doubtful = eventually(
        10,
        "the Uncertain value",
        || sink.of("DOUBTFUL").into_iter().next(),
        || sink.summary(),
    )
    .await;
    assert_eq!((doubtful.value, doubtful.quality.get()), (42.0, 50));
    let running = eventually(
        10,
        "the boolean",
        || sink.of("RUNNING").into_iter().next(),
        || sink.summary(),
    )
    .await;
    assert_eq!((running.value, running.quality.get()), (1.0, 100));
    // The node named by namespace URI is resolved and counts up.
    eventually(
        20,
        "counter values",
        || sink.at_least("COUNTER", 5),
        || sink.summary(),
    )
    .await;
    // A node the server does not have: quality 0 and the reason in the status.
    let missing = eventually(
        10,
        "the refused node",
        || sink.of("MISSING").into_iter().next(),
        || sink.summary(),
    )
    .await;
    assert_eq!(missing.quality.get(), 0);
    let status = run.status("line1");
    assert_eq!(status.state, ConnectorState::Error, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Line1.DoesNotExist") && e.contains("BadNodeIdUnknown")),
        "{status:?}"
    );

    // Deadband: the temperature keeps coming, the ramp's small steps do not.
    eventually(
        30,
        "temperatures through the deadband",
        || sink.at_least("TEMP-DB", 10),
        || sink.summary(),
    )
    .await;
    let ramp = sink.of("RAMP");
    assert_eq!(
        ramp.len(),
        1,
        "only the initial ramp value passes a deadband larger than its steps: {:?}",
        ramp.iter().map(|r| r.value).collect::<Vec<_>>()
    );

    // Browsing: the Objects folder holds Line1, which holds the variables with their values.
    let root = run
        .connectors
        .browse("line1", None)
        .await
        .expect("browse root");
    let line = root
        .iter()
        .find(|n| n.browse_name == "Line1")
        .unwrap_or_else(|| panic!("Line1 under Objects: {root:?}"));
    assert_eq!(line.node_class, "Object");
    let vars = run
        .connectors
        .browse("line1", Some(&line.node_id))
        .await
        .expect("browse Line1");
    let temp = vars
        .iter()
        .find(|n| n.node_id == TEMPERATURE)
        .unwrap_or_else(|| panic!("the temperature variable: {vars:?}"));
    assert_eq!(temp.node_class, "Variable");
    assert!(
        temp.value.is_some_and(|v| (20.0..=30.0).contains(&v)),
        "{temp:?}"
    );
    let bad = vars
        .iter()
        .find(|n| n.browse_name == "Broken")
        .expect("Broken");
    assert!(
        bad.status
            .as_deref()
            .is_some_and(|s| s.contains("BadSensorFailure")),
        "{bad:?}"
    );
    assert!(matches!(
        run.connectors.browse("line1", Some("not a node")).await,
        Err(BrowseError::InvalidNode(_))
    ));
    assert!(matches!(
        run.connectors.browse("nope", None).await,
        Err(BrowseError::UnknownSource(_))
    ));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_resumes_after_the_server_is_killed_and_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), None, 1).await;
    let port = server.port;
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source(
            "restarting",
            &server,
            &dir.path().join("pki"),
            json!({"security_policy": "Basic256Sha256", "username": "alice", "password": "s3cret"}),
            &[("EPOCH", "ns=2;s=Line1.Epoch"), ("T", TEMPERATURE)],
        )],
    );
    eventually(
        60,
        "the first server's epoch",
        || sink.of("EPOCH").into_iter().find(|r| r.value == 1.0),
        || format!("{} / {:?}", sink.summary(), run.status("restarting")),
    )
    .await;

    // The server dies: the source notices and keeps trying.
    blocking(move || drop(server)).await;
    eventually(
        30,
        "reconnection attempts",
        || {
            let s = run.status("restarting");
            (s.reconnects >= 1 && s.state != ConnectorState::Connected).then_some(())
        },
        || format!("{:?}", run.status("restarting")),
    )
    .await;

    // It comes back on the same port (a new process, knowing nothing of our subscription):
    // the source subscribes again by itself and data flows.
    let _server = start_server(dir.path(), Some(port), 2).await;
    eventually(
        60,
        "the restarted server's epoch",
        || sink.of("EPOCH").into_iter().find(|r| r.value == 2.0),
        || format!("{} / {:?}", sink.summary(), run.status("restarting")),
    )
    .await;
    let before = good(&sink, "T").len();
    eventually(
        30,
        "temperatures from the restarted server",
        || (good(&sink, "T").len() >= before + 3).then_some(()),
        || format!("{} / {:?}", sink.summary(), run.status("restarting")),
    )
    .await;
    let status = run.status("restarting");
    assert_eq!(status.state, ConnectorState::Connected, "{status:?}");
    assert!(status.reconnects >= 1, "{status:?}");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_error_state_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), None, 1).await;
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source(
            "intruder",
            &server,
            &dir.path().join("pki"),
            json!({"username": "alice", "password": "wrong"}),
            &[("T", TEMPERATURE)],
        )],
    );
    let status = eventually(
        60,
        "the ERROR state",
        || {
            let s = run.status("intruder");
            (s.state == ConnectorState::Error && s.last_error.is_some()).then_some(s)
        },
        || format!("{:?}", run.status("intruder")),
    )
    .await;
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("refused") && error.contains("alice") && error.contains("password"),
        "{error}"
    );
    assert!(
        !error.contains("wrong"),
        "the password is never shown: {error}"
    );
    // It keeps trying (a corrected account on the server would be picked up) and stays ERROR.
    eventually(
        30,
        "another attempt",
        || (run.status("intruder").reconnects >= 2).then_some(()),
        || format!("{:?}", run.status("intruder")),
    )
    .await;
    assert!(sink.of("T").is_empty(), "{}", sink.summary());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_server_certificate_is_refused_unless_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), None, 1).await;
    let pki = dir.path().join("pki");
    let sink = Arc::new(RecordingSink::default());
    let mut config = source(
        "careful",
        &server,
        &pki,
        json!({"security_policy": "Basic256Sha256"}),
        &[("T", TEMPERATURE)],
    );
    config["trust_server_certificate"] = json!(false);
    let run = Running::start(sink.clone(), vec![config]);
    let status = eventually(
        60,
        "the refusal",
        || {
            let s = run.status("careful");
            (s.state == ConnectorState::Error).then_some(s)
        },
        || format!("{:?}", run.status("careful")),
    )
    .await;
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("rejected") && error.contains("trusted"),
        "{error}"
    );
    // The operator trusts it (moves it from rejected/ to trusted/): the next attempt connects.
    let rejected: Vec<_> = std::fs::read_dir(pki.join("rejected"))
        .expect("rejected/ exists")
        .flatten()
        .collect();
    assert!(
        !rejected.is_empty(),
        "the server certificate waits in rejected/"
    );
    std::fs::create_dir_all(pki.join("trusted")).expect("trusted/");
    for f in rejected {
        std::fs::rename(f.path(), pki.join("trusted").join(f.file_name())).expect("move");
    }
    eventually(
        60,
        "readings once trusted",
        || sink.at_least("T", 2),
        || format!("{} / {:?}", sink.summary(), run.status("careful")),
    )
    .await;
    run.stop().await;
}
