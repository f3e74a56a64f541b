//! `mantis dlq` on an embedded data directory: the dead-letter topics listed with what they
//! hold, their letters shown (filtered by reason, as JSON), replayed to the topics they came
//! from (a dry run first; device messages never; not while another replay of the topic holds
//! its lease), and clear errors for a topic that is not a dead-letter one and for a log in use
//! by a running platform.

use mantis_bus::embedded::EmbeddedBus;
use mantis_bus::{
    Bus, DLQ_REASON, DLQ_SOURCE_TOPIC, Envelope, OutboundRecord, StartFrom, SubscribeOptions,
    TopicSpec, TraceContext,
};
use mantis_store::Store as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn mantis(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mantis"))
        .arg("dlq")
        .args(args)
        .env("MANTIS_INFRA__DATA_DIR", data)
        .env("NO_COLOR", "1")
        .output()
        .expect("mantis runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spec(name: &str) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions: 1,
        retention: Duration::from_secs(7 * 24 * 3600),
    }
}

/// Every record `topic` holds, read from the start by a group of its own.
async fn records(bus: &EmbeddedBus, topic: &str) -> Vec<Envelope> {
    let group = format!("test-{:x}", rand::random::<u64>());
    let mut sub = bus
        .subscribe(SubscribeOptions::new(group, [topic], StartFrom::Earliest))
        .await
        .expect("subscribe");
    let end = bus.topic_offsets(topic).await.expect("offsets")[0].retained();
    let mut got = Vec::new();
    while (got.len() as i64) < end {
        got.push(
            tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("in time")
                .expect("a record"),
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_and_replayed_to_where_they_came_from() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let bus = EmbeddedBus::open(data.path().join("log"))
            .await
            .expect("log");
        bus.ensure_topics(&[
            spec("sensor.raw"),
            spec("dlq.preprocessing"),
            spec("dlq.ingestion"),
        ])
        .await
        .expect("topics");
        // Two readings the preprocessing service refused, as its consumer dead-letters them.
        for (i, reason) in ["unknown sensor 42", "value is not a number"]
            .iter()
            .enumerate()
        {
            let record = OutboundRecord::new(
                "sensor.raw",
                Some(format!("sensor-{i}").into_bytes()),
                format!("reading {i}").into_bytes(),
                TraceContext::new_root(),
            )
            .with_header("mantis.schema", "sensor.raw.v1");
            let at = bus.publish(record).await.expect("published");
            let read = records(&bus, "sensor.raw").await;
            let envelope = read
                .iter()
                .find(|e| e.offset == at.offset)
                .expect("read back");
            bus.publish(envelope.to_dead_letter("dlq.preprocessing", reason))
                .await
                .expect("dead-lettered");
        }
        // A device message that yielded no reading: from no topic.
        let device = OutboundRecord::new(
            "dlq.ingestion",
            Some(b"mqtt-line-3".to_vec()),
            b"{not json".to_vec(),
            TraceContext::new_root(),
        )
        .with_header(DLQ_REASON, "not JSON")
        .with_header("mantis.dlq.connector", "mqtt-line-3");
        bus.publish(device).await.expect("device letter");
        // A reading the bus refused before it was written (ingestion's edge): read by no
        // consumer yet, so for all of them when replayed.
        let refused = OutboundRecord::new(
            "sensor.raw",
            Some(b"sensor-9".to_vec()),
            b"reading 9".to_vec(),
            TraceContext::new_root(),
        );
        bus.publish(refused.to_dead_letter("dlq.ingestion", "record too large"))
            .await
            .expect("refused letter");

        // The log in use (a running platform): said, nothing touched.
        let (ok, _, err) = mantis(data.path(), &["list"]);
        assert!(!ok);
        assert!(err.contains("in use"), "{err}");
    }

    let (ok, out, err) = mantis(data.path(), &["list"]);
    assert!(ok, "{err}");
    let line = |topic: &str| {
        out.lines()
            .find(|l| l.starts_with(topic))
            .unwrap_or_else(|| panic!("{topic} listed: {out}"))
            .to_owned()
    };
    assert!(line("dlq.preprocessing").contains(" 2 records"), "{out}");
    assert!(line("dlq.ingestion").contains(" 2 records"), "{out}");
    assert!(
        !out.contains("sensor.raw"),
        "only dead-letter topics: {out}"
    );

    let (ok, out, err) = mantis(data.path(), &["show", "dlq.preprocessing", "--json"]);
    assert!(ok, "{err}");
    let letters: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON per line"))
        .collect();
    assert_eq!(letters.len(), 2, "{out}");
    assert_eq!(letters[0]["reason"], "unknown sensor 42");
    assert_eq!(letters[0]["source"], "sensor.raw/0/0");
    assert_eq!(letters[0]["key"], "sensor-0");
    assert_eq!(letters[1]["source"], "sensor.raw/0/1");
    assert_eq!(letters[1]["headers"]["mantis.schema"], "sensor.raw.v1");

    let (ok, out, _) = mantis(
        data.path(),
        &["show", "dlq.preprocessing", "--reason", "NOT A NUMBER"],
    );
    assert!(ok);
    assert!(
        out.contains("value is not a number") && !out.contains("unknown sensor"),
        "{out}"
    );
    let (ok, out, _) = mantis(data.path(), &["show", "dlq.preprocessing", "--limit", "1"]);
    assert!(ok);
    assert!(
        out.contains("value is not a number") && !out.contains("unknown sensor"),
        "the newest: {out}"
    );
    let (ok, out, _) = mantis(
        data.path(),
        &[
            "show",
            "dlq.preprocessing",
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert!(ok);
    assert!(out.contains("unknown sensor"), "{out}");
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (ok, out, _) = mantis(
        data.path(),
        &["show", "dlq.preprocessing", "--since", &future],
    );
    assert!(ok);
    assert!(
        out.contains("no dead letter"),
        "none set aside since then: {out}"
    );
    let (ok, out, _) = mantis(data.path(), &["show", "dlq.ingestion"]);
    assert!(ok);
    assert!(
        out.contains("from a device") && out.contains("mantis.dlq.connector: mqtt-line-3"),
        "{out}"
    );

    // Another replay of the topic running (a gateway over the same store, say: its lease),
    // a replay publishes nothing and says who runs it; a dry run is not held.
    let store = mantis_store::sqlite::SqliteStore::open(data.path().join("mantis.db"))
        .await
        .expect("the platform's store");
    let lease = mantis_runtime::dead_letters::lease_of("dlq.preprocessing");
    let other = "admin on gateway-1#7.abcdef";
    let held = store
        .acquire_lease(&lease, other, chrono::Utc::now(), Duration::from_secs(60))
        .await
        .expect("lease");
    assert!(held.is_held_by(other));
    let (ok, _, err) = mantis(data.path(), &["replay", "dlq.preprocessing"]);
    assert!(!ok);
    assert!(
        err.contains("a replay of `dlq.preprocessing` is running (admin on gateway-1;"),
        "{err}"
    );

    // A dry run publishes nothing; the replay publishes both back as they were.
    let (ok, out, err) = mantis(
        data.path(),
        &[
            "replay",
            "dlq.preprocessing",
            "--reason",
            "unknown",
            "--dry-run",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("would publish 1 to sensor.raw") && out.contains("1 left by the filter"),
        "{out}"
    );
    assert!(
        store
            .release_lease(&lease, other, None)
            .await
            .expect("released")
    );
    let (ok, out, err) = mantis(
        data.path(),
        &["replay", "dlq.preprocessing", "--since", "1h"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("published 2 to sensor.raw"), "{out}");
    // Replayed once: shown so, left by the next replay unless `--again`.
    let (ok, out, _) = mantis(data.path(), &["show", "dlq.preprocessing"]);
    assert!(ok);
    assert_eq!(out.matches("  replayed 20").count(), 2, "{out}");
    let (ok, out, err) = mantis(data.path(), &["replay", "dlq.preprocessing"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("nothing to replay") && out.contains("2 sent by an earlier replay"),
        "{out}"
    );
    let (ok, out, err) = mantis(
        data.path(),
        &[
            "replay",
            "dlq.preprocessing",
            "--reason",
            "unknown",
            "--again",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("published 1 to sensor.raw"), "{out}");
    let (ok, out, _) = mantis(data.path(), &["replay", "dlq.ingestion"]);
    assert!(ok);
    assert!(
        out.contains("1 not replayable") && out.contains("published 1 to sensor.raw"),
        "{out}"
    );
    // The device message is never shown replayed, though the replay went past it.
    let (ok, out, _) = mantis(data.path(), &["show", "dlq.ingestion"]);
    assert!(ok);
    assert_eq!(out.matches("  replayed 20").count(), 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("from a device") && !l.contains("replayed")),
        "{out}"
    );

    // Over Kafka, a replay needs the database the services share (its lease); named at once.
    let out = Command::new(env!("CARGO_BIN_EXE_mantis"))
        .args(["dlq", "replay", "dlq.preprocessing"])
        .env("MANTIS_INFRA__DATA_DIR", data.path())
        .env("MANTIS_INFRA__BUS__KIND", "kafka")
        .env("MANTIS_INFRA__BUS__BROKERS", "127.0.0.1:1")
        .output()
        .expect("mantis runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("set infra.database_url"), "{err}");

    // Errors: a topic that is not a dead-letter one, a time that is not one.
    let (ok, _, err) = mantis(data.path(), &["show", "sensor.raw"]);
    assert!(!ok);
    assert!(err.contains("not a dead-letter topic"), "{err}");
    let (ok, _, err) = mantis(
        data.path(),
        &["show", "dlq.preprocessing", "--since", "99999999999d"],
    );
    assert!(!ok, "an overflowing time is an error, not a panic");
    assert!(err.contains("99999999999d"), "{err}");
    let (ok, _, err) = mantis(
        data.path(),
        &["show", "dlq.preprocessing", "--since", "yesterday"],
    );
    assert!(!ok);
    assert!(err.contains("a duration such as 30m"), "{err}");

    let bus = EmbeddedBus::open(data.path().join("log"))
        .await
        .expect("log");
    let raw = records(&bus, "sensor.raw").await;
    assert_eq!(
        raw.len(),
        6,
        "the two readings, their replays, the one sent again, the refused one"
    );
    assert_eq!(raw[4].key, raw[0].key, "sent again when asked");
    assert_eq!(raw[5].key.as_deref(), Some(&b"sensor-9"[..]));
    assert_eq!(
        raw[5].header(mantis_bus::REPLAY_FOR),
        None,
        "refused before it was written: for every consumer"
    );
    for (original, again) in [(&raw[0], &raw[2]), (&raw[1], &raw[3])] {
        assert_eq!(again.key, original.key);
        assert_eq!(again.payload, original.payload);
        assert_eq!(again.header("mantis.schema"), Some(&b"sensor.raw.v1"[..]));
        assert!(again.header(DLQ_REASON).is_none() && again.header(DLQ_SOURCE_TOPIC).is_none());
        assert_eq!(
            again.header(mantis_bus::REPLAY_FOR),
            Some(&b"preprocessing"[..]),
            "for the consumers that set it aside"
        );
        assert_eq!(
            again.trace().trace_id,
            original.trace().trace_id,
            "the same trace"
        );
    }
    assert_eq!(
        bus.topic_offsets("dlq.preprocessing")
            .await
            .expect("offsets")[0]
            .retained(),
        2,
        "the dead letters stay"
    );
}
