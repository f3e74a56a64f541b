//! The production calendar (`/api/v1/planned-stops`): stretches in which an asset, or the
//! whole plant, is not planned to produce (breaks, planned changeovers and cleaning, weekends
//! without shifts, holidays, shutdowns), recorded by a manager or pushed by an MES through an
//! API key. The KPIs take them out of OEE: availability is of the planned production time (a
//! failure during a planned stop costs none of it), performance of the run time outside them.

use crate::api::{
    ApiResult, ApiState, Params, created, limit, list_response, parse_id, period_ahead,
    tenant_asset, wants_csv,
};
use crate::auth::Principal;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mantis_domain::{AssetId, DomainError, PlannedStop, PlannedStopId};
use mantis_runtime::Problem;
use serde::Deserialize;
use utoipa::ToSchema;

/// A planned stop as sent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewPlannedStop {
    /// The asset stopped; left out (or null): the whole plant.
    #[schema(value_type = Option<String>, format = Uuid)]
    asset_id: Option<String>,
    /// When it starts.
    #[schema(value_type = String, format = DateTime)]
    starts_at: DateTime<Utc>,
    /// When it ends: after the start, at most 366 days later.
    #[schema(value_type = String, format = DateTime)]
    ends_at: DateTime<Utc>,
    /// Why (`lunch break`, `changeover`, `no weekend shift`).
    #[serde(default)]
    #[schema(max_length = 200)]
    reason: String,
}

/// Default span of `GET /api/v1/planned-stops` (from `from`, default now).
const LIST_SPAN_DAYS: i64 = 366;

/// `GET /api/v1/planned-stops?from&to&assetId&limit`: the planned stops overlapping
/// `[from, to)` (default: from now for a year), by start; with `assetId`, those that stop it
/// (its own and the whole plant's).
#[utoipa::path(get, path = "/api/v1/planned-stops", tag = "kpis",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "default now"),
        ("to" = Option<String>, Query, format = DateTime, description = "default a year after `from`"),
        ("assetId" = Option<String>, Query, format = Uuid, description = "only what stops this asset"),
        crate::api::ListQuery),
    responses((status = 200, body = Vec<PlannedStop>)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let csv = wants_csv(&headers, &params)?;
    let limit = limit(&params)?;
    let (from, to) = period_ahead(&params, LIST_SPAN_DAYS)?;
    let asset = match params.get("assetId") {
        Some(raw) => {
            let id: AssetId = parse_id(raw, "assetId", "/assetId")?;
            Some(tenant_asset(s.store.as_ref(), &who, id).await?.id)
        }
        None => None,
    };
    let listed = s
        .store
        .list_planned_stops(who.tenant_id, from, to, asset, limit)
        .await?;
    list_response(&listed, csv, "planned-stops")
}

/// `POST /api/v1/planned-stops`: records a planned stop of an asset, or of the whole plant;
/// the KPIs leave it out of OEE's planned production time.
#[utoipa::path(post, path = "/api/v1/planned-stops", tag = "kpis",
    request_body = NewPlannedStop,
    responses((status = 201, body = PlannedStop, headers(("Location" = String)))))]
pub(crate) async fn create(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewPlannedStop = mantis_runtime::parse_json_object(&body)?;
    let asset_id = match new.asset_id.as_deref() {
        Some(raw) => Some(parse_id::<AssetId>(raw, "assetId", "/assetId")?),
        None => None,
    };
    let stop = PlannedStop {
        id: PlannedStopId::new_random(),
        tenant_id: who.tenant_id,
        asset_id,
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        reason: new.reason,
        created_by: who.username.clone(),
        created_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3),
    }
    .normalise()
    .map_err(|e| {
        let pointer = match &e {
            DomainError::BadName {
                what: "planned stop reason",
                ..
            } => "/reason",
            _ => "/endsAt",
        };
        Problem::bad_request(e.to_string()).with_field(pointer, e.to_string())
    })?;
    match s.store.insert_planned_stop(&stop).await {
        Ok(_) => {}
        Err(mantis_store::Error::NotFound { id, .. }) => {
            return Err(Problem::bad_request(format!("asset {id} does not exist"))
                .with_field("/assetId", "not an asset of this plant"));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        id = %stop.id,
        asset = %stop.asset_id.map_or_else(|| "(whole plant)".to_owned(), |a| a.to_string()),
        from = %stop.starts_at,
        to = %stop.ends_at,
        by = %who.username,
        "planned stop recorded"
    );
    Ok(created(
        &stop,
        &format!("/api/v1/planned-stops/{}", stop.id),
    ))
}

/// `DELETE /api/v1/planned-stops/{id}`: removes a planned stop.
#[utoipa::path(delete, path = "/api/v1/planned-stops/{id}", tag = "kpis",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such planned stop")))]
pub(crate) async fn remove(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: PlannedStopId = parse_id(&id, "the planned stop id", "/id")?;
    if !s.store.delete_planned_stop(who.tenant_id, id).await? {
        return Err(Problem::not_found(format!(
            "planned stop {id} does not exist"
        )));
    }
    tracing::info!(%id, by = %who.username, "planned stop removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
