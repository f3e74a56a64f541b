//! Batch import of history files: into the embedded platform (every row lands once, an
//! interrupted import resumes without duplicates), through the `mantis import` command line,
//! and from S3 — a real S3 server on loopback (`moto_server`, from PyPI's `moto[server]`,
//! pinned in services/mantis/tests/peers/requirements.txt), started by the test.

mod common;

use common::s3::S3Server;
use mantis::{Platform, Settings};
use mantis_bus::{Bus, StartFrom, SubscribeOptions, topics};
use mantis_domain::{Asset, AssetId, Criticality, Reading, Sensor, SensorId, SensorType};
use mantis_ingestion::import::{HistorySource, ImportOptions, ImportSummary, Progress, import};
use mantis_store::Store;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn settings(dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.infra.data_dir = dir.to_path_buf();
    for bind in [
        &mut s.ingestion.bind,
        &mut s.preprocessing.bind,
        &mut s.features.bind,
        &mut s.anomaly.bind,
        &mut s.rul.bind,
        &mut s.orchestrator.bind,
        &mut s.gateway.bind,
    ] {
        *bind = "127.0.0.1:0".into();
    }
    s
}

/// A motor with one vibration sensor `code` (mm/s, 0..=100), straight into the store.
async fn register_sensor(store: &dyn Store, code: &str) -> Sensor {
    let asset = Asset {
        id: AssetId::new_random(),
        tenant_id: Default::default(),
        code: format!("{code}-ASSET"),
        name: format!("Motor {code}"),
        asset_type: "motor".into(),
        location: String::new(),
        criticality: Criticality::High,
    };
    store.upsert_asset(&asset).await.expect("asset");
    let sensor = Sensor {
        id: SensorId::new_random(),
        asset_id: asset.id,
        code: code.into(),
        sensor_type: SensorType::Vibration,
        unit: "mm/s".into(),
        min_value: 0.0,
        max_value: 100.0,
        sampling_rate_hz: 1.0,
    };
    store.upsert_sensor(&sensor).await.expect("sensor");
    sensor
}

/// Two hours ago, aligned to the minute.
fn base_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis() - 2 * 3_600_000;
    now - now.rem_euclid(60_000)
}

/// History of `sensor` as CSV: `rows` readings one second apart from `first_ts`.
fn csv_history(sensor: &str, first_ts: i64, rows: usize) -> String {
    let mut out = String::from("timestamp,sensorCode,value,unit,quality\n");
    for i in 0..rows {
        out.push_str(&format!(
            "{},{sensor},{:.3},mm/s,{}\n",
            first_ts + i as i64 * 1000,
            2.0 + (i % 17) as f64 * 0.01,
            90 + i % 10
        ));
    }
    out
}

/// The same as a JSON array (the REST shape), with RFC 3339 timestamps.
fn json_history(sensor: &str, first_ts: i64, rows: usize) -> String {
    let items: Vec<serde_json::Value> = (0..rows)
        .map(|i| {
            let ts = mantis_domain::timestamp_from_millis(first_ts + i as i64 * 1000)
                .expect("timestamp");
            serde_json::json!({"timestamp": ts.to_rfc3339(), "sensorCode": sensor, "value": 3.0, "unit": "mm/s"})
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("json")
}

/// Counts the readings of `sensor` on `sensor.raw`, failing if fewer than `expected` arrive
/// within 60 s or more arrive after them.
async fn count_on_bus(
    bus: &dyn Bus,
    codec: &mantis_codec::Codec,
    sensor: SensorId,
    expected: usize,
) {
    let group = format!("import-test-{}", rand::random::<u64>());
    let mut sub = bus
        .subscribe(SubscribeOptions::new(
            group,
            [topics::SENSOR_RAW],
            StartFrom::Earliest,
        ))
        .await
        .expect("subscribe");
    let mut seen = std::collections::BTreeMap::<i64, usize>::new();
    let mut count = 0;
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while count < expected {
            let env = sub.next().await.expect("record");
            let r: Reading = codec.decode(&env.payload).await.expect("reading");
            if r.sensor_id == sensor {
                count += 1;
                *seen.entry(r.timestamp.timestamp_millis()).or_default() += 1;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{count} of {expected} readings on sensor.raw");
    let extra = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let env = sub.next().await.expect("record");
            let r: Reading = codec.decode(&env.payload).await.expect("reading");
            if r.sensor_id == sensor {
                return r;
            }
        }
    })
    .await;
    assert!(extra.is_err(), "a reading was published twice: {extra:?}");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "published twice: {twice:?}");
}

/// Waits until the store holds `expected` readings of `sensor` from `from` on.
async fn await_stored(store: &dyn Store, sensor: SensorId, from: i64, expected: usize) {
    let from_ts = mantis_domain::timestamp_from_millis(from).expect("from");
    let to_ts = mantis_domain::timestamp_from_millis(from + 86_400_000).expect("to");
    let mut stored = 0;
    for _ in 0..600 {
        stored = store
            .list_readings(sensor, from_ts, to_ts)
            .await
            .expect("readings")
            .len();
        if stored >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, expected, "readings stored once each");
}

/// The platform running (embedded) on a fresh data directory, and a directory of history
/// files to import.
struct Running {
    _data: tempfile::TempDir,
    history: tempfile::TempDir,
    infra: mantis_runtime::Infra,
    ingestor: Arc<mantis_ingestion::Ingestor>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<mantis_runtime::Result<()>>,
}

impl Running {
    async fn start() -> Self {
        mantis_telemetry::init_test_tracing();
        let data = tempfile::tempdir().expect("tempdir");
        let history = tempfile::tempdir().expect("tempdir");
        let platform = Platform::build(&settings(data.path()))
            .await
            .expect("builds");
        let (infra, ingestor) = (platform.infra.clone(), platform.ingestor.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(platform.run(shutdown.clone()));
        Self {
            _data: data,
            history,
            infra,
            ingestor,
            shutdown,
            task,
        }
    }

    /// Imports `source`, stopped (as by an operator) once `stop_at` readings are accepted;
    /// `seen` gets every progress report.
    async fn import(
        &self,
        source: &HistorySource,
        options: &ImportOptions,
        stop_at: Option<u64>,
        seen: &mut Vec<Progress>,
    ) -> ImportSummary {
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        import(
            self.ingestor.clone(),
            self.infra.store.as_ref(),
            source,
            options,
            &mut |p: &Progress| {
                seen.push(p.clone());
                if stop_at.is_some_and(|n| p.accepted >= n) {
                    stopper.cancel();
                }
            },
            &stop,
        )
        .await
        .expect("an import run")
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops")
            .expect("joins")
            .expect("clean stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_thousands_of_rows_lands_every_row_once_and_resumes_where_it_was_stopped() {
    let plant = Running::start().await;
    let (store, bus, codec) = (
        plant.infra.store.clone(),
        plant.infra.bus.clone(),
        plant.infra.codec.clone(),
    );
    let history = &plant.history;
    let sensor = register_sensor(store.as_ref(), "IMP-VIB").await;

    // Three files: 2 500 CSV rows (one of them unparsable), 300 as a JSON array, 200 as NDJSON
    // (with a line of 100 kB among them, not held whole: skipped as invalid).
    let base = base_ms();
    let mut csv = csv_history("IMP-VIB", base, 2_500);
    csv.push_str("not-a-time,IMP-VIB,1.0,mm/s,\n");
    std::fs::write(history.path().join("2026-01-a.csv"), csv).expect("write");
    std::fs::write(
        history.path().join("2026-01-b.json"),
        json_history("IMP-VIB", base + 2_500_000, 300),
    )
    .expect("write");
    let mut ndjson: String = (0..200)
        .map(|i| {
            format!(
                "{{\"timestamp\":{},\"sensorId\":\"{}\",\"value\":4.0,\"unit\":\"mm/s\"}}\n",
                base + 2_800_000 + i * 1000,
                sensor.id
            )
        })
        .collect();
    let middle = ndjson
        .match_indices('\n')
        .nth(99)
        .map(|(i, _)| i + 1)
        .expect("line 100");
    ndjson.insert_str(middle, &format!("{}\n", "x".repeat(100_000)));
    std::fs::write(history.path().join("2026-01-c.ndjson"), ndjson).expect("write");
    std::fs::write(history.path().join("README.txt"), "not history").expect("write");
    let source = HistorySource::parse(&history.path().display().to_string()).expect("source");
    let options = ImportOptions {
        batch_size: 250,
        ..ImportOptions::default()
    };

    // Act: the first run is stopped after 1 000 readings ...
    let mut seen = Vec::new();
    let first = plant
        .import(&source, &options, Some(1_000), &mut seen)
        .await;
    assert!(first.interrupted, "{first:?}");
    assert_eq!(first.progress.accepted, 1_000);
    assert!(
        seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done),
        "progress only grows"
    );

    // ... and the second one resumes there and finishes.
    let second = plant.import(&source, &options, None, &mut Vec::new()).await;
    assert!(second.resumed && !second.interrupted, "{second:?}");
    assert_eq!(second.progress.accepted, 2_000);
    assert_eq!(second.progress.files_done, 3, "README.txt is not history");
    assert_eq!(second.progress.invalid, 2);
    assert!(
        second.errors[0].contains("2026-01-a.csv: line 2502: /timestamp"),
        "{:?}",
        second.errors
    );
    assert!(
        second.errors[1].contains("2026-01-c.ndjson: line 101: /: a line longer than 65536 bytes"),
        "{:?}",
        second.errors
    );
    assert_eq!(second.progress.bytes_done, second.progress.bytes_total);

    // Assert: every row once on the bus, and once in the store.
    count_on_bus(bus.as_ref(), &codec, sensor.id, 3_000).await;
    await_stored(store.as_ref(), sensor.id, base, 3_000).await;
    plant.stop().await;
}

/// A JSON array file is read item by item as it arrives (not whole), with items that are no
/// readings counted apart, and an import stopped inside it resumes after its last accepted
/// item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_is_imported_item_by_item_and_resumes_inside_the_array() {
    let plant = Running::start().await;
    let (store, bus, codec) = (
        plant.infra.store.clone(),
        plant.infra.bus.clone(),
        plant.infra.codec.clone(),
    );
    let history = &plant.history;
    let sensor = register_sensor(store.as_ref(), "ARR-VIB").await;
    let base = base_ms();
    // 1 200 readings over several read chunks, and two items that are no readings.
    let mut text = json_history("ARR-VIB", base, 1_200);
    let close = text.rfind(']').expect("an array");
    text.replace_range(close.., r#", 42, {"sensorCode": "ARR-VIB"}]"#);
    std::fs::write(history.path().join("array.json"), text).expect("write");
    let source = HistorySource::parse(&history.path().display().to_string()).expect("source");
    let options = ImportOptions {
        batch_size: 250,
        ..ImportOptions::default()
    };

    let first = plant
        .import(&source, &options, Some(500), &mut Vec::new())
        .await;
    assert!(first.interrupted, "{first:?}");
    assert_eq!(first.progress.accepted, 500);
    let second = plant.import(&source, &options, None, &mut Vec::new()).await;
    assert!(second.resumed && !second.interrupted, "{second:?}");
    assert_eq!(second.progress.accepted, 700);
    assert_eq!(second.progress.invalid, 2, "{:?}", second.errors);
    assert!(
        second.errors.iter().any(|e| e.contains("item 1200")),
        "{:?}",
        second.errors
    );
    count_on_bus(bus.as_ref(), &codec, sensor.id, 1_200).await;
    await_stored(store.as_ref(), sensor.id, base, 1_200).await;
    plant.stop().await;
}

/// Runs `mantis import` with `args` and `env` over the data directory `data`.
fn mantis_import(data: &Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mantis"))
        .arg("import")
        .args(args)
        .env("MANTIS_INFRA__DATA_DIR", data)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("mantis runs")
}

/// Opens the data directory's store and log after the command ended.
async fn open_embedded(data: &Path) -> (Arc<dyn Store>, mantis_bus::embedded::EmbeddedBus) {
    let store = mantis_store::sqlite::SqliteStore::open(data.join("mantis.db"))
        .await
        .expect("database");
    let bus = mantis_bus::embedded::EmbeddedBus::open(data.join("log"))
        .await
        .expect("log");
    (Arc::new(store), bus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_imports_a_csv_file_and_a_second_run_adds_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let history = tempfile::tempdir().expect("tempdir");
    let sensor = {
        let (store, bus) = open_embedded(data.path()).await;
        bus.ensure_topics(&topics::catalogue())
            .await
            .expect("topics");
        register_sensor(store.as_ref(), "CLI-VIB").await
    };
    let file = history.path().join("history.csv");
    std::fs::write(&file, csv_history("CLI-VIB", base_ms(), 1_200)).expect("write");

    let out = mantis_import(
        data.path(),
        &[&file.display().to_string(), "--batch-size", "100"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("done: 1200 readings accepted"), "{stderr}");
    assert!(stderr.contains("100.0%"), "a progress line: {stderr}");
    let again = mantis_import(data.path(), &[&file.display().to_string()], &[]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("done: 0 readings accepted"), "{stderr}");
    assert!(stderr.contains("(resumed)"), "{stderr}");

    let (_, bus) = open_embedded(data.path()).await;
    count_on_bus(&bus, &mantis_codec::Codec::embedded(), sensor.id, 1_200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_files_are_imported_from_s3() {
    let s3 = S3Server::start();
    s3.create_bucket("history").await;
    let base = base_ms();
    s3.put(
        "history/plant-a/2026-01.csv",
        csv_history("S3-VIB", base, 700),
    )
    .await;
    s3.put(
        "history/plant-a/2026-02.csv",
        csv_history("S3-VIB", base + 700_000, 300),
    )
    .await;
    s3.put("history/other/ignored.csv", csv_history("S3-VIB", base, 5))
        .await;

    let data = tempfile::tempdir().expect("tempdir");
    let sensor = {
        let (store, bus) = open_embedded(data.path()).await;
        bus.ensure_topics(&topics::catalogue())
            .await
            .expect("topics");
        register_sensor(store.as_ref(), "S3-VIB").await
    };
    let env = [
        ("AWS_ENDPOINT", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
    ];
    let out = mantis_import(
        data.path(),
        &["s3://history/plant-a", "--format", "csv", "-q"],
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("done: 1000 readings accepted"), "{stderr}");
    assert!(stderr.contains("2/2 files"), "{stderr}");

    let (_, bus) = open_embedded(data.path()).await;
    count_on_bus(&bus, &mantis_codec::Codec::embedded(), sensor.id, 1_000).await;
}
