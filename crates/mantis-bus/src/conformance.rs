//! The conformance suite: one body per behaviour the services rely on, generic over the [`Bus`],
//! run by the tests of every implementation (`tests/embedded.rs`, `tests/kafka.rs`).
//!
//! Each body takes the bus and `ns`, a prefix unique to the test run (see [`unique_ns`]) used in
//! every topic and group name, so bodies can share a broker. Bodies panic on failure and bound
//! every wait with a timeout, so a broken bus fails instead of hanging.

use crate::{
    Bus, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, Delivery, Envelope,
    Error, OutboundRecord, StartFrom, SubscribeOptions, Subscription, TopicSpec, TraceContext,
    topics,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Upper bound of every wait (group joins on a real broker can take seconds).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A namespace for one test run: the test name plus a random suffix (valid in topic names).
pub fn unique_ns(test: &str) -> String {
    format!("{}-{:08x}", test.replace('_', "-"), rand::random::<u32>())
}

/// Creating topics twice is fine, and an existing topic keeps its partition count.
pub async fn ensure_topics_is_idempotent<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.idem");
    bus.ensure_topics(&[spec(&topic, 2)])
        .await
        .expect("first ensure_topics");
    bus.ensure_topics(&[spec(&topic, 2)])
        .await
        .expect("second ensure_topics");
    bus.ensure_topics(&[spec(&topic, 8)])
        .await
        .expect("ensure_topics with more partitions");
    let mut used = BTreeSet::new();
    for i in 0..40 {
        used.insert(
            publish(bus, &topic, Some(&format!("asset-{i}")), "x")
                .await
                .partition,
        );
    }
    assert_eq!(
        used,
        BTreeSet::from([0, 1]),
        "the topic must keep its 2 partitions"
    );
}

/// Publishing to, or subscribing to, a topic that does not exist is `Error::UnknownTopic`.
pub async fn unknown_topics_are_reported<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.missing");
    let record = OutboundRecord::new(&topic, None, b"x".to_vec(), TraceContext::new_root());
    match within("publish to a missing topic", bus.publish(record)).await {
        Err(Error::UnknownTopic(t)) => assert_eq!(t, topic),
        other => panic!("publish to a missing topic gave {other:?}"),
    }
    let options = SubscribeOptions::new(format!("{ns}.g"), [&topic], StartFrom::Earliest);
    match within("subscribe to a missing topic", bus.subscribe(options)).await {
        Err(Error::UnknownTopic(t)) => assert_eq!(t, topic),
        Err(e) => panic!("subscribe to a missing topic gave {e:?}"),
        Ok(_) => panic!("subscribe to a missing topic succeeded"),
    }
    bus.ping().await.expect("ping");
}

/// Records with the same key land in one partition and are received in publish order, with
/// many keys interleaved over a multi-partition topic.
pub async fn per_key_order_holds_across_interleaved_keys<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.order");
    bus.ensure_topics(&[spec(&topic, 4)])
        .await
        .expect("ensure_topics");
    let (keys, per_key) = (12, 15);
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    for seq in 0..per_key {
        for k in 0..keys {
            let key = format!("asset-{k}");
            let d = publish(bus, &topic, Some(&key), &format!("{key}:{seq}")).await;
            let first = *partition_of.entry(key.clone()).or_insert(d.partition);
            assert_eq!(first, d.partition, "{key} changed partition");
        }
    }
    let spread: BTreeSet<i32> = partition_of.values().copied().collect();
    assert!(
        spread.len() > 1,
        "keys should spread over partitions, all went to {spread:?}"
    );

    let mut sub = join(bus, &format!("{ns}.reader"), &topic, StartFrom::Earliest).await;
    let got = take(sub.as_mut(), keys * per_key).await;
    for env in &got {
        let text = String::from_utf8_lossy(&env.payload).into_owned();
        let (key, _) = text.split_once(':').expect("payload key:seq");
        assert_eq!(env.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(Some(&env.partition), partition_of.get(key));
    }
    assert_each_key_in_order(&got, keys, per_key);
    sub.close().await.expect("close");
}

/// A batch published at once keeps each key's order and lands once, all of it accepted; an
/// empty batch is nothing to do.
pub async fn a_published_batch_keeps_per_key_order<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.batch");
    bus.ensure_topics(&[spec(&topic, 4)])
        .await
        .expect("ensure_topics");
    let (keys, per_key) = (8, 50);
    let mut records = Vec::with_capacity(keys * per_key);
    for seq in 0..per_key {
        for k in 0..keys {
            records.push(OutboundRecord::new(
                topic.clone(),
                Some(format!("asset-{k}").into_bytes()),
                format!("asset-{k}:{seq}").into_bytes(),
                TraceContext::new_root(),
            ));
        }
    }
    let (accepted, error) = within("publish_all", bus.publish_all(&records)).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(accepted, records.len());
    let (none, error) = within("publish_all of nothing", bus.publish_all(&[])).await;
    assert_eq!((none, error.is_none()), (0, true));
    let mut sub = join(bus, &format!("{ns}.reader"), &topic, StartFrom::Earliest).await;
    let got = take(sub.as_mut(), keys * per_key).await;
    assert_each_key_in_order(&got, keys, per_key);
    let extra = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
    assert!(extra.is_err(), "each record once: {extra:?}");
    sub.close().await.expect("close");
}

/// Key, payload, extra headers (binary too) and the trace context come back unchanged, at the
/// partition and offset the publish reported; an unkeyed record comes back without a key.
pub async fn headers_and_trace_context_round_trip<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.headers");
    bus.ensure_topics(&[spec(&topic, 1)])
        .await
        .expect("ensure_topics");
    let trace = TraceContext::new_root();
    let record = OutboundRecord::new(
        &topic,
        Some(b"asset-7".to_vec()),
        vec![0, 159, 146, 150],
        trace,
    )
    .with_header(topics::SEVERITY_HEADER, "critical")
    .with_header("binary", vec![0u8, 255, 1]);
    let delivery = within("publish", bus.publish(record.clone()))
        .await
        .expect("publish");
    let unkeyed = OutboundRecord::new(&topic, None, b"no key".to_vec(), TraceContext::new_root());
    within("publish", bus.publish(unkeyed))
        .await
        .expect("publish unkeyed");

    let mut sub = join(bus, &format!("{ns}.reader"), &topic, StartFrom::Earliest).await;
    let got = take(sub.as_mut(), 2).await;
    let env = &got[0];
    assert_eq!(
        (env.partition, env.offset),
        (delivery.partition, delivery.offset)
    );
    assert_eq!(env.topic, topic);
    assert_eq!(env.key, record.key);
    assert_eq!(env.payload, record.payload);
    assert_eq!(env.trace(), trace);
    assert_eq!(env.header(topics::SEVERITY_HEADER), Some(&b"critical"[..]));
    assert_eq!(env.header("binary"), Some(&[0u8, 255, 1][..]));
    assert!(env.timestamp_ms > 0, "records carry a timestamp");
    assert_eq!(got[1].key, None);
    assert_eq!(got[1].payload, b"no key");
    sub.close().await.expect("close");
}

/// Concurrent publishers to one partition each get their own offset and nothing is lost.
pub async fn concurrent_publishes_all_land_once<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.concurrent");
    bus.ensure_topics(&[spec(&topic, 1)])
        .await
        .expect("ensure_topics");
    let n = 50;
    let texts: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let sends = texts
        .iter()
        .map(|t| publish(bus, &topic, Some("same-key"), t));
    let deliveries = futures::future::join_all(sends).await;
    let offsets: BTreeSet<i64> = deliveries.iter().map(|d| d.offset).collect();
    assert_eq!(offsets.len(), n, "every publish gets its own offset");

    let mut sub = join(bus, &format!("{ns}.reader"), &topic, StartFrom::Earliest).await;
    let got = take(sub.as_mut(), n).await;
    let payloads: BTreeSet<Vec<u8>> = got.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(payloads.len(), n);
    assert!(
        got.windows(2).all(|w| w[0].offset < w[1].offset),
        "offsets increase"
    );
    sub.close().await.expect("close");
}

/// Two members of one group get disjoint partitions and together receive every record once.
pub async fn group_members_share_partitions<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.shared");
    bus.ensure_topics(&[spec(&topic, 4)])
        .await
        .expect("ensure_topics");
    let group = format!("{ns}.workers");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let mut members = Vec::new();
    for member in 0..2 {
        let sub = join(bus, &group, &topic, StartFrom::Earliest).await;
        members.push(tokio::spawn(drain(member, sub, tx.clone(), stop.clone())));
    }

    // Warm up until both members have received something: from then on the group is stable.
    // Warm-up records may be redelivered by the rebalance and are not counted.
    let mut warm = [false; 2];
    within("both members receiving records", async {
        let mut i = 0;
        while !warm.iter().all(|w| *w) {
            publish(bus, &topic, Some(&format!("warm-{i}")), "warm").await;
            i += 1;
            let pause = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    got = rx.recv() => warm[got.expect("members alive").0] = true,
                    () = &mut pause => break,
                }
            }
        }
    })
    .await;

    let n = 40;
    for i in 0..n {
        publish(
            bus,
            &topic,
            Some(&format!("asset-{i}")),
            &format!("real-{i}"),
        )
        .await;
    }
    let mut received: Vec<(usize, Envelope)> = Vec::new();
    within("every record reaching a member", async {
        while received
            .iter()
            .map(|(_, e)| &e.payload)
            .collect::<BTreeSet<_>>()
            .len()
            < n
        {
            let (member, env) = rx.recv().await.expect("members alive");
            if env.payload.starts_with(b"real-") {
                received.push((member, env));
            }
        }
    })
    .await;
    stop.cancel();
    for m in members {
        m.await.expect("member task").expect("member loop");
    }

    assert_eq!(received.len(), n, "each record is received exactly once");
    let partitions_of = |m: usize| -> BTreeSet<i32> {
        received
            .iter()
            .filter(|(who, _)| *who == m)
            .map(|(_, e)| e.partition)
            .collect()
    };
    let (a, b) = (partitions_of(0), partitions_of(1));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both members share the work: {a:?} / {b:?}"
    );
    assert!(
        a.is_disjoint(&b),
        "members got overlapping partitions: {a:?} / {b:?}"
    );
}

/// A member is told which partitions a rebalance took from it: every partition a newcomer
/// reads was reported taken from the first member, the report is given once, and the first
/// member receives nothing more from the newcomer's partitions.
pub async fn a_member_is_told_which_partitions_were_taken_from_it<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.taken");
    bus.ensure_topics(&[spec(&topic, 4)])
        .await
        .expect("ensure_topics");
    let group = format!("{ns}.workers");
    let mut first = join(bus, &group, &topic, StartFrom::Earliest).await;
    let mut i = 0;
    within("the first member receiving", async {
        loop {
            publish(bus, &topic, Some(&format!("asset-{i}")), "warm").await;
            i += 1;
            if let Ok(got) = tokio::time::timeout(Duration::from_millis(200), first.next()).await {
                got.expect("next");
                break;
            }
        }
    })
    .await;
    assert_eq!(first.take_revoked(), vec![], "nothing taken while alone");
    for p in 0..4 {
        assert!(first.owns(&topic, p), "alone, it owns partition {p}");
    }
    assert!(!first.owns("another.topic", 0));

    let mut second = join(bus, &group, &topic, StartFrom::Earliest).await;
    let mut taken: BTreeSet<i32> = BTreeSet::new();
    let mut theirs: BTreeSet<i32> = BTreeSet::new();
    // What the first member received after it was told of the rebalance.
    let mut first_after: BTreeSet<i32> = BTreeSet::new();
    let step = Duration::from_millis(100);
    within("the second member reading two partitions", async {
        while theirs.len() < 2 || first_after.is_empty() {
            publish(bus, &topic, Some(&format!("asset-{i}")), "real").await;
            i += 1;
            let told = !taken.is_empty();
            if let Ok(env) = tokio::time::timeout(step, first.next()).await {
                let env = env.expect("next");
                if told {
                    first_after.insert(env.partition);
                }
            }
            let revoked = first.take_revoked();
            if !revoked.is_empty() {
                // What the first member reads counts from its latest assignment on.
                first_after.clear();
            }
            for (t, p) in revoked {
                assert_eq!(t, topic, "only the subscribed topic");
                taken.insert(p);
            }
            if let Ok(env) = tokio::time::timeout(step, second.next()).await {
                theirs.insert(env.expect("next").partition);
            }
            if !second.take_revoked().is_empty() {
                // Another rebalance (a broker may run several while the group settles).
                theirs.clear();
            }
        }
    })
    .await;
    assert!(
        theirs.is_subset(&taken),
        "every partition the newcomer reads was reported taken: {theirs:?} / {taken:?}"
    );
    assert!(
        first_after.is_disjoint(&theirs),
        "the first member reads none of the newcomer's partitions after being told: \
         {first_after:?} / {theirs:?}"
    );
    for p in &theirs {
        assert!(!first.owns(&topic, *p), "partition {p} is the newcomer's");
    }
    assert_eq!(
        first.take_revoked(),
        vec![],
        "each revocation is reported once"
    );
    second.close().await.expect("close");
    first.close().await.expect("close");
}

/// Two groups are independent: each receives every record.
pub async fn every_group_receives_every_record<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.fanout");
    bus.ensure_topics(&[spec(&topic, 3)])
        .await
        .expect("ensure_topics");
    let n = 20;
    for i in 0..n {
        publish(bus, &topic, Some(&format!("asset-{i}")), &format!("{i}")).await;
    }
    for group in ["anomaly", "rul"] {
        let mut sub = join(bus, &format!("{ns}.{group}"), &topic, StartFrom::Earliest).await;
        let got = take(sub.as_mut(), n).await;
        for env in &got {
            sub.commit(&env.next_position()).await.expect("commit");
        }
        let payloads: BTreeSet<Vec<u8>> = got.into_iter().map(|e| e.payload).collect();
        assert_eq!(
            payloads.len(),
            n,
            "group {group} received every record once"
        );
        sub.close().await.expect("close");
    }
}

/// After a commit and a restart, the group resumes right after the committed position.
pub async fn a_restarted_group_resumes_after_its_commit<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.resume");
    bus.ensure_topics(&[spec(&topic, 1)])
        .await
        .expect("ensure_topics");
    publish_numbers(bus, &topic, 0..10).await;
    let group = format!("{ns}.features");

    let mut first = join(bus, &group, &topic, StartFrom::Earliest).await;
    let got = take(first.as_mut(), 6).await;
    assert_eq!(numbers(&got), (0..6).collect::<Vec<_>>());
    first.commit(&got[5].next_position()).await.expect("commit");
    first.close().await.expect("close");
    // Where it reads on from is known without joining it (a consumer's group lag).
    let at = within("group_positions", bus.group_positions(&group, &topic, &[0])).await;
    let at = at.expect("group_positions").expect("known to the bus");
    assert_eq!(at.get(&0), Some(&6));
    let never = format!("{ns}.never-joined");
    let none = within("group_positions", bus.group_positions(&never, &topic, &[0])).await;
    let none = none.expect("group_positions").expect("known to the bus");
    assert!(none.is_empty(), "no commit, no position");

    let mut second = join(bus, &group, &topic, StartFrom::Earliest).await;
    let got = take(second.as_mut(), 4).await;
    assert_eq!(numbers(&got), (6..10).collect::<Vec<_>>());
    second.close().await.expect("close");
}

/// Whatever a member received but did not commit goes to the next member after a restart:
/// everything when nothing was committed, the rest after a partial commit.
pub async fn uncommitted_records_are_redelivered<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.redeliver");
    bus.ensure_topics(&[spec(&topic, 1)])
        .await
        .expect("ensure_topics");
    publish_numbers(bus, &topic, 0..6).await;
    let group = format!("{ns}.rules");

    let mut first = join(bus, &group, &topic, StartFrom::Earliest).await;
    assert_eq!(
        numbers(&take(first.as_mut(), 6).await),
        (0..6).collect::<Vec<_>>()
    );
    drop(first); // a crash: no commit, no close

    let mut second = join(bus, &group, &topic, StartFrom::Earliest).await;
    let got = take(second.as_mut(), 6).await;
    assert_eq!(
        numbers(&got),
        (0..6).collect::<Vec<_>>(),
        "everything is redelivered"
    );
    second
        .commit(&got[1].next_position())
        .await
        .expect("commit");
    drop(second);

    let mut third = join(bus, &group, &topic, StartFrom::Earliest).await;
    let got = take(third.as_mut(), 4).await;
    assert_eq!(
        numbers(&got),
        (2..6).collect::<Vec<_>>(),
        "the uncommitted rest is redelivered"
    );
    third.close().await.expect("close");
}

/// A new group starting at `Latest` only sees records published after it joined.
pub async fn latest_skips_older_records<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.latest");
    bus.ensure_topics(&[spec(&topic, 2)])
        .await
        .expect("ensure_topics");
    for i in 0..5 {
        publish(bus, &topic, Some(&format!("asset-{i}")), "old").await;
    }
    let mut sub = join(bus, &format!("{ns}.live"), &topic, StartFrom::Latest).await;
    // A Kafka member gets its partitions some time after `subscribe` returns: keep publishing
    // new records until one arrives; the first record received must be a new one.
    let publisher = async {
        for i in 0..(PATIENCE.as_millis() / 100) {
            publish(bus, &topic, Some(&format!("asset-{}", i % 5)), "new").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let env = tokio::select! {
        env = sub.next() => env.expect("next"),
        () = publisher => panic!("no new record arrived within {PATIENCE:?}"),
    };
    assert_eq!(
        env.payload, b"new",
        "a Latest group must not see older records"
    );
    sub.close().await.expect("close");
}

/// A dead-lettered record keeps key, payload, headers and trace, and names reason and source.
pub async fn dead_letters_carry_reason_and_source<B: Bus>(bus: &B, ns: &str) {
    let topic = format!("{ns}.source");
    let group = format!("{ns}.anomaly");
    let dlq = topics::dead_letter_spec(&group);
    bus.ensure_topics(&[spec(&topic, 2), dlq.clone()])
        .await
        .expect("ensure_topics");
    let trace = TraceContext::new_root();
    let record = OutboundRecord::new(
        &topic,
        Some(b"asset-3".to_vec()),
        b"bad avro".to_vec(),
        trace,
    )
    .with_header(topics::SEVERITY_HEADER, "high");
    within("publish", bus.publish(record))
        .await
        .expect("publish");

    let mut sub = join(bus, &group, &topic, StartFrom::Earliest).await;
    let original = take(sub.as_mut(), 1).await.remove(0);
    let dead = original.to_dead_letter(&dlq.name, "schema mismatch");
    within("publish dead letter", bus.publish(dead))
        .await
        .expect("publish dead letter");
    sub.commit(&original.next_position()).await.expect("commit");
    sub.close().await.expect("close");

    let mut dlq_sub = join(
        bus,
        &format!("{ns}.dlq-reader"),
        &dlq.name,
        StartFrom::Earliest,
    )
    .await;
    let env = take(dlq_sub.as_mut(), 1).await.remove(0);
    assert_eq!(env.topic, dlq.name);
    assert_eq!(env.key, original.key);
    assert_eq!(env.payload, original.payload);
    assert_eq!(env.trace(), trace);
    assert_eq!(env.header(topics::SEVERITY_HEADER), Some(&b"high"[..]));
    assert_eq!(env.header(DLQ_REASON), Some(&b"schema mismatch"[..]));
    assert_eq!(env.header(DLQ_SOURCE_TOPIC), Some(topic.as_bytes()));
    assert_eq!(
        env.header(DLQ_SOURCE_PARTITION),
        Some(original.partition.to_string().as_bytes())
    );
    assert_eq!(
        env.header(DLQ_SOURCE_OFFSET),
        Some(original.offset.to_string().as_bytes())
    );
    dlq_sub.close().await.expect("close");
}

/// The topics of a prefix are listed by name with each partition's retained offsets: what
/// has been published, from where a reader from the earliest starts.
pub async fn topics_are_listed_with_their_retained_offsets<B: Bus>(bus: &B, ns: &str) {
    let (a, b) = (format!("{ns}.dlq.a"), format!("{ns}.dlq.b"));
    bus.ensure_topics(&[spec(&b, 1), spec(&a, 2), spec(&format!("{ns}.other"), 1)])
        .await
        .expect("ensure_topics");
    for i in 0..5 {
        publish(bus, &a, Some(&format!("k{i}")), "x").await;
    }
    let listed = within("topic_offsets", bus.topic_offsets(&format!("{ns}.dlq."))).await;
    let listed = listed.expect("topic_offsets");
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        [a.as_str(), b.as_str()],
        "sorted, the prefix's only"
    );
    assert_eq!(
        listed[0]
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(listed[0].retained(), 5);
    assert!(listed[0].partitions.iter().all(|p| p.earliest == 0));
    assert_eq!(listed[1].retained(), 0);
    // One topic asked about alone: the same offsets.
    let one = within("offsets_of", bus.offsets_of(&a)).await;
    assert_eq!(
        one.expect("offsets_of").as_ref(),
        Some(&listed[0].partitions)
    );
    // Every topic of the broker: other bodies create theirs meanwhile, whose partitions may
    // have no leader for a moment (the call fails then, as it should): tried again.
    let mut all = Vec::new();
    for attempt in 0.. {
        match within("topic_offsets of every topic", bus.topic_offsets("")).await {
            Ok(listed) => {
                all = listed;
                break;
            }
            Err(e) if e.is_retryable() && attempt < 20 => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("topic_offsets of every topic: {e}"),
        }
    }
    assert!(all.iter().any(|t| t.name == a) && all.iter().any(|t| t.name == format!("{ns}.other")));
    assert!(
        all.iter().all(|t| !t.name.starts_with("__")),
        "not the broker's own"
    );
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        retention: Duration::from_secs(7 * 24 * 3600),
    }
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

async fn publish<B: Bus>(bus: &B, topic: &str, key: Option<&str>, payload: &str) -> Delivery {
    let record = OutboundRecord::new(
        topic,
        key.map(|k| k.as_bytes().to_vec()),
        payload.as_bytes().to_vec(),
        TraceContext::new_root(),
    );
    within("publish", bus.publish(record))
        .await
        .expect("publish")
}

async fn publish_numbers<B: Bus>(bus: &B, topic: &str, numbers: std::ops::Range<u32>) {
    for i in numbers {
        publish(bus, topic, Some("asset-1"), &i.to_string()).await;
    }
}

/// `envs` (payloads `key:seq`) hold `keys` keys, each with its sequence 0..`per_key` in order.
fn assert_each_key_in_order(envs: &[Envelope], keys: usize, per_key: usize) {
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for env in envs {
        let text = String::from_utf8_lossy(&env.payload).into_owned();
        let (key, seq) = text.split_once(':').expect("payload key:seq");
        seen.entry(key.to_owned())
            .or_default()
            .push(seq.parse().expect("seq"));
    }
    assert_eq!(seen.len(), keys);
    for (key, seqs) in seen {
        assert_eq!(seqs, (0..per_key).collect::<Vec<_>>(), "order of {key}");
    }
}

fn numbers(envs: &[Envelope]) -> Vec<u32> {
    envs.iter()
        .map(|e| {
            String::from_utf8_lossy(&e.payload)
                .parse()
                .expect("a number")
        })
        .collect()
}

async fn join<B: Bus>(
    bus: &B,
    group: &str,
    topic: &str,
    start: StartFrom,
) -> Box<dyn Subscription> {
    let options = SubscribeOptions::new(group, [topic], start);
    within("subscribe", bus.subscribe(options))
        .await
        .expect("subscribe")
}

/// Receives exactly `n` records.
async fn take(sub: &mut dyn Subscription, n: usize) -> Vec<Envelope> {
    let mut got = Vec::with_capacity(n);
    within(&format!("{n} records"), async {
        while got.len() < n {
            got.push(sub.next().await.expect("next"));
        }
    })
    .await;
    got
}

/// Forwards a member's records until stopped, then leaves the group.
async fn drain(
    member: usize,
    mut sub: Box<dyn Subscription>,
    tx: mpsc::UnboundedSender<(usize, Envelope)>,
    stop: CancellationToken,
) -> Result<(), Error> {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            env = sub.next() => {
                if tx.send((member, env?)).is_err() {
                    break;
                }
            }
        }
    }
    sub.close().await
}
