//! The plant: assets and sensors, their health at a glance, time series (downsampled on the
//! server), anomaly scores and explanations, RUL history, maintenance events.

use crate::api::{
    ApiResult, ApiState, Params, limit, list_response, parse_id, tenant_asset, tenant_assets,
    tenant_sensor, time_range, wants_csv,
};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, Utc};
use mantis_domain::{
    Asset, AssetId, Criticality, FeatureVector, MaintenanceEvent, MaintenanceEventId,
    MaintenanceEventKind, Sensor, SensorId, SensorType, WorkOrderId,
};
use mantis_runtime::Problem;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;

/// An asset as the API shows it: the stored asset and its production line (its location).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssetView {
    #[serde(flatten)]
    asset: Asset,
    line: String,
}

impl From<Asset> for AssetView {
    fn from(asset: Asset) -> Self {
        let line = asset.location.clone();
        Self { asset, line }
    }
}

/// An asset with its sensors.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssetDetail {
    asset: AssetView,
    sensors: Vec<Sensor>,
}

/// `GET /api/v1/assets`: the tenant's assets.
#[utoipa::path(get, path = "/api/v1/assets", tag = "plant", params(crate::api::FormatQuery),
    responses((status = 200, body = Vec<AssetView>)))]
pub(crate) async fn list_assets(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let assets: Vec<AssetView> = tenant_assets(s.store.as_ref(), &who)
        .await?
        .into_iter()
        .map(AssetView::from)
        .collect();
    list_response(&assets, wants_csv(&headers, &params)?, "assets")
}

/// `GET /api/v1/assets/{id}`: one asset with its sensors.
#[utoipa::path(get, path = "/api/v1/assets/{id}", tag = "plant",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = AssetDetail)))]
pub(crate) async fn get_asset(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: AssetId = parse_id(&id, "the asset id", "/id")?;
    let asset = tenant_asset(s.store.as_ref(), &who, id).await?;
    let sensors = s.store.list_sensors(Some(id)).await?;
    Ok(
        Json(serde_json::json!({"asset": AssetView::from(asset), "sensors": sensors}))
            .into_response(),
    )
}

/// Body of `POST /api/v1/assets`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewAsset {
    #[schema(value_type = Option<String>, format = Uuid)]
    id: Option<AssetId>,
    #[schema(min_length = 1, pattern = r"\S")]
    code: String,
    name: String,
    /// Names the type's models: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )]
    asset_type: String,
    #[serde(default)]
    location: String,
    #[schema(value_type = Criticality)]
    criticality: String,
    #[serde(default)]
    sensors: Vec<NewSensor>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewSensor {
    #[schema(value_type = Option<String>, format = Uuid)]
    id: Option<SensorId>,
    #[schema(min_length = 1, pattern = r"\S")]
    code: String,
    #[schema(value_type = SensorType)]
    sensor_type: String,
    unit: String,
    /// Below `maxValue`.
    min_value: f64,
    max_value: f64,
    #[schema(exclusive_minimum = 0.0)]
    sampling_rate_hz: f64,
}

/// `POST /api/v1/assets`: registers (or replaces) an asset of the caller's tenant with its
/// sensors.
#[utoipa::path(post, path = "/api/v1/assets", tag = "plant", request_body = NewAsset,
    responses((status = 201, body = AssetDetail)))]
pub(crate) async fn create_asset(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewAsset = mantis_runtime::parse_json_object(&body)?;
    let mut problem = Problem::bad_request("invalid asset");
    let criticality = match Criticality::parse(&new.criticality) {
        Ok(c) => Some(c),
        Err(e) => {
            problem = problem.with_field("/criticality", e.to_string());
            None
        }
    };
    if new.code.trim().is_empty() {
        problem = problem.with_field("/code", "must not be empty");
    }
    if let Err(e) = Asset::check_type(&new.asset_type) {
        problem = problem.with_field("/assetType", e.to_string());
    }
    let asset_id = new.id.unwrap_or_else(AssetId::new_random);
    if let Some(existing) = s.store.get_asset(asset_id).await?
        && existing.tenant_id != who.tenant_id
    {
        // Another tenant's asset: as if the id were taken by nobody the caller can see.
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            "this asset id is not available",
        ));
    }
    let mut sensors = Vec::new();
    for (i, sn) in new.sensors.iter().enumerate() {
        match SensorType::parse(&sn.sensor_type) {
            Ok(sensor_type) => sensors.push(Sensor {
                id: sn.id.unwrap_or_else(SensorId::new_random),
                asset_id,
                code: sn.code.trim().to_owned(),
                sensor_type,
                unit: sn.unit.clone(),
                min_value: sn.min_value,
                max_value: sn.max_value,
                sampling_rate_hz: sn.sampling_rate_hz,
            }),
            Err(e) => {
                problem = problem.with_field(format!("/sensors/{i}/sensorType"), e.to_string())
            }
        }
        if !(sn.min_value.is_finite() && sn.max_value.is_finite() && sn.min_value < sn.max_value) {
            problem = problem.with_field(
                format!("/sensors/{i}/maxValue"),
                "minValue must be below maxValue",
            );
        }
        if !(sn.sampling_rate_hz.is_finite() && sn.sampling_rate_hz > 0.0) {
            problem =
                problem.with_field(format!("/sensors/{i}/samplingRateHz"), "must be positive");
        }
        if sn.code.trim().is_empty() {
            problem = problem.with_field(format!("/sensors/{i}/code"), "must not be empty");
        }
    }
    let (mut codes, mut ids) = (HashSet::new(), HashSet::new());
    for (i, sensor) in sensors.iter().enumerate() {
        if !sensor.code.is_empty() && !codes.insert(sensor.code.as_str()) {
            problem = problem.with_field(
                format!("/sensors/{i}/code"),
                "another sensor of the request has this code",
            );
        }
        // Two sensors under one id would be stored as one (the last), answered as two.
        if !ids.insert(sensor.id) {
            problem = problem.with_field(
                format!("/sensors/{i}/id"),
                "another sensor of the request has this id",
            );
        }
    }
    let (Some(criticality), true) = (criticality, problem.errors.is_empty()) else {
        return Err(problem);
    };
    // Codes are unique within a tenant: a clash is answered before anything is written, so a
    // refused request leaves no half-registered asset behind (the asset stored, some sensors
    // not) for a corrected retry to run into.
    let code = new.code.trim();
    let tenant_assets = s.store.list_assets(Some(who.tenant_id)).await?;
    if tenant_assets
        .iter()
        .any(|a| a.id != asset_id && a.code == code)
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("another asset has the code `{code}`"),
        )
        .with_field("/code", "taken by another asset"));
    }
    let ours: HashSet<AssetId> = tenant_assets.iter().map(|a| a.id).collect();
    let existing = s.store.list_sensors(None).await?;
    // A sensor id already in use must be one of this tenant's: a sensor never moves to
    // another tenant (its readings would follow it).
    if let Some(foreign) = sensors.iter().find(|sensor| {
        existing
            .iter()
            .any(|x| x.id == sensor.id && !ours.contains(&x.asset_id))
    }) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("sensor id {} is not available", foreign.id),
        ));
    }
    let taken: HashMap<&str, SensorId> = existing
        .iter()
        .filter(|x| ours.contains(&x.asset_id))
        .map(|x| (x.code.as_str(), x.id))
        .collect();
    let mut clash = Problem::new(
        StatusCode::CONFLICT,
        "Conflict",
        "sensor codes taken by other sensors",
    );
    for (i, sensor) in sensors.iter().enumerate() {
        if taken
            .get(sensor.code.as_str())
            .is_some_and(|id| *id != sensor.id)
        {
            clash = clash.with_field(format!("/sensors/{i}/code"), "taken by another sensor");
        }
    }
    if !clash.errors.is_empty() {
        return Err(clash);
    }
    let asset = Asset {
        id: asset_id,
        tenant_id: who.tenant_id,
        code: code.to_owned(),
        name: new.name,
        asset_type: new.asset_type.trim().to_owned(),
        location: new.location,
        criticality,
    };
    // One transaction: a failure part-way (a code taken by a concurrent request, the database
    // lost) leaves no asset without its sensors behind.
    s.store.register_asset(&asset, &sensors).await?;
    Ok((
        StatusCode::CREATED,
        Json(AssetDetail {
            asset: asset.into(),
            sensors,
        }),
    )
        .into_response())
}

/// Health of an asset for the overview tiles.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssetHealth {
    asset: AssetView,
    /// OK, WARNING, CRITICAL or UNKNOWN.
    status: &'static str,
    anomaly: Option<AnomalyHealth>,
    rul: Option<RulHealth>,
    open_alerts: usize,
    open_work_orders: usize,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_seen: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnomalyHealth {
    score: f64,
    threshold: f64,
    #[schema(value_type = String, format = DateTime)]
    window_start: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RulHealth {
    cycles: f64,
    lower: f64,
    upper: f64,
    threshold: f64,
    #[schema(value_type = String, format = DateTime)]
    predicted_at: DateTime<Utc>,
}

/// Nothing heard for this long: the asset's state is unknown.
const SILENT_AFTER: Duration = Duration::minutes(5);

/// A sensor whose newest score is this much older than its asset's newest is no longer scored
/// (removed, silent): its last verdict is left out of the asset's tile.
const STALE_SCORE: Duration = Duration::minutes(10);

/// `GET /api/v1/overview`: every asset of the tenant with its health.
#[utoipa::path(get, path = "/api/v1/overview", tag = "plant", params(crate::api::FormatQuery),
    responses((status = 200, body = Vec<AssetHealth>)))]
pub(crate) async fn overview(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let store = s.store.as_ref();
    let assets = tenant_assets(store, &who).await?;
    // Four queries for the whole tenant, whatever the number of assets (and of open alerts).
    let open_work: HashMap<AssetId, mantis_store::OpenWork> = store
        .open_work(who.tenant_id)
        .await?
        .into_iter()
        .map(|w| (w.asset_id, w))
        .collect();
    let scores = store.newest_anomaly_scores(who.tenant_id).await?;
    let mut newest_score_at: HashMap<AssetId, DateTime<Utc>> = HashMap::new();
    for score in &scores {
        let at = newest_score_at
            .entry(score.asset_id)
            .or_insert(score.window_start);
        *at = (*at).max(score.window_start);
    }
    let mut most_alarming: HashMap<AssetId, mantis_domain::AnomalyScore> = HashMap::new();
    for score in scores {
        // The newest score of each sensor still scored; the asset shows its most alarming one.
        if newest_score_at
            .get(&score.asset_id)
            .is_some_and(|newest| *newest - score.window_start > STALE_SCORE)
        {
            continue;
        }
        match most_alarming.get(&score.asset_id) {
            Some(held) if ratio(held) >= ratio(&score) => {}
            _ => {
                most_alarming.insert(score.asset_id, score);
            }
        }
    }
    let mut newest_rul: HashMap<AssetId, mantis_domain::RulPrediction> = store
        .newest_rul_predictions(who.tenant_id)
        .await?
        .into_iter()
        .map(|p| (p.asset_id, p))
        .collect();
    let last_readings: HashMap<AssetId, DateTime<Utc>> = store
        .last_readings_at(who.tenant_id)
        .await?
        .into_iter()
        .collect();
    let now = Utc::now();
    let mut tiles = Vec::with_capacity(assets.len());
    for asset in assets {
        let anomaly = most_alarming.remove(&asset.id).map(|sc| AnomalyHealth {
            score: sc.ensemble_score,
            threshold: sc.threshold,
            window_start: sc.window_start,
        });
        let rul_threshold = asset.criticality.default_rul_threshold_cycles();
        let rul = newest_rul.remove(&asset.id).map(|p| RulHealth {
            cycles: p.rul_cycles,
            lower: p.confidence_lower,
            upper: p.confidence_upper,
            threshold: rul_threshold,
            predicted_at: p.predicted_at,
        });
        let open = open_work.get(&asset.id).copied();
        let (open_alerts, critical_alerts, active_work_orders) = open.map_or((0, 0, 0), |w| {
            (w.open_alerts, w.critical_alerts, w.active_work_orders)
        });
        let last_seen = last_readings.get(&asset.id).copied();
        let status = if critical_alerts > 0 || rul.as_ref().is_some_and(|r| r.cycles < r.threshold)
        {
            "CRITICAL"
        } else if open_alerts > 0 || anomaly.as_ref().is_some_and(|a| a.score > a.threshold) {
            "WARNING"
        } else if last_seen.is_none_or(|t| now - t > SILENT_AFTER) {
            "UNKNOWN"
        } else {
            "OK"
        };
        tiles.push(AssetHealth {
            open_work_orders: usize::try_from(active_work_orders).unwrap_or(usize::MAX),
            open_alerts: usize::try_from(open_alerts).unwrap_or(usize::MAX),
            asset: asset.into(),
            status,
            anomaly,
            rul,
            last_seen,
        });
    }
    list_response(&tiles, wants_csv(&headers, &params)?, "overview")
}

fn ratio(score: &mantis_domain::AnomalyScore) -> f64 {
    if score.threshold > 0.0 {
        score.ensemble_score / score.threshold
    } else {
        score.ensemble_score
    }
}

/// Most buckets a readings query may ask for.
const MAX_POINTS: u32 = 5000;

/// One time bucket of readings.
#[derive(Serialize, ToSchema)]
pub(crate) struct Point {
    #[schema(value_type = String, format = DateTime)]
    t: DateTime<Utc>,
    min: Option<f64>,
    max: Option<f64>,
    avg: Option<f64>,
    n: u64,
}

/// Readings of a sensor, downsampled.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Readings {
    #[schema(value_type = String, format = Uuid)]
    sensor_id: SensorId,
    unit: String,
    #[schema(value_type = String, format = DateTime)]
    from: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    to: DateTime<Utc>,
    bucket_secs: f64,
    points: Vec<Point>,
}

/// Query of the readings endpoint.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct ReadingsQuery {
    /// Start; default one hour before `to`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Most buckets (default 600).
    #[param(minimum = 1, maximum = 5000)]
    points: Option<u32>,
    /// `csv` for a CSV download.
    #[param(inline)]
    format: Option<crate::api::Format>,
}

/// `GET /api/v1/sensors/{id}/readings?from&to&points`: min/max/mean per time bucket, never
/// more than `points` buckets.
#[utoipa::path(get, path = "/api/v1/sensors/{id}/readings", tag = "plant",
    params(("id" = String, Path, format = Uuid), ReadingsQuery),
    responses((status = 200, body = Readings)))]
pub(crate) async fn readings(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let id: SensorId = parse_id(&id, "the sensor id", "/id")?;
    let (from, to) = time_range(&params, Duration::hours(1))?;
    let points = match params.get("points") {
        None => 600,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=MAX_POINTS).contains(&n) => n,
            _ => {
                return Err(Problem::bad_request(format!(
                    "points must be an integer within 1..={MAX_POINTS}"
                ))
                .with_field("/points", format!("`{p}` is not within 1..={MAX_POINTS}")));
            }
        },
    };
    let sensor = tenant_sensor(s.store.as_ref(), &who, id).await?;
    let span_ms = (to - from).num_milliseconds();
    let bucket_ms = (span_ms + i64::from(points) - 1) / i64::from(points);
    let buckets = s
        .store
        .reading_buckets(id, from, to, bucket_ms.max(1))
        .await?;
    let finite = |v: f64| v.is_finite().then_some(v);
    let points: Vec<Point> = buckets
        .into_iter()
        .map(|b| Point {
            t: b.start,
            min: finite(b.min),
            max: finite(b.max),
            avg: finite(b.avg),
            n: b.count,
        })
        .collect();
    if wants_csv(&headers, &params)? {
        return list_response(&points, true, "readings");
    }
    Ok(Json(Readings {
        sensor_id: id,
        unit: sensor.unit,
        from,
        to,
        bucket_secs: bucket_ms as f64 / 1000.0,
        points,
    })
    .into_response())
}

/// Query of the windows endpoint.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct WindowsQuery {
    /// Windows starting at or after; default one hour before `to`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Windows starting before; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// At most this many, oldest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `csv` for a CSV download.
    #[param(inline)]
    format: Option<crate::api::Format>,
}

/// `GET /api/v1/sensors/{id}/windows?from&to&limit`: the sensor's windows (count, mean, std,
/// min, max), oldest first.
#[utoipa::path(get, path = "/api/v1/sensors/{id}/windows", tag = "plant",
    params(("id" = String, Path, format = Uuid), WindowsQuery),
    responses((status = 200, body = Vec<mantis_store::WindowSummary>)))]
pub(crate) async fn windows(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let id: SensorId = parse_id(&id, "the sensor id", "/id")?;
    let (from, to) = time_range(&params, Duration::hours(1))?;
    let limit = limit(&params)?;
    let csv = wants_csv(&headers, &params)?;
    tenant_sensor(s.store.as_ref(), &who, id).await?;
    let windows = s.store.list_windows(id, from, to, limit).await?;
    list_response(&windows, csv, "windows")
}

/// `GET /api/v1/assets/{id}/anomaly-scores`: the latest scored windows, newest first.
#[utoipa::path(get, path = "/api/v1/assets/{id}/anomaly-scores", tag = "plant",
    params(("id" = String, Path, format = Uuid), crate::api::ListQuery),
    responses((status = 200, body = Vec<mantis_domain::AnomalyScore>)))]
pub(crate) async fn anomaly_scores(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let id: AssetId = parse_id(&id, "the asset id", "/id")?;
    tenant_asset(s.store.as_ref(), &who, id).await?;
    let scores = s.store.list_anomaly_scores(id, limit(&params)?).await?;
    list_response(&scores, wants_csv(&headers, &params)?, "anomaly-scores")
}

/// `GET /api/v1/assets/{id}/rul`: RUL predictions with their intervals, newest first.
#[utoipa::path(get, path = "/api/v1/assets/{id}/rul", tag = "plant",
    params(("id" = String, Path, format = Uuid), crate::api::ListQuery),
    responses((status = 200, body = Vec<mantis_domain::RulPrediction>)))]
pub(crate) async fn rul_history(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let id: AssetId = parse_id(&id, "the asset id", "/id")?;
    tenant_asset(s.store.as_ref(), &who, id).await?;
    let history = s.store.list_rul_predictions(id, limit(&params)?).await?;
    list_response(&history, wants_csv(&headers, &params)?, "rul")
}

/// `GET /api/v1/anomalies?assetId&limit`: anomalies with their explanation.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "plant",
    params(("assetId" = Option<String>, Query, format = Uuid), crate::api::ListQuery),
    responses((status = 200, body = Vec<mantis_domain::Anomaly>)))]
pub(crate) async fn anomalies(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let limit = limit(&params)?;
    let list = match params.get("assetId") {
        Some(raw) => {
            let id: AssetId = parse_id(raw, "assetId", "/assetId")?;
            tenant_asset(s.store.as_ref(), &who, id).await?;
            s.store.list_anomalies(Some(id), limit).await?
        }
        None => s.store.list_tenant_anomalies(who.tenant_id, limit).await?,
    };
    list_response(&list, wants_csv(&headers, &params)?, "anomalies")
}

pub(crate) fn event_kind(raw: &str, field: &str) -> ApiResult<MaintenanceEventKind> {
    MaintenanceEventKind::parse(raw)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field(field, e.to_string()))
}

/// A time a request body states must fall within 1970–9999: JSON's dates take any year
/// (`-5000-01-01T00:00:00Z`), which PostgreSQL refuses (a 500, not the client's 400) and nothing
/// of a plant needs.
pub(crate) fn in_calendar(at: DateTime<Utc>, field: &str) -> ApiResult<()> {
    if at < DateTime::UNIX_EPOCH || at.year() > 9999 {
        return Err(
            Problem::bad_request(format!("{at} is outside the years 1970 to 9999"))
                .with_field(field, "outside the years 1970 to 9999"),
        );
    }
    Ok(())
}

/// A maintenance event's time: within [`in_calendar`], and not in the future (five minutes of
/// clock skew allowed).
pub(crate) fn not_in_future(at: DateTime<Utc>, field: &str) -> ApiResult<()> {
    in_calendar(at, field)?;
    if at > Utc::now() + Duration::minutes(5) {
        return Err(
            Problem::bad_request("a maintenance event cannot be in the future")
                .with_field(field, format!("{at} is in the future")),
        );
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewEvent {
    #[schema(value_type = Option<String>, format = Uuid)]
    id: Option<MaintenanceEventId>,
    #[schema(value_type = MaintenanceEventKind)]
    kind: String,
    #[schema(value_type = String, format = DateTime)]
    occurred_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = Uuid)]
    work_order_id: Option<WorkOrderId>,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/assets/{id}/events`: records a failure, replacement, repair or inspection
/// (e.g. history from a CMMS). Failures and replacements end a run to failure: what the RUL
/// models learn from. Idempotent when the client gives the id.
#[utoipa::path(post, path = "/api/v1/assets/{id}/events", tag = "plant",
    params(("id" = String, Path, format = Uuid)), request_body = NewEvent,
    responses((status = 201, body = mantis_domain::MaintenanceEvent),
        (status = 200, description = "Already recorded", body = mantis_domain::MaintenanceEvent)))]
pub(crate) async fn record_event(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let asset: AssetId = parse_id(&id, "the asset id", "/id")?;
    let new: NewEvent = mantis_runtime::parse_json_object(&body)?;
    let kind = event_kind(&new.kind, "/kind")?;
    not_in_future(new.occurred_at, "/occurredAt")?;
    tenant_asset(s.store.as_ref(), &who, asset).await?;
    if let Some(wo) = new.work_order_id {
        match s.store.get_work_order(wo).await? {
            Some(order) if order.asset_id == asset => {}
            Some(_) => {
                return Err(Problem::bad_request(format!(
                    "work order {wo} is not a work order of this asset"
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
    if s.store.insert_maintenance_event(&event).await? {
        return Ok((StatusCode::CREATED, Json(event)).into_response());
    }
    // The id was recorded before: a retry answers what is recorded; another event under the
    // same id (another kind, time or asset — another tenant's included) is refused rather
    // than echoed as if it had been recorded.
    let stored = s
        .store
        .get_maintenance_event(event.id)
        .await?
        .ok_or_else(|| Problem::internal("the recorded event vanished"))?;
    let same = stored.asset_id == event.asset_id
        && stored.kind == event.kind
        && stored.occurred_at.timestamp_millis() == event.occurred_at.timestamp_millis()
        && stored.work_order_id == event.work_order_id;
    if !same {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "event {} is already recorded as another event; give a new id",
                event.id
            ),
        )
        .with_field("/id", "already recorded as another event"));
    }
    Ok((StatusCode::OK, Json(stored)).into_response())
}

/// `GET /api/v1/assets/{id}/events`: the asset's maintenance events, newest first.
#[utoipa::path(get, path = "/api/v1/assets/{id}/events", tag = "plant",
    params(("id" = String, Path, format = Uuid), crate::api::ListQuery),
    responses((status = 200, body = Vec<mantis_domain::MaintenanceEvent>)))]
pub(crate) async fn list_events(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let asset: AssetId = parse_id(&id, "the asset id", "/id")?;
    tenant_asset(s.store.as_ref(), &who, asset).await?;
    let events = s
        .store
        .list_maintenance_events(Some(asset), limit(&params)?)
        .await?;
    list_response(&events, wants_csv(&headers, &params)?, "events")
}

/// `GET /api/v1/features/{asset_id}`: the latest feature vector of each sensor of the asset,
/// from the online cache, falling back to the store for sensors the cache does not hold.
#[utoipa::path(get, path = "/api/v1/features/{asset_id}", tag = "plant",
    params(("asset_id" = String, Path, format = Uuid)),
    responses((status = 200, body = LatestFeatures)))]
pub(crate) async fn latest_features(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: AssetId = parse_id(&id, "the asset id", "/asset_id")?;
    tenant_asset(s.store.as_ref(), &who, id).await?;
    let sensors = s.store.list_sensors(Some(id)).await?;
    let mut vectors = Vec::with_capacity(sensors.len());
    let mut missing = Vec::new();
    for sensor in &sensors {
        let key = mantis_cache::keys::latest_features(id, sensor.id);
        let cached = match s.cache.get(&key).await {
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
        for v in s.store.latest_features(id).await? {
            if missing.contains(&v.sensor_id) {
                vectors.push((v, "store"));
            }
        }
    }
    let features = vectors
        .into_iter()
        .map(|(vector, source)| SourcedFeatures { source, vector })
        .collect();
    Ok(Json(LatestFeatures {
        asset_id: id,
        features,
    })
    .into_response())
}

/// The latest feature vector of each sensor of an asset.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LatestFeatures {
    #[schema(value_type = String, format = Uuid)]
    asset_id: AssetId,
    features: Vec<SourcedFeatures>,
}

/// A feature vector and where it was read (`cache` or `store`).
#[derive(Serialize, ToSchema)]
pub(crate) struct SourcedFeatures {
    source: &'static str,
    vector: FeatureVector,
}
