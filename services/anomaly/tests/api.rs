//! The anomaly service in-process (embedded log, SQLite, local object store): models trained
//! on an asset's stored feature history through the API, versioned in the registry, promoted
//! and rolled back, scoring ad-hoc vectors and the windows the consumer receives, reporting
//! the drift of the windows after the training period; bad requests get problem bodies.

use mantis_anomaly::{Config, build, latest_score_key};
use mantis_bus::TraceContext;
use mantis_bus::embedded::EmbeddedBus;
use mantis_domain::{
    Asset, AssetId, Criticality, FeatureVector, Sensor, SensorId, SensorType, TenantId,
};
use mantis_objects::LocalObjects;
use mantis_runtime::{Infra, Publisher};
use mantis_store::Store;
use mantis_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WINDOW_MS: i64 = 10_000;
/// History windows stored per sensor before the tests start.
const HISTORY: i64 = 80;

struct Service {
    infra: Infra,
    url: String,
    asset: AssetId,
    sensor: SensorId,
    /// An asset with too little history for a model, and its sensor.
    young: AssetId,
    young_sensor: SensorId,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn base_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() / WINDOW_MS * WINDOW_MS - (HISTORY + 10) * WINDOW_MS
}

/// A window's features: the level of a healthy motor with a little deterministic wobble,
/// shifted by `shift` (0: normal).
fn features(asset: AssetId, sensor: SensorId, start_ms: i64, shift: f64) -> FeatureVector {
    let i = start_ms / WINDOW_MS;
    let wobble = ((i as f64) * 1.37).sin() * 0.08 + ((i as f64) * 0.61).cos() * 0.05;
    let start = chrono::DateTime::from_timestamp_millis(start_ms).expect("time");
    FeatureVector {
        asset_id: asset,
        sensor_id: sensor,
        sensor_type: SensorType::Vibration,
        window_start: start,
        window_end: start + chrono::Duration::milliseconds(WINDOW_MS),
        feature_set_version: "v1".into(),
        features: BTreeMap::from([
            ("mean".to_owned(), 2.0 + wobble + shift),
            ("rms".to_owned(), 2.01 + wobble + shift),
            ("std".to_owned(), 0.15 + wobble.abs() * 0.2 + shift * 0.3),
            ("peak_to_peak".to_owned(), 0.6 + wobble.abs() + shift),
            ("kurtosis".to_owned(), 2.9 + wobble),
            ("sample_count".to_owned(), 10.0),
        ]),
    }
}

async fn register(store: &dyn Store, code: &str) -> (AssetId, SensorId) {
    let asset = Asset {
        id: AssetId::new_random(),
        tenant_id: TenantId::DEFAULT,
        code: code.into(),
        name: format!("{code} motor"),
        asset_type: "motor".into(),
        location: "test".into(),
        criticality: Criticality::Critical,
    };
    store.upsert_asset(&asset).await.expect("asset");
    let sensor = Sensor {
        id: SensorId::new_random(),
        asset_id: asset.id,
        code: format!("{code}-VIB"),
        sensor_type: SensorType::Vibration,
        unit: "mm/s".into(),
        min_value: 0.0,
        max_value: 50.0,
        sampling_rate_hz: 1.0,
    };
    store.upsert_sensor(&sensor).await.expect("sensor");
    (asset.id, sensor.id)
}

async fn start() -> Service {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path().join("log"))
        .await
        .expect("log");
    let store = SqliteStore::in_memory().await.expect("sqlite");
    let mut infra = Infra::in_process(Arc::new(bus), Arc::new(store));
    infra.objects = Arc::new(LocalObjects::open(dir.path().join("objects")).expect("objects"));
    infra.ensure_topics(&[]).await.expect("topics");
    let (asset, sensor) = register(infra.store.as_ref(), "MTR-API").await;
    let (young, young_sensor) = register(infra.store.as_ref(), "MTR-NEW").await;
    let base = base_ms();
    for i in 0..HISTORY {
        let at = base + i * WINDOW_MS;
        infra
            .store
            .insert_features(&features(asset, sensor, at, 0.0))
            .await
            .expect("history");
    }
    for i in 0..5 {
        infra
            .store
            .insert_features(&features(young, young_sensor, base + i * WINDOW_MS, 0.0))
            .await
            .expect("short history");
    }
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        auto_train_after_secs: 0,
        warmup_windows: 5,
        // Each window judged alone: one shifted window is an anomaly.
        confirm_windows: 1,
        ..Config::default()
    };
    config.training.min_windows = 40;
    let app = build(infra.clone(), config).await.expect("service");
    let url = format!("http://127.0.0.1:{}", app.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    Service {
        infra,
        url,
        asset,
        sensor,
        young,
        young_sensor,
        shutdown,
        _dir: dir,
    }
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value, String) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v, kind)
}

async fn post(url: String, body: Value) -> (u16, Value, String) {
    call(reqwest::Method::POST, url, Some(body)).await
}

async fn get(url: String) -> (u16, Value, String) {
    call(reqwest::Method::GET, url, None).await
}

fn detect_body(s: &Service, shift: f64) -> Value {
    let fv = features(s.asset, s.sensor, 0, shift);
    json!({"assetId": s.asset, "sensorId": s.sensor, "features": fv.features})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_trained_through_the_api_scores_and_explains() {
    let s = start().await;
    let (status, trained, _) = post(
        format!("{}/api/v1/anomalies/train", s.url),
        json!({"assetId": s.asset}),
    )
    .await;
    assert_eq!(status, 201, "{trained:#}");
    assert_eq!(trained["version"], 1);
    assert_eq!(trained["promoted"], true);
    assert_eq!(
        trained["report"]["windows"][s.sensor.to_string()],
        HISTORY,
        "{trained:#}"
    );

    let (status, normal, _) = post(
        format!("{}/api/v1/anomalies/detect", s.url),
        detect_body(&s, 0.0),
    )
    .await;
    assert_eq!(status, 200, "{normal:#}");
    assert_eq!(normal["aboveThreshold"], false, "{normal:#}");
    assert_eq!(normal["modelVersion"], 1);
    let detectors = normal["detectors"].as_object().expect("detectors");
    for kind in [
        "robust_z",
        "isolation_forest",
        "one_class_svm",
        "autoencoder",
    ] {
        assert!(detectors[kind].is_number(), "{kind}: {normal:#}");
    }

    let (status, shifted, _) = post(
        format!("{}/api/v1/anomalies/detect", s.url),
        detect_body(&s, 3.0),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shifted["aboveThreshold"], true, "{shifted:#}");
    assert!(
        shifted["score"].as_f64().is_some_and(|v| v > 0.9),
        "{shifted:#}"
    );
    let top = shifted["contributions"][0]["feature"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        ["mean", "rms", "peak_to_peak", "std"].contains(&top.as_str()),
        "the shifted level features explain it: {shifted:#}"
    );

    let (status, view, _) = get(format!("{}/api/v1/anomalies/{}", s.url, s.asset)).await;
    assert_eq!(status, 200);
    assert_eq!(view["model"]["version"], 1, "{view:#}");
    assert_eq!(view["threshold"], 0.75);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_scores_windows_with_the_served_model() {
    let s = start().await;
    let (status, _, _) = post(
        format!("{}/api/v1/anomalies/train", s.url),
        json!({"assetId": s.asset}),
    )
    .await;
    assert_eq!(status, 201);

    let publisher = Publisher::new(s.infra.bus.clone(), s.infra.codec.clone(), "test");
    let start = base_ms() + (HISTORY + 2) * WINDOW_MS;
    for (i, shift) in [0.0, 3.0].into_iter().enumerate() {
        let fv = features(s.asset, s.sensor, start + i as i64 * WINDOW_MS, shift);
        publisher
            .publish(
                Some(s.asset.to_string()),
                &fv,
                TraceContext::new_root(),
                vec![],
            )
            .await
            .expect("publish");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let scores = loop {
        let scores = s
            .infra
            .store
            .list_anomaly_scores(s.asset, 10)
            .await
            .expect("scores");
        if scores.len() >= 2 {
            break scores;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "windows not scored: {scores:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Newest first: the shifted window is an anomaly, the normal one is not.
    assert!(scores[0].anomaly_id.is_some(), "{scores:#?}");
    assert!(scores[1].anomaly_id.is_none(), "{scores:#?}");
    for row in &scores {
        assert_eq!(row.method, "ensemble");
        assert_eq!(row.model_version.as_deref(), Some("1"));
        assert!(row.isolation_forest_score.is_some() && row.ocsvm_score.is_some());
        assert!(row.autoencoder_score.is_some() && row.zscore_score.is_some());
    }
    let anomalies = s
        .infra
        .store
        .list_anomalies(Some(s.asset), 10)
        .await
        .expect("anomalies");
    assert_eq!(anomalies.len(), 1);
    // Explained by the features behind the score, each with its robust z-score against the
    // training windows (what an operator reads), not its share of the score.
    let top = anomalies[0].contributions.first().expect("an explanation");
    assert!(top.z_score > 5.0, "{:#?}", anomalies[0].contributions);
    // The latest score is cached for the dashboards.
    let cached = s
        .infra
        .cache
        .get(&latest_score_key(s.asset))
        .await
        .expect("cache");
    assert!(cached.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_promoted_and_rolled_back() {
    let s = start().await;
    let train = |promote: bool| {
        post(
            format!("{}/api/v1/anomalies/train", s.url),
            json!({"assetId": s.asset, "promote": promote}),
        )
    };
    assert_eq!(train(true).await.0, 201);
    let (status, second, _) = train(false).await;
    assert_eq!(status, 201);
    assert_eq!(second["version"], 2);
    let models = format!("{}/api/v1/anomalies/{}/models", s.url, s.asset);
    let (_, listed, _) = get(models.clone()).await;
    assert_eq!(listed["promoted"], 1, "{listed:#}");
    assert_eq!(listed["servedVersion"], 1);
    assert_eq!(listed["versions"].as_array().map(Vec::len), Some(2));

    let (status, _, _) = post(format!("{models}/2/promote"), json!({})).await;
    assert_eq!(status, 200);
    let (_, listed, _) = get(models.clone()).await;
    assert_eq!(listed["servedVersion"], 2, "{listed:#}");

    let (status, back, _) = post(format!("{models}/rollback"), json!({})).await;
    assert_eq!(status, 200, "{back:#}");
    assert_eq!(back["promoted"], 1);
    let (_, listed, _) = get(models.clone()).await;
    assert_eq!(listed["servedVersion"], 1, "{listed:#}");

    let (status, problem, kind) = post(format!("{models}/rollback"), json!({})).await;
    assert_eq!(status, 409, "nothing earlier to roll back to: {problem:#}");
    assert_eq!(kind, "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_bodies() {
    let s = start().await;
    let train = format!("{}/api/v1/anomalies/train", s.url);
    let cases: Vec<(u16, (u16, Value, String))> = vec![
        (400, post(train.clone(), json!({})).await),
        (400, post(train.clone(), json!({"assetId": "nope"})).await),
        (
            404,
            post(train.clone(), json!({"assetId": AssetId::new_random()})).await,
        ),
        (422, post(train.clone(), json!({"assetId": s.young})).await),
        (
            409,
            post(
                format!("{}/api/v1/anomalies/detect", s.url),
                json!({"assetId": s.young, "sensorId": s.young_sensor, "features": {"mean": 1.0}}),
            )
            .await,
        ),
        (
            400,
            get(format!("{}/api/v1/anomalies/not-a-uuid", s.url)).await,
        ),
        (
            400,
            get(format!("{}/api/v1/anomalies/{}?limit=many", s.url, s.asset)).await,
        ),
        (
            400,
            post(
                format!("{}/api/v1/anomalies/detect", s.url),
                json!({"assetId": s.asset, "sensorId": SensorId::new_random(), "features": {"mean": 1.0}}),
            )
            .await,
        ),
        (
            404,
            post(
                format!("{}/api/v1/anomalies/{}/models/99/promote", s.url, s.asset),
                json!({}),
            )
            .await,
        ),
    ];
    for (expected, (status, body, kind)) in cases {
        assert_eq!(status, expected, "{body:#}");
        assert_eq!(kind, "application/problem+json", "{body:#}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body:#}"
        );
    }
    // A raw non-JSON body too.
    let resp = reqwest::Client::new()
        .post(train)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_view_reports_drift_from_the_training_data() {
    let s = start().await;
    // A second motor whose level moves up after its first 40 windows; both models learn the
    // first 40 windows only, so the last 40 are compared with them.
    let (moved, moved_sensor) = register(s.infra.store.as_ref(), "MTR-MOVED").await;
    let base = base_ms();
    for i in 0..HISTORY {
        let shift = if i < 40 { 0.0 } else { 3.0 };
        s.infra
            .store
            .insert_features(&features(moved, moved_sensor, base + i * WINDOW_MS, shift))
            .await
            .expect("history");
    }
    let to = chrono::DateTime::from_timestamp_millis(base + 40 * WINDOW_MS).expect("time");
    for asset in [s.asset, moved] {
        let (status, trained, _) = post(
            format!("{}/api/v1/anomalies/train", s.url),
            json!({"assetId": asset, "to": to}),
        )
        .await;
        assert_eq!(status, 201, "{trained:#}");
    }

    let (status, steady, _) = get(format!("{}/api/v1/anomalies/{}", s.url, s.asset)).await;
    assert_eq!(status, 200, "{steady:#}");
    let d = &steady["drift"][s.sensor.to_string()];
    assert_eq!(d["windows"], 40, "{steady:#}");
    assert_eq!(d["drifted"], false, "the same distribution: {steady:#}");
    assert!(d["maxPsi"].as_f64().is_some_and(|v| v >= 0.0), "{steady:#}");
    assert!(
        d["chancePsi"].as_f64().is_some_and(|c| c > 0.0),
        "{steady:#}"
    );

    let (status, view, _) = get(format!("{}/api/v1/anomalies/{moved}", s.url)).await;
    assert_eq!(status, 200, "{view:#}");
    let d = &view["drift"][moved_sensor.to_string()];
    assert_eq!(d["windows"], 40, "{view:#}");
    assert_eq!(d["drifted"], true, "{view:#}");
    let max = d["maxPsi"].as_f64().expect("maxPsi");
    assert!(
        max > d["chancePsi"].as_f64().expect("chancePsi"),
        "{view:#}"
    );
    // Per feature: the moved level is what drifted; the maximum is one of them.
    let psi = d["psi"].as_object().expect("psi per feature");
    assert!(psi["mean"].as_f64().is_some_and(|v| v > 1.0), "{view:#}");
    assert!(
        psi.values().filter_map(Value::as_f64).any(|v| v == max),
        "{view:#}"
    );
    assert!(
        !psi.contains_key("sample_count"),
        "not a model input: {view:#}"
    );

    // No model yet: no drift either.
    let (status, young, _) = get(format!("{}/api/v1/anomalies/{}", s.url, s.young)).await;
    assert_eq!(status, 200, "{young:#}");
    assert!(
        young["model"].is_null() && young["drift"].is_null(),
        "{young:#}"
    );
}
