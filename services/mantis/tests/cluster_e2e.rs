//! End to end in the cluster mode: every service in its own OS process (`mantis service
//! <name>`), configured only by environment variables, over a Kafka-protocol broker (tansu,
//! one per test), PostgreSQL (a fresh database per test) and Redis — a reading in over HTTP,
//! an alert out over the WebSocket, a work order in PostgreSQL; a service killed mid-stream
//! that loses and duplicates nothing; a sensor falling silent mid-window, whose cut-short
//! window must not be taken for a fault; and a record a service cannot read, dead-lettered,
//! shown and replayed with `mantis dlq` over Kafka while the services run.
//!
//! Needs tansu (`cargo install tansu --locked --version 0.6.0 --features dynostore,libsql`), `psql`,
//! PostgreSQL and Redis; see `common/cluster.rs` for the environment variables. When a test
//! fails it prints the tail of every process's log and keeps the full logs.

mod common;

use common::cluster::Cluster;
use common::*;
use mantis_domain::{Anomaly, AssetId, WorkOrderStatus};
use mantis_store::postgres::PgStore;
use mantis_store::{Store, WorkOrderFilter};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

const WINDOW_SECS: i64 = 10;
const WARMUP_WINDOWS: i64 = 5;
/// Healthy windows sent first: the warm-up and two more.
const HEALTHY_WINDOWS: i64 = WARMUP_WINDOWS + 2;
/// Generous bound for anything that crosses the pipeline, including a consumer-group
/// rebalance after a member was killed (which waits for the member's session to expire).
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(300);

/// Starts the seven services, each its own process, and waits until all are ready. Windows
/// close when a reading of a later window arrives, or after `idle_close_secs` of silence.
async fn start_cluster_closing_idle_windows_after(idle_close_secs: u64) -> Cluster {
    let window_secs = WINDOW_SECS.to_string();
    let idle_close = idle_close_secs.to_string();
    let warmup = WARMUP_WINDOWS.to_string();
    Cluster::start(&[
        ("preprocessing", "window_secs", &window_secs),
        ("preprocessing", "idle_close_secs", &idle_close),
        // No lateness: the first reading of a later window closes the previous one.
        ("preprocessing", "allowed_lateness_secs", "0"),
        ("anomaly", "warmup_windows", &warmup),
        // Every failing window is an anomaly of its own (no two-window confirmation), so that
        // the tests can name the windows that must be anomalies.
        ("anomaly", "confirm_windows", "1"),
    ])
    .await
}

/// Starts the seven services; windows close only when a reading of a later window arrives,
/// never on a wall-clock timer, so the windows a test produces do not depend on how fast the
/// machine is.
async fn start_cluster() -> Cluster {
    start_cluster_closing_idle_windows_after(3600).await
}

/// Waits until the anomaly service has learned `sensor`'s baseline and persisted it.
async fn await_baseline(store: &PgStore, sensor: &str) {
    let key = format!("anomaly.baseline.{sensor}");
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        last = store.get_state(&key).await.expect("service state");
        if last.as_ref().is_some_and(|b| !b["model"].is_null()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the baseline of {sensor} was not learned within {PIPELINE_TIMEOUT:?}; last: {last:?}");
}

/// The window starts (ms) of the stored anomalies of `asset`.
async fn anomaly_windows(store: &PgStore, asset: AssetId) -> Vec<i64> {
    store
        .list_anomalies(Some(asset), 1000)
        .await
        .expect("anomalies")
        .iter()
        .map(|a: &Anomaly| a.window_start.timestamp_millis())
        .collect()
}

/// The window starts (ms) of windows `first..end`.
fn window_starts(base: i64, windows: std::ops::Range<i64>) -> BTreeSet<i64> {
    windows.map(|w| at(base, w * WINDOW_SECS)).collect()
}

/// The alerts listed by the gateway for `asset`.
async fn alerts_of(http: &reqwest::Client, gateway: &str, asset: &str) -> Vec<serde_json::Value> {
    let all = await_json(
        http,
        &format!("{gateway}/api/v1/alerts?limit=1000"),
        Duration::from_secs(30),
        "alerts",
        |v| v.is_array(),
    )
    .await;
    all.as_array()
        .expect("an array")
        .iter()
        .filter(|a| a["assetId"] == asset)
        .cloned()
        .collect()
}

/// A registered critical motor that has run normally long enough for its baseline to be
/// learned; returns (asset, sensor, base timestamp).
async fn warmed_up_motor(
    cluster: &Cluster,
    http: &reqwest::Client,
    store: &PgStore,
    code: &str,
) -> (String, String, i64) {
    let (gateway, ingestion) = (cluster.url("gateway"), cluster.url("ingestion"));
    let (asset, sensor) = register_motor(http, &gateway, code).await;
    let base = base_ms();
    post_readings(
        http,
        &ingestion,
        &sensor,
        &healthy_windows(base, WINDOW_SECS, 0, HEALTHY_WINDOWS),
    )
    .await;
    await_baseline(store, &sensor).await;
    (asset, sensor, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_motor_raises_a_live_alert_across_separate_processes() {
    let mut cluster = start_cluster().await;
    let http = common::http();
    let gateway = cluster.url("gateway");
    let store = cluster.store().await;

    // Arrange: a critical motor whose baseline is learned, and an operator watching live. The
    // gateway follows alerts from the newest one on, so it must have joined the stream first.
    let (asset, sensor, base) = warmed_up_motor(&cluster, &http, &store, "MTR-CLUSTER").await;
    let asset_id = AssetId::parse(&asset).expect("asset id");
    cluster
        .await_log("gateway", "partitions assigned", PIPELINE_TIMEOUT)
        .await;
    let mut ws = connect_alerts(&cluster.ws_alerts_url()).await;

    // Act: its vibration jumps for three windows (a reading of the next window closes the
    // last one).
    let mut failing = Vec::new();
    for w in HEALTHY_WINDOWS..HEALTHY_WINDOWS + 3 {
        failing.extend(failing_window(base, WINDOW_SECS, w));
    }
    let after = HEALTHY_WINDOWS + 3;
    failing.push((at(base, after * WINDOW_SECS), healthy(0)));
    // The device posts them to the gateway with its API key (the client's default header); the
    // gateway forwards them to the ingestion process.
    post_readings(&http, &gateway, &sensor, &failing).await;

    // Assert: the alert crosses gateway → ingestion → preprocessing → features → anomaly →
    // orchestrator → gateway, six processes, and arrives live ...
    let alert = await_alert_on_ws(&mut ws, &asset, PIPELINE_TIMEOUT).await;
    assert_eq!(alert["kind"], "ANOMALY");
    assert_eq!(alert["severity"], "CRITICAL");
    assert_eq!(alert["notifyOnCall"], true);
    let wo_id = alert["workOrderId"]
        .as_str()
        .expect("the alert names its work order")
        .to_owned();

    // ... each failing window is one anomaly in PostgreSQL, explained by the level features ...
    let expected = window_starts(base, HEALTHY_WINDOWS..after);
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    let mut stored = anomaly_windows(&store, asset_id).await;
    while stored.len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored = anomaly_windows(&store, asset_id).await;
    }
    assert_eq!(
        stored.len(),
        expected.len(),
        "one anomaly per failing window"
    );
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), expected);
    let anomalies = store
        .list_anomalies(Some(asset_id), 100)
        .await
        .expect("anomalies");
    assert!(
        anomalies
            .iter()
            .all(|a| ["mean", "rms"].contains(&a.contributions[0].feature.as_str())),
        "the level features explain the failure: {anomalies:#?}"
    );

    // ... and however many windows were anomalous, the asset has exactly one work order, in
    // PostgreSQL and through the API, and one alert.
    let orders = store
        .list_work_orders(&WorkOrderFilter {
            asset_id: Some(asset_id),
            ..WorkOrderFilter::default()
        })
        .await
        .expect("work orders");
    assert_eq!(orders.len(), 1, "one work order per incident: {orders:#?}");
    assert_eq!(orders[0].id.to_string(), wo_id);
    assert_eq!(orders[0].cause, "anomaly");
    let listed = await_json(
        &http,
        &format!("{gateway}/api/v1/work-orders?assetId={asset}"),
        Duration::from_secs(30),
        "work orders",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], wo_id.as_str());
    let alerts = alerts_of(&http, &gateway, &asset).await;
    assert_eq!(alerts.len(), 1, "one alert per incident: {alerts:#?}");
    assert_eq!(alerts[0]["id"], alert["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_anomaly_service_mid_stream_loses_no_window_and_duplicates_no_anomaly() {
    /// At least this many failing windows are streamed ...
    const MIN_FAILING: i64 = 20;
    /// ... and at least this many after the replacement started (bounded by `MAX_FAILING`).
    const AFTER_RESTART: i64 = 5;
    const MAX_FAILING: i64 = 200;
    /// Wall-clock pace of the stream: one window's readings per step (timestamps are event
    /// time, so the pace does not change the windows).
    const PACE: Duration = Duration::from_millis(400);
    /// How long the anomaly service stays dead before its replacement starts: longer than the
    /// consumer session timeout (10 s), so the broker has expired the killed member. Kafka
    /// reaches the same state by itself (it rebalances once the dead member's session expires,
    /// so a replacement started earlier ends up owning every partition too); tansu 0.6.0 does
    /// not: a member that joins while a killed member's session is still open gets an empty
    /// assignment and is never rebalanced again.
    const DEAD_FOR: Duration = Duration::from_secs(15);

    let mut cluster = start_cluster().await;
    let http = common::http();
    let (gateway, ingestion) = (cluster.url("gateway"), cluster.url("ingestion"));
    let store = cluster.store().await;
    let (asset, sensor, base) = warmed_up_motor(&cluster, &http, &store, "MTR-KILL").await;
    let asset_id = AssetId::parse(&asset).expect("asset id");
    let first = HEALTHY_WINDOWS;

    // Act: stream failing windows; as soon as the first anomalies are in PostgreSQL, kill the
    // anomaly service (SIGKILL: nothing flushed, nothing committed on the way out), start a
    // replacement in the same consumer group later, and keep streaming throughout.
    let mut killed: Option<(Instant, usize)> = None;
    let mut restarted = false;
    let mut after_restart = 0;
    let mut end = first;
    while end - first < MIN_FAILING || after_restart < AFTER_RESTART {
        assert!(
            end - first < MAX_FAILING,
            "streamed {MAX_FAILING} failing windows without completing the kill and restart"
        );
        if killed.is_none() && end - first >= MIN_FAILING / 2 {
            // The pipeline lags behind the stream: hold the rest back until the first anomaly
            // exists, so the kill always happens mid-stream.
            let deadline = Instant::now() + PIPELINE_TIMEOUT;
            while anomaly_windows(&store, asset_id).await.is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "no anomaly within {PIPELINE_TIMEOUT:?} of the failure starting"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if killed.is_none() {
            let stored = anomaly_windows(&store, asset_id).await;
            if !stored.is_empty() {
                cluster.kill_service("anomaly");
                killed = Some((Instant::now(), stored.len()));
            }
        }
        if let Some((at_kill, _)) = killed
            && !restarted
            && at_kill.elapsed() >= DEAD_FOR
        {
            cluster.start_service("anomaly");
            restarted = true;
        }
        post_readings(
            &http,
            &ingestion,
            &sensor,
            &failing_window(base, WINDOW_SECS, end),
        )
        .await;
        end += 1;
        if restarted {
            after_restart += 1;
        }
        tokio::time::sleep(PACE).await;
    }
    let (_, anomalies_at_kill) = killed.expect("the anomaly service was killed");
    // One reading of the next window closes the last failing one.
    post_readings(
        &http,
        &ingestion,
        &sensor,
        &[(at(base, end * WINDOW_SECS), healthy(0))],
    )
    .await;
    cluster.await_ready("anomaly").await;

    // Assert: once the count settles, exactly one anomaly per failing window — those the
    // killed process had not handled were handled by its replacement, none twice.
    let expected = window_starts(base, first..end);
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    let mut stored = anomaly_windows(&store, asset_id).await;
    let mut unchanged_since = Instant::now();
    loop {
        let complete = stored.iter().copied().collect::<BTreeSet<_>>() == expected;
        if (complete && unchanged_since.elapsed() >= Duration::from_secs(5))
            || Instant::now() >= deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = anomaly_windows(&store, asset_id).await;
        if now.len() != stored.len() {
            unchanged_since = Instant::now();
        }
        stored = now;
    }
    assert!(
        anomalies_at_kill < expected.len(),
        "the kill happened mid-stream ({anomalies_at_kill} anomalies before it)"
    );
    let distinct: BTreeSet<i64> = stored.iter().copied().collect();
    let missing: Vec<_> = expected.difference(&distinct).collect();
    let unexpected: Vec<_> = distinct.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "anomalies per failing window: missing windows {missing:?}, unexpected windows \
         {unexpected:?} (window starts in ms)"
    );
    assert_eq!(
        stored.len(),
        expected.len(),
        "one row per failing window, none duplicated"
    );

    // ... and the incident is still one active work order and one alert.
    let active = store
        .list_work_orders(&WorkOrderFilter {
            asset_id: Some(asset_id),
            statuses: vec![
                WorkOrderStatus::Open,
                WorkOrderStatus::Scheduled,
                WorkOrderStatus::InProgress,
            ],
            limit: None,
            ..WorkOrderFilter::default()
        })
        .await
        .expect("work orders");
    assert_eq!(active.len(), 1, "one active work order: {active:#?}");
    let alerts = alerts_of(&http, &gateway, &asset).await;
    assert_eq!(alerts.len(), 1, "one alert per incident: {alerts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_falling_silent_mid_window_raises_no_anomaly_for_the_cut_short_window() {
    let cluster = start_cluster_closing_idle_windows_after(3).await;
    let http = common::http();
    let ingestion = cluster.url("ingestion");
    let store = cluster.store().await;
    let (asset, sensor, base) = warmed_up_motor(&cluster, &http, &store, "MTR-SILENT").await;
    let asset_id = AssetId::parse(&asset).expect("asset id");
    let sensor_id = mantis_domain::SensorId::parse(&sensor).expect("sensor id");
    let cut_short = HEALTHY_WINDOWS;
    let marker = cut_short + 2;

    // Act: one normal reading opens a window, then the sensor falls silent (a stopped
    // machine, a connector down) until the idle timer closes that window ...
    post_readings(
        &http,
        &ingestion,
        &sensor,
        &[(at(base, cut_short * WINDOW_SECS), healthy(0))],
    )
    .await;
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    while store.count_windows(Some(sensor_id)).await.expect("windows") < (cut_short + 1) as u64 {
        assert!(
            Instant::now() < deadline,
            "the silent sensor's window was not closed within {PIPELINE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // ... then it comes back failing. Windows of one asset are handled in order, so once this
    // window's anomaly exists, the cut-short window has been judged too.
    post_readings(
        &http,
        &ingestion,
        &sensor,
        &failing_window(base, WINDOW_SECS, marker),
    )
    .await;
    let marker_start = at(base, marker * WINDOW_SECS);
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    let mut stored = anomaly_windows(&store, asset_id).await;
    while !stored.contains(&marker_start) {
        assert!(
            Instant::now() < deadline,
            "the failing window raised no anomaly within {PIPELINE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        stored = anomaly_windows(&store, asset_id).await;
    }

    // Assert: the failure is an anomaly; a normal reading in a window cut short by silence is
    // not (a window of one sample has no spread, which is no evidence of a fault).
    let anomalies = store
        .list_anomalies(Some(asset_id), 100)
        .await
        .expect("anomalies");
    let explained: Vec<String> = anomalies
        .iter()
        .map(|a| {
            let top = &a.contributions[0];
            format!(
                "window {} score {:.2}: {} = {} (z {:.1})",
                a.window_start, a.score, top.feature, top.value, top.z_score
            )
        })
        .collect();
    assert_eq!(
        stored,
        vec![marker_start],
        "only the failing window is an anomaly; stored: {explained:#?}"
    );
}

/// A record preprocessing cannot decode goes to `dlq.preprocessing`; `mantis dlq` (beside the
/// running services, over Kafka) lists and shows it with its source, and replays it to
/// `sensor.raw`, where preprocessing reads it again and sets it aside again; a second replay
/// sends that new letter alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_shown_and_replayed_over_kafka_while_the_services_run() {
    use mantis_bus::{Bus, OutboundRecord, TraceContext};
    let cluster = start_cluster_closing_idle_windows_after(2).await;
    let bus = mantis_bus::kafka::KafkaBus::new(mantis_bus::kafka::KafkaConfig::new(
        cluster.brokers(),
        "dlq-test",
    ))
    .expect("a Kafka client");
    let at = bus
        .publish(OutboundRecord::new(
            "sensor.raw",
            Some(b"not-a-sensor".to_vec()),
            b"not an Avro record".to_vec(),
            TraceContext::new_root(),
        ))
        .await
        .expect("published");
    let letters = |cluster: &Cluster| {
        let (ok, out, err) = cluster.mantis(&["dlq", "show", "dlq.preprocessing", "--json"]);
        assert!(ok, "{err}");
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON per line"))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + PIPELINE_TIMEOUT;
    let mut shown = Vec::new();
    while shown.is_empty() {
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_secs(1)).await;
        shown = letters(&cluster);
    }
    assert_eq!(
        shown[0]["source"],
        format!("sensor.raw/{}/{}", at.partition, at.offset)
    );
    assert_eq!(shown[0]["key"], "not-a-sensor");
    let (ok, out, err) = cluster.mantis(&["dlq", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("dlq.preprocessing") && l.contains(" 1 records")),
        "{out}"
    );

    let (ok, out, err) = cluster.mantis(&["dlq", "replay", "dlq.preprocessing"]);
    assert!(ok, "{err}");
    assert!(out.contains("published 1 to sensor.raw"), "{out}");
    // Read again by preprocessing, and set aside again.
    while letters(&cluster).len() < 2 {
        assert!(Instant::now() < deadline, "the replay was never read again");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let again = letters(&cluster);
    assert_eq!(again[1]["key"], "not-a-sensor");
    assert_ne!(
        again[1]["source"], again[0]["source"],
        "a new offset of sensor.raw"
    );
    // The replay is recorded (on `dlq-replays`): the letter it sent is shown replayed and
    // left by the next replay, which sends the new letter alone.
    assert!(again[0]["replayedAt"].is_string(), "{again:?}");
    assert!(again[1]["replayedAt"].is_null(), "{again:?}");
    let (ok, out, err) = cluster.mantis(&["dlq", "replay", "dlq.preprocessing"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("published 1 to sensor.raw") && out.contains("1 sent by an earlier replay"),
        "{out}"
    );
}
