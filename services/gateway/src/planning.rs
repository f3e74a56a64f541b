//! The maintenance crew and the plan: who does which active work order, and when.
//!
//! The crew are the plant's users who take work orders, each with skills, weekly shifts on
//! their own clock and an active flag (`/api/v1/technicians`). The plan
//! (`GET /api/v1/schedule`) places every open or scheduled work order of the tenant within the
//! horizon: with the technician it is assigned to, or else with one who has the skill its
//! asset type needs (`rules/planning.toml`, which also says how long it takes), in one piece
//! within a shift, after the work the technician has in progress, minimising the
//! priority-weighted hours started after the due time ([`mantis_rules::plan`]). Applying it
//! (`POST /api/v1/schedule/apply`) assigns the technicians, records each order's planned
//! slot, moves open orders to SCHEDULED, and clears the slot of an order it could not place.
//!
//! Time off (`/api/v1/time-off`: a crew member's holiday or training, or the whole crew's: a
//! plant holiday, a shutdown) is taken out of the shifts: nothing is planned in it, and a slot
//! a person kept there is shown with why (`offShift`).
//!
//! The production calendar (`/api/v1/planned-stops`) says when machines stop anyway: work on an
//! asset within its planned stops costs no production. After lateness, the plan minimises the
//! hours of work outside them: an order that can wait for its asset's next stop without being
//! late waits for it, one that cannot is done when due (`plannedStopHours` per order,
//! `downtimeHours` for the plan); work done while the asset runs (`whileRunning`: the work
//! order's, or its cause's in `rules/planning.toml`) costs none and is not moved.

use crate::api::{
    ApiResult, ApiState, Params, limit, list_response, parse_id, tenant_assets, wants_csv,
};
use crate::auth::Principal;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use mantis_domain::{
    AssetId, Priority, Shift, Technician, TimeOff, TimeOffId, WorkOrderId, WorkOrderStatus,
    normalise_skill,
};
use mantis_rules::parts::{Demand, PartsReady, Stocked, allocate};
use mantis_rules::plan::{Budget, Task, Unplanned, Worker, plan};
use mantis_runtime::Problem;
use mantis_store::{PlannedSlot, WorkOrderChanges, WorkOrderFilter, WorkOrderRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use utoipa::ToSchema;

/// A stretch of time.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The default planning horizon, in hours (a week).
pub(crate) const DEFAULT_HORIZON_HOURS: i64 = 168;
/// The longest planning horizon, in hours (thirty days).
pub(crate) const MAX_HORIZON_HOURS: i64 = 720;
/// Open and scheduled work orders planned at most (those due soonest; the plan says when there
/// were more).
pub(crate) const MAX_PLANNED_ORDERS: u32 = 1_000;

// --- crew ------------------------------------------------------------------------------------

/// A crew member's planning details, as sent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CrewMember {
    /// What they can do (`electrical`, `mechanical`, …); compared in lower case.
    #[serde(default)]
    #[schema(max_items = 32)]
    skills: Vec<String>,
    /// When they work.
    #[serde(default)]
    #[schema(max_items = 21)]
    shifts: Vec<Shift>,
    /// The shifts' clock, in minutes east of UTC (60 for UTC+01:00). Default 0.
    #[serde(default)]
    #[schema(minimum = -840, maximum = 840)]
    utc_offset_minutes: i32,
    /// The shifts' clock as an IANA time zone (`Europe/Berlin`), daylight saving time
    /// followed; takes the place of `utcOffsetMinutes`.
    #[serde(default)]
    #[schema(example = "Europe/Berlin")]
    time_zone: Option<String>,
    /// Whether they are given work (false while away). Default true.
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

/// `GET /api/v1/technicians`: the crew, by name.
#[utoipa::path(get, path = "/api/v1/technicians", tag = "planning",
    responses((status = 200, body = Vec<Technician>)))]
pub(crate) async fn list_technicians(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<Technician>>> {
    Ok(Json(s.store.list_technicians(who.tenant_id).await?))
}

/// `PUT /api/v1/technicians/{name}`: adds a user of the plant to the crew, or replaces their
/// skills, shifts, clock and active flag.
#[utoipa::path(put, path = "/api/v1/technicians/{name}", tag = "planning",
    params(("name" = String, Path, description = "the user's username")),
    request_body = CrewMember, responses((status = 200, body = Technician)))]
pub(crate) async fn put_technician(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Technician>> {
    let member: CrewMember = mantis_runtime::parse_json_object(&body)?;
    let technician = Technician {
        tenant_id: who.tenant_id,
        name,
        skills: member.skills,
        shifts: member.shifts,
        utc_offset_minutes: member.utc_offset_minutes,
        time_zone: member.time_zone,
        active: member.active,
        updated_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3),
    }
    .normalise()
    .map_err(|e| Problem::bad_request(e.to_string()))?;
    match s.store.get_user(&technician.name).await? {
        Some(u) if u.tenant_id == who.tenant_id && !u.disabled => {}
        _ => {
            return Err(Problem::bad_request(format!(
                "`{}` is not a user of this plant: work orders are assigned to users",
                technician.name
            ))
            .with_field("/name", "unknown user"));
        }
    }
    s.store.upsert_technician(&technician).await?;
    tracing::info!(technician = %technician.name, by = %who.username, "crew member saved");
    Ok(Json(technician))
}

/// `DELETE /api/v1/technicians/{name}`: removes someone from the crew (their assigned work
/// orders keep them; the plan reports those as unplaced).
#[utoipa::path(delete, path = "/api/v1/technicians/{name}", tag = "planning",
    params(("name" = String, Path)), responses((status = 204, description = "Removed")))]
pub(crate) async fn delete_technician(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    // Trimmed, as `PUT` stores it.
    let name = name.trim();
    if !s.store.delete_technician(who.tenant_id, name).await? {
        return Err(Problem::not_found(format!("`{name}` is not in the crew")));
    }
    tracing::info!(technician = %name, by = %who.username, "crew member removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- time off --------------------------------------------------------------------------------

/// Time off as sent.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewTimeOff {
    /// The crew member away; left out (or null): the whole crew (a plant holiday, a shutdown).
    /// A blank name is refused.
    #[schema(max_length = 100)]
    technician: Option<String>,
    /// When it starts.
    #[schema(value_type = String, format = DateTime)]
    starts_at: DateTime<Utc>,
    /// When it ends: after the start, at most 366 days later.
    #[schema(value_type = String, format = DateTime)]
    ends_at: DateTime<Utc>,
    /// Why (`holiday`, `training`, `plant shutdown`).
    #[serde(default)]
    #[schema(max_length = 200)]
    reason: String,
}

/// Default span of `GET /api/v1/time-off` (from `from`, default now).
const TIME_OFF_SPAN_DAYS: i64 = 366;

/// `GET /api/v1/time-off?from&to&technician&limit`: the crew's time off overlapping
/// `[from, to)` (default: from now for a year), by start; with `technician`, what keeps them
/// from work (their own and the whole crew's).
#[utoipa::path(get, path = "/api/v1/time-off", tag = "planning",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "default now"),
        ("to" = Option<String>, Query, format = DateTime, description = "default a year after `from`"),
        ("technician" = Option<String>, Query, description = "only what applies to this crew member"),
        crate::api::ListQuery),
    responses((status = 200, body = Vec<TimeOff>)))]
pub(crate) async fn list_time_off(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let csv = wants_csv(&headers, &params)?;
    let limit = limit(&params)?;
    let (from, to) = crate::api::period_ahead(&params, TIME_OFF_SPAN_DAYS)?;
    let technician = params.get("technician").map(|t| t.trim());
    if technician.is_some_and(str::is_empty) {
        return Err(Problem::bad_request("technician must name a crew member")
            .with_field("/technician", "blank"));
    }
    let listed = s
        .store
        .list_time_off(who.tenant_id, from, to, technician, limit)
        .await?;
    list_response(&listed, csv, "time-off")
}

/// `POST /api/v1/time-off`: records time off of a crew member, or of the whole crew; the plan
/// places no work of theirs in it.
#[utoipa::path(post, path = "/api/v1/time-off", tag = "planning",
    request_body = NewTimeOff,
    responses((status = 201, body = TimeOff, headers(("Location" = String)))))]
pub(crate) async fn create_time_off(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let new: NewTimeOff = mantis_runtime::parse_json_object(&body)?;
    let time_off = TimeOff {
        id: TimeOffId::new_random(),
        tenant_id: who.tenant_id,
        technician: new.technician,
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        reason: new.reason,
        created_by: who.username.clone(),
        created_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3),
    }
    .normalise()
    .map_err(|e| {
        use mantis_domain::DomainError::{BadName, Empty};
        let pointer = match &e {
            BadName {
                what: "time off reason",
                ..
            } => "/reason",
            Empty(_) => "/technician",
            _ => "/endsAt",
        };
        Problem::bad_request(e.to_string()).with_field(pointer, e.to_string())
    })?;
    if let Some(name) = &time_off.technician
        && s.store.get_technician(who.tenant_id, name).await?.is_none()
    {
        return Err(Problem::bad_request(format!("`{name}` is not in the crew"))
            .with_field("/technician", "not a crew member"));
    }
    s.store.insert_time_off(&time_off).await?;
    tracing::info!(
        id = %time_off.id,
        technician = time_off.technician.as_deref().unwrap_or("(whole crew)"),
        from = %time_off.starts_at,
        to = %time_off.ends_at,
        by = %who.username,
        "time off recorded"
    );
    Ok(crate::api::created(
        &time_off,
        &format!("/api/v1/time-off/{}", time_off.id),
    ))
}

/// `DELETE /api/v1/time-off/{id}`: removes a stretch of time off.
#[utoipa::path(delete, path = "/api/v1/time-off/{id}", tag = "planning",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such time off")))]
pub(crate) async fn delete_time_off(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: TimeOffId = parse_id(&id, "the time off id", "/id")?;
    if !s.store.delete_time_off(who.tenant_id, id).await? {
        return Err(Problem::not_found(format!("time off {id} does not exist")));
    }
    tracing::info!(%id, by = %who.username, "time off removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- the plan --------------------------------------------------------------------------------

/// A work order's place in the plan.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlannedWorkOrder {
    #[schema(value_type = String, format = Uuid)]
    work_order_id: WorkOrderId,
    code: String,
    #[schema(value_type = String, format = Uuid)]
    asset_id: AssetId,
    /// The asset's code.
    asset: String,
    priority: Priority,
    status: WorkOrderStatus,
    technician: String,
    #[schema(value_type = String, format = DateTime)]
    start: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    end: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    due_by: DateTime<Utc>,
    /// Hours started after the due time (0 when on time).
    late_hours: f64,
    /// The skill it needs, if any.
    skill: Option<String>,
    /// It waits for parts on order, expected then (it starts no earlier).
    #[schema(value_type = Option<String>, format = DateTime)]
    parts_expected_at: Option<DateTime<Utc>>,
    /// Its parts are short, though a person (or the freeze before its start) keeps it here:
    /// what it lacks.
    parts_short: Option<String>,
    /// A slot a person (or the freeze) keeps falls where its technician does not work: why
    /// (their time off, the whole crew's, or outside their shifts).
    off_shift: Option<String>,
    /// Hours of it within its asset's planned stops (the asset stops for the rest, unless it
    /// is done while the asset runs).
    planned_stop_hours: f64,
    /// It is done while the asset runs (the work order says so, or `rules/planning.toml` of
    /// its cause): it costs no production and is not moved into the stops.
    while_running: bool,
}

/// A work order the plan could not place.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UnplacedWorkOrder {
    #[schema(value_type = String, format = Uuid)]
    work_order_id: WorkOrderId,
    code: String,
    #[schema(value_type = String, format = Uuid)]
    asset_id: AssetId,
    asset: String,
    priority: Priority,
    status: WorkOrderStatus,
    #[schema(value_type = String, format = DateTime)]
    due_by: DateTime<Utc>,
    /// Hours it is estimated to take.
    hours: f64,
    skill: Option<String>,
    /// Why.
    reason: String,
}

/// A crew member's load in the plan.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CrewLoad {
    name: String,
    skills: Vec<String>,
    active: bool,
    /// Shift hours within the horizon, less time off.
    available_hours: f64,
    /// Shift hours within the horizon lost to time off (theirs and the whole crew's).
    time_off_hours: f64,
    /// Hours of work in progress within the horizon.
    busy_hours: f64,
    /// Hours of planned work.
    planned_hours: f64,
}

/// The plan.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MaintenancePlan {
    #[schema(value_type = String, format = DateTime)]
    from: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    to: DateTime<Utc>,
    /// Placed work orders, by start.
    assignments: Vec<PlannedWorkOrder>,
    /// The others, with why.
    unassigned: Vec<UnplacedWorkOrder>,
    technicians: Vec<CrewLoad>,
    /// Σ priority weight × hours started late (URGENT 8, HIGH 4, NORMAL 2, LOW 1) of the
    /// placed orders: what the plan minimises, an order left out counting as starting an hour
    /// after the horizon.
    weighted_late_hours: f64,
    /// Hours of the placed work outside its assets' planned stops, but work done while the
    /// asset runs: the production time it stops machines for (after lateness, the plan
    /// minimises this time for the orders whose assets have planned stops).
    downtime_hours: f64,
    /// More open or scheduled work orders than are planned at once: those due soonest were.
    truncated: bool,
    /// The search stopped at its time limit (the best plan found by then).
    timed_out: bool,
    /// Work orders changed by applying it (0 for a proposal).
    applied: usize,
    /// Work orders applying it left alone because someone changed them meanwhile (plan again).
    skipped: usize,
}

/// What applying the plan does to the work orders.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApplyPlan {
    /// The horizon in hours (default 168, at most 720).
    #[schema(minimum = 1, maximum = 720)]
    hours: Option<i64>,
}

fn horizon(hours: Option<i64>, pointer: &str) -> ApiResult<i64> {
    match hours {
        None => Ok(DEFAULT_HORIZON_HOURS),
        Some(h) if (1..=MAX_HORIZON_HOURS).contains(&h) => Ok(h),
        Some(_) => Err(Problem::bad_request(format!(
            "the horizon must be 1 to {MAX_HORIZON_HOURS} hours"
        ))
        .with_field(pointer, "1 to 720")),
    }
}

/// `GET /api/v1/schedule?hours=168`: the plan for the active work orders (a proposal: nothing
/// is changed).
#[utoipa::path(get, path = "/api/v1/schedule", tag = "planning",
    params(("hours" = Option<i64>, Query, minimum = 1, maximum = 720,
        description = "the horizon in hours (default 168)")),
    responses((status = 200, body = MaintenancePlan)))]
pub(crate) async fn schedule(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<Params>,
) -> ApiResult<Json<MaintenancePlan>> {
    let hours = match params.get("hours") {
        None => None,
        Some(h) => Some(h.trim().parse::<i64>().map_err(|_| {
            Problem::bad_request("`hours` must be a whole number of hours")
                .with_field("/hours", "a whole number")
        })?),
    };
    let hours = horizon(hours, "/hours")?;
    let (schedule, _) = make(&s, &who, hours).await?;
    Ok(Json(schedule.plan))
}

/// `POST /api/v1/schedule/apply` `{"hours": 168}`: plans as `GET /api/v1/schedule` does and
/// applies it: each placed open or scheduled work order the planner may move gets its
/// technician and planned slot (an open one becomes SCHEDULED), each only if nobody changed it
/// since it was read (else it is counted in `skipped`); a planner's slot that could not be
/// placed again is cleared. What a person assigned or fixed is kept.
#[utoipa::path(post, path = "/api/v1/schedule/apply", tag = "planning",
    request_body(content = Option<ApplyPlan>), responses((status = 200, body = MaintenancePlan)))]
pub(crate) async fn apply(
    State(s): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: axum::body::Bytes,
) -> ApiResult<Json<MaintenancePlan>> {
    let trimmed = body.trim_ascii();
    let request: ApplyPlan = if trimmed.is_empty() || trimmed == b"null" {
        ApplyPlan { hours: None }
    } else {
        mantis_runtime::parse_json_object(&body)?
    };
    let hours = horizon(request.hours, "/hours")?;
    let plan = apply_plan(&s, &who, hours).await?;
    log_applied(&who, &plan);
    Ok(Json(plan))
}

/// Plans the tenant of `who` over the next `hours` and applies it (what
/// `POST /api/v1/schedule/apply` does, and the gateway's own planner every
/// `[gateway.planning] auto_apply_secs`).
pub(crate) async fn apply_plan(
    s: &ApiState,
    who: &Principal,
    hours: i64,
) -> ApiResult<MaintenancePlan> {
    let (made, records) = make(s, who, hours).await?;
    let mut plan = made.plan;
    let (mut applied, mut skipped) = (0, 0);
    for a in &plan.assignments {
        let Some(record) = records.get(&a.work_order_id) else {
            continue;
        };
        let slot = PlannedSlot {
            start: a.start,
            end: a.end,
        };
        // What a person set (a technician, a kept slot) is not written over.
        let technician = (record.technician.as_deref() != Some(a.technician.as_str()))
            .then(|| Some(a.technician.clone()));
        let planned = (!made.fixed.contains(&record.order.id)
            && (record.planned != Some(slot) || !record.planned_by_planner))
            .then_some(Some(slot));
        let mut changed = false;
        if technician.is_some() || planned.is_some() {
            let changes = WorkOrderChanges {
                technician,
                planned,
                by_planner: true,
                unchanged_since: Some(record.updated_at),
                ..WorkOrderChanges::default()
            };
            if !change(s, record.order.id, &changes).await? {
                skipped += 1;
                continue;
            }
            changed = true;
        }
        // An order the plan changed is scheduled; one it left as it was keeps its status (a
        // person may have moved it back to OPEN).
        if changed && record.order.status == WorkOrderStatus::Open {
            // Moved or closed meanwhile (a person's move wins): left as it is. An apply never
            // stops half way over one order.
            match s
                .store
                .transition_work_order(
                    record.order.id,
                    WorkOrderStatus::Open,
                    WorkOrderStatus::Scheduled,
                    None,
                )
                .await
            {
                Ok(_)
                | Err(
                    mantis_store::Error::Conflict(_)
                    | mantis_store::Error::Stale(_)
                    | mantis_store::Error::NotFound { .. },
                ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if changed {
            applied += 1;
            notify(s, who, record.order.id).await?;
        }
    }
    for n in &plan.unassigned {
        let Some(record) = records.get(&n.work_order_id) else {
            continue;
        };
        // The planner's slot goes, and the planner's technician with it; not one beyond this
        // plan's horizon (a longer plan's: this one did not look that far).
        if record.planned_by_planner && record.planned.is_some_and(|p| p.end > plan.to) {
            continue;
        }
        let planned = (record.planned.is_some() && record.planned_by_planner).then_some(None);
        let technician =
            (record.technician.is_some() && record.technician_by_planner).then_some(None);
        if planned.is_none() && technician.is_none() {
            continue;
        }
        let changes = WorkOrderChanges {
            planned,
            technician,
            by_planner: true,
            unchanged_since: Some(record.updated_at),
            ..WorkOrderChanges::default()
        };
        if change(s, record.order.id, &changes).await? {
            applied += 1;
            notify(s, who, record.order.id).await?;
        } else {
            skipped += 1;
        }
    }
    (plan.applied, plan.skipped) = (applied, skipped);
    Ok(plan)
}

/// When the gateway plans by itself (`[gateway.planning]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanningConfig {
    /// Every this many seconds, each tenant that has a crew is planned and the plan applied,
    /// as a manager's `POST /api/v1/schedule/apply` would (what a person assigned or fixed is
    /// kept). 0 (the default): only when a manager applies it. Several gateway replicas with
    /// it each plan (harmless: every change is a compare-and-set, the second pass finds
    /// nothing to do, or counts what it skipped), at the cost of their CPU.
    pub auto_apply_secs: u64,
    /// The horizon of those plans, in hours (1 to 720). Default 168.
    pub horizon_hours: i64,
}

impl Default for PlanningConfig {
    fn default() -> Self {
        Self {
            auto_apply_secs: 0,
            horizon_hours: DEFAULT_HORIZON_HOURS,
        }
    }
}

impl PlanningConfig {
    /// Checks the horizon.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_HORIZON_HOURS).contains(&self.horizon_hours) {
            return Err(format!(
                "[gateway.planning] horizon_hours must be 1 to {MAX_HORIZON_HOURS}, got {}",
                self.horizon_hours
            ));
        }
        Ok(())
    }
}

fn log_applied(who: &Principal, plan: &MaintenancePlan) {
    tracing::info!(
        by = %who.username,
        tenant = %who.tenant_id,
        placed = plan.assignments.len(),
        unplaced = plan.unassigned.len(),
        applied = plan.applied,
        skipped = plan.skipped,
        weighted_late_hours = plan.weighted_late_hours,
        "maintenance plan applied"
    );
}

/// Who the automatic plans are applied as (no user can be it: an API key's principal is
/// `key:<name>`, a login's has the login credential).
fn automatic_planner(tenant: mantis_domain::TenantId) -> Principal {
    Principal {
        username: "planner".into(),
        display_name: "Automatic planner".into(),
        role: mantis_domain::Role::Manager,
        tenant_id: tenant,
        credential: crate::auth::Credential::ApiKey,
    }
}

/// The gateway's own planner: every `config.auto_apply_secs`, plans and applies the work of
/// each tenant that has a crew, as a manager would (user `planner`). A failure is logged and
/// tried again at the next period.
pub(crate) async fn auto_apply(
    s: ApiState,
    config: PlanningConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> mantis_runtime::Result<()> {
    let every = std::time::Duration::from_secs(config.auto_apply_secs.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let tenants: std::collections::BTreeSet<mantis_domain::TenantId> = match s
            .store
            .list_users(None)
            .await
        {
            Ok(users) => users.into_iter().map(|u| u.tenant_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "automatic plan: the users could not be read; next period");
                continue;
            }
        };
        for tenant in tenants {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            // A tenant with a crew is planned (when nobody of it can take work, that clears
            // what the planner had given them, once, as a manager's apply would).
            match s.store.list_technicians(tenant).await {
                Ok(crew) if !crew.is_empty() => {}
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(%tenant, error = %e, "automatic plan: the crew could not be read");
                    continue;
                }
            }
            let planner = automatic_planner(tenant);
            // In a task of its own: a panic in one tenant's pass is logged, and neither stops
            // the worker (and with it the gateway) nor the other tenants.
            let (state, hours) = (s.clone(), config.horizon_hours);
            let pass = tokio::spawn(async move { apply_plan(&state, &planner, hours).await }).await;
            let outcome = match pass {
                Ok(Ok(plan)) => {
                    metrics::counter!("mantis_plan_work_orders_changed_total")
                        .increment(plan.applied as u64);
                    // A pass that changed nothing is not news.
                    if plan.applied + plan.skipped > 0 {
                        log_applied(&automatic_planner(tenant), &plan);
                    }
                    "applied"
                }
                Ok(Err(p)) => {
                    tracing::warn!(%tenant, status = p.status, detail = %p.detail, "automatic plan not applied; next period");
                    "failed"
                }
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "automatic plan failed; next period");
                    "failed"
                }
            };
            metrics::counter!("mantis_plan_auto_runs_total", "outcome" => outcome).increment(1);
        }
    }
}

/// Changes a work order as the plan says; false when it was changed, completed or cancelled
/// since it was read (it is left as it is).
async fn change(s: &ApiState, id: WorkOrderId, changes: &WorkOrderChanges) -> ApiResult<bool> {
    match s.store.update_work_order(id, changes).await {
        Ok(()) => Ok(true),
        Err(
            mantis_store::Error::Conflict(_)
            | mantis_store::Error::Stale(_)
            | mantis_store::Error::NotFound { .. },
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Tells the live clients that a work order changed.
async fn notify(s: &ApiState, who: &Principal, id: WorkOrderId) -> ApiResult<()> {
    if let Some(updated) = s.store.get_work_order_record(id).await? {
        s.live.work_order_changed(&updated, who.tenant_id);
    }
    Ok(())
}

fn hours_of(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 3_600_000.0
}

/// Stretches of time off read for one plan at most (a horizon holds a few per person).
const MAX_TIME_OFF_PLANNED: u32 = 10_000;

/// Planned stops read for one plan at most (the tenant's within the horizon: a month of a
/// thousand machines' daily breaks is 30 000).
const MAX_STOPS_PLANNED: u32 = 50_000;

/// Why `slot` of `worker` falls outside their working time within the plan's `horizon`, if it
/// does: the planner places work within it, so only a slot a person (or the freeze) kept can.
fn off_shift(worker: &Worker, time_off: &[TimeOff], slot: Span, horizon: Span) -> Option<String> {
    // The worker's time is known within the horizon only (a kept slot may have started).
    let (start, end) = (slot.0.max(horizon.0), slot.1.min(horizon.1));
    if start >= end
        || worker
            .available
            .iter()
            .any(|&(a, b)| a <= start && end <= b)
    {
        return None;
    }
    let away = time_off
        .iter()
        .find(|o| o.applies_to(&worker.name) && o.starts_at < end && start < o.ends_at);
    Some(match away {
        Some(o) => {
            let whose = match &o.technician {
                Some(name) => format!("{name} is on time off"),
                None => "the whole crew is off".to_owned(),
            };
            let why = if o.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.reason)
            };
            format!(
                "{whose}{why} from {} to {}",
                o.starts_at.to_rfc3339(),
                o.ends_at.to_rfc3339()
            )
        }
        None => format!("outside {}'s shifts", worker.name),
    })
}

/// How long before its start a planner's slot is no longer moved (the technician may be on
/// the way).
const FREEZE: Duration = Duration::hours(1);

/// A plan with what it was made from.
struct Made {
    plan: MaintenancePlan,
    /// Work orders kept where a person (or the freeze before a start) fixed them.
    fixed: HashSet<WorkOrderId>,
}

/// Plans the tenant's open and scheduled work orders over the next `hours`, around the work in
/// progress; also returns the records planned, by id.
async fn make(
    s: &ApiState,
    who: &Principal,
    hours: i64,
) -> ApiResult<(Made, HashMap<WorkOrderId, WorkOrderRecord>)> {
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    let to = now + Duration::hours(hours);
    // Crew members whose account is gone or disabled take no work.
    let enabled: HashSet<String> = s
        .store
        .list_users(Some(who.tenant_id))
        .await?
        .into_iter()
        .filter(|u| !u.disabled)
        .map(|u| u.username)
        .collect();
    let crew: Vec<Technician> = s
        .store
        .list_technicians(who.tenant_id)
        .await?
        .into_iter()
        .map(|mut t| {
            t.active &= enabled.contains(&t.name);
            t
        })
        .collect();
    let assets: HashMap<AssetId, mantis_domain::Asset> = tenant_assets(s.store.as_ref(), who)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let listed = |statuses: Vec<WorkOrderStatus>| WorkOrderFilter {
        tenant: Some(who.tenant_id),
        asset_id: None,
        statuses,
        limit: Some(MAX_PLANNED_ORDERS + 1),
        soonest_due_first: true,
    };
    let mut open = s
        .store
        .list_work_order_records(&listed(vec![
            WorkOrderStatus::Open,
            WorkOrderStatus::Scheduled,
        ]))
        .await?;
    let truncated = open.len() > MAX_PLANNED_ORDERS as usize;
    open.truncate(MAX_PLANNED_ORDERS as usize);
    let started = s
        .store
        .list_work_order_records(&listed(vec![WorkOrderStatus::InProgress]))
        .await?;
    // The parts on the shelf and on order, shared out: work in progress first, then urgent
    // work, due soonest first. An order waits for a delivery it needs; one whose parts are
    // not to be had is not planned.
    let stock: BTreeMap<String, Stocked> = s
        .store
        .list_spare_parts(who.tenant_id)
        .await?
        .into_iter()
        .map(|p| {
            let stocked = Stocked {
                on_hand: p.on_hand.into(),
                on_order: p.on_order.into(),
                expected_at: p.expected_at,
            };
            (p.part_number, stocked)
        })
        .collect();
    let demand = |r: &WorkOrderRecord, in_progress: bool| Demand {
        parts: mantis_store::part_totals(&r.parts),
        in_progress,
        priority: r.order.priority,
        due: r.order.due_by,
    };
    let demands: Vec<Demand> = started
        .iter()
        .map(|r| demand(r, true))
        .chain(open.iter().map(|r| demand(r, false)))
        .collect();
    let parts_ready = allocate(&demands, &stock, now).split_off(started.len());
    let parts_at = |j: usize| match parts_ready[j] {
        PartsReady::At(t) => Some(t),
        _ => None,
    };
    let estimates = s.estimates.clone();
    let asset_type = |id: AssetId| assets.get(&id).map_or("", |a| a.asset_type.as_str());
    let estimate = |r: &WorkOrderRecord| {
        let hours = estimates.hours(asset_type(r.order.asset_id), &r.order.cause);
        Duration::milliseconds((hours * 3_600_000.0).round() as i64)
    };

    // Work in progress takes its technician's time until its planned end, or for its
    // estimated duration from when it was last changed (started, usually), one piece after
    // the other. Those ends are chained without the clock, so plans made one after the other
    // agree (nothing behind the work moves on every pass); what ran over is taken to end now.
    let mut busy: HashMap<&str, Vec<Span>> = HashMap::new();
    let mut chained: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for r in &started {
        if let Some(t) = &r.technician {
            let spans = busy.entry(t.as_str()).or_default();
            let from = spans.last().map_or(now, |&(_, e)| e);
            let end = match r.planned {
                Some(p) if p.end > from => p.end,
                _ => {
                    // A last change in the future (a host's clock ahead) counts as now.
                    let since = r.updated_at.min(now);
                    chained.get(t.as_str()).map_or(since, |&e| e.max(since)) + estimate(r)
                }
            };
            chained.insert(t.as_str(), end);
            spans.push((from, end.max(from)));
        }
    }
    // Time off (a crew member's or everyone's) is taken out of the shifts.
    let time_off = s
        .store
        .list_time_off(who.tenant_id, now, to, None, MAX_TIME_OFF_PLANNED)
        .await?;
    if time_off.len() >= MAX_TIME_OFF_PLANNED as usize {
        tracing::warn!(
            limit = MAX_TIME_OFF_PLANNED,
            "more time off within the horizon than a plan reads: the stretches starting latest are not taken out of the shifts"
        );
    }
    // The assets' planned stops within the horizon (each one's own and the whole plant's).
    let stops = s
        .store
        .list_planned_stops(who.tenant_id, now, to, None, MAX_STOPS_PLANNED)
        .await?;
    if stops.len() >= MAX_STOPS_PLANNED as usize {
        tracing::warn!(
            limit = MAX_STOPS_PLANNED,
            "more planned stops within the horizon than a plan reads: those starting latest are not weighed"
        );
    }
    // Spans joined for the assets with work to plan only (a plant-wide stop is every asset's).
    let planned_assets: HashSet<AssetId> = open.iter().map(|r| r.order.asset_id).collect();
    let stopped = crate::kpi::stopped(&stops, planned_assets, now, to);
    let workers: Vec<Worker> = crew
        .iter()
        .filter(|t| t.active)
        .map(|t| Worker {
            name: t.name.clone(),
            skills: t.skills.clone(),
            available: t.working_time(now, to, &time_off),
            busy: busy.get(t.name.as_str()).cloned().unwrap_or_default(),
        })
        .collect();
    // What the planner keeps: a person's technician; a person's slot (its technician found
    // by the planner when the planner chose it or nobody did); the planner's own slot once it
    // starts within the freeze, while its technician is an active crew member.
    let keeps: Vec<(Option<PlannedSlot>, Option<PlannedSlot>)> = open
        .iter()
        .map(|r| {
            let live = |p: &PlannedSlot| p.end > now && p.end > p.start;
            let active = r
                .technician
                .as_deref()
                .is_some_and(|t| workers.iter().any(|w| w.name == t));
            let frozen = r
                .planned
                .filter(|p| live(p) && r.planned_by_planner && active && p.start < now + FREEZE);
            let kept = r
                .planned
                .filter(|p| live(p) && !r.planned_by_planner)
                .or(frozen);
            (kept, frozen)
        })
        .collect();
    // The orders the search places (indexes into `open`): those whose parts can be there,
    // and those kept where they are whatever their parts (their technician's time stays
    // taken; the plan says what they lack).
    let plannable: Vec<usize> = (0..open.len())
        .filter(|&j| !matches!(parts_ready[j], PartsReady::Short { .. }) || keeps[j].0.is_some())
        .collect();
    let mut fixed = HashSet::new();
    let tasks: Vec<Task> = plannable
        .iter()
        .map(|&j| {
            let r = &open[j];
            let (kept, frozen) = keeps[j];
            if kept.is_some() {
                fixed.insert(r.order.id);
            }
            Task {
                ready: parts_at(j).map_or(now, |t| t.max(now)),
                due: r.order.due_by,
                duration: kept.map_or_else(|| estimate(r), |p| p.end - p.start),
                priority: r.order.priority,
                skill: estimates
                    .skill(asset_type(r.order.asset_id))
                    .map(normalise_skill),
                // A person's technician, the planner's within the freeze, and whoever has a
                // kept slot that has started or runs past the horizon (nobody could be found
                // free for all of it within the horizon: it would lose its technician).
                technician: if !r.technician_by_planner
                    || frozen.is_some()
                    || kept.is_some_and(|p| p.start < now || p.end > to)
                {
                    r.technician.clone()
                } else {
                    None
                },
                fixed: kept.map(|p| p.start),
                stops: stopped.get(&r.order.asset_id).cloned().unwrap_or_default(),
                while_running: r.while_running || estimates.while_running(&r.order.cause),
            }
        })
        .collect();
    // Two searches at a time at most: one of a large backlog takes a CPU up to its time
    // limit. The permit goes with the search, which runs on even if the caller hangs up.
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.planner.clone().acquire_owned(),
    )
    .await
    .map_err(|_| Problem::unavailable("the planner is busy with other plans; try again shortly"))?
    .map_err(|_| Problem::unavailable("the planner is shutting down"))?;
    let (result, workers, tasks) = tokio::task::spawn_blocking(move || {
        let result = plan(&workers, &tasks, to, Budget::default());
        drop(permit);
        (result, workers, tasks)
    })
    .await
    .map_err(|e| Problem::internal(format!("the planner stopped: {e}")))?;

    let code = |id: AssetId| assets.get(&id).map(|a| a.code.clone()).unwrap_or_default();
    let mut planned_hours: HashMap<usize, f64> = HashMap::new();
    let assignments: Vec<PlannedWorkOrder> = result
        .slots
        .iter()
        .map(|slot| {
            let j = plannable[slot.task];
            let r = &open[j];
            *planned_hours.entry(slot.worker).or_default() += hours_of(slot.end - slot.start);
            PlannedWorkOrder {
                work_order_id: r.order.id,
                code: r.order.code.clone(),
                asset_id: r.order.asset_id,
                asset: code(r.order.asset_id),
                priority: r.order.priority,
                status: r.order.status,
                technician: workers[slot.worker].name.clone(),
                start: slot.start,
                end: slot.end,
                due_by: r.order.due_by,
                late_hours: hours_of((slot.start - r.order.due_by).max(Duration::zero())),
                skill: tasks[slot.task].skill.clone(),
                parts_expected_at: parts_at(j),
                parts_short: matches!(parts_ready[j], PartsReady::Short { .. })
                    .then(|| parts_ready[j].to_string()),
                off_shift: off_shift(
                    &workers[slot.worker],
                    &time_off,
                    (slot.start, slot.end),
                    (now, to),
                ),
                planned_stop_hours: hours_of(slot.in_stops),
                while_running: tasks[slot.task].while_running,
            }
        })
        .collect();
    let unplaced = |r: &WorkOrderRecord, duration: Duration, skill: Option<String>, reason| {
        UnplacedWorkOrder {
            work_order_id: r.order.id,
            code: r.order.code.clone(),
            asset_id: r.order.asset_id,
            asset: code(r.order.asset_id),
            priority: r.order.priority,
            status: r.order.status,
            due_by: r.order.due_by,
            hours: hours_of(duration),
            skill,
            reason,
        }
    };
    let mut unassigned: Vec<UnplacedWorkOrder> = result
        .unplanned
        .iter()
        .map(|(task, why)| {
            let t = &tasks[*task];
            let reason = match why {
                Unplanned::NoTime => format!(
                    "{why} ({:.1} h within the next {hours} h)",
                    hours_of(t.duration)
                ),
                _ => why.to_string(),
            };
            unplaced(&open[plannable[*task]], t.duration, t.skill.clone(), reason)
        })
        .collect();
    for (j, ready) in parts_ready.iter().enumerate() {
        if matches!(ready, PartsReady::Short { .. }) && keeps[j].0.is_none() {
            let r = &open[j];
            let skill = estimates
                .skill(asset_type(r.order.asset_id))
                .map(normalise_skill);
            unassigned.push(unplaced(r, estimate(r), skill, ready.to_string()));
        }
    }
    let technicians = crew
        .iter()
        .map(|t| {
            let index = workers.iter().position(|w| w.name == t.name);
            let span = |spans: &[Span]| {
                spans
                    .iter()
                    .map(|&(a, b)| hours_of(b.min(to) - a.max(now)).max(0.0))
                    .sum::<f64>()
            };
            let available = index.map_or(0.0, |w| span(&workers[w].available));
            CrewLoad {
                name: t.name.clone(),
                skills: t.skills.clone(),
                active: t.active,
                available_hours: available,
                time_off_hours: index.map_or(0.0, |_| {
                    (span(&t.availability(now, to)) - available).max(0.0)
                }),
                busy_hours: index.map_or(0.0, |w| span(&workers[w].busy)),
                planned_hours: index
                    .and_then(|w| planned_hours.get(&w).copied())
                    .unwrap_or(0.0),
            }
        })
        .collect();
    let by_id = open.into_iter().map(|r| (r.order.id, r)).collect();
    Ok((
        Made {
            plan: MaintenancePlan {
                from: now,
                to,
                assignments,
                unassigned,
                technicians,
                weighted_late_hours: result.weighted_late_hours,
                downtime_hours: result.downtime_hours,
                truncated,
                timed_out: result.timed_out,
                applied: 0,
                skipped: 0,
            },
            fixed,
        },
        by_id,
    ))
}
