//! MTConnect response documents (quick-xml, streaming, namespace-agnostic: the `m:`/`mt:`
//! prefixes and schema versions 1.x–2.x all read alike). No I/O; unit-tested here.
//!
//! - `MTConnectDevices` (`/probe`): the DataItems (`id`, `name`, `category`, `type`, `units`);
//! - `MTConnectStreams` (`/current`, `/sample`): the `Header` (`instanceId`, `firstSequence`,
//!   `lastSequence`, `nextSequence`) and every observation under `Samples`, `Events` and
//!   `Condition` (`dataItemId`, `sequence`, `timestamp`, value);
//! - `MTConnectError`: the error codes (`OUT_OF_RANGE`, `INVALID_REQUEST`, ...).

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// A DataItem of the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DataItemDef {
    /// `id` (unique in the agent).
    pub(crate) id: String,
    /// `name`, if any.
    pub(crate) name: Option<String>,
    /// `SAMPLE`, `EVENT` or `CONDITION`.
    pub(crate) category: String,
    /// `POSITION`, `SPINDLE_SPEED`, `EXECUTION`, ...
    pub(crate) data_type: String,
    /// `MILLIMETER`, `REVOLUTION/MINUTE`, ...
    pub(crate) units: Option<String>,
    /// The device it belongs to.
    pub(crate) device: String,
}

/// The header of a streams document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// Changes when the agent restarts (its sequence numbers start again).
    pub(crate) instance_id: u64,
    /// Oldest sequence still in the agent's buffer.
    pub(crate) first_sequence: u64,
    /// Newest sequence in the buffer.
    pub(crate) last_sequence: u64,
    /// The sequence to ask for next.
    pub(crate) next_sequence: u64,
}

/// One observation (sample, event or condition).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Observation {
    /// `dataItemId`.
    pub(crate) data_item_id: String,
    /// `name`, if given.
    pub(crate) name: Option<String>,
    /// `sequence`.
    pub(crate) sequence: u64,
    /// `timestamp` as written.
    pub(crate) timestamp: String,
    /// The element's text (`UNAVAILABLE` included); for a condition, its element name
    /// (`Normal`, `Warning`, `Fault`, `Unavailable`).
    pub(crate) value: String,
    /// Whether it came from a `Condition` block.
    pub(crate) condition: bool,
}

/// A streams document.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Streams {
    pub(crate) header: Header,
    pub(crate) observations: Vec<Observation>,
}

/// What an agent answered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Document {
    Devices(Vec<DataItemDef>),
    Streams(Streams),
    /// `MTConnectError`: (errorCode, text) of each error.
    Error(Vec<(String, String)>),
}

fn local(name: &str) -> &str {
    match name.rfind(':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn attr(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (local(a.key.as_ref()) == key)
            .then(|| {
                a.normalized_value(XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

fn attr_u64(e: &BytesStart<'_>, key: &str) -> Result<u64, String> {
    let v = attr(e, key).ok_or_else(|| format!("the Header has no `{key}`"))?;
    v.trim()
        .parse()
        .map_err(|_| format!("the Header's `{key}` is not a sequence number: `{v}`"))
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let n = name.strip_prefix('#')?;
            let code = match n.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Where an observation is being read.
struct Open {
    obs: Observation,
    depth: usize,
}

/// Parses any MTConnect response document.
pub(crate) fn parse(xml: &str) -> Result<Document, String> {
    let mut reader = Reader::from_str(xml);
    let mut kind: Option<&'static str> = None;
    let mut items = Vec::new();
    let mut device = String::new();
    let mut header: Option<Header> = None;
    let mut observations = Vec::new();
    let mut errors = Vec::new();
    // The block an element is in: Samples / Events / Condition (by depth).
    let mut block: Option<(&'static str, usize)> = None;
    let mut open: Option<Open> = None;
    let mut error_open: Option<(String, String)> = None;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                depth += 1;
                let name = e.name();
                let name = local(name.as_ref());
                match (kind, name) {
                    (None, "MTConnectDevices") => kind = Some("devices"),
                    (None, "MTConnectStreams") => kind = Some("streams"),
                    (None, "MTConnectError") => kind = Some("error"),
                    (None, other) => {
                        return Err(format!(
                            "not an MTConnect document (root element `{other}`)"
                        ));
                    }
                    (Some("devices"), "Device") => {
                        device = attr(e, "name")
                            .or_else(|| attr(e, "uuid"))
                            .unwrap_or_default();
                    }
                    (Some("devices"), "DataItem") => {
                        if let Some(id) = attr(e, "id") {
                            items.push(DataItemDef {
                                id,
                                name: attr(e, "name"),
                                category: attr(e, "category").unwrap_or_default(),
                                data_type: attr(e, "type").unwrap_or_default(),
                                units: attr(e, "units"),
                                device: device.clone(),
                            });
                        }
                    }
                    (Some("streams"), "Header") => {
                        header = Some(Header {
                            instance_id: attr_u64(e, "instanceId")?,
                            first_sequence: attr_u64(e, "firstSequence")?,
                            last_sequence: attr_u64(e, "lastSequence")?,
                            next_sequence: attr_u64(e, "nextSequence")?,
                        });
                    }
                    (Some("streams"), "Samples") => block = Some(("samples", depth)),
                    (Some("streams"), "Events") => block = Some(("events", depth)),
                    (Some("streams"), "Condition") => block = Some(("condition", depth)),
                    (Some("streams"), element) => {
                        if let Some((b, d)) = block
                            && depth == d + 1
                            && let Some(id) = attr(e, "dataItemId")
                        {
                            let sequence = attr(e, "sequence")
                                .and_then(|s| s.trim().parse().ok())
                                .ok_or_else(|| {
                                    format!("observation of `{id}` without a valid `sequence`")
                                })?;
                            let condition = b == "condition";
                            let obs = Observation {
                                data_item_id: id,
                                name: attr(e, "name"),
                                sequence,
                                timestamp: attr(e, "timestamp").unwrap_or_default(),
                                value: if condition {
                                    element.to_owned()
                                } else {
                                    String::new()
                                },
                                condition,
                            };
                            if empty {
                                observations.push(obs);
                            } else {
                                open = Some(Open { obs, depth });
                            }
                        }
                    }
                    (Some("error"), "Error") => {
                        let code = attr(e, "errorCode").unwrap_or_default();
                        if empty {
                            errors.push((code, String::new()));
                        } else {
                            error_open = Some((code, String::new()));
                        }
                    }
                    _ => {}
                }
                if empty {
                    depth -= 1;
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                if let Some(o) = open.as_mut()
                    && !o.obs.condition
                {
                    o.obs.value.push_str(&text);
                } else if let Some((_, msg)) = error_open.as_mut() {
                    msg.push_str(&text);
                }
            }
            Event::CData(t) => {
                let text: &str = t.as_ref();
                if let Some(o) = open.as_mut()
                    && !o.obs.condition
                {
                    o.obs.value.push_str(text);
                }
            }
            Event::GeneralRef(r) => {
                let c = entity(r.as_ref());
                if let Some(c) = c {
                    if let Some(o) = open.as_mut()
                        && !o.obs.condition
                    {
                        o.obs.value.push(c);
                    } else if let Some((_, msg)) = error_open.as_mut() {
                        msg.push(c);
                    }
                }
            }
            Event::End(_) => {
                if open.as_ref().is_some_and(|o| o.depth == depth)
                    && let Some(o) = open.take()
                {
                    let mut obs = o.obs;
                    obs.value = obs.value.trim().to_owned();
                    observations.push(obs);
                }
                if block.is_some_and(|(_, d)| d == depth) {
                    block = None;
                }
                if let Some((code, msg)) = error_open.take() {
                    errors.push((code, msg.trim().to_owned()));
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match kind {
        Some("devices") => Ok(Document::Devices(items)),
        Some("streams") => Ok(Document::Streams(Streams {
            header: header.ok_or("an MTConnectStreams document without a Header")?,
            observations,
        })),
        Some("error") => Ok(Document::Error(errors)),
        _ => Err("an empty document".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MTConnectDevices xmlns:m="urn:mtconnect.org:MTConnectDevices:1.3" xmlns="urn:mtconnect.org:MTConnectDevices:1.3">
  <Header creationTime="2024-05-01T10:00:00Z" sender="agent" instanceId="1714557600" version="1.3.0.18" bufferSize="131072"/>
  <Devices>
    <Device id="d1" name="FANUC-01" uuid="fanuc-01">
      <DataItems><DataItem category="EVENT" id="avail" type="AVAILABILITY"/></DataItems>
      <Components>
        <Axes id="a1" name="base"><Components>
          <Linear id="x" name="X"><DataItems>
            <DataItem category="SAMPLE" id="Xact" name="Xact" nativeUnits="MILLIMETER" subType="ACTUAL" type="POSITION" units="MILLIMETER"/>
          </DataItems></Linear>
          <Rotary id="c" name="C"><DataItems>
            <DataItem category="SAMPLE" id="Sspeed" name="S1speed" type="SPINDLE_SPEED" units="REVOLUTION/MINUTE"/>
            <DataItem category="CONDITION" id="Sload_cond" type="LOAD"/>
          </DataItems></Rotary>
        </Components></Axes>
      </Components>
    </Device>
  </Devices>
</MTConnectDevices>"#;

    #[test]
    fn the_probe_lists_every_data_item_with_its_device() {
        let Ok(Document::Devices(items)) = parse(PROBE) else {
            panic!("devices expected")
        };
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["avail", "Xact", "Sspeed", "Sload_cond"]);
        assert_eq!(items[2].name.as_deref(), Some("S1speed"));
        assert_eq!(items[2].units.as_deref(), Some("REVOLUTION/MINUTE"));
        assert_eq!(items[3].category, "CONDITION");
        assert!(items.iter().all(|i| i.device == "FANUC-01"));
    }

    #[test]
    fn a_sample_document_yields_the_header_and_observations_in_order() {
        let xml = r#"<MTConnectStreams xmlns="urn:mtconnect.org:MTConnectStreams:1.3">
  <Header instanceId="7" bufferSize="16" firstSequence="3" lastSequence="20" nextSequence="12"/>
  <Streams><DeviceStream name="FANUC-01" uuid="fanuc-01">
    <ComponentStream component="Linear" name="X" componentId="x">
      <Samples>
        <Position dataItemId="Xact" name="Xact" sequence="10" subType="ACTUAL" timestamp="2024-05-01T10:00:01.5Z">12.5 </Position>
        <Position dataItemId="Xact" name="Xact" sequence="11" subType="ACTUAL" timestamp="2024-05-01T10:00:02Z">UNAVAILABLE</Position>
      </Samples>
      <Condition><Warning dataItemId="Sload_cond" sequence="9" timestamp="2024-05-01T10:00:00Z" type="LOAD">Spindle &amp; load high</Warning><Normal dataItemId="Sload_cond" sequence="8" timestamp="2024-05-01T09:00:00Z" type="LOAD"/></Condition>
    </ComponentStream>
  </DeviceStream></Streams>
</MTConnectStreams>"#;
        let Ok(Document::Streams(s)) = parse(xml) else {
            panic!("streams expected")
        };
        assert_eq!(
            s.header,
            Header {
                instance_id: 7,
                first_sequence: 3,
                last_sequence: 20,
                next_sequence: 12
            }
        );
        let got: Vec<(u64, &str, &str, bool)> = s
            .observations
            .iter()
            .map(|o| {
                (
                    o.sequence,
                    o.data_item_id.as_str(),
                    o.value.as_str(),
                    o.condition,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (10, "Xact", "12.5", false),
                (11, "Xact", "UNAVAILABLE", false),
                (9, "Sload_cond", "Warning", true),
                (8, "Sload_cond", "Normal", true),
            ]
        );
    }

    #[test]
    fn errors_and_garbage_are_told_apart() {
        let xml = r#"<MTConnectError xmlns="urn:mtconnect.org:MTConnectError:1.3"><Header instanceId="1" bufferSize="8"/><Errors><Error errorCode="OUT_OF_RANGE">'from' must be greater than 10</Error></Errors></MTConnectError>"#;
        assert_eq!(
            parse(xml),
            Ok(Document::Error(vec![(
                "OUT_OF_RANGE".into(),
                "'from' must be greater than 10".into()
            )]))
        );
        assert!(parse("<html><body>proxy error</body></html>").is_err());
        assert!(parse("<MTConnectStreams><Header instanceId=\"x\"/>").is_err());
        assert!(parse("<MTConnectStreams><Streams></Streams></MTConnectStreams>").is_err());
    }
}
