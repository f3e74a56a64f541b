//! The anomaly service's HTTP API (`/api/v1/anomalies/...`).
//!
//! - `POST /api/v1/anomalies/train` `{assetId, from?, to?, promote?}`: trains a model of the
//!   asset on its windows in the period (default: all of them since its last failure or
//!   replacement), registers it, serves it unless
//!   `promote` is false → 201 with the version and the training report.
//! - `POST /api/v1/anomalies/detect` `{assetId, sensorId, features: {name: value}}`: scores a
//!   feature vector with the asset's served model, without storing anything.
//! - `GET /api/v1/anomalies/{asset_id}`: the asset's anomalies, latest scored windows (all four
//!   detectors' scores), served model, and drift of recent windows against its training data.
//! - `GET /api/v1/anomalies/{asset_id}/models`, `POST .../models/{version}/promote`,
//!   `POST .../models/rollback`: the model versions in the registry.

use crate::model::ModelScore;
use crate::models::{ModelError, Models};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use mantis_domain::{AssetId, FeatureVector, SensorId};
use mantis_rules::RuleSet;
use mantis_runtime::{Problem, parse_json};
use mantis_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the routes share.
#[derive(Clone)]
pub struct ApiState {
    /// The models.
    pub models: Arc<Models>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The cache (latest score per asset).
    pub cache: Arc<dyn mantis_cache::Cache>,
    /// The decision rules (thresholds).
    pub rules: RuleSet,
    /// Recent windows per sensor compared with the training data for drift.
    pub drift_windows: u32,
    /// Contributions named per explanation.
    pub explain_top: usize,
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/anomalies/train", post(train))
        .route("/api/v1/anomalies/detect", post(detect))
        .route("/api/v1/anomalies/{asset_id}", get(asset_view))
        .route("/api/v1/anomalies/{asset_id}/models", get(versions))
        .route(
            "/api/v1/anomalies/{asset_id}/models/{version}/promote",
            post(promote),
        )
        .route(
            "/api/v1/anomalies/{asset_id}/models/rollback",
            post(rollback),
        )
        .with_state(state)
}

impl From<ModelError> for Problem {
    fn from(e: ModelError) -> Self {
        match &e {
            ModelError::UnknownAsset(_) | ModelError::UnknownVersion { .. } => {
                Problem::not_found(e.to_string())
            }
            ModelError::Train(crate::model::TrainError::TooFewWindows { .. })
            | ModelError::Train(crate::model::TrainError::NoSensors) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not enough data",
                e.to_string(),
            ),
            ModelError::Busy(_) | ModelError::TrainingsBusy => {
                Problem::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            ModelError::Registry(mantis_objects::Error::NoRollback { .. }) => {
                Problem::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            // A stored version that cannot serve (its bytes damaged or gone, or no longer a
            // model this build reads): promoting or rolling back to it is refused.
            ModelError::Registry(mantis_objects::Error::Corrupt(_))
            | ModelError::Registry(mantis_objects::Error::NotFound { .. })
            | ModelError::Train(crate::model::TrainError::Format(_)) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unusable model version",
                e.to_string(),
            ),
            ModelError::Store(_) | ModelError::Registry(_) | ModelError::Train(_) => {
                Problem::internal(e)
            }
        }
    }
}

fn asset_id(raw: &str) -> Result<AssetId, Problem> {
    raw.parse::<uuid::Uuid>().map(AssetId).map_err(|_| {
        Problem::bad_request(format!("`{raw}` is not an asset id (a UUID is expected)"))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrainRequest {
    asset_id: AssetId,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    #[serde(default = "yes")]
    promote: bool,
}

fn yes() -> bool {
    true
}

async fn train(State(s): State<ApiState>, body: Bytes) -> Result<Response, Problem> {
    let req: TrainRequest = parse_json(&body)?;
    // Default: the asset's current life (since its last failure or replacement).
    let from = match req.from {
        Some(from) => from,
        None => s.models.normal_since(req.asset_id).await?,
    };
    let to = req.to.unwrap_or_else(Utc::now);
    if to <= from {
        return Err(
            Problem::bad_request("`to` must be after `from`").with_field("/to", "before `from`")
        );
    }
    // Its own task: a client that goes away drops this handler, not the training (which would
    // run on, unseen, while the asset no longer counts as training and another could start).
    let models = s.models.clone();
    let (asset, promote) = (req.asset_id, req.promote);
    let trained = tokio::spawn(async move { models.train(asset, from, to, promote).await })
        .await
        .map_err(|e| Problem::internal(format!("the training task failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(trained)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DetectRequest {
    asset_id: AssetId,
    sensor_id: SensorId,
    features: BTreeMap<String, f64>,
}

fn score_json(s: &ModelScore) -> Value {
    json!({
        "score": s.alarm,
        "ensembleScore": s.ensemble,
        "detectors": s.members.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect::<BTreeMap<_, _>>(),
        "contributions": s.contributions.iter().map(|c| json!({"feature": c.feature, "value": c.value, "share": c.share, "zScore": c.z})).collect::<Vec<_>>(),
    })
}

async fn detect(State(s): State<ApiState>, body: Bytes) -> Result<Json<Value>, Problem> {
    let req: DetectRequest = parse_json(&body)?;
    let Some(asset) = s.store.get_asset(req.asset_id).await? else {
        return Err(Problem::not_found(format!(
            "asset {} is not registered",
            req.asset_id
        )));
    };
    let sensor = s
        .store
        .get_sensor(req.sensor_id)
        .await?
        .filter(|x| x.asset_id == req.asset_id)
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "sensor {} is not a sensor of asset {}",
                req.sensor_id, req.asset_id
            ))
            .with_field("/sensorId", "not a sensor of this asset")
        })?;
    let Some(served) = s.models.served(req.asset_id) else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "No model",
            format!(
                "asset {} has no trained model yet; train one with POST /api/v1/anomalies/train",
                req.asset_id
            ),
        ));
    };
    let now = Utc::now();
    let fv = FeatureVector {
        asset_id: req.asset_id,
        sensor_id: req.sensor_id,
        sensor_type: sensor.sensor_type,
        window_start: now,
        window_end: now,
        feature_set_version: String::new(),
        features: req.features,
    };
    let Some(scored) = served.model.score(&fv, s.explain_top) else {
        return Err(Problem::bad_request(format!(
            "sensor {} is not part of the model of asset {}",
            req.sensor_id, req.asset_id
        ))
        .with_field("/sensorId", "not in the model"));
    };
    let scored = scored.map_err(|e| Problem::bad_request(e.to_string()))?;
    let threshold = s.rules.anomaly_threshold(asset.criticality);
    let mut out = score_json(&scored);
    out["threshold"] = json!(threshold);
    out["aboveThreshold"] = json!(scored.alarm >= threshold);
    out["modelVersion"] = json!(served.version);
    Ok(Json(out))
}

async fn asset_view(
    State(s): State<ApiState>,
    Path(raw): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, Problem> {
    let id = asset_id(&raw)?;
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v.parse::<u32>().map_err(|_| {
            Problem::bad_request(format!("`limit` must be a whole number, got `{v}`"))
                .with_field("/limit", "not a whole number")
        })?,
    };
    let Some(asset) = s.store.get_asset(id).await? else {
        return Err(Problem::not_found(format!("asset {id} is not registered")));
    };
    let limit = limit.clamp(1, 1000);
    let anomalies = s.store.list_anomalies(Some(id), limit).await?;
    let scores = s.store.list_anomaly_scores(id, limit).await?;
    let latest = match s.cache.get(&crate::latest_score_key(id)).await {
        Ok(Some(bytes)) => serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        _ => scores.first().map(|v| json!(v)).unwrap_or(Value::Null),
    };
    let (model, drift) = match s.models.served(id) {
        Some(served) => {
            let mut drift = BTreeMap::new();
            for (sensor, d) in crate::drift_of(&served, s.store.as_ref(), s.drift_windows).await? {
                drift.insert(
                    sensor.to_string(),
                    json!({
                        "windows": d.windows,
                        "maxPsi": d.max_psi,
                        "chancePsi": d.chance_psi,
                        "drifted": d.drifted,
                        "psi": d.psi.into_iter().collect::<BTreeMap<_, _>>(),
                    }),
                );
            }
            (
                json!({
                    "version": served.version,
                    "trainedFrom": served.model.trained_from,
                    "trainedTo": served.model.trained_to,
                    "trainedAt": served.model.trained_at,
                    "report": served.model.report,
                }),
                json!(drift),
            )
        }
        None => (Value::Null, Value::Null),
    };
    Ok(Json(json!({
        "assetId": id,
        "threshold": s.rules.anomaly_threshold(asset.criticality),
        "latest": latest,
        "model": model,
        "drift": drift,
        "anomalies": anomalies,
        "scores": scores,
    })))
}

async fn versions(
    State(s): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id = asset_id(&raw)?;
    let (versions, promoted) = s.models.versions(id).await?;
    Ok(Json(json!({
        "assetId": id,
        "promoted": promoted,
        "servedVersion": s.models.served(id).map(|m| m.version),
        "versions": versions,
    })))
}

async fn promote(
    State(s): State<ApiState>,
    Path((raw, version)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    let id = asset_id(&raw)?;
    let version: u64 = version
        .parse()
        .map_err(|_| Problem::bad_request(format!("`{version}` is not a version number")))?;
    s.models.promote(id, version).await?;
    Ok(Json(json!({"assetId": id, "promoted": version})))
}

async fn rollback(
    State(s): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id = asset_id(&raw)?;
    let version = s.models.rollback(id).await?;
    Ok(Json(json!({"assetId": id, "promoted": version})))
}
