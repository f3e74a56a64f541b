//! The MQTT source (rumqttc, MQTT 3.1.1 and 5).
//!
//! One session is one connection: connect with a fixed client id and (by default) a persistent
//! session, subscribe to the configured filters on every connection (the broker keeps queued
//! messages; a broker that lost the session gets the subscriptions back), and forward each
//! PUBLISH to a processing task. That task turns messages into readings (`payload`), hands them
//! to the sink in batches, and only then acknowledges them (manual PUBACK): a message the sink
//! did not take is never acknowledged, so the broker delivers it again on the next connection.
//!
//! A reading whose message carries no time is timed by the message's arrival on the connection,
//! kept strictly increasing per sensor (a burst or a backlog arriving within one millisecond
//! stays that many readings). A retained message without a time of its own is not taken: the
//! broker sends it on every subscription whatever its age (counted in
//! `mantis_connector_stale_retained_total`), and it does not count as traffic for the silence
//! watchdog.
//!
//! Layout: `topic` (filters and the topic hierarchy), `payload` (JSON → readings), `tls`
//! (rustls client configuration), this file (the session).

pub(crate) mod payload;
pub(crate) mod tls;
pub(crate) mod topic;

use crate::config::{MqttConfig, MqttVersion};
use crate::runtime::{SessionCtx, SessionError, Source};
use async_trait::async_trait;
use mantis_domain::{SensorRef, SourceProtocol};
use payload::TopicInfo;
use rumqttc::v5::mqttbytes::v5 as p5;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use topic::TopicPattern;

/// Requests (acks, subscriptions) waiting for the event loop. Larger than any broker's
/// in-flight window, so acknowledging never waits on a full channel while the event loop waits
/// on the processing task.
const REQUEST_CAPACITY: usize = 10_000;
/// Messages received but not yet processed.
const FORWARD_CAPACITY: usize = 1_000;
/// How long a stopping session keeps the connection to send its last acknowledgements.
const FLUSH_BUDGET: Duration = Duration::from_secs(3);

pub(crate) struct MqttSource {
    config: MqttConfig,
    pattern: TopicPattern,
    /// Kept across sessions: times handed out ahead of the clock are not handed out again
    /// after a reconnection.
    stamps: std::sync::Mutex<ArrivalStamps>,
}

impl MqttSource {
    /// A source for a validated configuration.
    pub(crate) fn new(config: MqttConfig) -> Result<Self, crate::ConfigError> {
        let pattern =
            TopicPattern::parse(&config.topic_pattern).map_err(|e| crate::ConfigError {
                source_name: config.name.clone(),
                problems: vec![("/topic_pattern".into(), e)],
            })?;
        Ok(Self {
            config,
            pattern,
            stamps: std::sync::Mutex::default(),
        })
    }

    fn topic_info(&self, topic: &str) -> TopicInfo {
        let levels = self.pattern.capture(topic);
        TopicInfo {
            mapped: self.config.sensors.get(topic).map(|s| SensorRef::parse(s)),
            templated: levels
                .as_ref()
                .and_then(|l| topic::render(&self.config.sensor_code, l))
                .map(|s| SensorRef::parse(&s)),
            value_member: levels
                .as_ref()
                .and_then(|l| l.get("type").map(|t| (*t).to_owned())),
        }
    }

    fn transport(&self) -> Result<rumqttc::Transport, SessionError> {
        match &self.config.tls {
            None => Ok(rumqttc::Transport::tcp()),
            Some(t) => {
                // Read the files on every connection, so renewed certificates are picked up.
                let config = tls::client_config(t)
                    .map_err(|e| SessionError::Connect(format!("TLS configuration: {e}")))?;
                Ok(rumqttc::Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(config),
                ))
            }
        }
    }

    fn connect(&self) -> Result<(Client, Events), SessionError> {
        let c = &self.config;
        let keep_alive = Duration::from_secs(c.keep_alive_secs.max(1));
        let transport = self.transport()?;
        match c.version {
            MqttVersion::V311 => {
                let mut o = rumqttc::MqttOptions::new(c.client_id(), c.host.clone(), c.port());
                o.set_keep_alive(keep_alive)
                    .set_clean_session(c.clean_session)
                    .set_manual_acks(true)
                    .set_max_packet_size(c.max_packet_bytes as usize, c.max_packet_bytes as usize)
                    .set_request_channel_capacity(REQUEST_CAPACITY)
                    .set_transport(transport);
                if let Some(user) = &c.username {
                    let password = c.password.as_ref().map(|p| p.expose()).unwrap_or("");
                    o.set_credentials(user.clone(), password);
                }
                let (client, events) = rumqttc::AsyncClient::new(o, REQUEST_CAPACITY);
                Ok((Client::V4(client), Events::V4(Box::new(events))))
            }
            MqttVersion::V5 => {
                let mut o = rumqttc::v5::MqttOptions::new(c.client_id(), c.host.clone(), c.port());
                o.set_keep_alive(keep_alive)
                    .set_clean_start(c.clean_session)
                    .set_manual_acks(true)
                    .set_max_packet_size(Some(c.max_packet_bytes))
                    .set_request_channel_capacity(REQUEST_CAPACITY)
                    .set_transport(transport);
                if !c.clean_session {
                    // MQTT 5 ends a session at disconnection unless told to keep it.
                    o.set_session_expiry_interval(Some(c.session_expiry_secs));
                }
                if let Some(user) = &c.username {
                    let password = c.password.as_ref().map(|p| p.expose()).unwrap_or("");
                    o.set_credentials(user.clone(), password);
                }
                let (client, events) = rumqttc::v5::AsyncClient::new(o, REQUEST_CAPACITY);
                Ok((Client::V5(client), Events::V5(Box::new(events))))
            }
        }
    }
}

#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

enum Events {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

enum Msg {
    V4(rumqttc::Publish),
    V5(p5::Publish),
}

enum Polled {
    ConnAck { session_present: bool },
    SubAck { refused: Vec<usize> },
    Publish(Msg),
    Disconnect(String),
    Other,
}

impl Msg {
    fn topic(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::V4(p) => std::borrow::Cow::Borrowed(p.topic.as_str()),
            Self::V5(p) => String::from_utf8_lossy(&p.topic),
        }
    }

    fn payload(&self) -> &[u8] {
        match self {
            Self::V4(p) => &p.payload,
            Self::V5(p) => &p.payload,
        }
    }

    /// Whether the broker sent it from its retained store (a new subscription's last known
    /// value, possibly old), rather than forwarding it as it was published.
    fn retained(&self) -> bool {
        match self {
            Self::V4(p) => p.retain,
            Self::V5(p) => p.retain,
        }
    }
}

/// The times given to readings whose message carries none: the message's arrival, made
/// strictly increasing per sensor, so readings that arrive within one millisecond (a burst, a
/// backlog replayed after a reconnection, a batch of bare values) stay distinct readings rather
/// than one time stamp the store would keep once.
#[derive(Default)]
struct ArrivalStamps {
    last: std::collections::HashMap<mantis_domain::SensorRef, mantis_domain::Timestamp>,
}

impl ArrivalStamps {
    /// Sensors remembered at most (then forgotten all at once; arrival times move on anyway).
    const MAX_SENSORS: usize = 100_000;

    fn next(
        &mut self,
        sensor: &mantis_domain::SensorRef,
        arrived: mantis_domain::Timestamp,
    ) -> mantis_domain::Timestamp {
        if self.last.len() >= Self::MAX_SENSORS && !self.last.contains_key(sensor) {
            self.last.clear();
        }
        // At the precision readings travel and are stored with (milliseconds): two arrivals
        // within one millisecond would otherwise be one reading once stored.
        let arrived =
            chrono::DateTime::from_timestamp_millis(arrived.timestamp_millis()).unwrap_or(arrived);
        let at = match self.last.get(sensor) {
            Some(last) if *last >= arrived => *last + chrono::Duration::milliseconds(1),
            _ => arrived,
        };
        self.last.insert(sensor.clone(), at);
        at
    }
}

impl Client {
    async fn subscribe(&self, filters: &[String], qos: u8) -> Result<(), String> {
        match self {
            Self::V4(c) => {
                let q = if qos == 0 {
                    rumqttc::QoS::AtMostOnce
                } else {
                    rumqttc::QoS::AtLeastOnce
                };
                let filters = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), q));
                c.subscribe_many(filters).await.map_err(|e| e.to_string())
            }
            Self::V5(c) => {
                let q = if qos == 0 {
                    rumqttc::v5::mqttbytes::QoS::AtMostOnce
                } else {
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce
                };
                let filters = filters.iter().map(|f| {
                    let mut filter = p5::Filter::new(f.clone(), q);
                    // Re-subscribing on reconnection must not replay retained messages.
                    filter.retain_forward_rule = p5::RetainForwardRule::OnNewSubscribe;
                    filter
                });
                c.subscribe_many(filters).await.map_err(|e| e.to_string())
            }
        }
    }

    async fn ack(&self, msg: &Msg) -> Result<(), String> {
        match (self, msg) {
            (Self::V4(c), Msg::V4(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            (Self::V5(c), Msg::V5(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            _ => Err("message and client of different MQTT versions".into()),
        }
    }

    async fn disconnect(&self) {
        let _ = match self {
            Self::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Self::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

impl Events {
    async fn poll(&mut self) -> Result<Polled, String> {
        match self {
            Self::V4(el) => {
                use rumqttc::{Event, Packet};
                Ok(match el.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(a)) => Polled::ConnAck {
                        session_present: a.session_present,
                    },
                    Event::Incoming(Packet::SubAck(s)) => Polled::SubAck {
                        refused: s
                            .return_codes
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                            .map(|(i, _)| i)
                            .collect(),
                    },
                    Event::Incoming(Packet::Publish(p)) => Polled::Publish(Msg::V4(p)),
                    Event::Incoming(Packet::Disconnect) => {
                        Polled::Disconnect("the broker disconnected".into())
                    }
                    Event::Outgoing(rumqttc::Outgoing::Disconnect) => {
                        Polled::Disconnect("disconnected".into())
                    }
                    _ => Polled::Other,
                })
            }
            Self::V5(el) => {
                use p5::Packet;
                use rumqttc::v5::Event;
                Ok(match el.poll().await.map_err(|e| e.to_string())? {
                    Event::Incoming(Packet::ConnAck(a)) => Polled::ConnAck {
                        session_present: a.session_present,
                    },
                    Event::Incoming(Packet::SubAck(s)) => Polled::SubAck {
                        refused: s
                            .return_codes
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| !matches!(c, p5::SubscribeReasonCode::Success(_)))
                            .map(|(i, _)| i)
                            .collect(),
                    },
                    Event::Incoming(Packet::Publish(p)) => Polled::Publish(Msg::V5(p)),
                    Event::Incoming(Packet::Disconnect(d)) => {
                        Polled::Disconnect(format!("the broker disconnected: {:?}", d.reason_code))
                    }
                    Event::Outgoing(rumqttc::Outgoing::Disconnect) => {
                        Polled::Disconnect("disconnected".into())
                    }
                    _ => Polled::Other,
                })
            }
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl Source for MqttSource {
    async fn session(self: Arc<Self>, ctx: SessionCtx) -> Result<(), SessionError> {
        let (client, mut events) = self.connect()?;
        let (tx, rx) = mpsc::channel::<(Msg, mantis_domain::Timestamp)>(FORWARD_CAPACITY);
        let mut processor = AbortOnDrop(tokio::spawn(process(
            self.clone(),
            client.clone(),
            rx,
            ctx.clone(),
        )));
        let filters = self.config.topics.clone();
        let mut connected = false;
        loop {
            let polled = tokio::select! {
                biased;
                () = ctx.stop.cancelled() => break,
                _ = &mut processor.0 => {
                    return Err(SessionError::Connection("the processing task ended".into()));
                }
                polled = events.poll() => polled,
            };
            match polled {
                Ok(Polled::ConnAck { session_present }) => {
                    connected = true;
                    tracing::info!(connector = %ctx.name, session_present, "connected");
                    // Connected, but nothing is read until the broker confirms the subscriptions.
                    ctx.connected(Vec::new());
                    client
                        .subscribe(&filters, self.config.qos)
                        .await
                        .map_err(SessionError::Connection)?;
                }
                Ok(Polled::SubAck { refused }) => {
                    if !refused.is_empty() {
                        let names: Vec<&str> = refused
                            .iter()
                            .filter_map(|i| filters.get(*i).map(String::as_str))
                            .collect();
                        return Err(SessionError::Refused(format!(
                            "the broker refused the subscription to {}",
                            names.join(", ")
                        )));
                    }
                    ctx.connected(filters.clone());
                }
                Ok(Polled::Publish(msg)) => {
                    // A retained message is no sign of life of the device (the broker replays
                    // it on every subscription): it does not hold off the silence watchdog.
                    if !msg.retained() {
                        ctx.status.received(1);
                    }
                    // Stamped as it comes off the connection, not when a batch is processed.
                    if tx.send((msg, chrono::Utc::now())).await.is_err() {
                        return Err(SessionError::Connection("the processing task ended".into()));
                    }
                }
                Ok(Polled::Disconnect(why)) => return Err(SessionError::Connection(why)),
                Ok(Polled::Other) => {}
                Err(e) if connected => return Err(SessionError::Connection(e)),
                Err(e) => return Err(SessionError::Connect(e)),
            }
        }
        // Stopping: let the processing task finish what it holds (its acknowledgements need the
        // event loop), then disconnect; bounded, as whatever is not acknowledged is delivered
        // again by the broker anyway.
        drop(tx);
        let flush = async {
            loop {
                tokio::select! {
                    _ = &mut processor.0 => break,
                    polled = events.poll() => if polled.is_err() { return; },
                }
            }
            client.disconnect().await;
            while let Ok(p) = events.poll().await {
                if matches!(p, Polled::Disconnect(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(FLUSH_BUDGET, flush).await;
        Ok(())
    }
}

/// Readings a batch of messages holds at most before they are delivered (a message carries at
/// most [`payload::MAX_READINGS_PER_MESSAGE`]).
const MAX_READINGS_HELD: usize = 20_000;

/// Turns messages into readings, delivers them, then acknowledges them.
async fn process(
    source: Arc<MqttSource>,
    client: Client,
    mut rx: mpsc::Receiver<(Msg, mantis_domain::Timestamp)>,
    ctx: SessionCtx,
) {
    let max = source.config.max_batch.max(1);
    while let Some(first) = rx.recv().await {
        let mut msgs = vec![first];
        while msgs.len() < max {
            match rx.try_recv() {
                Ok(m) => msgs.push(m),
                Err(_) => break,
            }
        }
        let mut readings = Vec::new();
        let mut unreadable = Vec::new();
        let mut stale = 0;
        for (m, arrived) in &msgs {
            let topic = m.topic();
            let (found, errors) =
                payload::parse_message(m.payload(), &source.topic_info(&topic), *arrived);
            if !errors.is_empty() && m.retained() {
                // A retained message replayed by a (re)subscription: dead-lettered when it was
                // published live, not again on every reconnection.
                crate::metrics::invalid_message(&ctx.name);
                tracing::debug!(connector = %ctx.name, %topic, "a retained MQTT message yields no reading; not dead-lettered again");
            } else if !errors.is_empty() {
                // The whole message is kept with what could not be read of it (its readable
                // part is delivered too).
                unreadable.push(ctx.unreadable(
                    SourceProtocol::Mqtt,
                    topic.to_string(),
                    &format!("message on `{topic}`"),
                    m.payload().to_vec(),
                    errors.join("; "),
                ));
            }
            for mut reading in found {
                if reading.timestamp == *arrived {
                    // No time of its own: it is timed by its arrival, which for a retained
                    // message says nothing of when it was measured (a device dead for days
                    // would show a fresh value on every reconnection): not taken.
                    if m.retained() {
                        stale += 1;
                        continue;
                    }
                    reading.timestamp = match source.stamps.lock() {
                        Ok(mut stamps) => stamps.next(&reading.sensor, *arrived),
                        Err(_) => *arrived,
                    };
                }
                readings.push(reading);
            }
            // Handed on as they come: a batch of large messages holds no more than this many
            // (their acknowledgements still wait for the whole batch).
            if readings.len() >= MAX_READINGS_HELD
                && ctx
                    .deliver(std::mem::take(&mut readings), SourceProtocol::Mqtt, None)
                    .await
                    .is_none()
            {
                return;
            }
        }
        if stale > 0 {
            crate::metrics::stale_retained(&ctx.name, stale);
            tracing::debug!(connector = %ctx.name, stale, "retained MQTT values without a timestamp not taken (their time is unknown)");
        }
        if !readings.is_empty()
            && ctx
                .deliver(readings, SourceProtocol::Mqtt, None)
                .await
                .is_none()
        {
            // Stopped before the sink took them: not acknowledged, so the broker keeps them.
            return;
        }
        if !ctx.keep_unreadable(unreadable).await {
            return;
        }
        for (m, _) in &msgs {
            if let Err(e) = client.ack(m).await {
                tracing::debug!(connector = %ctx.name, error = %e, "acknowledgement not sent; the broker will deliver again");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_stamps_increase_per_sensor_and_follow_the_clock_otherwise() {
        let mut stamps = ArrivalStamps::default();
        let a = SensorRef::Code("A".into());
        let b = SensorRef::Code("B".into());
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let ms = chrono::Duration::milliseconds;
        assert_eq!(stamps.next(&a, t), t);
        assert_eq!(stamps.next(&a, t), t + ms(1), "same arrival, same sensor");
        assert_eq!(stamps.next(&a, t), t + ms(2));
        assert_eq!(stamps.next(&b, t), t, "another sensor keeps its own");
        assert_eq!(stamps.next(&a, t + ms(1)), t + ms(3), "never back in time");
        assert_eq!(
            stamps.next(&a, t + ms(10)),
            t + ms(10),
            "the clock once it is ahead"
        );
        // Within one millisecond: distinct at the precision readings are stored with.
        let micros = chrono::Duration::microseconds;
        let c = SensorRef::Code("C".into());
        assert_eq!(stamps.next(&c, t + micros(100)), t);
        assert_eq!(stamps.next(&c, t + micros(400)), t + ms(1));
    }
}
