//! Preprocessing throughput on this machine (a bench binary that prints figures, not a test):
//! a backlog of readings on the embedded log is read by the preprocessing service, which
//! stores them raw in SQLite on disk (`synchronous = FULL`, as an edge box runs it), windows
//! them, conditions each window and publishes and stores it. Timed until every reading is in
//! the database.
//!
//! Run: `cargo bench -p mantis-preprocessing --bench pipeline` (`PRE_BENCH_SENSORS`, default
//! 200; `PRE_BENCH_SECONDS` of readings at 10 Hz per sensor, default 100: 200 000 readings).

use mantis_bus::embedded::EmbeddedBus;
use mantis_bus::{Bus, TraceContext};
use mantis_domain::{AssetId, Quality, Reading, SensorId, SensorType, SourceProtocol};
use mantis_preprocessing::Config;
use mantis_runtime::{Infra, Publisher};
use mantis_store::Store;
use mantis_store::sqlite::SqliteStore;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let sensors = env("PRE_BENCH_SENSORS", 200);
    let seconds = env("PRE_BENCH_SECONDS", 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let bus: Arc<dyn Bus> = Arc::new(
        EmbeddedBus::open(dir.path().join("log"))
            .await
            .expect("log opens"),
    );
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("mantis.db"))
            .await
            .expect("sqlite opens"),
    );
    let infra = Infra::in_process(bus, store.clone());
    infra.ensure_topics(&[]).await.expect("topics");

    // The backlog: `sensors` sensors at 10 Hz for `seconds`, in time order.
    let asset = AssetId::new_random();
    let ids: Vec<SensorId> = (0..sensors).map(|_| SensorId::new_random()).collect();
    let t0 = chrono::Utc::now() - chrono::Duration::seconds(seconds as i64 + 3600);
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "bench");
    let total = sensors * seconds * 10;
    let mut batch = Vec::with_capacity(1000);
    for step in 0..seconds * 10 {
        for (i, sensor) in ids.iter().enumerate() {
            let reading = Reading {
                timestamp: t0 + chrono::Duration::milliseconds(step as i64 * 100),
                asset_id: asset,
                sensor_id: *sensor,
                sensor_code: format!("S{i}"),
                sensor_type: SensorType::Temperature,
                value: 20.0 + (step as f64 / 50.0).sin(),
                unit: "C".into(),
                quality: Quality::GOOD,
                source: SourceProtocol::Rest,
                metadata: Default::default(),
            };
            batch.push(
                publisher
                    .to_record(
                        Some(sensor.to_string()),
                        &reading,
                        TraceContext::new_root(),
                        vec![],
                    )
                    .expect("encoded"),
            );
            if batch.len() == 1000 {
                let (n, e) = publisher.send_all(&batch).await;
                assert!(e.is_none() && n == batch.len(), "published: {e:?}");
                batch.clear();
            }
        }
    }
    let (n, e) = publisher.send_all(&batch).await;
    assert!(e.is_none() && n == batch.len(), "published: {e:?}");
    println!("{total} readings of {sensors} sensors on the log; preprocessing them");

    let config = Config {
        bind: "127.0.0.1:0".into(),
        window_secs: 10,
        ..Config::default()
    };
    let app = mantis_preprocessing::build(infra.clone(), config)
        .await
        .expect("built");
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let from = t0 - chrono::Duration::seconds(1);
    let to = t0 + chrono::Duration::seconds(seconds as i64 + 1);
    let span = (to - from).num_milliseconds();
    let stored = || async {
        let mut n = 0u64;
        for sensor in &ids {
            n += store
                .reading_buckets(*sensor, from, to, span)
                .await
                .expect("counted")
                .iter()
                .map(|b| b.count)
                .sum::<u64>();
        }
        n
    };
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let n = stored().await;
        if n >= total as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {n} of {total} stored after 30 min"
        );
    }
    let took = started.elapsed();
    let windows = store.count_windows(None).await.expect("windows");
    println!(
        "stored {total} readings and {windows} windows in {:.2} s: {:.0} readings/s",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    shutdown.cancel();
    let _ = running.await;
}
