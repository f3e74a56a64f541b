//! The Modbus TCP connector against pymodbus: every data type and order, coils and discrete
//! inputs, block reads, exception codes becoming bad quality and status errors, a device that
//! stops answering (timeouts), and a device killed and restarted.

mod common;

use common::peers::{ModbusDevice, eventually};
use common::{RecordingSink, Running, blocking};
use mantis_connectors::ConnectorState;
use mantis_domain::{IncomingReading, SourceProtocol};
use serde_json::json;
use std::sync::Arc;

fn source(name: &str, port: u16, points: serde_json::Value) -> serde_json::Value {
    json!({
        "kind": "modbus",
        "name": name,
        "host": "127.0.0.1",
        "port": port,
        "unit_id": 1,
        "poll_interval_ms": 200,
        "request_timeout_ms": 500,
        "silence_timeout_secs": 3,
        "reconnect_min_ms": 100,
        "reconnect_max_ms": 500,
        "points": points,
    })
}

fn start_device(dir: &std::path::Path, port: Option<u16>, spec: serde_json::Value) -> ModbusDevice {
    ModbusDevice::start(dir, port, &spec)
}

fn last_good(sink: &RecordingSink, code: &str) -> Option<IncomingReading> {
    sink.of(code)
        .into_iter()
        .rev()
        .find(|r| r.quality.get() == 100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_type_and_order_decodes_against_pymodbus() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (sensor, pymodbus type, value, word order, byte swap, our data type)
    let cases = [
        ("U16", "uint16", json!(65000), "big", false, "u16"),
        ("I16", "int16", json!(-1234), "big", false, "i16"),
        ("U16-SWAPPED", "uint16", json!(0x1234), "big", true, "u16"),
        (
            "U32-BB",
            "uint32",
            json!(3_000_000_000u32),
            "big",
            false,
            "u32",
        ),
        (
            "U32-LB",
            "uint32",
            json!(3_000_000_000u32),
            "little",
            false,
            "u32",
        ),
        ("I32-BB", "int32", json!(-70000), "big", false, "i32"),
        ("I32-LL", "int32", json!(-70000), "little", true, "i32"),
        ("F32-BB", "float32", json!(-12.5), "big", false, "f32"),
        ("F32-LB", "float32", json!(3.25), "little", false, "f32"),
        ("F32-BL", "float32", json!(1013.25), "big", true, "f32"),
        ("F32-LL", "float32", json!(-0.5), "little", true, "f32"),
    ];
    let mut holding = Vec::new();
    let mut points = Vec::new();
    let mut address = 0u16;
    for (code, ptype, value, word, swap, dtype) in &cases {
        holding.push(json!({"address": address, "type": ptype, "value": value,
                            "word_order": word, "byte_swap": swap}));
        points.push(
            json!({"sensor": code, "address": address, "data_type": dtype,
                           "word_order": word, "byte_order": if *swap { "little" } else { "big" }}),
        );
        address += if dtype.ends_with("16") { 1 } else { 2 };
    }
    // Scale and offset, an input register, a coil and a discrete input.
    holding.push(json!({"address": 40, "type": "uint16", "value": 655}));
    points.push(
        json!({"sensor": "SCALED", "address": 40, "scale": 0.1, "offset": -40.0, "unit": "degC"}),
    );
    points.push(json!({"sensor": "INPUT", "table": "input", "address": 3, "data_type": "i16"}));
    points.push(json!({"sensor": "COIL", "table": "coil", "address": 5}));
    points.push(json!({"sensor": "DISCRETE", "table": "discrete_input", "address": 6}));
    let spec = json!({
        "unit": 1, "size": 64, "holding": holding,
        "input": [{"address": 3, "type": "int16", "value": -7}],
        "coils": [{"address": 5, "value": true}],
        "discrete": [{"address": 6, "value": false}],
    });
    let device = blocking({
        let d = dir.path().to_owned();
        move || start_device(&d, None, spec)
    })
    .await;

    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source("plc", device.port, json!(points))],
    );
    let expected: Vec<(&str, f64)> = vec![
        ("U16", 65000.0),
        ("I16", -1234.0),
        ("U16-SWAPPED", 4660.0),
        ("U32-BB", 3_000_000_000.0),
        ("U32-LB", 3_000_000_000.0),
        ("I32-BB", -70000.0),
        ("I32-LL", -70000.0),
        ("F32-BB", -12.5),
        ("F32-LB", 3.25),
        ("F32-BL", 1013.25),
        ("F32-LL", -0.5),
        ("INPUT", -7.0),
        ("COIL", 1.0),
        ("DISCRETE", 0.0),
    ];
    eventually(
        20,
        "a reading of every point",
        || {
            expected
                .iter()
                .all(|(c, _)| last_good(&sink, c).is_some())
                .then_some(())
        },
        || sink.summary(),
    )
    .await;
    for (code, value) in &expected {
        let r = last_good(&sink, code).expect("reading");
        assert_eq!(r.value, *value, "{code}");
    }
    let scaled = last_good(&sink, "SCALED").expect("scaled reading");
    assert!((scaled.value - 25.5).abs() < 1e-9, "{}", scaled.value);
    assert_eq!(scaled.unit.as_deref(), Some("degC"));
    assert!(
        sink.all()
            .iter()
            .all(|(_, s)| *s == SourceProtocol::ModbusTcp)
    );

    // Contiguous registers were read in one request per table (plus the separate one at 40).
    let status = run.status("plc");
    assert_eq!(status.state, ConnectorState::Connected, "{status:?}");
    assert_eq!(
        status.active,
        vec![
            "holding 0..19",
            "holding 40..41",
            "input 3..4",
            "coil 5..6",
            "discrete_input 6..7"
        ]
    );
    assert!(status.last_error.is_none(), "{status:?}");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_code_becomes_bad_quality_and_a_status_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = json!({"unit": 1, "size": 16,
                      "holding": [{"address": 2, "type": "uint16", "value": 77}]});
    let device = blocking({
        let d = dir.path().to_owned();
        move || start_device(&d, None, spec)
    })
    .await;
    let sink = Arc::new(RecordingSink::default());
    let points = json!([
        {"sensor": "GOOD", "address": 2},
        // Past the device's 16 registers: it answers with exception 0x02.
        {"sensor": "MISSING", "address": 100, "data_type": "f32"},
    ]);
    let run = Running::start(sink.clone(), vec![source("faulty", device.port, points)]);
    let bad = eventually(
        20,
        "the bad-quality reading",
        || sink.of("MISSING").into_iter().next(),
        || sink.summary(),
    )
    .await;
    assert_eq!(bad.quality.get(), 0);
    let reason = bad
        .metadata
        .get(IncomingReading::QUALITY_REASON)
        .cloned()
        .unwrap_or_default();
    assert!(
        reason.contains("0x02") && reason.contains("Illegal data address"),
        "{reason}"
    );
    let status = eventually(
        10,
        "the error state",
        || {
            let s = run.status("faulty");
            (s.state == ConnectorState::Error).then_some(s)
        },
        || format!("{:?}", run.status("faulty")),
    )
    .await;
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Illegal data address")),
        "{status:?}"
    );
    // The rest of the device is still read, and the bad point is reported once, not per poll.
    eventually(
        10,
        "several good readings",
        || sink.at_least("GOOD", 5),
        || sink.summary(),
    )
    .await;
    assert_eq!(last_good(&sink, "GOOD").map(|r| r.value), Some(77.0));
    assert_eq!(sink.of("MISSING").len(), 1, "{}", sink.summary());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_aligned_polls_stamp_readings_on_the_interval_grid_plus_the_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = json!({"unit": 1, "size": 16,
                      "holding": [{"address": 0, "type": "uint16", "value": 5}]});
    let device = blocking({
        let d = dir.path().to_owned();
        move || start_device(&d, None, spec)
    })
    .await;
    let sink = Arc::new(RecordingSink::default());
    let (interval, offset) = (400_i64, 100_i64);
    let mut config = source(
        "aligned",
        device.port,
        json!([{"sensor": "V", "address": 0}]),
    );
    config["poll_interval_ms"] = json!(interval);
    config["poll_offset_ms"] = json!(offset);
    let run = Running::start(sink.clone(), vec![config]);
    eventually(
        20,
        "eight readings",
        || sink.at_least("V", 8),
        || sink.summary(),
    )
    .await;
    run.stop().await;
    // Each poll starts at k × 400 ms + 100 ms since the epoch and is stamped when it starts:
    // a reading's phase on that grid is the poll's scheduling latency (without alignment it
    // would be anywhere in the interval). A loaded machine may delay some polls, not most.
    let readings = sink.of("V");
    let phases: Vec<i64> = readings
        .iter()
        .map(|r| (r.timestamp.timestamp_millis() - offset).rem_euclid(interval))
        .collect();
    let on_grid = phases.iter().filter(|p| **p < interval / 4).count();
    assert!(
        on_grid * 4 >= phases.len() * 3,
        "phases on the 400 ms grid (offset 100 ms): {phases:?}"
    );
    // Consecutive polls are whole intervals apart (one each, none skipped when on time).
    let steps: Vec<i64> = readings
        .windows(2)
        .map(|w| (w[1].timestamp - w[0].timestamp).num_milliseconds())
        .collect();
    assert!(
        steps
            .iter()
            .filter(|d| (**d - interval).abs() < interval / 4)
            .count()
            * 4
            >= steps.len() * 3,
        "intervals between polls: {steps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_resumes_after_the_modbus_device_is_killed_and_restarted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = |v: u16| json!({"unit": 1, "size": 8, "holding": [{"address": 1, "type": "uint16", "value": v}]});
    let device = blocking({
        let (d, s) = (dir.path().to_owned(), spec(10));
        move || start_device(&d, None, s)
    })
    .await;
    let port = device.port;
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source(
            "flaky",
            port,
            json!([{"sensor": "LEVEL", "address": 1}]),
        )],
    );
    eventually(
        20,
        "a first value",
        || last_good(&sink, "LEVEL"),
        || sink.summary(),
    )
    .await;

    // The device dies.
    blocking(move || drop(device)).await;
    let bad = eventually(
        20,
        "a bad-quality reading",
        || sink.of("LEVEL").into_iter().find(|r| r.quality.get() == 0),
        || format!("{} / {:?}", sink.summary(), run.status("flaky")),
    )
    .await;
    assert_eq!(bad.value, 10.0, "a bad reading carries the last good value");
    eventually(
        20,
        "reconnection attempts",
        || {
            let s = run.status("flaky");
            (s.reconnects >= 2 && s.state != ConnectorState::Connected).then_some(())
        },
        || format!("{:?}", run.status("flaky")),
    )
    .await;

    // It comes back on the same port with a new value: polling resumes by itself.
    let _device = blocking({
        let (d, s) = (dir.path().to_owned(), spec(20));
        move || start_device(&d, Some(port), s)
    })
    .await;
    eventually(
        30,
        "the new value",
        || last_good(&sink, "LEVEL").filter(|r| r.value == 20.0),
        || format!("{} / {:?}", sink.summary(), run.status("flaky")),
    )
    .await;
    let status = eventually(
        10,
        "the connected state",
        || {
            let s = run.status("flaky");
            (s.state == ConnectorState::Connected).then_some(s)
        },
        || format!("{:?}", run.status("flaky")),
    )
    .await;
    assert!(status.reconnects >= 2, "{status:?}");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_answering_times_out_into_bad_quality_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec =
        json!({"unit": 1, "size": 8, "holding": [{"address": 0, "type": "int16", "value": -5}]});
    let device = blocking({
        let d = dir.path().to_owned();
        move || start_device(&d, None, spec)
    })
    .await;
    let sink = Arc::new(RecordingSink::default());
    let run = Running::start(
        sink.clone(),
        vec![source(
            "hung",
            device.port,
            json!([{"sensor": "HUNG", "address": 0, "data_type": "i16"}]),
        )],
    );
    eventually(
        20,
        "a first value",
        || last_good(&sink, "HUNG"),
        || sink.summary(),
    )
    .await;

    // The device hangs: the TCP connection stays open but nothing answers.
    device.proc.signal("STOP");
    let bad = eventually(
        20,
        "a timeout reading",
        || sink.of("HUNG").into_iter().find(|r| r.quality.get() == 0),
        || format!("{} / {:?}", sink.summary(), run.status("hung")),
    )
    .await;
    let reason = bad
        .metadata
        .get(IncomingReading::QUALITY_REASON)
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("timeout"), "{reason}");
    eventually(
        20,
        "the timeout in the status",
        || {
            let s = run.status("hung");
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("timeout"))
                .then_some(())
        },
        || format!("{:?}", run.status("hung")),
    )
    .await;

    // It answers again: good values resume without restarting anything.
    let before = sink.of("HUNG").len();
    device.proc.signal("CONT");
    eventually(
        30,
        "good values again",
        || {
            let after = sink.of("HUNG");
            (after.len() > before && after.last().is_some_and(|r| r.quality.get() == 100))
                .then_some(())
        },
        || format!("{} / {:?}", sink.summary(), run.status("hung")),
    )
    .await;
    run.stop().await;
}
