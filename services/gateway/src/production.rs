//! Production counts (`/api/v1/assets/{id}/production`): the good and rejected units an asset
//! made per period, pushed by an MES or the line's counters through an API key, or typed in by
//! a shift lead. They give the KPIs' OEE its quality term (good ÷ all units) per asset and per
//! shift, and, where a count states the ideal cycle time of what was made, its performance
//! term (ideal cycle × units ÷ run time).
//!
//! A count is identified by its asset and start: sending it again (a retry, a correction)
//! replaces it; one recorded by someone else only a manager replaces. An asset's periods never
//! overlap, so nothing is counted twice: a count that would overlap another is refused (409)
//! until that one is removed (`DELETE` by start, a manager's).

use crate::api::{
    ApiResult, ApiState, Params, limit, list_response, parse_id, tenant_asset, wants_csv,
};
use crate::auth::Principal;
use crate::plant::in_calendar;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use mantis_domain::{AssetId, DomainError, ProductionCount, Role};
use mantis_runtime::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Counts per request.
pub(crate) const MAX_COUNTS_PER_REQUEST: usize = 1000;

/// One period's units, as sent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewCount {
    /// Start of the period.
    #[schema(value_type = String, format = DateTime)]
    starts_at: DateTime<Utc>,
    /// End of the period: after the start, at most 31 days later, not in the future.
    #[schema(value_type = String, format = DateTime)]
    ends_at: DateTime<Utc>,
    /// Good units (first time right).
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    good: u64,
    /// Units scrapped or sent to rework.
    #[schema(minimum = 0, maximum = 1000000000000_i64)]
    rejected: u64,
    /// The ideal cycle time of the units, in seconds per unit (the fastest the asset makes
    /// that product), when known: gives OEE its performance term. A count sent again without
    /// it replaces one with it (as every other field).
    #[serde(default)]
    #[schema(minimum = 0.001, maximum = 86400)]
    ideal_cycle_seconds: Option<f64>,
}

/// `POST /api/v1/assets/{id}/production`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCounts {
    /// 1 to 1 000 periods.
    counts: Vec<NewCount>,
}

/// What was recorded.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecordedCounts {
    /// The counts as stored (times to the millisecond).
    counts: Vec<ProductionCount>,
}

/// `POST /api/v1/assets/{id}/production`: records the units the asset made per period, all or
/// none; a count for a start recorded before replaces it (another's: a manager's only).
#[utoipa::path(post, path = "/api/v1/assets/{id}/production", tag = "plant",
    params(("id" = String, Path, format = Uuid)), request_body = NewCounts,
    responses((status = 200, body = RecordedCounts),
        (status = 409, description = "A count overlaps another of the asset (or of the request), or would replace one recorded by someone else (a manager's only)")))]
pub(crate) async fn record(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let asset: AssetId = parse_id(&id, "the asset id", "/id")?;
    let new: NewCounts = mantis_runtime::parse_json_object(&body)?;
    if new.counts.is_empty() || new.counts.len() > MAX_COUNTS_PER_REQUEST {
        return Err(Problem::bad_request("send 1 to 1000 counts per request")
            .with_field("/counts", format!("{} counts", new.counts.len())));
    }
    let recorded_at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    let mut counts = Vec::with_capacity(new.counts.len());
    for (i, c) in new.counts.into_iter().enumerate() {
        let at = |field: &str| format!("/counts/{i}/{field}");
        in_calendar(c.starts_at, &at("startsAt"))?;
        in_calendar(c.ends_at, &at("endsAt"))?;
        if c.ends_at > Utc::now() + Duration::minutes(5) {
            return Err(
                Problem::bad_request("production is counted for periods that have ended")
                    .with_field(at("endsAt"), format!("{} is in the future", c.ends_at)),
            );
        }
        let count = ProductionCount {
            asset_id: asset,
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            good: c.good,
            rejected: c.rejected,
            ideal_cycle_seconds: c.ideal_cycle_seconds,
            recorded_by: who.username.clone(),
            recorded_at,
        }
        .normalise()
        .map_err(|e| {
            let field = match &e {
                DomainError::OutOfRange {
                    what: "good count", ..
                } => "good",
                DomainError::OutOfRange {
                    what: "rejected count",
                    ..
                } => "rejected",
                DomainError::OutOfRange {
                    what: "ideal cycle time",
                    ..
                } => "idealCycleSeconds",
                _ => "endsAt",
            };
            Problem::bad_request(e.to_string()).with_field(at(field), e.to_string())
        })?;
        counts.push(count);
    }
    tenant_asset(s.store.as_ref(), &who, asset).await?;
    s.store
        .record_production(asset, &counts, who.role.includes(Role::Manager))
        .await?;
    tracing::info!(%asset, counts = counts.len(), by = %who.username, "production recorded");
    counts.sort_by_key(|c| c.starts_at);
    Ok(Json(RecordedCounts { counts }).into_response())
}

/// Default span of the listing and of the removal's required range.
const LIST_SPAN_DAYS: i64 = 7;

/// `GET /api/v1/assets/{id}/production?from&to&limit`: the asset's counts overlapping
/// `[from, to)` (default: the last 7 days), newest first; CSV on request.
#[utoipa::path(get, path = "/api/v1/assets/{id}/production", tag = "plant",
    params(("id" = String, Path, format = Uuid),
        ("from" = Option<String>, Query, format = DateTime, description = "default 7 days before `to`"),
        ("to" = Option<String>, Query, format = DateTime, description = "default now"),
        crate::api::ListQuery),
    responses((status = 200, body = Vec<ProductionCount>)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let asset: AssetId = parse_id(&id, "the asset id", "/id")?;
    let csv = wants_csv(&headers, &params)?;
    let limit = limit(&params)?;
    let (from, to) = crate::api::time_range(&params, Duration::days(LIST_SPAN_DAYS))?;
    tenant_asset(s.store.as_ref(), &who, asset).await?;
    let counts = s.store.list_production(asset, from, to, limit).await?;
    list_response(&counts, csv, "production")
}

/// How many counts were removed.
#[derive(Serialize, ToSchema)]
pub(crate) struct Removed {
    pub(crate) removed: u64,
}

/// `DELETE /api/v1/assets/{id}/production?from&to`: removes the asset's counts starting within
/// `[from, to)` (both required: nothing is removed by default).
#[utoipa::path(delete, path = "/api/v1/assets/{id}/production", tag = "plant",
    params(("id" = String, Path, format = Uuid),
        ("from" = String, Query, format = DateTime), ("to" = String, Query, format = DateTime)),
    responses((status = 200, body = Removed)))]
pub(crate) async fn remove(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let asset: AssetId = parse_id(&id, "the asset id", "/id")?;
    let (from, to) = crate::api::required_period(&params, "counts")?;
    tenant_asset(s.store.as_ref(), &who, asset).await?;
    let removed = s.store.delete_production(asset, from, to).await?;
    tracing::info!(%asset, %from, %to, removed, by = %who.username, "production counts removed");
    Ok(Json(Removed { removed }).into_response())
}
