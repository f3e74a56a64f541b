//! The plant's stores: spare parts with their count on the shelf, what the active work orders
//! reserve of it, what is on order, and every movement of the count.
//!
//! A work order's parts list (`parts`) reserves them while it is active; completing it takes
//! them off the shelf (the store does, in the completion's transaction). Deliveries and
//! stocktakes are recorded as movements (`POST /api/v1/spare-parts/{partNumber}/movements`).
//! The plan (`GET /api/v1/schedule`) shares the shelf and what is on order out among the work
//! orders, urgent first ([`mantis_rules::parts`]).

use crate::api::{ApiResult, ApiState, Params, limit, list_response, wants_csv};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use mantis_domain::{SparePart, StockChange, StockMovement, StockMovementKind, TenantId};
use mantis_runtime::Problem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use utoipa::ToSchema;

/// A spare part with what is reserved of it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StockLevel {
    #[serde(flatten)]
    part: SparePart,
    /// How many the active work orders (open, scheduled, in progress) list.
    reserved: u64,
    /// On the shelf and not reserved (negative: reserved beyond the shelf).
    free: i64,
    /// On the shelf plus on order minus reserved is below the reorder point.
    reorder: bool,
}

impl StockLevel {
    fn of(part: SparePart, reserved: &BTreeMap<String, u64>) -> Self {
        let reserved = reserved.get(&part.part_number).copied().unwrap_or(0);
        let reserved_i = i64::try_from(reserved).unwrap_or(i64::MAX);
        let free = i64::from(part.on_hand).saturating_sub(reserved_i);
        let position = free.saturating_add(i64::from(part.on_order));
        Self {
            reorder: part.reorder_point > 0 && position < i64::from(part.reorder_point),
            reserved,
            free,
            part,
        }
    }
}

/// A part as defined by a manager: a field left out keeps its value (a new part's: empty,
/// 0, none), so that a form sends only what it changed and a delivery recorded meanwhile is
/// not undone. Its count changes by movements; `onHand` records a count.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PartDefinition {
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Where it is kept.
    #[schema(max_length = 500)]
    location: Option<String>,
    /// Reorder below this many (free plus on order); 0: never.
    #[schema(minimum = 0, maximum = 1000000)]
    reorder_point: Option<u32>,
    /// Ordered from the supplier, not received yet.
    #[schema(minimum = 0, maximum = 1000000)]
    on_order: Option<u32>,
    /// When what is on order is expected (`null`: not known).
    #[serde(default, deserialize_with = "crate::operations::present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expected_at: Option<Option<DateTime<Utc>>>,
    /// The count on the shelf, when it is known to be this (a new part's first count, a
    /// stocktake): always recorded as a COUNTED movement (the same count too). Absent:
    /// unchanged.
    #[schema(minimum = 0, maximum = 1000000)]
    on_hand: Option<u32>,
}

/// A delivery or a count.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewMovement {
    /// RECEIVED (added) or COUNTED (the count becomes it); CONSUMED is recorded by completions.
    #[schema(value_type = StockMovementKind)]
    kind: String,
    #[schema(minimum = 0, maximum = 1000000)]
    quantity: u32,
    /// A delivery note's number, why a count differed.
    #[serde(default)]
    #[schema(max_length = 500)]
    note: String,
}

/// A movement with the part's level after it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordedMovement {
    movement: StockMovement,
    part: StockLevel,
}

/// A part number from the path, checked.
fn part_number(raw: &str) -> ApiResult<String> {
    mantis_domain::normalise_part_number(raw).map_err(|e| {
        Problem::bad_request(e.to_string()).with_field("/partNumber", "not a part number")
    })
}

async fn level(s: &ApiState, tenant: TenantId, number: &str) -> ApiResult<StockLevel> {
    let part = s
        .store
        .get_spare_part(tenant, number)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no spare part `{number}` in the stores")))?;
    let reserved = s.store.reserved_parts(tenant).await?;
    Ok(StockLevel::of(part, &reserved))
}

/// `GET /api/v1/spare-parts`: every part of the stores with what is reserved, free, on order,
/// and whether to reorder.
#[utoipa::path(get, path = "/api/v1/spare-parts", tag = "stores",
    params(crate::api::FormatQuery), responses((status = 200, body = Vec<StockLevel>)))]
pub(crate) async fn list_parts(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let csv = wants_csv(&headers, &params)?;
    let reserved = s.store.reserved_parts(who.tenant_id).await?;
    let levels: Vec<StockLevel> = s
        .store
        .list_spare_parts(who.tenant_id)
        .await?
        .into_iter()
        .map(|p| StockLevel::of(p, &reserved))
        .collect();
    list_response(&levels, csv, "spare-parts")
}

/// `GET /api/v1/spare-parts/{partNumber}`.
#[utoipa::path(get, path = "/api/v1/spare-parts/{partNumber}", tag = "stores",
    params(("partNumber" = String, Path)), responses((status = 200, body = StockLevel)))]
pub(crate) async fn get_part(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> ApiResult<Json<StockLevel>> {
    Ok(Json(level(&s, who.tenant_id, &part_number(&raw)?).await?))
}

/// `PUT /api/v1/spare-parts/{partNumber}`: adds a part to the stores, or changes its
/// description, location, reorder point and what is on order; `onHand` records a count. With
/// `If-None-Match: *` it only adds: a part of that number already kept is 412, untouched (a
/// "new part" form given a number in use must not blank the part's details and count).
#[utoipa::path(put, path = "/api/v1/spare-parts/{partNumber}", tag = "stores",
    params(("partNumber" = String, Path), ("If-None-Match" = Option<String>, Header, description = "`*`: add only, 412 when the part exists")),
    request_body = PartDefinition,
    responses((status = 200, body = StockLevel), (status = 412, description = "If-None-Match: * and the part exists")))]
pub(crate) async fn put_part(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<StockLevel>> {
    let definition: PartDefinition = mantis_runtime::parse_json_object(&body)?;
    let number = part_number(&raw)?;
    let create_only = match headers.get(axum::http::header::IF_NONE_MATCH) {
        None => false,
        Some(v) if v.as_bytes().trim_ascii() == b"*" => true,
        Some(_) => {
            return Err(Problem::bad_request(
                "If-None-Match takes only `*` here (add the part only if it is not kept yet)",
            ));
        }
    };
    if let Some(Some(at)) = definition.expected_at {
        crate::plant::in_calendar(at, "/expectedAt")?;
    }
    let kept_already = || {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "Precondition Failed",
            format!("spare part {number} is kept already; change it instead of adding it again"),
        )
    };
    let existing = s.store.get_spare_part(who.tenant_id, &number).await?;
    if create_only && existing.is_some() {
        return Err(kept_already());
    }
    let on_order = definition
        .on_order
        .unwrap_or_else(|| existing.as_ref().map_or(0, |p| p.on_order));
    let part = SparePart {
        tenant_id: who.tenant_id,
        part_number: number.clone(),
        description: definition.description.unwrap_or_else(|| {
            existing
                .as_ref()
                .map(|p| p.description.clone())
                .unwrap_or_default()
        }),
        location: definition.location.unwrap_or_else(|| {
            existing
                .as_ref()
                .map(|p| p.location.clone())
                .unwrap_or_default()
        }),
        // A new part starts empty: a count given is recorded as a movement below, so that
        // the movements add up to the count.
        on_hand: existing.as_ref().map_or(0, |p| p.on_hand),
        reorder_point: definition
            .reorder_point
            .unwrap_or_else(|| existing.as_ref().map_or(0, |p| p.reorder_point)),
        on_order,
        // Nothing on order is expected at no time.
        expected_at: definition
            .expected_at
            .unwrap_or_else(|| existing.as_ref().and_then(|p| p.expected_at))
            .filter(|_| on_order > 0),
        updated_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3),
    }
    .normalise()
    .map_err(|e| Problem::bad_request(e.to_string()))?;
    if let Some(n) = definition.on_hand {
        StockChange::Counted(n)
            .validate()
            .map_err(|e| Problem::bad_request(e.to_string()).with_field("/onHand", "too many"))?;
    }
    // What is on order, and when, are left as stored unless given: a delivery recorded since
    // the read is not put back on order.
    let keep = mantis_store::KeepStored {
        on_order: definition.on_order.is_none(),
        expected_at: definition.expected_at.is_none(),
    };
    if create_only {
        // Added only if still not kept: another "new part" of the same number may have been
        // saved since the read above.
        if !s.store.add_spare_part(&part).await? {
            return Err(kept_already());
        }
    } else {
        s.store.upsert_spare_part(&part, keep).await?;
    }
    // A count given is recorded as one (the same count too: a stocktake that confirms it).
    if let Some(n) = definition.on_hand {
        let note = if existing.is_none() {
            "first count"
        } else {
            "counted (part definition)"
        };
        s.store
            .record_stock_movement(
                who.tenant_id,
                &number,
                StockChange::Counted(n),
                &who.username,
                note,
            )
            .await?;
    }
    tracing::info!(part = %number, by = %who.username, "spare part saved");
    Ok(Json(level(&s, who.tenant_id, &number).await?))
}

/// `DELETE /api/v1/spare-parts/{partNumber}`: the stores no longer keep it (work orders that
/// list it keep it in their lists; it is then not counted).
#[utoipa::path(delete, path = "/api/v1/spare-parts/{partNumber}", tag = "stores",
    params(("partNumber" = String, Path)), responses((status = 204, description = "Removed")))]
pub(crate) async fn delete_part(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let number = part_number(&raw)?;
    if !s.store.delete_spare_part(who.tenant_id, &number).await? {
        return Err(Problem::not_found(format!(
            "no spare part `{number}` in the stores"
        )));
    }
    tracing::info!(part = %number, by = %who.username, "spare part removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/spare-parts/{partNumber}/movements`: records a delivery (RECEIVED: added,
/// and taken off what is on order) or a count (COUNTED: the count becomes it).
#[utoipa::path(post, path = "/api/v1/spare-parts/{partNumber}/movements", tag = "stores",
    params(("partNumber" = String, Path)), request_body = NewMovement,
    responses((status = 201, body = RecordedMovement)))]
pub(crate) async fn record_movement(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewMovement = mantis_runtime::parse_json_object(&body)?;
    let number = part_number(&raw)?;
    let kind = StockMovementKind::parse(&new.kind)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field("/kind", e.to_string()))?;
    let change = match kind {
        StockMovementKind::Received => StockChange::Received(new.quantity),
        StockMovementKind::Counted => StockChange::Counted(new.quantity),
        StockMovementKind::Consumed => {
            return Err(Problem::bad_request(
                "parts are consumed by completing the work order that lists them",
            )
            .with_field("/kind", "RECEIVED or COUNTED"));
        }
    }
    .validate()
    .map_err(|e| Problem::bad_request(e.to_string()).with_field("/quantity", e.to_string()))?;
    let note = new.note.trim();
    if note.chars().count() > mantis_domain::MAX_PART_TEXT || note.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "a note is at most 500 characters without control characters",
        )
        .with_field("/note", "too long or with control characters"));
    }
    let movement = s
        .store
        .record_stock_movement(who.tenant_id, &number, change, &who.username, note)
        .await
        .map_err(|e| match e {
            mantis_store::Error::NotFound { .. } => {
                Problem::not_found(format!("no spare part `{number}` in the stores"))
            }
            // More than a count may be.
            mantis_store::Error::Rejected(why) => {
                Problem::bad_request(why).with_field("/quantity", "too many for the shelf")
            }
            e => e.into(),
        })?;
    tracing::info!(part = %number, kind = kind.as_str(), delta = movement.delta, by = %who.username, "stock movement");
    let part = level(&s, who.tenant_id, &number).await?;
    Ok((
        StatusCode::CREATED,
        Json(RecordedMovement { movement, part }),
    )
        .into_response())
}

/// `GET /api/v1/spare-parts/{partNumber}/movements?limit`: newest first.
#[utoipa::path(get, path = "/api/v1/spare-parts/{partNumber}/movements", tag = "stores",
    params(("partNumber" = String, Path), crate::api::ListQuery),
    responses((status = 200, body = Vec<StockMovement>)))]
pub(crate) async fn list_movements(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let number = part_number(&raw)?;
    let csv = wants_csv(&headers, &params)?;
    let n = limit(&params)?;
    if s.store
        .get_spare_part(who.tenant_id, &number)
        .await?
        .is_none()
    {
        return Err(Problem::not_found(format!(
            "no spare part `{number}` in the stores"
        )));
    }
    let movements = s
        .store
        .list_stock_movements(who.tenant_id, &number, n)
        .await?;
    list_response(&movements, csv, "stock-movements")
}
