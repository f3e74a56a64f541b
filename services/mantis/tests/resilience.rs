//! Resilience in the cluster mode (every service its own process, a real Kafka-protocol broker,
//! PostgreSQL): the bus goes away under a steady stream of readings and comes back, and the
//! ingestion process is killed (SIGKILL) while it holds readings in its edge buffer. In both,
//! every reading acknowledged to its device — HTTP 202, or Mosquitto's QoS 1 acknowledgement
//! for an MQTT device — must be stored exactly once in `sensor_data_raw`, in the order it was
//! accepted (per sensor).
//!
//! The broker (tansu) keeps its records in a SQLite file (its `libsql` storage engine), so that
//! killing and restarting it loses nothing it acknowledged, as with a real Kafka cluster
//! (tansu's memory storage would lose the topics and every record not yet consumed). Its S3
//! engine would do too, but it lists every batch object of a partition on each fetch: over a
//! moto server the stream stalled after ~2 000 records.
//! The order of storage is read from PostgreSQL's `xmin` (the inserting transaction): the
//! preprocessing service inserts each reading in its own transaction, in bus order.
//!
//! The outage is also run under a stream from all four device connectors at once, each against
//! its third-party peer: a paho-mqtt device publishing at QoS 1 through the machine's
//! Mosquitto, a pymodbus device polled every 200 ms, an asyncua server whose temperature the
//! OPC UA connector monitors, and an MTConnect agent (a stand-in served by the test: no real
//! agent can be installed here) whose observations the connector samples by sequence.
//!
//! Needs tansu built with `--features dynostore,libsql`, PostgreSQL and Redis (see
//! `common/cluster.rs`), Mosquitto on 1883 and the Python peers
//! (crates/mantis-connectors/tests/peers/requirements.txt).

mod common;
#[path = "../../../crates/mantis-connectors/tests/common/mtconnect_agent.rs"]
mod mtconnect_agent;
#[path = "../../../crates/mantis-connectors/tests/common/peers.rs"]
mod peers;

use common::cluster::{BrokerStorage, Cluster};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// One cluster at a time: each is eight processes on a 2-core machine.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A stream of readings for each sensor, one request per reading, every `PERIOD`.
const PERIOD: Duration = Duration::from_millis(100);
/// Bound for everything accepted to reach the store after the bus is back.
const STORE_TIMEOUT: Duration = Duration::from_secs(300);

/// Starts the cluster over a broker whose records live in a SQLite file. Ingestion gives up on a
/// publish after 1 s and retries a failed drain every second at most; the circuit breaker
/// lets a trial through after 3 s instead of 30 (the seed).
async fn start_cluster() -> Cluster {
    Cluster::start_with(
        &[
            ("preprocessing", "window_secs", "10"),
            ("preprocessing", "idle_close_secs", "3600"),
            // Generous: on a loaded 2-core CI machine tansu can take seconds to acknowledge.
            ("ingestion", "edge_buffer__publish_timeout_ms", "5000"),
            ("ingestion", "edge_buffer__retry_max_ms", "1000"),
            ("ingestion", "circuit_breaker__open_ms", "3000"),
        ],
        BrokerStorage::Sqlite,
    )
    .await
}

/// What the stream sent for one sensor: the index of each reading and whether it was
/// acknowledged (202).
#[derive(Default)]
struct Sent {
    acked: Vec<i64>,
    not_acked: Vec<i64>,
}

/// Posts reading `i` of every sensor each `PERIOD` (timestamps one second apart) until
/// `stop`; returns what was sent per sensor.
fn stream(
    ingestion: String,
    sensors: Vec<String>,
    base: i64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Sent>> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut sent: Vec<Sent> = sensors.iter().map(|_| Sent::default()).collect();
        let mut i = 0i64;
        while !stop.load(Ordering::SeqCst) {
            let tick = Instant::now();
            for (s, sensor) in sensors.iter().enumerate() {
                let body = json!({"timestamp": at(base, i), "sensorId": sensor, "value": healthy(i), "unit": "mm/s"});
                let ok = http
                    .post(format!("{ingestion}/api/v1/sensors/data"))
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 202);
                if ok {
                    sent[s].acked.push(i);
                } else {
                    sent[s].not_acked.push(i);
                }
            }
            i += 1;
            tokio::time::sleep(PERIOD.saturating_sub(tick.elapsed())).await;
        }
        sent
    })
}

/// The stored timestamps (ms) of `sensor`, in the order they were inserted.
fn stored_in_insert_order(cluster: &Cluster, sensor: &str) -> Vec<i64> {
    cluster
        .query(&format!(
            "SELECT (extract(epoch FROM time) * 1000)::bigint FROM sensor_data_raw \
             WHERE sensor_id = '{sensor}' ORDER BY xmin::text::bigint, time"
        ))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits until every acknowledged reading of each sensor is stored, then checks that
/// nothing else is (beyond requests that failed without an answer) and that each sensor's
/// readings were stored once, in the order they were sent.
async fn assert_stored_once_in_order(
    cluster: &mut Cluster,
    sensors: &[String],
    sent: &[Sent],
    base: i64,
) {
    for (sensor, sent) in sensors.iter().zip(sent) {
        let acked: BTreeSet<i64> = sent.acked.iter().map(|i| at(base, *i)).collect();
        let maybe: BTreeSet<i64> = sent.not_acked.iter().map(|i| at(base, *i)).collect();
        assert_stored_exactly(cluster, sensor, sensor, &acked, |t| maybe.contains(t)).await;
    }
}

/// Waits until every timestamp of `expected` is stored for `sensor_id`, then checks that
/// nothing else is (but what `may_also` allows), and that each reading was stored once, in
/// time order. Returns the stored timestamps in insertion order.
async fn assert_stored_exactly(
    cluster: &mut Cluster,
    what: &str,
    sensor_id: &str,
    expected: &BTreeSet<i64>,
    may_also: impl Fn(&i64) -> bool,
) -> Vec<i64> {
    let stored = await_stored(cluster, sensor_id, |set| expected.is_subset(set)).await;
    let set: BTreeSet<i64> = stored.iter().copied().collect();
    let missing: Vec<_> = expected.difference(&set).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} expected readings were not stored: first {:?}",
        missing.len(),
        expected.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let unexpected: Vec<_> = set.difference(expected).filter(|t| !may_also(t)).collect();
    assert!(
        unexpected.is_empty(),
        "{what}: stored but never sent: {unexpected:?}"
    );
    assert_once_in_order(what, &stored);
    stored
}

/// Polls the ingestion service's `/health` until its edge buffer satisfies `check`.
async fn await_edge(cluster: &Cluster, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let http = common::http();
    let url = format!("{}/health", cluster.url("ingestion"));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(resp) = http.get(&url).send().await
            && let Ok(v) = resp.json::<Value>().await
        {
            last = v["details"]["edgeBuffer"].clone();
            if check(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the edge buffer never became {what}; last: {last}");
}

/// Under streams already running: after 5 s, kills the broker; once the edge buffer holds more
/// than `records` readings (and is not full), keeps it down 10 s more, starts it again, waits
/// until the buffer has drained and lets the streams run 5 s more. Returns when the broker was
/// killed and restarted (ms since the epoch).
async fn bus_outage(cluster: &mut Cluster, records: u64) -> (i64, i64) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    let from = chrono::Utc::now().timestamp_millis();
    cluster.stop_broker();
    let buffering = await_edge(cluster, "buffering", |s| {
        s["mode"] == "buffering" && s["records"].as_u64().unwrap_or(0) > records
    })
    .await;
    assert_eq!(buffering["full"], false, "{buffering}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let to = chrono::Utc::now().timestamp_millis();
    cluster.restart_broker();
    await_edge(cluster, "drained", |s| {
        s["mode"] == "direct" && s["drainedTotal"].as_u64().unwrap_or(0) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    (from, to)
}

async fn two_sensors(cluster: &Cluster, prefix: &str) -> Vec<String> {
    let http = common::http();
    let gateway = cluster.url("gateway");
    let mut sensors = Vec::new();
    for n in 1..=2 {
        let (_, sensor) = register_motor(&http, &gateway, &format!("{prefix}-{n}")).await;
        sensors.push(sensor);
    }
    sensors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_accepted_while_the_bus_is_down_arrive_exactly_once_in_order() {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = start_cluster().await;
    let sensors = two_sensors(&cluster, "MTR-OUTAGE").await;
    let base = base_ms();
    let stop = Arc::new(AtomicBool::new(false));
    let task = stream(
        cluster.url("ingestion"),
        sensors.clone(),
        base,
        stop.clone(),
    );

    // Act: a steady stream; the broker is killed for ~15 s, then comes back on its port.
    bus_outage(&mut cluster, 20).await;
    stop.store(true, Ordering::SeqCst);
    let sent = task.await.expect("stream");

    // Assert: the service never refused a reading, and every one is stored once, in order.
    for s in &sent {
        assert!(
            s.not_acked.is_empty(),
            "refused during the outage: {:?}",
            s.not_acked
        );
        assert!(s.acked.len() > 150, "a steady stream: {}", s.acked.len());
    }
    assert_stored_once_in_order(&mut cluster, &sensors, &sent, base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_in_the_edge_buffer_survive_a_sigkill_of_ingestion() {
    let _one = ONE_CLUSTER.lock().await;
    let mut cluster = start_cluster().await;
    let sensors = two_sensors(&cluster, "MTR-KILL").await;
    // And a device publishing over MQTT at QoS 1 to the machine's Mosquitto, read by a source
    // added through the API (kept in the store, so the restarted service reads it again, with
    // the same persistent session).
    let mqtt = sensor(&cluster, "MTR-KILL-MQTT").await;
    let broker_port = peers::shared_broker();
    let site = peers::unique("sigkill");
    add_source(&cluster, mqtt_source("kill-mqtt", broker_port, &site)).await;
    await_connected(&cluster, "kill-mqtt").await;
    let base = base_ms();
    let stop = Arc::new(AtomicBool::new(false));
    let task = stream(
        cluster.url("ingestion"),
        sensors.clone(),
        base,
        stop.clone(),
    );
    let mqtt_task = mqtt_device(stop.clone(), broker_port, &site, &mqtt.code, base);

    // Act: the bus goes down, readings pile up in the edge buffer, and the ingestion process
    // is killed with them (no shutdown, nothing flushed). The streams keep going: REST
    // requests fail (not acknowledged) until ingestion is back; Mosquitto keeps acknowledging
    // the device and queues the messages for the session.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.stop_broker();
    await_edge(&cluster, "buffering", |s| {
        s["records"].as_u64().unwrap_or(0) > 20
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill_service("ingestion");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // It starts again while the bus is still away (as an edge box rebooting in an outage),
    // takes readings into its buffer again, and drains everything once the bus is back.
    cluster.start_service("ingestion");
    cluster.await_ready("ingestion").await;
    let before = await_edge(&cluster, "buffering after the restart", |s| {
        s["mode"] == "buffering" && s["records"].as_u64().unwrap_or(0) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    await_edge(&cluster, "growing after the restart", |s| {
        s["records"].as_u64().unwrap_or(0) > before["records"].as_u64().unwrap_or(0) + 20
    })
    .await;
    cluster.restart_broker();
    await_edge(&cluster, "drained", |s| s["mode"] == "direct").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = task.await.expect("stream");
    let mqtt_acked: BTreeSet<i64> = mqtt_task.await.expect("MQTT device").into_iter().collect();

    // Assert: everything acknowledged before and after the kill is stored once, in order.
    for s in &sent {
        assert!(s.acked.len() > 60, "a steady stream: {}", s.acked.len());
    }
    assert!(
        mqtt_acked.len() > 40,
        "a steady MQTT stream: {}",
        mqtt_acked.len()
    );
    assert_stored_once_in_order(&mut cluster, &sensors, &sent, base).await;
    assert_stored_exactly(&mut cluster, "MQTT", &mqtt.id, &mqtt_acked, |_| false).await;
}

/// A registered sensor: its id (REST) and code (the connectors' mapping).
struct Sensor {
    id: String,
    code: String,
}

async fn sensor(cluster: &Cluster, code: &str) -> Sensor {
    let (_, id) = register_motor(&common::http(), &cluster.url("gateway"), code).await;
    Sensor {
        id,
        code: format!("{code}-VIB"),
    }
}

/// Adds a connector source through the ingestion service's API.
async fn add_source(cluster: &Cluster, source: Value) {
    let resp = common::http()
        .post(format!("{}/api/v1/connectors", cluster.url("ingestion")))
        .json(&source)
        .send()
        .await
        .expect("ingestion reachable");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 201, "source refused: {body}");
}

/// The status of source `name`.
async fn source_status(cluster: &Cluster, name: &str) -> Value {
    common::http()
        .get(format!(
            "{}/api/v1/connectors/{name}/status",
            cluster.url("ingestion")
        ))
        .send()
        .await
        .expect("ingestion reachable")
        .json()
        .await
        .expect("status JSON")
}

/// An MQTT source subscribed at QoS 1 (persistent session) to `site`'s topics.
fn mqtt_source(name: &str, port: u16, site: &str) -> Value {
    json!({
        "kind": "mqtt", "name": name, "host": "127.0.0.1", "port": port,
        "client_id": peers::unique("mantis-resilience"), "qos": 1,
        "topics": [format!("{site}/+/+/+")],
    })
}

/// A paho-mqtt device publishing readings of `code` at QoS 1, five per second-ish (reading
/// `k` timed `at(base, k)`), until `stop`; returns the timestamps Mosquitto acknowledged.
fn mqtt_device(
    stop: Arc<AtomicBool>,
    port: u16,
    site: &str,
    code: &str,
    base: i64,
) -> tokio::task::JoinHandle<Vec<i64>> {
    let (topic, code) = (format!("{site}/press-1/vib/vibration"), code.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        let mut i = 0i64;
        while !stop.load(Ordering::SeqCst) {
            let stamps: Vec<i64> = (i..i + 5).map(|k| at(base, k)).collect();
            let messages: Vec<(String, String)> = (i..i + 5)
                .map(|k| {
                    let payload =
                        json!({"sensorCode": code, "timestamp": at(base, k), "value": healthy(k)});
                    (topic.clone(), payload.to_string())
                })
                .collect();
            // Panics unless Mosquitto acknowledged every message.
            peers::paho_publish(port, "3.1.1", 1, None, &messages);
            acked.extend(stamps);
            i += 5;
            std::thread::sleep(Duration::from_millis(300));
        }
        acked
    })
}

/// Waits (bounded) until source `name` is connected.
async fn await_connected(cluster: &Cluster, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = source_status(cluster, name).await;
        if status["state"] == "CONNECTED" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never connected: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The stored timestamps of `sensor_id` in insertion order, once `done` holds for their set
/// (or after [`STORE_TIMEOUT`]; the caller asserts).
async fn await_stored(
    cluster: &mut Cluster,
    sensor_id: &str,
    done: impl Fn(&BTreeSet<i64>) -> bool,
) -> Vec<i64> {
    let deadline = Instant::now() + STORE_TIMEOUT;
    loop {
        let stored = stored_in_insert_order(cluster, sensor_id);
        if done(&stored.iter().copied().collect()) || Instant::now() >= deadline {
            return stored;
        }
        cluster.assert_all_running();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Stored once each, in order of time: no timestamp twice (the table's key would hide a
/// duplicate, so the count is compared with what the connector took by the caller) and
/// inserted in time order.
fn assert_once_in_order(what: &str, stored: &[i64]) {
    let set: BTreeSet<i64> = stored.iter().copied().collect();
    assert_eq!(set.len(), stored.len(), "{what}: a reading stored twice");
    let out_of_order: Vec<_> = stored.windows(2).filter(|w| w[0] > w[1]).collect();
    assert!(
        out_of_order.is_empty(),
        "{what}: readings stored out of order: {:?}",
        out_of_order.iter().take(5).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_of_all_four_connectors_survive_a_bus_outage_exactly_once_in_order() {
    let _one = ONE_CLUSTER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = start_cluster().await;
    let mqtt = sensor(&cluster, "OUT-MQTT").await;
    let modbus = sensor(&cluster, "OUT-MODBUS").await;
    let opcua = sensor(&cluster, "OUT-OPCUA").await;
    let mtc = sensor(&cluster, "OUT-MTC").await;
    let rest = sensor(&cluster, "OUT-REST").await;

    // The peers: Mosquitto (the machine's), pymodbus, asyncua, the MTConnect stand-in.
    let broker_port = peers::shared_broker();
    let site = peers::unique("outage");
    let d = dir.path().to_owned();
    let mut device = tokio::task::spawn_blocking(move || {
        peers::ModbusDevice::start(
            &d,
            None,
            &json!({"unit": 1, "size": 8,
                    "holding": [{"address": 2, "type": "float32", "value": 6.5}]}),
        )
    })
    .await
    .expect("pymodbus");
    let d = dir.path().to_owned();
    let mut server =
        tokio::task::spawn_blocking(move || peers::OpcUaServer::start(&d, None, None, 1))
            .await
            .expect("asyncua");
    let agent: mtconnect_agent::Shared =
        Arc::new(std::sync::Mutex::new(mtconnect_agent::Agent::new(100_000)));
    let agent_url = mtconnect_agent::serve(agent.clone()).await;

    for source in [
        mqtt_source("line-mqtt", broker_port, &site),
        json!({
            "kind": "modbus", "name": "line-modbus", "host": "127.0.0.1", "port": device.port,
            "poll_interval_ms": 200,
            "points": [{"sensor": modbus.code, "address": 2, "data_type": "f32"}],
        }),
        json!({
            "kind": "opcua", "name": "line-opcua", "endpoint": server.endpoint(),
            "pki_dir": dir.path().join("opcua-client"), "trust_server_certificate": true,
            "publishing_interval_ms": 200, "sampling_interval_ms": 100,
            "nodes": [{"sensor": opcua.code, "node_id": "ns=2;s=Line1.Temperature"}],
        }),
        json!({
            "kind": "mtconnect", "name": "line-mtconnect", "url": agent_url,
            "poll_interval_ms": 100, "count": 100,
            "data_items": [{"sensor": mtc.code, "data_item": "f01_Xact"}],
        }),
    ] {
        add_source(&cluster, source).await;
    }
    for name in ["line-mqtt", "line-modbus", "line-opcua", "line-mtconnect"] {
        await_connected(&cluster, name).await;
    }

    // The streams: REST (as above), MQTT batches of 5 at QoS 1 (what Mosquitto acknowledged
    // is recorded), an MTConnect observation every 100 ms; Modbus and OPC UA are read by the
    // connectors on their own schedules.
    let base = base_ms();
    let stop = Arc::new(AtomicBool::new(false));
    let rest_task = stream(
        cluster.url("ingestion"),
        vec![rest.id.clone()],
        base,
        stop.clone(),
    );
    let mqtt_task = mqtt_device(stop.clone(), broker_port, &site, &mqtt.code, base);
    let mtc_task = {
        let (stop, agent) = (stop.clone(), agent.clone());
        tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Ordering::SeqCst) {
                agent
                    .lock()
                    .expect("agent")
                    .push("f01_Xact", &format!("{:.1}", 10.0 + (k % 500) as f64 * 0.1));
                k += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Act: the broker is killed for ~15 s under the streams, then comes back.
    let (outage_from, outage_to) = bus_outage(&mut cluster, 50).await;
    stop.store(true, Ordering::SeqCst);
    let rest_sent = rest_task.await.expect("REST stream");
    let mqtt_acked = mqtt_task.await.expect("MQTT device");
    mtc_task.await.expect("MTConnect stream");
    // The polled devices stop; what their connectors took is then final.
    device.proc.kill();
    server.proc.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Assert: REST and MQTT — every acknowledged reading stored once, in order.
    assert!(
        rest_sent[0].not_acked.is_empty(),
        "REST refused during the outage"
    );
    assert_stored_once_in_order(
        &mut cluster,
        std::slice::from_ref(&rest.id),
        &rest_sent,
        base,
    )
    .await;
    let mqtt_acked: BTreeSet<i64> = mqtt_acked.into_iter().collect();
    assert!(
        mqtt_acked.len() > 100,
        "a steady MQTT stream: {}",
        mqtt_acked.len()
    );
    // MTConnect: every observation of the X position; the first is the agent's initial value,
    // the others were made after the connector started.
    let mut xact: Vec<i64> = agent
        .lock()
        .expect("agent")
        .all
        .iter()
        .filter(|o| o.id == "f01_Xact")
        .map(|o| {
            chrono::DateTime::parse_from_rfc3339(&o.timestamp)
                .expect("the agent's timestamps are RFC 3339")
                .timestamp_millis()
        })
        .collect();
    let initial = xact.remove(0);
    let observed: BTreeSet<i64> = xact.into_iter().collect();
    assert!(
        observed.len() > 150,
        "a steady MTConnect stream: {}",
        observed.len()
    );
    // Modbus and OPC UA: as many stored as the connector took (each once).
    let mut taken = std::collections::BTreeMap::new();
    for (name, s) in [("line-modbus", &modbus), ("line-opcua", &opcua)] {
        let status = source_status(&cluster, name).await;
        let n = status["readingsTotal"].as_u64().expect("readingsTotal");
        assert!(n > 50, "{name} took {n} readings: {status}");
        taken.insert(s.id.clone(), (name, n));
    }

    eprintln!(
        "outage of {} ms: REST {} acknowledged, MQTT {} acknowledged by Mosquitto, MTConnect {} \
         observations, taken by the connectors: {:?}",
        outage_to - outage_from,
        rest_sent[0].acked.len(),
        mqtt_acked.len(),
        observed.len(),
        taken.values().collect::<Vec<_>>()
    );
    assert_stored_exactly(&mut cluster, "MQTT", &mqtt.id, &mqtt_acked, |_| false).await;
    // MTConnect: the initial value may also be stored (read from `/current` at the start).
    let mtc_stored = assert_stored_exactly(&mut cluster, "MTConnect", &mtc.id, &observed, |t| {
        *t == initial
    })
    .await;
    assert!(
        mtc_stored
            .iter()
            .any(|t| (outage_from..outage_to).contains(t)),
        "MTConnect: no observation read during the outage"
    );
    for (id, (name, n)) in &taken {
        let stored = await_stored(&mut cluster, id, |set| set.len() as u64 >= *n).await;
        assert_eq!(
            stored.len() as u64,
            *n,
            "{name}: stored {} of the {n} readings the connector took",
            stored.len()
        );
        assert_once_in_order(name, &stored);
        // The connector kept reading through the outage: readings timed inside it.
        assert!(
            stored.iter().any(|t| (outage_from..outage_to).contains(t)),
            "{name}: no reading taken during the outage"
        );
    }
}
