//! Sustained readings/s per device connector on this machine (a bench binary that prints
//! figures, not a test). Each connector reads a device that changes as fast as asked, into a
//! sink that counts (so the figure is the connector's, not the bus's; REST batch ingest through
//! the whole ingestion service is `cargo bench -p mantis-ingestion --bench ingest`):
//!
//! - OPC UA: the demo's in-process async-opcua server, `BENCH_SENSORS` variables rewritten
//!   every `BENCH_PERIOD_MS`; the connector monitors all of them (sampling at the period,
//!   publishing every 50 ms, queues of 20), one data change = one reading;
//! - Modbus TCP: the demo's in-process tokio-modbus server, `BENCH_SENSORS` f32 points (block
//!   reads of up to 125 registers), polled every `BENCH_PERIOD_MS` (not clock-aligned);
//! - MQTT: the demo's publisher through the machine's Mosquitto (127.0.0.1:1883), one JSON batch
//!   message per machine of 10 sensors every `BENCH_PERIOD_MS`, QoS 1 both ways;
//! - MTConnect: the tests' stand-in agent (no real agent can be installed here), three
//!   DataItems observed `BENCH_SENSORS / 3` times each per period, sampled every 10 ms with
//!   `count=1000`.
//!
//! Run: `cargo bench -p mantis --bench connectors` (`BENCH_SECS`, default 10 s measured after
//! 3 s of warm-up; `BENCH_SENSORS`, default 200 per protocol; `BENCH_PERIOD_MS`, default 10).
//! The offered rate is `BENCH_SENSORS × 1000 / BENCH_PERIOD_MS` readings/s per protocol; a
//! connector that keeps up delivers about that (the table shows both). The OPC UA figure is
//! bound by the async-opcua server: it revises sampling intervals to at least 100 ms and takes
//! at most 1 000 monitored items per subscription (the connector opens another subscription
//! for the rest when one is full).

#[path = "../../../crates/mantis-connectors/tests/common/mtconnect_agent.rs"]
mod mtconnect_agent;

use async_trait::async_trait;
use mantis::demo::devices::{Devices, DevicesConfig, Protocol, ServedMachine};
use mantis_connectors::{Connectors, Delivered, ReadingSink, SinkError, SourceConfig, Unreadable};
use mantis_domain::{IncomingReading, Quality, SensorRef, SourceProtocol};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Counts readings per protocol.
#[derive(Default)]
struct CountingSink {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

fn label(p: SourceProtocol) -> &'static str {
    match p {
        SourceProtocol::OpcUa => "OPC UA",
        SourceProtocol::ModbusTcp => "Modbus TCP",
        SourceProtocol::Mqtt => "MQTT",
        SourceProtocol::Mtconnect => "MTConnect",
        _ => "other",
    }
}

#[async_trait]
impl ReadingSink for CountingSink {
    async fn deliver(
        &self,
        batch: Vec<IncomingReading>,
        source: SourceProtocol,
    ) -> Result<Delivered, SinkError> {
        let n = batch.len();
        *self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(label(source))
            .or_default() += n as u64;
        Ok(Delivered {
            accepted: n,
            refused: 0,
        })
    }

    async fn keep_unreadable(&self, messages: Vec<Unreadable>) -> Result<(), SinkError> {
        // The bench's devices send numbers only: anything here is a connector fault, reported
        // (refusing it would have the connector retry and stall the bench).
        eprintln!("unexpected messages that are no readings: {messages:?}");
        Ok(())
    }
}

impl CountingSink {
    fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `machines` machines of 10 sensors served over `protocol`.
fn machines(protocol: Protocol, prefix: &str, machines: usize) -> Vec<ServedMachine> {
    (0..machines)
        .map(|m| ServedMachine {
            code: format!("{prefix}-{m:03}"),
            sensors: (0..10)
                .map(|s| (format!("{prefix}-{m:03}-S{s}"), "mm/s".to_owned()))
                .collect(),
            protocol,
        })
        .collect()
}

/// The demo's source with the bench's intervals.
fn tuned(source: SourceConfig, period_ms: u64) -> anyhow::Result<SourceConfig> {
    let mut v = serde_json::to_value(&source)?;
    let period = period_ms as f64;
    match &source {
        SourceConfig::OpcUa(_) => {
            v["sampling_interval_ms"] = period.into();
            v["publishing_interval_ms"] = 50.0.into();
            v["queue_size"] = 20.into();
        }
        SourceConfig::Modbus(_) => {
            v["poll_interval_ms"] = period_ms.into();
            // Polls back to back at the period (the demo aligns them to its sampling clock).
            v["poll_offset_ms"] = serde_json::Value::Null;
        }
        _ => {}
    }
    Ok(serde_json::from_value(v)?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let secs = env_or("BENCH_SECS", 10);
    let sensors = env_or("BENCH_SENSORS", 200).max(10) as usize;
    let period_ms = env_or("BENCH_PERIOD_MS", 10).max(1);
    let per_protocol = sensors / 10;
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();

    let mut served = machines(Protocol::OpcUa, "UA", per_protocol);
    served.extend(machines(Protocol::Modbus, "MB", per_protocol));
    served.extend(machines(Protocol::Mqtt, "MQ", per_protocol));
    let devices = Devices::start(
        &DevicesConfig::default(),
        &served,
        Duration::from_millis(period_ms),
        dir.path(),
        shutdown.clone(),
    )
    .await?;
    let sink = Arc::new(CountingSink::default());
    let connectors = Connectors::new(sink.clone());
    let mut protocols = Vec::new();
    for source in devices.sources() {
        protocols.push(match &source {
            SourceConfig::OpcUa(_) => "OPC UA",
            SourceConfig::Modbus(_) => "Modbus TCP",
            SourceConfig::Mqtt(_) => "MQTT",
            SourceConfig::MtConnect(_) => "MTConnect",
        });
        connectors.add(tuned(source, period_ms)?)?;
    }
    if !protocols.contains(&"MQTT") {
        eprintln!("no MQTT broker on 127.0.0.1:1883: the MQTT row is left out");
    }

    // MTConnect: the stand-in agent, observed by the driver below.
    let agent: mtconnect_agent::Shared =
        Arc::new(Mutex::new(mtconnect_agent::Agent::new(1_000_000)));
    let agent_url = mtconnect_agent::serve(agent.clone()).await;
    connectors.add(serde_json::from_value(serde_json::json!({
        "kind": "mtconnect", "name": "bench-mtconnect", "url": agent_url,
        "poll_interval_ms": 10, "count": 1000,
        "data_items": [
            {"sensor": "MTC-X", "data_item": "f01_Xact"},
            {"sensor": "MTC-SPEED", "data_item": "f01_S1speed"},
            {"sensor": "MTC-LOAD", "data_item": "f01_S1load"},
        ],
    }))?)?;
    protocols.push("MTConnect");
    let runner = {
        let (c, t) = (connectors.clone(), shutdown.clone());
        tokio::spawn(async move { c.run(t).await })
    };
    devices.go_live();

    // The driver: every period, a new value for every sensor of every machine.
    let published = Arc::new(AtomicU64::new(0));
    let driver = {
        let (stop, published, agent) = (shutdown.clone(), published.clone(), agent.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut k = 0u64;
            while !stop.is_cancelled() {
                tick.tick().await;
                k += 1;
                let now = chrono::Utc::now();
                for m in &served {
                    let readings: Vec<(String, IncomingReading)> = m
                        .sensors
                        .iter()
                        .map(|(code, unit)| {
                            (
                                code.clone(),
                                IncomingReading {
                                    timestamp: now,
                                    asset_id: None,
                                    sensor: SensorRef::Code(code.clone()),
                                    value: (k % 1000) as f64 * 0.01,
                                    unit: Some(unit.clone()),
                                    quality: Quality::GOOD,
                                    metadata: BTreeMap::new(),
                                },
                            )
                        })
                        .collect();
                    devices.publish(&m.code, &readings).await;
                }
                let mut a = agent
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for i in 0..per_protocol * 10 / 3 {
                    let v = format!("{}", (k as usize * 7 + i) % 1000);
                    a.push("f01_Xact", &v);
                    a.push("f01_S1speed", &v);
                    a.push("f01_S1load", &v);
                }
                published.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let (t0, c0, p0) = (
        Instant::now(),
        sink.snapshot(),
        published.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (elapsed, c1, p1) = (
        t0.elapsed().as_secs_f64(),
        sink.snapshot(),
        published.load(Ordering::Relaxed),
    );
    let statuses = connectors.statuses();
    shutdown.cancel();
    let _ = driver.await;
    let _ = tokio::time::timeout(Duration::from_secs(15), runner).await;

    let offered_per_protocol = (per_protocol * 10) as f64 * (p1 - p0) as f64 / elapsed;
    println!(
        "connectors, {secs} s: {} sensors per protocol, a new value every {period_ms} ms \
         (driver ticks achieved: {:.0}/s)",
        per_protocol * 10,
        (p1 - p0) as f64 / elapsed
    );
    println!(
        "{:<12} {:>16} {:>18}",
        "connector", "offered/s", "delivered/s"
    );
    for p in protocols {
        let n = c1.get(p).copied().unwrap_or(0) - c0.get(p).copied().unwrap_or(0);
        let offered = if p == "MTConnect" {
            (per_protocol * 10 / 3 * 3) as f64 * (p1 - p0) as f64 / elapsed
        } else {
            offered_per_protocol
        };
        println!("{p:<12} {offered:>16.0} {:>18.0}", n as f64 / elapsed);
    }
    for s in statuses {
        if let Some(e) = &s.last_error {
            println!("{} ({}): last error: {e}", s.name, s.state.as_str());
        }
    }
    Ok(())
}
