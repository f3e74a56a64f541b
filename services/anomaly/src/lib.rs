//! # mantis-anomaly
//!
//! Consumes `features.extracted` and scores every feature vector of each asset:
//!
//! - with the asset's **trained model** once it has one (`model`, `models`): one `mantis-ml`
//!   ensemble per sensor (robust z-score, isolation forest, one-class SVM, autoencoder, each
//!   calibrated on the asset's own baseline), trained automatically once the asset has
//!   `auto_train_after_secs` of windows of normal operation (before any active work order),
//!   or on demand through
//!   `POST /api/v1/anomalies/train`; versions live in the model registry (object storage) and
//!   the promoted one is hot-swapped in;
//! - until then with an online **robust baseline** learned from the first `warmup_windows`
//!   windows of each sensor (median and MAD per feature, see `baseline`).
//!
//! A score at or above the asset's threshold (criticality matrix in `rules/`), confirmed over
//! `confirm_windows` windows and held with hysteresis (`alarm`), becomes an anomaly: stored (one
//! row per sensor window, so a redelivered window never duplicates it) and published on
//! `anomaly.detected` with its severity in the `severity` header and the features that
//! contributed most. Every scored window's scores (the ensemble's and each detector's) are
//! stored in `anomaly_scores`, and the asset's latest score is cached for 5 minutes.
//!
//! Baselines and alarm states are persisted in the store as they change, so a restart or a
//! rebalance resumes where it stopped; windows already seen are recognised.

pub mod alarm;
pub mod baseline;
pub mod model;
pub mod models;
pub mod routes;

use alarm::{AlarmRule, AlarmState};
use async_trait::async_trait;
use baseline::{Baseline, Observation};
use mantis_bus::{Position, topics};
use mantis_domain::{
    Anomaly, AnomalyScore, AssetId, Contribution, Criticality, FeatureVector, SensorId, Severity,
};
use mantis_ml::DetectorKind;
use mantis_rules::RuleSet;
use mantis_runtime::{
    App, HandleError, Handler, Infra, Publisher, RecordContext, Result, run_consumer,
};
use mantis_store::Store;
use mantis_telemetry::Health;
use model::TrainConfig;
use models::Models;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Configuration of the anomaly-detection service (`[anomaly]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8004` (`mantis`, all services in one process:
    /// `127.0.0.1:8004`; this API takes no credentials).
    pub bind: String,
    /// Windows of normal operation learned per sensor before scoring. Default 20.
    pub warmup_windows: usize,
    /// How many contributing features an anomaly names. Default 3.
    pub explain_top: usize,
    /// Windows holding less than this fraction of the samples their sensor's rate implies
    /// (a sensor that fell silent, a connector that dropped) are neither learned nor scored:
    /// a gap is a data-quality matter, not a machine anomaly. Default 0.8: the features of a
    /// window missing more (its longest piece kept when a gap splits it) are not comparable
    /// with those of the full windows a model learned from, so a connector's hiccup would
    /// alarm on a healthy machine.
    pub min_window_fill: f64,
    /// Consecutive windows of a sensor at or above its asset's threshold before they are
    /// anomalies (1: every window is judged alone); a gap in the data, or a window scored by
    /// another scorer (the baseline, a model version), breaks a run (`alarm`). Default 2.
    pub confirm_windows: u32,
    /// Consecutive windows below `threshold − hysteresis` that end an anomalous stretch.
    /// Default 2.
    pub clear_windows: u32,
    /// How far below the threshold the scores of an anomalous stretch may fall and still be
    /// anomalies. Default 0.05.
    pub hysteresis: f64,
    /// Seconds of windows of normal operation (before the asset's oldest active work order,
    /// if it has one) an asset needs before
    /// its model is trained automatically; 0 disables automatic training. Default 86400 (24 h).
    pub auto_train_after_secs: u64,
    /// Seconds between two checks for assets to train and for models promoted elsewhere.
    /// Default 60.
    pub train_check_secs: u64,
    /// Model training (`[anomaly.training]`: `min_windows`, `max_windows`, `ensemble`).
    pub training: TrainConfig,
    /// Seconds the latest score of an asset stays cached. Default 300.
    pub score_cache_ttl_secs: u64,
    /// Recent windows per sensor compared with the training data for drift. Default 60.
    pub drift_windows: u32,
}

impl Config {
    /// Checks every setting; the message names the first bad one (`anomaly.` and its key), so
    /// a mistyped value stops the start rather than being read as something else (or failing
    /// every training a day later).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(mantis_runtime::Error::Config(m));
        if !(self.min_window_fill.is_finite() && (0.0..=1.0).contains(&self.min_window_fill)) {
            return bad(format!(
                "anomaly.min_window_fill must be a fraction within 0..=1, got {}",
                self.min_window_fill
            ));
        }
        if self.confirm_windows == 0 {
            return bad("anomaly.confirm_windows must be at least 1".into());
        }
        if self.clear_windows == 0 {
            return bad("anomaly.clear_windows must be at least 1".into());
        }
        if !(self.hysteresis.is_finite() && self.hysteresis >= 0.0) {
            return bad(format!(
                "anomaly.hysteresis must be a score of 0 or more, got {}",
                self.hysteresis
            ));
        }
        if self.train_check_secs == 0 {
            return bad("anomaly.train_check_secs must be at least 1".into());
        }
        if self.drift_windows == 0 {
            return bad("anomaly.drift_windows must be at least 1".into());
        }
        let training = &self.training;
        if training.max_windows < training.min_windows.max(1) {
            return bad(format!(
                "anomaly.training.max_windows ({}) must be at least min_windows ({})",
                training.max_windows, training.min_windows
            ));
        }
        let ensemble = &training.ensemble;
        if ensemble.members.is_empty() {
            return bad("anomaly.training.ensemble.members: at least one member".into());
        }
        if let Some(m) = ensemble
            .members
            .iter()
            .find(|m| !(m.weight.is_finite() && m.weight > 0.0))
        {
            return bad(format!(
                "anomaly.training.ensemble.members: weights must be positive, got {}",
                m.weight
            ));
        }
        if !(0.0..=0.5).contains(&ensemble.tail_fraction) {
            return bad(format!(
                "anomaly.training.ensemble.tail_fraction must be within 0..=0.5, got {}",
                ensemble.tail_fraction
            ));
        }
        if let mantis_ml::CalibrationMode::CrossFit { folds, .. } = ensemble.calibration {
            if folds < 2 {
                return bad(format!(
                    "anomaly.training.ensemble.calibration: cross-fitting needs at least 2 folds, got {folds}"
                ));
            }
            if training.max_windows < 2 * folds {
                return bad(format!(
                    "anomaly.training.max_windows ({}) must hold two windows per calibration fold ({})",
                    training.max_windows,
                    2 * folds
                ));
            }
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8004".into(),
            warmup_windows: 20,
            explain_top: 3,
            min_window_fill: 0.8,
            confirm_windows: 2,
            clear_windows: 2,
            hysteresis: 0.05,
            auto_train_after_secs: 86_400,
            train_check_secs: 60,
            training: TrainConfig::default(),
            score_cache_ttl_secs: 300,
            drift_windows: 60,
        }
    }
}

/// The consumer group of the service.
pub const GROUP: &str = "anomaly";
/// The detection method recorded for windows scored by the online baseline.
pub const METHOD: &str = "robust-zscore";
/// The detection method recorded for windows scored by a trained model.
pub const MODEL_METHOD: &str = "ensemble";

/// The cache key of an asset's latest score.
pub fn latest_score_key(asset: AssetId) -> String {
    format!("anomaly:latest:{asset}")
}

const ASSET_TTL: Duration = Duration::from_secs(30);

struct AnomalyHandler {
    store: Arc<dyn Store>,
    cache: Arc<dyn mantis_cache::Cache>,
    models: Arc<Models>,
    publisher: Publisher,
    rules: RuleSet,
    config: Config,
    baselines: HashMap<SensorId, Baseline>,
    alarms: HashMap<SensorId, AlarmState>,
    assets: HashMap<AssetId, (Criticality, Instant)>,
    sampling_rates: HashMap<SensorId, (f64, Instant)>,
    /// The assets whose promoted model was looked for since the service started.
    models_checked: std::collections::HashSet<AssetId>,
    health: Health,
}

fn state_key(sensor: SensorId) -> String {
    format!("anomaly.baseline.{sensor}")
}

fn alarm_key(sensor: SensorId) -> String {
    format!("anomaly.alarm.{sensor}")
}

impl AnomalyHandler {
    fn new(
        infra: &Infra,
        config: &Config,
        models: &Arc<Models>,
        rules: &RuleSet,
        health: &Health,
    ) -> Self {
        Self {
            store: infra.store.clone(),
            cache: infra.cache.clone(),
            models: models.clone(),
            publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "anomaly"),
            rules: rules.clone(),
            config: config.clone(),
            baselines: HashMap::new(),
            alarms: HashMap::new(),
            assets: HashMap::new(),
            sampling_rates: HashMap::new(),
            models_checked: std::collections::HashSet::new(),
            health: health.clone(),
        }
    }

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
        len_ms: i64,
        score: f64,
        threshold: f64,
        scorer: &str,
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
        let decision = state.judge(rule, window_ms, len_ms, score, threshold, scorer);
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

    /// The fraction of the expected samples the window holds (see [`models::window_fill`]).
    async fn window_fill(&mut self, fv: &FeatureVector) -> Result<f64, HandleError> {
        let Some(count) = fv.sample_count() else {
            return Ok(1.0);
        };
        // Read again after ASSET_TTL: a sensor's nominal rate can be changed (or registered
        // after its first windows), and an unknown rate is not remembered.
        let rate = match self.sampling_rates.get(&fv.sensor_id) {
            Some((r, at)) if at.elapsed() < ASSET_TTL => *r,
            _ => {
                let rate = self
                    .store
                    .get_sensor(fv.sensor_id)
                    .await?
                    .map_or(0.0, |s| s.sampling_rate_hz);
                if rate > 0.0 {
                    self.sampling_rates
                        .insert(fv.sensor_id, (rate, Instant::now()));
                } else {
                    self.sampling_rates.remove(&fv.sensor_id);
                }
                rate
            }
        };
        let secs = (fv.window_end - fv.window_start).num_milliseconds() as f64 / 1000.0;
        Ok(models::window_fill(count, rate * secs))
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
        // The online baseline keeps learning either way: it scores the sensors a model does
        // not cover (yet).
        let observation = self
            .baseline(fv.sensor_id)
            .await?
            .observe(window_ms, &fv.features);
        // Persisted before anything else is done with the window, also while a model scores
        // the asset: what the baseline learned from a committed window is never lost.
        if let Observation::Learning {
            changed: true,
            needed,
            ..
        } = observation
        {
            self.persist_baseline(fv.sensor_id, needed).await?;
        }
        if self.models_checked.insert(fv.asset_id) {
            // The asset's first window since the service started: its promoted model is loaded
            // before it is scored (the trainer's pass over every asset may come minutes
            // later), so that the baseline does not score it meanwhile and a run toward an
            // alarm does not begin under one scorer and end under the other.
            if let Err(e) = self.models.reload(fv.asset_id).await {
                tracing::warn!(asset = %fv.asset_id, error = %e, "promoted model not loaded; the baseline scores the asset until the trainer loads it");
            }
        }
        let served = self.models.served(fv.asset_id);
        let scored = served.as_ref().and_then(|m| {
            m.model
                .score(fv, self.config.explain_top)
                .map(|r| (m.version, r))
        });
        let verdict = match (scored, observation) {
            (Some((version, Ok(s))), _) => Verdict {
                score: s.alarm,
                method: MODEL_METHOD,
                model_version: Some(version.to_string()),
                members: s.members.clone(),
                contributions: s
                    .contributions
                    .iter()
                    // Ranked by their share of the ensemble's score; each with its robust
                    // z-score against the training windows, which operators read.
                    .map(|c| Contribution {
                        feature: c.feature.clone(),
                        sensor_id: fv.sensor_id,
                        value: c.value,
                        z_score: c.z,
                    })
                    .collect(),
            },
            (Some((version, Err(e))), _) => {
                return Err(HandleError::Permanent(format!(
                    "model version {version} of asset {} cannot score this window: {e}",
                    fv.asset_id
                )));
            }
            (None, Observation::Learning { seen, needed, .. }) => {
                tracing::trace!(sensor = %fv.sensor_id, seen, needed, "learning baseline");
                return Ok(ctx.done());
            }
            (None, Observation::Scored { score, deviations }) => Verdict {
                score,
                method: METHOD,
                model_version: None,
                members: Default::default(),
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
            },
        };
        metrics::histogram!("mantis_anomaly_score", "method" => verdict.method)
            .record(verdict.score);
        let threshold = self.rules.anomaly_threshold(criticality);
        let scorer = match &verdict.model_version {
            Some(version) => format!("{}:{version}", verdict.method),
            None => verdict.method.to_owned(),
        };
        let is_anomaly = self
            .judge(
                fv.sensor_id,
                window_ms,
                (fv.window_end - fv.window_start).num_milliseconds(),
                verdict.score,
                threshold,
                &scorer,
            )
            .await?;
        let anomaly = is_anomaly.then(|| Anomaly {
            id: Anomaly::id_for(fv.sensor_id, fv.window_start),
            asset_id: fv.asset_id,
            sensor_id: fv.sensor_id,
            window_start: fv.window_start,
            detected_at: fv.window_end,
            score: verdict.score,
            threshold,
            severity: Severity::for_anomaly(criticality, verdict.score, threshold),
            criticality,
            method: verdict.method.to_owned(),
            contributions: verdict.contributions.clone(),
        });
        if let Some(anomaly) = &anomaly {
            let new = self.store.insert_anomaly(anomaly).await?;
            if new {
                metrics::counter!("mantis_anomalies_total", "severity" => anomaly.severity.as_str())
                    .increment(1);
                tracing::info!(asset = %anomaly.asset_id, sensor = %anomaly.sensor_id, score = anomaly.score, severity = %anomaly.severity, method = %anomaly.method, "anomaly detected");
            }
        }
        let member = |k| verdict.members.get(&k).copied();
        let row = AnomalyScore {
            window_start: fv.window_start,
            sensor_id: fv.sensor_id,
            asset_id: fv.asset_id,
            anomaly_id: anomaly.as_ref().map(|a| a.id),
            ensemble_score: verdict.score,
            zscore_score: member(DetectorKind::RobustZ),
            isolation_forest_score: member(DetectorKind::IsolationForest),
            ocsvm_score: member(DetectorKind::OneClassSvm),
            autoencoder_score: member(DetectorKind::Autoencoder),
            threshold,
            severity: anomaly.as_ref().map(|a| a.severity),
            method: verdict.method.to_owned(),
            model_version: verdict.model_version.clone(),
        };
        self.store.upsert_anomaly_score(&row).await?;
        self.cache_latest(&row).await;
        if let Some(anomaly) = anomaly {
            // Published even when the row existed: the previous attempt may have stopped
            // before publishing; downstream handling is keyed by the anomaly id.
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
        }
        Ok(ctx.done())
    }

    fn revoked(&mut self, _partitions: &[i32]) {
        // Another replica scores some sensors now and persists their baselines and alarm
        // states: should one come back, both are read again from the store rather than
        // continued (and written back) from what this replica knew before.
        self.baselines.clear();
        self.alarms.clear();
        self.sampling_rates.clear();
    }
}

/// How one window was scored.
struct Verdict {
    score: f64,
    method: &'static str,
    model_version: Option<String>,
    members: std::collections::BTreeMap<DetectorKind, f64>,
    contributions: Vec<Contribution>,
}

impl AnomalyHandler {
    async fn persist_baseline(
        &mut self,
        sensor: SensorId,
        needed: usize,
    ) -> Result<(), HandleError> {
        let b = self.baseline(sensor).await?.clone();
        let value = serde_json::to_value(&b).map_err(|e| HandleError::Permanent(e.to_string()))?;
        if let Err(e) = self.store.put_state(&state_key(sensor), &value).await {
            // Not persisted: forget the in-memory change, so that the redelivered window is
            // learned again (the baseline would otherwise recognise it and not persist it).
            self.baselines.remove(&sensor);
            return Err(e.into());
        }
        if b.is_ready() {
            let ready = self.baselines.values().filter(|b| b.is_ready()).count();
            self.health
                .set_detail("baselinesReady", serde_json::json!(ready));
            tracing::info!(%sensor, windows = needed, "baseline learned");
        }
        Ok(())
    }

    /// Caches the asset's latest score (best effort: the store has it too).
    async fn cache_latest(&self, row: &AnomalyScore) {
        let Ok(bytes) = serde_json::to_vec(row) else {
            return;
        };
        let ttl = Duration::from_secs(self.config.score_cache_ttl_secs.max(1));
        if let Err(e) = self
            .cache
            .set(&latest_score_key(row.asset_id), bytes, ttl)
            .await
        {
            tracing::debug!(error = %e, "latest score not cached");
        }
    }
}

/// How long an asset whose automatic training failed waits before it is tried again.
const TRAIN_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// The lease of an asset's automatic training (`anomaly.train.<asset id>`), renewed while it
/// runs: one replica trains an asset at a time.
const TRAIN_LEASE_TTL: Duration = Duration::from_secs(120);

/// Trains the assets that have enough normal history and no model, and loads models promoted
/// elsewhere, every `train_check_secs`.
async fn trainer(
    models: Arc<Models>,
    store: Arc<dyn Store>,
    config: Config,
    health: Health,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let every = Duration::from_secs(config.train_check_secs.max(1));
    let mut drifted: std::collections::HashSet<AssetId> = std::collections::HashSet::new();
    // When an asset's automatic training last failed: not tried again (its history read,
    // its training run) before `TRAIN_RETRY_AFTER`, say an idle machine whose features are
    // all constant.
    let mut failed: std::collections::HashMap<AssetId, std::time::Instant> =
        std::collections::HashMap::new();
    let holder = mantis_runtime::lease_holder(None, "anomaly");
    loop {
        let assets = match store.list_assets(None).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "model check: assets unavailable");
                Vec::new()
            }
        };
        for asset in assets {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if let Err(e) = models.reload(asset.id).await {
                tracing::warn!(asset = %asset.code, error = %e, "promoted model not loaded");
            }
            if let Some(served) = models.served(asset.id) {
                match drift_of(&served, store.as_ref(), config.drift_windows).await {
                    Ok(sensors) if !sensors.is_empty() => {
                        let psi = sensors.iter().map(|(_, d)| d.max_psi).fold(0.0, f64::max);
                        let is_drift = sensors.iter().any(|(_, d)| d.drifted);
                        metrics::gauge!("mantis_anomaly_drift_psi", "asset" => asset.code.clone())
                            .set(psi);
                        if is_drift {
                            if drifted.insert(asset.id) {
                                tracing::warn!(asset = %asset.code, psi, "feature distribution drifted from the model's training data; consider retraining");
                            }
                        } else if drifted.remove(&asset.id) {
                            tracing::info!(asset = %asset.code, psi, "feature distribution back within the model's training data");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(asset = %asset.code, error = %e, "drift not computed")
                    }
                }
                continue;
            }
            if config.auto_train_after_secs == 0
                || failed
                    .get(&asset.id)
                    .is_some_and(|at| at.elapsed() < TRAIN_RETRY_AFTER)
            {
                continue;
            }
            // One replica trains an asset: the others find the lease taken, and load the
            // model it promotes at a later check.
            let lease = format!("anomaly.train.{}", asset.id);
            let failed_key = format!("anomaly.train.failed.{}", asset.id);
            let work = async {
                // Failed lately on another replica: not tried again before its time.
                if mantis_runtime::noted_within(store.as_ref(), &failed_key, TRAIN_RETRY_AFTER)
                    .await
                {
                    return Ok(None);
                }
                // Promoted by another replica since this check's reload: served, not retrained.
                if let Err(e) = models.reload(asset.id).await {
                    tracing::warn!(asset = %asset.code, error = %e, "promoted model not loaded");
                }
                if models.served(asset.id).is_some() {
                    return Ok(None);
                }
                let trained = auto_train(&models, asset.id, &config).await;
                if trained.as_ref().is_err_and(|e| {
                    !matches!(
                        e,
                        models::ModelError::Busy(_) | models::ModelError::TrainingsBusy
                    )
                }) {
                    mantis_runtime::note_time(store.as_ref(), &failed_key).await;
                }
                trained
            };
            let outcome = match mantis_runtime::while_holding(
                store.as_ref(),
                &lease,
                &holder,
                TRAIN_LEASE_TTL,
                work,
            )
            .await
            {
                Ok(Some(outcome)) => outcome,
                Ok(None) => continue, // another replica is training it
                Err(e) => {
                    tracing::warn!(asset = %asset.code, error = %e, "automatic training not started (lease unavailable); will retry");
                    continue;
                }
            };
            match outcome {
                Ok(Some(t)) => {
                    failed.remove(&asset.id);
                    tracing::info!(
                        asset = %asset.code,
                        version = t.version,
                        windows = t.report.windows.values().sum::<usize>(),
                        seconds = t.report.seconds,
                        "anomaly model trained automatically"
                    );
                }
                Ok(None) | Err(models::ModelError::Busy(_) | models::ModelError::TrainingsBusy) => {
                }
                Err(e) => {
                    failed.insert(asset.id, std::time::Instant::now());
                    tracing::warn!(asset = %asset.code, error = %e, retry_in_secs = TRAIN_RETRY_AFTER.as_secs(), "automatic training failed")
                }
            }
        }
        health.set_detail("modelsServed", serde_json::json!(models.served_count()));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Drift of each sensor of the model over its latest `windows` windows after the training
/// period (sensors without enough such windows are left out). The trainer's check and the API
/// both read it.
pub async fn drift_of(
    served: &models::Served,
    store: &dyn Store,
    windows: u32,
) -> Result<Vec<(SensorId, model::SensorDrift)>, mantis_store::Error> {
    let mut out = Vec::new();
    for sensor in served.model.sensors.keys() {
        let recent = store
            .recent_features(
                *sensor,
                served.model.trained_to,
                chrono::Utc::now(),
                windows,
            )
            .await?;
        if let Some(d) = served.model.drift(*sensor, &recent) {
            out.push((*sensor, d));
        }
    }
    Ok(out)
}

async fn auto_train(
    models: &Models,
    asset: AssetId,
    config: &Config,
) -> Result<Option<models::Trained>, models::ModelError> {
    // Windows of normal operation only: since the asset's last failure or replacement (what
    // came before was another life, maybe its wear-out) and before its oldest active work
    // order, if any.
    let until = models.normal_until(asset).await?;
    let since = models.normal_since(asset).await?;
    let Some((windows, span)) = models.history_span(asset, since, until).await? else {
        return Ok(None);
    };
    let needed =
        chrono::Duration::seconds(i64::try_from(config.auto_train_after_secs).unwrap_or(i64::MAX));
    if windows < config.training.min_windows || span < needed {
        return Ok(None);
    }
    models.train(asset, since, until, true).await.map(Some)
}

/// Checks `config` as [`build`] does before it connects anything (`mantis config check`): the
/// service's settings and the rules in `infra.rules_dir`.
pub fn check_config(infra: &mantis_runtime::InfraSettings, config: &Config) -> Result<()> {
    prepare(infra, config).map(drop)
}

fn prepare(infra: &mantis_runtime::InfraSettings, config: &Config) -> Result<RuleSet> {
    config.validate()?;
    RuleSet::load_or_builtin(infra.rules_dir.as_deref())
        .map_err(|e| mantis_runtime::Error::Config(e.to_string()))
}

/// Builds the anomaly-detection service.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    let rules = prepare(&infra.settings, &config)?;
    infra.check_object_store().await;
    let health = App::health("anomaly", &infra);
    health.set_detail("method", serde_json::json!(METHOD));
    health.set_detail("warmupWindows", serde_json::json!(config.warmup_windows));
    health.set_detail("confirmWindows", serde_json::json!(config.confirm_windows));
    let models = Arc::new(
        Models::new(
            mantis_objects::registry::ModelRegistry::new(infra.objects.clone()),
            infra.store.clone(),
            config.training.clone(),
        )
        .with_min_window_fill(config.min_window_fill),
    );
    let handler = AnomalyHandler::new(&infra, &config, &models, &rules, &health);
    let api = routes::router(routes::ApiState {
        models: models.clone(),
        store: infra.store.clone(),
        cache: infra.cache.clone(),
        rules,
        drift_windows: config.drift_windows,
        explain_top: config.explain_top,
    });
    let (store, trainer_config, trainer_health) =
        (infra.store.clone(), config.clone(), health.clone());
    Ok(App::new("anomaly", &config.bind, api, health)
        .await?
        .worker("consumer", move |shutdown| {
            run_consumer(infra, GROUP, handler, shutdown)
        })
        .worker("trainer", move |shutdown| {
            trainer(models, store, trainer_config, trainer_health, shutdown)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change that makes a valid configuration invalid.
    type Spoil = fn(&mut Config);

    #[test]
    fn every_setting_is_checked_and_named_when_bad() {
        assert!(Config::default().validate().is_ok());
        let bad: [(&str, Spoil); 10] = [
            ("anomaly.min_window_fill", |c| c.min_window_fill = 1.5),
            ("anomaly.min_window_fill", |c| c.min_window_fill = f64::NAN),
            ("anomaly.confirm_windows", |c| c.confirm_windows = 0),
            ("anomaly.clear_windows", |c| c.clear_windows = 0),
            ("anomaly.hysteresis", |c| c.hysteresis = -0.1),
            ("anomaly.train_check_secs", |c| c.train_check_secs = 0),
            ("anomaly.drift_windows", |c| c.drift_windows = 0),
            ("anomaly.training.max_windows (50)", |c| {
                c.training.max_windows = 50;
            }),
            ("members: at least one", |c| {
                c.training.ensemble.members.clear();
            }),
            ("tail_fraction", |c| c.training.ensemble.tail_fraction = 0.9),
        ];
        for (named, spoil) in bad {
            let mut config = Config::default();
            spoil(&mut config);
            let message = config.validate().expect_err(named).to_string();
            assert!(message.contains(named), "{named}: {message}");
        }
        let mut folds = Config::default();
        folds.training.ensemble.calibration = mantis_ml::CalibrationMode::CrossFit {
            folds: 1,
            contiguous: false,
        };
        assert!(
            folds
                .validate()
                .is_err_and(|e| e.to_string().contains("at least 2 folds"))
        );
    }

    /// A sensor scored by another replica while its partition was away: when it comes back,
    /// its alarm is judged from the state the other replica stored, not from the one this
    /// replica had cached before.
    #[tokio::test]
    async fn a_revoked_partition_s_alarm_states_are_read_again_from_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = mantis_bus::embedded::EmbeddedBus::open(dir.path())
            .await
            .expect("log");
        let store = mantis_store::sqlite::SqliteStore::in_memory()
            .await
            .expect("sqlite");
        let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
        let config = Config {
            confirm_windows: 1,
            clear_windows: 1,
            hysteresis: 0.5,
            ..Config::default()
        };
        let models = Arc::new(Models::new(
            mantis_objects::registry::ModelRegistry::new(infra.objects.clone()),
            infra.store.clone(),
            config.training.clone(),
        ));
        let health = App::health("anomaly", &infra);
        let rules = RuleSet::builtin().expect("built-in rules");
        let mut handler = AnomalyHandler::new(&infra, &config, &models, &rules, &health);
        let sensor = SensorId::new_random();
        let (len, threshold) = (10_000, 1.0);
        // Opened here by a high window.
        assert!(
            handler
                .judge(sensor, 0, len, 2.0, threshold, "ensemble:1")
                .await
                .expect("judged")
        );
        // The partition goes to another replica, which sees the alarm open and then closes it
        // with a low window (and stores that).
        let mut elsewhere = AlarmState::default();
        let rule = handler.rule();
        assert!(
            elsewhere
                .judge(rule, 0, len, 2.0, threshold, "ensemble:1")
                .anomaly
        );
        assert!(
            !elsewhere
                .judge(rule, len, len, 0.1, threshold, "ensemble:1")
                .anomaly
        );
        assert!(!elsewhere.is_open());
        infra
            .store
            .put_state(
                &alarm_key(sensor),
                &serde_json::to_value(&elsewhere).expect("json"),
            )
            .await
            .expect("stored");
        handler.revoked(&[0]);
        // Back here: a window in the hysteresis band (0.7 ≥ 1.0 − 0.5) only continues an open
        // alarm; the alarm is closed, so it is no anomaly (the cached state said open).
        assert!(
            !handler
                .judge(sensor, 2 * len, len, 0.7, threshold, "ensemble:1")
                .await
                .expect("judged")
        );
    }
}
