//! Signed webhooks end to end: the orchestrator (embedded log, SQLite) delivers alerts and
//! scheduled maintenance to a receiver written with Python's standard library
//! (`tests/peers/webhook_receiver.py`), which checks each signature with `hmac` the way the
//! README tells integrators to: filtered by severity, retried while the receiver fails, in
//! order, an event the receiver refuses dead-lettered with its answer.

use mantis_bus::{DLQ_REASON, StartFrom, SubscribeOptions, TraceContext, embedded::EmbeddedBus};
use mantis_domain::{
    Alert, AlertKind, Asset, AssetId, Criticality, Priority, Severity, TenantId, WorkOrder,
    WorkOrderId, WorkOrderStatus,
};
use mantis_orchestrator::webhooks::Webhook;
use mantis_orchestrator::{Config, build};
use mantis_runtime::{Infra, Publisher};
use mantis_store::sqlite::SqliteStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "a-shared-secret-of-the-plant";

/// The Python receiver, its port and what it received (one JSON document per POST).
struct Receiver {
    port: u16,
    received: mpsc::UnboundedReceiver<Value>,
    _child: tokio::process::Child,
}

async fn receiver() -> Receiver {
    receiver_on(0).await
}

/// The receiver on `port` (0: any free one).
async fn receiver_on(port: u16) -> Receiver {
    receiver_with(SECRET, port).await
}

/// The receiver knowing `secret`, on `port` (0: any free one).
async fn receiver_with(secret: &str, port: u16) -> Receiver {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/webhook_receiver.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(secret)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the receiver");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the receiver starts")
        .expect("reads")
        .expect("a line");
    let port = first
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"));
    let (tx, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let doc: Value = serde_json::from_str(&line).expect("JSON line");
            if tx.send(doc).is_err() {
                break;
            }
        }
    });
    Receiver {
        port,
        received,
        _child: child,
    }
}

impl Receiver {
    /// The next POST, within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .ok()
            .flatten()
    }
}

fn alert(asset: AssetId, severity: Severity, message: &str) -> Alert {
    let key = format!("test:{}", uuid::Uuid::new_v4());
    Alert {
        id: Alert::id_for(&key),
        asset_id: asset,
        severity,
        kind: AlertKind::Anomaly,
        message: message.into(),
        created_at: chrono::Utc::now(),
        work_order_id: None,
        trigger_event: key,
        notify_on_call: true,
    }
}

fn work_order(asset: AssetId, description: &str) -> WorkOrder {
    let now = chrono::Utc::now();
    WorkOrder {
        id: WorkOrderId(uuid::Uuid::new_v4()),
        code: "WO-TEST-0001".into(),
        asset_id: asset,
        cause: "rul".into(),
        priority: Priority::High,
        status: WorkOrderStatus::Open,
        created_at: now,
        due_by: now + chrono::Duration::hours(4),
        description: description.into(),
        rule: "rul-below-threshold".into(),
        trigger_event: "test".into(),
    }
}

/// Publishes `make(i)` until the receiver gets one as `event` (the webhook's consumer of that
/// topic has joined and reads from the end of it); returns the number published.
async fn warm_up<R: mantis_codec::Record + Sync>(
    publisher: &Publisher,
    receiver: &mut Receiver,
    event: &str,
    make: impl Fn(usize) -> R,
) -> usize {
    for i in 0..120 {
        publisher
            .publish(None, &make(i), TraceContext::new_root(), vec![])
            .await
            .expect("published");
        while let Some(doc) = receiver.next(Duration::from_millis(500)).await {
            if doc["event"] == event {
                return i + 1;
            }
        }
    }
    panic!("the webhook's {event} consumer never received anything");
}

fn text_of(doc: &Value) -> &str {
    let data = &doc["body"]["data"];
    data["message"]
        .as_str()
        .or(data["description"].as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_scheduled_maintenance_reach_the_receiver_signed_and_in_order() {
    mantis_telemetry::init_test_tracing();
    let mut rx = receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("log");
    let store = SqliteStore::in_memory().await.expect("sqlite");
    let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
    infra.ensure_topics(&[]).await.expect("topics");
    let pump = Asset {
        id: AssetId::new_random(),
        tenant_id: TenantId::DEFAULT,
        code: "PMP-001".into(),
        name: "Coolant pump".into(),
        asset_type: "pump".into(),
        location: "Hall 2".into(),
        criticality: Criticality::Critical,
    };
    infra.store.upsert_asset(&pump).await.expect("asset");

    let hook = Webhook {
        // A token in the query, as some receivers want: sent, never shown.
        url: format!("http://127.0.0.1:{}/hooks/mantis?token=t0k3n", rx.port),
        secret: Some(SECRET.into()),
        secret_env: None,
        previous_secret: None,
        previous_secret_env: None,
        events: vec![
            mantis_orchestrator::webhooks::EventKind::Alert,
            mantis_orchestrator::webhooks::EventKind::Maintenance,
        ],
        min_severity: Severity::High,
        on_call_only: false,
        tenant: None,
        timeout_secs: 5,
    };
    let config = Config {
        bind: "127.0.0.1:0".into(),
        webhooks: BTreeMap::from([("cmms".to_owned(), hook)]),
    };
    let app = build(infra.clone(), config).await.expect("orchestrator");
    let health_url = format!("http://127.0.0.1:{}/health", app.port());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));

    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    let warm_alerts = warm_up(&publisher, &mut rx, "alert", |i| {
        alert(pump.id, Severity::Critical, &format!("warm-up {i}"))
    })
    .await;
    warm_up(&publisher, &mut rx, "maintenance.scheduled", |i| {
        work_order(pump.id, &format!("warm-up {i}"))
    })
    .await;

    let retried = alert(pump.id, Severity::High, "bearing [answer:503-once]");
    let filtered = alert(pump.id, Severity::Medium, "below the webhook's severity");
    let refused = alert(pump.id, Severity::Critical, "refused [answer:422]");
    let last = alert(pump.id, Severity::Critical, "seal leaking");
    for a in [&retried, &filtered, &refused, &last] {
        publisher
            .publish(None, a, TraceContext::new_root(), vec![])
            .await
            .expect("published");
    }
    let planned = work_order(pump.id, "replace the bearing");
    publisher
        .publish(None, &planned, TraceContext::new_root(), vec![])
        .await
        .expect("published");

    // Until the last alert and the work order are delivered (warm-ups may still arrive).
    let mut alerts = Vec::new();
    let mut orders = Vec::new();
    let done = |alerts: &[Value], orders: &[Value]| {
        !orders.is_empty()
            && alerts
                .iter()
                .any(|d| d["status"] == 204 && text_of(d) == "seal leaking")
    };
    while !done(&alerts, &orders) {
        let doc = rx
            .next(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("deliveries stopped: {alerts:#?} {orders:#?}"));
        if text_of(&doc).starts_with("warm-up") {
            continue;
        }
        match doc["event"].as_str() {
            Some("alert") => alerts.push(doc),
            Some("maintenance.scheduled") => orders.push(doc),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let seen: Vec<(String, i64)> = alerts
        .iter()
        .map(|d| {
            (
                d["delivery"].as_str().unwrap_or("").to_owned(),
                d["status"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let id = |a: &Alert| format!("alert:{}", a.id);
    assert_eq!(
        seen,
        vec![
            (id(&retried), 503),
            (id(&retried), 204),
            (id(&refused), 422),
            (id(&last), 204),
        ],
        "retried until taken, in order; below the severity never sent; refused once"
    );
    for doc in alerts.iter().chain(&orders) {
        assert_eq!(doc["signatureValid"], true, "signed: {doc:#}");
        assert_eq!(doc["fresh"], true, "signed now: {doc:#}");
        assert_eq!(doc["path"], "/hooks/mantis?token=t0k3n");
        assert_eq!(doc["contentType"], "application/json");
        assert!(
            doc["traceparent"]
                .as_str()
                .is_some_and(|t| t.starts_with("00-"))
        );
        assert_eq!(doc["body"]["id"], doc["delivery"]);
        assert_eq!(doc["body"]["type"], doc["event"]);
        assert_eq!(doc["body"]["asset"]["code"], "PMP-001");
        assert_eq!(doc["body"]["asset"]["location"], "Hall 2");
    }
    let last_doc = alerts.last().expect("delivered");
    assert_eq!(last_doc["body"]["data"]["severity"], "CRITICAL");
    assert_eq!(last_doc["body"]["data"]["notifyOnCall"], true);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    assert_eq!(
        orders[0]["delivery"],
        format!("maintenance.scheduled:{}", planned.id)
    );
    assert_eq!(orders[0]["body"]["data"]["code"], "WO-TEST-0001");
    assert!(orders[0]["body"]["data"]["dueBy"].as_str().is_some());

    // The refused alert is on the webhook's dead-letter topic with the answer.
    let mut dlq = infra
        .bus
        .subscribe(SubscribeOptions::new(
            "test.dlq",
            ["dlq.orchestrator.webhook.cmms.alert"],
            StartFrom::Earliest,
        ))
        .await
        .expect("subscribe");
    let letter = tokio::time::timeout(Duration::from_secs(10), dlq.next())
        .await
        .expect("a dead letter")
        .expect("read");
    let reason = String::from_utf8_lossy(letter.header(DLQ_REASON).expect("reason")).into_owned();
    assert!(reason.contains("webhook cmms answered 422"), "{reason}");
    assert!(
        !reason.contains("t0k3n"),
        "no credential in the reason: {reason}"
    );
    let dead: Alert = infra.codec.decode(&letter.payload).await.expect("an alert");
    assert_eq!(dead.id, refused.id);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), dlq.next())
            .await
            .is_err(),
        "one dead letter only"
    );

    // The health names the webhook without its path or token.
    let health: Value = reqwest::get(&health_url)
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    let shown = health.to_string();
    let origin = format!("http://127.0.0.1:{}/…", rx.port);
    assert!(shown.contains(&origin), "{shown}");
    assert!(
        !shown.contains("t0k3n") && !shown.contains("/hooks/mantis"),
        "{shown}"
    );
    assert!(warm_alerts >= 1);

    shutdown.cancel();
    running.await.expect("joins").expect("clean stop");
}

#[tokio::test]
async fn a_webhook_without_a_secret_stops_the_start_with_its_key_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("log");
    let store = SqliteStore::in_memory().await.expect("sqlite");
    let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
    let hook: Webhook = toml::from_str("url = \"https://cmms.example/hooks\"").expect("parses");
    let config = Config {
        bind: "127.0.0.1:0".into(),
        webhooks: BTreeMap::from([("cmms".to_owned(), hook)]),
    };
    let error = build(infra, config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("orchestrator.webhooks.cmms.secret"),
        "{error}"
    );
}

/// A secret rotated: while `previous_secret` is set, every delivery is signed with both, so a
/// receiver that still has the old secret and one that has the new accept it; without it, the
/// old secret's receiver refuses (and the event waits for it: nothing is lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_with_both_until_the_previous_one_is_removed() {
    mantis_telemetry::init_test_tracing();
    const NEW: &str = "the-new-secret-of-the-plant";
    let mut old_side = receiver_with(SECRET, 0).await;
    let mut new_side = receiver_with(NEW, 0).await;
    let mut not_yet = receiver_with(SECRET, 0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = EmbeddedBus::open(dir.path()).await.expect("log");
    let store = SqliteStore::in_memory().await.expect("sqlite");
    let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
    infra.ensure_topics(&[]).await.expect("topics");
    let hook = |port: u16, previous: bool| {
        let previous = if previous {
            format!("previous_secret = \"{SECRET}\"\n")
        } else {
            String::new()
        };
        toml::from_str::<Webhook>(&format!(
            "url = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{NEW}\"\n{previous}events = [\"alert\"]"
        ))
        .expect("parses")
    };
    let config = Config {
        bind: "127.0.0.1:0".into(),
        webhooks: BTreeMap::from([
            ("old-side".to_owned(), hook(old_side.port, true)),
            ("new-side".to_owned(), hook(new_side.port, true)),
            ("rotated".to_owned(), hook(not_yet.port, false)),
        ]),
    };
    let app = build(infra.clone(), config).await.expect("orchestrator");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    let asset = AssetId::new_random();
    // Published until each webhook has started and delivered one (each starts from its first
    // start: an alert published before is not its business).
    let mut got = [None, None, None];
    for i in 0..100 {
        let a = alert(asset, Severity::Critical, &format!("rotation {i}"));
        publisher
            .publish(None, &a, TraceContext::new_root(), vec![])
            .await
            .expect("published");
        for (slot, rx) in got
            .iter_mut()
            .zip([&mut old_side, &mut new_side, &mut not_yet])
        {
            if slot.is_none() {
                *slot = rx.next(Duration::from_millis(100)).await;
            }
        }
        if got.iter().all(Option::is_some) {
            break;
        }
    }
    let [old, new, refused] = got.map(|d| d.expect("each receiver was called"));
    for (side, doc) in [("old secret", &old), ("new secret", &new)] {
        assert_eq!(doc["signatureValid"], true, "{side}: {doc}");
        assert_eq!(doc["status"], 204, "{side}: {doc}");
    }
    assert_eq!(refused["signatureValid"], false, "{refused}");
    assert_eq!(refused["status"], 401, "{refused}");
    shutdown.cancel();
    running.await.expect("joins").expect("clean stop");
}

/// The receiver is down when the first event is published and stays down until after a
/// restart of the orchestrator: the event, never committed, is delivered once it is back (the
/// webhook's start time is kept in the store, not only the group's position, which is not
/// kept before a first commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_while_the_receiver_is_down_is_delivered_after_a_restart() {
    mantis_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    // The log and the database on disk, opened again for the restart (as the process would).
    let open = || async {
        let bus = EmbeddedBus::open(dir.path().join("log"))
            .await
            .expect("log");
        let store = SqliteStore::open(dir.path().join("mantis.db"))
            .await
            .expect("sqlite");
        let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
        infra.ensure_topics(&[]).await.expect("topics");
        infra
    };
    let asset = AssetId::new_random();
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let hook = format!(
        "url = \"http://127.0.0.1:{port}/page\"\nsecret = \"{SECRET}\"\nevents = [\"alert\"]"
    );
    let config = Config {
        bind: "127.0.0.1:0".into(),
        webhooks: BTreeMap::from([(
            "pager".to_owned(),
            toml::from_str::<Webhook>(&hook).expect("parses"),
        )]),
    };
    let run = |infra: &Infra, config: Config| {
        let infra = infra.clone();
        async move {
            let app = build(infra, config).await.expect("orchestrator");
            let health = format!("http://127.0.0.1:{}/health", app.port());
            let shutdown = CancellationToken::new();
            (shutdown.clone(), tokio::spawn(app.run(shutdown)), health)
        }
    };
    // The webhook as the health shows it, once `done` accepts it (10 s at most).
    let shown_until = |health: String, done: fn(&Value) -> bool| async move {
        let mut last = Value::Null;
        for _ in 0..100 {
            let h: Value = reqwest::get(&health)
                .await
                .expect("health")
                .json()
                .await
                .expect("json");
            last = h["details"]["webhooks"][0].clone();
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("webhook not shown as expected: {last:#}");
    };
    let infra = open().await;
    let (shutdown, running, health) = run(&infra, config.clone()).await;
    let idle = shown_until(health.clone(), |w| w["state"] == "DELIVERING").await;
    assert!(idle["lastDeliveredAt"].is_null(), "{idle:#}");
    // Started: its start time is stored.
    for _ in 0..100 {
        let since = infra.store.get_state("orchestrator.webhook.pager.since");
        if since.await.expect("state").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "test");
    let paged = alert(asset, Severity::Critical, "motor stalled");
    publisher
        .publish(None, &paged, TraceContext::new_root(), vec![])
        .await
        .expect("published");
    // Tried against the closed port for a while: shown failing, with the event held since it
    // was published. Then stopped.
    let failing = shown_until(health, |w| w["state"] == "FAILING").await;
    assert!(
        failing["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("webhook pager not reached")),
        "{failing:#}"
    );
    let held = failing["oldestUndeliveredAt"].as_str().expect("held since");
    let held = chrono::DateTime::parse_from_rfc3339(held).expect("a time");
    assert!(
        (held.timestamp_millis() - paged.created_at.timestamp_millis()).abs() < 60_000,
        "{failing:#}"
    );
    assert!(failing["failingSince"].is_string(), "{failing:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    shutdown.cancel();
    running.await.expect("joins").expect("clean stop");
    drop((publisher, infra));

    let mut rx = receiver_on(port).await;
    let infra = open().await;
    let (shutdown, running, health) = run(&infra, config).await;
    let doc = rx
        .next(Duration::from_secs(60))
        .await
        .expect("delivered after the restart");
    assert_eq!(doc["delivery"], format!("alert:{}", paged.id));
    assert_eq!(doc["signatureValid"], true);
    assert_eq!(doc["status"], 204);
    let back = shown_until(health, |w| w["lastDeliveredAt"].is_string()).await;
    assert_eq!(back["state"], "DELIVERING", "{back:#}");
    assert!(back["lastError"].is_null(), "{back:#}");
    shutdown.cancel();
    running.await.expect("joins").expect("clean stop");
}
