//! The SQL of every operation, shared by PostgreSQL and SQLite.
//!
//! Only what both dialects accept is used: `$n` placeholders (SQLite reads `$1` as parameter 1),
//! `INSERT ... ON CONFLICT ... DO NOTHING/UPDATE` with `excluded`, `RETURNING`, partial-index
//! conflict targets, and scalar sub-queries. Ids and instants are bound through
//! [`super::codec`], so a comparison such as `time >= $2` means the same in both.
//!
//! Every tenant-owned row takes its `tenant_id` from its asset, or the default tenant (bound as
//! the last parameter) when the asset is not registered.

/// Columns of [`super::rows::AssetRow`].
pub(crate) const GET_ASSET: &str = "SELECT id, tenant_id, code, name, asset_type, location, \
     criticality FROM assets WHERE id = $1";

/// `$1`: tenant or NULL for all.
pub(crate) const LIST_ASSETS: &str = "SELECT id, tenant_id, code, name, asset_type, location, \
     criticality FROM assets WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY code, id";

/// Registers the tenant of an asset if it is new (its name is its id until renamed).
pub(crate) const ENSURE_TENANT: &str =
    "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";

pub(crate) const UPSERT_ASSET: &str = "INSERT INTO assets \
     (id, tenant_id, code, name, asset_type, location, criticality, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, code = excluded.code, \
     name = excluded.name, asset_type = excluded.asset_type, location = excluded.location, \
     criticality = excluded.criticality, updated_at = excluded.updated_at \
     WHERE assets.tenant_id = excluded.tenant_id";

pub(crate) const GET_SENSOR: &str = "SELECT id, asset_id, code, sensor_type, unit, min_value, \
     max_value, sampling_rate_hz FROM sensors WHERE id = $1";

/// `$1`: asset or NULL for all.
pub(crate) const LIST_SENSORS: &str = "SELECT id, asset_id, code, sensor_type, unit, min_value, \
     max_value, sampling_rate_hz FROM sensors WHERE ($1 IS NULL OR asset_id = $1) \
     ORDER BY code, id";

pub(crate) const TENANT_SENSORS: &str = "SELECT id, asset_id, code, sensor_type, unit, \
     min_value, max_value, sampling_rate_hz FROM sensors WHERE tenant_id = $1 ORDER BY code, id";

pub(crate) const UPSERT_SENSOR: &str = "INSERT INTO sensors \
     (id, tenant_id, asset_id, code, sensor_type, unit, min_value, max_value, sampling_rate_hz, \
     updated_at) \
     VALUES ($1, COALESCE((SELECT tenant_id FROM assets WHERE id = $2), $10), $2, $3, $4, $5, \
     $6, $7, $8, $9) \
     ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, \
     asset_id = excluded.asset_id, code = excluded.code, sensor_type = excluded.sensor_type, \
     unit = excluded.unit, min_value = excluded.min_value, max_value = excluded.max_value, \
     sampling_rate_hz = excluded.sampling_rate_hz, updated_at = excluded.updated_at \
     WHERE sensors.tenant_id = excluded.tenant_id";

/// Head of the batched reading insert; [`READING_VALUES_WIDTH`] parameters per row follow,
/// numbered from `$2` (`$1` is the default tenant).
pub(crate) const INSERT_READINGS_HEAD: &str = "INSERT INTO sensor_data_raw \
     (time, sensor_id, tenant_id, asset_id, sensor_code, sensor_type, value, unit, quality, \
     source, metadata) VALUES ";

/// Tail of the batched reading insert.
pub(crate) const INSERT_READINGS_TAIL: &str = " ON CONFLICT (sensor_id, time) DO NOTHING";

/// Parameters per reading in the batched insert.
pub(crate) const READING_VALUES_WIDTH: usize = 10;

/// The `VALUES` tuple of the reading whose first parameter is `$first`.
pub(crate) fn reading_values(first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        "(${}, ${}, COALESCE((SELECT tenant_id FROM assets WHERE id = ${}), $1), ${}, ${}, ${}, \
         ${}, ${}, ${}, ${}, ${})",
        p(0),
        p(1),
        p(2),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(9),
    )
}

/// `$1` sensor, `[$2, $3)`.
pub(crate) const LIST_READINGS: &str = "SELECT time, sensor_id, asset_id, sensor_code, \
     sensor_type, value, unit, quality, source, metadata FROM sensor_data_raw \
     WHERE sensor_id = $1 AND time >= $2 AND time < $3 ORDER BY time";

pub(crate) const INSERT_WINDOW: &str = "INSERT INTO sensor_data_windowed \
     (window_start, sensor_id, tenant_id, asset_id, sensor_type, window_end, sample_count, mean, \
     stddev, min, max, samples) \
     VALUES ($1, $2, COALESCE((SELECT tenant_id FROM assets WHERE id = $3), $12), $3, $4, $5, \
     $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (sensor_id, window_start) DO NOTHING";

/// Columns of [`super::rows::WindowSummaryRow`]: `$1` sensor, `[$2, $3)`, `$4` limit.
pub(crate) const LIST_WINDOWS: &str = "SELECT window_start, window_end, sensor_id, asset_id, \
     sample_count, mean, stddev, min, max FROM sensor_data_windowed \
     WHERE sensor_id = $1 AND window_start >= $2 AND window_start < $3 \
     ORDER BY window_start LIMIT $4";

/// `$1`: sensor or NULL for all.
pub(crate) const COUNT_WINDOWS: &str =
    "SELECT COUNT(*) FROM sensor_data_windowed WHERE ($1 IS NULL OR sensor_id = $1)";

pub(crate) const INSERT_FEATURES: &str = "INSERT INTO sensor_features \
     (window_start, sensor_id, tenant_id, asset_id, sensor_type, window_end, \
     feature_set_version, rms, kurtosis, skewness, crest_factor, peak_frequency, \
     spectral_entropy, features) \
     VALUES ($1, $2, COALESCE((SELECT tenant_id FROM assets WHERE id = $3), $14), $3, $4, $5, \
     $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (sensor_id, window_start) DO NOTHING";

/// The newest feature vector of each sensor of asset `$1`.
pub(crate) const LATEST_FEATURES: &str = "SELECT window_start, window_end, sensor_id, asset_id, \
     sensor_type, feature_set_version, features FROM sensor_features f \
     WHERE f.asset_id = $1 AND f.window_start = (SELECT MAX(g.window_start) \
     FROM sensor_features g WHERE g.sensor_id = f.sensor_id AND g.asset_id = $1) \
     ORDER BY f.sensor_id";

pub(crate) const INSERT_ANOMALY: &str = "INSERT INTO anomalies \
     (id, tenant_id, asset_id, sensor_id, window_start, detected_at, severity, anomaly_score, \
     threshold, criticality, detection_method, metadata) \
     VALUES ($1, COALESCE((SELECT tenant_id FROM assets WHERE id = $2), $12), $2, $3, $4, $5, \
     $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (id) DO NOTHING";

/// Written with each new anomaly, in the same transaction.
pub(crate) const INSERT_ANOMALY_SCORE: &str = "INSERT INTO anomaly_scores \
     (time, sensor_id, tenant_id, asset_id, anomaly_id, ensemble_score, threshold, severity, \
     detection_method) \
     VALUES ($1, $2, COALESCE((SELECT tenant_id FROM assets WHERE id = $3), $9), $3, $4, $5, \
     $6, $7, $8) \
     ON CONFLICT (sensor_id, time) DO NOTHING";

/// Every scored window; re-scoring the same window updates the scores and keeps the anomaly
/// id it already had (the anomaly's own insert writes the row first, in its transaction).
pub(crate) const UPSERT_ANOMALY_SCORE: &str = "INSERT INTO anomaly_scores \
     (time, sensor_id, tenant_id, asset_id, anomaly_id, ensemble_score, threshold, severity, \
     detection_method, zscore_score, isolation_forest_score, ocsvm_score, autoencoder_score, \
     model_version) \
     VALUES ($1, $2, COALESCE((SELECT tenant_id FROM assets WHERE id = $3), $9), $3, $4, $5, \
     $6, $7, $8, $10, $11, $12, $13, $14) \
     ON CONFLICT (sensor_id, time) DO UPDATE SET \
     anomaly_id = COALESCE(excluded.anomaly_id, anomaly_scores.anomaly_id), \
     ensemble_score = excluded.ensemble_score, threshold = excluded.threshold, \
     severity = COALESCE(excluded.severity, anomaly_scores.severity), \
     detection_method = excluded.detection_method, zscore_score = excluded.zscore_score, \
     isolation_forest_score = excluded.isolation_forest_score, \
     ocsvm_score = excluded.ocsvm_score, autoencoder_score = excluded.autoencoder_score, \
     model_version = excluded.model_version";

/// `$1`: asset; `$2`: limit. Newest first.
pub(crate) const LIST_ANOMALY_SCORES: &str = "SELECT time, sensor_id, asset_id, anomaly_id, \
     ensemble_score, zscore_score, isolation_forest_score, ocsvm_score, autoencoder_score, \
     threshold, severity, detection_method, model_version FROM anomaly_scores \
     WHERE asset_id = $1 ORDER BY time DESC, sensor_id LIMIT $2";

/// `$1` tenant: the newest score of every sensor of its assets (one primary-key probe per
/// sensor).
pub(crate) const NEWEST_ANOMALY_SCORES: &str = "SELECT s.time, s.sensor_id, s.asset_id, \
     s.anomaly_id, s.ensemble_score, s.zscore_score, s.isolation_forest_score, s.ocsvm_score, \
     s.autoencoder_score, s.threshold, s.severity, s.detection_method, s.model_version \
     FROM assets a JOIN sensors se ON se.asset_id = a.id \
     JOIN anomaly_scores s ON s.sensor_id = se.id \
     AND s.time = (SELECT MAX(x.time) FROM anomaly_scores x WHERE x.sensor_id = se.id) \
     WHERE a.tenant_id = $1";

/// `$1`: sensor; `[$2, $3)`: window starts; the newest `$4`, newest first.
pub(crate) const RECENT_FEATURES: &str = "SELECT window_start, window_end, sensor_id, asset_id, \
     sensor_type, feature_set_version, features FROM sensor_features \
     WHERE sensor_id = $1 AND window_start >= $2 AND window_start < $3 \
     ORDER BY window_start DESC LIMIT $4";

/// `$1` sensor, `[$2, $3)` window starts, `$4` limit: the oldest first.
pub(crate) const FIRST_FEATURES: &str = "SELECT window_start, window_end, sensor_id, asset_id, \
     sensor_type, feature_set_version, features FROM sensor_features \
     WHERE sensor_id = $1 AND window_start >= $2 AND window_start < $3 \
     ORDER BY window_start ASC LIMIT $4";

/// `$1`: asset or NULL for all; `$2`: limit.
pub(crate) const LIST_ANOMALIES: &str = "SELECT id, asset_id, sensor_id, window_start, \
     detected_at, severity, anomaly_score, threshold, criticality, detection_method, metadata \
     FROM anomalies WHERE ($1 IS NULL OR asset_id = $1) \
     ORDER BY detected_at DESC, id DESC LIMIT $2";

/// `$1` tenant, `$2` limit.
pub(crate) const LIST_TENANT_ANOMALIES: &str = "SELECT id, asset_id, sensor_id, window_start, \
     detected_at, severity, anomaly_score, threshold, criticality, detection_method, metadata \
     FROM anomalies WHERE tenant_id = $1 ORDER BY detected_at DESC, id DESC LIMIT $2";

pub(crate) const INSERT_RUL_PREDICTION: &str = "INSERT INTO rul_predictions \
     (predicted_at, asset_id, tenant_id, rul_cycles, confidence_lower, confidence_upper, \
     model_version) \
     VALUES ($1, $2, COALESCE((SELECT tenant_id FROM assets WHERE id = $2), $7), $3, $4, $5, $6) \
     ON CONFLICT (asset_id, predicted_at) DO NOTHING";

pub(crate) const GET_RUL_PREDICTION: &str = "SELECT asset_id, predicted_at, rul_cycles, \
     confidence_lower, confidence_upper, model_version FROM rul_predictions \
     WHERE asset_id = $1 AND predicted_at = $2";

pub(crate) const LIST_RUL_PREDICTIONS: &str = "SELECT asset_id, predicted_at, rul_cycles, \
     confidence_lower, confidence_upper, model_version FROM rul_predictions \
     WHERE asset_id = $1 ORDER BY predicted_at DESC LIMIT $2";

/// `$1` tenant: the newest RUL prediction of each of its assets (one primary-key probe per
/// asset).
pub(crate) const NEWEST_RUL_PREDICTIONS: &str = "SELECT r.asset_id, r.predicted_at, \
     r.rul_cycles, r.confidence_lower, r.confidence_upper, r.model_version \
     FROM assets a JOIN rul_predictions r ON r.asset_id = a.id \
     AND r.predicted_at = (SELECT MAX(x.predicted_at) FROM rul_predictions x \
     WHERE x.asset_id = a.id) \
     WHERE a.tenant_id = $1";

/// Inserts the candidate unless the asset already has an active work order for the cause: the
/// conflict target is the partial unique index `work_orders_one_active_per_asset_cause`, so
/// the database, not this process, decides between concurrent callers. Returns the row only
/// when it was inserted. Other unique violations (same id, same code) still fail.
pub(crate) const INSERT_WORK_ORDER_IF_NONE_ACTIVE: &str = "INSERT INTO work_orders \
     (id, tenant_id, code, asset_id, cause, priority, status, created_at, due_by, description, \
     rule, trigger_event, updated_at) \
     VALUES ($1, COALESCE((SELECT tenant_id FROM assets WHERE id = $3), $13), $2, $3, $4, $5, \
     $6, $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (asset_id, cause) WHERE status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS') \
     DO NOTHING \
     RETURNING id, code, asset_id, cause, priority, status, created_at, due_by, description, \
     rule, trigger_event";

/// `$1` asset, `$2` cause.
pub(crate) const GET_ACTIVE_WORK_ORDER: &str = "SELECT id, code, asset_id, cause, priority, \
     status, created_at, due_by, description, rule, trigger_event FROM work_orders \
     WHERE asset_id = $1 AND cause = $2 AND status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS')";

/// `$1` asset, `$2` cause: when the newest closed work order was closed (its last change).
pub(crate) const LAST_CLOSED_WORK_ORDER: &str = "SELECT updated_at FROM work_orders \
     WHERE asset_id = $1 AND cause = $2 AND status IN ('COMPLETED', 'CANCELLED') \
     ORDER BY updated_at DESC LIMIT 1";

pub(crate) const GET_WORK_ORDER: &str = "SELECT id, code, asset_id, cause, priority, status, \
     created_at, due_by, description, rule, trigger_event FROM work_orders WHERE id = $1";

/// `$1`: asset or NULL; `$2`: true for every status, else `status IN ($3..$7)` (the wanted
/// statuses, repeated to fill the five slots; there are five statuses); `$8`: limit; `$9`:
/// tenant or NULL. Static SQL keeps one prepared statement for every filter.
pub(crate) const LIST_WORK_ORDERS: &str = "SELECT id, code, asset_id, cause, priority, status, \
     created_at, due_by, description, rule, trigger_event, technician, parts, planned_start, planned_end, technician_by_planner, planned_by_planner, while_running, updated_at \
     FROM work_orders \
     WHERE ($1 IS NULL OR asset_id = $1) AND ($2 OR status IN ($3, $4, $5, $6, $7)) \
     AND ($9 IS NULL OR tenant_id = $9) \
     ORDER BY created_at DESC, id DESC LIMIT $8";

/// [`LIST_WORK_ORDERS`], soonest due first (a statement of its own: SQLite then uses an index
/// for the other order).
pub(crate) const LIST_WORK_ORDERS_BY_DUE: &str = "SELECT id, code, asset_id, cause, priority, status, \
     created_at, due_by, description, rule, trigger_event, technician, parts, planned_start, planned_end, technician_by_planner, planned_by_planner, while_running, updated_at \
     FROM work_orders \
     WHERE ($1 IS NULL OR asset_id = $1) AND ($2 OR status IN ($3, $4, $5, $6, $7)) \
     AND ($9 IS NULL OR tenant_id = $9) \
     ORDER BY due_by, id LIMIT $8";

/// The first page of overdue work orders: `$1` due before, `$2` limit. The status condition is
/// the partial index `work_orders_active_due_idx`'s, word for word (SQLite uses such an index
/// only then).
pub(crate) const LIST_OVERDUE_WORK_ORDERS: &str = "SELECT id, code, asset_id, cause, priority, \
     status, created_at, due_by, description, rule, trigger_event, technician, parts, planned_start, planned_end, technician_by_planner, planned_by_planner, while_running, updated_at \
     FROM work_orders \
     WHERE status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS') AND due_by < $1 \
     ORDER BY due_by, id LIMIT $2";

/// A later page: `$3`, `$4` the due time and id of the previous page's last row. The row-value
/// comparison lets both databases seek in the index to where the previous page ended.
pub(crate) const LIST_OVERDUE_WORK_ORDERS_AFTER: &str = "SELECT id, code, asset_id, cause, \
     priority, status, created_at, due_by, description, rule, trigger_event, technician, parts, \
     planned_start, planned_end, technician_by_planner, planned_by_planner, while_running, updated_at FROM work_orders \
     WHERE status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS') AND due_by < $1 \
     AND (due_by, id) > ($3, $4) \
     ORDER BY due_by, id LIMIT $2";

/// `$1` since, `$2` limit: work orders changed at or after `$1`, the oldest change first
/// (index `work_orders_updated_idx`).
pub(crate) const WORK_ORDERS_CHANGED_SINCE: &str = "SELECT id, code, asset_id, cause, priority, \
     status, created_at, due_by, description, rule, trigger_event, technician, parts, \
     planned_start, planned_end, technician_by_planner, planned_by_planner, while_running, updated_at \
     FROM work_orders WHERE updated_at >= $1 ORDER BY updated_at, id LIMIT $2";

/// Columns of [`super::rows::WorkOrderRecordRow`].
pub(crate) const GET_WORK_ORDER_RECORD: &str = "SELECT id, code, asset_id, cause, priority, \
     status, created_at, due_by, description, rule, trigger_event, technician, parts, \
     planned_start, planned_end, technician_by_planner, planned_by_planner, while_running, updated_at FROM work_orders WHERE id = $1";

/// Compare and set: `$1` id, `$2` expected status, `$3` new status, `$4` now, `$5` the
/// `updated_at` it must still have.
pub(crate) const TRANSITION_WORK_ORDER: &str = "UPDATE work_orders SET status = $3, \
     updated_at = $4 WHERE id = $1 AND status = $2 AND updated_at = $5";

/// A work order's status and last change.
pub(crate) const WORK_ORDER_STATE: &str =
    "SELECT status, updated_at FROM work_orders WHERE id = $1";

/// `$2..$4`, `$7`, `$14`: new value or NULL to keep; `$5`: whether to set the technician to
/// `$6`; `$9`: whether to set the planned slot to `$10`..`$11`; `$12`: whether the technician
/// or slot set is the planner's; `$13`: the `updated_at` it must still have, or NULL.
pub(crate) const UPDATE_WORK_ORDER: &str = "UPDATE work_orders SET \
     description = COALESCE($2, description), priority = COALESCE($3, priority), \
     due_by = COALESCE($4, due_by), \
     technician = CASE WHEN $5 THEN $6 ELSE technician END, \
     parts = COALESCE($7, parts), updated_at = $8, \
     planned_start = CASE WHEN $9 THEN $10 ELSE planned_start END, \
     planned_end = CASE WHEN $9 THEN $11 ELSE planned_end END, \
     technician_by_planner = CASE WHEN $5 THEN $12 ELSE technician_by_planner END, \
     planned_by_planner = CASE WHEN $9 THEN $12 ELSE planned_by_planner END, \
     while_running = COALESCE($14, while_running) \
     WHERE id = $1 AND status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS') \
     AND ($13 IS NULL OR updated_at = $13)";

/// Number of status slots in [`LIST_WORK_ORDERS`].
pub(crate) const STATUS_SLOTS: usize = 5;

/// `$3` now, `$4` the `updated_at` it must still have.
pub(crate) const SET_WORK_ORDER_STATUS: &str =
    "UPDATE work_orders SET status = $2, updated_at = $3 WHERE id = $1 AND updated_at = $4";

pub(crate) const INSERT_MAINTENANCE_EVENT: &str = "INSERT INTO maintenance_events \
     (id, tenant_id, asset_id, kind, occurred_at, work_order_id, note) \
     VALUES ($1, COALESCE((SELECT tenant_id FROM assets WHERE id = $2), $7), $2, $3, $4, $5, $6) \
     ON CONFLICT (id) DO NOTHING";

pub(crate) const GET_MAINTENANCE_EVENT: &str = "SELECT id, asset_id, kind, occurred_at, \
     work_order_id, note FROM maintenance_events WHERE id = $1";

/// `$1`: asset. Reads `maintenance_events_asset_occurred_idx` from the newest.
pub(crate) const LAST_LIFE_END: &str = "SELECT occurred_at FROM maintenance_events \
     WHERE asset_id = $1 AND kind IN ('FAILURE', 'REPLACEMENT') \
     ORDER BY occurred_at DESC LIMIT 1";

/// A failure and a replacement recorded at the same instant end one life (as training counts).
pub(crate) const LIFE_ENDS: &str = "SELECT asset_id, MAX(occurred_at), COUNT(DISTINCT occurred_at) \
     FROM maintenance_events WHERE kind IN ('FAILURE', 'REPLACEMENT') GROUP BY asset_id";

pub(crate) const LIST_MAINTENANCE_EVENTS: &str = "SELECT id, asset_id, kind, occurred_at, \
     work_order_id, note FROM maintenance_events WHERE ($1 IS NULL OR asset_id = $1) \
     ORDER BY occurred_at DESC, id DESC LIMIT $2";

/// `$1`: tenant, `$2`: events per asset (window function: SQLite 3.25+, PostgreSQL).
pub(crate) const TENANT_MAINTENANCE_EVENTS: &str = "SELECT id, asset_id, kind, occurred_at, \
     work_order_id, note FROM (SELECT id, asset_id, kind, occurred_at, work_order_id, note, \
     ROW_NUMBER() OVER (PARTITION BY asset_id ORDER BY occurred_at DESC, id DESC) AS nth \
     FROM maintenance_events WHERE tenant_id = $1) ranked \
     WHERE nth <= $2 ORDER BY asset_id, occurred_at DESC, id DESC";

pub(crate) const INSERT_ALERT: &str = "INSERT INTO alerts \
     (id, tenant_id, asset_id, severity, kind, message, created_at, work_order_id, \
     trigger_event, notify_on_call) \
     VALUES ($1, COALESCE((SELECT tenant_id FROM assets WHERE id = $2), $10), $2, $3, $4, $5, \
     $6, $7, $8, $9) \
     ON CONFLICT (id) DO NOTHING";

pub(crate) const GET_ALERT: &str = "SELECT id, asset_id, severity, kind, message, created_at, \
     work_order_id, trigger_event, notify_on_call FROM alerts WHERE id = $1";

pub(crate) const LIST_ALERTS: &str = "SELECT id, asset_id, severity, kind, message, created_at, \
     work_order_id, trigger_event, notify_on_call FROM alerts \
     ORDER BY created_at DESC, id DESC LIMIT $1";

/// Columns of [`super::rows::AlertRecordRow`].
pub(crate) const GET_ALERT_RECORD: &str = "SELECT id, asset_id, severity, kind, message, \
     created_at, work_order_id, trigger_event, notify_on_call, acknowledged_by, acknowledged_at, \
     ack_note, assignee, changed_at FROM alerts WHERE id = $1";

/// `$1` since, `$2` limit: alerts changed (acknowledged or assigned) at or after `$1`, the
/// oldest change first (partial index `alerts_changed_idx`; its condition repeated, as SQLite
/// needs).
pub(crate) const ALERTS_CHANGED_SINCE: &str = "SELECT id, asset_id, severity, kind, message, \
     created_at, work_order_id, trigger_event, notify_on_call, acknowledged_by, acknowledged_at, \
     ack_note, assignee, changed_at FROM alerts WHERE changed_at IS NOT NULL AND changed_at >= $1 \
     ORDER BY changed_at, id LIMIT $2";

/// `$1` tenant or NULL, `$2` asset or NULL, `$3` `all` | `open` | `acknowledged`, `$4` limit.
pub(crate) const LIST_ALERT_RECORDS: &str = "SELECT id, asset_id, severity, kind, message, \
     created_at, work_order_id, trigger_event, notify_on_call, acknowledged_by, acknowledged_at, \
     ack_note, assignee, changed_at FROM alerts \
     WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR asset_id = $2) \
     AND ($3 = 'all' OR ($3 = 'open' AND acknowledged_at IS NULL) \
     OR ($3 = 'acknowledged' AND acknowledged_at IS NOT NULL)) \
     ORDER BY created_at DESC, id DESC LIMIT $4";

/// `$1` tenant: per asset, its unacknowledged alerts, the critical ones among them, its active
/// work orders, each row of the tenant as the lists filter them (partial indexes
/// `alerts_open_asset_idx`, `work_orders_one_active_per_asset_cause`).
pub(crate) const OPEN_WORK: &str = "SELECT a.id, \
     (SELECT COUNT(*) FROM alerts x WHERE x.asset_id = a.id AND x.acknowledged_at IS NULL \
     AND x.tenant_id = a.tenant_id), \
     (SELECT COUNT(*) FROM alerts x WHERE x.asset_id = a.id AND x.acknowledged_at IS NULL \
     AND x.severity = 'CRITICAL' AND x.tenant_id = a.tenant_id), \
     (SELECT COUNT(*) FROM work_orders w WHERE w.asset_id = a.id \
     AND w.status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS') AND w.tenant_id = a.tenant_id) \
     FROM assets a WHERE a.tenant_id = $1";

/// Keeps the first acknowledgement.
/// `$5` the new change time: written only when later than the stored one (another change
/// written meanwhile with a later time is not stamped over: tried again after it).
pub(crate) const ACKNOWLEDGE_ALERT: &str = "UPDATE alerts SET acknowledged_by = $2, \
     acknowledged_at = $3, ack_note = $4, changed_at = $5 WHERE id = $1 \
     AND acknowledged_at IS NULL AND (changed_at IS NULL OR changed_at < $5)";

/// `$3` the new change time, as in [`ACKNOWLEDGE_ALERT`].
pub(crate) const ASSIGN_ALERT: &str = "UPDATE alerts SET assignee = $2, changed_at = $3 \
     WHERE id = $1 AND (changed_at IS NULL OR changed_at < $3)";

/// An alert's acknowledgement and last change.
pub(crate) const ALERT_CHANGE: &str =
    "SELECT acknowledged_at, changed_at FROM alerts WHERE id = $1";

pub(crate) const UPSERT_USER: &str = "INSERT INTO users \
     (username, tenant_id, display_name, role, password_hash, disabled, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (username) DO UPDATE SET tenant_id = excluded.tenant_id, \
     display_name = excluded.display_name, role = excluded.role, \
     password_hash = excluded.password_hash, disabled = excluded.disabled, \
     updated_at = excluded.updated_at";

pub(crate) const INSERT_USER: &str = "INSERT INTO users \
     (username, tenant_id, display_name, role, password_hash, disabled, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (username) DO NOTHING";

/// Columns of [`super::rows::UserRow`].
pub(crate) const GET_USER: &str = "SELECT username, tenant_id, display_name, role, \
     password_hash, disabled, created_at, token_epoch FROM users WHERE username = $1";

/// `$1` username, `$2` tenant; `$3..$6` the new display name, role, disabled flag and password
/// hash, each NULL to keep it; `$7` now; `$8` the password hash it must have, the account
/// enabled (NULL: any).
/// Disabling an enabled account moves its token epoch on. Returns the columns of
/// [`super::rows::UserRow`] (no row: no such user, or another password hash).
pub(crate) const UPDATE_USER: &str = "UPDATE users SET \
     display_name = COALESCE($3, display_name), role = COALESCE($4, role), \
     disabled = COALESCE($5, disabled), password_hash = COALESCE($6, password_hash), \
     token_epoch = token_epoch + CASE WHEN $5 AND NOT disabled THEN 1 ELSE 0 END, \
     updated_at = $7 WHERE username = $1 AND tenant_id = $2 \
     AND ($8 IS NULL OR (password_hash = $8 AND NOT disabled)) \
     RETURNING username, tenant_id, display_name, role, password_hash, disabled, created_at, \
     token_epoch";

/// `$1`: tenant or NULL for all.
pub(crate) const LIST_USERS: &str = "SELECT username, tenant_id, display_name, role, \
     password_hash, disabled, created_at, token_epoch FROM users \
     WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY username";

pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys \
     (id, tenant_id, name, prefix, key_hash, role, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Columns of [`super::rows::ApiKeyRow`].
pub(crate) const FIND_API_KEY: &str = "SELECT id, tenant_id, name, prefix, key_hash, role, \
     created_at, revoked_at FROM api_keys WHERE prefix = $1";

pub(crate) const LIST_API_KEYS: &str = "SELECT id, tenant_id, name, prefix, key_hash, role, \
     created_at, revoked_at FROM api_keys WHERE tenant_id = $1 \
     ORDER BY created_at DESC, id DESC";

pub(crate) const REVOKE_API_KEY: &str =
    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

/// The newest reading of an asset (index `sensor_data_raw_asset_time_idx`).
pub(crate) const LAST_READING_AT: &str =
    "SELECT time FROM sensor_data_raw WHERE asset_id = $1 ORDER BY time DESC LIMIT 1";

/// `$1` tenant: each asset's newest reading time (one index probe per asset: the
/// `(asset_id, time)` index; the row is joined, not computed, so both drivers type it).
pub(crate) const LAST_READINGS_AT: &str = "SELECT DISTINCT a.id AS asset_id, d.time \
     FROM assets a JOIN sensor_data_raw d ON d.asset_id = a.id \
     AND d.time = (SELECT MAX(x.time) FROM sensor_data_raw x WHERE x.asset_id = a.id) \
     WHERE a.tenant_id = $1";

/// Reading buckets, PostgreSQL: `$1` sensor, `[$2, $3)`, `$4` bucket length in milliseconds.
pub(crate) const READING_BUCKETS_POSTGRES: &str = "SELECT \
     CAST(FLOOR(EXTRACT(EPOCH FROM (time - $2)) * 1000 / $4) AS BIGINT) AS bucket, \
     MIN(value) AS min, MAX(value) AS max, AVG(value) AS avg, COUNT(*) AS n \
     FROM sensor_data_raw WHERE sensor_id = $1 AND time >= $2 AND time < $3 \
     GROUP BY 1 ORDER BY 1";

/// `$1` from, `$2` to, then a list of sensor placeholders: each sensor's mean in `[$1, $2)`.
pub(crate) fn mean_readings_sql(sensors: &str) -> String {
    format!(
        "SELECT sensor_id, AVG(value) AS avg FROM sensor_data_raw \
         WHERE sensor_id IN ({sensors}) AND time >= $1 AND time < $2 GROUP BY sensor_id"
    )
}

/// Reading buckets, SQLite (instants are integer milliseconds).
pub(crate) const READING_BUCKETS_SQLITE: &str = "SELECT (time - $2) / $4 AS bucket, \
     MIN(value) AS min, MAX(value) AS max, AVG(value) AS avg, COUNT(*) AS n \
     FROM sensor_data_raw WHERE sensor_id = $1 AND time >= $2 AND time < $3 \
     GROUP BY 1 ORDER BY 1";

pub(crate) const GET_STATE: &str = "SELECT value FROM service_state WHERE key = $1";

pub(crate) const PUT_STATE: &str = "INSERT INTO service_state (key, value, updated_at) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";

// A lease is taken when free, renewed by its holder, or taken over once expired; the
// conditional upsert is atomic in both backends (PostgreSQL re-checks the condition on the
// row it locked). A renewal only ever extends it (an older ask committed late shortens
// nothing), and keeps `acquired_at` unless the lease had lapsed meanwhile. (Every `leases.`
// on the right is the row as it was.)
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO leases (name, holder, acquired_at, expires_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (name) DO UPDATE SET \
       acquired_at = CASE WHEN leases.holder = excluded.holder \
                           AND leases.expires_at >= excluded.acquired_at \
                          THEN leases.acquired_at ELSE excluded.acquired_at END, \
       expires_at = CASE WHEN leases.holder = excluded.holder \
                          AND leases.expires_at > excluded.expires_at \
                         THEN leases.expires_at ELSE excluded.expires_at END, \
       holder = excluded.holder \
     WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.acquired_at";

pub(crate) const GET_LEASE: &str =
    "SELECT holder, acquired_at, expires_at FROM leases WHERE name = $1";

/// `$1` name, `$2` holder, `$3` an expiry or NULL: only a hold not renewed beyond it.
pub(crate) const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2 \
     AND ($3 IS NULL OR expires_at <= $3)";

// The prefix compared as text (no LIKE, whose wildcards a name may hold); `$2` is its length
// in characters. Live: not yet expired at `$3` (the take-over condition above, negated).
pub(crate) const LIVE_LEASES: &str = "SELECT name, holder, acquired_at, expires_at FROM leases \
     WHERE substr(name, 1, CAST($2 AS INTEGER)) = $1 AND expires_at >= $3 ORDER BY name";

pub(crate) const PING: &str = "SELECT 1";

/// A time-series table that [`crate::Store::expire_time_series`] expires, series by series.
pub(crate) struct Expiring {
    pub(crate) table: &'static str,
    /// Whether its series are assets (else sensors).
    pub(crate) by_asset: bool,
    /// A batch deletes `batch_rows / rows_per_batch_divisor` rows: windows carry their samples
    /// and feature vectors dozens of values, so fewer of them are deleted at once.
    pub(crate) batch_divisor: u32,
    /// `$1` series, `$2` cutoff, `$3` n: the time of the series' (n+1)-th oldest row before the
    /// cutoff (primary-key order: no sort).
    pub(crate) nth_expired: &'static str,
    /// `$1` series, `$2` time: deletes the series' rows before it.
    pub(crate) delete_before: &'static str,
}

macro_rules! expiring {
    ($table:literal, $key:literal, $time:literal, $by_asset:expr, $divisor:expr) => {
        Expiring {
            table: $table,
            by_asset: $by_asset,
            batch_divisor: $divisor,
            nth_expired: concat!(
                "SELECT ",
                $time,
                " FROM ",
                $table,
                " WHERE ",
                $key,
                " = $1 AND ",
                $time,
                " < $2 ORDER BY ",
                $time,
                " LIMIT 1 OFFSET $3"
            ),
            delete_before: concat!(
                "DELETE FROM ",
                $table,
                " WHERE ",
                $key,
                " = $1 AND ",
                $time,
                " < $2"
            ),
        }
    };
}

/// The expiring tables, in the order of [`crate::Retention`]'s fields.
pub(crate) const EXPIRING: [Expiring; 5] = [
    expiring!("sensor_data_raw", "sensor_id", "time", false, 1),
    expiring!(
        "sensor_data_windowed",
        "sensor_id",
        "window_start",
        false,
        100
    ),
    expiring!("sensor_features", "sensor_id", "window_start", false, 10),
    expiring!("anomaly_scores", "sensor_id", "time", false, 1),
    expiring!("rul_predictions", "asset_id", "predicted_at", true, 1),
];

pub(crate) const ALL_SENSOR_IDS: &str = "SELECT id FROM sensors";
pub(crate) const ALL_ASSET_IDS: &str = "SELECT id FROM assets";

/// Columns of [`super::rows::TechnicianRow`], `$1` tenant, `$2` name.
pub(crate) const GET_TECHNICIAN: &str = "SELECT tenant_id, name, skills, shifts, \
     utc_offset_minutes, time_zone, active, updated_at FROM technicians WHERE tenant_id = $1 AND name = $2";

/// `$1`: tenant.
pub(crate) const LIST_TECHNICIANS: &str = "SELECT tenant_id, name, skills, shifts, \
     utc_offset_minutes, time_zone, active, updated_at FROM technicians WHERE tenant_id = $1 ORDER BY name";

pub(crate) const UPSERT_TECHNICIAN: &str = "INSERT INTO technicians \
     (tenant_id, name, skills, shifts, utc_offset_minutes, active, updated_at, time_zone) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (tenant_id, name) DO UPDATE SET skills = excluded.skills, \
     shifts = excluded.shifts, utc_offset_minutes = excluded.utc_offset_minutes, \
     active = excluded.active, updated_at = excluded.updated_at, \
     time_zone = excluded.time_zone";

pub(crate) const DELETE_TECHNICIAN: &str =
    "DELETE FROM technicians WHERE tenant_id = $1 AND name = $2";

/// `$1` id, `$2` tenant, `$3` technician (NULL: the whole crew), `$4` start, `$5` end,
/// `$6` reason, `$7` by, `$8` at.
pub(crate) const INSERT_TIME_OFF: &str = "INSERT INTO time_off \
     (id, tenant_id, technician, starts_at, ends_at, reason, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING";

/// `$1` tenant, `$2` from, `$3` to, `$4` limit, `$5` a technician or NULL: the stretches
/// overlapping `[$2, $3)` (of the whole crew and, with `$5`, that technician's only), by start.
pub(crate) const LIST_TIME_OFF: &str = "SELECT id, tenant_id, technician, starts_at, ends_at, \
     reason, created_by, created_at FROM time_off \
     WHERE tenant_id = $1 AND ends_at > $2 AND starts_at < $3 \
     AND ($5 IS NULL OR technician IS NULL OR technician = $5) \
     ORDER BY starts_at, id LIMIT $4";

/// `$1` asset: takes its row's lock (PostgreSQL) or the database's write lock (SQLite), so
/// that the overlap check and the writes of one batch of production counts are not
/// interleaved with another's; answers its tenant (no row: no such asset).
pub(crate) const LOCK_ASSET: &str =
    "UPDATE assets SET updated_at = updated_at WHERE id = $1 RETURNING tenant_id";

/// `$1` asset, `$2` start, `$3` end: a stored count of another start overlapping the period,
/// which starts within it or is the last before it and reaches into it (the only one before
/// an instant that can reach past it, as an asset's counts do not overlap): index probes only,
/// however long the asset's history.
pub(crate) const PRODUCTION_OVERLAP: &str = concat!(
    "SELECT starts_at, ends_at FROM production_counts \
     WHERE asset_id = $1 AND starts_at > $2 AND starts_at < $3 \
     UNION ALL SELECT starts_at, ends_at FROM production_counts \
     WHERE asset_id = $1 AND ends_at > $2 AND starts_at = ",
    "(SELECT MAX(q.starts_at) FROM production_counts q WHERE q.asset_id = $1 AND q.starts_at < $2)",
    " LIMIT 1"
);

/// `$1` asset, `$2` start: who recorded the count stored for that start.
pub(crate) const PRODUCTION_RECORDED_BY: &str =
    "SELECT recorded_by FROM production_counts WHERE asset_id = $1 AND starts_at = $2";

/// `$1` asset, `$2` tenant, `$3` start, `$4` end, `$5` good, `$6` rejected, `$7` by, `$8` at,
/// `$9` ideal cycle time or NULL.
pub(crate) const UPSERT_PRODUCTION: &str = "INSERT INTO production_counts \
     (asset_id, tenant_id, starts_at, ends_at, good, rejected, recorded_by, recorded_at, \
     ideal_cycle_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (asset_id, starts_at) DO UPDATE SET ends_at = excluded.ends_at, \
     good = excluded.good, rejected = excluded.rejected, recorded_by = excluded.recorded_by, \
     recorded_at = excluded.recorded_at, ideal_cycle_seconds = excluded.ideal_cycle_seconds";

/// The columns of a production count `p` that `ProductionRow` reads, in every query that
/// selects whole counts.
macro_rules! production_columns {
    () => {
        "p.asset_id, p.starts_at, p.ends_at, p.good, p.rejected, p.ideal_cycle_seconds, \
         p.recorded_by, p.recorded_at"
    };
}

/// `$1` asset, `$2` from, `$3` to, `$4` limit: the counts overlapping `[$2, $3)`, newest first:
/// those starting within it, and the last one before it if it reaches into it.
pub(crate) const LIST_PRODUCTION: &str = concat!(
    "SELECT ",
    production_columns!(),
    " FROM production_counts p WHERE p.asset_id = $1 AND p.starts_at >= $2 AND p.starts_at < $3 \
     UNION ALL SELECT ",
    production_columns!(),
    " FROM production_counts p WHERE p.asset_id = $1 AND p.ends_at > $2 AND p.starts_at = \
     (SELECT MAX(q.starts_at) FROM production_counts q WHERE q.asset_id = $1 AND q.starts_at < $2) \
     ORDER BY starts_at DESC LIMIT $4"
);

/// `$1` asset, `$2` from, `$3` to: the counts starting within `[$2, $3)`.
pub(crate) const DELETE_PRODUCTION: &str =
    "DELETE FROM production_counts WHERE asset_id = $1 AND starts_at >= $2 AND starts_at < $3";

/// (Both read the periods first, each one's counts by an index range: `CROSS JOIN` keeps that
/// order in SQLite, whose planner would otherwise scan the counts and look every period up;
/// PostgreSQL plans it as any inner join.)
///
/// Which counts [`production_within_sql`] and [`production_across_sql`] read: `$1` the
/// tenant's, `$2` of one asset (its primary key's range) or NULL: all (the tenant's index).
pub(crate) fn production_scope(one_asset: bool) -> &'static str {
    if one_asset {
        "p.asset_id = $2 AND p.tenant_id = $1"
    } else {
        "p.tenant_id = $1 AND $2 IS NULL"
    }
}

/// `$1`, `$2` the tenant and asset ([`production_scope`]), then a VALUES list `(start, end, group)`
/// of periods: per asset and group, the sums of the counts lying within a period of the group
/// (found by their start: an index range): units, and of the counts stating an ideal cycle
/// time, their ideal time and their length in seconds (`seconds`: the dialect's length of
/// count `p`, [`COUNT_SECONDS_POSTGRES`] or [`COUNT_SECONDS_SQLITE`]). The counts crossing a
/// period's end are read by [`production_across_sql`] instead.
pub(crate) fn production_within_sql(one_asset: bool, seconds: &str, periods: &str) -> String {
    format!(
        "SELECT p.asset_id, i.column3 AS grp, CAST(SUM(p.good) AS BIGINT) AS good, \
         CAST(SUM(p.rejected) AS BIGINT) AS rejected, \
         CAST(COALESCE(SUM(p.ideal_cycle_seconds * (p.good + p.rejected)), 0) \
         AS DOUBLE PRECISION) AS ideal, \
         CAST(COALESCE(SUM(CASE WHEN p.ideal_cycle_seconds IS NOT NULL THEN {seconds} END), 0) \
         AS DOUBLE PRECISION) AS timed \
         FROM (VALUES {periods}) AS i CROSS JOIN production_counts p \
         WHERE {} AND p.starts_at >= i.column1 AND p.starts_at < i.column2 \
         AND p.ends_at <= i.column2 GROUP BY p.asset_id, i.column3",
        production_scope(one_asset)
    )
}

/// A production count's (`p`) length in seconds, in PostgreSQL (`timestamptz` columns).
pub(crate) const COUNT_SECONDS_POSTGRES: &str = "EXTRACT(EPOCH FROM p.ends_at - p.starts_at)";

/// A production count's (`p`) length in seconds, in SQLite (Unix millisecond columns).
pub(crate) const COUNT_SECONDS_SQLITE: &str = "(p.ends_at - p.starts_at) / 1000.0";

/// `$1`, `$2` the tenant and an asset or NULL, `$3` the first period's start: per asset (of
/// the tenant, or the one), its last count starting before `$3` if it reaches past it (one
/// index probe per asset, however long its history).
pub(crate) fn production_before_sql(one_asset: bool) -> String {
    format!(
        "SELECT {} FROM assets a JOIN production_counts p ON p.asset_id = a.id \
         WHERE {} AND p.ends_at > $3 AND p.starts_at = (SELECT MAX(q.starts_at) \
         FROM production_counts q WHERE q.asset_id = a.id AND q.starts_at < $3)",
        production_columns!(),
        if one_asset {
            "a.id = $2 AND a.tenant_id = $1"
        } else {
            "a.tenant_id = $1 AND $2 IS NULL"
        }
    )
}

/// `$1`, `$2` the tenant and asset ([`production_scope`]), then a VALUES list `(start, end)` of
/// periods: the counts starting within one and ending after it (at most one per asset and
/// period, as an asset's counts do not overlap; found by their start: an index range).
pub(crate) fn production_across_sql(one_asset: bool, periods: &str) -> String {
    format!(
        "SELECT {} FROM (VALUES {periods}) AS x CROSS JOIN production_counts p \
         WHERE {} AND p.starts_at >= x.column1 AND p.starts_at < x.column2 \
         AND p.ends_at > x.column2",
        production_columns!(),
        production_scope(one_asset)
    )
}

/// `$1` the tenant, then a VALUES list `(asset, start, end, span)` of spans: each span's
/// asset's counts overlapping it, with the span's number: those starting within it (an index
/// range) and the last one before it if it reaches into it (an index probe).
pub(crate) fn production_overlapping_sql(spans: &str) -> String {
    format!(
        "SELECT x.column4 AS span, {columns} \
         FROM (VALUES {spans}) AS x CROSS JOIN production_counts p \
         WHERE p.asset_id = x.column1 AND p.tenant_id = $1 \
         AND p.starts_at >= x.column2 AND p.starts_at < x.column3 \
         UNION ALL SELECT x.column4 AS span, {columns} \
         FROM (VALUES {spans}) AS x CROSS JOIN production_counts p \
         WHERE p.asset_id = x.column1 AND p.tenant_id = $1 AND p.ends_at > x.column2 \
         AND p.starts_at = (SELECT MAX(q.starts_at) FROM production_counts q \
         WHERE q.asset_id = x.column1 AND q.starts_at < x.column2)",
        columns = production_columns!()
    )
}

/// `$1` tenant, `$2` id.
pub(crate) const DELETE_TIME_OFF: &str = "DELETE FROM time_off WHERE tenant_id = $1 AND id = $2";

/// `$1` id, `$2` tenant, `$3` asset or NULL (the whole plant), `$4` start, `$5` end, `$6`
/// reason, `$7` by, `$8` at, `$9` its series or NULL: a planned stop, unless its id is recorded (an asset is checked
/// to be the tenant's first: `ASSET_TENANT`).
pub(crate) const INSERT_PLANNED_STOP: &str = "INSERT INTO planned_stops \
     (id, tenant_id, asset_id, starts_at, ends_at, reason, created_by, created_at, series_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";

/// `$1` asset: its tenant (no row: no such asset).
pub(crate) const ASSET_TENANT: &str = "SELECT tenant_id FROM assets WHERE id = $1";

/// `$1` tenant, `$2` from, `$3` to, `$4` limit, `$5` an asset or NULL: the planned stops
/// overlapping `[$2, $3)` (of the whole plant and, with `$5`, that asset's only), by start.
pub(crate) const LIST_PLANNED_STOPS: &str = "SELECT id, tenant_id, asset_id, starts_at, \
     ends_at, reason, created_by, created_at, series_id FROM planned_stops \
     WHERE tenant_id = $1 AND ends_at > $2 AND starts_at < $3 \
     AND ($5 IS NULL OR asset_id IS NULL OR asset_id = $5) \
     ORDER BY starts_at, id LIMIT $4";

/// `$1` tenant, `$2` id.
pub(crate) const DELETE_PLANNED_STOP: &str =
    "DELETE FROM planned_stops WHERE tenant_id = $1 AND id = $2";

/// `$1` tenant, `$2` series, `$3` from or NULL: the stops of the series starting at or after
/// `$3` (all of them).
pub(crate) const DELETE_PLANNED_STOP_SERIES: &str = "DELETE FROM planned_stops \
     WHERE tenant_id = $1 AND series_id = $2 AND ($3 IS NULL OR starts_at >= $3)";

/// `$1` tenant, `$2` an asset or NULL (the whole plant's), `$3` from, `$4` to: the stops of
/// that asset (or of the whole plant) starting in `[$3, $4)`.
pub(crate) const DELETE_PLANNED_STOPS_STARTING: &str = "DELETE FROM planned_stops \
     WHERE tenant_id = $1 AND (asset_id = $2 OR ($2 IS NULL AND asset_id IS NULL)) \
     AND starts_at >= $3 AND starts_at < $4";

/// `$1` tenant, `$2` part number, `$3` description, `$4` location, `$5` on hand (a new part
/// only), `$6` reorder point, `$7` on order, `$8` expected, `$9` now; for a known part, `$10`
/// keeps what is on order and `$11` when it is expected as stored; nothing on order is then
/// expected at no time (a new part's: the caller's to say).
pub(crate) const UPSERT_SPARE_PART: &str = "INSERT INTO spare_parts \
     (tenant_id, part_number, description, location, on_hand, reorder_point, on_order, \
     expected_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (tenant_id, part_number) DO UPDATE SET description = excluded.description, \
     location = excluded.location, reorder_point = excluded.reorder_point, \
     on_order = CASE WHEN $10 THEN spare_parts.on_order ELSE excluded.on_order END, \
     expected_at = CASE \
       WHEN (CASE WHEN $10 THEN spare_parts.on_order ELSE excluded.on_order END) = 0 THEN NULL \
       WHEN $11 THEN spare_parts.expected_at ELSE excluded.expected_at END, \
     updated_at = excluded.updated_at";

/// As [`UPSERT_SPARE_PART`] for a part not kept yet; a kept one is left as it is.
pub(crate) const ADD_SPARE_PART: &str = "INSERT INTO spare_parts \
     (tenant_id, part_number, description, location, on_hand, reorder_point, on_order, \
     expected_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (tenant_id, part_number) DO NOTHING";

/// `$1` tenant, `$2` part number.
pub(crate) const GET_SPARE_PART: &str = "SELECT tenant_id, part_number, description, location, \
     on_hand, reorder_point, on_order, expected_at, updated_at FROM spare_parts \
     WHERE tenant_id = $1 AND part_number = $2";

/// `$1` tenant.
pub(crate) const LIST_SPARE_PARTS: &str = "SELECT tenant_id, part_number, description, \
     location, on_hand, reorder_point, on_order, expected_at, updated_at FROM spare_parts \
     WHERE tenant_id = $1 ORDER BY part_number";

pub(crate) const DELETE_SPARE_PART: &str =
    "DELETE FROM spare_parts WHERE tenant_id = $1 AND part_number = $2";

/// A delivery: `$3` received, `$4` now; answers the count after it (none when there is no
/// such part, or the count would exceed [`mantis_domain::MAX_PART_QUANTITY`]).
pub(crate) const RECEIVE_SPARE_PART: &str = "UPDATE spare_parts SET on_hand = on_hand + $3, \
     on_order = CASE WHEN on_order > $3 THEN on_order - $3 ELSE 0 END, \
     expected_at = CASE WHEN on_order > $3 THEN expected_at ELSE NULL END, updated_at = $4 \
     WHERE tenant_id = $1 AND part_number = $2 AND on_hand + $3 <= 1000000 RETURNING on_hand";

/// The count on record: `$1` tenant, `$2` part number.
pub(crate) const SPARE_PART_ON_HAND: &str =
    "SELECT on_hand FROM spare_parts WHERE tenant_id = $1 AND part_number = $2";

/// Compare and set of the count: `$3` new, `$4` now, `$5` the count it must still be.
pub(crate) const SET_SPARE_PART_ON_HAND: &str = "UPDATE spare_parts SET on_hand = $3, \
     updated_at = $4 WHERE tenant_id = $1 AND part_number = $2 AND on_hand = $5";

pub(crate) const INSERT_STOCK_MOVEMENT: &str = "INSERT INTO stock_movements \
     (id, tenant_id, part_number, kind, delta, on_hand, at, work_order_id, by_user, note) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING";

/// `$1` tenant, `$2` part number, `$3` limit; newest first (in the order recorded).
pub(crate) const LIST_STOCK_MOVEMENTS: &str = "SELECT part_number, kind, delta, on_hand, at, \
     work_order_id, by_user, note FROM stock_movements WHERE tenant_id = $1 AND part_number = $2 \
     ORDER BY seq DESC LIMIT $3";

/// The parts lists of a tenant's active work orders.
pub(crate) const ACTIVE_PARTS: &str = "SELECT parts FROM work_orders WHERE tenant_id = $1 \
     AND status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS')";

/// A work order's tenant and parts list.
pub(crate) const WORK_ORDER_PARTS: &str = "SELECT tenant_id, parts FROM work_orders WHERE id = $1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_values_number_every_placeholder_once_and_reuse_the_asset_for_the_tenant() {
        assert_eq!(
            reading_values(2),
            "($2, $3, COALESCE((SELECT tenant_id FROM assets WHERE id = $4), $1), $4, $5, $6, \
             $7, $8, $9, $10, $11)"
        );
        assert_eq!(READING_VALUES_WIDTH, 10);
    }
}
