//! What drives the decisions, read-only: the models in the registry (anomaly models per asset,
//! RUL models per asset type of the tenant) and the decision rules in effect.

use crate::api::{ApiResult, ApiState, tenant_assets};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use mantis_domain::Fleet;
use mantis_objects::registry::{ModelRegistry, ModelSeries, ModelVersion};
use mantis_runtime::Problem;
use serde::Serialize;
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// One series of models: its versions and the one served.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModelSummary {
    /// `anomaly` (one per asset) or `rul` (one per asset type of the tenant).
    kind: String,
    /// The asset id (anomaly) or the asset type (rul; the caller's tenant's own model).
    scope: String,
    /// The asset's code, for anomaly models.
    asset_code: Option<String>,
    /// The version served, if any.
    promoted: Option<u64>,
    /// Every registered version, oldest first, with what its trainer reported.
    #[schema(value_type = Vec<Object>)]
    versions: Vec<ModelVersion>,
}

fn unavailable(e: mantis_objects::Error) -> Problem {
    Problem::unavailable(format!("the model registry cannot be read: {e}"))
}

/// `GET /api/v1/models`: the models of the tenant's assets.
#[utoipa::path(get, path = "/api/v1/models", tag = "catalog",
    responses((status = 200, body = Vec<ModelSummary>)))]
pub(crate) async fn models(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Response> {
    let registry = ModelRegistry::new(s.objects.clone());
    let assets = tenant_assets(s.store.as_ref(), &who).await?;
    let mut out = Vec::new();
    // (series, what it is for, asset code)
    let mut series: Vec<(ModelSeries, String, Option<String>)> = Vec::new();
    for a in &assets {
        if let Ok(sr) = ModelSeries::new("anomaly", a.id.to_string()) {
            series.push((sr, a.id.to_string(), Some(a.code.clone())));
        }
    }
    // RUL models are per fleet: the tenant's own assets of a type, never another tenant's.
    let fleets: BTreeSet<Fleet> = assets.iter().map(mantis_domain::Asset::fleet).collect();
    for fleet in fleets {
        if let Ok(sr) = ModelSeries::new("rul", fleet.scope()) {
            series.push((sr, fleet.asset_type, None));
        }
    }
    for (sr, scope, asset_code) in series {
        let versions = registry.versions(&sr).await.map_err(unavailable)?;
        if versions.is_empty() {
            continue;
        }
        let promoted = registry.promoted(&sr).await.map_err(unavailable)?;
        out.push(ModelSummary {
            kind: sr.kind().to_owned(),
            scope,
            asset_code,
            promoted,
            versions,
        });
    }
    Ok(Json(out).into_response())
}

/// The decision rules in effect.
#[derive(Serialize, ToSchema)]
pub(crate) struct Rules {
    /// `builtin`, or the directory they were read from (`infra.rules_dir`).
    source: String,
    /// Thresholds and response times per criticality (`criticality.toml`).
    #[schema(value_type = Object)]
    criticality: serde_json::Value,
    /// Event routing (`routing.toml`).
    #[schema(value_type = Object)]
    routing: serde_json::Value,
}

/// `GET /api/v1/rules`: the decision matrix and routing rules the orchestrator applies.
#[utoipa::path(get, path = "/api/v1/rules", tag = "catalog", responses((status = 200, body = Rules)))]
pub(crate) async fn rules(State(s): State<ApiState>) -> ApiResult<Response> {
    let dir = s.rules_dir.clone();
    let (criticality, routing) = mantis_rules::RuleSet::sources(dir.as_deref())
        .map_err(|e| Problem::unavailable(format!("the rules cannot be read: {e}")))?;
    let as_json = |text: &str| toml::from_str::<serde_json::Value>(text).map_err(Problem::internal);
    Ok(Json(Rules {
        source: dir.map_or_else(|| "builtin".to_owned(), |d| d.display().to_string()),
        criticality: as_json(&criticality)?,
        routing: as_json(&routing)?,
    })
    .into_response())
}
