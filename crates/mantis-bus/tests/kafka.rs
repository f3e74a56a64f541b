//! The conformance suite against a real Kafka-protocol broker (tansu in development and CI).
//!
//! The broker address comes from `MANTIS_TEST_KAFKA_BROKERS` (default `127.0.0.1:9092`). These
//! tests fail, on purpose, when no broker answers: start one with
//!
//! ```text
//! tansu broker --listener-url tcp://127.0.0.1:9092 \
//!   --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/
//! ```
#![cfg(feature = "kafka")]

use mantis_bus::kafka::{KafkaBus, KafkaConfig};
use mantis_bus::{Bus, conformance};
use std::time::Duration;

async fn broker() -> KafkaBus {
    let brokers =
        std::env::var("MANTIS_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let mut config = KafkaConfig::new(&brokers, "mantis-bus-tests")
        // Unknown topics are reported after 3 s instead of librdkafka's 30 s grace period
        // for topics still propagating through a cluster.
        .with("topic.metadata.propagation.max.ms", "3000");
    config.request_timeout = Duration::from_secs(5);
    let bus = KafkaBus::new(config).expect("Kafka client configuration");
    if let Err(e) = bus.ping().await {
        panic!(
            "no Kafka broker answers at {brokers} ({e}). Start tansu with `tansu broker \
             --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
             --storage-engine memory://tansu/` or point MANTIS_TEST_KAFKA_BROKERS at a broker."
        );
    }
    bus
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let bus = broker().await;
            conformance::$name(&bus, &conformance::unique_ns(stringify!($name))).await;
        }
    )*};
}

conformance_tests!(
    ensure_topics_is_idempotent,
    unknown_topics_are_reported,
    per_key_order_holds_across_interleaved_keys,
    a_published_batch_keeps_per_key_order,
    headers_and_trace_context_round_trip,
    concurrent_publishes_all_land_once,
    group_members_share_partitions,
    a_member_is_told_which_partitions_were_taken_from_it,
    every_group_receives_every_record,
    a_restarted_group_resumes_after_its_commit,
    uncommitted_records_are_redelivered,
    latest_skips_older_records,
    dead_letters_carry_reason_and_source,
    topics_are_listed_with_their_retained_offsets,
);
