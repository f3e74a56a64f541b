//! The device connectors inside the real ingestion service (embedded log, in-memory SQLite):
//! readings published by a paho-mqtt device and polled from a pymodbus device reach
//! `sensor.raw` through the same validation as REST, refused ones are reported on
//! `data.quality.issues` without holding back the rest, and the connector API lists, shows and
//! adds sources (refusing bad configurations with a problem body), keeping added ones across a
//! restart. A device message that is no reading at all lands on `dlq.ingestion` as it was sent.

#[path = "../../../crates/mantis-connectors/tests/common/peers.rs"]
mod peers;

mod common;
use common::register_sensor;
use mantis_bus::{StartFrom, SubscribeOptions, embedded::EmbeddedBus, topics};
use mantis_domain::{DataQualityIssue, QualityReason, Reading, SourceProtocol};
use mantis_runtime::Infra;
use mantis_store::sqlite::SqliteStore;
use peers::{ModbusDevice, unique};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn infra(dir: &std::path::Path) -> Infra {
    let bus = EmbeddedBus::open(dir).await.expect("log opens");
    let infra = Infra::in_process(
        Arc::new(bus),
        Arc::new(SqliteStore::in_memory().await.expect("sqlite")),
    );
    infra.ensure_topics(&[]).await.expect("topics");
    infra
}

/// The ingestion service running with `sources`; returns its base URL.
async fn start_ingestion(
    infra: &Infra,
    sources: Vec<Value>,
    shutdown: &CancellationToken,
) -> String {
    start_with_leases(infra, sources, Default::default(), shutdown).await
}

/// A pymodbus device (unit 1) with the holding registers `holding`.
async fn modbus_device(dir: &std::path::Path, holding: Value) -> ModbusDevice {
    modbus_device_at(dir, None, holding).await
}

/// [`modbus_device`] on `port` (a free one when `None`).
async fn modbus_device_at(
    dir: &std::path::Path,
    port: Option<u16>,
    holding: Value,
) -> ModbusDevice {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        ModbusDevice::start(
            &dir,
            port,
            &json!({"unit": 1, "size": 8, "holding": holding}),
        )
    })
    .await
    .expect("device")
}

/// One replica of the ingestion service with connector leases `leases`; returns its base URL.
async fn start_with_leases(
    infra: &Infra,
    sources: Vec<Value>,
    leases: mantis_ingestion::LeaseConfig,
    shutdown: &CancellationToken,
) -> String {
    mantis_telemetry::init_test_tracing();
    let config = mantis_ingestion::Config {
        bind: "127.0.0.1:0".into(),
        sources: sources
            .into_iter()
            .map(|s| serde_json::from_value(s).expect("valid source"))
            .collect(),
        connector_leases: leases,
        ..Default::default()
    };
    let (app, _ingestor) = mantis_ingestion::build_with_ingestor(infra.clone(), config)
        .await
        .expect("ingestion builds");
    let url = format!("http://127.0.0.1:{}", app.port());
    let token = shutdown.clone();
    tokio::spawn(async move { app.run(token).await });
    url
}

/// Waits for a record on `topic` that `pick` accepts.
async fn await_record<R: mantis_codec::Record>(
    infra: &Infra,
    topic: &str,
    what: &str,
    pick: impl Fn(&R) -> bool,
) -> R {
    let mut sub = infra
        .bus
        .subscribe(SubscribeOptions::new(
            unique("test"),
            [topic],
            StartFrom::Earliest,
        ))
        .await
        .expect("subscribe");
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let env = sub.next().await.expect("next record");
            if let Ok(r) = infra.codec.decode::<R>(&env.payload).await
                && pick(&r)
            {
                return r;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out after 30 s waiting for {what} on {topic}"))
}

/// `POST /api/v1/connectors` with `body`: the status code and the answer's body.
async fn post_source(http: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let resp = http
        .post(format!("{url}/api/v1/connectors"))
        .json(&body)
        .send()
        .await
        .expect("ingestion reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// `GET /api/v1/connectors`: every source's status.
async fn sources(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/api/v1/connectors"))
        .send()
        .await
        .expect("ingestion reachable")
        .json()
        .await
        .expect("json")
}

/// `GET /api/v1/connectors/{name}/status`.
async fn connector_status(http: &reqwest::Client, url: &str, name: &str) -> Value {
    http.get(format!("{url}/api/v1/connectors/{name}/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_readings_reach_sensor_raw_and_refusals_do_not_hold_back_the_rest() {
    let port = peers::shared_broker();
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let code = unique("PRS");
    let sensor = register_sensor(&infra, &code).await;
    let site = unique("site");
    let shutdown = CancellationToken::new();
    let url = start_ingestion(
        &infra,
        vec![json!({
            "kind": "mqtt", "name": "line", "host": "127.0.0.1", "port": port,
            "client_id": unique("mantis-ingestion-test"),
            "topics": [format!("{site}/+/+/+")],
        })],
        &shutdown,
    )
    .await;
    let http = reqwest::Client::new();
    let connected = async {
        for _ in 0..200 {
            let list = sources(&http, &url).await;
            if list[0]["state"] == "CONNECTED" && list[0]["active"][0].is_string() {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the MQTT source never subscribed");
    }
    .await;
    assert_eq!(connected[0]["name"], "line");
    assert_eq!(connected[0]["kind"], "mqtt");

    // One message: a batch with a good reading and one of an unknown sensor.
    let payload = json!([
        {"sensorCode": code, "value": 4.2, "unit": "bar"},
        {"sensorCode": "NOT-REGISTERED", "value": 1.0},
    ]);
    let topic = format!("{site}/pump-1/x/pressure");
    tokio::task::spawn_blocking(move || {
        peers::paho_publish(port, "3.1.1", 1, None, &[(topic, payload.to_string())])
    })
    .await
    .expect("publisher");

    let reading: Reading = await_record(
        &infra,
        topics::SENSOR_RAW,
        "the MQTT reading",
        |r: &Reading| r.sensor_id == sensor.id,
    )
    .await;
    assert_eq!(reading.value, 4.2);
    assert_eq!(reading.source, SourceProtocol::Mqtt);
    assert_eq!(reading.asset_id, sensor.asset_id);
    let issue: DataQualityIssue = await_record(
        &infra,
        topics::DATA_QUALITY_ISSUES,
        "the refusal of the unknown sensor",
        |i: &DataQualityIssue| i.detail.contains("NOT-REGISTERED"),
    )
    .await;
    assert_eq!(issue.reason, QualityReason::UnknownSensor);

    // The counters are updated once the message's batch is handled, which may be just after
    // its reading is visible on the bus: read until they are.
    let mut status = Value::Null;
    for _ in 0..100 {
        status = connector_status(&http, &url, "line").await;
        if status["readingsTotal"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["readingsTotal"], 2, "{status}");
    assert_eq!(status["messagesTotal"], 1, "{status}");

    // A message that is not a reading at all is dead-lettered as the device sent it, with
    // the reason, the connector and the topic it came on.
    let garbage_topic = format!("{site}/pump-1/x/temperature");
    let sent = garbage_topic.clone();
    tokio::task::spawn_blocking(move || {
        peers::paho_publish(port, "3.1.1", 1, None, &[(sent, "{not json".to_owned())])
    })
    .await
    .expect("publisher");
    infra
        .bus
        .ensure_topics(&[topics::dead_letter_spec("ingestion")])
        .await
        .expect("the dead-letter topic");
    let mut dlq = infra
        .bus
        .subscribe(SubscribeOptions::new(
            unique("test"),
            ["dlq.ingestion"],
            StartFrom::Earliest,
        ))
        .await
        .expect("subscribe to the dead letters");
    let letter = tokio::time::timeout(Duration::from_secs(30), dlq.next())
        .await
        .expect("a dead letter within 30 s")
        .expect("next record");
    assert_eq!(letter.payload, b"{not json");
    let header = |name: &str| {
        letter
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert!(
        header(mantis_bus::DLQ_REASON).contains("not JSON"),
        "{:?}",
        letter.headers
    );
    assert_eq!(header(mantis_bus::DLQ_CONNECTOR), "line");
    assert_eq!(header(mantis_bus::DLQ_PROTOCOL), "MQTT");
    assert_eq!(header(mantis_bus::DLQ_ORIGIN), garbage_topic);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_added_through_the_api_validated_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let code = unique("LVL");
    let sensor = register_sensor(&infra, &code).await;
    let device = modbus_device(
        dir.path(),
        json!([{"address": 2, "type": "float32", "value": 6.5}]),
    )
    .await;
    let shutdown = CancellationToken::new();
    let url = start_ingestion(&infra, vec![], &shutdown).await;
    let http = reqwest::Client::new();
    let post = |body: Value| post_source(&http, &url, body);

    // Not a source at all, and a source with bad fields: 400 with the fields named.
    let (status, problem) = post(json!({"kind": "profinet", "name": "x"})).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("profinet")),
        "{problem}"
    );
    let (status, problem) = post(json!({
        "kind": "modbus", "name": "plc", "host": "127.0.0.1", "port": device.port,
        "points": [{"sensor": code, "table": "coil", "address": 2, "data_type": "f32"}],
    }))
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/points/0/data_type",
        "{problem}"
    );

    // A good one is started at once.
    let source = json!({
        "kind": "modbus", "name": "plc", "host": "127.0.0.1", "port": device.port,
        "poll_interval_ms": 200,
        "points": [{"sensor": code, "address": 2, "data_type": "f32", "unit": "bar"}],
    });
    let (status, created) = post(source.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "plc");
    let (status, _) = post(source).await;
    assert_eq!(status, 409);
    let reading: Reading = await_record(
        &infra,
        topics::SENSOR_RAW,
        "the polled reading",
        |r: &Reading| r.sensor_id == sensor.id,
    )
    .await;
    assert_eq!(
        (reading.value, reading.source),
        (6.5, SourceProtocol::ModbusTcp)
    );
    let status = connector_status(&http, &url, "plc").await;
    assert_eq!(status["state"], "CONNECTED", "{status}");
    assert_eq!(status["active"][0], "holding 2..4", "{status}");
    let missing = http
        .get(format!("{url}/api/v1/connectors/nope/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(missing.status().as_u16(), 404);
    shutdown.cancel();

    // Restarted over the same store: the added source is back without being posted again.
    let shutdown = CancellationToken::new();
    let url = start_ingestion(&infra, vec![], &shutdown).await;
    let list = sources(&http, &url).await;
    assert_eq!(list[0]["name"], "plc", "{list}");
    shutdown.cancel();
    drop(device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opcua_source_added_through_the_api_is_browsed_and_feeds_sensor_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let code = unique("TMP");
    let sensor = register_sensor(&infra, &code).await;
    let server = tokio::task::spawn_blocking({
        let d = dir.path().to_owned();
        move || peers::OpcUaServer::start(&d, None, None, 1)
    })
    .await
    .expect("asyncua server");
    let shutdown = CancellationToken::new();
    let url = start_ingestion(&infra, vec![], &shutdown).await;
    let http = reqwest::Client::new();
    let post = |body: Value| post_source(&http, &url, body);
    let get = |path: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let resp = http
                .get(format!("{url}{path}"))
                .send()
                .await
                .expect("ingestion reachable");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.expect("json body");
            (status, body)
        }
    };

    // A bad OPC UA source: 400 naming the fields.
    let (status, problem) = post(json!({
        "kind": "opcua", "name": "line1", "endpoint": "opc.tcp://127.0.0.1:1",
        "security_policy": "Basic256Sha256", "security_mode": "None",
        "nodes": [{"sensor": code, "node_id": "Temperature"}],
    }))
    .await;
    assert_eq!(status, 400, "{problem}");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["pointer"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        pointers,
        ["/security_mode", "/nodes/0/node_id"],
        "{problem}"
    );

    // A good one reaches sensor.raw (the server's constant `Line1.Epoch`, 1, fits the
    // sensor's 0..=10 bar).
    let (status, created) = post(json!({
        "kind": "opcua", "name": "line1", "endpoint": server.endpoint(),
        "pki_dir": dir.path().join("pki"), "trust_server_certificate": true,
        "publishing_interval_ms": 200,
        "nodes": [{"sensor": code, "node_id": "ns=2;s=Line1.Epoch", "unit": "bar"}],
    }))
    .await;
    assert_eq!(status, 201, "{created}");
    let reading: Reading = await_record(
        &infra,
        topics::SENSOR_RAW,
        "the OPC UA reading",
        |r: &Reading| r.sensor_id == sensor.id,
    )
    .await;
    assert_eq!(
        (reading.value, reading.source),
        (1.0, SourceProtocol::OpcUa)
    );

    // Browsing through the REST API.
    let (status, root) = get("/api/v1/connectors/line1/browse".into()).await;
    assert_eq!(status, 200, "{root}");
    let line = root
        .as_array()
        .and_then(|a| a.iter().find(|n| n["browseName"] == "Line1"))
        .unwrap_or_else(|| panic!("Line1 under Objects: {root}"))
        .clone();
    let node = line["nodeId"].as_str().expect("node id").to_owned();
    let (status, vars) = get(format!("/api/v1/connectors/line1/browse?node={node}")).await;
    assert_eq!(status, 200, "{vars}");
    assert!(
        vars.as_array().is_some_and(|a| a
            .iter()
            .any(|n| n["nodeId"] == "ns=2;s=Line1.Temperature" && n["nodeClass"] == "Variable")),
        "{vars}"
    );
    let (status, problem) = get("/api/v1/connectors/line1/browse?node=nonsense".into()).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/node", "{problem}");
    let (status, _) = get("/api/v1/connectors/nope/browse".into()).await;
    assert_eq!(status, 404);
    shutdown.cancel();
    drop(server);
}

/// One replica of the ingestion service with connector leases (`ttl_secs` 12, the shortest:
/// renewed every 2.4 s, a source stopped 6 s after its last renewal), named `instance`;
/// returns its base URL.
async fn start_replica(
    infra: &Infra,
    sources: Vec<Value>,
    instance: &str,
    shutdown: &CancellationToken,
) -> String {
    let leases = mantis_ingestion::LeaseConfig {
        enabled: true,
        ttl_secs: 12,
        instance: Some(instance.to_owned()),
        // The shortest: a device not reached for 12 s goes to another replica.
        hand_over_unreachable_secs: 12,
        ..Default::default()
    };
    start_with_leases(infra, sources, leases, shutdown).await
}

/// The sources read at `url` (not in `STANDBY`), by name.
async fn running_at(http: &reqwest::Client, url: &str) -> Vec<String> {
    let all = sources(http, url).await;
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["state"] != "STANDBY")
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect()
}

/// Reads which sources each replica of `urls` reads until `done` accepts it (450 looks, 45 s
/// and more).
async fn spread_until(
    http: &reqwest::Client,
    urls: &[&str],
    what: &str,
    done: impl Fn(&[Vec<String>]) -> bool,
) -> Vec<Vec<String>> {
    let mut last = Vec::new();
    for _ in 0..450 {
        last = Vec::new();
        for url in urls {
            last.push(running_at(http, url).await);
        }
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} not reached in 450 looks; sources read by each replica: {last:?}");
}

/// Reads the status of `name` at `url` until `done` accepts it (30 s at most).
async fn status_until(
    http: &reqwest::Client,
    url: &str,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = connector_status(http, url, name).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} at {url}: {what} not reached within 30 s; last status {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_sources_by_lease_and_take_over_from_one_that_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two replicas of one deployment: the same store and bus.
    let infra = infra(dir.path()).await;
    let (first_code, second_code) = (unique("LVL"), unique("FLW"));
    let first = register_sensor(&infra, &first_code).await;
    let second = register_sensor(&infra, &second_code).await;
    let device = modbus_device(
        dir.path(),
        json!([
            {"address": 2, "type": "float32", "value": 6.5},
            {"address": 4, "type": "float32", "value": 1.25},
        ]),
    )
    .await;
    let plc = json!({
        "kind": "modbus", "name": "plc", "host": "127.0.0.1", "port": device.port,
        "poll_interval_ms": 200,
        "points": [{"sensor": first_code, "address": 2, "data_type": "f32", "unit": "bar"}],
    });
    let http = reqwest::Client::new();

    // The first replica takes the source; the second, configured alike, stands by and reads
    // nothing.
    let stop_a = CancellationToken::new();
    let a = start_replica(&infra, vec![plc.clone()], "replica-a", &stop_a).await;
    status_until(&http, &a, "plc", "CONNECTED at replica-a", |s| {
        s["state"] == "CONNECTED"
    })
    .await;
    let stop_b = CancellationToken::new();
    let b = start_replica(&infra, vec![plc], "replica-b", &stop_b).await;
    let standby = status_until(&http, &b, "plc", "STANDBY at replica-b", |s| {
        s["state"] == "STANDBY" && s["runsOn"] == "replica-a"
    })
    .await;
    let reading: Reading = await_record(
        &infra,
        topics::SENSOR_RAW,
        "the polled reading",
        |r: &Reading| r.sensor_id == first.id,
    )
    .await;
    assert_eq!(reading.value, 6.5);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let standby_later = connector_status(&http, &b, "plc").await;
    assert_eq!(standby_later["state"], "STANDBY", "{standby_later}");
    assert_eq!(
        (
            standby["messagesTotal"].as_u64(),
            standby_later["messagesTotal"].as_u64()
        ),
        (Some(0), Some(0)),
        "the standby replica never polls the device"
    );
    assert!(
        standby.get("connectedSince").is_none_or(Value::is_null),
        "{standby}"
    );

    // A source added through one replica's API reaches the other, and runs in exactly one.
    let (status, added) = post_source(
        &http,
        &b,
        json!({
            "kind": "modbus", "name": "plc-flow", "host": "127.0.0.1", "port": device.port,
            "poll_interval_ms": 200,
            "points": [{"sensor": second_code, "address": 4, "data_type": "f32", "unit": "bar"}],
        }),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    // Its name is taken on every replica at once: the other refuses it even before knowing it.
    let (status, again) = post_source(
        &http,
        &a,
        json!({
            "kind": "modbus", "name": "plc-flow", "host": "127.0.0.1", "port": device.port,
            "points": [{"sensor": second_code, "address": 4, "data_type": "f32"}],
        }),
    )
    .await;
    assert_eq!(status, 409, "{again}");
    status_until(&http, &a, "plc-flow", "known at replica-a", |s| {
        s["name"] == "plc-flow"
    })
    .await;
    let running = |s: &Value| s["state"] == "CONNECTED";
    let at_b = status_until(&http, &b, "plc-flow", "settled", |s| {
        running(s) || s["state"] == "STANDBY" && s["runsOn"] == "replica-a"
    })
    .await;
    let at_a = if running(&at_b) {
        status_until(&http, &a, "plc-flow", "STANDBY at replica-a", |s| {
            s["state"] == "STANDBY" && s["runsOn"] == "replica-b"
        })
        .await
    } else {
        status_until(&http, &a, "plc-flow", "CONNECTED at replica-a", running).await
    };
    assert_ne!(running(&at_a), running(&at_b), "{at_a} / {at_b}");
    let reading: Reading = await_record(
        &infra,
        topics::SENSOR_RAW,
        "the added source's reading",
        |r: &Reading| r.sensor_id == second.id,
    )
    .await;
    assert_eq!(reading.value, 1.25);

    // The first replica stops: it hands its leases back and the second reads on.
    let stopped_at = chrono::Utc::now();
    stop_a.cancel();
    let taken = status_until(&http, &b, "plc", "CONNECTED at replica-b", running).await;
    assert!(taken.get("runsOn").is_none_or(Value::is_null), "{taken}");
    let reading: Reading = await_record(
        &infra,
        topics::SENSOR_RAW,
        "a reading polled by replica-b",
        |r: &Reading| r.sensor_id == first.id && r.timestamp > stopped_at,
    )
    .await;
    assert_eq!(reading.value, 6.5);
    status_until(&http, &b, "plc-flow", "CONNECTED at replica-b", running).await;
    stop_b.cancel();
    drop(device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_the_sources_evenly_as_they_come_and_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let code = unique("LVL");
    register_sensor(&infra, &code).await;
    let device = modbus_device(
        dir.path(),
        json!([{"address": 2, "type": "float32", "value": 6.5}]),
    )
    .await;
    // Four sources (one device, read four times over).
    let sources: Vec<Value> = (1..=4)
        .map(|i| {
            json!({
                "kind": "modbus", "name": format!("plc-{i}"), "host": "127.0.0.1",
                "port": device.port, "poll_interval_ms": 500,
                "points": [{"sensor": code, "address": 2, "data_type": "f32", "unit": "bar"}],
            })
        })
        .collect();
    let http = reqwest::Client::new();
    // Every source read by exactly one replica.
    let once = |r: &[Vec<String>]| {
        let mut all: Vec<&String> = r.iter().flatten().collect();
        all.sort();
        all.dedup();
        all.len() == 4 && r.iter().map(Vec::len).sum::<usize>() == 4
    };

    // Alone, the first replica reads them all.
    let stop_a = CancellationToken::new();
    let a = start_replica(&infra, sources.clone(), "replica-a", &stop_a).await;
    spread_until(&http, &[&a], "all four read at replica-a", |r| {
        r[0].len() == 4
    })
    .await;

    // A second replica starts: the first hands sources over, one a round, until each reads
    // two.
    let stop_b = CancellationToken::new();
    let b = start_replica(&infra, sources.clone(), "replica-b", &stop_b).await;
    let spread = spread_until(&http, &[&a, &b], "two and two", |r| {
        once(r) && r[0].len() == 2
    })
    .await;
    // It stays so (the balance does not flap), and the standbys name the replica reading,
    // without calling the hand-over an error.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = spread_until(&http, &[&a, &b], "still two and two", |r| once(r)).await;
    assert_eq!(later, spread, "the sources stay where they are");
    let elsewhere = &spread[1][0];
    let standby = status_until(&http, &a, elsewhere, "runsOn replica-b", |s| {
        s["state"] == "STANDBY" && s["runsOn"] == "replica-b"
    })
    .await;
    assert!(
        standby["lastError"]
            .as_str()
            .is_none_or(|e| !e.contains("handed over")),
        "{standby}"
    );

    // A third starts, although the others hold no more than their share (two of four over
    // three): it gets its part all the same (two, one and one).
    let stop_c = CancellationToken::new();
    let c = start_replica(&infra, sources.clone(), "replica-c", &stop_c).await;
    spread_until(&http, &[&a, &b, &c], "two, one and one", |r| {
        once(r) && r.iter().all(|held| !held.is_empty())
    })
    .await;

    // The first stops: the others take its part over at once (two and two).
    stop_a.cancel();
    spread_until(
        &http,
        &[&b, &c],
        "two and two at replica-b and replica-c",
        |r| once(r) && r[0].len() == 2,
    )
    .await;
    stop_b.cancel();
    stop_c.cancel();
    drop(device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_a_replica_cannot_reach_is_handed_to_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let infra = infra(dir.path()).await;
    let code = unique("LVL");
    let sensor = register_sensor(&infra, &code).await;
    // Nothing answers on this port yet.
    let port = mantis_telemetry::testing::free_port();
    let plc = json!({
        "kind": "modbus", "name": "plc", "host": "127.0.0.1", "port": port,
        "poll_interval_ms": 200,
        "points": [{"sensor": code, "address": 2, "data_type": "f32", "unit": "bar"}],
    });
    let http = reqwest::Client::new();
    let stop_a = CancellationToken::new();
    let a = start_replica(&infra, vec![plc.clone()], "replica-a", &stop_a).await;
    spread_until(&http, &[&a], "plc tried at replica-a", |r| r[0].len() == 1).await;
    let stop_b = CancellationToken::new();
    let b = start_replica(&infra, vec![plc], "replica-b", &stop_b).await;

    // The first has not reached the device for 12 s: it stops, says why, and the second
    // tries (the first stays away from it for as long).
    let handed = status_until(&http, &a, "plc", "handed to replica-b", |s| {
        s["state"] == "STANDBY" && s["runsOn"] == "replica-b"
    })
    .await;
    assert!(
        handed["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("not reached from this replica for 12 s")),
        "{handed}"
    );
    status_until(&http, &b, "plc", "tried at replica-b", |s| {
        s["state"] != "STANDBY"
    })
    .await;

    // The device answers: it is read by exactly one replica.
    let device = modbus_device_at(
        dir.path(),
        Some(port),
        json!([{"address": 2, "type": "float32", "value": 6.5}]),
    )
    .await;
    // (While unreachable, the replica trying marks the sensor's readings as missing: quality 0.)
    let reading: Reading = await_record(&infra, topics::SENSOR_RAW, "a reading", |r: &Reading| {
        r.sensor_id == sensor.id && r.quality == mantis_domain::Quality::GOOD
    })
    .await;
    assert_eq!(reading.value, 6.5, "{reading:?}");
    spread_until(&http, &[&a, &b], "read by one replica", |r| {
        r[0].len() + r[1].len() == 1
    })
    .await;
    stop_a.cancel();
    stop_b.cancel();
    drop(device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_database_hangs_or_fails_stops_reading_before_its_lease_lapses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
    let bus = EmbeddedBus::open(dir.path()).await.expect("log opens");
    let infra = Infra::in_process(Arc::new(bus), store.clone());
    infra.ensure_topics(&[]).await.expect("topics");
    let code = unique("LVL");
    register_sensor(&infra, &code).await;
    let device = modbus_device(
        dir.path(),
        json!([{"address": 2, "type": "float32", "value": 6.5}]),
    )
    .await;
    let shutdown = CancellationToken::new();
    let url = start_replica(
        &infra,
        vec![json!({
            "kind": "modbus", "name": "plc", "host": "127.0.0.1", "port": device.port,
            "poll_interval_ms": 200,
            "points": [{"sensor": code, "address": 2, "data_type": "f32", "unit": "bar"}],
        })],
        "replica-a",
        &shutdown,
    )
    .await;
    let http = reqwest::Client::new();
    status_until(&http, &url, "plc", "CONNECTED", |s| {
        s["state"] == "CONNECTED"
    })
    .await;

    // The database hangs (its one connection taken and held: every call waits): the lease
    // (12 s) cannot be renewed, so the replica stops reading half a lease after its last
    // renewal, before another one could take it, and says why.
    let hung = store
        .pool()
        .acquire()
        .await
        .expect("the store's connection");
    let stopped = status_until(&http, &url, "plc", "STANDBY", |s| s["state"] == "STANDBY").await;
    assert!(
        stopped["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("lease could not be renewed")),
        "{stopped}"
    );
    assert!(
        stopped.get("runsOn").is_none_or(Value::is_null),
        "{stopped}"
    );
    let polled = stopped["messagesTotal"].as_u64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = connector_status(&http, &url, "plc").await;
    assert_eq!(
        later["messagesTotal"].as_u64(),
        polled,
        "no more polls: {later}"
    );

    // With the database unreachable a source cannot be stored (nor the change locked across
    // the replicas): it is not added (it would reach no other replica, nor survive a
    // restart): 503, and not listed.
    let (status, refused) = post_source(
        &http,
        &url,
        json!({
            "kind": "modbus", "name": "plc-2", "host": "127.0.0.1", "port": device.port,
            "points": [{"sensor": code, "address": 2, "data_type": "f32"}],
        }),
    )
    .await;
    assert_eq!(status, 503, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cannot be")),
        "a problem body saying why: {refused}"
    );
    let missing = http
        .get(format!("{url}/api/v1/connectors/plc-2/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(missing.status().as_u16(), 404);

    // The database answers again: the replica takes the lease again and reads on.
    drop(hung);
    // (Connected is shown before the first poll answers: waited for a new reading too.)
    let back = status_until(&http, &url, "plc", "CONNECTED again, reading", |s| {
        s["state"] == "CONNECTED" && s["messagesTotal"].as_u64() > polled
    })
    .await;
    assert!(back["messagesTotal"].as_u64() > polled, "{back}");

    // It fails outright (closed): the same, at once.
    store.pool().close().await;
    let stopped = status_until(&http, &url, "plc", "STANDBY", |s| s["state"] == "STANDBY").await;
    assert!(
        stopped["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("lease could not be renewed")),
        "{stopped}"
    );
    shutdown.cancel();
    drop(device);
}
