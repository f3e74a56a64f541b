//! Schema evolution: the registry runs with BACKWARD compatibility, so every version of a topic
//! must read what the previous version wrote.

use crate::fixtures::*;
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::types::Value;
use mantis_codec::{Codec, EmbeddedSchema, SCHEMAS};
use mantis_domain::{Reading, SourceProtocol};
use std::collections::BTreeMap;
use std::path::Path;

/// Some value of `schema`, with every array, map and nullable union filled in.
fn sample(schema: &Schema) -> Value {
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(true),
        Schema::Int => Value::Int(7),
        Schema::Long => Value::Long(7),
        Schema::Float => Value::Float(1.5),
        Schema::Double => Value::Double(1.5),
        Schema::String => Value::String("s".into()),
        Schema::TimestampMillis => Value::TimestampMillis(1_763_900_000_000),
        Schema::Enum(e) => {
            let last = e.symbols.len() - 1;
            Value::Enum(last as u32, e.symbols[last].clone())
        }
        Schema::Array(a) => Value::Array(vec![sample(&a.items)]),
        Schema::Map(m) => Value::Map([("k".to_owned(), sample(&m.types))].into()),
        Schema::Union(u) => {
            let last = u.variants().len() - 1;
            Value::Union(last as u32, Box::new(sample(&u.variants()[last])))
        }
        Schema::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), sample(&f.schema)))
                .collect(),
        ),
        other => panic!("no sample for {other:?}: extend `sample`"),
    }
}

fn versions_by_topic() -> BTreeMap<&'static str, Vec<&'static EmbeddedSchema>> {
    let mut topics: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for s in SCHEMAS {
        topics.entry(s.topic).or_default().push(s);
    }
    for versions in topics.values_mut() {
        versions.sort_by_key(|s| s.version);
    }
    topics
}

#[test]
fn every_version_is_backward_compatible_with_the_previous_one() {
    let mut checked = 0;
    for (topic, versions) in versions_by_topic() {
        for pair in versions.windows(2) {
            let (old, new) = (pair[0], pair[1]);
            let (_, writer) = schema(topic, old.version);
            let (_, reader) = schema(topic, new.version);
            // `Partial` (some old records unreadable) is incompatible, as for Confluent.
            assert_eq!(
                SchemaCompatibility::can_read(&writer, &reader).map_err(|e| e.to_string()),
                Ok(Compatibility::Full),
                "{} must read everything {} wrote",
                new.file_name(),
                old.file_name()
            );
            // And actually read a record written with the old version.
            let datum = frame_by_hand(old.id, &writer, sample(&writer));
            let value = GenericDatumReader::builder(&writer)
                .reader_schema(&reader)
                .build()
                .and_then(|r| r.read_value(&mut &datum[5..]))
                .unwrap_or_else(|e| panic!("{} reading {}: {e}", new.file_name(), old.file_name()));
            assert!(
                value.validate(&reader),
                "{}: resolved value does not fit",
                new.file_name()
            );
            checked += 1;
        }
    }
    assert!(checked >= 1, "sensor.raw has two versions");
}

#[tokio::test]
async fn a_v1_sensor_reading_decodes_with_the_v2_codec() {
    let (id, v1) = schema("sensor.raw", 1);
    assert_eq!(id, 1);
    let asset = "0b7e4c1a-2d3f-4a5b-8c9d-0e1f2a3b4c5d";
    let bytes = frame_by_hand(id, &v1, sensor_raw_v1(asset, 90));

    let codec = Codec::embedded();
    assert_eq!(codec.schema_id("sensor.raw"), Some(2));
    let reading: Reading = codec.decode(&bytes).await.expect("v2 reads v1");

    assert_eq!(reading.asset_id.to_string(), asset);
    assert_eq!(reading.source, SourceProtocol::ModbusTcp);
    assert_eq!(reading.quality.get(), 90);
    assert_eq!(
        reading.metadata.get("plc").map(String::as_str),
        Some("S7-1200")
    );
    assert_eq!(reading.timestamp, at(1_763_900_000_123));
}

/// A window written before the sample rate was carried reads with rate 0 ("unknown"): the
/// rate is then estimated from its samples over its duration.
#[tokio::test]
async fn a_v1_window_decodes_with_the_v2_codec_without_a_sample_rate() {
    let (id, v1) = schema("sensor.windowed", 1);
    assert_eq!(id, 3);
    let mut old = sample(&v1);
    if let Value::Record(fields) = &mut old {
        for (name, value) in fields.iter_mut() {
            match name.as_str() {
                "assetId" => *value = Value::String("0b7e4c1a-2d3f-4a5b-8c9d-0e1f2a3b4c5d".into()),
                "sensorId" => *value = Value::String("7f1c9a4e-3b1d-4c55-9d2e-0a6b3c4d5e6f".into()),
                "windowEnd" => *value = Value::TimestampMillis(1_763_900_002_000),
                "values" => *value = Value::Array(vec![Value::Double(1.0); 4]),
                _ => {}
            }
        }
    }
    let bytes = frame_by_hand(id, &v1, old);
    let codec = Codec::embedded();
    let window: mantis_domain::Window = codec.decode(&bytes).await.expect("v2 reads v1");
    assert_eq!(window.sample_rate_hz, 0.0);
    assert_eq!(window.values.len(), 4);
    // 4 samples over the 2 s from the sample start (1 763 900 000 000) to its end.
    assert_eq!(window.rate_hz(), 2.0);
}

#[tokio::test]
async fn a_protocol_added_after_v2_reads_as_the_enum_default() {
    // A future v3 adding a symbol: v2 readers fall back on SourceProtocol's default (REST).
    let (_, v2) = schema("sensor.raw", 2);
    let v2_text = SCHEMAS.iter().find(|s| s.id == 2).expect("v2").source;
    let v3 = Schema::parse_str(&v2_text.replace(r#""SIMULATOR""#, r#""SIMULATOR", "PROFINET""#))
        .expect("a valid v3");
    assert_eq!(
        SchemaCompatibility::can_read(&v2, &v3).ok(),
        Some(Compatibility::Full)
    );

    let mut record = sample(&v3);
    if let Value::Record(fields) = &mut record {
        for (name, value) in fields.iter_mut() {
            match name.as_str() {
                "assetId" | "sensorId" => {
                    *value = Value::String("0b7e4c1a-2d3f-4a5b-8c9d-0e1f2a3b4c5d".into())
                }
                "source" => *value = Value::Enum(7, "PROFINET".into()),
                "quality" => *value = Value::Int(100),
                _ => {}
            }
        }
    }
    let registry = mantis_codec::EmbeddedRegistry::new();
    use mantis_codec::SchemaRegistry;
    let v3_id = registry
        .register(
            "sensor.raw-value",
            &serde_json::to_string(&v3).expect("json"),
        )
        .await
        .expect("v3 is backward compatible");
    let codec = Codec::new(std::sync::Arc::new(registry))
        .await
        .expect("codec");
    let reading: Reading = codec
        .decode(&frame_by_hand(v3_id, &v3, record))
        .await
        .expect("v2 reads v3");
    assert_eq!(reading.source, SourceProtocol::Rest);
}

#[test]
fn every_schema_file_is_in_the_embedded_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("schemas/ exists")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".avsc"))
        .collect();
    files.sort();
    let mut known: Vec<String> = SCHEMAS.iter().map(EmbeddedSchema::file_name).collect();
    known.sort();
    assert_eq!(
        files, known,
        "every schemas/*.avsc needs an id in SCHEMAS, and vice versa"
    );
    for s in SCHEMAS {
        let on_disk = std::fs::read_to_string(dir.join(s.file_name())).expect("readable");
        assert_eq!(on_disk, s.source, "{} is compiled in as is", s.file_name());
    }
}

#[test]
fn every_schema_is_a_com_mantis_avro_record() {
    for s in SCHEMAS {
        let parsed = Schema::parse_str(s.source)
            .unwrap_or_else(|e| panic!("{} is not valid Avro: {e}", s.file_name()));
        let name = parsed.name().expect("a named record");
        assert_eq!(
            name.namespace(),
            Some("com.mantis.avro"),
            "{}",
            s.file_name()
        );
    }
}
