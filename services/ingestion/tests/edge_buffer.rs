//! The edge buffer and the circuit breaker, in process: the ingestion service over a bus that
//! the test switches off and on (the embedded log behind a switch), its REST API and its
//! connector sink. The cluster tests (services/mantis/tests/resilience.rs) do the same with a
//! real broker killed and restarted.

mod common;
use async_trait::async_trait;
use common::{register_sensor, register_sensor_of};
use mantis_bus::embedded::EmbeddedBus;
use mantis_bus::{
    Bus, Delivery, OutboundRecord, StartFrom, SubscribeOptions, Subscription, TopicSpec, topics,
};
use mantis_connectors::{ReadingSink, SinkError, Unreadable};
use mantis_domain::{IncomingReading, Quality, Reading, Sensor, SensorRef, SourceProtocol};
use mantis_ingestion::{BreakerConfig, Config, EdgeConfig, Ingestor, IngestorSink};
use mantis_runtime::Infra;
use mantis_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The embedded log behind a switch: while off, every publish fails as an unreachable broker.
struct SwitchedBus {
    inner: EmbeddedBus,
    up: AtomicBool,
    /// Publishes attempted while off.
    refused: AtomicU64,
    /// Records published one at a time (`publish`) while on.
    single: AtomicU64,
    /// Records published in batches (`publish_all`) while on.
    batched: AtomicU64,
    /// Records of this key are refused for good or taken by this script, one entry per record
    /// in publish order (`true`: refused), as a broker refuses a record it finds invalid (a
    /// test double: the embedded log refuses nothing a service sends it).
    poison: std::sync::Mutex<(Option<Vec<u8>>, std::collections::VecDeque<bool>)>,
    /// Milliseconds every batch publish takes (a slow broker).
    latency_ms: AtomicU64,
    /// A topic the broker refuses to create (as under a policy that forbids creating topics).
    uncreatable: std::sync::Mutex<Option<String>>,
}

impl SwitchedBus {
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    fn poison(&self, key: String, script: &[bool]) {
        *self.poison.lock().expect("poison") =
            (Some(key.into_bytes()), script.iter().copied().collect());
    }

    fn is_poison(&self, record: &OutboundRecord) -> bool {
        let mut poison = self.poison.lock().expect("poison");
        let (key, script) = &mut *poison;
        key.is_some()
            && record.topic != DEAD_LETTERS
            && record.key == *key
            && script.pop_front().unwrap_or(false)
    }
}

const DEAD_LETTERS: &str = "dlq.ingestion";

fn invalid() -> mantis_bus::Error {
    mantis_bus::Error::Invalid("test: the broker finds the record invalid".into())
}

#[async_trait]
impl Bus for SwitchedBus {
    async fn ensure_topics(&self, topics: &[TopicSpec]) -> mantis_bus::Result<()> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(mantis_bus::Error::Unavailable(
                "test: the broker is down".into(),
            ));
        }
        let refused = self.uncreatable.lock().expect("uncreatable").clone();
        if topics.iter().any(|t| Some(&t.name) == refused.as_ref()) {
            return Err(mantis_bus::Error::Invalid(
                "test: the broker's policy forbids creating topics".into(),
            ));
        }
        self.inner.ensure_topics(topics).await
    }
    async fn publish(&self, record: OutboundRecord) -> mantis_bus::Result<Delivery> {
        if !self.up.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(mantis_bus::Error::Unavailable(
                "test: the broker is down".into(),
            ));
        }
        if self.is_poison(&record) {
            return Err(invalid());
        }
        self.single.fetch_add(1, Ordering::SeqCst);
        self.inner.publish(record).await
    }
    async fn publish_all(&self, records: &[OutboundRecord]) -> (usize, Option<mantis_bus::Error>) {
        if !self.up.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return (
                0,
                Some(mantis_bus::Error::Unavailable(
                    "test: the broker is down".into(),
                )),
            );
        }
        let latency = self.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        // As a broker: the records before a refused one are written, none after it.
        let good = records
            .iter()
            .position(|r| self.is_poison(r))
            .unwrap_or(records.len());
        self.batched.fetch_add(good as u64, Ordering::SeqCst);
        let (accepted, error) = self.inner.publish_all(&records[..good]).await;
        if error.is_none() && good < records.len() {
            return (accepted, Some(invalid()));
        }
        (accepted, error)
    }
    async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> mantis_bus::Result<Box<dyn Subscription>> {
        self.inner.subscribe(options).await
    }
    async fn topic_offsets(
        &self,
        prefix: &str,
    ) -> mantis_bus::Result<Vec<mantis_bus::TopicOffsets>> {
        self.inner.topic_offsets(prefix).await
    }
    async fn ping(&self) -> mantis_bus::Result<()> {
        if self.up.load(Ordering::SeqCst) {
            self.inner.ping().await
        } else {
            Err(mantis_bus::Error::Unavailable(
                "test: the broker is down".into(),
            ))
        }
    }
}

struct Fixture {
    bus: Arc<SwitchedBus>,
    infra: Infra,
    sensor: Sensor,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        mantis_telemetry::init_test_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = EmbeddedBus::open(dir.path().join("log"))
            .await
            .expect("log");
        let bus = Arc::new(SwitchedBus {
            inner,
            up: AtomicBool::new(true),
            refused: AtomicU64::new(0),
            single: AtomicU64::new(0),
            batched: AtomicU64::new(0),
            poison: std::sync::Mutex::new((None, Default::default())),
            latency_ms: AtomicU64::new(0),
            uncreatable: std::sync::Mutex::new(None),
        });
        let store = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
        let infra = Infra::in_process(bus.clone(), store);
        infra.ensure_topics(&[]).await.expect("topics");
        let sensor = register_sensor(&infra, "PRS-1").await;
        Self {
            bus,
            infra,
            sensor,
            dir,
        }
    }

    fn config(&self, edge: EdgeConfig, breaker: BreakerConfig) -> Config {
        Config {
            bind: "127.0.0.1:0".into(),
            edge_buffer: EdgeConfig {
                enabled: Some(true),
                dir: Some(self.dir.path().join("edge-buffer")),
                retry_initial_ms: 20,
                retry_max_ms: 100,
                ..edge
            },
            circuit_breaker: breaker,
            ..Config::default()
        }
    }

    /// Starts the service with the default edge buffer and circuit breaker.
    async fn start_default(
        &self,
        shutdown: &CancellationToken,
    ) -> (String, Arc<Ingestor>, tokio::task::JoinHandle<()>) {
        self.start(
            self.config(EdgeConfig::default(), BreakerConfig::default()),
            shutdown,
        )
        .await
    }

    /// Starts the service; returns its URL and ingestor.
    async fn start(
        &self,
        config: Config,
        shutdown: &CancellationToken,
    ) -> (String, Arc<Ingestor>, tokio::task::JoinHandle<()>) {
        let (app, ingestor) = mantis_ingestion::build_with_ingestor(self.infra.clone(), config)
            .await
            .expect("ingestion builds");
        let url = format!("http://127.0.0.1:{}", app.port());
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            app.run(token).await.expect("runs");
        });
        (url, ingestor, task)
    }

    /// The values of every reading of the sensor on `sensor.raw`, in log order, once `n` are
    /// there (fails after 30 s).
    async fn await_values(&self, n: usize) -> Vec<f64> {
        self.await_readings(n)
            .await
            .into_iter()
            .map(|r| r.value)
            .collect()
    }

    /// Every reading on `sensor.raw` (of any sensor; in log order within a partition) once `n`
    /// are there, and no more (fails after 30 s).
    async fn await_readings(&self, n: usize) -> Vec<Reading> {
        let mut sub = self
            .infra
            .bus
            .subscribe(SubscribeOptions::new(
                format!("test-{}", uuid()),
                [topics::SENSOR_RAW],
                StartFrom::Earliest,
            ))
            .await
            .expect("subscribe");
        let mut values = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            while values.len() < n {
                let env = sub.next().await.expect("next");
                let r: Reading = self
                    .infra
                    .codec
                    .decode(&env.payload)
                    .await
                    .expect("reading");
                values.push(r);
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "only {} of {n} readings arrived: {values:?}",
            values.len()
        );
        // Nothing more than expected arrives.
        let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
        assert!(extra.is_err(), "more readings than accepted: {extra:?}");
        values
    }
}

fn uuid() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Readings `values` of the sensor, one millisecond apart, as a JSON array.
fn batch(sensor: &Sensor, first_ts: i64, values: &[f64]) -> Value {
    Value::Array(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({"timestamp": first_ts + i as i64, "sensorId": sensor.id.to_string(), "value": v, "unit": "bar"})
            })
            .collect(),
    )
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    http.post(format!("{url}/api/v1/sensors/data"))
        .json(body)
        .send()
        .await
        .expect("ingestion reachable")
}

async fn health(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/health"))
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json")
}

/// Polls `/health` until the edge buffer's status satisfies `check`.
async fn await_edge(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = health(http, url).await["details"]["edgeBuffer"].clone();
        if check(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the edge buffer never became {what}; last status: {last}");
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn values(range: std::ops::Range<i32>) -> Vec<f64> {
    range.map(|i| f64::from(i) / 100.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_are_accepted_while_the_bus_is_down_and_arrive_once_in_order_when_it_is_back() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;

    // Before the outage: straight to the bus.
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts, &values(0..10)))
            .await
            .status(),
        202
    );
    // The bus goes down: every batch is still accepted ...
    f.bus.set_up(false);
    for k in 1..6 {
        let resp = post(
            &http,
            &url,
            &batch(
                &f.sensor,
                ts + k * 10,
                &values(k as i32 * 10..k as i32 * 10 + 10),
            ),
        )
        .await;
        assert_eq!(
            resp.status(),
            202,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
    // ... into the buffer, and /health says so; readiness does not depend on the bus.
    let status = await_edge(&http, &url, "buffering", |s| {
        s["mode"] == "buffering" && s["records"] == 50
    })
    .await;
    assert!(status["diskBytes"].as_u64().unwrap_or(0) > 0, "{status}");
    let ready = http
        .get(format!("{url}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200, "ready while the buffer has room");

    // The bus is back: the buffer drains, and direct publishing resumes after it.
    f.bus.set_up(true);
    await_edge(&http, &url, "drained", |s| {
        s["mode"] == "direct" && s["records"] == 0
    })
    .await;
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts + 60, &values(60..70)))
            .await
            .status(),
        202
    );

    // Every reading once, in the order it was accepted.
    assert_eq!(f.await_values(70).await, values(0..70));
    let status = health(&http, &url).await["details"]["edgeBuffer"].clone();
    assert_eq!(status["drainedTotal"], 50, "{status}");
    // Posted and drained alike in batches, never a record at a time (a round trip per record
    // would let one busy sensor outpace the drain: the buffer would never empty).
    assert_eq!(f.bus.single.load(Ordering::SeqCst), 0);
    assert_eq!(f.bus.batched.load(Ordering::SeqCst), 70);
    assert_eq!(
        status["diskBytes"], 0,
        "a drained buffer gives its disk space back"
    );
    shutdown.cancel();
}

/// A record the bus refuses for good goes to the dead-letter topic `dlq.ingestion` with the
/// reason and the topic it was meant for, whether it was published directly or drained from the
/// buffer; the records after it (of its key too) go on, and nothing that was accepted is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_bus_refuses_for_good_is_dead_lettered_and_the_others_go_on() {
    let f = Fixture::new().await;
    let refused = register_sensor(&f.infra, "PRS-2").await;
    // Of that asset's records, the first of each batch is refused.
    f.bus
        .poison(refused.asset_id.to_string(), &[true, false, true, false]);
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    let reading = |sensor: &Sensor, t: i64, v: f64| json!({"timestamp": t, "sensorId": sensor.id.to_string(), "value": v, "unit": "bar"});

    // Published directly: the refused reading sits between two that are not.
    let direct = json!([
        reading(&f.sensor, ts, 0.01),
        reading(&refused, ts, 5.0),
        reading(&refused, ts + 1, 5.5),
        reading(&f.sensor, ts + 1, 0.02),
    ]);
    let resp = post(&http, &url, &direct).await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    // Buffered while the bus is down, then drained.
    f.bus.set_up(false);
    let buffered = json!([
        reading(&f.sensor, ts + 2, 0.03),
        reading(&refused, ts + 2, 6.0),
        reading(&refused, ts + 3, 6.5),
        reading(&f.sensor, ts + 3, 0.04),
    ]);
    let resp = post(&http, &url, &buffered).await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    await_edge(&http, &url, "buffering", |s| s["records"] == 4).await;
    f.bus.set_up(true);
    await_edge(&http, &url, "drained", |s| {
        s["mode"] == "direct" && s["records"] == 0
    })
    .await;

    // The others arrived, in order; the refused ones did not ...
    let arrived = f.await_readings(6).await;
    let of = |sensor: &Sensor| -> Vec<f64> {
        arrived
            .iter()
            .filter(|r| r.sensor_id == sensor.id)
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(of(&f.sensor), vec![0.01, 0.02, 0.03, 0.04]);
    assert_eq!(of(&refused), vec![5.5, 6.5]);
    // ... and are on the dead-letter topic, as they were meant for `sensor.raw`.
    let mut sub = f
        .infra
        .bus
        .subscribe(SubscribeOptions::new(
            "test-dead-letters",
            [DEAD_LETTERS],
            StartFrom::Earliest,
        ))
        .await
        .expect("the dead-letter topic exists");
    for value in [5.0, 6.0] {
        let env = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("dead-lettered")
            .expect("next");
        let reason =
            String::from_utf8_lossy(env.header(mantis_bus::DLQ_REASON).unwrap_or_default())
                .into_owned();
        assert!(reason.contains("finds the record invalid"), "{reason}");
        assert_eq!(
            env.header(mantis_bus::DLQ_SOURCE_TOPIC),
            Some(topics::SENSOR_RAW.as_bytes())
        );
        assert_eq!(
            env.key.as_deref(),
            Some(refused.asset_id.to_string().as_bytes())
        );
        let dead: Reading = f.infra.codec.decode(&env.payload).await.expect("a reading");
        assert_eq!((dead.sensor_id, dead.value), (refused.id, value));
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
    assert!(
        extra.is_err(),
        "one dead letter per refused record: {extra:?}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_sends_readings_to_the_buffer_without_trying_the_bus() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let breaker = BreakerConfig {
        failure_threshold: 2,
        failure_window_ms: 10_000,
        open_ms: 60_000,
    };
    let (url, ingestor, _task) = f
        .start(f.config(EdgeConfig::default(), breaker), &shutdown)
        .await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    f.bus.set_up(false);

    // The first batch fails on the bus and is buffered; the drainer's retries open the circuit.
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts, &values(0..5)))
            .await
            .status(),
        202
    );
    await_edge(&http, &url, "open", |s| s["circuit"] == "open").await;
    let tried = f.bus.refused.load(Ordering::SeqCst);

    // While open, nothing touches the bus: readings go straight to the buffer.
    for k in 1..4 {
        let body = batch(
            &f.sensor,
            ts + k * 5,
            &values(k as i32 * 5..k as i32 * 5 + 5),
        );
        assert_eq!(post(&http, &url, &body).await.status(), 202);
    }
    let sink = IngestorSink::new(ingestor);
    let reading = IncomingReading {
        timestamp: mantis_domain::timestamp_from_millis(ts + 20).expect("timestamp"),
        asset_id: None,
        sensor: SensorRef::Id(f.sensor.id),
        value: 0.2,
        unit: Some("bar".into()),
        quality: Quality::GOOD,
        metadata: Default::default(),
    };
    let delivered = sink
        .deliver(vec![reading], SourceProtocol::Mqtt)
        .await
        .expect("a connector's batch is accepted into the buffer");
    assert_eq!(delivered.accepted, 1);
    assert_eq!(
        f.bus.refused.load(Ordering::SeqCst),
        tried,
        "the bus was not tried while open"
    );
    let status = health(&http, &url).await["details"]["edgeBuffer"].clone();
    assert_eq!(status["records"], 21, "{status}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_full_buffer_refuses_readings_with_503_and_retry_after() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let edge = EdgeConfig {
        max_bytes: 4_000,
        retry_after_secs: 7,
        ..EdgeConfig::default()
    };
    let (url, ingestor, _task) = f
        .start(f.config(edge, BreakerConfig::default()), &shutdown)
        .await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    f.bus.set_up(false);

    let mut accepted = 0;
    let refusal = loop {
        let resp = post(&http, &url, &batch(&f.sensor, ts + accepted, &[1.0])).await;
        if resp.status() != 202 {
            break resp;
        }
        accepted += 1;
        assert!(accepted < 1000, "the buffer never filled up");
    };
    assert!(accepted > 3, "some readings fit: {accepted}");
    assert_eq!(refusal.status(), 503);
    assert_eq!(refusal.headers()["retry-after"], "7");
    assert_eq!(
        refusal.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refusal.json().await.expect("problem body");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("edge buffer is full"),
        "{problem}"
    );
    let ready = http
        .get(format!("{url}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 503, "not ready while full");
    // A bad reading is still the client's error (400), not a 503 that has it retry a batch
    // that will never pass, although its report to data.quality.issues cannot be kept.
    let bad = post(
        &http,
        &url,
        &batch(&f.sensor, now_ms() + 86_400_000, &[1.0]),
    )
    .await;
    assert_eq!(bad.status(), 400);
    // Connectors are told to retry (they do not acknowledge to their devices).
    let reading = IncomingReading {
        timestamp: mantis_domain::timestamp_from_millis(ts).expect("timestamp"),
        asset_id: None,
        sensor: SensorRef::Id(f.sensor.id),
        value: 1.0,
        unit: Some("bar".into()),
        quality: Quality::GOOD,
        metadata: Default::default(),
    };
    let sink = IngestorSink::new(ingestor);
    let e = sink
        .deliver(vec![reading.clone()], SourceProtocol::Mqtt)
        .await
        .expect_err("full");
    assert!(matches!(e, SinkError::Unavailable(_)), "{e:?}");
    // So is a device's bad reading: its refusal counts as taken (and the device's message
    // acknowledged) only once the report is kept, and here it cannot be.
    let future = IncomingReading {
        timestamp: mantis_domain::timestamp_from_millis(now_ms() + 86_400_000).expect("timestamp"),
        ..reading
    };
    let e = sink
        .deliver(vec![future], SourceProtocol::Mqtt)
        .await
        .expect_err("its report cannot be kept");
    assert!(
        matches!(&e, SinkError::Unavailable(why) if why.contains("could not be reported")),
        "{e:?}"
    );

    // Back up: everything accepted arrives, and readings are taken again.
    f.bus.set_up(true);
    await_edge(&http, &url, "drained", |s| s["mode"] == "direct").await;
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts + 5_000, &[2.0]))
            .await
            .status(),
        202
    );
    let got = f.await_values(accepted as usize + 1).await;
    assert_eq!(got.len(), accepted as usize + 1);
    shutdown.cancel();
}

/// After an outage the drainer may stay just behind a steady intake for long (every batch
/// accepted meanwhile joins the buffer, to keep the order). The space of what it drained must
/// come back meanwhile: here twice the buffer's bound arrives while it drains, and none is
/// refused. (It was returned only once the drainer caught up with no batch in between:
/// this test got a 503 with the bus healthy.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buffer_returns_drained_space_while_it_is_still_behind() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let max_bytes: u64 = 384 << 10;
    let edge = EdgeConfig {
        max_bytes,
        segment_bytes: 64 << 10,
        ..EdgeConfig::default()
    };
    let (url, _, _task) = f
        .start(f.config(edge, BreakerConfig::default()), &shutdown)
        .await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 120_000;
    let per_batch = 50;
    let mut sent = 0i32;
    // Within the sensor's range (an out-of-range reading would add a quality report).
    let levels = |range: std::ops::Range<i32>| -> Vec<f64> {
        range.map(|i| f64::from(i) / 10_000.0).collect()
    };
    let post_next = |sent: i32| {
        let body = batch(
            &f.sensor,
            ts + i64::from(sent),
            &levels(sent..sent + per_batch),
        );
        let (http, url) = (http.clone(), url.clone());
        async move { post(&http, &url, &body).await.status() }
    };

    // An outage fills a quarter of the buffer.
    f.bus.set_up(false);
    loop {
        assert_eq!(post_next(sent).await, 202, "while filling");
        sent += per_batch;
        let status = health(&http, &url).await["details"]["edgeBuffer"].clone();
        if status["diskBytes"].as_u64().unwrap_or(0) > max_bytes / 4 {
            break;
        }
    }
    let outage_bytes = health(&http, &url).await["details"]["edgeBuffer"]["bytes"]
        .as_u64()
        .expect("bytes");

    // The broker is back but slow (every round of the drainer takes a while), and readings
    // keep arriving: each round finds new ones, so the buffer stays in use.
    f.bus.latency_ms.store(40, Ordering::SeqCst);
    f.bus.set_up(true);
    let mut largest = 0;
    let mut on_disk = 0;
    let mut stayed_behind = 0;
    let during = sent;
    while (sent - during) as u64 * outage_bytes < 2 * max_bytes * during as u64 {
        let status = post_next(sent).await;
        assert_eq!(
            status, 202,
            "refused with the bus healthy, after {sent} readings"
        );
        sent += per_batch;
        let edge = health(&http, &url).await["details"]["edgeBuffer"].clone();
        largest = largest.max(edge["diskBytes"].as_u64().unwrap_or(0));
        on_disk = on_disk.max(dir_bytes(&f.dir.path().join("edge-buffer")));
        if edge["mode"] == "buffering" {
            stayed_behind += 1;
        }
        tokio::time::sleep(Duration::from_millis(35)).await;
    }
    assert!(
        stayed_behind > 10,
        "the drainer stayed behind the intake for a while: {stayed_behind} polls"
    );
    assert!(largest < max_bytes, "{largest} of {max_bytes} bytes");
    assert!(
        on_disk < max_bytes,
        "{on_disk} bytes of files (segments, indexes, offsets), bound {max_bytes}"
    );

    f.bus.latency_ms.store(0, Ordering::SeqCst);
    let edge = await_edge(&http, &url, "drained", |s| s["mode"] == "direct").await;
    assert_eq!(edge["diskBytes"], 0, "{edge}");
    assert_eq!(
        f.await_values(sent as usize).await,
        levels(0..sent),
        "every reading once, in order"
    );
    shutdown.cancel();
}

/// A device message that yields no reading is dead-lettered through the edge buffer like any
/// record; where the broker refuses to create `dlq.ingestion`, the letter is logged, counted
/// and dropped, directly or when the buffer drains, and never holds the readings behind it.
/// (Letters landing on the topic: `tests/connectors.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_no_topic_takes_never_holds_the_readings_behind_it() {
    let f = Fixture::new().await;
    *f.bus.uncreatable.lock().expect("uncreatable") = Some(DEAD_LETTERS.into());
    let shutdown = CancellationToken::new();
    let (url, ingestor, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let sink = IngestorSink::new(ingestor);
    let garbage = |origin: &str| Unreadable {
        connector: "line".into(),
        protocol: SourceProtocol::Mqtt,
        origin: origin.into(),
        payload: b"not json".to_vec(),
        reason: "not JSON".into(),
    };
    let ts = now_ms() - 60_000;

    // Directly: the broker refuses to create the topic; the letter is dropped, not retried.
    sink.keep_unreadable(vec![garbage("plant/a")])
        .await
        .expect("taken (dropped)");
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts, &values(0..5)))
            .await
            .status(),
        202
    );

    // While the bus is down the letter waits in the buffer between readings; once the bus is
    // back (and the topic still cannot be created) it is dropped after a few refusals, and the
    // readings behind it arrive all the same.
    f.bus.set_up(false);
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts + 5, &values(5..10)))
            .await
            .status(),
        202
    );
    sink.keep_unreadable(vec![garbage("plant/b")])
        .await
        .expect("buffered");
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts + 10, &values(10..15)))
            .await
            .status(),
        202
    );
    let held = health(&http, &url).await["details"]["edgeBuffer"].clone();
    assert_eq!(held["records"], 11, "the letter is buffered: {held}");
    f.bus.set_up(true);
    await_edge(&http, &url, "drained", |s| s["mode"] == "direct").await;
    assert_eq!(f.await_values(15).await, values(0..15));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_readings_survive_a_restart_and_are_drained_first() {
    let f = Fixture::new().await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    f.bus.set_up(false);
    {
        let shutdown = CancellationToken::new();
        let (url, _, task) = f
            .start(
                f.config(EdgeConfig::default(), BreakerConfig::default()),
                &shutdown,
            )
            .await;
        for k in 0..4 {
            let body = batch(
                &f.sensor,
                ts + k * 10,
                &values(k as i32 * 10..k as i32 * 10 + 10),
            );
            assert_eq!(post(&http, &url, &body).await.status(), 202);
        }
        shutdown.cancel();
        task.await.expect("stops");
    }
    // A new process over the same buffer, with the bus back.
    f.bus.set_up(true);
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    assert_eq!(
        post(&http, &url, &batch(&f.sensor, ts + 40, &values(40..45)))
            .await
            .status(),
        202
    );
    assert_eq!(
        f.await_values(45).await,
        values(0..45),
        "the old readings first, once"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_bodies_are_accepted_and_refusals_point_at_the_line() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    let lines: Vec<String> = (0..3)
        .map(|i| {
            json!({"timestamp": ts + i, "sensorCode": "PRS-1", "value": i, "unit": "bar"})
                .to_string()
        })
        .collect();
    let resp = http
        .post(format!("{url}/api/v1/sensors/data"))
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n") + "\n")
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["accepted"], 3);

    // An unknown sensor on line 3 (after a blank line) is refused with its line.
    let bad = format!(
        "{}\n\n{}\n",
        lines[0],
        json!({"timestamp": ts, "sensorCode": "NOPE", "value": 1})
    );
    let resp = http
        .post(format!("{url}/api/v1/sensors/data"))
        .header("content-type", "application/x-ndjson")
        .body(bad)
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.expect("problem");
    assert_eq!(
        problem["errors"][0]["pointer"], "/line/3/sensorCode",
        "{problem}"
    );
    assert_eq!(f.await_values(3).await, vec![0.0, 1.0, 2.0]);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_code_of_two_tenants_is_taken_only_with_the_asset_that_says_which() {
    let f = Fixture::new().await;
    // Codes are unique within a tenant only: another plant has a PRS-1 too.
    let other = register_sensor_of(&f.infra, "PRS-1", mantis_domain::TenantId::new_random()).await;
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    // The code alone could be either plant's sensor: refused, saying what would settle it.
    let resp = post(
        &http,
        &url,
        &json!({"timestamp": ts, "sensorCode": "PRS-1", "value": 1.0, "unit": "bar"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.expect("problem");
    assert_eq!(problem["errors"][0]["pointer"], "/sensorCode", "{problem}");
    let detail = problem["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("names 2 sensors"), "{detail}");
    // With an asset the code is one sensor: each reading goes to its own plant's sensor.
    for (value, asset) in [
        (3.0, f.sensor.asset_id),
        (7.0, other.asset_id),
        (4.0, f.sensor.asset_id),
    ] {
        let resp = post(
            &http,
            &url,
            &json!({"timestamp": ts + value as i64, "sensorCode": "PRS-1", "assetId": asset,
                    "value": value, "unit": "bar"}),
        )
        .await;
        assert_eq!(
            resp.status(),
            202,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
    // An asset of neither: refused, naming the asset.
    let stranger = mantis_domain::AssetId::new_random();
    let resp = post(
        &http,
        &url,
        &json!({"timestamp": ts, "sensorCode": "PRS-1", "assetId": stranger, "value": 1.0}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.expect("problem");
    assert_eq!(problem["errors"][0]["pointer"], "/assetId", "{problem}");
    // Each plant's sensor got its own readings.
    let mut got: Vec<(bool, f64)> = f
        .await_readings(3)
        .await
        .into_iter()
        .map(|r| (r.sensor_id == other.id, r.value))
        .collect();
    got.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(got, vec![(false, 3.0), (false, 4.0), (true, 7.0)]);
    shutdown.cancel();
}

/// A sensor registered after the service read the sensors (another tenant's, under a code
/// already in use) is found once a reading names its asset: the cache is read again rather
/// than the reading refused on what it knew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_registered_since_the_sensors_were_read_is_found_by_its_asset() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    let reading = |value: f64, asset: Option<mantis_domain::AssetId>| {
        let mut r = json!({"timestamp": ts + value as i64, "sensorCode": "PRS-1",
                           "value": value, "unit": "bar"});
        if let Some(asset) = asset {
            r["assetId"] = json!(asset);
        }
        r
    };
    assert_eq!(post(&http, &url, &reading(1.0, None)).await.status(), 202);
    let other = register_sensor_of(&f.infra, "PRS-1", mantis_domain::TenantId::new_random()).await;
    // The sensors are read again at most every 2 s.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let resp = post(&http, &url, &reading(7.0, Some(other.asset_id))).await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    // The code alone is now known to name two sensors.
    assert_eq!(post(&http, &url, &reading(2.0, None)).await.status(), 400);
    let mut got: Vec<(bool, f64)> = f
        .await_readings(2)
        .await
        .into_iter()
        .map(|r| (r.sensor_id == other.id, r.value))
        .collect();
    got.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(got, vec![(false, 1.0), (true, 7.0)]);
    shutdown.cancel();
}

/// A sensor registered just after the service read the sensors takes readings at once by its
/// id (read alone from the store), not only once the cache may be read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_registered_just_now_takes_readings_by_id_at_once() {
    let f = Fixture::new().await;
    let shutdown = CancellationToken::new();
    let (url, _, _task) = f.start_default(&shutdown).await;
    let http = reqwest::Client::new();
    let ts = now_ms() - 60_000;
    let reading = |sensor: &Sensor, value: f64| json!({"timestamp": ts + value as i64, "sensorId": sensor.id, "value": value, "unit": "bar"});
    assert_eq!(
        post(&http, &url, &reading(&f.sensor, 1.0)).await.status(),
        202
    );
    let fresh = register_sensor(&f.infra, "PRS-2").await;
    let resp = post(&http, &url, &reading(&fresh, 2.0)).await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    // An id nobody registered is still unknown.
    let stranger = Sensor {
        id: mantis_domain::SensorId::new_random(),
        ..fresh.clone()
    };
    assert_eq!(
        post(&http, &url, &reading(&stranger, 3.0)).await.status(),
        400
    );
    let mut got: Vec<(bool, f64)> = f
        .await_readings(2)
        .await
        .into_iter()
        .map(|r| (r.sensor_id == fresh.id, r.value))
        .collect();
    got.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(got, vec![(false, 1.0), (true, 2.0)]);
    shutdown.cancel();
}
