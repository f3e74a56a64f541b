//! End to end in the embedded mode: one `mantis` platform in this process (durable log,
//! SQLite), a reading in over HTTP, an alert out over the WebSocket and a work order in the
//! store — through all seven services.

mod common;

use common::*;
use mantis::{Platform, Settings};
use mantis_bus::{StartFrom, SubscribeOptions, topics};
use mantis_store::WorkOrderFilter;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WINDOW_SECS: i64 = 10;

fn settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.infra.data_dir = dir.to_path_buf();
    s.ingestion.bind = "127.0.0.1:0".into();
    s.preprocessing.bind = "127.0.0.1:0".into();
    s.preprocessing.window_secs = WINDOW_SECS as u64;
    // No lateness: the first reading of a later window closes the previous one.
    s.preprocessing.allowed_lateness_secs = 0;
    s.features.bind = "127.0.0.1:0".into();
    s.anomaly.bind = "127.0.0.1:0".into();
    s.anomaly.warmup_windows = 5;
    // One failing window is enough here (no two-window confirmation).
    s.anomaly.confirm_windows = 1;
    s.rul.bind = "127.0.0.1:0".into();
    s.orchestrator.bind = "127.0.0.1:0".into();
    s.gateway.bind = "127.0.0.1:0".into();
    s.gateway.auth.api_keys = test_api_keys();
    s
}

/// A platform running in this process on free ports, stopped by [`Running::stop`].
struct Running {
    gateway: String,
    ws_alerts: String,
    ingestion: String,
    store: std::sync::Arc<dyn mantis_store::Store>,
    bus: std::sync::Arc<dyn mantis_bus::Bus>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<mantis_runtime::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start() -> Self {
        mantis_telemetry::init_test_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let platform = Platform::build(&settings(dir.path()))
            .await
            .expect("platform builds");
        let gateway_port = platform.port("gateway").expect("gateway");
        let ingestion_port = platform.port("ingestion").expect("ingestion");
        let store = platform.infra.store.clone();
        let bus = platform.infra.bus.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(platform.run(shutdown.clone()));
        Self {
            gateway: format!("http://127.0.0.1:{gateway_port}"),
            ws_alerts: format!("ws://127.0.0.1:{gateway_port}/ws"),
            ingestion: format!("http://127.0.0.1:{ingestion_port}"),
            store,
            bus,
            shutdown,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("shuts down in time")
            .expect("joins")
            .expect("clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_motor_raises_a_live_alert_and_one_work_order() {
    let p = Running::start().await;
    let (gateway, ingestion, store) = (p.gateway.clone(), p.ingestion.clone(), p.store.clone());
    let http = common::http();

    // Arrange: a critical motor that has run normally long enough to learn its baseline.
    let (asset, sensor) = register_motor(&http, &gateway, "MTR-E2E").await;
    let base = base_ms();
    post_readings(
        &http,
        &ingestion,
        &sensor,
        &healthy_windows(base, WINDOW_SECS, 0, 7),
    )
    .await;
    await_json(
        &http,
        &format!("{gateway}/api/v1/assets/{asset}"),
        Duration::from_secs(5),
        "the asset",
        |v| v["asset"]["code"] == "MTR-E2E",
    )
    .await;
    let mut ws = connect_alerts(&p.ws_alerts).await;
    // Let the baseline settle before the failure starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Act: its vibration jumps for three windows (the next window's first reading closes the
    // previous one).
    let mut failing = Vec::new();
    for w in 7..10 {
        failing.extend(failing_window(base, WINDOW_SECS, w));
    }
    failing.push((at(base, 10 * WINDOW_SECS), healthy(0)));
    // The device sends W3C trace context; the trace must reach the alert. It posts to the
    // gateway with its API key (the client's default header), which forwards to ingestion.
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let batch: Vec<serde_json::Value> = failing
        .iter()
        .map(|(ts, v)| serde_json::json!({"timestamp": ts, "sensorId": sensor, "value": v}))
        .collect();
    let resp = http
        .post(format!("{gateway}/api/v1/sensors/data"))
        .header("traceparent", trace)
        .json(&batch)
        .send()
        .await
        .expect("gateway reachable");
    assert_eq!(resp.status(), 202);

    // Assert: the alert arrives live, names the asset and its work order ...
    let alert = await_alert_on_ws(&mut ws, &asset, Duration::from_secs(60)).await;
    // ... and its record on alerts.critical continues the device's trace.
    let mut alerts = p
        .bus
        .subscribe(SubscribeOptions::new(
            "trace-check",
            [topics::ALERTS_CRITICAL],
            StartFrom::Earliest,
        ))
        .await
        .expect("subscription");
    let record = tokio::time::timeout(Duration::from_secs(10), alerts.next())
        .await
        .expect("alert record")
        .expect("alert record");
    assert_eq!(
        record.trace().trace_id_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "one trace follows the reading to the alert"
    );
    assert_eq!(alert["kind"], "ANOMALY");
    assert_eq!(alert["severity"], "CRITICAL");
    assert_eq!(alert["notifyOnCall"], true);
    let wo_id = alert["workOrderId"]
        .as_str()
        .expect("alert names its work order")
        .to_owned();

    // ... and however many windows were anomalous, the asset has exactly one work order.
    let anomalies = await_json(
        &http,
        &format!("{gateway}/api/v1/alerts"),
        Duration::from_secs(30),
        "alerts",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(
        anomalies.as_array().map(Vec::len),
        Some(1),
        "one alert per incident"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut stored = Vec::new();
    while stored.len() < 3 && tokio::time::Instant::now() < deadline {
        stored = store.list_anomalies(None, 100).await.expect("anomalies");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        stored.len(),
        3,
        "each of the three failing windows is one anomaly: {stored:#?}"
    );
    let explained_by = |a: &mantis_domain::Anomaly| a.contributions[0].feature.clone();
    assert!(
        stored
            .iter()
            .all(|a| ["mean", "rms"].contains(&explained_by(a).as_str())),
        "the level features explain the failure"
    );
    let orders = store
        .list_work_orders(&WorkOrderFilter::default())
        .await
        .expect("work orders");
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].id.to_string(), wo_id);
    assert_eq!(orders[0].cause, "anomaly");
    let listed = await_json(
        &http,
        &format!("{gateway}/api/v1/work-orders?assetId={asset}"),
        Duration::from_secs(5),
        "work orders",
        |v| v.as_array().is_some_and(|a| a.len() == 1),
    )
    .await;
    assert_eq!(listed[0]["id"], wo_id.as_str());

    // The technician completes it: the bearing had failed. The order is COMPLETED and the
    // failure is a maintenance event of the asset (what the RUL models learn from), with the
    // asset's return to service (a REPAIR) at the completion; a retried call records nothing
    // twice; bad outcomes and unknown orders get problem bodies.
    let complete = format!("{gateway}/api/v1/work-orders/{wo_id}/complete");
    let body = serde_json::json!({"outcome": "FAILURE", "note": "bearing seized"});
    for _ in 0..2 {
        let r = http
            .post(&complete)
            .json(&body)
            .send()
            .await
            .expect("complete");
        assert_eq!(r.status().as_u16(), 200);
        let done: serde_json::Value = r.json().await.expect("json");
        assert_eq!(done["workOrder"]["status"], "COMPLETED", "{done:#}");
        assert_eq!(done["event"]["kind"], "FAILURE", "{done:#}");
        assert_eq!(done["event"]["workOrderId"], wo_id.as_str(), "{done:#}");
        assert_eq!(done["restored"]["kind"], "REPAIR", "{done:#}");
    }
    let events = await_json(
        &http,
        &format!("{gateway}/api/v1/assets/{asset}/events"),
        Duration::from_secs(5),
        "events",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(events.as_array().map(Vec::len), Some(2), "{events:#}");
    // The failure and the return to service, both at the completion (no failure time given).
    let failure = events
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "FAILURE"))
        .expect("the failure");
    assert_eq!(failure["note"], "bearing seized");
    assert!(
        events
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["kind"] == "REPAIR")),
        "{events:#}"
    );
    let r = http
        .post(&complete)
        .json(&serde_json::json!({"outcome": "EXPLODED"}))
        .send()
        .await
        .expect("complete");
    assert_eq!(r.status().as_u16(), 400);
    let problem: serde_json::Value = r.json().await.expect("problem");
    assert!(problem["detail"].is_string(), "{problem:#}");
    let r = http
        .post(format!(
            "{gateway}/api/v1/work-orders/{}/complete",
            mantis_domain::WorkOrderId::new_random()
        ))
        .json(&body)
        .send()
        .await
        .expect("complete");
    assert_eq!(r.status().as_u16(), 404);
    // A maintenance event recorded directly (history from a CMMS), once per client id.
    let event = serde_json::json!({
        "id": "7d2f8a4e-2b1c-4d7e-9a51-0c3b8e6f1a22",
        "kind": "REPLACEMENT",
        "occurredAt": "2026-01-05T08:00:00Z",
        "note": "motor replaced"
    });
    let events_url = format!("{gateway}/api/v1/assets/{asset}/events");
    let first = http
        .post(&events_url)
        .json(&event)
        .send()
        .await
        .expect("event");
    assert_eq!(first.status().as_u16(), 201);
    let again = http
        .post(&events_url)
        .json(&event)
        .send()
        .await
        .expect("event");
    assert_eq!(again.status().as_u16(), 200);
    // Another event under a recorded id is refused, not echoed as if recorded.
    let mut other = event.clone();
    other["kind"] = serde_json::json!("REPAIR");
    let r = http
        .post(&events_url)
        .json(&other)
        .send()
        .await
        .expect("event");
    assert_eq!(r.status().as_u16(), 409);
    let future = serde_json::json!({"kind": "FAILURE", "occurredAt": "2999-01-01T00:00:00Z"});
    let r = http
        .post(&events_url)
        .json(&future)
        .send()
        .await
        .expect("event");
    assert_eq!(r.status().as_u16(), 400);
    let unknown_order = serde_json::json!({
        "kind": "REPAIR",
        "occurredAt": "2026-01-06T08:00:00Z",
        "workOrderId": mantis_domain::WorkOrderId::new_random()
    });
    let r = http
        .post(&events_url)
        .json(&unknown_order)
        .send()
        .await
        .expect("event");
    assert_eq!(r.status().as_u16(), 400, "an unknown work order is refused");

    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_readings_get_a_problem_body_naming_the_field() {
    let p = Running::start().await;
    let (gateway, ingestion) = (p.gateway.clone(), p.ingestion.clone());
    let http = common::http();
    let (_, sensor) = register_motor(&http, &gateway, "MTR-BAD").await;

    let cases = [
        (
            serde_json::json!({"timestamp": "soon", "sensorId": sensor, "value": 1.0}),
            "/timestamp",
        ),
        (
            serde_json::json!({"timestamp": base_ms(), "sensorId": sensor, "value": "x"}),
            "/value",
        ),
        (
            serde_json::json!({"timestamp": base_ms(), "sensorId": sensor, "value": 1.0, "unit": "g"}),
            "/unit",
        ),
        (
            serde_json::json!({"timestamp": base_ms(), "sensorId": "00000000-0000-4000-8000-000000000000", "value": 1.0}),
            "/sensorId",
        ),
    ];
    for (body, pointer) in cases {
        let resp = http
            .post(format!("{ingestion}/api/v1/sensors/data"))
            .json(&body)
            .send()
            .await
            .expect("reachable");
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        let problem: serde_json::Value = resp.json().await.expect("problem body");
        assert_eq!(problem["errors"][0]["pointer"], pointer, "{problem}");
    }
    let resp = http
        .post(format!("{ingestion}/api/v1/sensors/data"))
        .body("{}")
        .send()
        .await
        .expect("reachable");
    assert_eq!(resp.status(), 415);

    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_through_the_platform_has_the_features_of_the_library_called_directly() {
    let p = Running::start().await;
    let http = common::http();

    // Arrange: a vibration sensor sampled at 100 Hz.
    let resp = http
        .post(format!("{}/api/v1/assets", p.gateway))
        .json(&serde_json::json!({
            "code": "FAN-DSP", "name": "Fan", "assetType": "fan", "criticality": "LOW",
            "sensors": [{"code": "FAN-DSP-VIB", "sensorType": "VIBRATION", "unit": "mm/s",
                         "minValue": -100.0, "maxValue": 100.0, "samplingRateHz": 100.0}]
        }))
        .send()
        .await
        .expect("gateway reachable");
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value = resp.json().await.expect("json");
    let asset = created["asset"]["id"]
        .as_str()
        .expect("asset id")
        .to_owned();
    let sensor = created["sensors"][0]["id"]
        .as_str()
        .expect("sensor id")
        .to_owned();

    // Act: one 10 s window of a shaft tone, a bearing tone and a spike, plus the reading that
    // closes it.
    let base = base_ms();
    let signal = |i: i64| {
        let t = i as f64 / 100.0;
        let spike = if i == 321 { 25.0 } else { 0.0 };
        3.0 * (2.0 * std::f64::consts::PI * 12.5 * t).sin()
            + 0.7 * (2.0 * std::f64::consts::PI * 31.0 * t).sin()
            + 0.05 * healthy(i)
            + spike
    };
    let n = WINDOW_SECS * 100;
    let mut readings: Vec<(i64, f64)> = (0..n).map(|i| (base + i * 10, signal(i))).collect();
    readings.push((base + n * 10, 0.0));
    post_readings(&http, &p.ingestion, &sensor, &readings).await;

    // Assert: the features served by the API equal the library's on the same readings.
    let served = await_json(
        &http,
        &format!("{}/api/v1/features/{asset}", p.gateway),
        Duration::from_secs(60),
        "the window's features",
        |v| v["features"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let vector: mantis_domain::FeatureVector =
        serde_json::from_value(served["features"][0]["vector"].clone()).expect("a feature vector");

    let config = settings(std::path::Path::new("unused"))
        .preprocessing
        .preprocess_config(mantis_domain::SensorType::Vibration, 100.0)
        .expect("config");
    let mut pre = mantis_dsp::Preprocessor::new(config).expect("preprocessor");
    let t: Vec<f64> = readings[..n as usize]
        .iter()
        .map(|(ms, _)| *ms as f64 / 1000.0)
        .collect();
    let x: Vec<f64> = readings[..n as usize].iter().map(|(_, v)| *v).collect();
    let mut out = mantis_dsp::Preprocessed::default();
    pre.process(&t, &x, &mut out).expect("preprocessed");
    assert!(out.report.spikes >= 1, "the spike is cleaned");
    let values = out.signal.values.clone();
    let stats = mantis_dsp::WindowStats::of(&values).expect("stats");
    let window = mantis_domain::Window {
        asset_id: vector.asset_id,
        sensor_id: vector.sensor_id,
        sensor_type: mantis_domain::SensorType::Vibration,
        window_start: vector.window_start,
        window_end: vector.window_end,
        count: values.len() as u32,
        mean: stats.mean,
        std: stats.std,
        min: stats.min,
        max: stats.max,
        sample_rate_hz: out.signal.rate_hz,
        values,
    };
    let expected = mantis_features::Extractors::default()
        .extract(&window)
        .expect("library features");
    assert_eq!(vector.feature_set_version, expected.feature_set_version);
    assert_eq!(
        vector.features.keys().collect::<Vec<_>>(),
        expected.features.keys().collect::<Vec<_>>()
    );
    assert!(vector.features.contains_key("spectral_peak_frequency_hz"));
    for (name, want) in &expected.features {
        let got = vector.features[name];
        let tol = 1e-9 * want.abs().max(1e-12);
        assert!(
            (got - want).abs() <= tol || (got.is_nan() && want.is_nan()),
            "{name}: platform {got} vs library {want}"
        );
    }
    p.stop().await;
}
