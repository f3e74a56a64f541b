//! `mantis train rul` on an embedded data directory: three pumps that each ran to failure twice
//! (feature windows and FAILURE events in the database) → a model registered and promoted in
//! the data directory's registry, with a progress line and a report on stderr; a second run
//! with `--no-promote` registers version 2 and leaves version 1 served; an unknown asset type
//! and a type without failures fail with a clear message and a non-zero exit code.

use mantis_domain::{
    Asset, AssetId, Criticality, FeatureVector, MaintenanceEvent, MaintenanceEventId,
    MaintenanceEventKind, Sensor, SensorId, SensorType, TenantId,
};
use mantis_objects::registry::ModelRegistry;
use mantis_store::Store;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const WINDOW_MS: i64 = 10_000;

fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).expect("time")
}

async fn machine(store: &dyn Store, code: &str, asset_type: &str) -> (AssetId, SensorId) {
    let asset = Asset {
        id: AssetId::new_random(),
        tenant_id: TenantId::DEFAULT,
        code: code.into(),
        name: code.into(),
        asset_type: asset_type.into(),
        location: "test".into(),
        criticality: Criticality::High,
    };
    store.upsert_asset(&asset).await.expect("asset");
    let sensor = Sensor {
        id: SensorId::new_random(),
        asset_id: asset.id,
        code: format!("{code}-VIB"),
        sensor_type: SensorType::Vibration,
        unit: "mm/s".into(),
        min_value: 0.0,
        max_value: 100.0,
        sampling_rate_hz: 1.0,
    };
    store.upsert_sensor(&sensor).await.expect("sensor");
    (asset.id, sensor.id)
}

/// `lives` runs to failure of the machine from `start_ms`, each ended by a FAILURE event: the
/// vibration rises over the last 20 windows of each life.
async fn run_to_failure(store: &dyn Store, m: (AssetId, SensorId), start_ms: i64, lives: &[i64]) {
    let mut t = start_ms;
    for (n, len) in lives.iter().enumerate() {
        for i in 0..*len {
            let wear = ((i - (len - 20)) as f64 / 20.0).clamp(0.0, 1.0);
            let wobble = ((i + n as i64 * 7) as f64 * 1.3).sin() * 0.05;
            let fv = FeatureVector {
                asset_id: m.0,
                sensor_id: m.1,
                sensor_type: SensorType::Vibration,
                window_start: at(t + i * WINDOW_MS),
                window_end: at(t + (i + 1) * WINDOW_MS),
                feature_set_version: "v1".into(),
                features: [
                    ("rms", 2.0 + 3.0 * wear + wobble),
                    ("kurtosis", 3.0 + 2.0 * wear - wobble),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
            };
            store.insert_features(&fv).await.expect("window");
        }
        t += len * WINDOW_MS;
        let event = MaintenanceEvent {
            id: MaintenanceEventId::new_random(),
            asset_id: m.0,
            kind: MaintenanceEventKind::Failure,
            occurred_at: at(t),
            work_order_id: None,
            note: "bearing".into(),
        };
        store.insert_maintenance_event(&event).await.expect("event");
        t += WINDOW_MS;
    }
}

fn mantis_train(data: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mantis"))
        .args(["train", "rul"])
        .args(args)
        .env("MANTIS_INFRA__DATA_DIR", data)
        .env("MANTIS_RUL__TRAINING__WINDOW", "5")
        .env("MANTIS_RUL__TRAINING__TREES", "80")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("mantis runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mantis_train_rul_registers_and_promotes_a_model_with_progress() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let store = mantis_store::sqlite::SqliteStore::open(data.path().join("mantis.db"))
            .await
            .expect("database");
        let base =
            chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 1_000 * WINDOW_MS;
        for (n, lives) in [[60, 75], [70, 55], [65, 80]].iter().enumerate() {
            let m = machine(&store, &format!("PMP-{n}"), "pump").await;
            run_to_failure(&store, m, base, lives).await;
        }
        let fan = machine(&store, "FAN-1", "fan").await;
        run_to_failure(&store, fan, base, &[]).await;
    }

    let (ok, stderr) = mantis_train(data.path(), &["--asset-type", "pump"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("final model"),
        "a progress line per stage: {stderr}"
    );
    assert!(
        stderr.contains("RUL model of `pump`: version 1 (promoted)")
            && stderr.contains("6 runs to failure"),
        "{stderr}"
    );

    let (ok, stderr) = mantis_train(data.path(), &["--asset-type", "pump", "--no-promote", "-q"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("final model"), "quiet: {stderr}");
    assert!(stderr.contains("version 2 —"), "{stderr}");

    // The registry of the data directory holds both; version 1 is served.
    let objects =
        Arc::new(mantis_objects::LocalObjects::open(data.path().join("objects")).expect("objects"));
    let registry = ModelRegistry::new(objects);
    let series = mantis_objects::registry::ModelSeries::new(mantis_rul::models::MODEL_KIND, "pump")
        .expect("series");
    let versions = registry.versions(&series).await.expect("versions");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(registry.promoted(&series).await.expect("promoted"), Some(1));

    let (ok, stderr) = mantis_train(data.path(), &["--asset-type", "submarine"]);
    assert!(!ok);
    assert!(
        stderr.contains("no asset has the type `submarine`"),
        "{stderr}"
    );
    let (ok, stderr) = mantis_train(data.path(), &["--asset-type", "fan"]);
    assert!(!ok);
    assert!(stderr.contains("have 0 run(s) to failure"), "{stderr}");
}
