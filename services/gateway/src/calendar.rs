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
use mantis_domain::{AssetId, DomainError, PlannedStop, PlannedStopId, Repeat};
use mantis_runtime::Problem;
use serde::{Deserialize, Serialize};
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
    /// Also on these days of the week until a date (a break every working day, a weekend
    /// every week), at the same time of day on the plant's clock.
    #[serde(default)]
    repeat: Option<Repeat>,
}

/// The stops recorded.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecordedStops {
    /// By start: the stop, or its repetitions.
    stops: Vec<PlannedStop>,
}

/// The query's `assetId`, one of the caller's plant's assets (`404` for another's), if given.
async fn asset_param(s: &ApiState, who: &Principal, params: &Params) -> ApiResult<Option<AssetId>> {
    match params.get("assetId") {
        Some(raw) => {
            let id: AssetId = parse_id(raw, "assetId", "/assetId")?;
            Ok(Some(tenant_asset(s.store.as_ref(), who, id).await?.id))
        }
        None => Ok(None),
    }
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
    let asset = asset_param(&s, &who, &params).await?;
    let listed = s
        .store
        .list_planned_stops(who.tenant_id, from, to, asset, limit)
        .await?;
    list_response(&listed, csv, "planned-stops")
}

/// `POST /api/v1/planned-stops`: records a planned stop of an asset, or of the whole plant, or
/// its repetitions (all or none); the KPIs leave them out of OEE's planned production time.
#[utoipa::path(post, path = "/api/v1/planned-stops", tag = "kpis",
    request_body = NewPlannedStop,
    responses((status = 201, body = RecordedStops, headers(("Location" = String, description = "The first stop")))))]
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
    let problem = |e: DomainError| {
        let pointer = match &e {
            DomainError::BadName {
                what: "planned stop reason",
                ..
            } => "/reason",
            DomainError::BadName {
                what: "time zone", ..
            } => "/repeat/timeZone",
            DomainError::Empty("repeat days") => "/repeat/days",
            DomainError::BadName {
                what: "repeat until",
                ..
            }
            | DomainError::Empty(_) => "/repeat/until",
            _ => "/endsAt",
        };
        Problem::bad_request(e.to_string()).with_field(pointer, e.to_string())
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
        series_id: None,
    }
    .normalise()
    .map_err(problem)?;
    let stops = match &new.repeat {
        Some(repeat) => stop.repeated(repeat).map_err(problem)?,
        None => vec![stop],
    };
    match s.store.insert_planned_stops(&stops).await {
        Ok(_) => {}
        Err(mantis_store::Error::NotFound { id, .. }) => {
            return Err(Problem::bad_request(format!("asset {id} does not exist"))
                .with_field("/assetId", "not an asset of this plant"));
        }
        Err(e) => return Err(e.into()),
    }
    let location = stops
        .first()
        .map(|s| format!("/api/v1/planned-stops/{}", s.id))
        .unwrap_or_default();
    if let (Some(first), Some(last)) = (stops.first(), stops.last()) {
        tracing::info!(
            stops = stops.len(),
            asset = %first.asset_id.map_or_else(|| "(whole plant)".to_owned(), |a| a.to_string()),
            from = %first.starts_at,
            to = %last.ends_at,
            by = %who.username,
            "planned stops recorded"
        );
    }
    Ok(created(&RecordedStops { stops }, &location))
}

/// `DELETE /api/v1/planned-stops?from&to&assetId`: removes the planned stops of the asset (or,
/// without `assetId`, the whole plant's) starting within `[from, to)` (both required: nothing
/// is removed by default). `?series&from`: the stops of a repetition (`seriesId`) starting at
/// or after `from` (default: all of it).
#[utoipa::path(delete, path = "/api/v1/planned-stops", tag = "kpis",
    params(("from" = Option<String>, Query, format = DateTime, description = "required without `series`; with it, default: all of the series"),
        ("to" = Option<String>, Query, format = DateTime, description = "required without `series`, not with it"),
        ("assetId" = Option<String>, Query, format = Uuid, description = "the asset's; left out: the whole plant's; not with `series`"),
        ("series" = Option<String>, Query, format = Uuid, description = "a repetition's `seriesId`")),
    responses((status = 200, body = crate::production::Removed),
        (status = 400, description = "A period or series that cannot be read, or parameters that do not go together")))]
pub(crate) async fn remove_starting(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    if let Some(raw) = params.get("series") {
        return remove_series(&s, &who, &params, raw).await;
    }
    let (from, to) = crate::api::required_period(&params, "planned stops")?;
    let asset = asset_param(&s, &who, &params).await?;
    let removed = s
        .store
        .delete_planned_stops_starting(who.tenant_id, asset, from, to)
        .await?;
    tracing::info!(
        asset = %asset.map_or_else(|| "(whole plant)".to_owned(), |a| a.to_string()),
        %from, %to, removed, by = %who.username, "planned stops removed"
    );
    Ok(axum::Json(crate::production::Removed { removed }).into_response())
}

/// `DELETE /api/v1/planned-stops?series&from`: the rest of a repetition.
async fn remove_series(
    s: &ApiState,
    who: &Principal,
    params: &Params,
    raw: &str,
) -> ApiResult<Response> {
    let series: PlannedStopId = parse_id(raw, "series", "/series")?;
    for other in ["to", "assetId"] {
        if params.contains_key(other) {
            return Err(Problem::bad_request(format!(
                "a series is removed from `from` on, whatever its asset: `{other}` does not go with `series`"
            ))
            .with_field(format!("/{other}"), "not with `series`"));
        }
    }
    // By default all of it. Nothing to remove (again, after a retry) is no error.
    let from = crate::api::instant(params, "from")?;
    let removed = s
        .store
        .delete_planned_stop_series(who.tenant_id, series, from)
        .await?;
    tracing::info!(%series, ?from, removed, by = %who.username, "planned stops of a series removed");
    Ok(axum::Json(crate::production::Removed { removed }).into_response())
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
