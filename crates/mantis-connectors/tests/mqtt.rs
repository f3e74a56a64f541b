//! The MQTT connector against Mosquitto with paho-mqtt as the device: every payload shape,
//! MQTT 3.1.1 and 5, QoS 0 and 1, the persistent session across a MANTIS restart, manual
//! acknowledgements, TLS with client certificates, a broker killed and restarted, and the
//! watchdog. Tests on the machine's broker (127.0.0.1:1883) use unique topics and client ids;
//! tests that kill a broker start their own.

mod common;

use common::peers::{self, Mosquitto, Pki, eventually, unique};
use common::{RecordingSink, Running, blocking, publish};
use mantis_connectors::ConnectorState;
use mantis_domain::SourceProtocol;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// An MQTT source on `port` subscribed to `{site}/+/+/+`.
fn source(name: &str, port: u16, site: &str, version: &str, qos: u8) -> serde_json::Value {
    json!({
        "kind": "mqtt",
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "version": version,
        "client_id": unique("mantis-test"),
        "qos": qos,
        "topics": [format!("{site}/+/+/+")],
        "reconnect_min_ms": 100,
        "reconnect_max_ms": 1000,
    })
}

fn msg(topic: String, payload: serde_json::Value) -> (String, String) {
    (topic, payload.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_published_by_paho_arrive_in_every_payload_shape() {
    let port = peers::shared_broker();
    let site = unique("site");
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source("shapes", port, &site, "3.1.1", 1)],
    );
    eventually(
        20,
        "the subscription",
        || (!run.status("shapes").active.is_empty()).then_some(()),
        || format!("{:?}", run.status("shapes")),
    )
    .await;

    publish(
        port,
        "3.1.1",
        1,
        None,
        vec![
            // The REST shape, naming its sensor.
            msg(
                format!("{site}/press-1/ignored/vibration"),
                json!({"timestamp": "2026-01-15T10:30:45.123Z", "sensorCode": "REST-SHAPE",
                       "value": 4.5, "unit": "mm/s", "quality": 90}),
            ),
            // The seed's device shape: the value under the topic's {type}.
            msg(
                format!("{site}/room-101/SEED-SHAPE/temperature"),
                json!({"sensor_id": "SEED-SHAPE", "temperature": 22.3,
                       "timestamp": "2026-01-15T10:30:45.123Z", "unit": "celsius"}),
            ),
            // A batch; the sensor comes from the topic's {sensor} level.
            msg(
                format!("{site}/press-1/BATCH/pressure"),
                json!([{"timestamp": 1768473045000i64, "value": 1.5},
                       {"timestamp": 1768473046000i64, "value": 1.6}]),
            ),
            // A bare number.
            (format!("{site}/press-1/BARE/current"), "7.25".to_owned()),
            // Garbage: counted, not delivered, and does not stop anything.
            (
                format!("{site}/press-1/BARE/current"),
                "not json".to_owned(),
            ),
        ],
    )
    .await;

    let done = || {
        (sink.of("REST-SHAPE").len() == 1
            && sink.of("SEED-SHAPE").len() == 1
            && sink.of("BATCH").len() == 2
            && !sink.of("BARE").is_empty())
        .then_some(())
    };
    eventually(20, "the five readings", done, || sink.summary()).await;
    let rest = &sink.of("REST-SHAPE")[0];
    assert_eq!((rest.value, rest.quality.get()), (4.5, 90));
    assert_eq!(rest.unit.as_deref(), Some("mm/s"));
    let seed = &sink.of("SEED-SHAPE")[0];
    assert_eq!(seed.value, 22.3);
    assert_eq!(seed.timestamp.timestamp_millis(), 1_768_473_045_123);
    let batch: Vec<f64> = sink.of("BATCH").iter().map(|r| r.value).collect();
    assert_eq!(batch, vec![1.5, 1.6]);
    assert_eq!(sink.of("BARE")[0].value, 7.25);
    assert!(sink.all().iter().all(|(_, s)| *s == SourceProtocol::Mqtt));

    let status = eventually(
        10,
        "the invalid message in the status",
        || {
            let s = run.status("shapes");
            s.last_error.is_some().then_some(s)
        },
        || format!("{:?}", run.status("shapes")),
    )
    .await;
    assert_eq!(status.state, ConnectorState::Connected);
    assert_eq!(status.active, vec![format!("{site}/+/+/+")]);
    assert_eq!(status.messages_total, 5);
    assert_eq!(status.readings_total, 5);
    assert!(status.last_value_at.is_some());
    assert!(status.messages_per_second > 0.0);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not JSON")),
        "{status:?}"
    );
    // The garbage is handed to the sink as it was sent, to be kept (dead-lettered).
    sink.the_unreadable(
        "shapes",
        SourceProtocol::Mqtt,
        &format!("{site}/press-1/BARE/current"),
        b"not json",
        "not JSON",
    )
    .await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_with_qos_0_delivers_readings() {
    let port = peers::shared_broker();
    let site = unique("site");
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![source("v5", port, &site, "5", 0)]);
    eventually(
        20,
        "the subscription",
        || (!run.status("v5").active.is_empty()).then_some(()),
        || format!("{:?}", run.status("v5")),
    )
    .await;
    let messages = (0..5)
        .map(|i| msg(format!("{site}/m-1/V5/speed"), json!({"value": i})))
        .collect();
    publish(port, "5", 0, None, messages).await;
    let got = eventually(
        20,
        "five readings",
        || sink.at_least("V5", 5),
        || sink.summary(),
    )
    .await;
    let values: Vec<f64> = got.iter().map(|r| r.value).collect();
    assert_eq!(values, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    run.stop().await;
}

/// Messages published at QoS 1 while MANTIS is down are delivered when it is back.
async fn qos_1_messages_survive_a_restart(version: &str) {
    let port = peers::shared_broker();
    let site = unique("site");
    let config = source("persistent", port, &site, version, 1);
    let topic = format!("{site}/dev/PERSIST/level");

    // First run: the broker learns the session and its subscription.
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![config.clone()]);
    eventually(
        20,
        "the subscription",
        || (!run.status("persistent").active.is_empty()).then_some(()),
        || format!("{:?}", run.status("persistent")),
    )
    .await;
    publish(
        port,
        version,
        1,
        None,
        vec![msg(topic.clone(), json!({"value": 1}))],
    )
    .await;
    eventually(
        20,
        "the first reading",
        || sink.at_least("PERSIST", 1),
        || sink.summary(),
    )
    .await;
    run.stop().await;

    // MANTIS is down: the device goes on publishing.
    let while_down: Vec<(String, String)> = (2..=6)
        .map(|i| msg(topic.clone(), json!({"value": i})))
        .collect();
    publish(port, version, 1, None, while_down).await;

    // Second run, same client id: nothing was lost.
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![config]);
    let got = eventually(
        20,
        "the readings published while stopped",
        || sink.at_least("PERSIST", 5),
        || sink.summary(),
    )
    .await;
    let mut values: Vec<f64> = got.iter().map(|r| r.value).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    assert_eq!(values, vec![2.0, 3.0, 4.0, 5.0, 6.0]);
    // The backlog arrives at once and its messages carry no time: each still gets its own
    // (the store keeps one reading per sensor and time).
    assert!(
        got.windows(2)
            .all(|w| w[0].timestamp.timestamp_millis() < w[1].timestamp.timestamp_millis()),
        "{:?}",
        got.iter().map(|r| r.timestamp).collect::<Vec<_>>()
    );
    run.stop().await;
}

/// A retained value is the broker's last known one, sent again on every subscription: without
/// a time of its own it says nothing of when it was measured and is not taken (a dead device
/// would otherwise look alive on every reconnection); with one it is. A retained message that
/// is no reading is not dead-lettered on every subscription either. Bare values arriving
/// together get distinct, increasing arrival times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_values_need_a_time_of_their_own_and_a_burst_gets_distinct_times() {
    let port = peers::shared_broker();
    let site = unique("site");
    let bare = format!("{site}/dev/RETAINED/level");
    let timed = format!("{site}/dev/RETAINEDTS/level");
    let garbage = format!("{site}/dev/RETAINEDBAD/level");
    let measured = chrono::Utc::now() - chrono::Duration::minutes(5);
    common::publish_retained(
        port,
        "3.1.1",
        vec![
            msg(bare.clone(), json!(41.5)),
            msg(
                timed.clone(),
                json!({"value": 42.5, "timestamp": measured.timestamp_millis()}),
            ),
            (garbage.clone(), "garbage".to_owned()),
        ],
    )
    .await;

    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source("retained", port, &site, "3.1.1", 1)],
    );
    let got = eventually(
        20,
        "the retained reading with its own time",
        || sink.at_least("RETAINEDTS", 1),
        || sink.summary(),
    )
    .await;
    assert_eq!(got[0].value, 42.5);
    assert_eq!(
        got[0].timestamp.timestamp_millis(),
        measured.timestamp_millis()
    );

    let burst: Vec<(String, String)> = (0..20)
        .map(|i| msg(format!("{site}/dev/BURST/level"), json!(i)))
        .collect();
    publish(port, "3.1.1", 1, None, burst).await;
    let got = eventually(
        20,
        "the burst",
        || sink.at_least("BURST", 20),
        || sink.summary(),
    )
    .await;
    assert_eq!(
        got.iter().map(|r| r.value).collect::<Vec<_>>(),
        (0..20).map(f64::from).collect::<Vec<_>>()
    );
    assert!(
        got.windows(2)
            .all(|w| w[0].timestamp.timestamp_millis() < w[1].timestamp.timestamp_millis()),
        "distinct, increasing times (to the millisecond, as stored): {:?}",
        got.iter().map(|r| r.timestamp).collect::<Vec<_>>()
    );
    // By now the retained bare value has long been seen, and not taken; the retained garbage
    // too, and not dead-lettered again on this subscription (it was when published live).
    assert!(sink.of("RETAINED").is_empty(), "{}", sink.summary());
    assert!(sink.unreadable().is_empty(), "{:?}", sink.unreadable());
    run.stop().await;
    // Leave the shared broker as it was: an empty retained message clears a topic's value.
    common::publish_retained(
        port,
        "3.1.1",
        vec![
            (bare, String::new()),
            (timed, String::new()),
            (garbage, String::new()),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_1_messages_published_while_stopped_arrive_after_restart_mqtt_3_1_1() {
    qos_1_messages_survive_a_restart("3.1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_1_messages_published_while_stopped_arrive_after_restart_mqtt_5() {
    qos_1_messages_survive_a_restart("5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_sink_did_not_take_is_not_acknowledged_and_comes_back() {
    let port = peers::shared_broker();
    let site = unique("site");
    let config = source("unacked", port, &site, "3.1.1", 1);
    let failing = RecordingSink::failing();
    let run = Running::start(failing.clone(), vec![config.clone()]);
    eventually(
        20,
        "the subscription",
        || (!run.status("unacked").active.is_empty()).then_some(()),
        || format!("{:?}", run.status("unacked")),
    )
    .await;
    publish(
        port,
        "3.1.1",
        1,
        None,
        vec![msg(
            format!("{site}/dev/UNACKED/flow"),
            json!({"value": 42}),
        )],
    )
    .await;
    // The sink refused it (several times: the connector retries).
    eventually(
        20,
        "delivery attempts",
        || (failing.attempts.load(Ordering::SeqCst) >= 2).then_some(()),
        || format!("{:?}", run.status("unacked")),
    )
    .await;
    let status = run.status("unacked");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("test sink is failing")),
        "{status:?}"
    );
    run.stop().await;
    assert!(failing.all().is_empty());

    // Restarted with a working sink: the broker delivers the unacknowledged message again.
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![config]);
    let got = eventually(
        20,
        "the redelivered message",
        || sink.at_least("UNACKED", 1),
        || sink.summary(),
    )
    .await;
    assert_eq!(got[0].value, 42.0);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_connects_and_untrusted_peers_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = blocking({
        let d = dir.path().to_owned();
        move || Pki::generate(&d)
    })
    .await;
    let broker = blocking({
        let d = dir.path().to_owned();
        let pki = Pki {
            dir: pki.dir.clone(),
        };
        move || Mosquitto::start(&d, Some(&pki))
    })
    .await;
    let site = unique("site");
    let tls_source =
        |name: &str, ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path| {
            let mut s = source(name, broker.port, &site, "3.1.1", 1);
            s["tls"] = json!({"ca_file": ca, "client_cert_file": cert, "client_key_file": key});
            s
        };
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![
            tls_source("trusted", &pki.ca(), &pki.client_cert(), &pki.client_key()),
            // A client certificate the broker does not trust.
            tls_source(
                "untrusted-client",
                &pki.ca(),
                &pki.rogue_client_cert(),
                &pki.rogue_client_key(),
            ),
            // A broker certificate we do not trust.
            tls_source(
                "untrusted-server",
                &pki.rogue_ca(),
                &pki.client_cert(),
                &pki.client_key(),
            ),
        ],
    );
    let status = eventually(
        20,
        "the TLS subscription",
        || {
            let s = run.status("trusted");
            (!s.active.is_empty()).then_some(s)
        },
        || format!("{:?}", run.status("trusted")),
    )
    .await;
    assert_eq!(
        status.endpoint,
        format!("mqtts://127.0.0.1:{}", broker.port)
    );
    publish(
        broker.port,
        "3.1.1",
        1,
        Some((pki.ca(), pki.client_cert(), pki.client_key())),
        vec![msg(
            format!("{site}/dev/TLS/temperature"),
            json!({"value": 21.5}),
        )],
    )
    .await;
    let got = eventually(
        20,
        "the reading over TLS",
        || sink.at_least("TLS", 1),
        || sink.summary(),
    )
    .await;
    assert_eq!(got[0].value, 21.5);

    for name in ["untrusted-client", "untrusted-server"] {
        let s = eventually(
            20,
            "repeated refusals",
            || {
                let s = run.status(name);
                (s.reconnects >= 2).then_some(s)
            },
            || format!("{:?}", run.status(name)),
        )
        .await;
        assert!(s.connected_since.is_none(), "{name} connected: {s:?}");
        assert!(s.active.is_empty(), "{s:?}");
        assert_ne!(s.state, ConnectorState::Connected, "{s:?}");
        assert!(s.last_error.is_some(), "{s:?}");
    }
    let untrusted_server = run.status("untrusted-server");
    assert!(
        untrusted_server
            .last_error
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains("certificate")),
        "{untrusted_server:?}"
    );
    assert_eq!(sink.all().len(), 1, "{}", sink.summary());
    run.stop().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_resumes_after_the_broker_is_killed_and_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = blocking({
        let d = dir.path().to_owned();
        move || Mosquitto::start(&d, None)
    })
    .await;
    let port = broker.port;
    let broker = Arc::new(std::sync::Mutex::new(broker));
    let site = unique("site");
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source("outage", port, &site, "3.1.1", 1)],
    );
    let subscribed = || (!run.status("outage").active.is_empty()).then_some(());
    eventually(20, "the subscription", subscribed, || {
        format!("{:?}", run.status("outage"))
    })
    .await;
    let topic = format!("{site}/dev/OUTAGE/level");
    publish(
        port,
        "3.1.1",
        1,
        None,
        vec![msg(topic.clone(), json!({"value": 1}))],
    )
    .await;
    eventually(
        20,
        "the first reading",
        || sink.at_least("OUTAGE", 1),
        || sink.summary(),
    )
    .await;

    // The broker dies (SIGKILL; it kept nothing).
    blocking({
        let b = broker.clone();
        move || b.lock().expect("lock").kill()
    })
    .await;
    eventually(
        20,
        "the lost connection in the status",
        || {
            let s = run.status("outage");
            (s.state != ConnectorState::Connected && s.reconnects >= 1).then_some(())
        },
        || format!("{:?}", run.status("outage")),
    )
    .await;

    // It comes back on the same port: the connector reconnects and subscribes again by itself.
    blocking({
        let b = broker.clone();
        move || b.lock().expect("lock").restart()
    })
    .await;
    eventually(
        30,
        "the connector back and subscribed",
        || {
            let s = run.status("outage");
            (s.state == ConnectorState::Connected && !s.active.is_empty()).then_some(())
        },
        || format!("{:?}", run.status("outage")),
    )
    .await;
    publish(
        port,
        "3.1.1",
        1,
        None,
        vec![msg(topic, json!({"value": 2}))],
    )
    .await;
    let got = eventually(
        20,
        "the reading after the restart",
        || sink.at_least("OUTAGE", 2),
        || sink.summary(),
    )
    .await;
    assert_eq!(got.last().map(|r| r.value), Some(2.0));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reconnects_a_silent_source_which_then_still_delivers() {
    let port = peers::shared_broker();
    let site = unique("site");
    let mut config = source("quiet", port, &site, "3.1.1", 1);
    config["silence_timeout_secs"] = json!(1);
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![config]);
    let status = eventually(
        20,
        "a watchdog trip",
        || {
            let s = run.status("quiet");
            (s.watchdog_trips >= 1).then_some(s)
        },
        || format!("{:?}", run.status("quiet")),
    )
    .await;
    assert!(
        status.reconnects >= 1 || status.state != ConnectorState::Connected,
        "{status:?}"
    );
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("silence")),
        "{status:?}"
    );
    // Data keeps flowing through the reconnected source (the watchdog may trip again between
    // messages, so publish until one arrives).
    let topic = format!("{site}/dev/QUIET/level");
    for i in 0..20 {
        if sink.at_least("QUIET", 1).is_some() {
            break;
        }
        eventually(
            20,
            "the source subscribed again",
            || (!run.status("quiet").active.is_empty()).then_some(()),
            || format!("{:?}", run.status("quiet")),
        )
        .await;
        publish(
            port,
            "3.1.1",
            1,
            None,
            vec![msg(topic.clone(), json!({"value": i}))],
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    eventually(
        10,
        "a reading after the watchdog",
        || sink.at_least("QUIET", 1),
        || sink.summary(),
    )
    .await;
    run.stop().await;
}
