//! One sample of every record type, and helpers shared by the tests.

use apache_avro::Schema;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use mantis_codec::{Codec, Record, SCHEMAS, wire};
use mantis_domain::*;
use std::collections::BTreeMap;
use std::fmt::Debug;

pub(crate) fn at(ms: i64) -> Timestamp {
    timestamp_from_millis(ms).expect("a valid timestamp")
}

pub(crate) fn reading() -> Reading {
    Reading {
        timestamp: at(1_763_900_000_123),
        asset_id: AssetId::new_random(),
        sensor_id: SensorId::new_random(),
        sensor_code: "MTR-001-VIB".into(),
        sensor_type: SensorType::Vibration,
        value: 4.25,
        unit: "mm/s".into(),
        quality: Quality::new(87).expect("valid quality"),
        source: SourceProtocol::Mtconnect,
        metadata: BTreeMap::from([("line".into(), "L2".into()), ("cell".into(), "C4".into())]),
    }
}

pub(crate) fn window() -> Window {
    Window {
        asset_id: AssetId::new_random(),
        sensor_id: SensorId::new_random(),
        sensor_type: SensorType::Temperature,
        window_start: at(1_763_900_000_000),
        window_end: at(1_763_900_060_000),
        count: 3,
        mean: 2.0,
        std: 0.816,
        min: 1.0,
        max: 3.0,
        values: vec![1.0, 2.0, 3.0],
        sample_rate_hz: 0.05,
    }
}

pub(crate) fn feature_vector() -> FeatureVector {
    FeatureVector {
        asset_id: AssetId::new_random(),
        sensor_id: SensorId::new_random(),
        sensor_type: SensorType::Current,
        window_start: at(1_763_900_000_000),
        window_end: at(1_763_900_060_000),
        feature_set_version: "fs-1".into(),
        features: BTreeMap::from([("rms".into(), 3.5), ("kurtosis".into(), -0.25)]),
    }
}

pub(crate) fn anomaly() -> Anomaly {
    let sensor_id = SensorId::new_random();
    let window_start = at(1_763_900_000_000);
    Anomaly {
        id: Anomaly::id_for(sensor_id, window_start),
        asset_id: AssetId::new_random(),
        sensor_id,
        window_start,
        detected_at: at(1_763_900_061_000),
        score: 0.93,
        threshold: 0.8,
        severity: Severity::Critical,
        criticality: Criticality::High,
        method: "robust-zscore".into(),
        contributions: vec![
            Contribution {
                feature: "rms".into(),
                sensor_id,
                value: 9.1,
                z_score: 6.2,
            },
            Contribution {
                feature: "peak".into(),
                sensor_id: SensorId::new_random(),
                value: 20.0,
                z_score: 3.1,
            },
        ],
    }
}

pub(crate) fn rul_prediction() -> RulPrediction {
    RulPrediction {
        asset_id: AssetId::new_random(),
        predicted_at: at(1_763_900_000_000),
        rul_cycles: 120.5,
        confidence_lower: 90.0,
        confidence_upper: 150.0,
        model_version: "weibull-3".into(),
    }
}

pub(crate) fn work_order() -> WorkOrder {
    WorkOrder {
        id: WorkOrderId::new_random(),
        code: "WO-20261123-0001".into(),
        asset_id: AssetId::new_random(),
        cause: "anomaly".into(),
        priority: Priority::Urgent,
        status: WorkOrderStatus::InProgress,
        created_at: at(1_763_900_000_000),
        due_by: at(1_763_907_200_000),
        description: "Check the bearing of the main motor".into(),
        rule: "anomaly-critical".into(),
        trigger_event: "anomaly:1234".into(),
    }
}

pub(crate) fn alert() -> Alert {
    Alert {
        id: Alert::id_for("anomaly:1234"),
        asset_id: AssetId::new_random(),
        severity: Severity::High,
        kind: AlertKind::Rul,
        message: "RUL below 100 cycles".into(),
        created_at: at(1_763_900_000_000),
        work_order_id: Some(WorkOrderId::new_random()),
        trigger_event: "anomaly:1234".into(),
        notify_on_call: true,
    }
}

pub(crate) fn data_quality_issue() -> DataQualityIssue {
    DataQualityIssue {
        timestamp: at(1_763_900_000_000),
        asset_id: None,
        sensor_id: Some(SensorId::new_random()),
        value: 1e9,
        unit: "bar".into(),
        quality: Quality::new(12).expect("valid quality"),
        reason: QualityReason::OutOfRange,
        detail: "1e9 bar is above the sensor's maximum of 400".into(),
    }
}

/// Encodes `value` with `codec`, checks the framing, decodes it and checks it came back equal.
pub(crate) async fn round_trips<R: Record + PartialEq + Debug>(codec: &Codec, value: R) {
    let bytes = codec.encode(&value).expect("encodes");
    let id = codec.schema_id(R::TOPIC).expect("the topic has a schema");
    assert_eq!(bytes[0], 0x00, "{}: magic byte", R::TOPIC);
    assert_eq!(bytes[1..5], id.to_be_bytes(), "{}: schema id", R::TOPIC);
    let decoded: R = codec.decode(&bytes).await.expect("decodes");
    assert_eq!(decoded, value, "{}", R::TOPIC);
}

/// Every sample through `codec`: one test body for every registry.
pub(crate) async fn every_record_round_trips(codec: &Codec) {
    round_trips(codec, reading()).await;
    round_trips(codec, window()).await;
    round_trips(codec, feature_vector()).await;
    round_trips(codec, anomaly()).await;
    round_trips(codec, rul_prediction()).await;
    round_trips(codec, work_order()).await;
    round_trips(codec, alert()).await;
    round_trips(codec, data_quality_issue()).await;
}

/// A compiled-in schema by topic and version.
pub(crate) fn schema(topic: &str, version: u32) -> (u32, Schema) {
    let s = SCHEMAS
        .iter()
        .find(|s| s.topic == topic && s.version == version)
        .expect("a known schema version");
    (s.id, Schema::parse_str(s.source).expect("a valid schema"))
}

/// `value` written with `schema` by hand, framed with `id`.
pub(crate) fn frame_by_hand(id: u32, schema: &Schema, value: Value) -> Vec<u8> {
    let datum = GenericDatumWriter::builder(schema)
        .build()
        .expect("a writer")
        .write_value_to_vec(value)
        .expect("the value fits the schema");
    wire::frame(id, &datum)
}

/// A `sensor.raw` v1 record (the seed schema), as an old producer writes it.
pub(crate) fn sensor_raw_v1(asset_id: &str, quality: i32) -> Value {
    Value::Record(vec![
        (
            "timestamp".into(),
            Value::TimestampMillis(1_763_900_000_123),
        ),
        ("assetId".into(), Value::String(asset_id.into())),
        (
            "sensorId".into(),
            Value::String("7f1c9a4e-3b1d-4c55-9d2e-0a6b3c4d5e6f".into()),
        ),
        ("sensorCode".into(), Value::String("PMP-002-PRS".into())),
        ("sensorType".into(), Value::Enum(2, "PRESSURE".into())),
        ("value".into(), Value::Double(6.5)),
        ("unit".into(), Value::String("bar".into())),
        ("quality".into(), Value::Int(quality)),
        ("source".into(), Value::Enum(2, "MODBUS_TCP".into())),
        (
            "metadata".into(),
            Value::Union(
                1,
                Box::new(Value::Map(
                    [("plc".to_owned(), Value::String("S7-1200".into()))].into(),
                )),
            ),
        ),
    ])
}
