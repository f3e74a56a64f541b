//! What MANTIS concludes and decides: anomalies, RUL predictions, work orders, alerts.

use crate::{
    AlertId, AnomalyId, AssetId, Criticality, DomainError, MaintenanceEventId, SensorId, Timestamp,
    WorkOrderId, deterministic_uuid,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How severe an anomaly or alert is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Plan an intervention.
    Medium,
    /// Intervene soon.
    High,
    /// Intervene now.
    Critical,
}

impl Severity {
    /// Every level, least severe first.
    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The symbol as stored and sent on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }

    /// Parses a symbol (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LOW" => Ok(Self::Low),
            "MEDIUM" => Ok(Self::Medium),
            "HIGH" => Ok(Self::High),
            "CRITICAL" => Ok(Self::Critical),
            _ => Err(DomainError::UnknownSymbol {
                what: "severity",
                value: s.to_owned(),
                expected: "LOW, MEDIUM, HIGH, CRITICAL",
            }),
        }
    }

    /// Severity of an anomaly on an asset of `criticality` whose score exceeds its threshold:
    /// the asset's criticality, raised one level when the score is far beyond the threshold
    /// (more than half-way from the threshold to 1).
    pub fn for_anomaly(criticality: Criticality, score: f64, threshold: f64) -> Self {
        let base = match criticality {
            Criticality::Critical => Self::Critical,
            Criticality::High => Self::High,
            Criticality::Medium => Self::Medium,
            Criticality::Low => Self::Low,
        };
        let far = score >= threshold + (1.0 - threshold) / 2.0;
        match (base, far) {
            (Self::Low, true) => Self::Medium,
            (Self::Medium, true) => Self::High,
            (Self::High, true) => Self::Critical,
            (b, _) => b,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much one feature contributed to an anomaly score.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    /// Feature name, e.g. `rms`.
    pub feature: String,
    /// The sensor the feature belongs to.
    pub sensor_id: SensorId,
    /// Its observed value.
    pub value: f64,
    /// Its deviation from the baseline (robust z-score).
    pub z_score: f64,
}

/// An anomaly detected on an asset's window (published on `anomaly.detected`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    /// Deterministic id: the same window always yields the same anomaly id.
    pub id: AnomalyId,
    /// The asset.
    pub asset_id: AssetId,
    /// The sensor whose window was scored.
    pub sensor_id: SensorId,
    /// Start of the scored window.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub window_start: Timestamp,
    /// When it was detected.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub detected_at: Timestamp,
    /// Score in [0, 1].
    pub score: f64,
    /// The asset's threshold that was exceeded.
    pub threshold: f64,
    /// Severity.
    pub severity: Severity,
    /// Criticality of the asset at detection time.
    pub criticality: Criticality,
    /// Detection method, e.g. `robust-zscore`.
    pub method: String,
    /// The features that contributed most, largest first.
    pub contributions: Vec<Contribution>,
}

impl Anomaly {
    /// The deterministic id of the anomaly of `sensor`'s window starting at `window_start`.
    pub fn id_for(sensor: SensorId, window_start: Timestamp) -> AnomalyId {
        AnomalyId(deterministic_uuid(
            "anomaly",
            &[
                &sensor.to_string(),
                &window_start.timestamp_millis().to_string(),
            ],
        ))
    }
}

/// The scores of one scored window (a row of `anomaly_scores`), anomalous or not: the
/// ensemble's and each detector's calibrated score, so that an operator can see how each
/// detector judged it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyScore {
    /// Start of the scored window.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub window_start: Timestamp,
    /// The sensor whose window was scored.
    pub sensor_id: SensorId,
    /// The asset.
    pub asset_id: AssetId,
    /// The anomaly this window raised, if it did.
    pub anomaly_id: Option<AnomalyId>,
    /// The score compared with the threshold, in [0, 1].
    pub ensemble_score: f64,
    /// Robust z-score detector's calibrated score, when part of the model.
    pub zscore_score: Option<f64>,
    /// Isolation forest's calibrated score, when part of the model.
    pub isolation_forest_score: Option<f64>,
    /// One-class SVM's calibrated score, when part of the model.
    pub ocsvm_score: Option<f64>,
    /// Autoencoder's calibrated score, when part of the model.
    pub autoencoder_score: Option<f64>,
    /// The asset's threshold.
    pub threshold: f64,
    /// Severity, when the window was an anomaly.
    pub severity: Option<Severity>,
    /// Detection method, e.g. `ensemble` or `robust-zscore`.
    pub method: String,
    /// The model version that scored it (`None`: the online baseline).
    pub model_version: Option<String>,
}

/// A remaining-useful-life prediction (published on `rul.predicted`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulPrediction {
    /// The asset.
    pub asset_id: AssetId,
    /// When it was predicted.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub predicted_at: Timestamp,
    /// Remaining cycles (point estimate).
    pub rul_cycles: f64,
    /// Lower bound of the interval.
    pub confidence_lower: f64,
    /// Upper bound of the interval.
    pub confidence_upper: f64,
    /// The model version that produced it.
    pub model_version: String,
}

/// Work-order priority.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Priority {
    /// Within hours.
    Urgent,
    /// Within a shift or a day.
    High,
    /// Planned.
    Normal,
    /// When convenient.
    Low,
}

impl Priority {
    /// The symbol as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Urgent => "URGENT",
            Self::High => "HIGH",
            Self::Normal => "NORMAL",
            Self::Low => "LOW",
        }
    }

    /// Parses a symbol.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "URGENT" => Ok(Self::Urgent),
            "HIGH" => Ok(Self::High),
            "NORMAL" => Ok(Self::Normal),
            "LOW" => Ok(Self::Low),
            _ => Err(DomainError::UnknownSymbol {
                what: "priority",
                value: s.to_owned(),
                expected: "URGENT, HIGH, NORMAL, LOW",
            }),
        }
    }
}

/// Where a work order stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkOrderStatus {
    /// Created, not yet planned.
    Open,
    /// Planned with a date and technician.
    Scheduled,
    /// Being worked on.
    InProgress,
    /// Done.
    Completed,
    /// Dropped.
    Cancelled,
}

impl WorkOrderStatus {
    /// The symbol as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Scheduled => "SCHEDULED",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a symbol.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "OPEN" => Ok(Self::Open),
            "SCHEDULED" => Ok(Self::Scheduled),
            "IN_PROGRESS" => Ok(Self::InProgress),
            "COMPLETED" => Ok(Self::Completed),
            "CANCELLED" => Ok(Self::Cancelled),
            _ => Err(DomainError::UnknownSymbol {
                what: "work order status",
                value: s.to_owned(),
                expected: "OPEN, SCHEDULED, IN_PROGRESS, COMPLETED, CANCELLED",
            }),
        }
    }

    /// Whether the work order still needs doing (open, scheduled or in progress).
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Open | Self::Scheduled | Self::InProgress)
    }
}

/// A maintenance job on an asset.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkOrder {
    /// Its id.
    pub id: WorkOrderId,
    /// Human code, e.g. `WO-20261123-0001`.
    pub code: String,
    /// The asset to work on.
    pub asset_id: AssetId,
    /// Why it exists, e.g. `anomaly` or `rul`; at most one active work order per asset and cause.
    pub cause: String,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: WorkOrderStatus,
    /// Created at.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Must be started before (criticality's max response time).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub due_by: Timestamp,
    /// What to check.
    pub description: String,
    /// The rule that triggered it.
    pub rule: String,
    /// The event (anomaly or RUL prediction) that triggered it.
    pub trigger_event: String,
}

/// What an alert is about.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertKind {
    /// An anomaly score crossed the asset's threshold.
    Anomaly,
    /// The RUL fell below the asset's threshold.
    Rul,
}

impl AlertKind {
    /// The symbol as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Anomaly => "ANOMALY",
            Self::Rul => "RUL",
        }
    }

    /// Parses a symbol.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ANOMALY" => Ok(Self::Anomaly),
            "RUL" => Ok(Self::Rul),
            _ => Err(DomainError::UnknownSymbol {
                what: "alert kind",
                value: s.to_owned(),
                expected: "ANOMALY, RUL",
            }),
        }
    }
}

/// What happened to an asset, as maintenance recorded it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MaintenanceEventKind {
    /// The asset (or the monitored component) failed: the end of a run to failure.
    Failure,
    /// The monitored component was replaced before failing (preventive): also ends a life.
    Replacement,
    /// Repaired; the component's life goes on.
    Repair,
    /// Inspected, nothing done.
    Inspection,
}

impl MaintenanceEventKind {
    /// The symbol as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Failure => "FAILURE",
            Self::Replacement => "REPLACEMENT",
            Self::Repair => "REPAIR",
            Self::Inspection => "INSPECTION",
        }
    }

    /// Parses a symbol.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "FAILURE" => Ok(Self::Failure),
            "REPLACEMENT" => Ok(Self::Replacement),
            "REPAIR" => Ok(Self::Repair),
            "INSPECTION" => Ok(Self::Inspection),
            _ => Err(DomainError::UnknownSymbol {
                what: "maintenance event kind",
                value: s.to_owned(),
                expected: "FAILURE, REPLACEMENT, REPAIR, INSPECTION",
            }),
        }
    }

    /// Whether the event ends the life of the monitored component (a failure or a
    /// replacement): what the RUL models learn from, and after which an asset is as new.
    pub fn ends_life(&self) -> bool {
        matches!(self, Self::Failure | Self::Replacement)
    }
}

/// A maintenance event recorded on an asset: a failure, a replacement, a repair or an
/// inspection, usually when a work order is completed. Failures and replacements delimit the
/// asset's runs to failure, the training data of the in-platform RUL model.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceEvent {
    /// Its id.
    pub id: MaintenanceEventId,
    /// The asset.
    pub asset_id: AssetId,
    /// What happened.
    pub kind: MaintenanceEventKind,
    /// When it happened (for a failure: when the asset failed, not when it was recorded).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub occurred_at: Timestamp,
    /// The work order that recorded it, if any.
    pub work_order_id: Option<WorkOrderId>,
    /// Free text from the technician.
    pub note: String,
}

/// An alert for people (published on `alerts.critical`, pushed over the WebSocket).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Deterministic id derived from the triggering event.
    pub id: AlertId,
    /// The asset.
    pub asset_id: AssetId,
    /// Severity.
    pub severity: Severity,
    /// What it is about.
    pub kind: AlertKind,
    /// Human message.
    pub message: String,
    /// When it was raised.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// The work order opened or updated for it.
    pub work_order_id: Option<WorkOrderId>,
    /// The triggering event id (anomaly id or prediction key).
    pub trigger_event: String,
    /// Whether the on-call technician must be notified (CRITICAL asset).
    pub notify_on_call: bool,
}

impl Alert {
    /// The deterministic id of the alert raised for `trigger_event`.
    pub fn id_for(trigger_event: &str) -> AlertId {
        AlertId(deterministic_uuid("alert", &[trigger_event]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_criticality_and_escalates_far_beyond_threshold() {
        assert_eq!(
            Severity::for_anomaly(Criticality::Medium, 0.86, 0.85),
            Severity::Medium
        );
        assert_eq!(
            Severity::for_anomaly(Criticality::Medium, 0.99, 0.85),
            Severity::High
        );
        assert_eq!(
            Severity::for_anomaly(Criticality::Critical, 0.99, 0.75),
            Severity::Critical
        );
    }

    #[test]
    fn work_order_status_activity() {
        assert!(WorkOrderStatus::InProgress.is_active());
        assert!(!WorkOrderStatus::Completed.is_active());
        assert_eq!(
            WorkOrderStatus::parse("in_progress"),
            Ok(WorkOrderStatus::InProgress)
        );
    }
}
