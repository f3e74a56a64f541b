use crate::fixtures::*;
use mantis_codec::{Codec, Record};
use mantis_domain::{Alert, DataQualityIssue, Reading, SourceProtocol};

#[tokio::test]
async fn every_record_type_round_trips_through_the_embedded_registry() {
    every_record_round_trips(&Codec::embedded()).await;
}

#[tokio::test]
async fn optional_and_empty_values_round_trip() {
    let codec = Codec::embedded();
    round_trips(
        &codec,
        Reading {
            metadata: Default::default(),
            source: SourceProtocol::OpcUa,
            ..reading()
        },
    )
    .await;
    round_trips(
        &codec,
        Alert {
            work_order_id: None,
            ..alert()
        },
    )
    .await;
    round_trips(
        &codec,
        DataQualityIssue {
            asset_id: None,
            sensor_id: None,
            ..data_quality_issue()
        },
    )
    .await;
}

#[tokio::test]
async fn non_finite_values_survive_for_data_quality_issues() {
    let codec = Codec::embedded();
    let issue = DataQualityIssue {
        value: f64::NAN,
        ..data_quality_issue()
    };
    let decoded: DataQualityIssue = codec
        .decode(&codec.encode(&issue).expect("encodes"))
        .await
        .expect("decodes");
    assert!(decoded.value.is_nan());
}

#[test]
fn the_embedded_codec_writes_the_latest_version_with_the_fixed_ids() {
    let codec = Codec::embedded();
    let ids: Vec<_> = [
        "sensor.raw",
        "sensor.windowed",
        "features.extracted",
        "anomaly.detected",
        "rul.predicted",
        "maintenance.scheduled",
        "alerts.critical",
        "data.quality.issues",
    ]
    .iter()
    .map(|t| codec.schema_id(t))
    .collect();
    assert_eq!(
        ids,
        [2, 10, 4, 5, 6, 7, 8, 9].map(Some).to_vec(),
        "sensor.raw is written with v2 (id 2), sensor.windowed with v2 (id 10)"
    );
    assert_eq!(codec.schema_id(Reading::TOPIC), Some(2));
    assert_eq!(codec.schema_id("no.such.topic"), None);
}
