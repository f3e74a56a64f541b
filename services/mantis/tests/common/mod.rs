//! Helpers shared by the end-to-end tests: named after what a plant does.

#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod s3;

use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

/// The API key the tests' gateways accept (an admin key given in the configuration).
pub const TEST_API_KEY: &str = "mantis-tests-admin-key-0123456789abcdef";

/// The `[gateway.auth]` setting that makes a gateway accept [`TEST_API_KEY`], as a
/// `MANTIS_GATEWAY__AUTH__API_KEYS` value.
pub fn test_api_keys_env() -> (&'static str, String) {
    (
        "MANTIS_GATEWAY__AUTH__API_KEYS",
        format!("[{{name=\"tests\",key=\"{TEST_API_KEY}\",role=\"admin\"}}]"),
    )
}

/// The same, as configuration for an in-process gateway.
pub fn test_api_keys() -> Vec<mantis_gateway::StaticApiKey> {
    vec![mantis_gateway::StaticApiKey {
        name: "tests".into(),
        key: TEST_API_KEY.into(),
        role: mantis_domain::Role::Admin,
        tenant: mantis_domain::TenantId::DEFAULT,
    }]
}

/// An HTTP client that authenticates to the gateway with [`TEST_API_KEY`] (the other services
/// ignore the header).
pub fn http() -> reqwest::Client {
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

/// A reading timestamp: `secs` seconds after a fixed point one hour ago, aligned to a minute,
/// so windows are predictable.
pub fn at(base_ms: i64, secs: i64) -> i64 {
    base_ms + secs * 1000
}

/// One hour ago, aligned to the minute.
pub fn base_ms() -> i64 {
    let now = chrono::Utc::now().timestamp_millis() - 3_600_000;
    now - now.rem_euclid(60_000)
}

/// Registers a CRITICAL motor with one vibration sensor through the gateway; returns
/// (asset id, sensor id).
pub async fn register_motor(http: &reqwest::Client, gateway: &str, code: &str) -> (String, String) {
    let body = json!({
        "code": code,
        "name": format!("Motor {code}"),
        "assetType": "motor",
        "criticality": "CRITICAL",
        "sensors": [{
            "code": format!("{code}-VIB"),
            "sensorType": "VIBRATION",
            "unit": "mm/s",
            "minValue": 0.0,
            "maxValue": 100.0,
            "samplingRateHz": 1.0
        }]
    });
    let resp = http
        .post(format!("{gateway}/api/v1/assets"))
        .json(&body)
        .send()
        .await
        .expect("gateway reachable");
    assert_eq!(resp.status(), 201, "asset registration refused");
    let v: Value = resp.json().await.expect("json");
    (
        v["asset"]["id"].as_str().expect("asset id").to_owned(),
        v["sensors"][0]["id"]
            .as_str()
            .expect("sensor id")
            .to_owned(),
    )
}

/// Healthy vibration around 2 mm/s with deterministic pseudo-random noise (±0.15).
pub fn healthy(i: i64) -> f64 {
    // A hash of the sample index, so every run sends the same signal.
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
    2.0 + 0.3 * (unit - 0.5)
}

/// Posts readings `(timestamp ms, value)` of `sensor` as one batch; panics unless accepted.
pub async fn post_readings(
    http: &reqwest::Client,
    ingestion: &str,
    sensor: &str,
    readings: &[(i64, f64)],
) {
    let batch: Vec<Value> = readings
        .iter()
        .map(|(ts, v)| json!({"timestamp": ts, "sensorId": sensor, "value": v, "unit": "mm/s"}))
        .collect();
    let resp = http
        .post(format!("{ingestion}/api/v1/sensors/data"))
        .json(&batch)
        .send()
        .await
        .expect("ingestion reachable");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 202, "readings refused: {text}");
}

/// `count` windows of healthy readings (one per second) starting at window `first`.
pub fn healthy_windows(base: i64, window_secs: i64, first: i64, count: i64) -> Vec<(i64, f64)> {
    (first * window_secs..(first + count) * window_secs)
        .map(|s| (at(base, s), healthy(s)))
        .collect()
}

/// One window of readings far above the healthy level, starting at window `index`.
pub fn failing_window(base: i64, window_secs: i64, index: i64) -> Vec<(i64, f64)> {
    (index * window_secs..(index + 1) * window_secs)
        .map(|s| (at(base, s), 9.0 + 0.1 * ((s as f64) * 0.3).cos()))
        .collect()
}

/// Polls `url` until `check` accepts the JSON it returns, or panics after `timeout`.
pub async fn await_json<F: Fn(&Value) -> bool>(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    what: &str,
    check: F,
) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        if let Ok(resp) = http.get(url).send().await
            && let Ok(v) = resp.json::<Value>().await
        {
            if check(&v) {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what} at {url}; last answer: {last}");
}

/// Connects to the gateway's WebSocket (`ws://host:port/ws`) with [`TEST_API_KEY`] and
/// subscribes to alerts.
pub async fn connect_alerts(
    ws_url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = ws_url.into_client_request().expect("a WebSocket URL");
    request
        .headers_mut()
        .insert("x-api-key", TEST_API_KEY.parse().expect("a header value"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket connects");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"type":"subscribe","channel":"alerts"}"#.into(),
    ))
    .await
    .expect("subscribe");
    // The greeting, then the confirmation: alerts flow after it.
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the gateway answers the subscription")
            .expect("WebSocket open")
            .expect("WebSocket message");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("JSON");
            if v["type"] == "subscribed" {
                return ws;
            }
        }
    }
}

/// Waits for an alert about `asset` on the WebSocket.
pub async fn await_alert_on_ws(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    asset: &str,
    timeout: Duration,
) -> Value {
    let fut = async {
        while let Some(msg) = ws.next().await {
            let msg = msg.expect("WebSocket message");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("message is JSON");
                if v["type"] == "alert" && v["data"]["assetId"] == asset {
                    return v["data"].clone();
                }
            }
        }
        panic!("WebSocket closed before an alert about {asset} arrived");
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| panic!("no alert about {asset} on the WebSocket within {timeout:?}"))
}
