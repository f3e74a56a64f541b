//! Rows as both backends return them, and their conversion into domain values: written once.
//!
//! Each struct mirrors the column list of a `SELECT` in [`super::queries`]. `sqlx::FromRow` is
//! derived generically, so the same struct decodes a PostgreSQL row and a SQLite row; the
//! storage differences are absorbed by [`DbId`] and [`DbTime`]. Symbols (criticality, status...)
//! are parsed back with the domain's parsers, and anything that does not parse is reported as
//! [`Error::Corrupt`] rather than panicking.

use super::codec::{DbId, DbTime};
use crate::{
    AlertRecord, Error, Part, PlannedSlot, ReadingBucket, Result, WindowSummary, WorkOrderRecord,
};
use mantis_domain::{
    Alert, AlertKind, Anomaly, AnomalyScore, ApiKey, Asset, Contribution, Criticality, DomainError,
    FeatureVector, MaintenanceEvent, MaintenanceEventKind, PlannedStop, Priority, ProductionCount,
    Quality, Reading, Role, RulPrediction, Sensor, SensorId, SensorType, Severity, Shift,
    SourceProtocol, SparePart, StockMovement, StockMovementKind, Technician, TimeOff, User,
    WorkOrder, WorkOrderStatus,
};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use std::collections::BTreeMap;

/// Reports a stored symbol that the domain does not accept.
fn stored<T>(column: &str, parsed: Result<T, DomainError>) -> Result<T> {
    parsed.map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

/// A work order's status as stored.
pub(crate) fn stored_status(status: &str) -> Result<WorkOrderStatus> {
    stored("work_orders.status", WorkOrderStatus::parse(status))
}

/// NaN is stored as NULL (SQLite cannot store NaN, and JSON has no NaN): reading it back.
pub(crate) fn null_as_nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// The inverse of [`null_as_nan`], applied before writing measurement values.
pub(crate) fn nan_as_null(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// A list of numbers as a JSON document (NaN becomes `null`).
pub(crate) fn numbers_json(values: &[f64]) -> Json<serde_json::Value> {
    Json(serde_json::Value::Array(
        values
            .iter()
            .map(|v| {
                serde_json::Number::from_f64(*v)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            })
            .collect(),
    ))
}

/// Named numbers as a JSON object (NaN and infinities become `null`).
pub(crate) fn named_numbers_json(values: &BTreeMap<String, f64>) -> Json<serde_json::Value> {
    Json(serde_json::Value::Object(
        values
            .iter()
            .map(|(k, v)| {
                let v = serde_json::Number::from_f64(*v)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null);
                (k.clone(), v)
            })
            .collect(),
    ))
}

/// Any serialisable value as a JSON document.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Json<serde_json::Value>> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| Error::Database(format!("cannot encode a JSON column: {e}")))
}

/// `assets` columns, as selected by `ASSET_COLUMNS`.
#[derive(sqlx::FromRow)]
pub(crate) struct AssetRow {
    id: DbId,
    tenant_id: DbId,
    code: String,
    name: String,
    asset_type: String,
    location: String,
    criticality: String,
}

impl TryFrom<AssetRow> for Asset {
    type Error = Error;
    fn try_from(r: AssetRow) -> Result<Self> {
        Ok(Asset {
            id: r.id.0.into(),
            tenant_id: r.tenant_id.0.into(),
            code: r.code,
            name: r.name,
            asset_type: r.asset_type,
            location: r.location,
            criticality: stored("assets.criticality", Criticality::parse(&r.criticality))?,
        })
    }
}

/// `sensors` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct SensorRow {
    id: DbId,
    asset_id: DbId,
    code: String,
    sensor_type: String,
    unit: String,
    min_value: f64,
    max_value: f64,
    sampling_rate_hz: f64,
}

impl TryFrom<SensorRow> for Sensor {
    type Error = Error;
    fn try_from(r: SensorRow) -> Result<Self> {
        Ok(Sensor {
            id: r.id.0.into(),
            asset_id: r.asset_id.0.into(),
            code: r.code,
            sensor_type: stored("sensors.sensor_type", SensorType::parse(&r.sensor_type))?,
            unit: r.unit,
            min_value: r.min_value,
            max_value: r.max_value,
            sampling_rate_hz: r.sampling_rate_hz,
        })
    }
}

/// `sensor_data_raw` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct ReadingRow {
    time: DbTime,
    sensor_id: DbId,
    asset_id: DbId,
    sensor_code: String,
    sensor_type: String,
    value: Option<f64>,
    unit: String,
    quality: i16,
    source: String,
    metadata: Json<BTreeMap<String, String>>,
}

impl TryFrom<ReadingRow> for Reading {
    type Error = Error;
    fn try_from(r: ReadingRow) -> Result<Self> {
        Ok(Reading {
            timestamp: r.time.0,
            asset_id: r.asset_id.0.into(),
            sensor_id: r.sensor_id.0.into(),
            sensor_code: r.sensor_code,
            sensor_type: stored(
                "sensor_data_raw.sensor_type",
                SensorType::parse(&r.sensor_type),
            )?,
            value: null_as_nan(r.value),
            unit: r.unit,
            quality: stored(
                "sensor_data_raw.quality",
                Quality::new(i64::from(r.quality)),
            )?,
            source: stored("sensor_data_raw.source", SourceProtocol::parse(&r.source))?,
            metadata: r.metadata.0,
        })
    }
}

/// `sensor_features` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct FeatureRow {
    window_start: DbTime,
    window_end: DbTime,
    sensor_id: DbId,
    asset_id: DbId,
    sensor_type: String,
    feature_set_version: String,
    features: Json<BTreeMap<String, Option<f64>>>,
}

impl TryFrom<FeatureRow> for FeatureVector {
    type Error = Error;
    fn try_from(r: FeatureRow) -> Result<Self> {
        Ok(FeatureVector {
            asset_id: r.asset_id.0.into(),
            sensor_id: r.sensor_id.0.into(),
            sensor_type: stored(
                "sensor_features.sensor_type",
                SensorType::parse(&r.sensor_type),
            )?,
            window_start: r.window_start.0,
            window_end: r.window_end.0,
            feature_set_version: r.feature_set_version,
            features: r
                .features
                .0
                .into_iter()
                .map(|(k, v)| (k, null_as_nan(v)))
                .collect(),
        })
    }
}

/// The `metadata` document of an anomaly.
#[derive(Serialize, Deserialize)]
pub(crate) struct AnomalyMetadata {
    /// The features that contributed most, largest first.
    #[serde(default)]
    contributions: Vec<StoredContribution>,
}

impl AnomalyMetadata {
    pub(crate) fn of(anomaly: &Anomaly) -> Self {
        Self {
            contributions: anomaly
                .contributions
                .iter()
                .map(|c| StoredContribution {
                    feature: c.feature.clone(),
                    sensor_id: c.sensor_id,
                    value: nan_as_null(c.value),
                    z_score: nan_as_null(c.z_score),
                })
                .collect(),
        }
    }
}

/// A [`Contribution`] as stored: JSON has no NaN or infinity (serde_json writes them as
/// `null`), and a z-score against a flat baseline can be either, so the numbers are nullable
/// and read back as NaN.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredContribution {
    feature: String,
    sensor_id: SensorId,
    value: Option<f64>,
    z_score: Option<f64>,
}

impl From<StoredContribution> for Contribution {
    fn from(c: StoredContribution) -> Self {
        Contribution {
            feature: c.feature,
            sensor_id: c.sensor_id,
            value: null_as_nan(c.value),
            z_score: null_as_nan(c.z_score),
        }
    }
}

/// `anomalies` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct AnomalyRow {
    id: DbId,
    asset_id: DbId,
    sensor_id: DbId,
    window_start: DbTime,
    detected_at: DbTime,
    severity: String,
    anomaly_score: f64,
    threshold: f64,
    criticality: String,
    detection_method: String,
    metadata: Json<AnomalyMetadata>,
}

impl TryFrom<AnomalyRow> for Anomaly {
    type Error = Error;
    fn try_from(r: AnomalyRow) -> Result<Self> {
        Ok(Anomaly {
            id: r.id.0.into(),
            asset_id: r.asset_id.0.into(),
            sensor_id: r.sensor_id.0.into(),
            window_start: r.window_start.0,
            detected_at: r.detected_at.0,
            score: r.anomaly_score,
            threshold: r.threshold,
            severity: stored("anomalies.severity", Severity::parse(&r.severity))?,
            criticality: stored("anomalies.criticality", Criticality::parse(&r.criticality))?,
            method: r.detection_method,
            contributions: r
                .metadata
                .0
                .contributions
                .into_iter()
                .map(Contribution::from)
                .collect(),
        })
    }
}

/// `anomaly_scores` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct AnomalyScoreRow {
    time: DbTime,
    sensor_id: DbId,
    asset_id: DbId,
    anomaly_id: Option<DbId>,
    ensemble_score: f64,
    zscore_score: Option<f64>,
    isolation_forest_score: Option<f64>,
    ocsvm_score: Option<f64>,
    autoencoder_score: Option<f64>,
    threshold: f64,
    severity: Option<String>,
    detection_method: String,
    model_version: Option<String>,
}

impl TryFrom<AnomalyScoreRow> for AnomalyScore {
    type Error = Error;
    fn try_from(r: AnomalyScoreRow) -> Result<Self> {
        Ok(AnomalyScore {
            window_start: r.time.0,
            sensor_id: r.sensor_id.0.into(),
            asset_id: r.asset_id.0.into(),
            anomaly_id: r.anomaly_id.map(|id| id.0.into()),
            ensemble_score: r.ensemble_score,
            zscore_score: r.zscore_score,
            isolation_forest_score: r.isolation_forest_score,
            ocsvm_score: r.ocsvm_score,
            autoencoder_score: r.autoencoder_score,
            threshold: r.threshold,
            severity: r
                .severity
                .map(|s| stored("anomaly_scores.severity", Severity::parse(&s)))
                .transpose()?,
            method: r.detection_method,
            model_version: r.model_version,
        })
    }
}

/// `rul_predictions` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct RulRow {
    asset_id: DbId,
    predicted_at: DbTime,
    rul_cycles: f64,
    confidence_lower: f64,
    confidence_upper: f64,
    model_version: String,
}

impl From<RulRow> for RulPrediction {
    fn from(r: RulRow) -> Self {
        RulPrediction {
            asset_id: r.asset_id.0.into(),
            predicted_at: r.predicted_at.0,
            rul_cycles: r.rul_cycles,
            confidence_lower: r.confidence_lower,
            confidence_upper: r.confidence_upper,
            model_version: r.model_version,
        }
    }
}

/// `work_orders` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct WorkOrderRow {
    id: DbId,
    code: String,
    asset_id: DbId,
    cause: String,
    priority: String,
    status: String,
    created_at: DbTime,
    due_by: DbTime,
    description: String,
    rule: String,
    trigger_event: String,
}

impl TryFrom<WorkOrderRow> for WorkOrder {
    type Error = Error;
    fn try_from(r: WorkOrderRow) -> Result<Self> {
        Ok(WorkOrder {
            id: r.id.0.into(),
            code: r.code,
            asset_id: r.asset_id.0.into(),
            cause: r.cause,
            priority: stored("work_orders.priority", Priority::parse(&r.priority))?,
            status: stored("work_orders.status", WorkOrderStatus::parse(&r.status))?,
            created_at: r.created_at.0,
            due_by: r.due_by.0,
            description: r.description,
            rule: r.rule,
            trigger_event: r.trigger_event,
        })
    }
}

/// `maintenance_events` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct MaintenanceEventRow {
    id: DbId,
    asset_id: DbId,
    kind: String,
    occurred_at: DbTime,
    work_order_id: Option<DbId>,
    note: String,
}

impl TryFrom<MaintenanceEventRow> for MaintenanceEvent {
    type Error = Error;
    fn try_from(r: MaintenanceEventRow) -> Result<Self> {
        Ok(MaintenanceEvent {
            id: r.id.0.into(),
            asset_id: r.asset_id.0.into(),
            kind: stored(
                "maintenance_events.kind",
                MaintenanceEventKind::parse(&r.kind),
            )?,
            occurred_at: r.occurred_at.0,
            work_order_id: r.work_order_id.map(|id| id.0.into()),
            note: r.note,
        })
    }
}

/// `alerts` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    id: DbId,
    asset_id: DbId,
    severity: String,
    kind: String,
    message: String,
    created_at: DbTime,
    work_order_id: Option<DbId>,
    trigger_event: String,
    notify_on_call: bool,
}

impl TryFrom<AlertRow> for Alert {
    type Error = Error;
    fn try_from(r: AlertRow) -> Result<Self> {
        Ok(Alert {
            id: r.id.0.into(),
            asset_id: r.asset_id.0.into(),
            severity: stored("alerts.severity", Severity::parse(&r.severity))?,
            kind: stored("alerts.kind", AlertKind::parse(&r.kind))?,
            message: r.message,
            created_at: r.created_at.0,
            work_order_id: r.work_order_id.map(|id| id.0.into()),
            trigger_event: r.trigger_event,
            notify_on_call: r.notify_on_call,
        })
    }
}

/// `work_orders` columns with the plan ([`super::queries::GET_WORK_ORDER_RECORD`]).
#[derive(sqlx::FromRow)]
pub(crate) struct WorkOrderRecordRow {
    #[sqlx(flatten)]
    order: WorkOrderRow,
    technician: Option<String>,
    parts: Json<serde_json::Value>,
    planned_start: Option<DbTime>,
    planned_end: Option<DbTime>,
    technician_by_planner: bool,
    planned_by_planner: bool,
    while_running: bool,
    updated_at: DbTime,
}

impl TryFrom<WorkOrderRecordRow> for WorkOrderRecord {
    type Error = Error;
    fn try_from(r: WorkOrderRecordRow) -> Result<Self> {
        let parts: Vec<Part> = serde_json::from_value(r.parts.0)
            .map_err(|e| Error::Corrupt(format!("work_orders.parts: {e}")))?;
        Ok(WorkOrderRecord {
            order: r.order.try_into()?,
            technician: r.technician,
            parts,
            planned: r
                .planned_start
                .zip(r.planned_end)
                .map(|(s, e)| PlannedSlot {
                    start: s.0,
                    end: e.0,
                }),
            technician_by_planner: r.technician_by_planner,
            planned_by_planner: r.planned_by_planner,
            while_running: r.while_running,
            updated_at: r.updated_at.0,
        })
    }
}

impl TryFrom<WorkOrderRecordRow> for WorkOrder {
    type Error = Error;
    fn try_from(r: WorkOrderRecordRow) -> Result<Self> {
        r.order.try_into()
    }
}

/// `alerts` columns with acknowledgement and assignment.
#[derive(sqlx::FromRow)]
pub(crate) struct AlertRecordRow {
    #[sqlx(flatten)]
    alert: AlertRow,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<DbTime>,
    ack_note: String,
    assignee: Option<String>,
    changed_at: Option<DbTime>,
}

impl TryFrom<AlertRecordRow> for AlertRecord {
    type Error = Error;
    fn try_from(r: AlertRecordRow) -> Result<Self> {
        Ok(AlertRecord {
            alert: r.alert.try_into()?,
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_at.map(|t| t.0),
            ack_note: r.ack_note,
            assignee: r.assignee,
            changed_at: r.changed_at.map(|t| t.0),
        })
    }
}

/// `technicians` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct TechnicianRow {
    tenant_id: DbId,
    name: String,
    skills: Json<serde_json::Value>,
    shifts: Json<serde_json::Value>,
    utc_offset_minutes: i64,
    time_zone: Option<String>,
    active: bool,
    updated_at: DbTime,
}

impl TryFrom<TechnicianRow> for Technician {
    type Error = Error;
    fn try_from(r: TechnicianRow) -> Result<Self> {
        let skills: Vec<String> = serde_json::from_value(r.skills.0)
            .map_err(|e| Error::Corrupt(format!("technicians.skills: {e}")))?;
        let shifts: Vec<Shift> = serde_json::from_value(r.shifts.0)
            .map_err(|e| Error::Corrupt(format!("technicians.shifts: {e}")))?;
        Ok(Technician {
            tenant_id: r.tenant_id.0.into(),
            name: r.name,
            skills,
            shifts,
            utc_offset_minutes: i32::try_from(r.utc_offset_minutes).map_err(|_| {
                Error::Corrupt(format!(
                    "technicians.utc_offset_minutes: {}",
                    r.utc_offset_minutes
                ))
            })?,
            time_zone: r.time_zone,
            active: r.active,
            updated_at: r.updated_at.0,
        })
    }
}

/// `time_off` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct TimeOffRow {
    id: DbId,
    tenant_id: DbId,
    technician: Option<String>,
    starts_at: DbTime,
    ends_at: DbTime,
    reason: String,
    created_by: String,
    created_at: DbTime,
}

impl From<TimeOffRow> for TimeOff {
    fn from(r: TimeOffRow) -> Self {
        TimeOff {
            id: r.id.0.into(),
            tenant_id: r.tenant_id.0.into(),
            technician: r.technician,
            starts_at: r.starts_at.0,
            ends_at: r.ends_at.0,
            reason: r.reason,
            created_by: r.created_by,
            created_at: r.created_at.0,
        }
    }
}

/// `planned_stops` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct PlannedStopRow {
    id: DbId,
    tenant_id: DbId,
    asset_id: Option<DbId>,
    starts_at: DbTime,
    ends_at: DbTime,
    reason: String,
    created_by: String,
    created_at: DbTime,
    series_id: Option<DbId>,
}

impl From<PlannedStopRow> for PlannedStop {
    fn from(r: PlannedStopRow) -> Self {
        PlannedStop {
            id: r.id.0.into(),
            tenant_id: r.tenant_id.0.into(),
            asset_id: r.asset_id.map(|a| a.0.into()),
            starts_at: r.starts_at.0,
            ends_at: r.ends_at.0,
            reason: r.reason,
            created_by: r.created_by,
            created_at: r.created_at.0,
            series_id: r.series_id.map(|s| s.0.into()),
        }
    }
}

/// A production count and the span it was found for.
#[derive(sqlx::FromRow)]
pub(crate) struct SpanProductionRow {
    pub(crate) span: i64,
    #[sqlx(flatten)]
    pub(crate) count: ProductionRow,
}

/// `production_counts` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct ProductionRow {
    asset_id: DbId,
    starts_at: DbTime,
    ends_at: DbTime,
    good: i64,
    rejected: i64,
    ideal_cycle_seconds: Option<f64>,
    recorded_by: String,
    recorded_at: DbTime,
}

impl TryFrom<ProductionRow> for ProductionCount {
    type Error = Error;

    fn try_from(r: ProductionRow) -> Result<Self> {
        let units = |column: &str, n: i64| {
            u64::try_from(n).map_err(|_| Error::Corrupt(format!("production_counts.{column}: {n}")))
        };
        Ok(ProductionCount {
            asset_id: r.asset_id.0.into(),
            starts_at: r.starts_at.0,
            ends_at: r.ends_at.0,
            good: units("good", r.good)?,
            rejected: units("rejected", r.rejected)?,
            ideal_cycle_seconds: r.ideal_cycle_seconds,
            recorded_by: r.recorded_by,
            recorded_at: r.recorded_at.0,
        })
    }
}

/// A count as stored (`bigint`, `INTEGER`), checked back into a `u32`.
fn count(column: &str, n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Corrupt(format!("{column}: {n}")))
}

/// `spare_parts` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct SparePartRow {
    tenant_id: DbId,
    part_number: String,
    description: String,
    location: String,
    on_hand: i64,
    reorder_point: i64,
    on_order: i64,
    expected_at: Option<DbTime>,
    updated_at: DbTime,
}

impl TryFrom<SparePartRow> for SparePart {
    type Error = Error;
    fn try_from(r: SparePartRow) -> Result<Self> {
        Ok(SparePart {
            tenant_id: r.tenant_id.0.into(),
            part_number: r.part_number,
            description: r.description,
            location: r.location,
            on_hand: count("spare_parts.on_hand", r.on_hand)?,
            reorder_point: count("spare_parts.reorder_point", r.reorder_point)?,
            on_order: count("spare_parts.on_order", r.on_order)?,
            expected_at: r.expected_at.map(|t| t.0),
            updated_at: r.updated_at.0,
        })
    }
}

/// `stock_movements` columns ([`super::queries::LIST_STOCK_MOVEMENTS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct StockMovementRow {
    part_number: String,
    kind: String,
    delta: i64,
    on_hand: i64,
    at: DbTime,
    work_order_id: Option<DbId>,
    by_user: String,
    note: String,
}

impl TryFrom<StockMovementRow> for StockMovement {
    type Error = Error;
    fn try_from(r: StockMovementRow) -> Result<Self> {
        Ok(StockMovement {
            part_number: r.part_number,
            kind: stored("stock_movements.kind", StockMovementKind::parse(&r.kind))?,
            delta: r.delta,
            on_hand: count("stock_movements.on_hand", r.on_hand)?,
            at: r.at.0,
            work_order_id: r.work_order_id.map(|id| id.0.into()),
            by: r.by_user,
            note: r.note,
        })
    }
}

/// A parts list as stored (`work_orders.parts`).
pub(crate) fn parts_of(value: serde_json::Value) -> Result<Vec<Part>> {
    serde_json::from_value(value).map_err(|e| Error::Corrupt(format!("work_orders.parts: {e}")))
}

/// `users` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    username: String,
    tenant_id: DbId,
    display_name: String,
    role: String,
    password_hash: String,
    disabled: bool,
    created_at: DbTime,
    token_epoch: i64,
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            username: r.username,
            tenant_id: r.tenant_id.0.into(),
            display_name: r.display_name,
            role: stored("users.role", Role::parse(&r.role))?,
            password_hash: r.password_hash,
            disabled: r.disabled,
            created_at: r.created_at.0,
            token_epoch: count("users.token_epoch", r.token_epoch)?,
        })
    }
}

/// `api_keys` columns.
#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: DbId,
    tenant_id: DbId,
    name: String,
    prefix: String,
    key_hash: String,
    role: String,
    created_at: DbTime,
    revoked_at: Option<DbTime>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = Error;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(ApiKey {
            id: r.id.0.into(),
            tenant_id: r.tenant_id.0.into(),
            name: r.name,
            prefix: r.prefix,
            key_hash: r.key_hash,
            role: stored("api_keys.role", Role::parse(&r.role))?,
            created_at: r.created_at.0,
            revoked_at: r.revoked_at.map(|t| t.0),
        })
    }
}

/// `sensor_data_windowed` without the samples.
#[derive(sqlx::FromRow)]
pub(crate) struct WindowSummaryRow {
    window_start: DbTime,
    window_end: DbTime,
    sensor_id: DbId,
    asset_id: DbId,
    sample_count: i64,
    mean: Option<f64>,
    stddev: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl From<WindowSummaryRow> for WindowSummary {
    fn from(r: WindowSummaryRow) -> Self {
        Self {
            asset_id: r.asset_id.0.into(),
            sensor_id: r.sensor_id.0.into(),
            window_start: r.window_start.0,
            window_end: r.window_end.0,
            count: u64::try_from(r.sample_count).unwrap_or(0),
            mean: r.mean,
            std: r.stddev,
            min: r.min,
            max: r.max,
        }
    }
}

/// One aggregated bucket of readings (`READING_BUCKETS_*`).
#[derive(sqlx::FromRow)]
pub(crate) struct BucketRow {
    pub(crate) bucket: i64,
    min: Option<f64>,
    max: Option<f64>,
    avg: Option<f64>,
    n: i64,
}

impl BucketRow {
    /// The bucket starting `bucket × bucket_ms` after `from`.
    pub(crate) fn into_bucket(
        self,
        from: mantis_domain::Timestamp,
        bucket_ms: i64,
    ) -> ReadingBucket {
        ReadingBucket {
            start: from + chrono::Duration::milliseconds(self.bucket.saturating_mul(bucket_ms)),
            min: null_as_nan(self.min),
            max: null_as_nan(self.max),
            avg: null_as_nan(self.avg),
            count: u64::try_from(self.n).unwrap_or(0),
        }
    }
}

/// Converts every row, failing on the first that does not fit the domain.
pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = Error>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_written_as_null_and_read_back_as_nan() {
        assert_eq!(nan_as_null(f64::NAN), None);
        assert_eq!(nan_as_null(1.5), Some(1.5));
        assert!(null_as_nan(None).is_nan());
        let json = numbers_json(&[1.0, f64::NAN]);
        assert_eq!(json.0, serde_json::json!([1.0, null]));
    }

    #[test]
    fn an_unknown_stored_symbol_is_reported_as_corrupt_data() {
        let row = AssetRow {
            id: DbId(uuid::Uuid::nil()),
            tenant_id: DbId(uuid::Uuid::nil()),
            code: "A".into(),
            name: "A".into(),
            asset_type: "motor".into(),
            location: String::new(),
            criticality: "SEVERE".into(),
        };
        let err = Asset::try_from(row).err();
        assert!(matches!(err, Some(Error::Corrupt(m)) if m.contains("assets.criticality")));
    }
}
