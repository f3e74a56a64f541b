//! Anomaly models in the cluster mode: every service its own process over tansu, PostgreSQL
//! and Redis, and the model registry in an S3 bucket (moto on loopback). A model trained
//! through the anomaly service's API is stored in the bucket, scores the asset's windows, and
//! a replacement anomaly process (the first one killed) loads the promoted version from the
//! bucket by itself.
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
async fn a_model_trained_in_the_cluster_lives_in_s3_and_follows_a_restart() {
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
        ("infra", "objects__kind", "s3"),
        ("infra", "objects__bucket", BUCKET),
        ("infra", "objects__endpoint", &endpoint),
        ("infra", "objects__access_key_id", "test"),
        ("infra", "objects__secret_access_key", "test"),
    ])
    .await;
    let http = reqwest::Client::new();
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
}
