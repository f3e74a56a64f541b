//! A stand-in MTConnect agent for the tests: no public MTConnect agent is reachable from here
//! and none can be installed (the reference cppagent is not packaged in any registry this
//! machine reaches), so the tests play the agent: a Fanuc-like device (probe per MTConnect 1.3:
//! availability, X position, spindle speed and load, execution, a load condition) with the
//! agent's circular buffer of numbered observations and its `/probe`, `/current` and
//! `/sample?from=&count=` semantics, including `OUT_OF_RANGE` when `from` fell out of the
//! buffer. Shared by the connector tests and the cluster's bus-outage test.

#![allow(dead_code, unreachable_pub)]

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const PROBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
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
pub fn item_info(id: &str) -> (&'static str, &'static str, &'static str, &'static str) {
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
pub struct Obs {
    pub seq: u64,
    pub id: String,
    pub value: String,
    /// When it happened (agents timestamp observations as they arrive, not as they are read).
    pub timestamp: String,
}

/// A simulated agent: numbered observations in a circular buffer of `buffer` entries.
pub struct Agent {
    pub instance: u64,
    pub buffer: u64,
    pub all: Vec<Obs>,
    /// Answers 503 to everything while set.
    pub offline: bool,
    /// Every request, in order (`current`, `sample from=.. count=..`).
    pub requests: Vec<String>,
}

impl Agent {
    /// An agent whose circular buffer holds `buffer` observations.
    pub fn new(buffer: u64) -> Self {
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

    /// Records an observation of data item `id` now; returns its sequence number.
    pub fn push(&mut self, id: &str, value: &str) -> u64 {
        let seq = self.all.len() as u64 + 1;
        self.all.push(Obs {
            seq,
            id: id.into(),
            value: value.into(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        seq
    }

    /// The newest sequence number.
    pub fn last(&self) -> u64 {
        self.all.len() as u64
    }

    /// The oldest sequence number still in the buffer.
    pub fn first(&self) -> u64 {
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
            let ts = &o.timestamp;
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

/// The agent shared with its HTTP server.
pub type Shared = Arc<Mutex<Agent>>;

/// Serves `agent` on a free loopback port; returns its base URL.
pub async fn serve(agent: Shared) -> String {
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
