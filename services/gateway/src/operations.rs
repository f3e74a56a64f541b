//! What people do about the plant: acknowledge and assign alerts, plan and work the work
//! orders.

use crate::api::{
    ApiResult, ApiState, Params, limit, list_response, parse_id, tenant_asset, wants_csv,
};
use crate::auth::Principal;
use crate::plant::{event_kind, in_calendar, not_in_future};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use mantis_domain::{
    AlertId, AssetId, MaintenanceEvent, MaintenanceEventId, MaintenanceEventKind, Priority,
    WorkOrder, WorkOrderId, WorkOrderStatus, deterministic_uuid,
};
use mantis_runtime::Problem;
use mantis_store::{
    AlertFilter, AlertRecord, AlertState, Part, PlannedSlot, WorkOrderChanges, WorkOrderFilter,
    WorkOrderRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An optional body: empty or JSON `null`.
fn no_body(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    trimmed.is_empty() || trimmed == b"null"
}

fn conflict(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, "Conflict", detail)
}

/// A work order's entity tag: when it was last changed (its `updatedAt`, quoted), so a client
/// can send back the `updatedAt` of the order it read as `If-Match` too.
fn work_order_etag(record: &WorkOrderRecord) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "\"{}\"",
        record
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    ))
    .ok()
}

/// `record` as the answer, with its entity tag.
fn work_order_response(status: StatusCode, record: WorkOrderRecord) -> Response {
    let etag = work_order_etag(&record);
    let mut response = (status, Json(record)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The `If-Match` precondition of a change to `record`: `None` without one (or `*`), the time
/// it was last changed when one of the tags names it (the change is then made only if it is
/// still that, a compare-and-set), else `412` — someone changed the order since the client
/// read it, and the change would undo theirs unseen.
fn precondition(headers: &HeaderMap, record: &WorkOrderRecord) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Problem::bad_request("If-Match must be ASCII entity tags"))?;
    if value.trim() == "*" {
        return Ok(None);
    }
    let mut tags = value.split(',').map(str::trim).filter(|t| !t.is_empty());
    if value.trim().is_empty() {
        return Err(Problem::bad_request(
            "If-Match is empty; send the ETag of the work order as read, or leave it out",
        ));
    }
    // Strong comparison (RFC 9110 §13.1.1): a weak tag never matches.
    let matches = tags.any(|tag| {
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.with_timezone(&Utc) == record.updated_at)
    });
    if matches {
        Ok(Some(record.updated_at))
    } else {
        Err(changed_since_read(record))
    }
}

/// A store's refusal of a change made under `If-Match`: `412` when the order was changed
/// between the read and the write.
fn stale_or(e: mantis_store::Error, record: &WorkOrderRecord) -> Problem {
    match e {
        mantis_store::Error::Stale(_) => changed_since_read(record),
        e => e.into(),
    }
}

fn changed_since_read(record: &WorkOrderRecord) -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "Precondition Failed",
        format!(
            "work order {} was changed since it was read (If-Match); reload it and make the \
             change again",
            record.order.code,
        ),
    )
}

// --- alerts -------------------------------------------------------------------------------------

/// `GET /api/v1/alerts?state=open|acknowledged|all&assetId&limit`.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "operations",
    params(("state" = Option<AlertStateParam>, Query, description = "default all"),
        ("assetId" = Option<String>, Query, format = Uuid), crate::api::ListQuery),
    responses((status = 200, body = Vec<AlertRecord>)))]
pub(crate) async fn list_alerts(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let state = match params.get("state").map(|s| s.to_ascii_lowercase()) {
        None => AlertState::All,
        Some(s) if s == "all" => AlertState::All,
        Some(s) if s == "open" => AlertState::Open,
        Some(s) if s == "acknowledged" => AlertState::Acknowledged,
        Some(s) => {
            return Err(
                Problem::bad_request("state must be open, acknowledged or all")
                    .with_field("/state", format!("`{s}` is not open, acknowledged or all")),
            );
        }
    };
    let asset_id = asset_filter(&s, &who, &params).await?;
    let alerts = s
        .store
        .list_alert_records(&AlertFilter {
            tenant: Some(who.tenant_id),
            asset_id,
            state,
            limit: Some(limit(&params)?),
        })
        .await?;
    list_response(&alerts, wants_csv(&headers, &params)?, "alerts")
}

/// The `assetId` filter of a list, when given: one of the caller's tenant's assets.
async fn asset_filter(
    s: &ApiState,
    who: &Principal,
    params: &Params,
) -> ApiResult<Option<AssetId>> {
    match params.get("assetId") {
        Some(raw) => {
            let id: AssetId = parse_id(raw, "assetId", "/assetId")?;
            tenant_asset(s.store.as_ref(), who, id).await?;
            Ok(Some(id))
        }
        None => Ok(None),
    }
}

/// `state` of the alert list.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum AlertStateParam {
    Open,
    Acknowledged,
    All,
}

/// The alert if it is the caller's tenant's.
async fn tenant_alert(s: &ApiState, who: &Principal, raw: &str) -> ApiResult<AlertRecord> {
    let id: AlertId = parse_id(raw, "the alert id", "/id")?;
    let record = s
        .store
        .get_alert_record(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("alert {id} does not exist")))?;
    tenant_asset(s.store.as_ref(), who, record.alert.asset_id)
        .await
        .map_err(|_| Problem::not_found(format!("alert {id} does not exist")))?;
    Ok(record)
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Acknowledgement {
    #[serde(default)]
    #[schema(max_length = 2000)]
    note: String,
}

/// `POST /api/v1/alerts/{id}/acknowledge`: records who acknowledged and when; acknowledging
/// again keeps the first acknowledgement.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "operations",
    params(("id" = String, Path, format = Uuid)), request_body(content = Option<Acknowledgement>),
    responses((status = 200, body = AlertRecord)))]
pub(crate) async fn acknowledge_alert(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let ack: Acknowledgement = if no_body(&body) {
        Acknowledgement::default()
    } else {
        mantis_runtime::parse_json_object(&body)?
    };
    if ack.note.len() > 2000 {
        return Err(Problem::bad_request("the note is too long")
            .with_field("/note", "at most 2000 characters"));
    }
    let record = tenant_alert(&s, &who, &id).await?;
    let first = s
        .store
        .acknowledge_alert(record.alert.id, &who.username, Utc::now(), &ack.note)
        .await?;
    let updated = s
        .store
        .get_alert_record(record.alert.id)
        .await?
        .ok_or_else(|| Problem::not_found("the alert disappeared"))?;
    if first {
        tracing::info!(alert = %record.alert.id, by = %who.username, "alert acknowledged");
        s.live.alert_changed(&updated, who.tenant_id);
    }
    Ok(Json(updated).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Assignment {
    /// A user of the plant; `null`: nobody.
    #[schema(min_length = 2)]
    assignee: Option<String>,
}

/// `POST /api/v1/alerts/{id}/assign` `{"assignee": "tom"}` (`null`: nobody).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/assign", tag = "operations",
    params(("id" = String, Path, format = Uuid)), request_body = Assignment,
    responses((status = 200, body = AlertRecord)))]
pub(crate) async fn assign_alert(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let assignment: Assignment = mantis_runtime::parse_json_object(&body)?;
    let assignee = assignment.assignee.map(|a| a.trim().to_owned());
    if let Some(a) = &assignee {
        check_person(&s, &who, a, "/assignee").await?;
    }
    let record = tenant_alert(&s, &who, &id).await?;
    s.store
        .assign_alert(record.alert.id, assignee.as_deref(), Utc::now())
        .await?;
    let updated = s
        .store
        .get_alert_record(record.alert.id)
        .await?
        .ok_or_else(|| Problem::not_found("the alert disappeared"))?;
    s.live.alert_changed(&updated, who.tenant_id);
    Ok(Json(updated).into_response())
}

/// A person work can be given to: a user of the caller's tenant.
async fn check_person(
    s: &ApiState,
    who: &Principal,
    username: &str,
    pointer: &str,
) -> ApiResult<()> {
    match s.store.get_user(username).await? {
        Some(u) if u.tenant_id == who.tenant_id && !u.disabled => Ok(()),
        _ => Err(
            Problem::bad_request(format!("`{username}` is not a user of this plant"))
                .with_field(pointer, "unknown user"),
        ),
    }
}

// --- work orders --------------------------------------------------------------------------------

/// The moves a work order may make.
pub(crate) fn allowed(from: WorkOrderStatus, to: WorkOrderStatus) -> bool {
    use WorkOrderStatus::*;
    matches!(
        (from, to),
        (Open, Scheduled | InProgress | Cancelled)
            | (Scheduled, InProgress | Cancelled | Open)
            | (InProgress, Completed | Scheduled | Cancelled)
    )
}

/// `GET /api/v1/work-orders?status=OPEN,IN_PROGRESS&assetId&limit`.
#[utoipa::path(get, path = "/api/v1/work-orders", tag = "operations",
    params(("status" = Option<String>, Query, description = "comma-separated statuses",
            pattern = r"^(OPEN|SCHEDULED|IN_PROGRESS|COMPLETED|CANCELLED)(,(OPEN|SCHEDULED|IN_PROGRESS|COMPLETED|CANCELLED))*$"),
        ("assetId" = Option<String>, Query, format = Uuid), crate::api::ListQuery),
    responses((status = 200, body = Vec<WorkOrderRecord>)))]
pub(crate) async fn list_work_orders(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let statuses = match params.get("status") {
        None => Vec::new(),
        Some(raw) => raw
            .split(',')
            .map(WorkOrderStatus::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Problem::bad_request(e.to_string()).with_field("/status", e.to_string())
            })?,
    };
    let asset_id = asset_filter(&s, &who, &params).await?;
    let orders = s
        .store
        .list_work_order_records(&WorkOrderFilter {
            tenant: Some(who.tenant_id),
            asset_id,
            statuses,
            limit: Some(limit(&params)?),
            soonest_due_first: false,
        })
        .await?;
    list_response(&orders, wants_csv(&headers, &params)?, "work-orders")
}

/// The work order if it is the caller's tenant's.
async fn tenant_work_order(s: &ApiState, who: &Principal, raw: &str) -> ApiResult<WorkOrderRecord> {
    let id: WorkOrderId = parse_id(raw, "the work order id", "/id")?;
    let record = s
        .store
        .get_work_order_record(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("work order {id} does not exist")))?;
    tenant_asset(s.store.as_ref(), who, record.order.asset_id)
        .await
        .map_err(|_| Problem::not_found(format!("work order {id} does not exist")))?;
    Ok(record)
}

/// `GET /api/v1/work-orders/{id}`.
#[utoipa::path(get, path = "/api/v1/work-orders/{id}", tag = "operations",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = WorkOrderRecord, headers(("ETag" = String, description = "when it was last changed, for If-Match")))))]
pub(crate) async fn get_work_order(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(work_order_response(
        StatusCode::OK,
        tenant_work_order(&s, &who, &id).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewWorkOrder {
    #[schema(value_type = String, format = Uuid)]
    asset_id: AssetId,
    #[schema(min_length = 1, pattern = r"\S")]
    description: String,
    #[schema(value_type = Priority)]
    priority: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    due_by: Option<DateTime<Utc>>,
    #[schema(min_length = 2)]
    technician: Option<String>,
    #[serde(default)]
    #[schema(max_items = 200)]
    parts: Vec<Part>,
    /// It is done while the asset runs (an inspection, a measurement): the plan does not move
    /// it into the asset's planned stops. Default false: the work stops the asset.
    #[serde(default)]
    while_running: bool,
}

/// Checks a parts list, its part numbers trimmed: as the stores write them (one word), so
/// that a part the stores keep is counted.
fn check_parts(parts: &mut [Part]) -> ApiResult<()> {
    for (i, p) in parts.iter_mut().enumerate() {
        p.part_number = mantis_domain::normalise_part_number(&p.part_number).map_err(|e| {
            Problem::bad_request(format!("parts[{i}]: {e}"))
                .with_field(format!("/parts/{i}/partNumber"), e.to_string())
        })?;
        if !(1..=100_000).contains(&p.quantity) {
            return Err(
                Problem::bad_request("a part's quantity must be within 1..=100000")
                    .with_field(format!("/parts/{i}/quantity"), "must be within 1..=100000"),
            );
        }
    }
    if parts.len() > 200 {
        return Err(Problem::bad_request("too many parts").with_field("/parts", "at most 200"));
    }
    Ok(())
}

fn parse_priority(raw: &str) -> ApiResult<Priority> {
    Priority::parse(raw)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field("/priority", e.to_string()))
}

/// `POST /api/v1/work-orders`: a work order planned by hand.
#[utoipa::path(post, path = "/api/v1/work-orders", tag = "operations", request_body = NewWorkOrder,
    responses((status = 201, body = WorkOrderRecord)))]
pub(crate) async fn create_work_order(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let mut new: NewWorkOrder = mantis_runtime::parse_json_object(&body)?;
    let priority = parse_priority(&new.priority)?;
    if new.description.trim().is_empty() {
        return Err(Problem::bad_request("a work order needs a description")
            .with_field("/description", "must not be empty"));
    }
    check_parts(&mut new.parts)?;
    if let Some(due_by) = new.due_by {
        in_calendar(due_by, "/dueBy")?;
    }
    let asset = tenant_asset(s.store.as_ref(), &who, new.asset_id).await?;
    if let Some(t) = &new.technician {
        check_person(&s, &who, t, "/technician").await?;
    }
    let now = Utc::now();
    // By default, the response time the plant set for the asset's criticality
    // (criticality.toml), as for the work orders the orchestrator opens.
    let due_by = new.due_by.unwrap_or_else(|| {
        now + Duration::from_std(s.rules.policy(asset.criticality).max_response())
            .unwrap_or(Duration::hours(24))
    });
    let id = WorkOrderId::new_random();
    let order = WorkOrder {
        id,
        code: format!("WO-{}-{}", now.format("%Y%m%d"), &id.to_string()[..8]),
        asset_id: asset.id,
        // Each manual work order is its own cause: several can be active on one asset.
        cause: format!("manual:{id}"),
        priority,
        status: WorkOrderStatus::Open,
        created_at: now,
        due_by,
        description: new.description.trim().to_owned(),
        rule: "manual".into(),
        trigger_event: format!("user:{}", who.username),
    };
    // Stored with its plan in one transaction: never a work order without its technician and
    // parts (which a retry of the failed request would then duplicate).
    let plan = WorkOrderChanges {
        technician: new.technician.is_some().then(|| new.technician.clone()),
        parts: (!new.parts.is_empty()).then(|| new.parts.clone()),
        while_running: new.while_running.then_some(true),
        ..WorkOrderChanges::default()
    };
    s.store.create_work_order(&order, &plan).await?;
    let record = tenant_work_order(&s, &who, &id.to_string()).await?;
    s.live.work_order_changed(&record, who.tenant_id);
    Ok(work_order_response(StatusCode::CREATED, record))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WorkOrderPatch {
    #[schema(min_length = 1, pattern = r"\S")]
    description: Option<String>,
    #[schema(value_type = Option<Priority>)]
    priority: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    due_by: Option<DateTime<Utc>>,
    /// Absent: unchanged; `null`: unassigned.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 2)]
    technician: Option<Option<String>>,
    #[schema(max_items = 200)]
    parts: Option<Vec<Part>>,
    /// When it is to be done. Absent: unchanged; `null`: no planned slot.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PlannedSlot>)]
    planned: Option<Option<PlannedSlot>>,
    /// Whether it is done while the asset runs.
    while_running: Option<bool>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/work-orders/{id}`: replans description, priority, due date, technician,
/// parts, planned slot, and whether it is done while the asset runs (the last two: a manager,
/// or a technician on their own order). A finished work order is not replanned.
#[utoipa::path(patch, path = "/api/v1/work-orders/{id}", tag = "operations",
    params(("id" = String, Path, format = Uuid), ("If-Match" = Option<String>, Header, description = "the `ETag` (or quoted `updatedAt`) of the work order as read: the change is made only if nobody changed it since (else 412)")), request_body = WorkOrderPatch,
    responses((status = 200, body = WorkOrderRecord, headers(("ETag" = String, description = "when it was last changed, for If-Match"))),
        (status = 412, description = "changed since it was read (If-Match)")))]
pub(crate) async fn update_work_order(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let mut patch: WorkOrderPatch = mantis_runtime::parse_json_object(&body)?;
    let priority = patch.priority.as_deref().map(parse_priority).transpose()?;
    if let Some(parts) = &mut patch.parts {
        check_parts(parts)?;
    }
    if let Some(due_by) = patch.due_by {
        in_calendar(due_by, "/dueBy")?;
    }
    if let Some(Some(slot)) = patch.planned {
        in_calendar(slot.start, "/planned/start")?;
        in_calendar(slot.end, "/planned/end")?;
        if slot.end <= slot.start {
            return Err(
                Problem::bad_request("a planned slot must end after it starts")
                    .with_field("/planned/end", "after start"),
            );
        }
    }
    if patch
        .description
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        return Err(Problem::bad_request("the description must not be empty")
            .with_field("/description", "must not be empty"));
    }
    let record = tenant_work_order(&s, &who, &id).await?;
    if !record.order.status.is_active() {
        return Err(conflict(format!(
            "work order {} is {} and can no longer be changed",
            record.order.code,
            record.order.status.as_str()
        )));
    }
    if let Some(t) = &patch.technician
        && *t != record.technician
    {
        // Assigning work is a manager's call; a technician may only take it on themselves.
        let own = t.as_deref() == Some(who.username.as_str());
        if !own && !who.role.includes(mantis_domain::Role::Manager) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "assigning a work order to someone else needs the manager role",
            ));
        }
        if let Some(t) = t {
            check_person(&s, &who, t, "/technician").await?;
        }
    }
    // Whether the work stops the asset weighs in the plan as its slot does.
    let replans = patch.planned.as_ref().is_some_and(|p| *p != record.planned)
        || patch
            .while_running
            .is_some_and(|w| w != record.while_running);
    if replans && !who.role.includes(mantis_domain::Role::Manager) {
        // A technician plans their own work only: the order is (or becomes) theirs.
        let theirs = patch
            .technician
            .as_ref()
            .unwrap_or(&record.technician)
            .as_deref()
            == Some(who.username.as_str());
        if !theirs {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "planning someone else's work order needs the manager role",
            ));
        }
    }
    // Checked last: a request that is refused anyway is refused for what it is.
    let unchanged_since = precondition(&headers, &record)?;
    s.store
        .update_work_order(
            record.order.id,
            &WorkOrderChanges {
                description: patch.description.map(|d| d.trim().to_owned()),
                priority,
                due_by: patch.due_by,
                // Only what changes: sending the same technician or slot back (an edit form
                // does) does not make the planner's choice a person's.
                technician: patch.technician.filter(|t| *t != record.technician),
                parts: patch.parts,
                planned: patch.planned.filter(|p| *p != record.planned),
                while_running: patch.while_running.filter(|w| *w != record.while_running),
                unchanged_since,
                ..WorkOrderChanges::default()
            },
        )
        .await
        .map_err(|e| stale_or(e, &record))?;
    let updated = tenant_work_order(&s, &who, &id).await?;
    s.live.work_order_changed(&updated, who.tenant_id);
    Ok(work_order_response(StatusCode::OK, updated))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Transition {
    #[schema(value_type = WorkOrderStatus)]
    to: String,
}

/// `POST /api/v1/work-orders/{id}/transition` `{"to": "IN_PROGRESS"}`.
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/transition", tag = "operations",
    params(("id" = String, Path, format = Uuid), ("If-Match" = Option<String>, Header, description = "the `ETag` (or quoted `updatedAt`) of the work order as read: the change is made only if nobody changed it since (else 412)")), request_body = Transition,
    responses((status = 200, body = WorkOrderRecord, headers(("ETag" = String, description = "when it was last changed, for If-Match"))),
        (status = 412, description = "changed since it was read (If-Match)")))]
pub(crate) async fn transition_work_order(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let transition: Transition = mantis_runtime::parse_json_object(&body)?;
    let to = WorkOrderStatus::parse(&transition.to)
        .map_err(|e| Problem::bad_request(e.to_string()).with_field("/to", e.to_string()))?;
    let record = tenant_work_order(&s, &who, &id).await?;
    let from = record.order.status;
    if from == to {
        // Done already (a retried call): answered as it is.
        return Ok(work_order_response(StatusCode::OK, record));
    }
    let unchanged_since = precondition(&headers, &record)?;
    if !allowed(from, to) {
        return Err(conflict(format!(
            "work order {} cannot go from {} to {}",
            record.order.code,
            from.as_str(),
            to.as_str()
        )));
    }
    if !s
        .store
        .transition_work_order(record.order.id, from, to, unchanged_since)
        .await
        .map_err(|e| stale_or(e, &record))?
    {
        return Err(conflict(format!(
            "work order {} was changed meanwhile; reload it",
            record.order.code
        )));
    }
    tracing::info!(work_order = %record.order.code, from = from.as_str(), to = to.as_str(), by = %who.username, "work order moved");
    let updated = tenant_work_order(&s, &who, &id).await?;
    s.live.work_order_changed(&updated, who.tenant_id);
    Ok(work_order_response(StatusCode::OK, updated))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Completion {
    /// What was found; none: nothing to record.
    #[schema(value_type = Option<mantis_domain::MaintenanceEventKind>)]
    outcome: Option<String>,
    /// When the failure or work happened; default now (never after the completion).
    #[schema(value_type = Option<String>, format = DateTime)]
    occurred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/work-orders/{id}/complete`: completes an active work order and records what
/// was found as a maintenance event (one per work order, so a retried call records nothing
/// twice). A FAILURE found by the work is followed by the asset's return to service, a REPAIR
/// at the completion: the KPIs count the downtime from `occurredAt` (when the technician says
/// it failed; default the completion: no downtime known) to the completion, not one that never
/// ends.
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/complete", tag = "operations",
    params(("id" = String, Path, format = Uuid), ("If-Match" = Option<String>, Header, description = "the `ETag` (or quoted `updatedAt`) of the work order as read: the change is made only if nobody changed it since (else 412)")), request_body(content = Option<Completion>),
    responses((status = 200, body = Completed, headers(("ETag" = String, description = "when it was last changed, for If-Match"))),
        (status = 412, description = "changed since it was read (If-Match)")))]
pub(crate) async fn complete_work_order(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let completion: Completion = if no_body(&body) {
        Completion::default()
    } else {
        mantis_runtime::parse_json_object(&body)?
    };
    let kind = completion
        .outcome
        .as_deref()
        .map(|o| event_kind(o, "/outcome"))
        .transpose()?;
    // At the store's precision (milliseconds), so the answer is what is recorded.
    let ms = |t: DateTime<Utc>| chrono::SubsecRound::trunc_subsecs(t, 3);
    let given = completion.occurred_at.map(ms);
    if let Some(at) = given {
        not_in_future(at, "/occurredAt")?;
    }
    let record = tenant_work_order(&s, &who, &id).await?;
    let order = &record.order;
    // When the work was completed: now, or when it was (completed before, e.g. without an
    // outcome). What it found happened then at the latest.
    let completed_at = if order.status == WorkOrderStatus::Completed {
        ms(record.updated_at)
    } else {
        ms(Utc::now())
    };
    let occurred_at = given.map_or(completed_at, |at| at.min(completed_at));
    if order.status == WorkOrderStatus::Cancelled {
        return Err(conflict(format!("work order {} was cancelled", order.code)));
    }
    // A retried completion is answered as recorded; a first one, from the order as read.
    let unchanged_since = if order.status == WorkOrderStatus::Completed {
        None
    } else {
        precondition(&headers, &record)?
    };
    // Compare and set from the status read: a cancellation racing this completion wins or
    // loses cleanly (409), never both.
    if order.status != WorkOrderStatus::Completed
        && !s
            .store
            .transition_work_order(
                order.id,
                order.status,
                WorkOrderStatus::Completed,
                unchanged_since,
            )
            .await
            .map_err(|e| stale_or(e, &record))?
    {
        return Err(conflict(format!(
            "work order {} was changed meanwhile; reload it",
            order.code
        )));
    }
    let event_id = MaintenanceEventId(deterministic_uuid(
        "maintenance-event",
        &[&order.id.to_string()],
    ));
    let event = match kind {
        // Completed again without an outcome: the one recorded, if any.
        None => s.store.get_maintenance_event(event_id).await?,
        Some(kind) => {
            let event = MaintenanceEvent {
                id: event_id,
                asset_id: order.asset_id,
                kind,
                occurred_at,
                work_order_id: Some(order.id),
                note: completion.note,
            };
            if s.store.insert_maintenance_event(&event).await? {
                Some(event)
            } else {
                // Completed before with an outcome: answer what is recorded, and refuse a
                // different outcome rather than echo one that was not recorded.
                let stored = s
                    .store
                    .get_maintenance_event(event.id)
                    .await?
                    .ok_or_else(|| Problem::internal("the recorded outcome vanished"))?;
                if stored.kind != event.kind {
                    return Err(conflict(format!(
                        "work order {} was completed with outcome {} at {}; record a \
                         correction as an event of the asset (POST /api/v1/assets/{}/events)",
                        order.code,
                        stored.kind.as_str(),
                        stored.occurred_at.to_rfc3339(),
                        order.asset_id
                    )));
                }
                Some(stored)
            }
        }
    };
    let restored = match &event {
        Some(failure) if failure.kind == MaintenanceEventKind::Failure => {
            Some(returned_to_service(&s, failure, order, completed_at).await?)
        }
        _ => None,
    };
    let updated = tenant_work_order(&s, &who, &id).await?;
    s.live.work_order_changed(&updated, who.tenant_id);
    let etag = work_order_etag(&updated);
    let mut response = Json(Completed {
        work_order: updated,
        event,
        restored,
    })
    .into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The asset's return to service after `failure`, found and mended by the work of `order`
/// completed at `completed_at`: a REPAIR then (one per work order: a retried completion answers
/// the first). At the failure's own instant when that is the completion (no downtime known:
/// the KPIs take the failure first, the reliability fit one failure).
async fn returned_to_service(
    s: &ApiState,
    failure: &MaintenanceEvent,
    order: &WorkOrder,
    completed_at: DateTime<Utc>,
) -> ApiResult<MaintenanceEvent> {
    let id = MaintenanceEventId(deterministic_uuid(
        "maintenance-event-restored",
        &[&order.id.to_string()],
    ));
    let repair = MaintenanceEvent {
        id,
        asset_id: order.asset_id,
        kind: MaintenanceEventKind::Repair,
        occurred_at: completed_at.max(failure.occurred_at),
        work_order_id: Some(order.id),
        note: format!("back in service: work order {} completed", order.code),
    };
    if s.store.insert_maintenance_event(&repair).await? {
        return Ok(repair);
    }
    // Recorded by an earlier call: that one.
    Ok(s.store.get_maintenance_event(id).await?.unwrap_or(repair))
}

/// A completed work order and the maintenance event recorded for it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Completed {
    work_order: WorkOrderRecord,
    event: Option<MaintenanceEvent>,
    /// After a FAILURE: the REPAIR recorded at the completion (the asset back in service).
    restored: Option<MaintenanceEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkOrderStatus::*;

    #[test]
    fn finished_work_orders_stay_finished_and_nothing_skips_being_worked() {
        assert!(allowed(Open, InProgress));
        assert!(allowed(InProgress, Completed));
        assert!(!allowed(Open, Completed), "must be worked first");
        for to in [Open, Scheduled, InProgress, Completed, Cancelled] {
            assert!(!allowed(Completed, to));
            assert!(!allowed(Cancelled, to));
        }
    }
}
