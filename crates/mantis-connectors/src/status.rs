//! What a running source reports about itself: [`ConnectorStatus`], kept in a [`StatusCell`]
//! that the source updates and the REST API and the watchdog read.

use crate::metrics as m;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The state of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorState {
    /// Connecting (or waiting to reconnect after a failure).
    Connecting,
    /// Connected and receiving (MQTT) or polling (Modbus) without errors.
    Connected,
    /// The connection was lost or the watchdog cut it; a reconnection is scheduled.
    Disconnected,
    /// Connected, but the device answers with errors (Modbus exceptions, refused
    /// subscriptions or monitored items, undecodable payloads), or the device refuses the
    /// connection itself (wrong credentials, untrusted certificate: retried at the back-off's
    /// pace); see `lastError`.
    Error,
    /// Stopped because the service shuts down.
    Stopped,
    /// Not read by this instance of the service: another one holds the source's lease and
    /// reads it (`runsOn`), or it waits for its lease.
    Standby,
}

impl ConnectorState {
    /// The symbol shown in the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connecting => "CONNECTING",
            Self::Connected => "CONNECTED",
            Self::Disconnected => "DISCONNECTED",
            Self::Error => "ERROR",
            Self::Stopped => "STOPPED",
            Self::Standby => "STANDBY",
        }
    }
}

/// The status of one source, as served by `GET /api/v1/connectors/{name}/status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorStatus {
    /// The source's name.
    pub name: String,
    /// `mqtt`, `modbus`, `opcua` or `mtconnect`.
    pub kind: String,
    /// Where it connects (`mqtts://broker:8883`, `modbus://plc:502/1`,
    /// `opc.tcp://plc:4840 (Basic256Sha256 SignAndEncrypt)`, `http://agent:5000`).
    pub endpoint: String,
    /// The current state.
    pub state: ConnectorState,
    /// What is being read: the subscribed topic filters (MQTT), the register blocks polled
    /// (Modbus, e.g. `holding 100..104`), the monitored nodes (OPC UA) or the DataItems
    /// mapped (MTConnect).
    pub active: Vec<String>,
    /// Messages (MQTT), data changes (OPC UA) or poll answers (Modbus, MTConnect) per second
    /// over the last [`RATE_WINDOW_SECS`] seconds.
    pub messages_per_second: f64,
    /// Messages, data changes or poll answers received since start.
    pub messages_total: u64,
    /// Readings taken by the sink since start (accepted or refused-and-reported).
    pub readings_total: u64,
    /// When the last message or poll answer arrived.
    pub last_value_at: Option<DateTime<Utc>>,
    /// The last error, if any, kept for the record with `lastErrorAt` (`state` tells whether
    /// it still holds).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Connection attempts after the first one (failed or not).
    pub reconnects: u64,
    /// How often the watchdog found the source silent and reconnected it.
    pub watchdog_trips: u64,
    /// Since when the current connection is up.
    pub connected_since: Option<DateTime<Utc>>,
    /// In `STANDBY`: the instance of the service that reads it, when known (its lease's
    /// holder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<String>,
}

/// Length of the sliding window of `messagesPerSecond`.
pub const RATE_WINDOW_SECS: u64 = 10;

/// Messages per second over a sliding window of one-second buckets.
#[derive(Debug)]
struct Rate {
    origin: Instant,
    /// (second since origin, messages in that second), oldest first.
    buckets: VecDeque<(u64, u64)>,
}

impl Rate {
    fn new(origin: Instant) -> Self {
        Self {
            origin,
            buckets: VecDeque::new(),
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    fn record(&mut self, at: Instant, n: u64) {
        let s = self.second(at);
        match self.buckets.back_mut() {
            Some((sec, count)) if *sec == s => *count += n,
            _ => self.buckets.push_back((s, n)),
        }
        self.trim(s);
    }

    fn trim(&mut self, now_sec: u64) {
        while self
            .buckets
            .front()
            .is_some_and(|(sec, _)| sec + RATE_WINDOW_SECS <= now_sec)
        {
            self.buckets.pop_front();
        }
    }

    /// Messages per second over the last window (the current second included, so a burst shows
    /// at once; a source younger than the window is averaged over its age).
    fn per_second(&mut self, at: Instant) -> f64 {
        let now_sec = self.second(at);
        self.trim(now_sec);
        let total: u64 = self.buckets.iter().map(|(_, c)| c).sum();
        let span = (now_sec + 1).clamp(1, RATE_WINDOW_SECS);
        total as f64 / span as f64
    }
}

#[derive(Debug)]
struct Inner {
    status: ConnectorStatus,
    rate: Rate,
    /// Last sign of life (data, or progress while the sink holds us up), for the watchdog.
    last_activity: Instant,
}

/// The shared, updatable status of one source.
#[derive(Debug)]
pub(crate) struct StatusCell {
    inner: Mutex<Inner>,
}

impl StatusCell {
    /// A fresh status in state `CONNECTING`.
    pub(crate) fn new(name: &str, kind: &str, endpoint: String) -> Self {
        let now = Instant::now();
        Self {
            inner: Mutex::new(Inner {
                status: ConnectorStatus {
                    name: name.to_owned(),
                    kind: kind.to_owned(),
                    endpoint,
                    state: ConnectorState::Connecting,
                    active: Vec::new(),
                    messages_per_second: 0.0,
                    messages_total: 0,
                    readings_total: 0,
                    last_value_at: None,
                    last_error: None,
                    last_error_at: None,
                    reconnects: 0,
                    watchdog_trips: 0,
                    connected_since: None,
                    runs_on: None,
                },
                rate: Rate::new(now),
                last_activity: now,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock cannot leave the status inconsistent in a way that
        // matters (plain counters), so a poisoned lock is used as is.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// A snapshot of the status.
    pub(crate) fn snapshot(&self) -> ConnectorStatus {
        self.with(|i| {
            let now = Instant::now();
            let mut s = i.status.clone();
            s.messages_per_second = i.rate.per_second(now);
            s
        })
    }

    /// The current state.
    #[cfg(test)]
    pub(crate) fn state(&self) -> ConnectorState {
        self.with(|i| i.status.state)
    }

    pub(crate) fn set_state(&self, state: ConnectorState) {
        self.with(|i| {
            if state != ConnectorState::Connected && state != ConnectorState::Error {
                i.status.connected_since = None;
            }
            i.status.state = state;
            m::state(&i.status.name, state);
        });
    }

    /// Not read here (see [`ConnectorState::Standby`]), by `runs_on` when known.
    pub(crate) fn stand_by(&self, runs_on: Option<String>) {
        self.with(|i| {
            i.status.connected_since = None;
            i.status.runs_on = runs_on;
            i.status.state = ConnectorState::Standby;
            m::state(&i.status.name, ConnectorState::Standby);
        });
    }

    /// About to be read here.
    pub(crate) fn runs_here(&self) {
        self.with(|i| {
            i.status.runs_on = None;
            i.status.state = ConnectorState::Connecting;
            m::state(&i.status.name, ConnectorState::Connecting);
        });
    }

    /// The connection is up (or the device answers again): state `CONNECTED` (the last error
    /// kept for the record).
    pub(crate) fn connected(&self, active: Vec<String>) {
        self.with(|i| {
            if i.status.connected_since.is_none() {
                i.status.connected_since = Some(Utc::now());
            }
            i.status.active = active;
            i.status.state = ConnectorState::Connected;
            m::state(&i.status.name, ConnectorState::Connected);
            i.last_activity = Instant::now();
        });
    }

    /// The device works again: back to `CONNECTED` from `ERROR`, error kept for the record but
    /// the state cleared.
    pub(crate) fn healthy(&self) {
        self.with(|i| {
            if i.status.state == ConnectorState::Error {
                i.status.state = ConnectorState::Connected;
                m::state(&i.status.name, ConnectorState::Connected);
            }
        });
    }

    /// Records an error; `state` becomes the new state when given.
    pub(crate) fn error(&self, kind: &'static str, detail: &str, state: Option<ConnectorState>) {
        self.with(|i| {
            i.status.last_error = Some(detail.to_owned());
            i.status.last_error_at = Some(Utc::now());
            if let Some(s) = state {
                if s != ConnectorState::Connected && s != ConnectorState::Error {
                    i.status.connected_since = None;
                }
                i.status.state = s;
                m::state(&i.status.name, s);
            }
            m::error(&i.status.name, kind);
        });
    }

    /// `n` messages or poll answers arrived now.
    pub(crate) fn received(&self, n: u64) {
        self.with(|i| {
            let now = Instant::now();
            i.rate.record(now, n);
            i.status.messages_total += n;
            i.status.last_value_at = Some(Utc::now());
            i.last_activity = now;
            m::received(&i.status.name, n);
        });
    }

    /// `n` readings were taken by the sink.
    pub(crate) fn delivered(&self, n: u64) {
        self.with(|i| {
            i.status.readings_total += n;
            m::delivered(&i.status.name, n);
        });
    }

    /// The source is alive but held up by the sink (so the watchdog must not cut it).
    pub(crate) fn alive(&self) {
        self.with(|i| i.last_activity = Instant::now());
    }

    /// How long since the last sign of life.
    pub(crate) fn silent_for(&self) -> Duration {
        self.with(|i| i.last_activity.elapsed())
    }

    pub(crate) fn reconnecting(&self) {
        self.with(|i| {
            i.status.reconnects += 1;
            m::reconnect(&i.status.name);
        });
    }

    pub(crate) fn watchdog_tripped(&self) {
        self.with(|i| {
            i.status.watchdog_trips += 1;
            m::watchdog_trip(&i.status.name);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_averaged_over_the_sliding_window() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0);
        r.record(t0, 5);
        assert_eq!(r.per_second(t0), 5.0);
        for s in 1..10 {
            r.record(t0 + Duration::from_secs(s), 5);
        }
        assert_eq!(r.per_second(t0 + Duration::from_secs(9)), 5.0);
        // Nothing for 5 s: half of the window is empty.
        assert_eq!(r.per_second(t0 + Duration::from_secs(14)), 2.5);
        // Nothing for longer than the window.
        assert_eq!(r.per_second(t0 + Duration::from_secs(30)), 0.0);
    }

    #[test]
    fn errors_and_reconnections_show_in_the_snapshot() {
        let cell = StatusCell::new("plc", "modbus", "modbus://plc:502/1".into());
        assert_eq!(cell.state(), ConnectorState::Connecting);
        cell.connected(vec!["holding 0..4".into()]);
        cell.received(3);
        cell.error(
            "exception",
            "Illegal data address",
            Some(ConnectorState::Error),
        );
        cell.reconnecting();
        let s = cell.snapshot();
        assert_eq!(s.state, ConnectorState::Error);
        assert_eq!(s.messages_total, 3);
        assert_eq!(s.last_error.as_deref(), Some("Illegal data address"));
        assert_eq!(s.reconnects, 1);
        assert!(s.connected_since.is_some());
        cell.healthy();
        assert_eq!(cell.state(), ConnectorState::Connected);
        let json = serde_json::to_value(cell.snapshot()).expect("serializes");
        assert_eq!(json["state"], "CONNECTED");
        assert_eq!(json["active"][0], "holding 0..4");
    }
}
