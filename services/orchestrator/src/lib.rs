//! # mantis-orchestrator
//!
//! Turns conclusions into decisions. Consumes `anomaly.detected` and `rul.predicted`,
//! evaluates the routing rules and criticality matrix from `rules/` (`mantis-rules`), and:
//!
//! - opens a work order when a rule asks for one: at most one active work order per asset and
//!   cause, however many anomalies arrive (the store enforces it, also under concurrency), due
//!   within the criticality's response time from when the event was published; an event
//!   published before the asset's work order for that cause was closed opens nothing (a
//!   backlog after an outage does not send a technician back for work already done);
//! - raises one alert per work order opened (or per event when no work order is involved) on
//!   `alerts.critical`, and one more each time a later event of the same incident is more
//!   severe than any alert of it so far (escalation), flagged for the on-call technician on
//!   CRITICAL assets; anomalies of unregistered assets go to the dead-letter topic;
//! - publishes scheduled maintenance on `maintenance.scheduled` when the RUL falls below the
//!   asset's threshold;
//! - checks the active work orders every minute and raises one alert for each that is past its
//!   due time (again after a replan, when the new one passes), its severity from the work
//!   order's priority (URGENT → CRITICAL), flagged for the on-call technician on CRITICAL
//!   assets, at most ten a minute, the longest overdue first: the response time is enforced,
//!   not only written;
//! - pushes alerts and scheduled maintenance to the plant's systems over signed webhooks
//!   ([`webhooks`]).
//!
//! Every id is derived from the triggering event, and a small outbox marker in the store
//! records what was published, so a redelivered event neither duplicates rows nor loses a
//! publication; a publication is repeated when the process fails between publishing and
//! writing its marker, or when two replicas handle the same work at once (at least once:
//! consumers key on the alert's or work order's id).

use async_trait::async_trait;
use chrono::Utc;
use mantis_bus::{Position, TraceContext};
use mantis_domain::Timestamp;
use mantis_domain::{
    Alert, AlertKind, Anomaly, AssetId, Criticality, Priority, RulPrediction, Severity, WorkOrder,
    WorkOrderId, WorkOrderStatus, deterministic_uuid,
};
use mantis_rules::plan::Estimates;
use mantis_rules::{Decision, Event, RuleSet};
use mantis_runtime::{
    App, HandleError, Handler, Infra, Publisher, RecordContext, Result, run_consumer,
};
use mantis_store::{OpenedWorkOrder, Part, Store, WorkOrderChanges};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub mod webhooks;

/// Configuration of the orchestrator (`[orchestrator]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8006` (`mantis`, all services in one process:
    /// `127.0.0.1:8006`; this API takes no credentials).
    pub bind: String,
    /// Signed webhooks by name (`[orchestrator.webhooks.<name>]`): alerts and scheduled
    /// maintenance pushed to the plant's systems. None by default.
    pub webhooks: BTreeMap<String, webhooks::Webhook>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8006".into(),
            webhooks: BTreeMap::new(),
        }
    }
}

/// Consumer group for anomalies.
pub const ANOMALY_GROUP: &str = "orchestrator.anomaly";
/// Consumer group for RUL predictions.
pub const RUL_GROUP: &str = "orchestrator.rul";

/// The decision logic shared by both consumers.
#[derive(Clone)]
struct Orchestrator {
    store: Arc<dyn Store>,
    publisher: Publisher,
    rules: Arc<RuleSet>,
    /// What the planner assumes of work (`planning.toml`): here, the parts a kind of work
    /// takes, listed on the work orders opened (reserved in the stores).
    estimates: Arc<Estimates>,
    /// The overdue work orders (id, due time in ms) whose alert this process has seen stored
    /// and published: not looked up again by later checks while they stay overdue.
    overdue_alerted: Arc<std::sync::Mutex<HashSet<(WorkOrderId, i64)>>>,
}

/// What triggered a decision.
#[derive(Clone)]
struct Trigger<'a> {
    asset: AssetId,
    kind: AlertKind,
    /// Stable id of the triggering event.
    event_id: String,
    /// When the event happened by its own account (an anomaly's window end, a prediction's
    /// time).
    occurred: Timestamp,
    severity: Severity,
    message: String,
    decision: &'a Decision,
}

impl Orchestrator {
    async fn criticality(&self, asset: AssetId) -> Result<Criticality, HandleError> {
        match self.store.get_asset(asset).await? {
            Some(a) => Ok(a.criticality),
            None => Err(HandleError::Permanent(format!(
                "asset {asset} is not registered"
            ))),
        }
    }

    /// Publishes `record` unless the outbox marker says it already was; returns whether it
    /// published it now. (At least once: a failure between publishing and writing the marker
    /// publishes it again on the retry; consumers key on the record's id.)
    async fn publish_once<R: mantis_codec::Record>(
        &self,
        marker: &str,
        key: Option<String>,
        record: &R,
        trace: TraceContext,
    ) -> Result<bool, HandleError> {
        let marker = format!("orchestrator.published.{marker}");
        if self.store.get_state(&marker).await?.is_some() {
            return Ok(false);
        }
        self.publisher.publish(key, record, trace, vec![]).await?;
        self.store
            .put_state(&marker, &serde_json::json!({"at": Utc::now().to_rfc3339()}))
            .await?;
        Ok(true)
    }

    /// The parts `planning.toml` lists for work of `cause` on `asset`'s type.
    async fn kit(&self, asset: AssetId, cause: &str) -> Result<Vec<Part>, HandleError> {
        let Some(asset) = self.store.get_asset(asset).await? else {
            return Ok(Vec::new());
        };
        Ok(self
            .estimates
            .kit(&asset.asset_type, cause)
            .iter()
            .map(|p| Part {
                part_number: p.part_number.clone(),
                quantity: p.quantity,
            })
            .collect())
    }

    /// Opens `candidate` with `kit` as its parts list (in one transaction), or answers the
    /// active work order of its asset and cause (a redelivery's own included). A code taken
    /// by another work order is a conflict.
    async fn open(
        &self,
        candidate: &WorkOrder,
        kit: &[Part],
    ) -> Result<OpenedWorkOrder, mantis_store::Error> {
        if kit.is_empty() {
            return self.store.open_work_order(candidate).await;
        }
        let plan = WorkOrderChanges {
            parts: Some(kit.to_vec()),
            ..WorkOrderChanges::default()
        };
        let mut last = None;
        for _ in 0..3 {
            match self.store.create_work_order(candidate, &plan).await {
                Ok(()) => {
                    return Ok(OpenedWorkOrder {
                        work_order: candidate.clone(),
                        created: true,
                    });
                }
                Err(mantis_store::Error::Conflict(why)) => {
                    // Its id (a redelivery: the order as stored, whatever became of it) or
                    // an active one for its asset and cause: that one.
                    if let Some(stored) = self.store.get_work_order(candidate.id).await? {
                        return Ok(OpenedWorkOrder {
                            work_order: stored,
                            created: false,
                        });
                    }
                    let active = self
                        .store
                        .list_work_orders(&mantis_store::WorkOrderFilter {
                            asset_id: Some(candidate.asset_id),
                            statuses: vec![
                                WorkOrderStatus::Open,
                                WorkOrderStatus::Scheduled,
                                WorkOrderStatus::InProgress,
                            ],
                            // One per cause: all of the asset's active ones, whatever their
                            // number (the default page would miss it behind 100 newer ones).
                            limit: Some(10_000),
                            ..mantis_store::WorkOrderFilter::default()
                        })
                        .await?
                        .into_iter()
                        .find(|w| w.cause == candidate.cause);
                    if let Some(active) = active {
                        return Ok(OpenedWorkOrder {
                            work_order: active,
                            created: false,
                        });
                    }
                    // Neither: its code is taken, or the active one was closed meanwhile
                    // (then the next try opens it, with its kit, in one transaction).
                    last = Some(why);
                }
                Err(e) => return Err(e),
            }
        }
        Err(mantis_store::Error::Conflict(last.unwrap_or_default()))
    }

    async fn act(&self, t: Trigger<'_>, ctx: &RecordContext<'_>) -> Result<(), HandleError> {
        let now = Utc::now();
        let published = published_at(ctx.envelope.timestamp_ms, t.occurred, now);
        let happened = happened_at(published, t.occurred);
        let mut work_order: Option<WorkOrder> = None;
        if let Some(req) = &t.decision.work_order {
            let id = WorkOrderId(deterministic_uuid("work-order", &[&t.event_id]));
            // (Unless this is a redelivery of the event that opened it: then the work order is
            // its own, and what it still has to publish is finished below.)
            if let Some(closed) = self
                .store
                .last_closed_work_order(t.asset, &req.cause)
                .await?
                && happened <= closed
                && self.store.get_work_order(id).await?.is_none()
            {
                // The work this event asks for was done (or dismissed) after it was published:
                // opening it again would send a technician back for what was already seen.
                // An alert this event raised on a first attempt (stored, its publication
                // failed, the work order closed meanwhile) is still published.
                self.publish_alerts_of(t.asset, &t.event_id, ctx.trace)
                    .await?;
                metrics::counter!("mantis_events_after_closure_total", "cause" => req.cause.clone())
                    .increment(1);
                tracing::info!(asset = %t.asset, cause = %req.cause, event = %t.event_id, %closed, "event published before the asset's work order for this cause was closed; nothing opened");
                return Ok(());
            }
            let candidate = WorkOrder {
                id,
                code: format!("WO-{}-{}", now.format("%Y%m%d"), &id.to_string()[..8]),
                asset_id: t.asset,
                cause: req.cause.clone(),
                priority: req.priority,
                status: WorkOrderStatus::Open,
                created_at: now,
                due_by: published
                    + chrono::Duration::from_std(req.due_within)
                        .unwrap_or(chrono::Duration::hours(24)),
                description: t.message.clone(),
                rule: req.rule.clone(),
                trigger_event: t.event_id.clone(),
            };
            let kit = self.kit(t.asset, &req.cause).await?;
            let opened = match self.open(&candidate, &kit).await {
                // Another work order has this code (the same day and the same first eight hex
                // digits of its id: rare, not impossible): the whole id tells them apart. A
                // redelivery finds the work order by its id, whatever its code.
                Err(mantis_store::Error::Conflict(why)) => {
                    tracing::warn!(work_order = %id, code = %candidate.code, %why, "work order code taken; the whole id used");
                    let code = format!("WO-{}-{}", now.format("%Y%m%d"), id.0.simple());
                    self.open(&WorkOrder { code, ..candidate }, &kit).await?
                }
                other => other?,
            };
            if opened.created {
                metrics::counter!("mantis_work_orders_opened_total", "cause" => req.cause.clone())
                    .increment(1);
                tracing::info!(asset = %t.asset, work_order = %opened.work_order.code, cause = %req.cause, "work order opened");
            }
            work_order = Some(opened.work_order);
        }
        if t.decision.schedule_maintenance
            && let Some(wo) = &work_order
        {
            self.publish_once(
                &format!("maintenance.{}", wo.id),
                Some(wo.id.to_string()),
                wo,
                ctx.trace,
            )
            .await?;
        }
        if t.decision.alert {
            match &work_order {
                // One alert per event when no work order is involved.
                None => self.raise(&t, t.event_id.clone(), None, now, ctx).await?,
                Some(wo) => self.alert_incident(&t, wo, now, ctx).await?,
            }
        }
        Ok(())
    }

    /// The alerts of a work order's incident: one when it opens (raised by whichever event
    /// finds none, should the opening event have failed after opening it), and one more each
    /// time an event finds it more severe than any alert of the incident so far (a score
    /// climbing further above the threshold). Later events of the same or lower severity are
    /// absorbed by the work order.
    async fn alert_incident(
        &self,
        t: &Trigger<'_>,
        wo: &WorkOrder,
        now: Timestamp,
        ctx: &RecordContext<'_>,
    ) -> Result<(), HandleError> {
        let key = format!("work-order:{}", wo.id);
        let Some(first) = self.store.get_alert(Alert::id_for(&key)).await? else {
            return self.raise(t, key, Some(wo.id), now, ctx).await;
        };
        // Every event of the incident finishes what an earlier one may not have published (the
        // event that stored an alert may have failed after storing it, for good, and gone to
        // the dead-letter topic); the outbox marker keeps each alert to one publication.
        if first.trigger_event == t.event_id {
            return self.publish_alert(&first, ctx.trace).await;
        }
        self.publish_earlier(&first, ctx.trace).await?;
        let mut highest = first.severity;
        for level in Severity::ALL.into_iter().filter(|s| *s > first.severity) {
            if let Some(escalation) = self
                .store
                .get_alert(Alert::id_for(&escalation_key(&key, level)))
                .await?
            {
                if escalation.trigger_event == t.event_id {
                    return self.publish_alert(&escalation, ctx.trace).await;
                }
                self.publish_earlier(&escalation, ctx.trace).await?;
                highest = highest.max(level);
            }
        }
        if t.severity > highest {
            tracing::info!(asset = %t.asset, work_order = %wo.code, from = %highest, to = %t.severity, "incident escalated");
            metrics::counter!("mantis_alerts_escalated_total").increment(1);
            let escalated = Trigger {
                message: format!("escalated from {highest} to {}: {}", t.severity, t.message),
                ..t.clone()
            };
            self.raise(
                &escalated,
                escalation_key(&key, t.severity),
                Some(wo.id),
                now,
                ctx,
            )
            .await?;
        }
        Ok(())
    }

    /// Stores the alert keyed `key` (once) and publishes the stored one (once).
    async fn raise(
        &self,
        t: &Trigger<'_>,
        key: String,
        work_order_id: Option<WorkOrderId>,
        now: Timestamp,
        ctx: &RecordContext<'_>,
    ) -> Result<(), HandleError> {
        let alert = Alert {
            id: Alert::id_for(&key),
            asset_id: t.asset,
            severity: t.severity,
            kind: t.kind,
            message: t.message.clone(),
            created_at: now,
            work_order_id,
            trigger_event: t.event_id.clone(),
            notify_on_call: t.decision.notify_on_call,
        };
        self.record_alert(alert, ctx.trace).await.map(drop)
    }

    /// Stores `alert` (once per id) and publishes the stored one (once): also on a redelivery,
    /// or when another replica stored it first. Returns whether it was stored now.
    async fn record_alert(&self, alert: Alert, trace: TraceContext) -> Result<bool, HandleError> {
        let new = self.store.insert_alert(&alert).await?;
        let stored = self.store.get_alert(alert.id).await?.unwrap_or(alert);
        self.publish_alert(&stored, trace).await?;
        Ok(new)
    }

    /// Raises one alert for each active work order past its due time (the criticality's
    /// response time): once per work order and due time (replanned to a later time, it is
    /// alerted again when that one passes), its severity from the work order's priority,
    /// flagged for the on-call technician on CRITICAL assets. At most
    /// [`OVERDUE_ALERTS_PER_SWEEP`] new ones per sweep, the longest overdue first, so a backlog
    /// (the first start after an upgrade) arrives over minutes rather than as one burst. A work
    /// order whose alert cannot be stored or published is logged and tried again at the next
    /// sweep; the others still get theirs. Returns how many it raised now.
    async fn sweep_overdue(&self, now: Timestamp) -> Result<usize, HandleError> {
        self.sweep_overdue_in_pages(now, OVERDUE_PAGE).await
    }

    /// [`Orchestrator::sweep_overdue`], reading `page` work orders at a time.
    async fn sweep_overdue_in_pages(
        &self,
        now: Timestamp,
        page: u32,
    ) -> Result<usize, HandleError> {
        let mut raised = 0;
        let mut after = None;
        let mut seen = HashSet::new();
        loop {
            // Oldest due first, a page at a time: however many were alerted before, the
            // newly overdue ones behind them are reached.
            let overdue = self
                .store
                .list_overdue_work_orders(now, after, page)
                .await?;
            for wo in &overdue {
                let key = (wo.id, wo.due_by.timestamp_millis());
                seen.insert(key);
                if self.alerted_overdue().contains(&key) {
                    continue;
                }
                if raised >= OVERDUE_ALERTS_PER_SWEEP {
                    return Ok(raised);
                }
                match self.alert_overdue(wo, now).await {
                    Ok(new) => {
                        raised += usize::from(new);
                        self.alerted_overdue().insert(key);
                    }
                    Err(e) => {
                        tracing::warn!(work_order = %wo.code, error = %e, "overdue alert not raised; tried again at the next check");
                    }
                }
            }
            match overdue.last() {
                Some(last) if overdue.len() == page as usize => {
                    after = Some((last.due_by, last.id));
                }
                _ => {
                    // Every overdue work order was read: those no longer overdue (closed,
                    // replanned) are forgotten.
                    self.alerted_overdue().retain(|key| seen.contains(key));
                    return Ok(raised);
                }
            }
        }
    }

    fn alerted_overdue(&self) -> std::sync::MutexGuard<'_, HashSet<(WorkOrderId, i64)>> {
        self.overdue_alerted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The overdue alert of `wo` for its current due time, stored and published (each once).
    /// Returns whether it was raised now.
    async fn alert_overdue(&self, wo: &WorkOrder, now: Timestamp) -> Result<bool, HandleError> {
        let key = format!(
            "work-order:{}:overdue:{}",
            wo.id,
            wo.due_by.timestamp_millis()
        );
        let trace = TraceContext::new_root();
        if let Some(stored) = self.store.get_alert(Alert::id_for(&key)).await? {
            // Raised before; published unless a failure came between the two.
            self.publish_alert(&stored, trace).await?;
            return Ok(false);
        }
        // Read again: the work order may have been closed or replanned since the sweep listed it.
        match self.store.get_work_order(wo.id).await? {
            Some(now_wo) if now_wo.status.is_active() && now_wo.due_by == wo.due_by => {}
            _ => return Ok(false),
        }
        let asset = self.store.get_asset(wo.asset_id).await?;
        let alert = Alert {
            id: Alert::id_for(&key),
            asset_id: wo.asset_id,
            severity: match wo.priority {
                Priority::Urgent => Severity::Critical,
                Priority::High => Severity::High,
                Priority::Normal => Severity::Medium,
                Priority::Low => Severity::Low,
            },
            // The alert kinds are the events'; a work order planned by hand counts as an
            // anomaly's (something seen on the machine).
            kind: if wo.cause == "rul" {
                AlertKind::Rul
            } else {
                AlertKind::Anomaly
            },
            message: format!(
                "{}: work order {} is overdue (due by {}, still {}): {}",
                asset.as_ref().map_or_else(
                    || wo.asset_id.to_string(),
                    |a| format!("{} ({})", a.code, a.name)
                ),
                wo.code,
                wo.due_by.format("%Y-%m-%d %H:%M UTC"),
                wo.status.as_str(),
                mantis_domain::clip(&wo.description, OVERDUE_DESCRIPTION_CHARS)
            ),
            created_at: now,
            work_order_id: Some(wo.id),
            trigger_event: key,
            notify_on_call: asset.is_some_and(|a| a.criticality == Criticality::Critical),
        };
        // Another replica may have stored it first: then it counts there.
        let new = self.record_alert(alert, trace).await?;
        if new {
            tracing::warn!(asset = %wo.asset_id, work_order = %wo.code, due_by = %wo.due_by, "work order overdue");
            metrics::counter!("mantis_work_orders_overdue_total").increment(1);
        }
        Ok(new)
    }

    /// Publishes (once) an alert that an earlier event of the incident stored: a failure that
    /// retrying cannot cure is that event's, logged here, not charged to this event (which would
    /// go to the dead-letter topic for it and raise nothing of its own).
    async fn publish_earlier(&self, alert: &Alert, trace: TraceContext) -> Result<(), HandleError> {
        match self.publish_alert(alert, trace).await {
            Err(HandleError::Permanent(e)) => {
                tracing::warn!(alert = %alert.id, error = %e, "an earlier alert of the incident cannot be published");
                Ok(())
            }
            other => other,
        }
    }

    /// Publishes (once) the alerts of `asset` that `event` raised, among its newest.
    async fn publish_alerts_of(
        &self,
        asset: AssetId,
        event: &str,
        trace: TraceContext,
    ) -> Result<(), HandleError> {
        let filter = mantis_store::AlertFilter {
            tenant: None,
            asset_id: Some(asset),
            state: mantis_store::AlertState::All,
            limit: Some(100),
        };
        for record in self.store.list_alert_records(&filter).await? {
            if record.alert.trigger_event == event {
                self.publish_earlier(&record.alert, trace).await?;
            }
        }
        Ok(())
    }

    async fn publish_alert(&self, alert: &Alert, trace: TraceContext) -> Result<(), HandleError> {
        let published = self
            .publish_once(&format!("alert.{}", alert.id), None, alert, trace)
            .await?;
        if published && alert.notify_on_call {
            tracing::warn!(asset = %alert.asset_id, alert = %alert.id, "on-call technician to be notified");
        }
        Ok(())
    }
}

/// How often active work orders are checked against their due time.
const OVERDUE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Overdue work orders read at a time.
const OVERDUE_PAGE: u32 = 500;
/// New overdue alerts per check at most.
const OVERDUE_ALERTS_PER_SWEEP: usize = 10;
/// Characters of a work order's description quoted in its overdue alert.
const OVERDUE_DESCRIPTION_CHARS: usize = 200;
/// The lease of the replica that sweeps overdue work orders.
const OVERDUE_LEASE: &str = "orchestrator.overdue-sweep";

/// Checks for overdue work orders every [`OVERDUE_EVERY`] until `shutdown`.
async fn watch_overdue(orchestrator: Orchestrator, shutdown: CancellationToken) -> Result<()> {
    let mut every = tokio::time::interval(OVERDUE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One replica sweeps at a time (a lease in the store): replicas started together would
    // otherwise each find the same newly overdue order unalerted and both publish its alert.
    let holder = mantis_runtime::lease_holder(None, "orchestrator");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                // Handed over at once (a rolling update does not leave the sweep to wait for
                // the lease to lapse).
                if let Err(e) = orchestrator
                    .store
                    .release_lease(OVERDUE_LEASE, &holder, None)
                    .await
                {
                    tracing::debug!(error = %e, "overdue sweep lease not released; it lapses");
                }
                return Ok(());
            }
            _ = every.tick() => {}
        }
        match orchestrator
            .store
            .acquire_lease(OVERDUE_LEASE, &holder, Utc::now(), OVERDUE_EVERY * 3)
            .await
        {
            Ok(lease) if lease.is_held_by(&holder) => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "overdue work orders not checked (lease unavailable); will retry");
                continue;
            }
        }
        match orchestrator.sweep_overdue(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(alerts = n, "overdue work orders alerted"),
            Err(e) => tracing::warn!(error = %e, "overdue work orders not checked; will retry"),
        }
    }
}

/// When a conclusion was published: its record's time on the bus (`bus_ms`; a broker that
/// gives none: the event's own time, `occurred`), not when this consumer got to it, so a
/// backlog after an outage neither extends a deadline nor reopens work closed after the
/// conclusion. Never later than `now`: a publisher's clock ahead of this host's counts as now,
/// not as a reason to fall back on the device's clock (which may be hours off).
fn published_at(bus_ms: i64, occurred: Timestamp, now: Timestamp) -> Timestamp {
    Some(bus_ms)
        .filter(|ms| *ms > 0)
        .and_then(mantis_domain::timestamp_from_millis)
        .map(|t| t.min(now))
        .unwrap_or_else(|| occurred.min(now))
}

/// How far behind its publication an event's own time is believed: a window scored and
/// published again after a redelivery is minutes late; a device clock further off is not
/// believed.
const DEVICE_TIME_TRUSTED_WITHIN: chrono::Duration = chrono::Duration::minutes(15);

/// When an event happened, for deciding whether the work it asks for was closed after it: the
/// earlier of its publication and its own time (an anomaly published again when its features
/// were redelivered is still the old window's), its own time only when within
/// [`DEVICE_TIME_TRUSTED_WITHIN`] of the publication. A device clock hours behind would
/// otherwise date every new incident before the last closure, and suppress it for hours.
fn happened_at(published: Timestamp, occurred: Timestamp) -> Timestamp {
    if published - occurred <= DEVICE_TIME_TRUSTED_WITHIN {
        published.min(occurred)
    } else {
        published
    }
}

/// The key of an incident's escalation to `level`.
fn escalation_key(incident: &str, level: Severity) -> String {
    format!("{incident}:escalated:{level}")
}

struct AnomalyConsumer(Orchestrator);

#[async_trait]
impl Handler for AnomalyConsumer {
    type Input = Anomaly;

    async fn handle(
        &mut self,
        a: &Anomaly,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let decision = self.0.rules.evaluate(&Event::Anomaly {
            criticality: a.criticality,
            score: a.score,
        });
        if decision.matched.is_empty() {
            return Ok(ctx.done());
        }
        let explanation: Vec<String> = a
            .contributions
            .iter()
            .map(|c| format!("{} z={:+.1}", c.feature, c.z_score))
            .collect();
        // Name things the way people on the floor know them. An asset nobody registered has
        // no tenant to see its alerts and work orders: refused, as for RUL predictions.
        let Some(asset) = self.0.store.get_asset(a.asset_id).await? else {
            return Err(HandleError::Permanent(format!(
                "asset {} is not registered",
                a.asset_id
            )));
        };
        let sensor = self.0.store.get_sensor(a.sensor_id).await?;
        let message = format!(
            "{}: {} anomaly on {} (score {:.2} ≥ {:.2}); most deviant: {}",
            format_args!("{} ({})", asset.code, asset.name),
            a.severity,
            sensor.map_or_else(|| a.sensor_id.to_string(), |s| s.code),
            a.score,
            a.threshold,
            explanation.join(", ")
        );
        let trigger = Trigger {
            asset: a.asset_id,
            kind: AlertKind::Anomaly,
            event_id: format!("anomaly:{}", a.id),
            occurred: a.detected_at,
            severity: a.severity,
            message,
            decision: &decision,
        };
        self.0.act(trigger, ctx).await?;
        Ok(ctx.done())
    }
}

struct RulConsumer(Orchestrator);

#[async_trait]
impl Handler for RulConsumer {
    type Input = RulPrediction;

    async fn handle(
        &mut self,
        p: &RulPrediction,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let criticality = self.0.criticality(p.asset_id).await?;
        let decision = self.0.rules.evaluate(&Event::Rul {
            criticality,
            rul_cycles: p.rul_cycles,
        });
        if decision.matched.is_empty() {
            return Ok(ctx.done());
        }
        let threshold = self.0.rules.policy(criticality).rul_threshold_cycles;
        let trigger = Trigger {
            asset: p.asset_id,
            kind: AlertKind::Rul,
            event_id: format!("rul:{}:{}", p.asset_id, p.predicted_at.timestamp_millis()),
            occurred: p.predicted_at,
            severity: match criticality {
                Criticality::Critical => Severity::Critical,
                Criticality::High => Severity::High,
                Criticality::Medium => Severity::Medium,
                Criticality::Low => Severity::Low,
            },
            message: format!(
                "remaining useful life {:.0} cycles (interval {:.0}–{:.0}) is below {threshold:.0}",
                p.rul_cycles, p.confidence_lower, p.confidence_upper
            ),
            decision: &decision,
        };
        self.0.act(trigger, ctx).await?;
        Ok(ctx.done())
    }
}

/// Checks `config` as [`build`] does before it connects anything (`mantis config check`): the
/// rules and planning estimates in `infra.rules_dir`, and every webhook (URL, secret).
pub fn check_config(infra: &mantis_runtime::InfraSettings, config: &Config) -> Result<()> {
    prepare(infra, config).map(drop)
}

type Prepared = (RuleSet, Estimates, Vec<webhooks::Ready>);

fn prepare(infra: &mantis_runtime::InfraSettings, config: &Config) -> Result<Prepared> {
    let rules = RuleSet::load_or_builtin(infra.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let estimates = Estimates::load_or_builtin(infra.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let hooks = webhooks::ready_all(&config.webhooks)
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    Ok((rules, estimates, hooks))
}

/// Builds the orchestrator.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let (rules, estimates, hooks) = prepare(&infra.settings, &config)?;
    let health = App::health("orchestrator", &infra);
    health.set_detail(
        "rules",
        serde_json::json!(
            rules
                .rules()
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        ),
    );
    let orchestrator = Orchestrator {
        store: infra.store.clone(),
        publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "orchestrator"),
        rules: Arc::new(rules),
        estimates: Arc::new(estimates),
        overdue_alerted: Arc::default(),
    };
    let (a, r, overdue) = (
        AnomalyConsumer(orchestrator.clone()),
        RulConsumer(orchestrator.clone()),
        orchestrator,
    );
    let board = webhooks::Board::new(health.clone(), &hooks);
    let mut app = App::new("orchestrator", &config.bind, axum::Router::new(), health).await?;
    for hook in hooks {
        for kind in hook.settings.events.clone() {
            let (infra, group) = (infra.clone(), hook.group(kind));
            let label = format!("webhook {} ({kind:?})", hook.name);
            let (hook, board) = (hook.clone(), board.clone());
            app = app.worker(label, move |shutdown| async move {
                match kind {
                    webhooks::EventKind::Alert => {
                        webhooks::deliver::<Alert>(infra, hook, kind, board, &group, shutdown).await
                    }
                    webhooks::EventKind::Maintenance => {
                        webhooks::deliver::<WorkOrder>(infra, hook, kind, board, &group, shutdown)
                            .await
                    }
                }
            });
        }
    }
    let infra2 = infra.clone();
    Ok(app
        .worker("anomaly consumer", move |shutdown| {
            run_consumer(infra, ANOMALY_GROUP, a, shutdown)
        })
        .worker("rul consumer", move |shutdown| {
            run_consumer(infra2, RUL_GROUP, r, shutdown)
        })
        .worker("overdue work orders", move |shutdown| {
            watch_overdue(overdue, shutdown)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_bus::{StartFrom, SubscribeOptions, embedded::EmbeddedBus, topics};
    use mantis_domain::{Asset, AssetId, SensorId, TenantId};
    use mantis_store::WorkOrderFilter;
    use mantis_store::sqlite::SqliteStore;
    use std::time::Duration;

    struct Plant {
        infra: Infra,
        orchestrator: Orchestrator,
        publisher: Publisher,
        pump: Asset,
        sensor: SensorId,
        /// The start of window 0: ten minutes before the test began.
        base: Timestamp,
        _dir: tempfile::TempDir,
    }

    async fn plant() -> Plant {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = EmbeddedBus::open(dir.path()).await.expect("log opens");
        let infra = Infra::in_process(
            Arc::new(bus),
            Arc::new(SqliteStore::in_memory().await.expect("sqlite")),
        );
        infra.ensure_topics(&[]).await.expect("topics");
        let pump = Asset {
            id: AssetId::new_random(),
            tenant_id: TenantId::DEFAULT,
            code: "PMP-001".into(),
            name: "Coolant pump".into(),
            asset_type: "pump".into(),
            location: "Line 1".into(),
            criticality: Criticality::Medium,
        };
        infra.store.upsert_asset(&pump).await.expect("registered");
        let orchestrator = Orchestrator {
            store: infra.store.clone(),
            publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "orchestrator"),
            rules: Arc::new(RuleSet::builtin().expect("rules")),
            estimates: Arc::new(Estimates::builtin().expect("planning")),
            overdue_alerted: Arc::default(),
        };
        let publisher = Publisher::new(infra.bus.clone(), infra.codec.clone(), "anomaly");
        Plant {
            infra,
            orchestrator,
            publisher,
            pump,
            sensor: SensorId::new_random(),
            base: Utc::now() - chrono::Duration::minutes(10),
            _dir: dir,
        }
    }

    impl Plant {
        /// Publishes an anomaly of `asset` on the n-th 30 s window, scored `score` against the
        /// MEDIUM threshold 0.85.
        async fn anomaly(&self, asset: AssetId, n: i64, score: f64) {
            let start = self.base + chrono::Duration::seconds(30 * n);
            let anomaly = Anomaly {
                id: Anomaly::id_for(self.sensor, start),
                asset_id: asset,
                sensor_id: self.sensor,
                window_start: start,
                detected_at: start + chrono::Duration::seconds(30),
                score,
                threshold: 0.85,
                severity: Severity::for_anomaly(Criticality::Medium, score, 0.85),
                criticality: Criticality::Medium,
                method: "test".into(),
                contributions: vec![],
            };
            self.publisher
                .publish(
                    Some(asset.to_string()),
                    &anomaly,
                    TraceContext::new_root(),
                    vec![],
                )
                .await
                .expect("published");
        }

        /// Opens `wo` (it must be new).
        async fn open(&self, wo: &WorkOrder) {
            let opened = self.infra.store.open_work_order(wo).await.expect("opened");
            assert!(opened.created, "{} opened", wo.code);
        }

        /// The ids of the alerts on `alerts.critical`, in order.
        async fn published_alerts(&self) -> Vec<mantis_domain::AlertId> {
            let mut sub = self
                .infra
                .bus
                .subscribe(SubscribeOptions::new(
                    "reader",
                    [topics::ALERTS_CRITICAL],
                    StartFrom::Earliest,
                ))
                .await
                .expect("subscription");
            let mut published = Vec::new();
            while let Ok(Ok(env)) =
                tokio::time::timeout(Duration::from_millis(500), sub.next()).await
            {
                let a: Alert = self
                    .infra
                    .codec
                    .decode(&env.payload)
                    .await
                    .expect("an alert");
                published.push(a.id);
            }
            published
        }

        /// Runs the anomaly consumer until it has handled `n` records (stored what they
        /// cause, or refused them).
        async fn handle(&self, n: usize) {
            let (done, mut handled) = tokio::sync::mpsc::unbounded_channel();
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(run_consumer(
                self.infra.clone(),
                ANOMALY_GROUP,
                Counting {
                    inner: AnomalyConsumer(self.orchestrator.clone()),
                    done,
                },
                shutdown.clone(),
            ));
            for _ in 0..n {
                tokio::time::timeout(Duration::from_secs(30), handled.recv())
                    .await
                    .expect("handled in time")
                    .expect("consumer running");
            }
            shutdown.cancel();
            task.await.expect("joins").expect("clean stop");
        }

        async fn alerts(&self) -> Vec<Alert> {
            let mut alerts = self.infra.store.list_alerts(100).await.expect("alerts");
            alerts.sort_by_key(|a| a.severity);
            alerts
        }

        async fn work_orders(&self) -> Vec<WorkOrder> {
            self.infra
                .store
                .list_work_orders(&WorkOrderFilter {
                    asset_id: Some(self.pump.id),
                    ..WorkOrderFilter::default()
                })
                .await
                .expect("work orders")
        }
    }

    /// Says when its handler is done with a record (handled or refused; not a retry).
    struct Counting<H> {
        inner: H,
        done: tokio::sync::mpsc::UnboundedSender<()>,
    }

    #[async_trait]
    impl<H: Handler> Handler for Counting<H> {
        type Input = H::Input;

        async fn handle(
            &mut self,
            input: &H::Input,
            ctx: &RecordContext<'_>,
        ) -> Result<Option<Position>, HandleError> {
            let result = self.inner.handle(input, ctx).await;
            if !matches!(result, Err(HandleError::Transient(_))) {
                let _ = self.done.send(());
            }
            result
        }
    }

    #[tokio::test]
    async fn an_incident_alerts_once_then_again_only_when_it_grows_more_severe() {
        let p = plant().await;
        p.anomaly(p.pump.id, 0, 0.86).await; // MEDIUM
        p.anomaly(p.pump.id, 1, 0.87).await; // MEDIUM again: absorbed
        p.anomaly(p.pump.id, 2, 0.95).await; // HIGH: escalated
        p.anomaly(p.pump.id, 3, 0.97).await; // HIGH again: absorbed
        p.handle(4).await;
        let work_orders = p.work_orders().await;
        assert_eq!(work_orders.len(), 1, "one incident: {work_orders:?}");
        let alerts = p.alerts().await;
        assert_eq!(
            alerts.iter().map(|a| a.severity).collect::<Vec<_>>(),
            vec![Severity::Medium, Severity::High],
            "{alerts:#?}"
        );
        assert!(
            alerts[1]
                .message
                .starts_with("escalated from MEDIUM to HIGH")
        );
        assert!(
            alerts
                .iter()
                .all(|a| a.work_order_id == Some(work_orders[0].id))
        );
        // Both alerts were published, once each.
        let mut published = p.published_alerts().await;
        published.sort();
        let mut ids: Vec<_> = alerts.iter().map(|a| a.id).collect();
        ids.sort();
        assert_eq!(published, ids);
    }

    /// The event that opened an incident stored its alert and then failed for good (dead-
    /// lettered) before publishing it: the next event of the incident publishes it, once.
    #[tokio::test]
    async fn an_incident_alert_stored_but_never_published_is_published_by_the_next_event() {
        let p = plant().await;
        let lost = "anomaly-whose-handling-failed";
        let wo = WorkOrder {
            id: WorkOrderId(deterministic_uuid("work-order", &[lost])),
            code: "WO-LOST".into(),
            asset_id: p.pump.id,
            cause: "anomaly".into(),
            priority: mantis_domain::Priority::Urgent,
            status: WorkOrderStatus::Open,
            created_at: p.base,
            due_by: p.base + chrono::Duration::hours(24),
            description: "opened by the lost event".into(),
            rule: "anomaly-over-threshold".into(),
            trigger_event: lost.into(),
        };
        p.open(&wo).await;
        let alert = Alert {
            id: Alert::id_for(&format!("work-order:{}", wo.id)),
            asset_id: p.pump.id,
            severity: Severity::Medium,
            kind: AlertKind::Anomaly,
            message: "stored, never published".into(),
            created_at: p.base,
            work_order_id: Some(wo.id),
            trigger_event: lost.into(),
            notify_on_call: false,
        };
        p.infra.store.insert_alert(&alert).await.expect("stored");

        p.anomaly(p.pump.id, 1, 0.86).await; // MEDIUM: absorbed by the incident
        p.anomaly(p.pump.id, 2, 0.87).await; // and again
        p.handle(2).await;
        assert_eq!(p.work_orders().await.len(), 1);
        let stored: Vec<_> = p.alerts().await.iter().map(|a| a.id).collect();
        assert_eq!(stored, vec![alert.id], "absorbed: no other alert");
        assert_eq!(p.published_alerts().await, vec![alert.id], "published once");
    }

    /// A work order still active past its due time raises one alert (published once), however
    /// often the check runs, and one more when replanned to a time that passes too; a closed
    /// one or one still in time raises none; a backlog arrives ten a minute.
    #[tokio::test]
    async fn an_overdue_work_order_raises_one_alert_per_due_time() {
        let p = plant().await;
        let order = |code: &str, due_in_h: i64, status: WorkOrderStatus, cause: &str| WorkOrder {
            id: WorkOrderId::new_random(),
            code: code.into(),
            asset_id: p.pump.id,
            cause: cause.into(),
            priority: mantis_domain::Priority::Urgent,
            status,
            created_at: p.base,
            due_by: Utc::now() + chrono::Duration::hours(due_in_h),
            description: format!("{code} work"),
            rule: "by hand".into(),
            trigger_event: code.into(),
        };
        let late = order("WO-LATE", -1, WorkOrderStatus::Open, "anomaly");
        for wo in [
            late.clone(),
            order("WO-IN-TIME", 1, WorkOrderStatus::Open, "rul"),
            order("WO-DONE", -1, WorkOrderStatus::Open, "bearing"),
        ] {
            p.open(&wo).await;
        }
        let done = p.work_orders().await;
        let done = done.iter().find(|w| w.code == "WO-DONE").expect("done");
        p.infra
            .store
            .set_work_order_status(done.id, WorkOrderStatus::Completed)
            .await
            .expect("completed");

        assert_eq!(
            p.orchestrator
                .sweep_overdue(Utc::now())
                .await
                .expect("swept"),
            1
        );
        assert_eq!(
            p.orchestrator
                .sweep_overdue(Utc::now())
                .await
                .expect("swept"),
            0
        );
        let alerts = p.alerts().await;
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let alert = &alerts[0];
        assert_eq!(alert.work_order_id, Some(late.id));
        assert_eq!(alert.severity, Severity::Critical, "URGENT work overdue");
        assert!(!alert.notify_on_call, "a MEDIUM asset");
        assert!(
            alert
                .message
                .starts_with("PMP-001 (Coolant pump): work order WO-LATE is overdue"),
            "{}",
            alert.message
        );
        assert_eq!(p.published_alerts().await, vec![alert.id], "published once");
        // Remembered while it stays overdue at that time: later checks do not look it up again.
        let remembered = || {
            let mut keys: Vec<_> = p.orchestrator.alerted_overdue().iter().copied().collect();
            keys.sort();
            keys
        };
        assert_eq!(
            remembered(),
            vec![(late.id, late.due_by.timestamp_millis())]
        );

        // Replanned to a later time that has passed too: alerted again, for that time.
        p.infra
            .store
            .update_work_order(
                late.id,
                &mantis_store::WorkOrderChanges {
                    due_by: Some(Utc::now() - chrono::Duration::minutes(1)),
                    ..mantis_store::WorkOrderChanges::default()
                },
            )
            .await
            .expect("replanned");
        // Two at a time from here: the ones alerted before, the longest overdue, come first
        // and the check reads on past them.
        let sweep = || p.orchestrator.sweep_overdue_in_pages(Utc::now(), 2);
        assert_eq!(sweep().await.expect("swept"), 1);
        assert_eq!(sweep().await.expect("swept"), 0);
        let replanned = p
            .infra
            .store
            .get_work_order(late.id)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(
            remembered(),
            vec![(late.id, replanned.due_by.timestamp_millis())],
            "the old due time is forgotten"
        );

        // A backlog (the first start after an upgrade) arrives ten a check.
        for k in 0..12 {
            let wo = order(
                &format!("WO-OLD-{k:02}"),
                -100 - k,
                WorkOrderStatus::InProgress,
                &format!("cause-{k}"),
            );
            p.open(&wo).await;
        }
        assert_eq!(sweep().await.expect("swept"), 10);
        let messages: Vec<String> = p.alerts().await.into_iter().map(|a| a.message).collect();
        assert_eq!(messages.len(), 12);
        assert!(
            !messages
                .iter()
                .any(|m| m.contains("WO-OLD-00 ") || m.contains("WO-OLD-01 ")),
            "the longest overdue first, the most recently due wait: {messages:#?}"
        );
        assert_eq!(sweep().await.expect("swept"), 2);
        assert_eq!(sweep().await.expect("swept"), 0);
        assert_eq!(p.published_alerts().await.len(), 14, "each published once");

        // Newly overdue behind the 13 alerted before (seven pages of two): reached.
        let new = WorkOrder {
            due_by: Utc::now() - chrono::Duration::seconds(30),
            ..order("WO-NEW", 0, WorkOrderStatus::Scheduled, "cause-new")
        };
        p.open(&new).await;
        assert_eq!(sweep().await.expect("swept"), 1);
        assert!(
            p.alerts()
                .await
                .iter()
                .any(|a| a.work_order_id == Some(new.id)),
            "the newly overdue work order is alerted"
        );
    }

    /// A work order closed or replanned after the sweep listed it (between the listing and its
    /// alert) raises no overdue alert.
    #[tokio::test]
    async fn work_closed_after_the_overdue_sweep_listed_it_is_not_alerted() {
        let p = plant().await;
        let late = WorkOrder {
            id: WorkOrderId::new_random(),
            code: "WO-LATE".into(),
            asset_id: p.pump.id,
            cause: "anomaly".into(),
            priority: mantis_domain::Priority::Urgent,
            status: WorkOrderStatus::Open,
            created_at: p.base,
            due_by: Utc::now() - chrono::Duration::hours(1),
            description: "late work".into(),
            rule: "by hand".into(),
            trigger_event: "WO-LATE".into(),
        };
        p.open(&late).await;
        let listed = p
            .infra
            .store
            .list_overdue_work_orders(Utc::now(), None, 10)
            .await
            .expect("listed");
        assert_eq!(listed.len(), 1);
        p.infra
            .store
            .set_work_order_status(late.id, WorkOrderStatus::Completed)
            .await
            .expect("completed");
        let raised = p
            .orchestrator
            .alert_overdue(&listed[0], Utc::now())
            .await
            .expect("checked");
        assert!(!raised);
        assert!(p.alerts().await.is_empty());
    }

    /// Two work orders whose codes would clash (the same day, the same first eight hex digits
    /// of their ids): the second is opened under its whole id, not lost with its alert.
    #[tokio::test]
    async fn a_work_order_whose_code_is_taken_is_opened_under_its_whole_id() {
        let mut p = plant().await;
        // With a kit: opened with it under the whole id too.
        p.orchestrator.estimates = Arc::new(
            Estimates::parse(
                "default_hours = 2\n[asset_types.pump]\nparts = { anomaly = [\"BRG-6204 x2\"] }\n",
            )
            .expect("planning"),
        );
        let start = p.base;
        let event = format!("anomaly:{}", Anomaly::id_for(p.sensor, start));
        let id = WorkOrderId(deterministic_uuid("work-order", &[&event]));
        let short = format!(
            "WO-{}-{}",
            Utc::now().format("%Y%m%d"),
            &id.to_string()[..8]
        );
        p.open(&WorkOrder {
            id: WorkOrderId::new_random(),
            code: short.clone(),
            asset_id: p.pump.id,
            cause: "manual:earlier".into(),
            priority: mantis_domain::Priority::Low,
            status: WorkOrderStatus::Open,
            created_at: p.base,
            due_by: Utc::now() + chrono::Duration::hours(1),
            description: "holds the code".into(),
            rule: "manual".into(),
            trigger_event: "user:tom".into(),
        })
        .await;
        p.anomaly(p.pump.id, 0, 0.9).await;
        p.handle(1).await;
        let opened = p
            .infra
            .store
            .get_work_order(id)
            .await
            .expect("read")
            .expect("opened, not dead-lettered");
        assert_eq!(
            opened.code,
            format!("WO-{}-{}", Utc::now().format("%Y%m%d"), id.0.simple())
        );
        assert!(
            p.alerts().await.iter().any(|a| a.work_order_id == Some(id)),
            "its alert raised"
        );
        let record = p
            .infra
            .store
            .get_work_order_record(id)
            .await
            .expect("read")
            .expect("opened");
        assert_eq!(record.parts.len(), 1, "{record:?}");
        assert_eq!(record.parts[0].quantity, 2);
    }

    /// The parts `planning.toml` lists for a kind of work go on the work orders opened for
    /// it (reserved in the stores), in the same transaction; the anomaly that comes again
    /// finds the same order, its parts once.
    #[tokio::test]
    async fn a_work_order_opened_lists_the_parts_its_kind_of_work_takes() {
        let mut p = plant().await;
        p.orchestrator.estimates = Arc::new(
            Estimates::parse(
                "default_hours = 2\n[asset_types.pump]\nparts = { anomaly = [\"SEAL-12 x2\", \"BRG-6204\"] }\n",
            )
            .expect("planning"),
        );
        p.anomaly(p.pump.id, 0, 0.9).await;
        p.anomaly(p.pump.id, 1, 0.91).await;
        p.handle(2).await;
        let orders = p
            .infra
            .store
            .list_work_order_records(&WorkOrderFilter {
                asset_id: Some(p.pump.id),
                ..WorkOrderFilter::default()
            })
            .await
            .expect("work orders");
        assert_eq!(orders.len(), 1, "{orders:?}");
        let parts: Vec<(&str, u32)> = orders[0]
            .parts
            .iter()
            .map(|x| (x.part_number.as_str(), x.quantity))
            .collect();
        assert_eq!(parts, [("SEAL-12", 2), ("BRG-6204", 1)]);
        assert!(!orders[0].technician_by_planner && orders[0].technician.is_none());
        let reserved = p
            .infra
            .store
            .reserved_parts(TenantId::DEFAULT)
            .await
            .expect("reserved");
        assert_eq!(reserved.get("SEAL-12"), Some(&2));
    }

    #[test]
    fn a_conclusion_counts_from_when_it_was_published_never_from_later_than_now() {
        let now = Utc::now();
        let device = now - chrono::Duration::hours(5); // a PLC's local time taken for UTC
        let ms = |t: Timestamp| t.timestamp_millis();
        let at = |t: Timestamp| mantis_domain::timestamp_from_millis(ms(t)).expect("in range");
        let published = now - chrono::Duration::seconds(30);
        assert_eq!(published_at(ms(published), device, now), at(published));
        // The publisher's clock a little ahead: now, not the device's time.
        let ahead = now + chrono::Duration::milliseconds(40);
        assert_eq!(published_at(ms(ahead), device, now), now);
        // No time from the broker: the event's own, at most now.
        assert_eq!(published_at(0, device, now), device);
        assert_eq!(published_at(-1, now + chrono::Duration::hours(1), now), now);
    }

    #[test]
    fn an_events_own_time_counts_only_when_close_to_its_publication() {
        let published = Utc::now();
        // A window scored again after a redelivery, minutes late: its own time.
        let old_window = published - chrono::Duration::minutes(4);
        assert_eq!(happened_at(published, old_window), old_window);
        // A device clock ahead: the publication.
        let ahead = published + chrono::Duration::minutes(4);
        assert_eq!(happened_at(published, ahead), published);
        // A PLC's local time taken for UTC, hours behind: the publication, or every new
        // incident in those hours after a closure would be taken for an old one.
        let behind = published - chrono::Duration::hours(5);
        assert_eq!(happened_at(published, behind), published);
    }

    #[test]
    fn a_long_description_is_clipped_in_the_alert() {
        use mantis_domain::clip;
        assert_eq!(clip("bearing", 200), "bearing");
        assert_eq!(clip("ééééé", 3), "ééé…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[tokio::test]
    async fn work_closed_after_an_event_was_published_is_not_opened_again_by_it() {
        let p = plant().await;
        p.anomaly(p.pump.id, 0, 0.9).await;
        p.handle(1).await;
        let first = p.work_orders().await;
        assert_eq!(first.len(), 1);
        // The deadline runs from when the anomaly was published: MEDIUM assets, 24 h.
        let due_in = first[0].due_by - first[0].created_at;
        assert!(
            due_in <= chrono::Duration::hours(24) && due_in > chrono::Duration::hours(23),
            "{due_in}"
        );

        // An anomaly published while the orchestrator is away; the technician completes the
        // work order meanwhile: the backlog must not send anyone back.
        p.anomaly(p.pump.id, 1, 0.9).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.infra
            .store
            .set_work_order_status(first[0].id, WorkOrderStatus::Completed)
            .await
            .expect("completed");
        p.handle(1).await;
        assert_eq!(
            p.work_orders().await.len(),
            1,
            "not reopened by the backlog"
        );
        assert_eq!(p.alerts().await.len(), 1);

        // Nor by an anomaly of a window before the closing published again (its features
        // redelivered to the anomaly service).
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.anomaly(p.pump.id, 1, 0.9).await;
        p.handle(1).await;
        assert_eq!(p.work_orders().await.len(), 1, "not reopened by a replay");

        // A new anomaly after the work was done opens a new work order (window 40 ends ten
        // and a half minutes after `base`: after the closing).
        p.anomaly(p.pump.id, 40, 0.9).await;
        p.handle(1).await;
        assert_eq!(p.work_orders().await.len(), 2);
        assert_eq!(p.alerts().await.len(), 2);
    }

    #[tokio::test]
    async fn an_anomaly_of_an_unregistered_asset_is_dead_lettered_and_opens_nothing() {
        let p = plant().await;
        p.anomaly(AssetId::new_random(), 0, 0.99).await;
        p.handle(1).await;
        assert!(p.alerts().await.is_empty());
        let mut dlq = p
            .infra
            .bus
            .subscribe(SubscribeOptions::new(
                "reader",
                [topics::dead_letter_topic(ANOMALY_GROUP)],
                StartFrom::Earliest,
            ))
            .await
            .expect("subscription");
        let env = tokio::time::timeout(Duration::from_secs(10), dlq.next())
            .await
            .expect("dead letter in time")
            .expect("dead letter");
        let reason = env.header(mantis_bus::DLQ_REASON).expect("reason");
        assert!(String::from_utf8_lossy(reason).contains("not registered"));
    }
}
