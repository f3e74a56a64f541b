//! Anomaly and RUL models in the cluster mode: every service its own process over tansu,
//! PostgreSQL and Redis, and the model registry in an S3 bucket (moto on loopback). A model
//! trained through the anomaly service's API is stored in the bucket, scores the asset's
//! windows, and a replacement anomaly process (the first one killed) loads the promoted version
//! from the bucket by itself. Then RUL: motors run to failure through the whole pipeline, their
//! failures recorded through the gateway; the in-platform RUL model trained through the RUL
//! service's API lands in the bucket, predicts on demand, and the RUL process predicts every
//! new window of a wearing motor, falling toward its failure.
//!
//! Needs tansu, PostgreSQL, Redis (see `common/cluster.rs`) and `moto_server`
//! (services/mantis/tests/peers/requirements.txt).

mod common;

use common::cluster::Cluster;
use common::s3::S3Server;
use common::*;
use mantis_domain::AssetId;
use mantis_store::Store;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

const WINDOW_SECS: i64 = 10;
/// Healthy windows streamed before training (the model needs at least `MIN_WINDOWS`).
const HEALTHY_WINDOWS: i64 = 45;
const MIN_WINDOWS: &str = "40";
const BUCKET: &str = "mantis-models";
const TIMEOUT: Duration = Duration::from_secs(300);

async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_trained_in_the_cluster_live_in_s3_follow_a_restart_and_predict() {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET).await;
    let endpoint = s3.endpoint();
    let window = WINDOW_SECS.to_string();
    let mut cluster = Cluster::start(&[
        ("preprocessing", "window_secs", &window),
        ("preprocessing", "idle_close_secs", "3600"),
        ("preprocessing", "allowed_lateness_secs", "0"),
        ("anomaly", "warmup_windows", "5"),
        ("anomaly", "confirm_windows", "1"),
        ("anomaly", "auto_train_after_secs", "0"),
        ("anomaly", "train_check_secs", "1"),
        ("anomaly", "training__min_windows", MIN_WINDOWS),
        ("rul", "auto_train", "false"),
        ("rul", "check_secs", "1"),
        ("infra", "objects__kind", "s3"),
        ("infra", "objects__bucket", BUCKET),
        ("infra", "objects__endpoint", &endpoint),
        ("infra", "objects__access_key_id", "test"),
        ("infra", "objects__secret_access_key", "test"),
    ])
    .await;
    let http = common::http();
    let (gateway, ingestion) = (cluster.url("gateway"), cluster.url("ingestion"));
    let store = cluster.store().await;

    // Arrange: a motor that ran normally for 45 windows (a reading of the next window closes
    // the last one).
    let (asset, sensor) = register_motor(&http, &gateway, "MTR-MODEL").await;
    let asset_id = AssetId::parse(&asset).expect("asset id");
    let base = base_ms();
    post_readings(
        &http,
        &ingestion,
        &sensor,
        &healthy_windows(base, WINDOW_SECS, 0, HEALTHY_WINDOWS + 1),
    )
    .await;
    let sensor_id = mantis_domain::SensorId::parse(&sensor).expect("sensor id");
    until("the healthy windows' features in PostgreSQL", || async {
        let n = store
            .recent_features(
                sensor_id,
                chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                chrono::Utc::now(),
                1000,
            )
            .await
            .ok()?
            .len();
        (n >= HEALTHY_WINDOWS as usize).then_some(())
    })
    .await;

    // Act: train through the anomaly service's API.
    let anomaly = cluster.url("anomaly");
    let resp = http
        .post(format!("{anomaly}/api/v1/anomalies/train"))
        .json(&json!({"assetId": asset}))
        .send()
        .await
        .expect("anomaly service reachable");
    assert_eq!(resp.status(), 201);
    let trained: Value = resp.json().await.expect("json");
    assert_eq!(trained["version"], 1, "{trained:#}");

    // Assert: the version is in the bucket ...
    let listing = http
        .get(format!(
            "{endpoint}/{BUCKET}?list-type=2&prefix=models/anomaly/{asset}/"
        ))
        .send()
        .await
        .expect("S3 reachable")
        .text()
        .await
        .expect("listing");
    for key in ["v000001/model.bin", "v000001/meta.json", "promoted.json"] {
        assert!(
            listing.contains(&format!("models/anomaly/{asset}/{key}")),
            "{key} in the bucket: {listing}"
        );
    }

    // ... a replacement process serves it without being told ...
    // (Dead for longer than the consumer session timeout, 10 s: tansu 0.6.0 gives a member
    // that joins while a killed member's session is open an empty assignment, for good; see
    // cluster_e2e.rs.)
    cluster.kill_service("anomaly");
    tokio::time::sleep(Duration::from_secs(15)).await;
    cluster.start_service("anomaly");
    cluster.await_ready("anomaly").await;
    let anomaly = cluster.url("anomaly");
    let models_url = format!("{anomaly}/api/v1/anomalies/{asset}/models");
    until(
        "the restarted anomaly service serving version 1",
        || async {
            let v = get(&http, &models_url).await?;
            (v["servedVersion"] == 1).then_some(())
        },
    )
    .await;

    // ... and scores a failing window with it.
    let mut failing = failing_window(base, WINDOW_SECS, HEALTHY_WINDOWS + 1);
    failing.extend(healthy_windows(base, WINDOW_SECS, HEALTHY_WINDOWS + 2, 1));
    post_readings(&http, &ingestion, &sensor, &failing).await;
    let anomalies = until("an anomaly scored by the model", || async {
        let a = store.list_anomalies(Some(asset_id), 10).await.ok()?;
        a.iter().any(|x| x.method == "ensemble").then_some(a)
    })
    .await;
    assert!(
        anomalies
            .iter()
            .filter(|a| a.method == "ensemble")
            .all(|a| !a.contributions.is_empty()),
        "{anomalies:#?}"
    );
    let scores = store
        .list_anomaly_scores(asset_id, 50)
        .await
        .expect("scores");
    assert!(
        scores
            .iter()
            .any(|s| s.model_version.as_deref() == Some("1") && s.isolation_forest_score.is_some()),
        "{scores:#?}"
    );

    // --- RUL --------------------------------------------------------------------------------
    rul_in_the_cluster(&http, &cluster, &store, &endpoint, base).await;
}

/// Windows of visible wear at the end of each RUL training life.
const RUL_WEAR: i64 = 15;
/// Windows of one life of the RUL training motors.
const RUL_LIFE: i64 = 30;
/// First window of the RUL part (after the anomaly part's windows).
const RUL_FIRST: i64 = 60;

/// Readings of window `w` (of `base`) at wear `wear` in [0, 1].
fn worn_window(base: i64, w: i64, wear: f64) -> Vec<(i64, f64)> {
    (w * WINDOW_SECS..(w + 1) * WINDOW_SECS)
        .map(|s| (at(base, s), healthy(s) + 5.0 * wear * wear))
        .collect()
}

fn life_wear(i: i64, len: i64) -> f64 {
    ((i - (len - RUL_WEAR)) as f64 / RUL_WEAR as f64).clamp(0.0, 1.0)
}

async fn rul_in_the_cluster(
    http: &reqwest::Client,
    cluster: &Cluster,
    store: &mantis_store::postgres::PgStore,
    endpoint: &str,
    base: i64,
) {
    let (gateway, ingestion, rul) = (
        cluster.url("gateway"),
        cluster.url("ingestion"),
        cluster.url("rul"),
    );
    // Three motors ran to failure twice each; the readings flow through the whole pipeline and
    // the failures are recorded through the gateway.
    let mut sensors = Vec::new();
    for n in 0..3 {
        let (asset, sensor) = register_motor(http, &gateway, &format!("MTR-RTF-{n}")).await;
        let mut readings = Vec::new();
        let mut w = RUL_FIRST;
        for life in 0..2 {
            for i in 0..RUL_LIFE {
                readings.extend(worn_window(base, w + i, life_wear(i, RUL_LIFE)));
            }
            w += RUL_LIFE;
            let failed_at =
                chrono::DateTime::from_timestamp_millis(at(base, w * WINDOW_SECS)).expect("time");
            let resp = http
                .post(format!("{gateway}/api/v1/assets/{asset}/events"))
                .json(&json!({"kind": "FAILURE", "occurredAt": failed_at, "note": format!("life {life}")}))
                .send()
                .await
                .expect("gateway reachable");
            assert_eq!(resp.status(), 201, "failure recorded");
            w += 1;
        }
        // The new motor's first windows (and the reading that closes the last one).
        readings.extend(healthy_windows(base, WINDOW_SECS, w, 3));
        post_readings(http, &ingestion, &sensor, &readings).await;
        sensors.push(mantis_domain::SensorId::parse(&sensor).expect("sensor id"));
    }
    for sensor in &sensors {
        until("the runs to failure's features in PostgreSQL", || async {
            let n = store
                .recent_features(
                    *sensor,
                    chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                    chrono::Utc::now(),
                    1000,
                )
                .await
                .ok()?
                .len();
            (n >= 2 * RUL_LIFE as usize + 2).then_some(())
        })
        .await;
    }
    // A fourth motor in its first life, healthy so far.
    let (live, live_sensor) = register_motor(http, &gateway, "MTR-LIVE").await;
    let live_len = 35;
    let mut healthy_part = Vec::new();
    for i in 0..20 {
        healthy_part.extend(worn_window(base, RUL_FIRST + i, life_wear(i, live_len)));
    }
    post_readings(http, &ingestion, &live_sensor, &healthy_part).await;

    // Train → registered in the bucket, promoted.
    let resp = http
        .post(format!("{rul}/api/v1/rul/train"))
        .json(&json!({
            "assetType": "motor",
            "config": {"window": 5, "labelCap": 30.0, "minSamplesLeaf": 3, "seed": 3}
        }))
        .send()
        .await
        .expect("RUL service reachable");
    let status = resp.status();
    let trained: Value = resp.json().await.expect("json");
    assert_eq!(status, 201, "{trained:#}");
    assert_eq!(trained["version"], 1, "{trained:#}");
    assert_eq!(
        trained["units"].as_array().map(Vec::len),
        Some(6),
        "{trained:#}"
    );
    let listing = http
        .get(format!(
            "{endpoint}/{BUCKET}?list-type=2&prefix=models/rul/motor/"
        ))
        .send()
        .await
        .expect("S3 reachable")
        .text()
        .await
        .expect("listing");
    for key in ["v000001/model.bin", "v000001/meta.json", "promoted.json"] {
        assert!(
            listing.contains(&format!("models/rul/motor/{key}")),
            "{key} in the bucket: {listing}"
        );
    }

    // Predict on demand once the live motor's windows are stored.
    let live_id = AssetId::parse(&live).expect("asset id");
    let on_demand = until("an on-demand RUL prediction", || async {
        let resp = http
            .post(format!("{rul}/api/v1/rul/predict"))
            .json(&json!({"assetId": live}))
            .send()
            .await
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(on_demand["modelVersion"], "rul/motor/v1", "{on_demand:#}");

    // The wear arrives: the RUL process predicts every window, falling toward the failure.
    let mut wearing = Vec::new();
    for i in 20..live_len {
        wearing.extend(worn_window(base, RUL_FIRST + i, life_wear(i, live_len)));
    }
    wearing.extend(healthy_windows(base, WINDOW_SECS, RUL_FIRST + live_len, 1));
    post_readings(http, &ingestion, &live_sensor, &wearing).await;
    let predictions = until("RUL predictions of the wearing motor's windows", || async {
        let p = store.list_rul_predictions(live_id, 100).await.ok()?;
        let last_window_end = chrono::DateTime::from_timestamp_millis(at(
            base,
            (RUL_FIRST + live_len) * WINDOW_SECS,
        ))?;
        p.first()
            .is_some_and(|x| x.predicted_at >= last_window_end)
            .then_some(p)
    })
    .await;
    assert!(
        predictions
            .iter()
            .all(|p| p.model_version == "rul/motor/v1"),
        "{predictions:#?}"
    );
    let newest = predictions[0].rul_cycles;
    let oldest = predictions[predictions.len() - 1].rul_cycles;
    assert!(
        predictions.len() >= 10 && newest < oldest - 10.0,
        "RUL falls as the motor wears ({oldest:.1} → {newest:.1}): {predictions:#?}"
    );
}
