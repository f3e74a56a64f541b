//! `mantis demo` end to end, in this process: the simulated plant served over OPC UA and
//! Modbus TCP by the in-process device simulators, read back by the ingestion service's
//! connectors (configured by the demo itself), learned, and alerting on the machines that wear
//! while the healthy ones stay quiet. The MQTT publisher is pointed at a port where no broker
//! listens, so the conveyors take the documented in-process fallback.

use mantis::Settings;
use mantis_domain::{AssetId, deterministic_uuid};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use mantis_telemetry::testing::free_port;

fn asset(code: &str) -> String {
    AssetId(deterministic_uuid("demo-asset", &[code])).to_string()
}

async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

const TEST_API_KEY: &str = "mantis-tests-admin-key-0123456789abcdef";

/// A client the gateway lets in (the other services ignore the key).
fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-api-key",
        reqwest::header::HeaderValue::from_static(TEST_API_KEY),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plant_flows_through_opcua_and_modbus_and_only_wearing_machines_alert() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (gateway_port, ingestion_port, anomaly_port, rul_port) =
        (free_port(), free_port(), free_port(), free_port());
    let mut s = Settings::demo_defaults();
    s.infra.data_dir = dir.path().to_path_buf();
    s.gateway.bind = format!("127.0.0.1:{gateway_port}");
    s.ingestion.bind = format!("127.0.0.1:{ingestion_port}");
    s.preprocessing.bind = "127.0.0.1:0".into();
    s.features.bind = "127.0.0.1:0".into();
    s.anomaly.bind = format!("127.0.0.1:{anomaly_port}");
    s.rul.bind = format!("127.0.0.1:{rul_port}");
    s.orchestrator.bind = "127.0.0.1:0".into();
    s.gateway.auth.api_keys = vec![mantis_gateway::StaticApiKey {
        name: "tests".into(),
        key: TEST_API_KEY.into(),
        role: mantis_domain::Role::Admin,
        tenant: mantis_domain::TenantId::DEFAULT,
    }];
    // No broker there: the conveyors stay in-process (and say so).
    s.demo.devices.mqtt_broker = format!("127.0.0.1:{}", free_port());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(mantis::run(s, true, shutdown.clone()));
    let http = http_client();
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let ingestion = format!("http://127.0.0.1:{ingestion_port}");
    let anomaly = format!("http://127.0.0.1:{anomaly_port}");
    let rul = format!("http://127.0.0.1:{rul_port}");
    let wearing = [asset("MTR-001"), asset("PMP-001")];
    let healthy: Vec<(String, &str)> = ["MTR-002", "PMP-002", "CNV-002", "FAN-002"]
        .iter()
        .map(|c| (asset(c), *c))
        .collect();

    // The models trained on the replayed history score the plant: the wearing motor's live
    // anomalies come from its ensemble and name the features behind them (the replayed past
    // lives, run to failure, alerted already: the robust baseline scores history).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let view = loop {
        let view = get(&http, &format!("{anomaly}/api/v1/anomalies/{}", wearing[0]))
            .await
            .unwrap_or_default();
        let by_model = view["anomalies"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["method"] == "ensemble"
                    && x["contributions"].as_array().is_some_and(|c| !c.is_empty())
            })
        });
        if by_model {
            break view;
        }
        if task.is_finished() {
            panic!("the demo stopped early: {:?}", task.await);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no explained ensemble anomaly on the wearing motor: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Wait for alerts on the critical motor (OPC UA) and the pump (Modbus).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let alerts = loop {
        if task.is_finished() {
            panic!("the demo stopped early: {:?}", task.await);
        }
        let alerts = get(&http, &format!("{gateway}/api/v1/alerts"))
            .await
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let alerted = |id: &String| alerts.iter().any(|a| a["assetId"] == id.as_str());
        if wearing.iter().all(alerted) {
            break alerts;
        }
        if tokio::time::Instant::now() >= deadline {
            let connectors = get(&http, &format!("{ingestion}/api/v1/connectors")).await;
            panic!(
                "no alert on both wearing machines within 150 s; alerts: {alerts:#?}; connectors: {connectors:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (id, code) in &healthy {
        if alerts.iter().any(|a| a["assetId"] == id.as_str()) {
            let view = get(&http, &format!("{anomaly}/api/v1/anomalies/{id}")).await;
            panic!("healthy {code} alerted: {alerts:#?}; its anomalies: {view:#?}");
        }
    }
    let orders = get(
        &http,
        &format!("{gateway}/api/v1/work-orders?assetId={}", wearing[0]),
    )
    .await
    .expect("work orders");
    assert!(
        orders.as_array().is_some_and(|o| !o.is_empty()),
        "the critical motor has a work order: {orders}"
    );

    assert!(view["model"]["version"].as_u64().is_some(), "{view:#}");
    let scored = view["scores"].as_array().cloned().unwrap_or_default();
    assert!(
        scored.iter().any(|r| r["isolationForestScore"].is_number()
            && r["ocsvmScore"].is_number()
            && r["autoencoderScore"].is_number()
            && r["zscoreScore"].is_number()),
        "every detector's score is stored: {scored:#?}"
    );
    for (id, code) in &healthy {
        let view = get(&http, &format!("{anomaly}/api/v1/anomalies/{id}"))
            .await
            .expect("anomaly view");
        assert!(
            view["model"]["version"].as_u64().is_some(),
            "{code} has a model: {view:#}"
        );
        assert_eq!(
            view["anomalies"],
            serde_json::json!([]),
            "healthy {code}: {view:#}"
        );
    }

    // RUL: models trained on the past lives (runs to failure) predict every machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let view = get(&http, &format!("{rul}/api/v1/rul/{}", wearing[0]))
            .await
            .unwrap_or_default();
        if view["predictions"].as_array().is_some_and(|p| p.len() >= 3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "RUL predictions of the wearing motor: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Healthy machines are predicted near the label cap (their remaining life is "at least"
    // the wear phase), far above their RUL thresholds; the wearing motor's prediction falls
    // toward its failure.
    let demo = Settings::demo_defaults();
    let cap_cycles = |asset_type: &str| {
        demo.rul.training.label_cap.unwrap_or(f64::INFINITY)
            * demo
                .rul
                .cycles_per_window(asset_type, demo.preprocessing.window_secs as f64)
    };
    let predictions = |view: &Value| -> Vec<f64> {
        view["predictions"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x["rulCycles"].as_f64()).collect())
            .unwrap_or_default()
    };
    for (code, asset_type) in [
        ("MTR-002", "motor"),
        ("PMP-002", "pump"),
        ("CNV-002", "conveyor"),
        ("FAN-002", "fan"),
    ] {
        // Each type's model is trained in turn (the motor's may be served before the pump's):
        // its machines are predicted from the next windows on. Three at least, as the motor's.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut p = loop {
            let view = get(
                &http,
                &format!("{rul}/api/v1/rul/{}?limit=500", asset(code)),
            )
            .await
            .unwrap_or_default();
            let p = predictions(&view);
            if p.len() >= 3 {
                break p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "healthy {code} has RUL predictions: {view:#}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        p.sort_by(f64::total_cmp);
        let median = p[p.len() / 2];
        assert!(
            median > 0.6 * cap_cycles(asset_type),
            "healthy {code}: median RUL {median:.0} cycles of a {:.0} cap: {p:?}",
            cap_cycles(asset_type)
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let view = get(&http, &format!("{rul}/api/v1/rul/{}", wearing[0]))
            .await
            .unwrap_or_default();
        let p = predictions(&view);
        // Newest first: the last three below a third of the cap.
        if p.len() >= 3 && p[..3].iter().all(|r| *r < cap_cycles("motor") / 3.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wearing motor's RUL falls: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The readings came through the real connectors.
    let connectors = get(&http, &format!("{ingestion}/api/v1/connectors"))
        .await
        .expect("connector statuses");
    let by_name = |n: &str| {
        connectors
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("no connector {n}: {connectors:#}"))
    };
    for name in ["demo-opcua", "demo-modbus"] {
        let c = by_name(name);
        assert_eq!(c["state"], "CONNECTED", "{c:#}");
        assert!(
            c["readingsTotal"].as_u64().is_some_and(|n| n > 100),
            "{name} delivered readings: {c:#}"
        );
    }
    assert!(
        connectors
            .as_array()
            .is_some_and(|a| a.iter().all(|c| c["name"] != "demo-mqtt")),
        "without a broker the conveyors stay in-process: {connectors:#}"
    );
    // The demo's OPC UA server can be browsed through the connector.
    let plant = get(
        &http,
        &format!("{ingestion}/api/v1/connectors/demo-opcua/browse"),
    )
    .await
    .expect("browse");
    assert!(
        plant
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n["browseName"] == "DemoPlant")),
        "{plant:#}"
    );

    // The line counters' week of production gives OEE a measured quality and performance: a
    // wearing machine rejects more than a healthy one, and runs slower.
    let kpis = get(&http, &format!("{gateway}/api/v1/kpis"))
        .await
        .expect("KPIs");
    let term = |code: &str, name: &str| {
        kpis["assets"]
            .as_array()
            .and_then(|a| a.iter().find(|k| k["assetCode"] == code))
            .and_then(|k| k[name].as_f64())
            .unwrap_or_else(|| panic!("{code}'s {name} in {kpis:#}"))
    };
    let quality = |code: &str| term(code, "quality");
    assert!(
        quality("MTR-001") < quality("MTR-002") && quality("MTR-001") > 0.9,
        "{kpis:#}"
    );
    let performance = |code: &str| term(code, "performance");
    assert!(
        performance("MTR-001") < performance("MTR-002") && performance("MTR-001") > 0.5,
        "{kpis:#}"
    );
    // The plant's production calendar: a 30-minute lunch break a day, left out of the week's
    // planned production time (the line makes nothing then, so performance is unchanged).
    assert!(
        (term("MTR-002", "plannedStopHours") - 3.5).abs() < 1e-6,
        "{kpis:#}"
    );
    let breaks = get(&http, &format!("{gateway}/api/v1/planned-stops"))
        .await
        .expect("planned stops");
    assert!(
        breaks.as_array().is_some_and(|b| b.len() >= 7
            && b.iter()
                .all(|s| s["assetId"].is_null() && s["reason"] == "lunch break")),
        "{breaks:#}"
    );
    assert!(
        kpis["total"]["oeeBasis"]
            .as_str()
            .is_some_and(|b| b.contains("good ÷ all units") && b.contains("ideal cycle")),
        "{kpis:#}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the demo stops in time")
        .expect("joins")
        .expect("clean shutdown");
}
