//! The MTConnect connector against MTConnect documents served by a local HTTP server (axum on
//! port 0). No public MTConnect agent is reachable from here and none can be installed (the
//! reference cppagent is not packaged in any registry this machine reaches), so the test plays
//! the agent: a Fanuc-like device (probe per MTConnect 1.3: availability, X position, spindle
//! speed and load, execution, a load condition) with the agent's circular buffer of numbered
//! observations and its `/probe`, `/current` and `/sample?from=&count=` semantics, including
//! `OUT_OF_RANGE` when `from` fell out of the buffer.

mod common;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::peers::eventually;
use common::{RecordingSink, Running};
use mantis_connectors::ConnectorState;
use mantis_domain::{IncomingReading, SourceProtocol};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PROBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MTConnectDevices xmlns:m="urn:mtconnect.org:MTConnectDevices:1.3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="urn:mtconnect.org:MTConnectDevices:1.3" xsi:schemaLocation="urn:mtconnect.org:MTConnectDevices:1.3 http://www.mtconnect.org/schemas/MTConnectDevices_1.3.xsd">
  <Header creationTime="2024-05-01T10:00:00Z" sender="mantis-test-agent" instanceId="INSTANCE" version="1.3.0.18" assetBufferSize="1024" assetCount="0" bufferSize="BUFFER"/>
  <Devices>
    <Device id="f01" name="FANUC-01" uuid="fanuc-01-0001">
      <Description manufacturer="FANUC" model="30i-B">Fanuc 30i-B controlled vertical mill</Description>
      <DataItems>
        <DataItem category="EVENT" id="f01_avail" name="avail" type="AVAILABILITY"/>
      </DataItems>
      <Components>
        <Axes id="f01_a" name="base">
          <Components>
            <Linear id="f01_x" name="X">
              <DataItems>
                <DataItem category="SAMPLE" coordinateSystem="MACHINE" id="f01_Xact" name="Xact" nativeUnits="MILLIMETER" subType="ACTUAL" type="POSITION" units="MILLIMETER"/>
              </DataItems>
            </Linear>
            <Rotary id="f01_c" name="C">
              <DataItems>
                <DataItem category="SAMPLE" id="f01_S1speed" name="S1speed" nativeUnits="REVOLUTION/MINUTE" type="ROTARY_VELOCITY" subType="ACTUAL" units="REVOLUTION/MINUTE"/>
                <DataItem category="SAMPLE" id="f01_S1load" name="S1load" nativeUnits="PERCENT" type="LOAD" units="PERCENT"/>
                <DataItem category="CONDITION" id="f01_S1load_cond" type="LOAD"/>
              </DataItems>
            </Rotary>
          </Components>
        </Axes>
        <Controller id="f01_cont" name="controller">
          <Components>
            <Path id="f01_path" name="path">
              <DataItems>
                <DataItem category="EVENT" id="f01_execution" name="execution" type="EXECUTION"/>
              </DataItems>
            </Path>
          </Components>
        </Controller>
      </Components>
    </Device>
  </Devices>
</MTConnectDevices>"#;

/// (data item id, element, component, value) of the observations the agent knows.
fn item_info(id: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    match id {
        "f01_Xact" => ("Position", "Linear", "f01_x", "Samples"),
        "f01_S1speed" => ("RotaryVelocity", "Rotary", "f01_c", "Samples"),
        "f01_S1load" => ("Load", "Rotary", "f01_c", "Samples"),
        "f01_S1load_cond" => ("Normal", "Rotary", "f01_c", "Condition"),
        "f01_execution" => ("Execution", "Path", "f01_path", "Events"),
        _ => ("Availability", "Device", "f01", "Events"),
    }
}

#[derive(Clone)]
struct Obs {
    seq: u64,
    id: String,
    value: String,
}

/// A simulated agent: numbered observations in a circular buffer of `buffer` entries.
struct Agent {
    instance: u64,
    buffer: u64,
    all: Vec<Obs>,
    offline: bool,
    requests: Vec<String>,
}

impl Agent {
    fn new(buffer: u64) -> Self {
        let mut a = Agent {
            instance: 1_714_557_600,
            buffer,
            all: Vec::new(),
            offline: false,
            requests: Vec::new(),
        };
        for (id, v) in [
            ("f01_avail", "AVAILABLE"),
            ("f01_Xact", "0"),
            ("f01_S1speed", "1200"),
            ("f01_S1load", "UNAVAILABLE"),
            ("f01_S1load_cond", "Normal"),
            ("f01_execution", "ACTIVE"),
        ] {
            a.push(id, v);
        }
        a
    }

    fn push(&mut self, id: &str, value: &str) {
        let seq = self.all.len() as u64 + 1;
        self.all.push(Obs {
            seq,
            id: id.into(),
            value: value.into(),
        });
    }

    fn last(&self) -> u64 {
        self.all.len() as u64
    }

    fn first(&self) -> u64 {
        (self.last() + 1).saturating_sub(self.buffer).max(1)
    }

    fn header(&self, next: u64) -> String {
        format!(
            r#"<Header creationTime="{}" sender="mantis-test-agent" instanceId="{}" version="1.3.0.18" bufferSize="{}" nextSequence="{next}" firstSequence="{}" lastSequence="{}"/>"#,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.instance,
            self.buffer,
            self.first(),
            self.last()
        )
    }

    fn streams(&self, obs: &[&Obs], next: u64) -> String {
        // Grouped by component and block, in sequence order within each (as agents do).
        // (component id, component, [(block, observation XML)]).
        type Component<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);
        let mut by_component: Vec<Component<'_>> = Vec::new();
        for o in obs {
            let (element, component, component_id, block) = item_info(&o.id);
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let xml = if block == "Condition" {
                format!(
                    r#"<{} dataItemId="{}" sequence="{}" timestamp="{ts}" type="LOAD"/>"#,
                    o.value, o.id, o.seq
                )
            } else {
                format!(
                    r#"<{element} dataItemId="{}" sequence="{}" timestamp="{ts}">{}</{element}>"#,
                    o.id, o.seq, o.value
                )
            };
            match by_component.iter_mut().find(|(c, _, _)| *c == component_id) {
                Some((_, _, v)) => v.push((block, xml)),
                None => by_component.push((component_id, component, vec![(block, xml)])),
            }
        }
        let mut components = String::new();
        for (id, component, entries) in by_component {
            components.push_str(&format!(
                r#"<ComponentStream component="{component}" name="{id}" componentId="{id}">"#
            ));
            for block in ["Samples", "Events", "Condition"] {
                let inner: String = entries
                    .iter()
                    .filter(|(b, _)| *b == block)
                    .map(|(_, x)| x.as_str())
                    .collect();
                if !inner.is_empty() {
                    components.push_str(&format!("<{block}>{inner}</{block}>"));
                }
            }
            components.push_str("</ComponentStream>");
        }
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<MTConnectStreams xmlns:m="urn:mtconnect.org:MTConnectStreams:1.3" xmlns="urn:mtconnect.org:MTConnectStreams:1.3">{}<Streams><DeviceStream name="FANUC-01" uuid="fanuc-01-0001">{components}</DeviceStream></Streams></MTConnectStreams>"#,
            self.header(next)
        )
    }

    fn current(&self) -> String {
        let mut latest: HashMap<&str, &Obs> = HashMap::new();
        for o in &self.all {
            latest.insert(&o.id, o);
        }
        let mut obs: Vec<&Obs> = latest.into_values().collect();
        obs.sort_by_key(|o| o.seq);
        self.streams(&obs, self.last() + 1)
    }

    fn sample(&self, from: u64, count: u64) -> (StatusCode, String) {
        if from < self.first() || from > self.last() + 1 {
            return (
                StatusCode::BAD_REQUEST,
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>
<MTConnectError xmlns="urn:mtconnect.org:MTConnectError:1.3">{}<Errors><Error errorCode="OUT_OF_RANGE">'from' must be greater than or equal to {}.</Error></Errors></MTConnectError>"#,
                    self.header(self.last() + 1),
                    self.first()
                ),
            );
        }
        let end = (from + count).min(self.last() + 1);
        let obs: Vec<&Obs> = self
            .all
            .iter()
            .filter(|o| o.seq >= from && o.seq < end)
            .collect();
        (StatusCode::OK, self.streams(&obs, end))
    }
}

type Shared = Arc<Mutex<Agent>>;

async fn serve(agent: Shared) -> String {
    async fn probe(State(a): State<Shared>) -> impl IntoResponse {
        let a = a.lock().expect("agent");
        if a.offline {
            return (StatusCode::SERVICE_UNAVAILABLE, "agent offline".to_owned());
        }
        (
            StatusCode::OK,
            PROBE
                .replace("INSTANCE", &a.instance.to_string())
                .replace("BUFFER", &a.buffer.to_string()),
        )
    }
    async fn current(State(a): State<Shared>) -> impl IntoResponse {
        let mut a = a.lock().expect("agent");
        a.requests.push("current".into());
        if a.offline {
            return (StatusCode::SERVICE_UNAVAILABLE, "agent offline".to_owned());
        }
        (StatusCode::OK, a.current())
    }
    async fn sample(
        State(a): State<Shared>,
        Query(q): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        let mut a = a.lock().expect("agent");
        let from: u64 = q.get("from").and_then(|v| v.parse().ok()).unwrap_or(0);
        let count: u64 = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(100);
        a.requests.push(format!("sample from={from} count={count}"));
        if a.offline {
            return (StatusCode::SERVICE_UNAVAILABLE, "agent offline".to_owned());
        }
        a.sample(from, count)
    }
    let app = axum::Router::new()
        .route("/probe", axum::routing::get(probe))
        .route("/current", axum::routing::get(current))
        .route("/sample", axum::routing::get(sample))
        .with_state(agent);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the test agent");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn source(url: &str, count: u32) -> serde_json::Value {
    json!({
        "kind": "mtconnect",
        "name": "fanuc-01",
        "url": url,
        "poll_interval_ms": 50,
        "count": count,
        "request_timeout_ms": 2000,
        "silence_timeout_secs": 5,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 200,
        "data_items": [
            {"sensor": "X-POS", "data_item": "f01_Xact", "unit": "mm"},
            {"sensor": "SPINDLE-SPEED", "data_item": "S1speed"},
            {"sensor": "SPINDLE-LOAD", "data_item": "S1load"},
            {"sensor": "LOAD-COND", "data_item": "f01_S1load_cond"},
        ],
    })
}

fn sequences(readings: &[IncomingReading]) -> Vec<u64> {
    readings
        .iter()
        .map(|r| {
            r.metadata
                .get("mtconnectSequence")
                .and_then(|s| s.parse().ok())
                .expect("every reading names its sequence")
        })
        .collect()
}

fn values(readings: &[IncomingReading]) -> Vec<f64> {
    readings.iter().map(|r| r.value).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_observation_is_read_once_in_sequence_across_polls() {
    let agent: Shared = Arc::new(Mutex::new(Agent::new(10_000)));
    let url = serve(agent.clone()).await;
    let sink = Arc::new(RecordingSink::default());
    // A small `count`, so a backlog takes several requests.
    let run = Running::start(sink.clone(), vec![source(&url, 7)]);

    // The first values come from /current; an UNAVAILABLE load is quality 0.
    eventually(
        20,
        "the current values",
        || sink.at_least("X-POS", 1),
        || sink.summary(),
    )
    .await;
    let load = sink.of("SPINDLE-LOAD");
    assert_eq!(load.len(), 1, "{}", sink.summary());
    assert_eq!(load[0].quality.get(), 0);
    assert_eq!(sink.of("SPINDLE-SPEED")[0].value, 1200.0);
    assert_eq!(sink.of("LOAD-COND")[0].value, 0.0, "Normal → 0");

    // The machine moves: 300 positions in bursts, with other items interleaved.
    for burst in 0..30u32 {
        {
            let mut a = agent.lock().expect("agent");
            for i in 1..=10u32 {
                a.push("f01_Xact", &format!("{}", burst * 10 + i));
                if i % 4 == 0 {
                    a.push("f01_execution", "ACTIVE");
                }
            }
            if burst == 10 {
                a.push("f01_S1load", "37.5");
                a.push("f01_S1load_cond", "Warning");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let x = eventually(
        30,
        "every position",
        || sink.at_least("X-POS", 301),
        || format!("{} / {:?}", sink.summary(), run.status("fanuc-01")),
    )
    .await;
    // Exactly once each, in order: the initial 0, then 1..=300.
    let expected: Vec<f64> = (0..=300).map(f64::from).collect();
    assert_eq!(values(&x), expected);
    let seqs = sequences(&x);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequences increase: {seqs:?}"
    );
    assert_eq!(
        values(&sink.of("SPINDLE-LOAD")),
        vec![0.0, 37.5],
        "UNAVAILABLE then a value"
    );
    assert_eq!(sink.of("SPINDLE-LOAD")[1].quality.get(), 100);
    assert_eq!(values(&sink.of("LOAD-COND")), vec![0.0, 1.0], "Warning → 1");
    assert_eq!(x[1].unit.as_deref(), Some("mm"));
    assert!(
        sink.all()
            .iter()
            .all(|(_, p)| *p == SourceProtocol::Mtconnect)
    );

    // Only /current once; the rest was /sample continuing at each nextSequence.
    let requests = agent.lock().expect("agent").requests.clone();
    assert_eq!(
        requests.iter().filter(|r| *r == "current").count(),
        1,
        "{requests:?}"
    );
    let status = run.status("fanuc-01");
    assert_eq!(status.state, ConnectorState::Connected, "{status:?}");
    assert_eq!(
        status.active,
        vec!["S1load", "S1speed", "f01_S1load_cond", "f01_Xact"]
    );
    assert!(status.last_error.is_none(), "{status:?}");
    // The agent's DataItems can be listed (to map them).
    let items = run
        .connectors
        .browse("fanuc-01", None)
        .await
        .expect("browse");
    assert!(
        items
            .iter()
            .any(|n| n.node_id == "f01_Xact" && n.browse_name == "Xact"),
        "{items:?}"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapped_buffer_is_resynchronised_from_current_and_the_gap_reported() {
    let agent: Shared = Arc::new(Mutex::new(Agent::new(16)));
    let url = serve(agent.clone()).await;
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(sink.clone(), vec![source(&url, 100)]);
    eventually(
        20,
        "the current values",
        || sink.at_least("X-POS", 1),
        || sink.summary(),
    )
    .await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 1..=5 {
            a.push("f01_Xact", &i.to_string());
        }
    }
    eventually(
        20,
        "the first positions",
        || sink.at_least("X-POS", 6),
        || sink.summary(),
    )
    .await;

    // The agent stops answering while the machine produces far more than its buffer holds.
    let cursor = {
        let mut a = agent.lock().expect("agent");
        a.offline = true;
        a.last() + 1
    };
    eventually(
        20,
        "the source noticing",
        || (run.status("fanuc-01").state != ConnectorState::Connected).then_some(()),
        || format!("{:?}", run.status("fanuc-01")),
    )
    .await;
    let (first_kept, last) = {
        let mut a = agent.lock().expect("agent");
        for i in 6..=105 {
            a.push("f01_Xact", &i.to_string());
        }
        a.offline = false;
        (a.first(), a.last())
    };
    assert!(first_kept > cursor, "the buffer wrapped past the cursor");

    // Back online: the gap is reported, reading resumes from /current, and new observations
    // follow without duplicates.
    let status = eventually(
        20,
        "the gap report",
        || {
            let s = run.status("fanuc-01");
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("wrapped"))
                .then_some(s)
        },
        || format!("{} / {:?}", sink.summary(), run.status("fanuc-01")),
    )
    .await;
    let lost = first_kept - cursor;
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains(&format!("{lost} observations")),
        "{lost} lost: {error}"
    );
    eventually(
        20,
        "the current position",
        || sink.of("X-POS").into_iter().find(|r| r.value == 105.0),
        || sink.summary(),
    )
    .await;
    {
        let mut a = agent.lock().expect("agent");
        for i in 106..=110 {
            a.push("f01_Xact", &i.to_string());
        }
    }
    let x = eventually(
        20,
        "the positions after the resync",
        || {
            let x = sink.of("X-POS");
            x.last().is_some_and(|r| r.value == 110.0).then_some(x)
        },
        || sink.summary(),
    )
    .await;
    // 0..=5 before, then /current's 105 (the newest), then 106..=110: nothing twice.
    let mut expected: Vec<f64> = (0..=5).map(f64::from).collect();
    expected.push(105.0);
    expected.extend((106..=110).map(f64::from));
    assert_eq!(values(&x), expected, "last sequence {last}");
    let seqs = sequences(&x);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    eventually(
        20,
        "the connected state",
        || (run.status("fanuc-01").state == ConnectorState::Connected).then_some(()),
        || format!("{:?}", run.status("fanuc-01")),
    )
    .await;
    run.stop().await;
}
