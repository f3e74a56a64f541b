//! The metrics of the connectors, defined once (all labelled by `connector`, the source name):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `mantis_connector_messages_total` | counter | MQTT messages, Modbus or MTConnect poll answers, OPC UA data changes received |
//! | `mantis_connector_readings_total` | counter | readings taken by the sink |
//! | `mantis_connector_invalid_messages_total` | counter | payloads (or values) that yielded no reading (logged, status `lastError`, handed to the sink to be dead-lettered) |
//! | `mantis_connector_bad_quality_readings_total` | counter | quality-0 readings made from device errors (Modbus exceptions, timeouts, OPC UA Bad status codes, MTConnect UNAVAILABLE) |
//! | `mantis_connector_lost_observations_total` | counter | MTConnect observations overwritten in the agent's buffer before they could be read; OPC UA data changes beyond the pending bound while the sink stalled |
//! | `mantis_connector_stale_retained_total` | counter | readings of MQTT retained messages without a timestamp of their own, not taken (their time is unknown) |
//! | `mantis_connector_errors_total` | counter | errors by `kind` (connect, exception, timeout, sink, subscribe, payload, ...) |
//! | `mantis_connector_reconnects_total` | counter | connection attempts after the first |
//! | `mantis_connector_watchdog_trips_total` | counter | reconnections because the source was silent too long |
//! | `mantis_connector_up` | gauge | 1 while `CONNECTED` or `ERROR` (the connection is up), else 0 |
//! | `mantis_connector_state` | gauge | 0 connecting, 1 connected, 2 disconnected, 3 error, 4 stopped, 5 standby (another replica reads it: `max by (connector)` of `mantis_connector_up` over the replicas tells whether one does) |
//! | `mantis_connector_last_value_timestamp_seconds` | gauge | Unix time of the last message or poll answer |

use crate::ConnectorState;

pub(crate) fn received(connector: &str, n: u64) {
    let c = connector.to_owned();
    metrics::counter!("mantis_connector_messages_total", "connector" => c.clone()).increment(n);
    metrics::gauge!("mantis_connector_last_value_timestamp_seconds", "connector" => c)
        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
}

pub(crate) fn delivered(connector: &str, n: u64) {
    metrics::counter!("mantis_connector_readings_total", "connector" => connector.to_owned())
        .increment(n);
}

pub(crate) fn invalid_message(connector: &str) {
    metrics::counter!("mantis_connector_invalid_messages_total", "connector" => connector.to_owned())
        .increment(1);
}

pub(crate) fn bad_quality(connector: &str, n: u64) {
    metrics::counter!("mantis_connector_bad_quality_readings_total", "connector" => connector.to_owned())
        .increment(n);
}

pub(crate) fn lost_observations(connector: &str, n: u64) {
    metrics::counter!("mantis_connector_lost_observations_total", "connector" => connector.to_owned())
        .increment(n);
}

pub(crate) fn stale_retained(connector: &str, n: u64) {
    metrics::counter!("mantis_connector_stale_retained_total", "connector" => connector.to_owned())
        .increment(n);
}

pub(crate) fn error(connector: &str, kind: &'static str) {
    metrics::counter!("mantis_connector_errors_total", "connector" => connector.to_owned(), "kind" => kind)
        .increment(1);
}

pub(crate) fn reconnect(connector: &str) {
    metrics::counter!("mantis_connector_reconnects_total", "connector" => connector.to_owned())
        .increment(1);
}

pub(crate) fn watchdog_trip(connector: &str) {
    metrics::counter!("mantis_connector_watchdog_trips_total", "connector" => connector.to_owned())
        .increment(1);
}

pub(crate) fn state(connector: &str, state: ConnectorState) {
    let code = match state {
        ConnectorState::Connecting => 0.0,
        ConnectorState::Connected => 1.0,
        ConnectorState::Disconnected => 2.0,
        ConnectorState::Error => 3.0,
        ConnectorState::Stopped => 4.0,
        ConnectorState::Standby => 5.0,
    };
    let up = matches!(state, ConnectorState::Connected | ConnectorState::Error);
    metrics::gauge!("mantis_connector_state", "connector" => connector.to_owned()).set(code);
    metrics::gauge!("mantis_connector_up", "connector" => connector.to_owned()).set(if up {
        1.0
    } else {
        0.0
    });
}
