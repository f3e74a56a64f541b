//! The RUL service in-process (embedded log, SQLite, local object store): the in-platform model
//! trained through the API on the runs to failure the store holds (feature windows between
//! FAILURE events), registered, promoted, rolled back; predictions on demand and from the
//! feature windows the consumer receives, falling as a pump wears; an ONNX model uploaded with
//! its contract, then predicting from an asset's stored windows exactly as the model library
//! does on the same cycles (the committed C-MAPSS model, its contract naming platform columns);
//! bad requests answered with problem bodies; tenants never sharing a model.

use mantis_bus::TraceContext;
use mantis_bus::embedded::EmbeddedBus;
use mantis_domain::{
    Asset, AssetId, Criticality, FeatureVector, MaintenanceEvent, MaintenanceEventId,
    MaintenanceEventKind, Sensor, SensorId, SensorType, TenantId,
};
use mantis_objects::LocalObjects;
use mantis_rul::{Config, build};
use mantis_runtime::{Infra, Publisher};
use mantis_store::Store;
use mantis_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WINDOW_MS: i64 = 10_000;
/// Windows of visible wear before a failure.
const WEAR: i64 = 25;

struct Pump {
    asset: AssetId,
    vib: SensorId,
    temp: SensorId,
}

fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).expect("time")
}

/// Wear in [0, 1] of window `i` of a life of `len` windows (1 at the failure).
fn wear(i: i64, len: i64) -> f64 {
    ((i - (len - WEAR)) as f64 / WEAR as f64).clamp(0.0, 1.0)
}

fn vectors(p: &Pump, start_ms: i64, w: f64, salt: i64) -> [FeatureVector; 2] {
    let wobble = ((start_ms / WINDOW_MS + salt) as f64 * 1.37).sin() * 0.05;
    let fv = |sensor, sensor_type, features: [(&str, f64); 3]| FeatureVector {
        asset_id: p.asset,
        sensor_id: sensor,
        sensor_type,
        window_start: at(start_ms),
        window_end: at(start_ms + WINDOW_MS),
        feature_set_version: "v1".into(),
        features: features
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain([("sample_count".to_owned(), 10.0)])
            .collect::<BTreeMap<_, _>>(),
    };
    [
        fv(
            p.vib,
            SensorType::Vibration,
            [
                ("rms", 2.0 + 3.0 * w * w + wobble),
                ("std", 0.2 + 0.8 * w + wobble.abs()),
                ("kurtosis", 3.0 + 2.0 * w + wobble),
            ],
        ),
        fv(
            p.temp,
            SensorType::Temperature,
            [
                ("mean", 40.0 + 12.0 * w + wobble * 4.0),
                ("std", 0.3 + wobble.abs()),
                ("max", 41.0 + 12.0 * w + wobble * 4.0),
            ],
        ),
    ]
}

async fn register(store: &dyn Store, code: &str, asset_type: &str) -> Pump {
    register_for(store, TenantId::DEFAULT, code, asset_type).await
}

async fn register_for(store: &dyn Store, tenant: TenantId, code: &str, asset_type: &str) -> Pump {
    let asset = Asset {
        id: AssetId::new_random(),
        tenant_id: tenant,
        code: code.into(),
        name: format!("{code} {asset_type}"),
        asset_type: asset_type.into(),
        location: "test".into(),
        criticality: Criticality::High,
    };
    store.upsert_asset(&asset).await.expect("asset");
    let mut ids = Vec::new();
    for (suffix, sensor_type, unit) in [
        ("VIB", SensorType::Vibration, "mm/s"),
        ("TMP", SensorType::Temperature, "°C"),
    ] {
        let sensor = Sensor {
            id: SensorId::new_random(),
            asset_id: asset.id,
            code: format!("{code}-{suffix}"),
            sensor_type,
            unit: unit.into(),
            min_value: -50.0,
            max_value: 500.0,
            sampling_rate_hz: 1.0,
        };
        store.upsert_sensor(&sensor).await.expect("sensor");
        ids.push(sensor.id);
    }
    Pump {
        asset: asset.id,
        vib: ids[0],
        temp: ids[1],
    }
}

/// Stores `lives` runs to failure of `p` from `start_ms`, each ended by a FAILURE event; returns
/// the start of the window after the last failure.
async fn run_to_failure(store: &dyn Store, p: &Pump, start_ms: i64, lives: &[i64]) -> i64 {
    let mut t = start_ms;
    for (n, len) in lives.iter().enumerate() {
        for i in 0..*len {
            for fv in vectors(p, t + i * WINDOW_MS, wear(i, *len), n as i64) {
                store.insert_features(&fv).await.expect("history");
            }
        }
        t += len * WINDOW_MS;
        let event = MaintenanceEvent {
            id: MaintenanceEventId::new_random(),
            asset_id: p.asset,
            kind: MaintenanceEventKind::Failure,
            occurred_at: at(t),
            work_order_id: None,
            note: format!("bearing failure {n}"),
        };
        assert!(store.insert_maintenance_event(&event).await.expect("event"));
        t += 2 * WINDOW_MS; // the repair
    }
    t
}

/// Records the replacement of a part of `p` at `at_ms`: a new life begins.
async fn replace(store: &dyn Store, p: &Pump, at_ms: i64, note: &str) {
    let replacement = MaintenanceEvent {
        id: MaintenanceEventId::new_random(),
        asset_id: p.asset,
        kind: MaintenanceEventKind::Replacement,
        occurred_at: at(at_ms),
        work_order_id: None,
        note: note.into(),
    };
    assert!(
        store
            .insert_maintenance_event(&replacement)
            .await
            .expect("event")
    );
}

/// Stores, then publishes (as the features service does), each of `vectors`.
async fn send_vectors(
    store: &dyn Store,
    publisher: &Publisher,
    vectors: impl IntoIterator<Item = FeatureVector>,
) {
    for fv in vectors {
        store.insert_features(&fv).await.expect("stored");
        publisher
            .publish(
                Some(fv.asset_id.to_string()),
                &fv,
                TraceContext::new_root(),
                vec![],
            )
            .await
            .expect("publish");
    }
}

/// Stores, then publishes (as the features service does), the windows `range` of a life of
/// `len` windows of `p`, starting at `base`.
async fn stream(
    store: &dyn Store,
    publisher: &Publisher,
    p: &Pump,
    base: i64,
    range: std::ops::Range<i64>,
    len: i64,
) {
    for i in range {
        send_vectors(
            store,
            publisher,
            vectors(p, base + i * WINDOW_MS, wear(i, len), 9),
        )
        .await;
    }
}

/// `GET /api/v1/rul/{asset}` once it holds `n` predictions (60 s at most).
async fn await_predictions(http: &reqwest::Client, url: &str, asset: AssetId, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, view) = get(http, &format!("{url}/api/v1/rul/{asset}")).await;
        if view["predictions"].as_array().map_or(0, Vec::len) >= n {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} predictions: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = http.post(url).json(&body).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn assert_problem(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body:#}");
    assert_eq!(body["status"], expected, "a problem body: {body:#}");
    assert!(body["detail"].is_string(), "{body:#}");
}

/// Paths no route serves, methods a route does not take, bodies that are not JSON and the
/// framework's own refusals are problem bodies too (as in every service built on `App::new`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_are_answered_with_problem_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, _publisher, url, shutdown) = start_service(dir.path()).await;
    let http = reqwest::Client::new();
    let (status, body) = get(&http, &format!("{url}/api/v1/nothing-here")).await;
    assert_problem(status, &body, 404);
    let (status, body) = post(&http, &format!("{url}/api/v1/rul/models"), json!({})).await;
    assert_problem(status, &body, 405);
    let r = http
        .delete(format!("{url}/health"))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_problem(status, &body, 405);
    // Over the framework's body limit: refused before any handler, still a problem body.
    let r = http
        .post(format!("{url}/api/v1/rul/predict"))
        .header("content-type", "application/json")
        .body(vec![b' '; 3 << 20])
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_problem(status, &body, 413);
    // A body that says it is not JSON (curl's `-d` sends a form): 415, not read as JSON. (A
    // new client: the server may close the connection of the refused 3 MiB body while the
    // pool would still hand it out.)
    let http = reqwest::Client::new();
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/xml",
    ] {
        let r = http
            .post(format!("{url}/api/v1/rul/predict"))
            .header("content-type", content_type)
            .body(r#"{"assetId":"00000000-0000-0000-0000-000000000000"}"#)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_problem(status, &body, 415);
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(content_type)),
            "{body:#}"
        );
    }
    // Checked after routing: an unknown path is a 404 whatever its body; a request without a
    // body is not checked.
    let r = http
        .post(format!("{url}/api/v1/nothing-here"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{url}/api/v1/rul/models"))
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    // JSON with parameters and without a Content-Type is read (and refused for its content).
    for content_type in [Some("application/json; charset=utf-8"), None] {
        let mut request = http
            .post(format!("{url}/api/v1/rul/predict"))
            .body(r#"{"nonsense": 1}"#);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let r = request.send().await.expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_problem(status, &body, 400);
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_register_promote_and_predict_through_the_api() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service(dir.path()).await;

    // Three pumps that ran to failure twice each; a fourth in its first life; a fan without
    // any failure.
    let base = chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 600 * WINDOW_MS;
    let lives: [&[i64]; 3] = [&[60, 75], &[70, 55], &[65, 80]];
    for (n, l) in lives.iter().enumerate() {
        let p = register(store.as_ref(), &format!("PMP-{n}"), "pump").await;
        run_to_failure(store.as_ref(), &p, base, l).await;
    }
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    let life_len = 70;
    // Its first 40 windows (healthy) are history; the rest arrive through the bus below.
    for i in 0..40 {
        for fv in vectors(&live, base + i * WINDOW_MS, wear(i, life_len), 9) {
            store.insert_features(&fv).await.expect("history");
        }
    }
    let fan = register(store.as_ref(), "FAN-1", "fan").await;
    for fv in vectors(&fan, base, 0.0, 0) {
        store.insert_features(&fv).await.expect("fan");
    }

    let http = reqwest::Client::new();

    // No model yet.
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": live.asset}),
    )
    .await;
    assert_problem(status, &body, 409);

    // Train on the six runs to failure.
    let model_config = json!({"window": 5, "labelCap": 40.0, "minSamplesLeaf": 5, "seed": 1});
    let (status, trained) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": model_config}),
    )
    .await;
    assert_eq!(status, 201, "{trained:#}");
    assert_eq!(trained["version"], 1);
    assert_eq!(trained["promoted"], true);
    assert_eq!(
        trained["units"].as_array().map(Vec::len),
        Some(6),
        "{trained:#}"
    );
    assert_eq!(trained["cycleSecs"], 10.0);
    let columns = trained["columns"].as_array().cloned().unwrap_or_default();
    assert!(columns.contains(&json!("vibration.rms")), "{trained:#}");
    assert!(columns.contains(&json!("temperature.mean")), "{trained:#}");
    assert!(!columns.contains(&json!("vibration.sample_count")));

    let (status, models) = get(&http, &format!("{url}/api/v1/rul/models")).await;
    assert_eq!(status, 200);
    assert_eq!(models["models"]["pump"]["promoted"], 1, "{models:#}");
    assert_eq!(
        models["models"]["pump"]["versions"][0]["metadata"]["format"],
        "mantis-rul-tree/1"
    );

    // On demand, from the stored (healthy) windows of the live pump.
    let (status, healthy) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": live.asset}),
    )
    .await;
    assert_eq!(status, 200, "{healthy:#}");
    assert_eq!(healthy["modelVersion"], "rul/pump/v1");
    let rul = healthy["rulCycles"].as_f64().expect("rul");
    assert!(
        healthy["confidenceLower"].as_f64().expect("lower") <= rul
            && rul <= healthy["confidenceUpper"].as_f64().expect("upper"),
        "{healthy:#}"
    );

    // The rest of the live pump's life arrives as feature windows: predictions follow, stored
    // and falling as it wears.
    stream(
        store.as_ref(),
        &publisher,
        &live,
        base,
        40..life_len,
        life_len,
    )
    .await;
    let view = await_predictions(&http, &url, live.asset, (life_len - 40) as usize).await;
    let predictions = view["predictions"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        predictions.len(),
        (life_len - 40) as usize,
        "one per window"
    );
    assert!(
        predictions
            .iter()
            .all(|p| p["modelVersion"] == "rul/pump/v1")
    );
    // Newest first: the last windows of the life against the first healthy ones.
    let rul_of = |p: &Value| p["rulCycles"].as_f64().expect("rul");
    let late = predictions[..5].iter().map(rul_of).sum::<f64>() / 5.0;
    let early = predictions[predictions.len() - 5..]
        .iter()
        .map(rul_of)
        .sum::<f64>()
        / 5.0;
    assert!(
        late < 12.0 && early > 25.0 && late < early - 15.0,
        "RUL falls as the pump wears: early {early:.1}, late {late:.1}: {predictions:#?}"
    );

    // A second version, not promoted; promote it; roll back to the first.
    let (status, second) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "promote": false, "config": model_config}),
    )
    .await;
    assert_eq!(status, 201, "{second:#}");
    assert_eq!(second["version"], 2);
    let (status, _) = post(
        &http,
        &format!("{url}/api/v1/rul/models/pump/2/promote"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, versions) = get(&http, &format!("{url}/api/v1/rul/models/pump")).await;
    assert_eq!(versions["promoted"], 2, "{versions:#}");
    // Rolling back to a version whose stored bytes are damaged is refused (422), and the
    // promoted version stays what it was.
    let v1 = dir.path().join("objects/models/rul/pump/v000001/model.bin");
    let v1_bytes = std::fs::read(&v1).expect("version 1 is stored");
    std::fs::write(&v1, b"damaged").expect("damage version 1");
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/pump/rollback"),
        json!({}),
    )
    .await;
    assert_problem(status, &body, 422);
    let (_, versions) = get(&http, &format!("{url}/api/v1/rul/models/pump")).await;
    assert_eq!(versions["promoted"], 2, "{versions:#}");
    std::fs::write(&v1, v1_bytes).expect("restore version 1");
    let (status, back) = post(
        &http,
        &format!("{url}/api/v1/rul/models/pump/rollback"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{back:#}");
    assert_eq!(back["promoted"], 1);
    let (_, again) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": live.asset}),
    )
    .await;
    assert_eq!(again["modelVersion"], "rul/pump/v1", "{again:#}");

    // An externally trained deep model with its contract (the C-MAPSS LSTM of models/).
    let models_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let onnx = std::fs::read(models_dir.join("rul-cmapss-fd001.onnx")).expect("onnx");
    let sidecar: Value = serde_json::from_slice(
        &std::fs::read(models_dir.join("rul-cmapss-fd001.json")).expect("sidecar"),
    )
    .expect("sidecar json");
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&onnx);
    let (status, uploaded) = post(
        &http,
        &format!("{url}/api/v1/rul/models/turbofan/onnx"),
        json!({"sidecar": sidecar, "onnxBase64": encoded, "promote": true}),
    )
    .await;
    assert_eq!(status, 201, "{uploaded:#}");
    assert_eq!(uploaded["version"], 1);
    let (_, turbofan) = get(&http, &format!("{url}/api/v1/rul/models/turbofan")).await;
    assert_eq!(turbofan["promoted"], 1, "{turbofan:#}");
    assert_eq!(
        turbofan["versions"][0]["metadata"]["format"],
        "mantis-rul-onnx/1"
    );

    // Bad requests.
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/turbofan/onnx"),
        json!({"sidecar": sidecar, "onnxBase64": "%%%"}),
    )
    .await;
    assert_problem(status, &body, 400);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/turbofan/onnx"),
        json!({"sidecar": {"format": "nonsense"}, "onnxBase64": encoded}),
    )
    .await;
    assert_problem(status, &body, 422);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "fan"}),
    )
    .await;
    assert_problem(status, &body, 422);
    // One run to failure is not enough either (training holds runs out to validate).
    let compressor = register(store.as_ref(), "CMP-1", "compressor").await;
    run_to_failure(store.as_ref(), &compressor, base, &[60]).await;
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "compressor"}),
    )
    .await;
    assert_problem(status, &body, 422);
    assert_eq!(body["title"], "Not enough data", "{body:#}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("have 1 run(s) to failure") && d.contains("needs 2")),
        "{body:#}"
    );
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "submarine"}),
    )
    .await;
    assert_problem(status, &body, 404);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": {"trees": "many"}}),
    )
    .await;
    assert_problem(status, &body, 400);
    // A window no asset's history could hold (each prediction allocates window × columns):
    // refused before anything is trained, the setting named.
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": {"window": 1_000_000_000_000u64}}),
    )
    .await;
    assert_problem(status, &body, 400);
    assert!(body.to_string().contains("window"), "{body:#}");
    let r = http
        .post(format!("{url}/api/v1/rul/train"))
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": AssetId::new_random()}),
    )
    .await;
    assert_problem(status, &body, 404);
    let (status, body) = get(&http, &format!("{url}/api/v1/rul/not-a-uuid")).await;
    assert_problem(status, &body, 400);
    let (status, body) = get(&http, &format!("{url}/api/v1/rul/{}?limit=x", live.asset)).await;
    assert_problem(status, &body, 400);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/pump/x/promote"),
        json!({}),
    )
    .await;
    assert_problem(status, &body, 400);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/pump/99/promote"),
        json!({}),
    )
    .await;
    assert_problem(status, &body, 404);
    let (status, body) = get(&http, &format!("{url}/api/v1/rul/models/submarine")).await;
    assert_problem(status, &body, 404);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_learn_from_nor_are_served_by_each_others_runs() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service(dir.path()).await;
    let other = TenantId(uuid::Uuid::from_u128(0xb));
    let base = chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 600 * WINDOW_MS;
    // Both tenants run pumps: three of ours and two of theirs ran to failure.
    for (n, lives) in [[60, 75], [70, 55], [65, 80]].iter().enumerate() {
        let p = register(store.as_ref(), &format!("OURS-{n}"), "pump").await;
        run_to_failure(store.as_ref(), &p, base, lives).await;
    }
    for (n, lives) in [[62, 71], [68, 59]].iter().enumerate() {
        let p = register_for(store.as_ref(), other, &format!("THEIRS-{n}"), "pump").await;
        run_to_failure(store.as_ref(), &p, base, lives).await;
    }
    let live = register_for(store.as_ref(), other, "THEIRS-LIVE", "pump").await;
    for i in 0..10 {
        for fv in vectors(&live, base + i * WINDOW_MS, wear(i, 70), 9) {
            store.insert_features(&fv).await.expect("history");
        }
    }
    let http = reqwest::Client::new();
    let config = json!({"window": 5, "labelCap": 40.0, "minSamplesLeaf": 5, "seed": 1});
    let units = |trained: &Value| -> Vec<String> {
        serde_json::from_value(trained["units"].clone()).expect("units")
    };

    // Our model learns from our six runs only, and does not serve their pumps.
    let (status, ours) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": config}),
    )
    .await;
    assert_eq!(status, 201, "{ours:#}");
    assert_eq!(units(&ours).len(), 6, "{ours:#}");
    assert!(
        units(&ours).iter().all(|u| u.starts_with("OURS-")),
        "{ours:#}"
    );
    let (status, again) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "promote": false, "config": config}),
    )
    .await;
    assert_eq!((status, &again["version"]), (201, &json!(2)), "{again:#}");
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": live.asset}),
    )
    .await;
    assert_problem(status, &body, 409);

    // Theirs learns from their four runs: a series of its own, version 1.
    let (status, theirs) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "tenantId": other, "config": config}),
    )
    .await;
    assert_eq!(status, 201, "{theirs:#}");
    assert_eq!(theirs["version"], 1, "{theirs:#}");
    assert_eq!(theirs["tenantId"], json!(other));
    assert_eq!(units(&theirs).len(), 4, "{theirs:#}");
    assert!(
        units(&theirs).iter().all(|u| u.starts_with("THEIRS-")),
        "{theirs:#}"
    );
    let label = format!("rul/{other}.pump/v1");
    let (status, now) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": live.asset}),
    )
    .await;
    assert_eq!(status, 200, "{now:#}");
    assert_eq!(now["modelVersion"], label.as_str(), "{now:#}");

    // Streamed windows of their pump are predicted by their model.
    stream(store.as_ref(), &publisher, &live, base, 10..16, 70).await;
    let view = await_predictions(&http, &url, live.asset, 6).await;
    let streamed = view["predictions"].as_array().cloned().unwrap_or_default();
    assert!(
        streamed.iter().all(|p| p["modelVersion"] == label.as_str()),
        "{view:#}"
    );
    assert_eq!(view["model"]["label"], label.as_str(), "{view:#}");

    // Each tenant's catalogue and versions are its own; every tenant's without a filter.
    let (_, all) = get(&http, &format!("{url}/api/v1/rul/models")).await;
    let keys: Vec<&String> = all["models"].as_object().expect("models").keys().collect();
    let scoped = format!("{other}.pump");
    assert_eq!(keys, vec![scoped.as_str(), "pump"], "{all:#}");
    let (_, mine) = get(&http, &format!("{url}/api/v1/rul/models?tenantId={other}")).await;
    let keys: Vec<&String> = mine["models"].as_object().expect("models").keys().collect();
    assert_eq!(keys, vec![scoped.as_str()], "{mine:#}");
    assert_eq!(mine["models"][&scoped]["assetType"], "pump");
    let (status, versions) = get(
        &http,
        &format!("{url}/api/v1/rul/models/pump?tenantId={other}"),
    )
    .await;
    assert_eq!(status, 200, "{versions:#}");
    assert_eq!(versions["promoted"], 1);
    assert!(!versions.to_string().contains("OURS-"), "{versions:#}");
    // Their series has no earlier version to roll back to, though ours has two versions.
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/pump/rollback?tenantId={other}"),
        json!({}),
    )
    .await;
    assert_problem(status, &body, 409);
    let (_, still) = post(
        &http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": live.asset}),
    )
    .await;
    assert_eq!(still["modelVersion"], label.as_str(), "{still:#}");

    // A tenant without pumps has none to train; a tenant id must be a UUID.
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "tenantId": TenantId(uuid::Uuid::from_u128(0xc))}),
    )
    .await;
    assert_problem(status, &body, 404);
    let (status, body) = get(
        &http,
        &format!("{url}/api/v1/rul/models/pump?tenantId=plant-b"),
    )
    .await;
    assert_problem(status, &body, 400);
    // A repeated parameter is answered too (the last one counts), as a problem body.
    let (status, body) = get(
        &http,
        &format!("{url}/api/v1/rul/models/pump?tenantId={other}&tenantId=plant-b"),
    )
    .await;
    assert_problem(status, &body, 400);
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "tenantId": "plant-b"}),
    )
    .await;
    assert_problem(status, &body, 400);
    shutdown.cancel();
}

/// Three pumps that ran to failure twice each, and the pump model trained on them through the
/// API; returns the time their history starts (ten minutes of windows ago, window-aligned).
async fn trained_pumps(store: &dyn Store, http: &reqwest::Client, url: &str) -> i64 {
    let base = chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 600 * WINDOW_MS;
    let lives: [&[i64]; 3] = [&[60, 75], &[70, 55], &[65, 80]];
    for (n, l) in lives.iter().enumerate() {
        let p = register(store, &format!("PMP-{n}"), "pump").await;
        run_to_failure(store, &p, base, l).await;
    }
    let (status, trained) = post(
        http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": {"window": 5, "labelCap": 40.0, "minSamplesLeaf": 5, "seed": 1}}),
    )
    .await;
    assert_eq!(status, 201, "{trained:#}");
    base
}

/// A replacement recorded while an asset's windows stream in: its next window is a new life's and
/// predicted from that life at once, not from the old life's wear. (The periodic check that
/// refreshes every asset's life runs once an hour here: it cannot be what notices.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_starts_a_new_life_at_the_next_window() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service_checking(dir.path(), 3600).await;
    let http = reqwest::Client::new();
    let base = trained_pumps(store.as_ref(), &http, &url).await;

    // A pump worn to the end of its life...
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    let life_len = 70;
    stream(
        store.as_ref(),
        &publisher,
        &live,
        base,
        0..life_len,
        life_len,
    )
    .await;
    let view = await_predictions(&http, &url, live.asset, life_len as usize).await;
    let worn = view["predictions"][0]["rulCycles"].as_f64().expect("rul");
    assert!(worn < 12.0, "worn out: {view:#}");

    // ... has its bearing replaced on the run, and goes on as new with the next window (no gap
    // in its windows to tell).
    replace(
        store.as_ref(),
        &live,
        base + life_len * WINDOW_MS,
        "bearing replaced",
    )
    .await;
    let restart = base + life_len * WINDOW_MS;
    stream(store.as_ref(), &publisher, &live, restart, 0..2, life_len).await;
    // Its predictions are those of a pump new at that time, on the same windows.
    let twin = register(store.as_ref(), "PMP-TWIN", "pump").await;
    stream(store.as_ref(), &publisher, &twin, restart, 0..2, life_len).await;
    let view = await_predictions(&http, &url, live.asset, life_len as usize + 2).await;
    let twin_view = await_predictions(&http, &url, twin.asset, 2).await;
    let newest = |v: &Value| -> Vec<(String, f64)> {
        v["predictions"].as_array().expect("predictions")[..2]
            .iter()
            .map(|p| {
                (
                    p["predictedAt"].as_str().unwrap_or_default().to_owned(),
                    p["rulCycles"].as_f64().expect("rul"),
                )
            })
            .collect()
    };
    assert_eq!(
        newest(&view),
        newest(&twin_view),
        "the new life is predicted from itself alone"
    );
    assert!(
        newest(&view).iter().all(|(_, rul)| *rul > 25.0),
        "as new: {view:#}"
    );
    shutdown.cancel();
}

/// A new life noticed when a lagging sensor completes an old-life window keeps the part of the
/// new life's first window that the other sensor sent before: that window is predicted when
/// the lagging sensor completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_life_noticed_on_a_lagging_sensor_keeps_its_first_window() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service_checking(dir.path(), 3600).await;
    let http = reqwest::Client::new();
    let base = trained_pumps(store.as_ref(), &http, &url).await;
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    let life_len = 70;
    stream(
        store.as_ref(),
        &publisher,
        &live,
        base,
        0..life_len - 1,
        life_len,
    )
    .await;
    // The last old-life window: its temperature lags.
    let last = life_len - 1;
    let [vib_last, tmp_last] = vectors(&live, base + last * WINDOW_MS, wear(last, life_len), 9);
    send_vectors(store.as_ref(), &publisher, [vib_last]).await;
    await_predictions(&http, &url, live.asset, last as usize).await;
    // Replaced; the vibration of the new life's first window arrives before the lagging
    // temperature of the old life's last one, then the temperature of the new one.
    let restart = base + life_len * WINDOW_MS;
    replace(store.as_ref(), &live, restart, "bearing replaced").await;
    let [vib_new, tmp_new] = vectors(&live, restart, 0.0, 9);
    send_vectors(store.as_ref(), &publisher, [vib_new, tmp_last, tmp_new]).await;
    let view = await_predictions(&http, &url, live.asset, last as usize + 1).await;
    let newest = &view["predictions"][0];
    assert_eq!(
        newest["predictedAt"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>()),
        Some(Ok(at(restart + WINDOW_MS))),
        "the new life's first window: {view:#}"
    );
    assert!(
        newest["rulCycles"].as_f64().is_some_and(|r| r > 25.0),
        "as new: {view:#}"
    );
    shutdown.cancel();
}

/// With hopping windows a row is one hop of the machine's life, also for the first row of a new
/// life (no step to measure yet): it takes the asset's hop measured before, not the window
/// length (which would state its RUL three times too long here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_window_of_a_new_life_counts_as_one_hop() {
    first_window_of_a_new_life_counts_as_one_hop(false).await;
}

/// The same when the service starts between the old life and the new one (nothing measured
/// in this process): the hop is measured on the previous life's stored windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_window_of_a_new_life_after_a_restart_counts_as_one_hop() {
    first_window_of_a_new_life_counts_as_one_hop(true).await;
}

/// A pump with hopping windows is replaced; its new life's first row is predicted as one hop.
/// `restarted`: the old life's windows were consumed before this service started (stored, not
/// sent).
async fn first_window_of_a_new_life_counts_as_one_hop(restarted: bool) {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service_with(
        dir.path(),
        Config {
            check_secs: 3600,
            // One cycle = one window length: a tumbling row is one cycle, a hopping one a third.
            cycle_secs: [("pump".to_owned(), WINDOW_MS as f64 / 1000.0)].into(),
            ..Config::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let base = trained_pumps(store.as_ref(), &http, &url).await;
    let hop = WINDOW_MS / 3;
    let send =
        |p: &Pump, start: i64| send_vectors(store.as_ref(), &publisher, vectors(p, start, 0.0, 9));
    // A pump streaming windows of 10 s every 3.3 s, then replaced.
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    for i in 0..6 {
        let start = base + i * hop;
        if restarted {
            for v in vectors(&live, start, 0.0, 9) {
                store.insert_features(&v).await.expect("stored");
            }
        } else {
            send(&live, start).await;
        }
    }
    let before = if restarted { 0 } else { 6 };
    await_predictions(&http, &url, live.asset, before).await;
    let restart = base + 6 * hop;
    replace(store.as_ref(), &live, restart, "bearing replaced").await;
    send(&live, restart).await;
    // A pump new at that time, whose hop is not known yet: its one row counts as a window.
    let twin = register(store.as_ref(), "PMP-TWIN", "pump").await;
    send(&twin, restart).await;
    let live_view = await_predictions(&http, &url, live.asset, before + 1).await;
    let twin_view = await_predictions(&http, &url, twin.asset, 1).await;
    let first = |v: &Value| v["predictions"][0]["rulCycles"].as_f64().expect("rul");
    let (live_rul, twin_rul) = (first(&live_view), first(&twin_view));
    assert!(twin_rul > 0.0, "{twin_view:#}");
    let (hop_secs, window_secs) = (hop as f64 / 1000.0, WINDOW_MS as f64 / 1000.0);
    assert!(
        (live_rul / hop_secs - twin_rul / window_secs).abs() < 1e-9 * twin_rul,
        "the same row, one hop instead of one window: {live_rul} vs {twin_rul}"
    );
    shutdown.cancel();
}

/// An asset registered again as another type is served by that type's model (none here) once
/// the service has read its record again (at the next check period), not by its old type's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_registered_as_another_type_leaves_its_old_types_model() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service_checking(dir.path(), 1).await;
    let http = reqwest::Client::new();
    let base = trained_pumps(store.as_ref(), &http, &url).await;
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    stream(store.as_ref(), &publisher, &live, base, 0..3, 70).await;
    await_predictions(&http, &url, live.asset, 3).await;

    let mut asset = store
        .get_asset(live.asset)
        .await
        .expect("get")
        .expect("registered");
    asset.asset_type = "compressor".into();
    store.upsert_asset(&asset).await.expect("registered again");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let skipped = || async {
        let (_, health) = get(&http, &format!("{url}/health")).await;
        health["details"]["featureVectorsWithoutPrediction"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = skipped().await;
    stream(store.as_ref(), &publisher, &live, base, 3..6, 70).await;
    // Its next three windows (two sensors each) are handled, and skipped: no compressor model.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while skipped().await < before + 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the windows were not skipped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, view) = get(&http, &format!("{url}/api/v1/rul/{}", live.asset)).await;
    assert_eq!(
        view["predictions"].as_array().map(Vec::len),
        Some(3),
        "no compressor model, no prediction: {view:#}"
    );
    shutdown.cancel();
}

/// A fleet with more history than a training may hold in memory (`max_training_rows`) is
/// trained on its newest runs to failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_beyond_its_row_budget_learns_from_the_newest_runs() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _publisher, url, shutdown) = start_service_with(
        dir.path(),
        Config {
            check_secs: 1,
            // Room for two runs of 500 windows (the fewest a shared budget cuts a run to).
            max_training_rows: 1_000,
            ..Config::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let base = chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 600 * WINDOW_MS;
    // Second lives end at windows 137, 127 and 147 after `base`; first lives before them.
    let lives: [&[i64]; 3] = [&[60, 75], &[70, 55], &[65, 80]];
    for (n, l) in lives.iter().enumerate() {
        let p = register(store.as_ref(), &format!("PMP-{n}"), "pump").await;
        run_to_failure(store.as_ref(), &p, base, l).await;
    }
    // The newest run of all is one window long, too short to learn from: an older one is used
    // in its place.
    let short = register(store.as_ref(), "PMP-3", "pump").await;
    run_to_failure(store.as_ref(), &short, base + 200 * WINDOW_MS, &[1]).await;
    let (status, trained) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": {"window": 5, "labelCap": 40.0, "minSamplesLeaf": 5, "seed": 1}}),
    )
    .await;
    assert_eq!(status, 201, "{trained:#}");
    let mut units: Vec<&str> = trained["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    units.sort_unstable();
    assert_eq!(units, ["PMP-0#2", "PMP-2#2"], "{trained:#}");
    shutdown.cancel();
}

/// A sensor that falls silent stops its asset's predictions (a model reads every sensor of the
/// asset): the health report names the asset and the silent sensor once it is further behind
/// than a lagging sensor may be; when the sensor reports again, the asset is predicted again
/// and leaves the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_whose_sensor_falls_silent_is_reported_until_it_reports_again() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service(dir.path()).await;
    let http = reqwest::Client::new();
    let base = trained_pumps(store.as_ref(), &http, &url).await;
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    let len = 200;
    stream(store.as_ref(), &publisher, &live, base, 0..3, len).await;
    await_predictions(&http, &url, live.asset, 3).await;
    let waiting = || async {
        let (_, health) = get(&http, &format!("{url}/health")).await;
        health["details"]["assetsWaitingForSensors"].clone()
    };
    assert_eq!(waiting().await["count"], 0, "{:#}", waiting().await);

    // A part is replaced, and from then on its temperature sensor is silent: vibration
    // windows alone, until the temperature is more than 72 window steps behind (it has not
    // reported in this life at all).
    replace(store.as_ref(), &live, base + 3 * WINDOW_MS, "seal replaced").await;
    let silent_until = 3 + 72 + 7;
    for i in 3..silent_until {
        let [vib, _] = vectors(&live, base + i * WINDOW_MS, wear(i, len), 9);
        send_vectors(store.as_ref(), &publisher, [vib]).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = waiting().await;
        if report["count"] == 1 {
            break report;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let expected = json!([{
        "assetId": live.asset,
        "asset": "PMP-LIVE",
        "reason": "silent sensors",
        "silentSensors": ["PMP-LIVE-TMP"],
    }]);
    assert_eq!(report["assets"], expected, "{report:#}");
    let (_, view) = get(&http, &format!("{url}/api/v1/rul/{}", live.asset)).await;
    assert_eq!(
        view["predictions"].as_array().map(Vec::len),
        Some(3),
        "no prediction without the temperature: {view:#}"
    );

    // Its sequence is rebuilt from the store (a new model version is promoted): still silent.
    let (status, trained) = post(
        &http,
        &format!("{url}/api/v1/rul/train"),
        json!({"assetType": "pump", "config": {"window": 5, "labelCap": 40.0, "minSamplesLeaf": 5, "seed": 2}}),
    )
    .await;
    assert_eq!(status, 201, "{trained:#}");
    let handled = || async {
        let (_, health) = get(&http, &format!("{url}/health")).await;
        health["details"]["featureVectorsHandled"]
            .as_u64()
            .unwrap_or(0)
    };
    let more = silent_until + 3;
    for i in silent_until..more {
        let [vib, _] = vectors(&live, base + i * WINDOW_MS, wear(i, len), 9);
        send_vectors(store.as_ref(), &publisher, [vib]).await;
    }
    // Every vector sent so far handled: three windows of two sensors, then vibration alone.
    let sent = u64::try_from(2 * 3 + (more - 3)).expect("count");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while handled().await < sent {
        assert!(tokio::time::Instant::now() < deadline, "not handled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = waiting().await;
    assert_eq!(report["assets"], expected, "after the rebuild: {report:#}");
    let silent_until = more;

    // It reports again: predicted at once, and no longer reported.
    stream(
        store.as_ref(),
        &publisher,
        &live,
        base,
        silent_until..silent_until + 2,
        len,
    )
    .await;
    await_predictions(&http, &url, live.asset, 5).await;
    let report = waiting().await;
    assert_eq!(report["count"], 0, "{report:#}");
    assert_eq!(report["assets"], json!([]), "{report:#}");
    shutdown.cancel();
}

/// An asset first seen through a lagging sensor's window (after a restart, the first window
/// consumed may be one) is judged by every sensor's newest stored window, not only by the rows
/// read up to that window: the sensor far behind is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_first_seen_through_a_lagging_window_is_judged_by_its_newest_stored_ones() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service(dir.path()).await;
    let http = reqwest::Client::new();
    let base = trained_pumps(store.as_ref(), &http, &url).await;
    let live = register(store.as_ref(), "PMP-LIVE", "pump").await;
    let len = 200;
    // Its vibration is 90 windows on (stored; its records consumed before this service's
    // start, say); the temperature's window 5 is the first this service consumes.
    for i in 0..90 {
        let [vib, _] = vectors(&live, base + i * WINDOW_MS, wear(i, len), 9);
        store.insert_features(&vib).await.expect("stored");
    }
    for i in 0..=5 {
        let [_, tmp] = vectors(&live, base + i * WINDOW_MS, wear(i, len), 9);
        send_vectors(store.as_ref(), &publisher, [tmp]).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let report = loop {
        let (_, health) = get(&http, &format!("{url}/health")).await;
        let report = health["details"]["assetsWaitingForSensors"].clone();
        if report["count"] == 1 {
            break report;
        }
        assert!(tokio::time::Instant::now() < deadline, "{report:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        report["assets"][0]["silentSensors"],
        json!(["PMP-LIVE-TMP"]),
        "{report:#}"
    );
    shutdown.cancel();
}

/// The service's own infrastructure (embedded log, SQLite, local objects) and the running app,
/// checking the registry and the maintenance history every second.
async fn start_service(
    dir: &std::path::Path,
) -> (Arc<dyn Store>, Publisher, String, CancellationToken) {
    start_service_checking(dir, 1).await
}

/// [`start_service`], checking every `check_secs`.
async fn start_service_checking(
    dir: &std::path::Path,
    check_secs: u64,
) -> (Arc<dyn Store>, Publisher, String, CancellationToken) {
    start_service_with(
        dir,
        Config {
            check_secs,
            ..Config::default()
        },
    )
    .await
}

/// [`start_service`] with `config` (bound to a free port, no automatic training).
async fn start_service_with(
    dir: &std::path::Path,
    config: Config,
) -> (Arc<dyn Store>, Publisher, String, CancellationToken) {
    let bus = EmbeddedBus::open(dir.join("log")).await.expect("log");
    let store = SqliteStore::in_memory().await.expect("sqlite");
    let mut infra = Infra::in_process(Arc::new(bus), Arc::new(store));
    infra.objects = Arc::new(LocalObjects::open(dir.join("objects")).expect("objects"));
    infra.ensure_topics(&[]).await.expect("topics");
    let store = infra.store.clone();
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    let config = Config {
        bind: "127.0.0.1:0".into(),
        auto_train: false,
        ..config
    };
    let app = build(infra, config).await.expect("build");
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    (store, publisher, url, shutdown)
}

/// A C-MAPSS contract (the committed FD001 sidecar) whose columns name a turbofan's platform
/// columns: its temperature sensors in code order, the `mean` of each window one channel
/// (settings first, then the model's sensors).
struct Turbofan {
    sidecar: Value,
    n_settings: usize,
    indices: Vec<usize>,
}

impl Turbofan {
    fn fd001() -> Self {
        let mut sidecar: Value = serde_json::from_slice(
            &std::fs::read(mantis_rul_model::eval::models_dir().join("rul-cmapss-fd001.json"))
                .expect("sidecar"),
        )
        .expect("sidecar json");
        let column = |k: usize| {
            if k == 0 {
                "temperature.mean".to_owned()
            } else {
                format!("temperature#{}.mean", k + 1)
            }
        };
        let n_settings = sidecar["setting_columns"].as_array().map_or(0, Vec::len);
        let indices: Vec<usize> =
            serde_json::from_value(sidecar["sensor_indices"].clone()).expect("sensor indices");
        sidecar["setting_columns"] = json!((0..n_settings).map(column).collect::<Vec<_>>());
        sidecar["sensor_columns"] = json!(
            (0..indices.len())
                .map(|k| column(n_settings + k))
                .collect::<Vec<_>>()
        );
        Self {
            sidecar,
            n_settings,
            indices,
        }
    }

    /// Uploads and promotes `onnx` with the contract for `asset_type`.
    async fn upload(&self, http: &reqwest::Client, url: &str, asset_type: &str, onnx: &[u8]) {
        use base64::Engine as _;
        let (status, uploaded) = post(
            http,
            &format!("{url}/api/v1/rul/models/{asset_type}/onnx"),
            json!({
                "sidecar": self.sidecar,
                "onnxBase64": base64::engine::general_purpose::STANDARD.encode(onnx),
                "promote": true,
            }),
        )
        .await;
        assert_eq!(status, 201, "{uploaded:#}");
    }

    /// Registers a turbofan asset with one sensor per channel.
    async fn register(
        &self,
        store: &dyn Store,
        code: &str,
        asset_type: &str,
    ) -> (AssetId, Vec<SensorId>) {
        let asset = Asset {
            id: AssetId::new_random(),
            tenant_id: TenantId::DEFAULT,
            code: code.into(),
            name: format!("{code} turbofan"),
            asset_type: asset_type.into(),
            location: "test".into(),
            criticality: Criticality::High,
        };
        store.upsert_asset(&asset).await.expect("asset");
        let mut sensors = Vec::new();
        for k in 0..self.n_settings + self.indices.len() {
            let sensor = Sensor {
                id: SensorId::new_random(),
                asset_id: asset.id,
                code: format!("{code}-{k:02}"),
                sensor_type: SensorType::Temperature,
                unit: "1".into(),
                min_value: -1e6,
                max_value: 1e6,
                sampling_rate_hz: 1.0,
            };
            store.upsert_sensor(&sensor).await.expect("sensor");
            sensors.push(sensor.id);
        }
        (asset.id, sensors)
    }

    /// The feature windows of one cycle, the window starting at `start_ms`.
    fn windows(
        &self,
        (asset, sensors): &(AssetId, Vec<SensorId>),
        cycle: &mantis_rul_model::Cycle,
        start_ms: i64,
    ) -> Vec<FeatureVector> {
        let values = cycle.settings[..self.n_settings]
            .iter()
            .chain(self.indices.iter().map(|i| &cycle.sensors[*i]));
        sensors
            .iter()
            .zip(values)
            .map(|(sensor, value)| FeatureVector {
                asset_id: *asset,
                sensor_id: *sensor,
                sensor_type: SensorType::Temperature,
                window_start: at(start_ms),
                window_end: at(start_ms + WINDOW_MS),
                feature_set_version: "v1".into(),
                features: BTreeMap::from([
                    ("mean".to_owned(), *value),
                    ("sample_count".to_owned(), 10.0),
                ]),
            })
            .collect()
    }

    /// Stores one window per cycle from `start_ms`; returns the end of the last one.
    async fn store_cycles(
        &self,
        store: &dyn Store,
        asset: &(AssetId, Vec<SensorId>),
        cycles: &[mantis_rul_model::Cycle],
        start_ms: i64,
    ) -> i64 {
        for (c, cycle) in cycles.iter().enumerate() {
            for fv in self.windows(asset, cycle, start_ms + c as i64 * WINDOW_MS) {
                store.insert_features(&fv).await.expect("window");
            }
        }
        start_ms + cycles.len() as i64 * WINDOW_MS
    }
}

/// `POST /api/v1/rul/predict` for `asset`: the served model's raw prediction (in windows).
async fn predict_windows(http: &reqwest::Client, url: &str, asset: AssetId, version: &str) -> f64 {
    let (status, served) = post(
        http,
        &format!("{url}/api/v1/rul/predict"),
        json!({"assetId": asset}),
    )
    .await;
    assert_eq!(status, 200, "{served:#}");
    assert_eq!(served["modelKind"], "onnx", "{served:#}");
    assert_eq!(served["modelVersion"], version, "{served:#}");
    served["rulWindows"].as_f64().expect("rulWindows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_onnx_model_predicts_from_an_assets_stored_windows_as_the_library_does() {
    use mantis_rul_model::RulModel;
    use mantis_rul_model::cmapss::Dataset;
    use mantis_rul_model::eval::{default_data_dir, models_dir};

    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, url, shutdown) = start_service(dir.path()).await;
    let http = reqwest::Client::new();
    let turbofan = Turbofan::fd001();
    let onnx = std::fs::read(models_dir().join("rul-cmapss-fd001.onnx")).expect("onnx");
    turbofan.upload(&http, &url, "turbofan", &onnx).await;
    let library = RulModel::load_named(&models_dir(), "rul-cmapss-fd001").expect("model");

    // Two test engines as assets: one longer than the model's window, one shorter (padded).
    let data = Dataset::load(&default_data_dir(), "FD001").expect("C-MAPSS FD001");
    let window = library.sidecar().window;
    let long = data
        .test
        .iter()
        .find(|e| e.cycles.len() > window + 20)
        .expect("a long engine");
    let short = data
        .test
        .iter()
        .find(|e| e.cycles.len() < window)
        .expect("a short engine");
    let base = chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 1_000 * WINDOW_MS;
    for (code, engine) in [("ENG-LONG", long), ("ENG-SHORT", short)] {
        let asset = turbofan.register(store.as_ref(), code, "turbofan").await;
        turbofan
            .store_cycles(store.as_ref(), &asset, &engine.cycles, base)
            .await;
        let got = predict_windows(&http, &url, asset.0, "rul/turbofan/v1").await;
        let expected = library.predict(&engine.cycles).expect("library prediction");
        assert!(
            (got - expected.rul).abs() < 1e-9,
            "{code} ({} cycles): the service predicts {got}, the library {}",
            engine.cycles.len(),
            expected.rul
        );
    }

    // A contract that describes another file is refused.
    let mut other = Turbofan::fd001();
    other.sidecar["onnx_sha256"] = json!("0".repeat(64));
    use base64::Engine as _;
    let (status, body) = post(
        &http,
        &format!("{url}/api/v1/rul/models/turbofan/onnx"),
        json!({
            "sidecar": other.sidecar,
            "onnxBase64": base64::engine::general_purpose::STANDARD.encode(&onnx),
        }),
    )
    .await;
    assert_problem(status, &body, 422);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sha256") && d.contains("the sidecar expects")),
        "{body:#}"
    );

    // Now that the fleet's assets have windows, a contract naming a column they do not have
    // (another plant's, a typo) is refused at the upload, not found out on every window.
    let upload = |sidecar: Value| {
        let http = http.clone();
        let url = url.clone();
        let onnx = onnx.clone();
        async move {
            post(
                &http,
                &format!("{url}/api/v1/rul/models/turbofan/onnx"),
                json!({
                    "sidecar": sidecar,
                    "onnxBase64": base64::engine::general_purpose::STANDARD.encode(&onnx),
                }),
            )
            .await
        }
    };
    let mut typo = Turbofan::fd001();
    typo.sidecar["sensor_columns"][0] = json!("temprature.mean");
    // A network that does not compute what its contract's reference batch says is refused.
    let mut lying = Turbofan::fd001();
    let said = lying.sidecar["reference"]["onnxruntime_output"][0]
        .as_f64()
        .expect("a reference output");
    lying.sidecar["reference"]["onnxruntime_output"][0] = json!(said + 5.0);
    for (sidecar, why) in [
        (typo.sidecar, "do not have: `temprature.mean`"),
        (lying.sidecar, "does not reproduce its reference batch"),
    ] {
        let (status, body) = upload(sidecar).await;
        assert_problem(status, &body, 422);
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(why)),
            "{body:#}"
        );
    }
    // Neither was registered: the first upload is still the only version.
    let (status, models) = get(&http, &format!("{url}/api/v1/rul/models")).await;
    assert_eq!(status, 200, "{models:#}");
    assert_eq!(
        models["models"]["turbofan"]["versions"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{models:#}"
    );
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_with_an_early_life_baseline_is_fed_the_first_windows_of_the_current_life() {
    use mantis_rul_model::cmapss::Dataset;
    use mantis_rul_model::eval::default_data_dir;
    use mantis_rul_model::{RulModel, Sidecar};

    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, publisher, url, shutdown) = start_service(dir.path()).await;
    let http = reqwest::Client::new();

    // A tiny linear model shaped like a baseline contract (tests/fixtures: 10-cycle windows, the
    // FD001 contract's 15 sensors and their differences from the mean of the first 5 cycles of
    // the life).
    let onnx = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/baseline-linear.onnx"),
    )
    .expect("fixture");
    let mut turbofan = Turbofan::fd001();
    turbofan.sidecar["onnx"] = json!("baseline-linear.onnx");
    turbofan.sidecar["onnx_sha256"] = json!(mantis_rul_model::sha256_hex(&onnx));
    turbofan.sidecar["arch"] = json!("test-linear");
    turbofan.sidecar["window"] = json!(10);
    turbofan.sidecar["baseline"] = json!(5);
    turbofan.sidecar["reference"] = Value::Null;
    turbofan.upload(&http, &url, "turbofan", &onnx).await;
    let sidecar: Sidecar = serde_json::from_value(turbofan.sidecar.clone()).expect("contract");
    let library = RulModel::from_parts(sidecar, &onnx).expect("library model");

    // An earlier life run to failure, then the current one.
    let data = Dataset::load(&default_data_dir(), "FD001").expect("C-MAPSS FD001");
    let (earlier, current) = (&data.train[0].cycles, &data.test[1].cycles);
    let asset = turbofan.register(store.as_ref(), "ENG-B", "turbofan").await;
    let base = chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - 1_000 * WINDOW_MS;
    let failed = turbofan
        .store_cycles(store.as_ref(), &asset, earlier, base)
        .await;
    let event = MaintenanceEvent {
        id: MaintenanceEventId::new_random(),
        asset_id: asset.0,
        kind: MaintenanceEventKind::Failure,
        occurred_at: at(failed),
        work_order_id: None,
        note: "end of the earlier life".into(),
    };
    assert!(store.insert_maintenance_event(&event).await.expect("event"));
    let life_start = failed + 2 * WINDOW_MS;
    // On demand: three windows into the life (fewer than the baseline), then twenty.
    let stored = 20;
    for cycles in [&current[..3], &current[..stored]] {
        turbofan
            .store_cycles(store.as_ref(), &asset, cycles, life_start)
            .await;
        let got = predict_windows(&http, &url, asset.0, "rul/turbofan/v1").await;
        let expected = library.predict(cycles).expect("library prediction");
        assert!(
            (got - expected.rul).abs() < 1e-9,
            "{} cycles into the life: the service predicts {got}, the library {}",
            cycles.len(),
            expected.rul
        );
    }
    // The rest of the life arrives as feature windows: each prediction of the stream is the
    // library's on the life so far (the service loads the life's first windows for it).
    for (c, cycle) in current.iter().enumerate().skip(stored) {
        for fv in turbofan.windows(&asset, cycle, life_start + c as i64 * WINDOW_MS) {
            publisher
                .publish(
                    Some(asset.0.to_string()),
                    &fv,
                    TraceContext::new_root(),
                    vec![],
                )
                .await
                .expect("publish");
        }
    }
    let streamed = current.len() - stored;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let predictions = loop {
        let (_, view) = get(&http, &format!("{url}/api/v1/rul/{}?limit=1000", asset.0)).await;
        assert_eq!(view["model"]["baseline"], 5, "{view:#}");
        let p = view["predictions"].as_array().cloned().unwrap_or_default();
        if p.len() >= streamed {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a prediction per streamed window: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(predictions.len(), streamed, "one per window");
    for p in &predictions {
        let end = chrono::DateTime::parse_from_rfc3339(p["predictedAt"].as_str().expect("time"))
            .expect("a timestamp")
            .timestamp_millis();
        let cycles = usize::try_from((end - life_start) / WINDOW_MS).expect("in the life");
        let expected = library.predict(&current[..cycles]).expect("prediction").rul;
        let got = p["rulCycles"].as_f64().expect("rul");
        assert!(
            (got - expected).abs() < 1e-9,
            "streamed, {cycles} cycles into the life: {got}, the library {expected}"
        );
    }

    // What the model would say were the earlier life's first cycles the baseline: not that.
    let mixed: Vec<mantis_rul_model::Cycle> = earlier[..5]
        .iter()
        .chain(&current[current.len() - 10..])
        .copied()
        .collect();
    let wrong = library.predict(&mixed).expect("prediction").rul;
    let got = predict_windows(&http, &url, asset.0, "rul/turbofan/v1").await;
    assert!(
        (got - wrong).abs() > 1e-6,
        "the baseline is the current life's"
    );
    shutdown.cancel();
}
