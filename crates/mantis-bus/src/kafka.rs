//! The Kafka implementation of [`Bus`] over rdkafka. rdkafka types stay inside this module:
//! messages become owned [`Envelope`]s as soon as they are received, errors become [`Error`].
//!
//! - Producer: idempotent (`enable.idempotence=true`, `acks=all`), Java-compatible `murmur2`
//!   partitioner (the embedded bus hashes keys the same way); `publish` retries a full local
//!   queue and awaits the delivery report. An idempotent producer that hits a fatal error
//!   (librdkafka then fails every later send) is replaced by a new one, so a long-running
//!   service recovers instead of failing every publish until it is restarted; the records
//!   that failed with it are sent again by the new one (at least once: the broker may have
//!   written some of them already).
//! - Consumers: one `StreamConsumer` per subscription with `enable.auto.commit=false`;
//!   [`Subscription::commit`] commits the given position synchronously, so a position is the
//!   group's committed offset once `commit` returns (at-least-once, no Kafka transactions).
//! - Admin: [`Bus::ensure_topics`] creates missing topics with their partitions and
//!   `retention.ms`; it never relies on auto-creation or on DescribeConfigs.

use crate::{
    Bus, Delivery, Envelope, Error, OutboundRecord, PartitionOffsets, Position, Result, StartFrom,
    SubscribeOptions, Subscription, TopicOffsets, TopicSpec,
};
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tracing::{debug, error, info, warn};

/// Connection settings of a [`KafkaBus`]. Its `Debug` shows the extra properties' names only
/// (their values may be credentials).
#[derive(Clone)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Client id reported to the brokers (service name).
    pub client_id: String,
    /// Replication factor of topics created by `ensure_topics`; `-1` takes the broker default.
    pub replication_factor: i32,
    /// Bound of metadata and admin requests (`ping`, `ensure_topics`, topic checks).
    pub request_timeout: Duration,
    /// How long `publish` may take before failing (`message.timeout.ms`).
    pub publish_timeout: Duration,
    /// Extra librdkafka properties for every client, applied last (security, tuning...).
    pub extra: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("replication_factor", &self.replication_factor)
            .field("request_timeout", &self.request_timeout)
            .field("publish_timeout", &self.publish_timeout)
            .field(
                "extra",
                &self.extra.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KafkaConfig {
    /// Settings with the broker's default replication, a 10 s request timeout and a 30 s
    /// publish timeout.
    pub fn new(brokers: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: client_id.into(),
            replication_factor: -1,
            request_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(30),
            extra: Vec::new(),
        }
    }

    /// Adds a librdkafka property.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// Properties that the bus sets itself, and their aliases (a value given would override
    /// it for every client: `group.id` would merge every consumer group into one).
    pub const RESERVED: [&'static str; 17] = [
        "bootstrap.servers",
        "metadata.broker.list",
        "client.id",
        "group.id",
        "group.instance.id",
        "enable.idempotence",
        "acks",
        "request.required.acks",
        "transactional.id",
        "partitioner",
        "allow.auto.create.topics",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "enable.auto.commit",
        "enable.partition.eof",
        "auto.offset.reset",
        "session.timeout.ms",
    ];

    /// Checks the brokers and each extra property's name and value as librdkafka's
    /// configuration takes them (rules across properties, files and SASL mechanisms are
    /// checked when a client is created, at start), without creating a client. A property the
    /// bus sets itself is refused. Errors name the property, never its value.
    pub fn check(&self) -> Result<()> {
        if self.brokers.split(',').all(|b| b.trim().is_empty()) {
            return Err(Error::Invalid(
                "brokers: no Kafka broker given (host:port, comma-separated)".into(),
            ));
        }
        for (key, value) in &self.extra {
            if Self::RESERVED.contains(&key.as_str()) {
                return Err(Error::Invalid(format!(
                    "properties: `{key}` is set by MANTIS itself and cannot be overridden"
                )));
            }
            let mut one = ClientConfig::new();
            one.set(key, value);
            if let Err(e) = one.create_native_config() {
                // librdkafka's message quotes the value, which may be a password.
                let text = e.to_string();
                let text = if value.is_empty() {
                    text
                } else {
                    text.replace(value.as_str(), "…")
                };
                return Err(Error::Invalid(format!("properties: `{key}`: {text}")));
            }
        }
        self.client(&[])
            .create_native_config()
            .map(drop)
            .map_err(|e| Error::Invalid(format!("Kafka client configuration: {e}")))
    }

    fn client(&self, own: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set_log_level(RDKafkaLogLevel::Info);
        for (k, v) in own {
            config.set(*k, v);
        }
        for (k, v) in &self.extra {
            config.set(k, v);
        }
        config
    }
}

/// The Kafka bus: one shared idempotent producer and admin client, a consumer per subscription.
pub struct KafkaBus {
    config: KafkaConfig,
    /// The producer in use; replaced when it fails for good (see [`KafkaBus::after_error`]).
    producer: RwLock<Arc<FutureProducer<Ctx>>>,
    admin: AdminClient<Ctx>,
    /// A consumer per group whose positions are asked for ([`Bus::group_positions`]): given
    /// the group's id, never subscribed (it asks for the group's commits, it joins nothing).
    position_readers: std::sync::Mutex<std::collections::HashMap<String, Arc<BaseConsumer<Ctx>>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Creates the producer and admin clients (no network round trip: use [`Bus::ping`] to
    /// check the brokers). Subscriptions need a tokio runtime.
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let producer = new_producer(&config)?;
        let admin = config
            .client(&[])
            .create_with_context(Ctx::default())
            .map_err(|e| map_err(e, ""))?;
        info!(brokers = %config.brokers, client_id = %config.client_id, "created Kafka clients");
        Ok(Self {
            config,
            producer: RwLock::new(Arc::new(producer)),
            admin,
            position_readers: std::sync::Mutex::default(),
        })
    }

    /// The consumer that asks for `group`'s commits, made at its first use.
    fn position_reader(&self, group: &str) -> Result<Arc<BaseConsumer<Ctx>>> {
        let mut readers = self
            .position_readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(reader) = readers.get(group) {
            return Ok(Arc::clone(reader));
        }
        // Its client's own logs from warnings up: its events are served only when it is asked.
        let reader: BaseConsumer<Ctx> = self
            .config
            .client(&[
                ("group.id", group.to_owned()),
                ("enable.auto.commit", "false".to_owned()),
            ])
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(Ctx::default())
            .map_err(|e| map_err(e, ""))?;
        let reader = Arc::new(reader);
        readers.insert(group.to_owned(), Arc::clone(&reader));
        Ok(reader)
    }

    /// The producer in use.
    fn producer(&self) -> Arc<FutureProducer<Ctx>> {
        Arc::clone(&self.producer.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Maps an error of `failed` (a producer taken by [`KafkaBus::producer`]) and, when that
    /// producer hit a fatal error, puts a new one in its place (once, however many sends
    /// saw the failure). Returns the error and whether a new producer now takes the sends:
    /// the fatal error then becomes [`Error::Unavailable`], as the send may be tried again.
    ///
    /// An idempotent producer's fatal errors (a broker that lost acknowledged records, a
    /// sequence gap it cannot close, a fenced producer id) leave it refusing every later
    /// send; only a new producer, with a new producer id, writes again.
    ///
    /// Dropping a producer purges its queue and joins its polling thread: the failed one is
    /// dropped off the async workers.
    fn after_error(
        &self,
        failed: Arc<FutureProducer<Ctx>>,
        e: KafkaError,
        topic: &str,
    ) -> (Error, bool) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return (map_err(e, topic), false);
        };
        // Missing rights (an idempotent producer's id refused by the cluster's ACLs): said as
        // such and not sent again at once, but the producer is replaced all the same (a failed
        // one never sends again), so that the sends after the rights are granted go through.
        let denied = match map_code(code, topic, format!("{code}: {reason}")) {
            denied @ Error::Denied(_) => Some(denied),
            _ => None,
        };
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if Arc::ptr_eq(&current, &failed) {
            match new_producer(&self.config) {
                Ok(fresh) => {
                    error!(%code, reason, "the Kafka producer failed for good; a new one takes over");
                    let old = std::mem::replace(&mut *current, Arc::new(fresh));
                    drop(current);
                    let release = move || drop((old, failed));
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => drop(runtime.spawn_blocking(release)),
                        Err(_) => release(),
                    }
                }
                Err(create) => {
                    error!(%code, reason, error = %create, "the Kafka producer failed for good and no new one could be created");
                    return (map_err(e, topic), false);
                }
            }
        }
        match denied {
            Some(denied) => (denied, false),
            None => (
                Error::Unavailable(format!(
                    "the Kafka producer failed for good ({code}: {reason}); a new one takes over"
                )),
                true,
            ),
        }
    }

    /// Fails with [`Error::UnknownTopic`] unless every topic exists on the brokers.
    async fn check_topics(&self, topics: &[String]) -> Result<()> {
        let producer = self.producer();
        let (topics, timeout) = (topics.to_vec(), self.config.request_timeout);
        blocking(move || {
            for topic in &topics {
                let metadata = producer
                    .client()
                    .fetch_metadata(Some(topic), timeout)
                    .map_err(|e| map_err(e, topic))?;
                let found = metadata.topics().iter().find(|t| t.name() == topic);
                // Denied by the ACLs, not yet led (a topic just created, a broker rolling): said
                // as such, not as a missing topic.
                if let Some(code) = found.and_then(|t| t.error()).map(RDKafkaErrorCode::from) {
                    match map_code(code, topic, format!("topic `{topic}`: {code}")) {
                        e @ Error::Denied(_) => return Err(e),
                        e if e.is_retryable() => return Err(e),
                        _ => {}
                    }
                }
                let known =
                    found.is_some_and(|t| t.error().is_none() && !t.partitions().is_empty());
                if !known {
                    return Err(Error::UnknownTopic(topic.clone()));
                }
            }
            Ok(())
        })
        .await
    }

    /// One attempt of [`Bus::publish_all`]: how many were accepted, the error that stopped
    /// the rest, and whether the producer was replaced because of it.
    async fn publish_batch(&self, records: &[OutboundRecord]) -> (usize, Option<Error>, bool) {
        let producer = self.producer();
        let mut pending = Vec::with_capacity(records.len());
        let mut stopped = None;
        'records: for record in records {
            let started = std::time::Instant::now();
            loop {
                match producer.send_result(future_record(record)) {
                    Ok(delivery) => {
                        pending.push((delivery, record.topic.as_str()));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                        if started.elapsed() < self.config.publish_timeout =>
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        stopped = Some((e, record.topic.as_str()));
                        break 'records;
                    }
                }
            }
        }
        let mut accepted = 0;
        for (delivery, topic) in pending {
            match delivery.await {
                Ok(Ok(_)) => accepted += 1,
                Ok(Err((e, _))) => {
                    let (e, replaced) = self.after_error(producer, e, topic);
                    return (accepted, Some(e), replaced);
                }
                Err(_) => return (accepted, Some(Error::Closed), false),
            }
        }
        match stopped {
            Some((e, topic)) => {
                let (e, replaced) = self.after_error(producer, e, topic);
                (accepted, Some(e), replaced)
            }
            None => (accepted, None, false),
        }
    }
}

/// A new idempotent producer for `config`.
fn new_producer(config: &KafkaConfig) -> Result<FutureProducer<Ctx>> {
    config
        .client(&[
            ("enable.idempotence", "true".into()),
            ("acks", "all".into()),
            ("partitioner", "murmur2_random".into()),
            // Topics are created by `ensure_topics` with their partitions and retention,
            // never implicitly with broker defaults.
            ("allow.auto.create.topics", "false".into()),
            (
                "message.timeout.ms",
                config.publish_timeout.as_millis().to_string(),
            ),
        ])
        .create_with_context(Ctx::default())
        .map_err(|e| map_err(e, ""))
}

/// The offsets of each partition of `topic` (by partition), as its leaders have them; `None`
/// when the topic was deleted since its metadata came. A partition without a leader now (an
/// election) fails the call: leaving it out would read as empty.
fn watermarks<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &rdkafka::metadata::MetadataTopic,
    timeout: Duration,
) -> Result<Option<Vec<PartitionOffsets>>> {
    let name = topic.name();
    let mut partitions = Vec::with_capacity(topic.partitions().len());
    for p in topic.partitions() {
        match client.fetch_watermarks(name, p.id(), timeout) {
            Ok((earliest, end)) => partitions.push(PartitionOffsets {
                partition: p.id(),
                earliest,
                end,
            }),
            Err(e) => match map_err(e, name) {
                Error::UnknownTopic(_) => return Ok(None),
                e => return Err(e),
            },
        }
    }
    partitions.sort_by_key(|p| p.partition);
    Ok(Some(partitions))
}

#[async_trait]
impl Bus for KafkaBus {
    async fn ensure_topics(&self, topics: &[TopicSpec]) -> Result<()> {
        let retention: Vec<String> = topics
            .iter()
            .map(|t| t.retention.as_millis().to_string())
            .collect();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .zip(&retention)
            .map(|(t, ms)| {
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(self.config.replication_factor),
                )
                .set("retention.ms", ms)
            })
            .collect();
        let timeout = Some(self.config.request_timeout);
        let options = AdminOptions::new()
            .request_timeout(timeout)
            .operation_timeout(timeout);
        let results = self
            .admin
            .create_topics(&new, &options)
            .await
            .map_err(|e| map_err(e, ""))?;
        let mut denied = Vec::new();
        for result in results {
            match result {
                Ok(name) => info!(topic = %name, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                // Kafka answers a principal without CREATE so even for a topic that exists
                // (made by the operators, as least privilege wants): looked up below.
                Err((name, RDKafkaErrorCode::TopicAuthorizationFailed)) => denied.push(name),
                Err((name, code)) => {
                    return Err(map_code(
                        code,
                        &name,
                        format!("creating topic `{name}`: {code}"),
                    ));
                }
            }
        }
        if denied.is_empty() {
            return Ok(());
        }
        // Existing topics are enough; one missing that this service may not create is denied
        // (a topic not led yet is unavailable: tried again).
        match self.check_topics(&denied).await {
            Err(Error::UnknownTopic(name)) => Err(Error::Denied(format!(
                "topic `{name}` does not exist and this service may not create it (no CREATE \
                 right): create it, or grant the right"
            ))),
            other => other,
        }
    }

    #[tracing::instrument(skip_all, fields(topic = %record.topic))]
    async fn publish(&self, record: OutboundRecord) -> Result<Delivery> {
        // `send` retries while the local queue is full, then awaits the delivery report. A
        // producer that failed for good is replaced, and the record sent once more by the new
        // one.
        let mut replaced = false;
        loop {
            let producer = self.producer();
            match producer
                .send(
                    future_record(&record),
                    Timeout::After(self.config.publish_timeout),
                )
                .await
            {
                Ok(d) => {
                    return Ok(Delivery {
                        partition: d.partition,
                        offset: d.offset,
                    });
                }
                Err((e, _)) => match self.after_error(producer, e, &record.topic) {
                    (_, true) if !replaced => replaced = true,
                    (e, _) => return Err(e),
                },
            }
        }
    }

    /// Enqueues every record in order (the idempotent producer keeps that order per
    /// partition), then awaits their delivery reports: one linger and round trip for the
    /// batch instead of one per record. A full local queue is waited out (as `publish` does)
    /// for at most the publish timeout. A producer that failed for good is replaced; the
    /// batch is sent once more by the new one when none of it was accepted.
    async fn publish_all(&self, records: &[OutboundRecord]) -> (usize, Option<Error>) {
        match self.publish_batch(records).await {
            (0, Some(_), true) => {
                let (accepted, error, _) = self.publish_batch(records).await;
                (accepted, error)
            }
            (accepted, error, _) => (accepted, error),
        }
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>> {
        if options.group.is_empty() || options.topics.is_empty() {
            return Err(Error::Invalid(
                "a subscription needs a group and topics".into(),
            ));
        }
        self.check_topics(&options.topics).await?;
        let session = options.session_timeout.as_millis().max(1_000);
        let reset = match options.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        };
        let consumer: StreamConsumer<Ctx> = self
            .config
            .client(&[
                ("group.id", options.group.clone()),
                ("enable.auto.commit", "false".into()),
                ("enable.partition.eof", "false".into()),
                ("auto.offset.reset", reset.into()),
                ("session.timeout.ms", session.to_string()),
                ("heartbeat.interval.ms", (session / 3).to_string()),
                // At least the session timeout (librdkafka requires it), 5 min by default.
                ("max.poll.interval.ms", session.max(300_000).to_string()),
            ])
            .create_with_context(Ctx::default())
            .map_err(|e| map_err(e, ""))?;
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| map_err(e, ""))?;
        debug!(group = %options.group, ?topics, "subscribed");
        Ok(Box::new(KafkaSubscription {
            consumer: Some(Arc::new(consumer)),
        }))
    }

    async fn topic_offsets(&self, prefix: &str) -> Result<Vec<TopicOffsets>> {
        let (producer, timeout) = (self.producer(), self.config.request_timeout);
        let prefix = prefix.to_owned();
        blocking(move || {
            let client = producer.client();
            let metadata = client
                .fetch_metadata(None, timeout)
                .map_err(|e| map_err(e, ""))?;
            let mut found = Vec::new();
            for topic in metadata.topics() {
                let name = topic.name();
                // The broker's own (`__consumer_offsets`), unless asked for by name.
                if !name.starts_with(&prefix) || (prefix.is_empty() && name.starts_with("__")) {
                    continue;
                }
                // One being created or deleted, or denied: said, not a failure of the others.
                if let Some(e) = topic.error() {
                    warn!(topic = name, error = ?e, "topic left out of the listing");
                    continue;
                }
                // A topic deleted meanwhile is left out.
                if let Some(partitions) = watermarks(client, topic, timeout)? {
                    found.push(TopicOffsets {
                        name: name.to_owned(),
                        partitions,
                    });
                }
            }
            found.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(found)
        })
        .await
    }

    async fn offsets_of(&self, topic: &str) -> Result<Option<Vec<PartitionOffsets>>> {
        let (producer, timeout) = (self.producer(), self.config.request_timeout);
        let name = topic.to_owned();
        blocking(move || {
            let client = producer.client();
            // The metadata of this topic alone, not of the cluster's every topic.
            let metadata = client
                .fetch_metadata(Some(&name), timeout)
                .map_err(|e| map_err(e, &name))?;
            let Some(found) = metadata.topics().iter().find(|t| t.name() == name) else {
                return Ok(None);
            };
            if let Some(e) = found.error() {
                return match map_err(KafkaError::MetadataFetch(e.into()), &name) {
                    Error::UnknownTopic(_) => Ok(None),
                    e => Err(e),
                };
            }
            watermarks(client, found, timeout)
        })
        .await
    }

    async fn group_positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Option<std::collections::BTreeMap<i32, i64>>> {
        let reader = self.position_reader(group)?;
        let timeout = self.config.request_timeout;
        let mut asked = TopicPartitionList::new();
        for &p in partitions {
            asked.add_partition(topic, p);
        }
        let topic = topic.to_owned();
        blocking(move || {
            let committed = reader
                .committed_offsets(asked, timeout)
                .map_err(|e| map_err(e, &topic));
            // Its client's events (logs, errors) are served here, for a moment (a zero timeout
            // serves one): it is never polled otherwise.
            let _ = reader.poll(Duration::from_millis(50));
            let mut found = std::collections::BTreeMap::new();
            for e in committed?.elements() {
                // A partition's own error (its topic's rights, say) is not "no commit".
                e.error().map_err(|err| map_err(err, &topic))?;
                if let Offset::Offset(at) = e.offset() {
                    found.insert(e.partition(), at);
                }
            }
            Ok(Some(found))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        let (producer, timeout) = (self.producer(), self.config.request_timeout);
        blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(drop)
                .map_err(|e| map_err(e, ""))
        })
        .await
    }
}

/// A consumer-group member backed by its own `StreamConsumer`.
struct KafkaSubscription {
    /// `None` once closed. Shared with blocking commit and close calls.
    consumer: Option<Arc<StreamConsumer<Ctx>>>,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Envelope> {
        let consumer = self.consumer.as_ref().ok_or(Error::Closed)?;
        loop {
            // `recv` is cancel-safe: a message is taken from the queue only when returned.
            match consumer.recv().await {
                Ok(msg) => return Ok(envelope(&msg)),
                Err(e) => {
                    let err = map_err(e, "");
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    // librdkafka reconnects by itself; transient errors are only reported.
                    warn!(error = %err, "transient Kafka consumer error");
                }
            }
        }
    }

    async fn commit(&mut self, position: &Position) -> Result<()> {
        let consumer = self.consumer.clone().ok_or(Error::Closed)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(
            &position.topic,
            position.partition,
            Offset::Offset(position.next_offset),
        )
        .map_err(|e| map_err(e, &position.topic))?;
        let topic = position.topic.clone();
        blocking(move || {
            consumer
                .commit(&list, CommitMode::Sync)
                .map_err(|e| map_err(e, &topic))
        })
        .await
    }

    fn take_revoked(&mut self) -> Vec<(String, i32)> {
        // Filled while `recv` serves a rebalance (eager assignment: every partition is revoked,
        // then the new assignment given).
        match &self.consumer {
            Some(consumer) => std::mem::take(
                &mut *consumer
                    .context()
                    .revoked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            None => Vec::new(),
        }
    }

    fn owns(&self, topic: &str, partition: i32) -> bool {
        // The assignment librdkafka holds (set while `recv` serves a rebalance).
        self.consumer
            .as_ref()
            .and_then(|c| c.assignment().ok())
            .is_some_and(|list| list.find_partition(topic, partition).is_some())
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        if let Some(consumer) = self.consumer.take() {
            // Closing leaves the group at once (its partitions go to the others); it blocks.
            blocking(move || {
                consumer.unsubscribe();
                drop(consumer);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        // Dropping a consumer leaves the group and blocks until done: keep that off the runtime.
        if let Some(consumer) = self.consumer.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(consumer))),
                Err(_) => drop(consumer),
            }
        }
    }
}

/// Copies a received message into an owned envelope.
fn envelope(msg: &impl Message) -> Envelope {
    let headers = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Envelope {
        topic: msg.topic().to_owned(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key().map(<[u8]>::to_vec),
        headers,
        timestamp_ms: msg.timestamp().to_millis().unwrap_or_default(),
        payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// The rdkafka form of `record` (borrowing its bytes).
fn future_record(record: &OutboundRecord) -> FutureRecord<'_, [u8], [u8]> {
    let headers = record.wire_headers().iter().fold(
        OwnedHeaders::new_with_capacity(record.headers.len() + 1),
        |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        },
    );
    let out = FutureRecord::<[u8], [u8]>::to(&record.topic)
        .payload(&record.payload)
        .headers(headers);
    match &record.key {
        Some(key) => out.key(key),
        None => out,
    }
}

fn map_err(e: KafkaError, topic: &str) -> Error {
    match e {
        KafkaError::AdminOp(code)
        | KafkaError::ConsumerCommit(code)
        | KafkaError::Global(code)
        | KafkaError::MessageConsumption(code)
        | KafkaError::MessageConsumptionFatal(code)
        | KafkaError::MessageProduction(code)
        | KafkaError::MetadataFetch(code)
        | KafkaError::OffsetFetch(code) => map_code(code, topic, e.to_string()),
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) | KafkaError::Nul(_) => {
            Error::Invalid(e.to_string())
        }
        KafkaError::Canceled => Error::Closed,
        other => Error::Other(other.to_string()),
    }
}

/// Maps a librdkafka code; `detail` is the human description of what failed.
fn map_code(code: RDKafkaErrorCode, topic: &str, detail: String) -> Error {
    use RDKafkaErrorCode as C;
    match code {
        C::UnknownTopic | C::UnknownTopicOrPartition if !topic.is_empty() => {
            Error::UnknownTopic(topic.to_owned())
        }
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::MessageTimedOut
        | C::OperationTimedOut
        | C::RequestTimedOut
        | C::TimedOutQueue
        | C::QueueFull
        | C::NetworkException
        | C::BrokerNotAvailable
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::CoordinatorLoadInProgress
        | C::CoordinatorNotAvailable
        | C::NotCoordinator
        | C::WaitingForCoordinator
        | C::RebalanceInProgress
        // A commit after the partitions were revoked (the member left or was fenced): the
        // next owner re-reads from the last committed offset.
        | C::IllegalGeneration
        | C::UnknownMemberId
        | C::FencedInstanceId
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend => Error::Unavailable(detail),
        C::InvalidTopic
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::InvalidConfig
        | C::InvalidRequest
        | C::PolicyViolation
        | C::MessageSizeTooLarge
        // The broker refuses the record itself: sending it again cannot help.
        | C::InvalidMessage
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::InvalidTimestamp
        | C::InvalidRecord
        | C::InvalidArgument
        | C::UnknownPartition => Error::Invalid(detail),
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::Authentication => Error::Denied(detail),
        _ => Error::Other(detail),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Other(format!("Kafka client task failed: {e}")))?
}

/// Routes librdkafka's logs and errors to `tracing` and reports rebalances.
#[derive(Default)]
struct Ctx {
    /// A consumer's partitions revoked by rebalances, until its subscription takes them.
    revoked: std::sync::Mutex<Vec<(String, i32)>>,
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                error!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(target: "librdkafka", %error, reason, "Kafka client error");
    }
}

/// The (topic, partition) pairs of `list`.
fn topic_partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                info!(partitions = ?topic_partitions(list), "partitions assigned");
            }
            Rebalance::Revoke(list) => {
                let partitions = topic_partitions(list);
                info!(?partitions, "partitions revoked");
                self.revoked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(partitions);
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What decides the edge buffer's course (and the consumers'): a record the broker refuses
    /// as such is `Invalid` (dead-lettered), a broker away is `Unavailable` (waited out).
    #[test]
    fn record_level_refusals_are_invalid_and_outages_unavailable() {
        use RDKafkaErrorCode as C;
        for code in [
            C::MessageSizeTooLarge,
            C::InvalidMessage,
            C::InvalidMessageSize,
            C::MessageBatchTooLarge,
            C::InvalidTimestamp,
            C::InvalidRecord,
        ] {
            let e = map_code(code, "sensor.raw", format!("{code:?}"));
            assert!(matches!(e, Error::Invalid(_)), "{code:?}: {e:?}");
        }
        for code in [
            C::BrokerTransportFailure,
            C::AllBrokersDown,
            C::MessageTimedOut,
        ] {
            let e = map_code(code, "sensor.raw", format!("{code:?}"));
            assert!(e.is_retryable(), "{code:?}: {e:?}");
        }
        assert!(matches!(
            map_code(C::UnknownTopicOrPartition, "sensor.raw", String::new()),
            Error::UnknownTopic(t) if t == "sensor.raw"
        ));
        // Missing rights are named as such (not an unexplained error), and not retried as if
        // the broker were away.
        for code in [
            C::TopicAuthorizationFailed,
            C::GroupAuthorizationFailed,
            C::ClusterAuthorizationFailed,
            C::SaslAuthenticationFailed,
            C::Authentication,
        ] {
            let e = map_code(code, "sensor.raw", format!("{code:?}"));
            assert!(matches!(e, Error::Denied(_)), "{code:?}: {e:?}");
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("credentials and ACLs"), "{e}");
        }
    }

    /// The configuration check names a wrong property without its value (maybe a password),
    /// and refuses what the bus sets itself.
    #[test]
    fn properties_are_checked_without_showing_their_values() {
        let ok = KafkaConfig::new("kafka:9092", "t")
            .with("security.protocol", "SASL_SSL")
            .with("sasl.mechanisms", "SCRAM-SHA-512")
            .with("sasl.password", "hunter2-hunter2");
        assert!(ok.check().is_ok(), "{:?}", ok.check());
        let typo = KafkaConfig::new("kafka:9092", "t").with("sasl.pasword", "hunter2-hunter2");
        let e = typo.check().expect_err("no such property").to_string();
        assert!(e.contains("sasl.pasword"), "{e}");
        assert!(!e.contains("hunter2"), "the value is not shown: {e}");
        let merged = KafkaConfig::new("kafka:9092", "t").with("group.id", "everyone");
        let e = merged.check().expect_err("reserved").to_string();
        assert!(e.contains("`group.id` is set by MANTIS itself"), "{e}");
        assert!(KafkaConfig::new(" , ", "t").check().is_err());
    }

    /// librdkafka's mock cluster (a test double: tansu has no ACLs) with `topic`, whose first
    /// `api` request is answered `error`, and a bus over it.
    fn refusing_bus(
        topic: &str,
        api: rdkafka::types::RDKafkaApiKey,
        error: rdkafka::types::RDKafkaRespErr,
    ) -> (
        rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        KafkaBus,
    ) {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
        cluster.create_topic(topic, 1, 1).expect("the topic");
        cluster.request_errors(api, &[error]);
        let bus = KafkaBus::new(KafkaConfig::new(
            cluster.bootstrap_servers(),
            format!("mantis-bus-{topic}-test"),
        ))
        .expect("Kafka client configuration");
        (cluster, bus)
    }

    /// A broker whose ACLs deny the topic: the publish fails as `Denied`, naming the cause
    /// (the mock cluster answers the produce request with TOPIC_AUTHORIZATION_FAILED).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_topic_the_acls_deny_is_reported_as_denied() {
        use crate::TraceContext;
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let topic = "denied-topic";
        let (_cluster, bus) = refusing_bus(
            topic,
            RDKafkaApiKey::Produce,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        );
        let record = OutboundRecord::new(topic, None, b"x".to_vec(), TraceContext::new_root());
        let e = bus
            .publish(record)
            .await
            .expect_err("the broker denies the topic");
        assert!(matches!(e, Error::Denied(_)), "{e:?}");
    }

    /// A producer that failed for good is replaced, and no record is lost to it: a record
    /// whose send met the failure is sent by the new producer, alone or in a batch.
    ///
    /// Against librdkafka's own mock cluster (a test double, said here as the rules ask): the
    /// failure is a produce request refused with OUT_OF_ORDER_SEQUENCE_NUMBER at the head of
    /// the line, which librdkafka treats as fatal (the broker lost records it had
    /// acknowledged); no real broker can be made to do that on demand.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_producer_failed_for_good_is_replaced() {
        use crate::{StartFrom, SubscribeOptions, TraceContext};
        use rdkafka::mocking::MockCluster;
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let cluster = MockCluster::new(1).expect("a mock cluster");
        let topic = "fatal-producer";
        cluster.create_topic(topic, 1, 1).expect("the topic");
        let refuse_next_produce = || {
            cluster.request_errors(
                RDKafkaApiKey::Produce,
                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
            );
        };
        let bus = KafkaBus::new(KafkaConfig::new(
            cluster.bootstrap_servers(),
            "mantis-bus-fatal-test",
        ))
        .expect("Kafka client configuration");
        let record = |n: u8| OutboundRecord::new(topic, None, vec![n], TraceContext::new_root());
        bus.publish(record(0))
            .await
            .expect("the first producer sends");

        let first = bus.producer();
        refuse_next_produce();
        bus.publish(record(1))
            .await
            .expect("the record is sent by a new producer");
        assert!(
            first.client().fatal_error().is_some(),
            "the first producer failed for good"
        );
        let second = bus.producer();
        assert!(!Arc::ptr_eq(&first, &second), "the producer was replaced");

        refuse_next_produce();
        let (accepted, error) = bus.publish_all(&[record(2), record(3)]).await;
        assert_eq!((accepted, error.map(|e| e.to_string())), (2, None));
        assert!(
            !Arc::ptr_eq(&second, &bus.producer()),
            "replaced again by the batch"
        );
        bus.publish(record(4)).await.expect("later sends go on");

        let mut sub = bus
            .subscribe(SubscribeOptions::new(
                "fatal-producer-reader",
                [topic],
                StartFrom::Earliest,
            ))
            .await
            .expect("subscribe");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while got.len() < 5 {
                got.push(sub.next().await.expect("next").payload);
            }
        })
        .await
        .expect("five records within a minute");
        assert_eq!(got, [[0], [1], [2], [3], [4]], "each once, in order");
        sub.close().await.expect("close");
    }

    /// An idempotent producer whose producer id the cluster's ACLs refuse: the publish fails as
    /// `Denied` (not "unavailable"), and once the rights are granted the next publish goes
    /// through (the failed producer, which never sends again, was replaced). The mock cluster
    /// refuses the first InitProducerId with CLUSTER_AUTHORIZATION_FAILED.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_producer_the_cluster_denies_is_reported_and_recovers_once_granted() {
        use crate::TraceContext;
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let topic = "denied-producer";
        let (_cluster, bus) = refusing_bus(
            topic,
            RDKafkaApiKey::InitProducerId,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
        );
        let record = |i: u8| OutboundRecord::new(topic, None, vec![i], TraceContext::new_root());
        let e = tokio::time::timeout(Duration::from_secs(60), bus.publish(record(0)))
            .await
            .expect("answered within a minute")
            .expect_err("the cluster denies the producer id");
        assert!(matches!(e, Error::Denied(_)), "{e:?}");
        tokio::time::timeout(Duration::from_secs(60), bus.publish(record(1)))
            .await
            .expect("answered within a minute")
            .expect("granted now: a new producer sends");
    }
}
