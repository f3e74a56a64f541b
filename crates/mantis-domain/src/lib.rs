//! # mantis-domain
//!
//! The vocabulary every MANTIS crate and service shares: assets and their criticality, sensors,
//! readings, windows, feature vectors, anomalies, remaining-useful-life predictions, work orders
//! and alerts. Values are parsed once at the boundary (`SensorType::parse`, `Quality::new`,
//! `Criticality::parse`) so that code behind it can rely on them.
//!
//! Layout: `ids` (typed UUID newtypes and deterministic id derivation), `asset` (assets, sensors,
//! criticality and the decision matrix defaults), `incoming` (readings as sources deliver them,
//! before validation), `signal` (readings, windows, feature vectors,
//! data-quality issues), `access` (users, roles and API keys), `crew` (technicians, skills, shifts), `maintenance` (anomalies, RUL, work orders, alerts), `production` (good and rejected units: OEE's quality).
//!
//! ```
//! use mantis_domain::{Criticality, Quality};
//! let c = Criticality::parse("high").unwrap();
//! assert_eq!(c.default_anomaly_threshold(), 0.80);
//! assert!(Quality::new(42).unwrap().is_low());
//! ```

mod access;
mod asset;
mod crew;
mod ids;
mod incoming;
pub mod json;
mod maintenance;
mod production;
mod signal;
mod stock;

pub use access::{ApiKey, Role, User};
pub use asset::{Asset, Criticality, Fleet, Sensor, SensorType};
pub use crew::{
    Day, MAX_SHIFTS, MAX_SKILL, MAX_SKILLS, MAX_TECHNICIAN_NAME, MAX_TIME_OFF_DAYS,
    MAX_TIME_OFF_REASON, MAX_UTC_OFFSET_MINUTES, Shift, Technician, TimeOff, join_spans,
    normalise_skill, subtract_spans,
};
pub use ids::{
    AlertId, AnomalyId, ApiKeyId, AssetId, MaintenanceEventId, PlannedStopId, SensorId, TenantId,
    TimeOffId, WorkOrderId, deterministic_uuid,
};
pub use incoming::{IncomingReading, SensorRef};
pub use maintenance::{
    Alert, AlertKind, Anomaly, AnomalyScore, Contribution, MaintenanceEvent, MaintenanceEventKind,
    Priority, RulPrediction, Severity, WorkOrder, WorkOrderStatus,
};
pub use production::{
    MAX_IDEAL_CYCLE_SECONDS, MAX_PLANNED_STOP_DAYS, MAX_PLANNED_STOP_REASON, MAX_PRODUCTION_COUNT,
    MAX_PRODUCTION_PERIOD_DAYS, MIN_IDEAL_CYCLE_SECONDS, PlannedStop, ProductionCount,
    ProductionTotals, Repeat,
};
pub use signal::{
    DataQualityIssue, FeatureVector, Quality, QualityReason, Reading, SourceProtocol, Window,
};
pub use stock::{
    MAX_PART_NUMBER, MAX_PART_QUANTITY, MAX_PART_TEXT, SparePart, StockChange, StockMovement,
    StockMovementKind, normalise_part_number,
};

/// `text` cut to `max` characters (an ellipsis says so): what a log line, an alert, a status or
/// a record header quotes of outside input stays bounded whatever the input.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Errors raised when a value from outside does not fit the domain.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    /// A textual enum value is not one of the known symbols.
    #[error("`{value}` is not a valid {what}; expected one of {expected}")]
    UnknownSymbol {
        /// What was being parsed (e.g. "criticality").
        what: &'static str,
        /// The value received.
        value: String,
        /// The accepted symbols, comma separated.
        expected: &'static str,
    },
    /// A numeric value lies outside its allowed range.
    #[error("{what} must be within {min}..={max}, got {value}")]
    OutOfRange {
        /// What was being checked.
        what: &'static str,
        /// The value received.
        value: f64,
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// A value that must be present and non-empty was not.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A name outside the characters or length its uses allow.
    #[error("{what} `{value}` must be {rule}")]
    BadName {
        /// What was being checked.
        what: &'static str,
        /// The value received.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
}

/// Timestamps are UTC with millisecond precision everywhere in MANTIS.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A period `[starts_at, ends_at)` kept to the millisecond (as stored), checked to end after it
/// starts and to last at most `max_days`; `what` and `rule` word the error.
pub(crate) fn checked_period(
    what: &'static str,
    rule: &'static str,
    starts_at: Timestamp,
    ends_at: Timestamp,
    max_days: i64,
) -> Result<(Timestamp, Timestamp), DomainError> {
    let ms = |t: Timestamp| chrono::SubsecRound::trunc_subsecs(t, 3);
    let (starts_at, ends_at) = (ms(starts_at), ms(ends_at));
    let length = ends_at - starts_at;
    if length <= chrono::Duration::zero() || length > chrono::Duration::days(max_days) {
        return Err(DomainError::BadName {
            what,
            value: format!("{} to {}", starts_at.to_rfc3339(), ends_at.to_rfc3339()),
            rule,
        });
    }
    Ok((starts_at, ends_at))
}

/// Longest reason given for a stretch of time (time off, a planned stop).
const MAX_REASON: usize = 200;

/// `reason` trimmed, checked to hold at most [`MAX_REASON`] characters and no control
/// characters.
pub(crate) fn checked_reason(what: &'static str, reason: &str) -> Result<String, DomainError> {
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(DomainError::BadName {
            what,
            value: reason.chars().take(80).collect(),
            rule: "at most 200 characters without control characters",
        });
    }
    Ok(reason.to_owned())
}

/// Converts milliseconds since the Unix epoch into a [`Timestamp`], `None` when out of range.
pub fn timestamp_from_millis(ms: i64) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms)
}
