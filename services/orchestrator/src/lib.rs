//! # mantis-orchestrator
//!
//! Turns conclusions into decisions. Consumes `anomaly.detected` and `rul.predicted`,
//! evaluates the routing rules and criticality matrix from `rules/` (`mantis-rules`), and:
//!
//! - opens a work order when a rule asks for one: at most one active work order per asset and
//!   cause, however many anomalies arrive (the store enforces it, also under concurrency);
//! - raises one alert per work order opened (or per event when no work order is involved) on
//!   `alerts.critical`, flagged for the on-call technician on CRITICAL assets;
//! - publishes scheduled maintenance on `maintenance.scheduled` when the RUL falls below the
//!   asset's threshold.
//!
//! Every id is derived from the triggering event, and a small outbox marker in the store
//! records what was published, so a redelivered event neither duplicates rows nor loses or
//! repeats a publication.

use async_trait::async_trait;
use chrono::Utc;
use mantis_bus::Position;
use mantis_domain::{
    Alert, AlertKind, Anomaly, AssetId, Criticality, RulPrediction, Severity, WorkOrder,
    WorkOrderId, WorkOrderStatus, deterministic_uuid,
};
use mantis_rules::{Decision, Event, RuleSet};
use mantis_runtime::{
    App, HandleError, Handler, Infra, Publisher, RecordContext, Result, run_consumer,
};
use mantis_store::Store;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Configuration of the orchestrator (`[orchestrator]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8006`.
    pub bind: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8006".into(),
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
}

/// What triggered a decision.
struct Trigger<'a> {
    asset: AssetId,
    kind: AlertKind,
    /// Stable id of the triggering event.
    event_id: String,
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

    /// Publishes `record` unless the outbox marker says it already was.
    async fn publish_once<R: mantis_codec::Record>(
        &self,
        marker: &str,
        key: Option<String>,
        record: &R,
        ctx: &RecordContext<'_>,
    ) -> Result<(), HandleError> {
        let marker = format!("orchestrator.published.{marker}");
        if self.store.get_state(&marker).await?.is_some() {
            return Ok(());
        }
        self.publisher
            .publish(key, record, ctx.trace, vec![])
            .await?;
        self.store
            .put_state(&marker, &serde_json::json!({"at": Utc::now().to_rfc3339()}))
            .await?;
        Ok(())
    }

    async fn act(&self, t: Trigger<'_>, ctx: &RecordContext<'_>) -> Result<(), HandleError> {
        let now = Utc::now();
        let mut work_order: Option<WorkOrder> = None;
        let mut created = false;
        if let Some(req) = &t.decision.work_order {
            let id = WorkOrderId(deterministic_uuid("work-order", &[&t.event_id]));
            let candidate = WorkOrder {
                id,
                code: format!("WO-{}-{}", now.format("%Y%m%d"), &id.to_string()[..8]),
                asset_id: t.asset,
                cause: req.cause.clone(),
                priority: req.priority,
                status: WorkOrderStatus::Open,
                created_at: now,
                due_by: now
                    + chrono::Duration::from_std(req.due_within)
                        .unwrap_or(chrono::Duration::hours(24)),
                description: t.message.clone(),
                rule: req.rule.clone(),
                trigger_event: t.event_id.clone(),
            };
            let opened = self.store.open_work_order(&candidate).await?;
            created = opened.created;
            if created {
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
                ctx,
            )
            .await?;
        }
        if t.decision.alert {
            // One alert per incident: per work order when one is involved, else per event.
            let alert_key = match &work_order {
                Some(wo) => format!("work-order:{}", wo.id),
                None => t.event_id.clone(),
            };
            let belongs_to_this_event = work_order
                .as_ref()
                .is_none_or(|wo| created || wo.trigger_event == t.event_id);
            if belongs_to_this_event {
                let alert = Alert {
                    id: Alert::id_for(&alert_key),
                    asset_id: t.asset,
                    severity: t.severity,
                    kind: t.kind,
                    message: t.message.clone(),
                    created_at: now,
                    work_order_id: work_order.as_ref().map(|w| w.id),
                    trigger_event: t.event_id.clone(),
                    notify_on_call: t.decision.notify_on_call,
                };
                self.store.insert_alert(&alert).await?;
                // The stored alert is the one published, also when this is a redelivery.
                let stored = self.store.get_alert(alert.id).await?.unwrap_or(alert);
                self.publish_once(&format!("alert.{}", stored.id), None, &stored, ctx)
                    .await?;
                if stored.notify_on_call {
                    tracing::warn!(asset = %t.asset, alert = %stored.id, "on-call technician to be notified");
                }
            }
        }
        Ok(())
    }
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
        // Name things the way people on the floor know them.
        let asset = self.0.store.get_asset(a.asset_id).await?;
        let sensor = self.0.store.get_sensor(a.sensor_id).await?;
        let message = format!(
            "{}: {} anomaly on {} (score {:.2} ≥ {:.2}); most deviant: {}",
            asset.map_or_else(
                || a.asset_id.to_string(),
                |x| format!("{} ({})", x.code, x.name)
            ),
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

/// Builds the orchestrator.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let rules = RuleSet::load_or_builtin(infra.settings.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
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
    };
    let (a, r) = (
        AnomalyConsumer(orchestrator.clone()),
        RulConsumer(orchestrator),
    );
    let infra2 = infra.clone();
    Ok(
        App::new("orchestrator", &config.bind, axum::Router::new(), health)
            .await?
            .worker("anomaly consumer", move |shutdown| {
                run_consumer(infra, ANOMALY_GROUP, a, shutdown)
            })
            .worker("rul consumer", move |shutdown| {
                run_consumer(infra2, RUL_GROUP, r, shutdown)
            }),
    )
}
