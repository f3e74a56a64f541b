//! Publishing to a Kafka-protocol broker (a bench binary that prints figures): one record at a
//! time, each awaited (`Bus::publish`), against a batch whose delivery reports are awaited
//! together (`Bus::publish_all`, what ingestion does with a request's or a connector's batch).
//!
//! Run against a broker (tansu here): `MANTIS_TEST_KAFKA_BROKERS=127.0.0.1:9092 cargo bench -p
//! mantis-bus --bench kafka_publish`

use mantis_bus::kafka::{KafkaBus, KafkaConfig};
use mantis_bus::{Bus, OutboundRecord, TopicSpec, TraceContext};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 120; // about one Avro-encoded reading

fn record(topic: &str, i: usize) -> OutboundRecord {
    OutboundRecord::new(
        topic,
        Some(format!("asset-{}", i % 64).into_bytes()),
        vec![7u8; PAYLOAD],
        TraceContext::new_root(),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let brokers =
        std::env::var("MANTIS_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let bus = KafkaBus::new(KafkaConfig::new(&brokers, "mantis-bench"))?;
    bus.ping().await?;
    let topic = format!("bench-publish-{:08x}", rand::random::<u32>());
    bus.ensure_topics(&[TopicSpec {
        name: topic.clone(),
        partitions: 12,
        retention: Duration::from_secs(3600),
    }])
    .await?;
    // Warm up the connections and metadata.
    bus.publish(record(&topic, 0)).await?;
    for n in [200, 1_000] {
        let records: Vec<_> = (0..n).map(|i| record(&topic, i)).collect();
        let started = Instant::now();
        for r in &records {
            bus.publish(r.clone()).await?;
        }
        let one_by_one = started.elapsed();
        let started = Instant::now();
        let (accepted, error) = bus.publish_all(&records).await;
        let batch = started.elapsed();
        if let Some(e) = error {
            return Err(e.into());
        }
        assert_eq!(accepted, n);
        println!(
            "{n} records of {PAYLOAD} B: one by one {:.0} records/s ({:.2} ms each); publish_all {:.0} records/s ({:.1} ms for the batch)",
            n as f64 / one_by_one.as_secs_f64(),
            one_by_one.as_secs_f64() * 1e3 / n as f64,
            n as f64 / batch.as_secs_f64(),
            batch.as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
