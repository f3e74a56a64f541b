//! The RUL service's HTTP API (`/api/v1/rul/...`).
//!
//! Models are per fleet: one tenant's assets of one type. Every route that names an asset type
//! takes the tenant as `?tenantId=` (the train body: `tenantId`); without it, the default
//! tenant (the one tenant of a single-plant deployment).
//!
//! - `POST /api/v1/rul/train` `{assetType, tenantId?, promote?, settingsColumns?, config?}`:
//!   trains the in-platform model of a tenant's asset type on its runs to failure → 201 with
//!   the version, the runs used and the training report; `GET /api/v1/rul/train/{asset_type}`
//!   shows the progress of a training that runs.
//! - `POST /api/v1/rul/predict` `{assetId}`: predicts the asset's RUL now from its stored
//!   windows, with its fleet's served model, without storing or publishing anything.
//! - `GET /api/v1/rul/{asset_id}?limit=`: the asset's predictions (newest first) and the model
//!   serving its fleet.
//! - `GET /api/v1/rul/models?tenantId=`: every fleet's versions and promoted version (keyed by
//!   registry scope: the asset type for the default tenant, `{tenant}.{type}` otherwise; every
//!   tenant's without `tenantId`);
//!   `GET /api/v1/rul/models/{asset_type}`, `POST .../models/{asset_type}/{version}/promote`,
//!   `POST .../models/{asset_type}/rollback`.
//! - `POST /api/v1/rul/models/{asset_type}/onnx` `{sidecar, onnxBase64, promote?}`: registers a
//!   deep model trained elsewhere (the sidecar is its input contract, whose columns name the
//!   platform's columns, e.g. `vibration.rms`).

use crate::models::{ModelError, Models, TrainRequest, catalogue};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use mantis_domain::{AssetId, Fleet, TenantId};
use mantis_rul_model::tree::TreeConfig;
use mantis_runtime::{Problem, parse_json};
use mantis_store::Store;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Largest ONNX upload accepted (base64 JSON body).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    /// The models.
    pub models: Arc<Models>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The default model configuration.
    pub training: TreeConfig,
    /// The default settings columns.
    pub settings_columns: Vec<String>,
    /// Seconds of one cycle per asset type (see [`crate::Config::cycle_secs`]).
    pub cycle_secs: BTreeMap<String, f64>,
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/rul/train", post(train))
        .route("/api/v1/rul/train/{asset_type}", get(progress))
        .route("/api/v1/rul/predict", post(predict))
        .route("/api/v1/rul/models", get(all_models))
        .route("/api/v1/rul/models/{asset_type}", get(versions))
        .route(
            "/api/v1/rul/models/{asset_type}/{version}/promote",
            post(promote),
        )
        .route("/api/v1/rul/models/{asset_type}/rollback", post(rollback))
        .route(
            "/api/v1/rul/models/{asset_type}/onnx",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/api/v1/rul/{asset_id}", get(asset_view))
        .with_state(state)
}

impl From<ModelError> for Problem {
    fn from(e: ModelError) -> Self {
        match &e {
            ModelError::UnknownAsset(_)
            | ModelError::UnknownAssetType(_)
            | ModelError::UnknownVersion { .. } => Problem::not_found(e.to_string()),
            ModelError::NoModel(_) | ModelError::NoWindows(_) => Problem::new(
                StatusCode::CONFLICT,
                "No prediction possible",
                e.to_string(),
            ),
            ModelError::NoRuns { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not enough data",
                e.to_string(),
            ),
            ModelError::Invalid(_) | ModelError::Model(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unusable model or data",
                e.to_string(),
            ),
            ModelError::Busy(_) | ModelError::OtherTraining(_) | ModelError::UploadBusy => {
                Problem::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            ModelError::Registry(mantis_objects::Error::NoRollback { .. }) => {
                Problem::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            ModelError::Registry(mantis_objects::Error::Invalid(_)) => {
                Problem::bad_request(e.to_string())
            }
            // A stored version that cannot serve (its bytes damaged or gone): promoting or
            // rolling back to it is refused.
            ModelError::Registry(mantis_objects::Error::Corrupt(_))
            | ModelError::Registry(mantis_objects::Error::NotFound { .. }) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unusable model version",
                e.to_string(),
            ),
            ModelError::Store(_) | ModelError::Registry(_) | ModelError::Task(_) => {
                Problem::internal(e)
            }
        }
    }
}

fn asset_id(raw: &str) -> Result<AssetId, Problem> {
    AssetId::parse(raw).map_err(|_| {
        Problem::bad_request(format!("`{raw}` is not an asset id (a UUID is expected)"))
    })
}

/// A route's query parameters, read as a map so that no query string is refused before the
/// handler can answer with a problem body (a repeated parameter: the last one).
type Params = Query<HashMap<String, String>>;

/// The tenant of `?tenantId=`, if given (400 when it is not a UUID).
fn tenant_param(params: &HashMap<String, String>) -> Result<Option<TenantId>, Problem> {
    params
        .get("tenantId")
        .map(|raw| {
            TenantId::parse(raw).map_err(|_| {
                Problem::bad_request(format!("`{raw}` is not a tenant id (a UUID is expected)"))
                    .with_field("/tenantId", "not a UUID")
            })
        })
        .transpose()
}

/// The fleet of `asset_type` of the `?tenantId=` tenant (the default tenant without one).
fn fleet_param(params: &HashMap<String, String>, asset_type: String) -> Result<Fleet, Problem> {
    Ok(Fleet::new(
        tenant_param(params)?.unwrap_or_default(),
        asset_type,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrainBody {
    asset_type: String,
    #[serde(default)]
    tenant_id: TenantId,
    #[serde(default = "yes")]
    promote: bool,
    settings_columns: Option<Vec<String>>,
    config: Option<TreeConfig>,
}

fn yes() -> bool {
    true
}

/// Operating-setting columns a training may name at most.
const MAX_SETTINGS_COLUMNS: usize = 16;

/// `settingsColumns` of a training: a few distinct column names (each row of the history
/// carries one value per name, so thousands would make it thousands of times wider).
fn check_settings_columns(settings: &[String]) -> Result<(), Problem> {
    let bad =
        |why: String| Err(Problem::bad_request(why.clone()).with_field("/settingsColumns", why));
    if settings.len() > MAX_SETTINGS_COLUMNS {
        return bad(format!(
            "{} columns; at most {MAX_SETTINGS_COLUMNS}",
            settings.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in settings {
        if name.trim().is_empty() || name.len() > 128 {
            return bad("a column name must be 1 to 128 characters".into());
        }
        if !seen.insert(name) {
            return bad(format!("`{name}` is named twice"));
        }
    }
    Ok(())
}

async fn train(State(s): State<ApiState>, body: Bytes) -> Result<Response, Problem> {
    let req: TrainBody = parse_json(&body)?;
    if req.asset_type.trim().is_empty() {
        return Err(Problem::bad_request("`assetType` is empty").with_field("/assetType", "empty"));
    }
    let config = req.config.unwrap_or(s.training);
    if let Err(e) = config.validate() {
        return Err(Problem::bad_request(e.to_string()).with_field("/config", e.to_string()));
    }
    if let Some(settings) = &req.settings_columns {
        check_settings_columns(settings)?;
    }
    let request = TrainRequest {
        asset_type: req.asset_type,
        tenant_id: req.tenant_id,
        settings_columns: req.settings_columns.unwrap_or(s.settings_columns),
        config,
        promote: req.promote,
    };
    // Its own task: a client that goes away (a proxy timeout during a long training) drops
    // this handler, not the training, which then registers its model and clears its progress
    // rather than leaving a fleet marked as training that is not.
    let models = s.models.clone();
    let trained = tokio::spawn(async move { models.train(request, None).await })
        .await
        .map_err(|e| Problem::internal(ModelError::Task(e.to_string())))??;
    Ok((StatusCode::CREATED, Json(trained)).into_response())
}

async fn progress(
    State(s): State<ApiState>,
    Path(asset_type): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let fleet = fleet_param(&params, asset_type.clone())?;
    match s.models.progress(&fleet) {
        Some(p) => Ok(
            Json(json!({ "assetType": asset_type, "running": true, "progress": p }))
                .into_response(),
        ),
        None => Ok(Json(json!({ "assetType": asset_type, "running": false })).into_response()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PredictBody {
    asset_id: AssetId,
}

async fn predict(State(s): State<ApiState>, body: Bytes) -> Result<Response, Problem> {
    let req: PredictBody = parse_json(&body)?;
    let (p, served, at, step_secs) = s.models.predict_now(req.asset_id).await?;
    let scale = crate::cycles_per_window(&s.cycle_secs, &served.fleet.asset_type, step_secs);
    Ok(Json(json!({
        "assetId": req.asset_id,
        "predictedAt": at,
        "rulCycles": p.rul * scale,
        "confidenceLower": p.lower * scale,
        "confidenceUpper": p.upper * scale,
        "rulWindows": p.rul,
        "modelVersion": served.label(),
        "modelKind": served.predictor.kind(),
    }))
    .into_response())
}

/// The fleets of `tenant`'s assets (every tenant's with `None`), sorted.
async fn fleets(store: &dyn Store, tenant: Option<TenantId>) -> Result<Vec<Fleet>, Problem> {
    let mut fleets: Vec<Fleet> = store
        .list_assets(tenant)
        .await
        .map_err(Problem::internal)?
        .iter()
        .map(mantis_domain::Asset::fleet)
        .collect();
    fleets.sort();
    fleets.dedup();
    Ok(fleets)
}

async fn all_models(State(s): State<ApiState>, Query(params): Params) -> Result<Response, Problem> {
    let fleets = fleets(s.store.as_ref(), tenant_param(&params)?).await?;
    let models: BTreeMap<String, serde_json::Value> = catalogue(&s.models, &fleets).await?;
    Ok(Json(json!({ "models": models })).into_response())
}

async fn versions(
    State(s): State<ApiState>,
    Path(asset_type): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let fleet = fleet_param(&params, asset_type)?;
    let (versions, promoted) = s.models.versions(&fleet).await?;
    if versions.is_empty()
        && !fleets(s.store.as_ref(), Some(fleet.tenant_id))
            .await?
            .contains(&fleet)
    {
        return Err(ModelError::UnknownAssetType(fleet).into());
    }
    Ok(Json(json!({
        "assetType": fleet.asset_type,
        "tenantId": fleet.tenant_id,
        "promoted": promoted,
        "versions": versions,
    }))
    .into_response())
}

async fn promote(
    State(s): State<ApiState>,
    Path((asset_type, version)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let fleet = fleet_param(&params, asset_type)?;
    let version: u64 = version
        .parse()
        .map_err(|_| Problem::bad_request(format!("`{version}` is not a version number")))?;
    s.models.promote(&fleet, version).await?;
    Ok(Json(json!({
        "assetType": fleet.asset_type,
        "tenantId": fleet.tenant_id,
        "promoted": version,
    }))
    .into_response())
}

async fn rollback(
    State(s): State<ApiState>,
    Path(asset_type): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let fleet = fleet_param(&params, asset_type)?;
    let version = s.models.rollback(&fleet).await?;
    Ok(Json(json!({
        "assetType": fleet.asset_type,
        "tenantId": fleet.tenant_id,
        "promoted": version,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UploadBody {
    sidecar: serde_json::Value,
    onnx_base64: String,
    #[serde(default)]
    promote: bool,
}

async fn upload(
    State(s): State<ApiState>,
    Path(asset_type): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, Problem> {
    let fleet = fleet_param(&params, asset_type)?;
    let req: UploadBody = parse_json(&body)?;
    let onnx = base64::engine::general_purpose::STANDARD
        .decode(req.onnx_base64.trim())
        .map_err(|e| {
            Problem::bad_request(format!("`onnxBase64` is not base64: {e}"))
                .with_field("/onnxBase64", "not base64")
        })?;
    // Its own task, as a training: a client that goes away does not free the one-upload slot
    // while tract still builds the model.
    let (models, target, promote) = (s.models.clone(), fleet.clone(), req.promote);
    let sidecar = req.sidecar;
    let version =
        tokio::spawn(async move { models.upload_onnx(&target, sidecar, onnx, promote).await })
            .await
            .map_err(|e| Problem::internal(ModelError::Task(e.to_string())))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "assetType": fleet.asset_type,
            "tenantId": fleet.tenant_id,
            "version": version,
            "promoted": req.promote,
        })),
    )
        .into_response())
}

async fn asset_view(
    State(s): State<ApiState>,
    Path(raw): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let id = asset_id(&raw)?;
    let limit = match params.get("limit").map(String::as_str) {
        None => 100,
        Some(l) => l.parse::<u32>().map_err(|_| {
            Problem::bad_request(format!("`limit` must be a whole number, not `{l}`"))
                .with_field("/limit", "not a whole number")
        })?,
    }
    .min(10_000);
    let asset = s
        .store
        .get_asset(id)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| Problem::not_found(format!("asset {id} is not registered")))?;
    let predictions = s
        .store
        .list_rul_predictions(id, limit)
        .await
        .map_err(Problem::internal)?;
    let model = s.models.served(&asset.fleet()).map(|m| {
        json!({
            "version": m.version,
            "label": m.label(),
            "kind": m.predictor.kind(),
            "window": m.predictor.window(),
            "baseline": m.predictor.baseline(),
            "columns": m.predictor.columns(),
        })
    });
    Ok(Json(json!({
        "assetId": id,
        "assetType": asset.asset_type,
        "unit": "cycles",
        "cycleSecs": s.cycle_secs.get(&asset.asset_type),
        "latest": predictions.first(),
        "predictions": predictions,
        "model": model,
    }))
    .into_response())
}
