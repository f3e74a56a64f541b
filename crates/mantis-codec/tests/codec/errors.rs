use crate::fixtures::*;
use apache_avro::types::Value;
use mantis_codec::{Codec, Error, wire};
use mantis_domain::{Anomaly, Reading};

async fn decode_reading(bytes: &[u8]) -> Error {
    Codec::embedded()
        .decode::<Reading>(bytes)
        .await
        .expect_err("must not decode")
}

#[tokio::test]
async fn garbage_is_rejected_by_its_magic_byte() {
    let err = decode_reading(br#"{"assetId":"x"}"#).await;
    assert!(matches!(err, Error::BadMagicByte { found: b'{' }), "{err}");
    assert!(err.is_dead_letter());
    assert!(err.to_string().contains("magic byte"), "{err}");
}

#[tokio::test]
async fn messages_shorter_than_the_header_are_too_short() {
    for bytes in [&[][..], &[0][..], &[0, 0, 0, 2][..]] {
        let err = decode_reading(bytes).await;
        assert!(
            matches!(err, Error::TooShort { len } if len == bytes.len()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn an_unknown_schema_id_is_reported_as_such() {
    let datum = &Codec::embedded().encode(&reading()).expect("encodes")[wire::HEADER_LEN..];
    let err = decode_reading(&wire::frame(4242, datum)).await;
    assert!(matches!(err, Error::UnknownSchemaId { id: 4242 }), "{err}");
    assert!(err.is_dead_letter() && !err.is_retriable());
}

#[tokio::test]
async fn a_truncated_datum_does_not_match_its_schema() {
    let bytes = Codec::embedded().encode(&reading()).expect("encodes");
    let err = decode_reading(&bytes[..bytes.len() / 2]).await;
    assert!(matches!(err, Error::Datum { id: 2, .. }), "{err}");
    assert!(err.is_dead_letter());
}

#[tokio::test]
async fn trailing_bytes_after_the_datum_are_rejected() {
    let mut bytes = Codec::embedded().encode(&reading()).expect("encodes");
    bytes.extend_from_slice(b"junk");
    let err = decode_reading(&bytes).await;
    assert!(
        matches!(&err, Error::Datum { reason, .. } if reason.contains("4 bytes are left")),
        "{err}"
    );
}

#[tokio::test]
async fn a_record_of_another_topic_is_not_misread() {
    let codec = Codec::embedded();
    let bytes = codec.encode(&reading()).expect("encodes");
    let err = codec
        .decode::<Anomaly>(&bytes)
        .await
        .expect_err("a reading is not an anomaly");
    assert!(
        matches!(&err, Error::Datum { topic: "anomaly.detected", reason, .. } if reason.contains("SensorData")),
        "{err}"
    );
}

#[tokio::test]
async fn values_that_do_not_fit_the_domain_are_invalid_records() {
    let (id, v1) = schema("sensor.raw", 1);
    let err = decode_reading(&frame_by_hand(id, &v1, sensor_raw_v1("not-a-uuid", 90))).await;
    assert!(
        matches!(&err, Error::InvalidRecord { topic: "sensor.raw", reason } if reason.contains("assetId")),
        "{err}"
    );
    assert!(err.is_dead_letter());

    let asset = "0b7e4c1a-2d3f-4a5b-8c9d-0e1f2a3b4c5d";
    let err = decode_reading(&frame_by_hand(id, &v1, sensor_raw_v1(asset, 250))).await;
    assert!(
        matches!(&err, Error::InvalidRecord { reason, .. } if reason.contains("quality")),
        "{err}"
    );
}

#[tokio::test]
async fn a_value_of_the_wrong_shape_is_an_invalid_record_not_a_panic() {
    use mantis_codec::Record;
    let err = Reading::from_avro(Value::String("nope".into())).expect_err("not a record");
    assert!(matches!(err, Error::InvalidRecord { .. }), "{err}");
}
