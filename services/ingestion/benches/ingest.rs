//! Sustained ingest throughput on this machine (a bench binary that prints figures, not a
//! test): REST batches (JSON arrays and NDJSON) into the ingestion service over the embedded
//! log, then the same while the bus is down (every batch goes to the edge buffer, one fsync
//! per batch), then the drain of that buffer when the bus is back.
//!
//! The bus is the embedded log, or a Kafka-protocol broker when `MANTIS_TEST_KAFKA_BROKERS`
//! is set (the cluster mode's path: `MANTIS_TEST_KAFKA_BROKERS=127.0.0.1:9092`, e.g. tansu).
//!
//! Run: `cargo bench -p mantis-ingestion --bench ingest` (`INGEST_BENCH_SECS`, default 10 s
//! per phase with the bus up; `INGEST_BENCH_BUFFER_SECS`, default 3 s with the bus down, whose
//! backlog the drain phase then works off; `INGEST_BENCH_CLIENTS`, default 4;
//! `INGEST_BENCH_BATCH`, default 1000).

use async_trait::async_trait;
use mantis_bus::embedded::EmbeddedBus;
use mantis_bus::kafka::{KafkaBus, KafkaConfig};
use mantis_bus::{Bus, Delivery, OutboundRecord, SubscribeOptions, Subscription, TopicSpec};
use mantis_domain::{Asset, AssetId, Criticality, Sensor, SensorId, SensorType};
use mantis_ingestion::{Config, EdgeConfig};
use mantis_runtime::Infra;
use mantis_store::sqlite::SqliteStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A bus behind a switch (off: publishes fail as with an unreachable broker).
struct SwitchedBus {
    inner: Arc<dyn Bus>,
    up: AtomicBool,
}

#[async_trait]
impl Bus for SwitchedBus {
    async fn ensure_topics(&self, topics: &[TopicSpec]) -> mantis_bus::Result<()> {
        self.inner.ensure_topics(topics).await
    }
    async fn publish(&self, record: OutboundRecord) -> mantis_bus::Result<Delivery> {
        if !self.up.load(Ordering::SeqCst) {
            return Err(mantis_bus::Error::Unavailable(
                "bench: the bus is down".into(),
            ));
        }
        self.inner.publish(record).await
    }
    // Forwarded: the default publishes one record at a time (a round trip each on Kafka), which
    // is not what ingestion's batches and the drainer get from the real bus.
    async fn publish_all(&self, records: &[OutboundRecord]) -> (usize, Option<mantis_bus::Error>) {
        if !self.up.load(Ordering::SeqCst) {
            return (
                0,
                Some(mantis_bus::Error::Unavailable(
                    "bench: the bus is down".into(),
                )),
            );
        }
        self.inner.publish_all(records).await
    }
    async fn subscribe(&self, o: SubscribeOptions) -> mantis_bus::Result<Box<dyn Subscription>> {
        self.inner.subscribe(o).await
    }
    async fn topic_offsets(&self, p: &str) -> mantis_bus::Result<Vec<mantis_bus::TopicOffsets>> {
        self.inner.topic_offsets(p).await
    }
    async fn ping(&self) -> mantis_bus::Result<()> {
        self.inner.ping().await
    }
}

struct Load {
    url: String,
    sensors: Vec<String>,
    clients: usize,
    batch: usize,
    next_ts: Arc<AtomicI64>,
}

impl Load {
    fn body(&self, ndjson: bool) -> (Vec<u8>, &'static str) {
        let first = self.next_ts.fetch_add(self.batch as i64, Ordering::Relaxed);
        let items: Vec<String> = (0..self.batch)
            .map(|i| {
                format!(
                    r#"{{"timestamp":{},"sensorId":"{}","value":{:.2},"unit":"bar"}}"#,
                    first + i as i64,
                    self.sensors[i % self.sensors.len()],
                    1.0 + (i % 50) as f64 * 0.1
                )
            })
            .collect();
        if ndjson {
            (items.join("\n").into_bytes(), "application/x-ndjson")
        } else {
            (
                format!("[{}]", items.join(",")).into_bytes(),
                "application/json",
            )
        }
    }

    /// Posts batches from `clients` tasks for `secs`; returns readings/s and batches/s.
    async fn run(self: &Arc<Self>, secs: f64, ndjson: bool) -> (f64, f64) {
        let accepted = Arc::new(AtomicU64::new(0));
        let batches = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..self.clients {
            let (load, accepted, batches) = (self.clone(), accepted.clone(), batches.clone());
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                while Instant::now() < deadline {
                    let (body, ct) = load.body(ndjson);
                    let resp = http
                        .post(format!("{}/api/v1/sensors/data", load.url))
                        .header("content-type", ct)
                        .body(body)
                        .send()
                        .await
                        .expect("ingestion reachable");
                    assert_eq!(
                        resp.status(),
                        202,
                        "{}",
                        resp.text().await.unwrap_or_default()
                    );
                    accepted.fetch_add(load.batch as u64, Ordering::Relaxed);
                    batches.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        let elapsed = started.elapsed().as_secs_f64();
        (
            accepted.load(Ordering::Relaxed) as f64 / elapsed,
            batches.load(Ordering::Relaxed) as f64 / elapsed,
        )
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = env_or("INGEST_BENCH_SECS", 10.0);
    let buffer_secs: f64 = env_or("INGEST_BENCH_BUFFER_SECS", 3.0);
    let clients: usize = env_or("INGEST_BENCH_CLIENTS", 4);
    let batch: usize = env_or("INGEST_BENCH_BATCH", 1000);
    let dir = tempfile::tempdir()?;
    let (inner, bus_name): (Arc<dyn Bus>, &str) = match std::env::var("MANTIS_TEST_KAFKA_BROKERS") {
        Ok(brokers) => (
            Arc::new(KafkaBus::new(KafkaConfig::new(
                &brokers,
                "mantis-ingest-bench",
            ))?),
            "Kafka",
        ),
        Err(_) => (
            Arc::new(EmbeddedBus::open(dir.path().join("log")).await?),
            "embedded log",
        ),
    };
    let bus = Arc::new(SwitchedBus {
        inner,
        up: AtomicBool::new(true),
    });
    let store = Arc::new(SqliteStore::open(dir.path().join("mantis.db")).await?);
    let infra = Infra::in_process(bus.clone(), store);
    infra.ensure_topics(&[]).await?;
    let mut sensors = Vec::new();
    for n in 0..8 {
        let asset = Asset {
            id: AssetId::new_random(),
            tenant_id: Default::default(),
            code: format!("BENCH-{n}"),
            name: format!("Pump {n}"),
            asset_type: "pump".into(),
            location: String::new(),
            criticality: Criticality::High,
        };
        infra.store.upsert_asset(&asset).await?;
        let sensor = Sensor {
            id: SensorId::new_random(),
            asset_id: asset.id,
            code: format!("BENCH-{n}-PRS"),
            sensor_type: SensorType::Pressure,
            unit: "bar".into(),
            min_value: 0.0,
            max_value: 10.0,
            sampling_rate_hz: 100.0,
        };
        infra.store.upsert_sensor(&sensor).await?;
        sensors.push(sensor.id.to_string());
    }
    let config = Config {
        bind: "127.0.0.1:0".into(),
        edge_buffer: EdgeConfig {
            enabled: Some(true),
            dir: Some(dir.path().join("edge-buffer")),
            max_bytes: 4 << 30,
            retry_max_ms: 200,
            ..EdgeConfig::default()
        },
        // A trial publish 1 s after the circuit opened (not the 30 s seed), so that the drain
        // phase measures draining rather than waiting.
        circuit_breaker: mantis_ingestion::BreakerConfig {
            open_ms: 1_000,
            ..Default::default()
        },
        ..Config::default()
    };
    let (app, ingestor) = mantis_ingestion::build_with_ingestor(infra.clone(), config).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let load = Arc::new(Load {
        url,
        sensors,
        clients,
        batch,
        next_ts: Arc::new(AtomicI64::new(
            chrono::Utc::now().timestamp_millis() - 3_600_000,
        )),
    });
    println!(
        "ingest bench: {clients} clients, batches of {batch} readings, {secs} s per phase ({buffer_secs} s with the bus down)"
    );

    // Offered faster than the bus takes them, readings go to the edge buffer (when a publish
    // outlasts its timeout) and stay behind its backlog: each phase says how many did.
    let buffered = || ingestor.edge().status().records;
    let (rps, bps) = load.run(secs, false).await;
    println!(
        "REST JSON batches, bus up ({bus_name}): {rps:>9.0} readings/s  ({bps:.1} batches/s; {} records in the edge buffer)",
        buffered()
    );
    let (rps, bps) = load.run(secs, true).await;
    println!(
        "REST NDJSON batches, bus up ({bus_name}): {rps:>9.0} readings/s  ({bps:.1} batches/s; {} records in the edge buffer)",
        buffered()
    );

    bus.up.store(false, Ordering::SeqCst);
    let (rps, bps) = load.run(buffer_secs, false).await;
    let status = ingestor.edge().status();
    println!(
        "REST JSON batches, bus down (edge buffer):    {rps:>9.0} readings/s  ({bps:.1} batches/s; {} records, {:.1} MiB on disk)",
        status.records,
        status.disk_bytes as f64 / (1 << 20) as f64
    );
    let backlog = status.records;
    let before = status.drained_total;
    bus.up.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while ingestor.edge().status().mode != "direct" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = ingestor.edge().status().drained_total - before;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "edge buffer drain to the bus ({bus_name}): {:>9.0} records/s  ({drained} of {backlog} records in {elapsed:.1} s)",
        drained as f64 / elapsed
    );
    shutdown.cancel();
    running.await??;
    Ok(())
}
