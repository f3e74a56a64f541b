//! The REST API.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use mantis_cache::Cache;
use mantis_domain::FeatureVector;
use mantis_domain::{
    Asset, AssetId, Criticality, MaintenanceEvent, MaintenanceEventId, MaintenanceEventKind,
    Sensor, SensorId, SensorType, TenantId, WorkOrderId, WorkOrderStatus, deterministic_uuid,
};
use mantis_runtime::Problem;
use mantis_store::{Store, WorkOrderFilter};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
}

type Db = ApiState;
type ApiResult<T> = Result<T, Problem>;

pub(crate) fn router(store: Arc<dyn Store>, cache: Arc<dyn Cache>) -> Router {
    Router::new()
        .route("/api/v1/assets", get(list_assets).post(create_asset))
        .route("/api/v1/assets/{id}", get(get_asset))
        .route("/api/v1/alerts", get(list_alerts))
        .route(
            "/api/v1/assets/{id}/events",
            get(list_events).post(record_event),
        )
        .route("/api/v1/work-orders", get(list_work_orders))
        .route(
            "/api/v1/work-orders/{id}/complete",
            post(complete_work_order),
        )
        .route("/api/v1/features/{asset_id}", get(latest_features))
        .fallback(not_found)
        .with_state(ApiState { store, cache })
}

async fn not_found() -> Problem {
    Problem::not_found("no such endpoint")
}

fn limit(params: &HashMap<String, String>) -> ApiResult<u32> {
    match params.get("limit") {
        None => Ok(100),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(
                Problem::bad_request("limit must be an integer within 1..=1000")
                    .with_field("/limit", format!("`{s}` is not within 1..=1000")),
            ),
        },
    }
}

fn asset_param(params: &HashMap<String, String>) -> ApiResult<Option<AssetId>> {
    params
        .get("assetId")
        .map(|s| {
            AssetId::parse(s).map_err(|_| {
                Problem::bad_request("assetId must be a UUID")
                    .with_field("/assetId", format!("`{s}` is not a UUID"))
            })
        })
        .transpose()
}

async fn list_assets(State(db): State<Db>) -> ApiResult<Json<Vec<Asset>>> {
    Ok(Json(db.store.list_assets(None).await?))
}

async fn get_asset(State(db): State<Db>, Path(id): Path<String>) -> ApiResult<Response> {
    let id =
        AssetId::parse(&id).map_err(|_| Problem::bad_request(format!("`{id}` is not a UUID")))?;
    let Some(asset) = db.store.get_asset(id).await? else {
        return Err(Problem::not_found(format!("asset {id} does not exist")));
    };
    let sensors = db.store.list_sensors(Some(id)).await?;
    Ok(Json(serde_json::json!({"asset": asset, "sensors": sensors})).into_response())
}

/// Body of `POST /api/v1/assets`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewAsset {
    id: Option<AssetId>,
    code: String,
    name: String,
    asset_type: String,
    #[serde(default)]
    location: String,
    criticality: String,
    #[serde(default)]
    sensors: Vec<NewSensor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewSensor {
    id: Option<SensorId>,
    code: String,
    sensor_type: String,
    unit: String,
    min_value: f64,
    max_value: f64,
    sampling_rate_hz: f64,
}

async fn create_asset(State(db): State<Db>, body: axum::body::Bytes) -> ApiResult<Response> {
    let new: NewAsset = mantis_runtime::parse_json(&body)?;
    let mut problem = Problem::bad_request("invalid asset");
    let criticality = Criticality::parse(&new.criticality)
        .map_err(|e| problem.clone().with_field("/criticality", e.to_string()));
    if new.code.trim().is_empty() {
        problem = problem.with_field("/code", "must not be empty");
    }
    let criticality = match criticality {
        Ok(c) => Some(c),
        Err(p) => {
            problem = p;
            None
        }
    };
    let asset_id = new.id.unwrap_or_else(AssetId::new_random);
    let mut sensors = Vec::new();
    for (i, s) in new.sensors.iter().enumerate() {
        match SensorType::parse(&s.sensor_type) {
            Ok(sensor_type) => sensors.push(Sensor {
                id: s.id.unwrap_or_else(SensorId::new_random),
                asset_id,
                code: s.code.trim().to_owned(),
                sensor_type,
                unit: s.unit.clone(),
                min_value: s.min_value,
                max_value: s.max_value,
                sampling_rate_hz: s.sampling_rate_hz,
            }),
            Err(e) => {
                problem = problem.with_field(format!("/sensors/{i}/sensorType"), e.to_string())
            }
        }
        if !(s.min_value.is_finite() && s.max_value.is_finite() && s.min_value < s.max_value) {
            problem = problem.with_field(
                format!("/sensors/{i}/maxValue"),
                "minValue must be below maxValue",
            );
        }
        if !(s.sampling_rate_hz.is_finite() && s.sampling_rate_hz > 0.0) {
            problem =
                problem.with_field(format!("/sensors/{i}/samplingRateHz"), "must be positive");
        }
        if s.code.trim().is_empty() {
            problem = problem.with_field(format!("/sensors/{i}/code"), "must not be empty");
        }
    }
    let (Some(criticality), true) = (criticality, problem.errors.is_empty()) else {
        return Err(problem);
    };
    let asset = Asset {
        id: asset_id,
        tenant_id: TenantId::DEFAULT,
        code: new.code.trim().to_owned(),
        name: new.name,
        asset_type: new.asset_type,
        location: new.location,
        criticality,
    };
    db.store.upsert_asset(&asset).await?;
    for s in &sensors {
        db.store.upsert_sensor(s).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"asset": asset, "sensors": sensors})),
    )
        .into_response())
}

async fn list_alerts(
    State(db): State<Db>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let limit = limit(&params)?;
    Ok(Json(db.store.list_alerts(limit).await?).into_response())
}

async fn list_work_orders(
    State(db): State<Db>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let statuses = match params.get("status") {
        None => Vec::new(),
        Some(s) => s
            .split(',')
            .map(WorkOrderStatus::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Problem::bad_request(e.to_string()).with_field("/status", e.to_string())
            })?,
    };
    let filter = WorkOrderFilter {
        asset_id: asset_param(&params)?,
        statuses,
        limit: Some(limit(&params)?),
    };
    Ok(Json(db.store.list_work_orders(&filter).await?).into_response())
}

fn event_kind(raw: &str, field: &str) -> ApiResult<MaintenanceEventKind> {
    MaintenanceEventKind::parse(raw)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field(field, e.to_string()))
}

fn not_in_future(at: DateTime<Utc>, field: &str) -> ApiResult<()> {
    if at > Utc::now() + chrono::Duration::minutes(5) {
        return Err(
            Problem::bad_request("a maintenance event cannot be in the future")
                .with_field(field, format!("{at} is in the future")),
        );
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewEvent {
    id: Option<MaintenanceEventId>,
    kind: String,
    occurred_at: DateTime<Utc>,
    work_order_id: Option<WorkOrderId>,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/assets/{id}/events`: records a failure, replacement, repair or inspection
/// (e.g. history from a CMMS). Failures and replacements end a run to failure: what the RUL
/// models learn from. Idempotent when the client gives the id.
async fn record_event(
    State(db): State<Db>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let asset =
        AssetId::parse(&id).map_err(|_| Problem::bad_request(format!("`{id}` is not a UUID")))?;
    let new: NewEvent = mantis_runtime::parse_json(&body)?;
    let kind = event_kind(&new.kind, "/kind")?;
    not_in_future(new.occurred_at, "/occurredAt")?;
    if db.store.get_asset(asset).await?.is_none() {
        return Err(Problem::not_found(format!("asset {asset} does not exist")));
    }
    if let Some(wo) = new.work_order_id {
        match db.store.get_work_order(wo).await? {
            Some(order) if order.asset_id == asset => {}
            Some(order) => {
                return Err(Problem::bad_request(format!(
                    "work order {} is for another asset",
                    order.code
                ))
                .with_field("/workOrderId", "not a work order of this asset"));
            }
            None => {
                return Err(
                    Problem::bad_request(format!("work order {wo} does not exist"))
                        .with_field("/workOrderId", "unknown work order"),
                );
            }
        }
    }
    let event = MaintenanceEvent {
        id: new.id.unwrap_or_else(MaintenanceEventId::new_random),
        asset_id: asset,
        kind,
        occurred_at: new.occurred_at,
        work_order_id: new.work_order_id,
        note: new.note,
    };
    let created = db.store.insert_maintenance_event(&event).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(event)).into_response())
}

/// `GET /api/v1/assets/{id}/events`: the asset's maintenance events, newest first.
async fn list_events(
    State(db): State<Db>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let asset =
        AssetId::parse(&id).map_err(|_| Problem::bad_request(format!("`{id}` is not a UUID")))?;
    let limit = limit(&params)?;
    Ok(Json(db.store.list_maintenance_events(Some(asset), limit).await?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Completion {
    /// FAILURE, REPLACEMENT, REPAIR, INSPECTION; none: nothing to record.
    outcome: Option<String>,
    /// When the failure or work happened; default now.
    occurred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/work-orders/{id}/complete`: completes an active work order and records what
/// was found as a maintenance event (one per work order, so a retried call records nothing
/// twice).
async fn complete_work_order(
    State(db): State<Db>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let id = WorkOrderId::parse(&id)
        .map_err(|_| Problem::bad_request(format!("`{id}` is not a UUID")))?;
    let completion: Completion = if body.is_empty() {
        Completion {
            outcome: None,
            occurred_at: None,
            note: String::new(),
        }
    } else {
        mantis_runtime::parse_json(&body)?
    };
    let kind = completion
        .outcome
        .as_deref()
        .map(|o| event_kind(o, "/outcome"))
        .transpose()?;
    let occurred_at = completion.occurred_at.unwrap_or_else(Utc::now);
    not_in_future(occurred_at, "/occurredAt")?;
    let Some(order) = db.store.get_work_order(id).await? else {
        return Err(Problem::not_found(format!(
            "work order {id} does not exist"
        )));
    };
    if order.status == WorkOrderStatus::Cancelled {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("work order {} was cancelled", order.code),
        ));
    }
    if order.status != WorkOrderStatus::Completed {
        db.store
            .set_work_order_status(id, WorkOrderStatus::Completed)
            .await?;
    }
    let event = match kind {
        Some(kind) => {
            let event = MaintenanceEvent {
                id: MaintenanceEventId(deterministic_uuid("maintenance-event", &[&id.to_string()])),
                asset_id: order.asset_id,
                kind,
                occurred_at,
                work_order_id: Some(id),
                note: completion.note,
            };
            db.store.insert_maintenance_event(&event).await?;
            Some(event)
        }
        None => None,
    };
    let order = db.store.get_work_order(id).await?;
    Ok(Json(serde_json::json!({"workOrder": order, "event": event})).into_response())
}

/// `GET /api/v1/features/{asset_id}`: the latest feature vector of each sensor of the asset,
/// from the online cache, falling back to the store for sensors the cache does not hold.
async fn latest_features(State(db): State<Db>, Path(id): Path<String>) -> ApiResult<Response> {
    let id =
        AssetId::parse(&id).map_err(|_| Problem::bad_request(format!("`{id}` is not a UUID")))?;
    if db.store.get_asset(id).await?.is_none() {
        return Err(Problem::not_found(format!("asset {id} does not exist")));
    }
    let sensors = db.store.list_sensors(Some(id)).await?;
    let mut vectors = Vec::with_capacity(sensors.len());
    let mut missing = Vec::new();
    for sensor in &sensors {
        let key = mantis_cache::keys::latest_features(id, sensor.id);
        let cached = match db.cache.get(&key).await {
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<FeatureVector>(&b).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "feature cache unavailable; reading the store");
                None
            }
        };
        match cached {
            Some(v) => vectors.push((v, "cache")),
            None => missing.push(sensor.id),
        }
    }
    if !missing.is_empty() {
        for v in db.store.latest_features(id).await? {
            if missing.contains(&v.sensor_id) {
                vectors.push((v, "store"));
            }
        }
    }
    let body: Vec<serde_json::Value> = vectors
        .into_iter()
        .map(|(v, source)| serde_json::json!({"source": source, "vector": v}))
        .collect();
    Ok(Json(serde_json::json!({"assetId": id, "features": body})).into_response())
}
