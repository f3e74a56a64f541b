//! Resilience in the cluster mode (every service its own process, a real Kafka-protocol broker,
//! PostgreSQL): the bus goes away under a steady stream of readings and comes back, and the
//! ingestion process is killed (SIGKILL) while it holds readings in its edge buffer. In both,
//! every reading acknowledged with HTTP 202 must be stored exactly once in `sensor_data_raw`,
//! in the order it was accepted (per sensor).
//!
//! The broker (tansu) keeps its records in a SQLite file (its `libsql` storage engine), so that
//! killing and restarting it loses nothing it acknowledged, as with a real Kafka cluster
//! (tansu's memory storage would lose the topics and every record not yet consumed). Its S3
//! engine would do too, but it lists every batch object of a partition on each fetch: over a
//! moto server the stream stalled after ~2 000 records.
//! The order of storage is read from PostgreSQL's `xmin` (the inserting transaction): the
//! preprocessing service inserts each reading in its own transaction, in bus order.
//!
//! Needs tansu built with `--features dynostore,libsql`, PostgreSQL and Redis (see
//! `common/cluster.rs`). MQTT devices are not part of this stream:
//! the connectors' own tests cover their acknowledgements; a connector's batch goes through
//! the same edge buffer as a REST one (see services/ingestion/tests/edge_buffer.rs).

mod common;

use common::cluster::{BrokerStorage, Cluster};
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

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
/// readings were stored in the order they were sent.
async fn assert_stored_once_in_order(
    cluster: &mut Cluster,
    sensors: &[String],
    sent: &[Sent],
    base: i64,
) {
    for (sensor, sent) in sensors.iter().zip(sent) {
        let acked: BTreeSet<i64> = sent.acked.iter().map(|i| at(base, *i)).collect();
        let deadline = Instant::now() + STORE_TIMEOUT;
        let mut stored = stored_in_insert_order(cluster, sensor);
        while !acked.is_subset(&stored.iter().copied().collect()) && Instant::now() < deadline {
            // A service that stopped (e.g. a consumer that failed) stores nothing more: say so
            // at once, with its log, rather than after the timeout.
            cluster.assert_all_running();
            tokio::time::sleep(Duration::from_secs(1)).await;
            stored = stored_in_insert_order(cluster, sensor);
        }
        let set: BTreeSet<i64> = stored.iter().copied().collect();
        let missing: Vec<_> = acked.difference(&set).collect();
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged readings of {sensor} were not stored: first {:?}",
            missing.len(),
            acked.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        );
        let maybe: BTreeSet<i64> = sent.not_acked.iter().map(|i| at(base, *i)).collect();
        let unexpected: Vec<_> = set
            .difference(&acked)
            .filter(|t| !maybe.contains(t))
            .collect();
        assert!(
            unexpected.is_empty(),
            "stored but never sent: {unexpected:?}"
        );
        assert_eq!(set.len(), stored.len(), "a reading stored twice");
        let out_of_order: Vec<_> = stored.windows(2).filter(|w| w[0] > w[1]).collect();
        assert!(
            out_of_order.is_empty(),
            "readings of {sensor} stored out of order: {:?}",
            out_of_order.iter().take(5).collect::<Vec<_>>()
        );
    }
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

    // Act: a steady stream; the broker is killed for 15 s, then comes back on its port.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.stop_broker();
    let buffering = await_edge(&cluster, "buffering", |s| {
        s["mode"] == "buffering" && s["records"].as_u64().unwrap_or(0) > 20
    })
    .await;
    assert_eq!(buffering["full"], false);
    tokio::time::sleep(Duration::from_secs(10)).await;
    cluster.restart_broker();
    await_edge(&cluster, "drained", |s| {
        s["mode"] == "direct" && s["drainedTotal"].as_u64().unwrap_or(0) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
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
    let mut cluster = start_cluster().await;
    let sensors = two_sensors(&cluster, "MTR-KILL").await;
    let base = base_ms();
    let stop = Arc::new(AtomicBool::new(false));
    let task = stream(
        cluster.url("ingestion"),
        sensors.clone(),
        base,
        stop.clone(),
    );

    // Act: the bus goes down, readings pile up in the edge buffer, and the ingestion process
    // is killed with them (no shutdown, nothing flushed). The stream keeps going: requests
    // fail (not acknowledged) until ingestion is back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.stop_broker();
    await_edge(&cluster, "buffering", |s| {
        s["records"].as_u64().unwrap_or(0) > 20
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill_service("ingestion");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The service needs the bus to start (it creates the topics): the bus comes back first.
    cluster.restart_broker();
    cluster.start_service("ingestion");
    cluster.await_ready("ingestion").await;
    await_edge(&cluster, "drained", |s| s["mode"] == "direct").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = task.await.expect("stream");

    // Assert: everything acknowledged before and after the kill is stored once, in order.
    for s in &sent {
        assert!(s.acked.len() > 60, "a steady stream: {}", s.acked.len());
    }
    assert_stored_once_in_order(&mut cluster, &sensors, &sent, base).await;
}
