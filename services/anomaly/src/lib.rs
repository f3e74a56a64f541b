//! # mantis-anomaly
//!
//! Consumes `features.extracted` and scores every feature vector against a baseline learned
//! online from the first `warmup_windows` windows of each sensor (robust z-scores: median and
//! MAD per feature, see `baseline`). A score at or above the asset's threshold (criticality
//! matrix in `rules/`) becomes an anomaly: stored (one row per sensor window, so a redelivered
//! window never duplicates it) and published on `anomaly.detected` with its severity in the
//! `severity` header and the features that contributed most.
//!
//! Baselines are persisted in the store as they are learned, so a restart or a rebalance
//! resumes where it stopped; windows already learned are recognised and not learned twice.

pub mod alarm;
pub mod baseline;

use alarm::{AlarmRule, AlarmState};
use async_trait::async_trait;
use baseline::{Baseline, Observation};
use mantis_bus::{Position, topics};
use mantis_domain::{
    Anomaly, AssetId, Contribution, Criticality, FeatureVector, SensorId, Severity,
};
use mantis_rules::RuleSet;
use mantis_runtime::{
    App, HandleError, Handler, Infra, Publisher, RecordContext, Result, run_consumer,
};
use mantis_store::Store;
use mantis_telemetry::Health;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Configuration of the anomaly-detection service (`[anomaly]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8004`.
    pub bind: String,
    /// Windows of normal operation learned per sensor before scoring. Default 20.
    pub warmup_windows: usize,
    /// How many contributing features an anomaly names. Default 3.
    pub explain_top: usize,
    /// Windows holding less than this fraction of the samples their sensor's rate implies
    /// (a sensor that fell silent, a connector that dropped) are neither learned nor scored:
    /// a gap is a data-quality matter, not a machine anomaly. Default 0.5.
    pub min_window_fill: f64,
    /// Consecutive windows of a sensor at or above its asset's threshold before they are
    /// anomalies (1: every window is judged alone). Default 1; the demo uses 2.
    pub confirm_windows: u32,
    /// Consecutive windows below `threshold − hysteresis` that end an anomalous stretch.
    /// Default 2.
    pub clear_windows: u32,
    /// How far below the threshold the scores of an anomalous stretch may fall and still be
    /// anomalies. Default 0.05.
    pub hysteresis: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8004".into(),
            warmup_windows: 20,
            explain_top: 3,
            min_window_fill: 0.5,
            confirm_windows: 1,
            clear_windows: 2,
            hysteresis: 0.05,
        }
    }
}

/// The consumer group of the service.
pub const GROUP: &str = "anomaly";
/// The detection method recorded on anomalies.
pub const METHOD: &str = "robust-zscore";

const ASSET_TTL: Duration = Duration::from_secs(30);

struct AnomalyHandler {
    store: Arc<dyn Store>,
    publisher: Publisher,
    rules: RuleSet,
    config: Config,
    baselines: HashMap<SensorId, Baseline>,
    alarms: HashMap<SensorId, AlarmState>,
    assets: HashMap<AssetId, (Criticality, Instant)>,
    sampling_rates: HashMap<SensorId, f64>,
    health: Health,
}

fn state_key(sensor: SensorId) -> String {
    format!("anomaly.baseline.{sensor}")
}

fn alarm_key(sensor: SensorId) -> String {
    format!("anomaly.alarm.{sensor}")
}

impl AnomalyHandler {
    fn rule(&self) -> AlarmRule {
        AlarmRule {
            confirm: self.config.confirm_windows,
            clear: self.config.clear_windows,
            hysteresis: self.config.hysteresis,
        }
    }

    /// Judges a scored window through the sensor's alarm state (persisted when it changes).
    async fn judge(
        &mut self,
        sensor: SensorId,
        window_ms: i64,
        score: f64,
        threshold: f64,
    ) -> Result<bool, HandleError> {
        if !self.alarms.contains_key(&sensor) {
            let loaded = match self.store.get_state(&alarm_key(sensor)).await? {
                Some(v) => serde_json::from_value(v).unwrap_or_else(|e| {
                    tracing::warn!(%sensor, error = %e, "stored alarm state unreadable; starting closed");
                    AlarmState::default()
                }),
                None => AlarmState::default(),
            };
            self.alarms.insert(sensor, loaded);
        }
        let rule = self.rule();
        let Some(state) = self.alarms.get_mut(&sensor) else {
            return Err(HandleError::Transient("alarm cache".into()));
        };
        let decision = state.judge(rule, window_ms, score, threshold);
        if decision.changed {
            let value =
                serde_json::to_value(&*state).map_err(|e| HandleError::Permanent(e.to_string()))?;
            if let Err(e) = self.store.put_state(&alarm_key(sensor), &value).await {
                // Not persisted: forget the in-memory change so the redelivery judges again.
                self.alarms.remove(&sensor);
                return Err(e.into());
            }
        }
        Ok(decision.anomaly)
    }

    async fn baseline(&mut self, sensor: SensorId) -> Result<&mut Baseline, HandleError> {
        if !self.baselines.contains_key(&sensor) {
            let loaded = match self.store.get_state(&state_key(sensor)).await? {
                Some(v) => serde_json::from_value(v).unwrap_or_else(|e| {
                    tracing::warn!(%sensor, error = %e, "stored baseline unreadable; learning again");
                    Baseline::new(self.config.warmup_windows)
                }),
                None => Baseline::new(self.config.warmup_windows),
            };
            self.baselines.insert(sensor, loaded);
        }
        self.baselines
            .get_mut(&sensor)
            .ok_or_else(|| HandleError::Transient("baseline cache".into()))
    }

    async fn criticality(&mut self, asset: AssetId) -> Result<Criticality, HandleError> {
        if let Some((c, at)) = self.assets.get(&asset)
            && at.elapsed() < ASSET_TTL
        {
            return Ok(*c);
        }
        let Some(a) = self.store.get_asset(asset).await? else {
            return Err(HandleError::Permanent(format!(
                "asset {asset} is not registered"
            )));
        };
        self.assets.insert(asset, (a.criticality, Instant::now()));
        Ok(a.criticality)
    }

    /// The fraction of the expected samples the window holds (1 when unknown).
    async fn window_fill(&mut self, fv: &FeatureVector) -> Result<f64, HandleError> {
        let Some(count) = fv.sample_count() else {
            return Ok(1.0);
        };
        let rate = match self.sampling_rates.get(&fv.sensor_id) {
            Some(r) => *r,
            None => {
                let rate = self
                    .store
                    .get_sensor(fv.sensor_id)
                    .await?
                    .map_or(0.0, |s| s.sampling_rate_hz);
                self.sampling_rates.insert(fv.sensor_id, rate);
                rate
            }
        };
        let secs = (fv.window_end - fv.window_start).num_milliseconds() as f64 / 1000.0;
        let expected = rate * secs;
        Ok(if expected > 0.0 {
            count / expected
        } else {
            1.0
        })
    }
}

#[async_trait]
impl Handler for AnomalyHandler {
    type Input = FeatureVector;

    async fn handle(
        &mut self,
        fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Position>, HandleError> {
        let criticality = self.criticality(fv.asset_id).await?;
        let fill = self.window_fill(fv).await?;
        if fill < self.config.min_window_fill {
            metrics::counter!("mantis_anomaly_windows_skipped_total", "reason" => "short")
                .increment(1);
            tracing::debug!(sensor = %fv.sensor_id, window = %fv.window_start, fill, "window cut short; not learned, not scored");
            return Ok(ctx.done());
        }
        let window_ms = fv.window_start.timestamp_millis();
        let observation = self
            .baseline(fv.sensor_id)
            .await?
            .observe(window_ms, &fv.features);
        let (score, deviations) = match observation {
            Observation::Learning {
                seen,
                needed,
                changed,
            } => {
                if changed {
                    let b = self.baseline(fv.sensor_id).await?.clone();
                    let value = serde_json::to_value(&b)
                        .map_err(|e| HandleError::Permanent(e.to_string()))?;
                    self.store
                        .put_state(&state_key(fv.sensor_id), &value)
                        .await?;
                    if b.is_ready() {
                        let ready = self.baselines.values().filter(|b| b.is_ready()).count();
                        self.health
                            .set_detail("baselinesReady", serde_json::json!(ready));
                        tracing::info!(sensor = %fv.sensor_id, windows = needed, "baseline learned");
                    }
                }
                tracing::trace!(sensor = %fv.sensor_id, seen, needed, "learning baseline");
                return Ok(ctx.done());
            }
            Observation::Scored { score, deviations } => (score, deviations),
        };
        metrics::histogram!("mantis_anomaly_score").record(score);
        let threshold = self.rules.anomaly_threshold(criticality);
        if !self
            .judge(fv.sensor_id, window_ms, score, threshold)
            .await?
        {
            return Ok(ctx.done());
        }
        let anomaly = Anomaly {
            id: Anomaly::id_for(fv.sensor_id, fv.window_start),
            asset_id: fv.asset_id,
            sensor_id: fv.sensor_id,
            window_start: fv.window_start,
            detected_at: fv.window_end,
            score,
            threshold,
            severity: Severity::for_anomaly(criticality, score, threshold),
            criticality,
            method: METHOD.to_owned(),
            contributions: deviations
                .into_iter()
                .take(self.config.explain_top)
                .map(|d| Contribution {
                    feature: d.feature,
                    sensor_id: fv.sensor_id,
                    value: d.value,
                    z_score: d.z,
                })
                .collect(),
        };
        let new = self.store.insert_anomaly(&anomaly).await?;
        // Published even when the row existed: the previous attempt may have stopped before
        // publishing; downstream handling is keyed by the anomaly id.
        self.publisher
            .publish(
                Some(anomaly.asset_id.to_string()),
                &anomaly,
                ctx.trace,
                vec![(
                    topics::SEVERITY_HEADER.to_owned(),
                    anomaly.severity.as_str().as_bytes().to_vec(),
                )],
            )
            .await?;
        if new {
            metrics::counter!("mantis_anomalies_total", "severity" => anomaly.severity.as_str())
                .increment(1);
            tracing::info!(asset = %anomaly.asset_id, sensor = %anomaly.sensor_id, score, severity = %anomaly.severity, "anomaly detected");
        }
        Ok(ctx.done())
    }
}

/// Builds the anomaly-detection service.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let rules = RuleSet::load_or_builtin(infra.settings.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))?;
    let health = App::health("anomaly", &infra);
    health.set_detail("method", serde_json::json!(METHOD));
    health.set_detail("warmupWindows", serde_json::json!(config.warmup_windows));
    health.set_detail("confirmWindows", serde_json::json!(config.confirm_windows));
    let handler = AnomalyHandler {
        store: infra.store.clone(),
        publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "anomaly"),
        rules,
        config: config.clone(),
        baselines: HashMap::new(),
        alarms: HashMap::new(),
        assets: HashMap::new(),
        sampling_rates: HashMap::new(),
        health: health.clone(),
    };
    Ok(
        App::new("anomaly", &config.bind, axum::Router::new(), health)
            .await?
            .worker("consumer", move |shutdown| {
                run_consumer(infra, GROUP, handler, shutdown)
            }),
    )
}
