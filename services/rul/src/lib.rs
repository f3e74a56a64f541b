//! # mantis-rul
//!
//! Remaining-useful-life prediction. Consumes `features.extracted`, keeps a sliding sequence of
//! windows per asset (the features of all its sensors side by side, see [`rows`]) and, once
//! every sensor of an asset reported a window, predicts with the model promoted for the asset's
//! type: the RUL in cycles (rows of the asset, one per window step, unless `[rul.cycle_secs]`
//! says how long a cycle of its type is) with its conformal 90 % interval, stored in
//! `rul_predictions` and published on `rul.predicted` (the orchestrator turns a RUL below the
//! criticality's threshold into a work order).
//!
//! Models ([`models`]): the in-platform gradient-boosted trees, trained from the plant's own
//! runs to failure (failures and replacements recorded as maintenance events end a run) —
//! automatically once an asset type has `min_runs` of them and no model, or through
//! `POST /api/v1/rul/train` and `mantis train rul` — and deep models uploaded as ONNX with
//! their input contract. Versions live in the model registry (object storage); the promoted
//! one of each type is served and hot-swapped, every replica polling the registry.
//!
//! Nothing is lost across restarts: an asset's sequence is rebuilt from the stored feature
//! history (since its last failure or replacement) on its first window after a start.

pub mod models;
pub mod routes;
pub mod rows;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mantis_bus::Position;
use mantis_domain::{Asset, AssetId, FeatureVector, Fleet, RulPrediction, SensorId};
use mantis_rul_model::tree::TreeConfig;
use mantis_runtime::{
    App, HandleError, Handler, Infra, Publisher, RecordContext, Result, run_consumer,
};
use mantis_store::Store;
use mantis_telemetry::Health;
use models::{ModelError, Models, TrainRequest};
use rows::{AssetLayout, Rows, SensorWatch, row_step_secs, with_early};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Configuration of the RUL service (`[rul]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address. Default `0.0.0.0:8005` (`mantis`, all services in one process:
    /// `127.0.0.1:8005`; this API takes no credentials).
    pub bind: String,
    /// Train an asset type's model by itself once its assets have `min_runs` runs to failure
    /// and no model is promoted. Default true.
    pub auto_train: bool,
    /// Runs to failure an asset type needs before automatic training. Default 3.
    pub min_runs: usize,
    /// Seconds between two checks for models promoted elsewhere, new failures and types to
    /// train; an asset's type and sensors are read again as often. Default 60.
    pub check_secs: u64,
    /// Windows of one run to failure used for training at most (its last ones: each sensor's
    /// newest this many). Default 20000.
    pub max_rows_per_run: u32,
    /// Windows a training reads, over all runs, at most (about: see `max_rows_per_run`; it
    /// holds them in memory): beyond it, fewer windows per run (down to 500), then only the
    /// newest runs. Default 250000.
    pub max_training_rows: u64,
    /// Columns that are operating settings (regimes), e.g. `speed.mean`. Default none.
    pub settings_columns: Vec<String>,
    /// The in-platform model (`[rul.training]`: window, labelCap, trees, ...).
    pub training: TreeConfig,
    /// Seconds of one operating cycle per asset type (`[rul.cycle_secs]`, e.g. `press = 4.0`):
    /// RUL is published in these cycles. A type without an entry counts one window step of its
    /// assets (the hop; the window length for tumbling windows) as one cycle.
    pub cycle_secs: BTreeMap<String, f64>,
}

impl Config {
    /// Checks every setting; the message names the first bad one (`rul.` and its key), so a
    /// mistyped limit stops the start rather than being read as something else.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(mantis_runtime::Error::Config(m));
        if self.min_runs < models::MIN_TRAINING_RUNS {
            return bad(format!(
                "rul.min_runs must be at least {} (a training needs that many runs to failure), got {}",
                models::MIN_TRAINING_RUNS,
                self.min_runs
            ));
        }
        if self.check_secs == 0 {
            return bad("rul.check_secs must be at least 1".into());
        }
        if let Err(e) = self.training.validate() {
            let message = match e {
                mantis_rul_model::RulError::Training(m) => m,
                other => other.to_string(),
            };
            return bad(format!("rul.training: {message}"));
        }
        let window = u32::try_from(self.training.window).unwrap_or(u32::MAX);
        if self.max_rows_per_run < window {
            return bad(format!(
                "rul.max_rows_per_run must be at least rul.training.window ({window}): a run shorter than the window teaches nothing, got {}",
                self.max_rows_per_run
            ));
        }
        let least = u64::from(
            self.max_rows_per_run
                .min(models::MIN_ROWS_PER_RUN_WHEN_SHARED),
        ) * models::MIN_TRAINING_RUNS as u64;
        if self.max_training_rows < least {
            return bad(format!(
                "rul.max_training_rows must be at least {least} ({} runs of {} windows), got {}",
                models::MIN_TRAINING_RUNS,
                self.max_rows_per_run
                    .min(models::MIN_ROWS_PER_RUN_WHEN_SHARED),
                self.max_training_rows
            ));
        }
        if let Some(column) = self.settings_columns.iter().find(|c| c.trim().is_empty()) {
            return bad(format!(
                "rul.settings_columns holds an empty column name ({column:?})"
            ));
        }
        for (asset_type, secs) in &self.cycle_secs {
            if !(secs.is_finite() && *secs > 0.0) {
                return bad(format!(
                    "rul.cycle_secs.{asset_type} must be a positive number of seconds, got {secs}"
                ));
            }
        }
        Ok(())
    }

    /// How many cycles of `asset_type` one row, a window step of `step_secs`, spans.
    pub fn cycles_per_window(&self, asset_type: &str, step_secs: f64) -> f64 {
        cycles_per_window(&self.cycle_secs, asset_type, step_secs)
    }
}

/// How many cycles of `asset_type` (per `cycle_secs`) one row, a window step of `step_secs`
/// (the hop: with hopping windows less than a window's length), spans.
pub fn cycles_per_window(
    cycle_secs: &BTreeMap<String, f64>,
    asset_type: &str,
    step_secs: f64,
) -> f64 {
    match cycle_secs.get(asset_type) {
        Some(c) if *c > 0.0 && c.is_finite() && step_secs > 0.0 => step_secs / c,
        _ => 1.0,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8005".into(),
            auto_train: true,
            min_runs: 3,
            check_secs: 60,
            max_rows_per_run: 20_000,
            max_training_rows: 250_000,
            settings_columns: Vec::new(),
            training: TreeConfig::default(),
            cycle_secs: BTreeMap::new(),
        }
    }
}

/// The consumer group of the service.
pub const GROUP: &str = "rul";

/// Start of each asset's current life (its last failure or replacement), refreshed by the
/// checker: an asset whose life restarted gets a fresh sequence.
type Lives = Arc<RwLock<HashMap<AssetId, DateTime<Utc>>>>;

struct AssetState {
    layout: Arc<AssetLayout>,
    life_start: DateTime<Utc>,
    model_version: u64,
    rows: Rows,
    /// The life's first rows, up to the served model's early-life baseline (empty when it
    /// has none).
    early: Rows,
}

/// An asset without predictions because some of its sensors are silent.
struct Waiting {
    code: String,
    /// The silent sensors' codes (none: every sensor reports, but their windows do not line up).
    silent: Vec<String>,
    /// When a window of the asset was last handled, and how long after it the entry is
    /// forgotten (the asset's windows stopped coming here: decommissioned, or its partition
    /// went to another replica).
    touched: std::time::Instant,
    forget_after: Duration,
}

struct RulHandler {
    store: Arc<dyn Store>,
    models: Arc<Models>,
    publisher: Publisher,
    lives: Lives,
    states: HashMap<AssetId, AssetState>,
    /// Each asset's layout and when it was read.
    layouts: HashMap<AssetId, (Arc<AssetLayout>, std::time::Instant)>,
    /// How long a layout is used before it is read again (the check period).
    layout_ttl: Duration,
    skipped: u64,
    predicted: u64,
    /// Assets without predictions because some of their sensors have not reported for more
    /// than [`PENDING_ROWS`] window steps.
    waiting: BTreeMap<AssetId, Waiting>,
    /// When forgotten entries of `waiting` were last looked for.
    waiting_pruned: std::time::Instant,
    /// When a warning about each asset's sensors was last logged.
    warned: HashMap<AssetId, std::time::Instant>,
    /// Each asset's last measured window step in seconds (see [`Rows::step_secs`]).
    steps: HashMap<AssetId, f64>,
    /// When each asset's sensors last reported (kept across rebuilds of its state).
    watches: HashMap<AssetId, SensorWatch>,
    /// Feature vectors handled.
    handled: u64,
    /// The bus partition each asset's feature vectors came from last.
    partitions: HashMap<AssetId, i32>,
    cycle_secs: BTreeMap<String, f64>,
    health: Health,
}

impl RulHandler {
    fn new(
        infra: &Infra,
        config: &Config,
        models: Arc<Models>,
        lives: Lives,
        health: Health,
    ) -> Self {
        Self {
            store: infra.store.clone(),
            models,
            publisher: Publisher::new(infra.bus.clone(), infra.codec.clone(), "rul"),
            lives,
            states: HashMap::new(),
            layouts: HashMap::new(),
            layout_ttl: Duration::from_secs(config.check_secs.max(1)),
            skipped: 0,
            predicted: 0,
            waiting: BTreeMap::new(),
            waiting_pruned: std::time::Instant::now(),
            warned: HashMap::new(),
            steps: HashMap::new(),
            watches: HashMap::new(),
            handled: 0,
            partitions: HashMap::new(),
            cycle_secs: config.cycle_secs.clone(),
            health,
        }
    }

    /// The layout of the asset: read again when a sensor it does not know reports, and at
    /// least once a check period (an asset registered again may have another type, so another
    /// fleet and model, or other sensors). A changed layout starts the asset's sequence again.
    async fn layout(
        &mut self,
        fv: &FeatureVector,
    ) -> std::result::Result<Option<Arc<AssetLayout>>, HandleError> {
        if let Some((l, read_at)) = self.layouts.get(&fv.asset_id)
            && l.has_sensor(fv.sensor_id)
            && read_at.elapsed() < self.layout_ttl
        {
            return Ok(Some(l.clone()));
        }
        let Some(asset) = self.store.get_asset(fv.asset_id).await? else {
            self.layouts.remove(&fv.asset_id);
            self.states.remove(&fv.asset_id);
            self.watches.remove(&fv.asset_id);
            self.steps.remove(&fv.asset_id);
            self.partitions.remove(&fv.asset_id);
            self.warned.remove(&fv.asset_id);
            self.stop_waiting(fv.asset_id);
            return Ok(None);
        };
        let sensors = self.store.list_sensors(Some(asset.id)).await?;
        let layout = Arc::new(AssetLayout::new(&asset, &sensors));
        let read_at = std::time::Instant::now();
        match self.layouts.insert(asset.id, (layout.clone(), read_at)) {
            Some((before, _)) if before == layout => {}
            _ => {
                // Other sensors, maybe: watched and measured afresh.
                self.states.remove(&asset.id);
                self.watches.remove(&asset.id);
                self.steps.remove(&asset.id);
            }
        }
        Ok(layout.has_sensor(fv.sensor_id).then_some(layout))
    }

    /// Records which sensors of `layout`'s asset are silent, or that their windows do not line
    /// up (neither: it is not waiting); the report changes (and a warning is logged) only when
    /// that does.
    fn watch_sensors(
        &mut self,
        layout: &AssetLayout,
        silent: Vec<String>,
        unaligned: bool,
        step_secs: f64,
    ) {
        if silent.is_empty() && !unaligned {
            self.stop_waiting(layout.asset_id);
            return;
        }
        let touched = std::time::Instant::now();
        // Forgotten after twice the silence that reports it, ten minutes at least.
        let forget_after = Duration::from_secs_f64(
            (step_secs * PENDING_ROWS as f64 * 2.0).clamp(600.0, 30.0 * 86_400.0),
        );
        if let Some(w) = self.waiting.get_mut(&layout.asset_id) {
            (w.touched, w.forget_after) = (touched, forget_after);
            if w.silent == silent {
                return;
            }
            let same_reason = w.silent.is_empty() == silent.is_empty();
            w.silent.clone_from(&silent);
            self.report_waiting();
            if same_reason {
                return;
            }
        }
        // One warning per asset and [`WAITING_WARN_EVERY`] at most, whatever the flapping.
        let warn = self
            .warned
            .get(&layout.asset_id)
            .is_none_or(|at| at.elapsed() >= WAITING_WARN_EVERY);
        if !warn {
            tracing::debug!(asset = %layout.code, silent = %silent.join(", "), "RUL: the asset waits for its sensors again");
        } else if silent.is_empty() {
            tracing::warn!(
                asset = %layout.code,
                windows = PENDING_ROWS,
                "RUL: no prediction for this asset: its sensors report, but no window has had all of them for more than the window steps shown (their windows do not line up: check the sensors' clocks and window settings)"
            );
        } else {
            tracing::warn!(
                asset = %layout.code,
                silent = %silent.join(", "),
                windows = PENDING_ROWS,
                "RUL: no prediction for this asset: some of its sensors have not reported for more than the window steps shown (a model reads every sensor of the asset)"
            );
        }
        if warn {
            self.warned.insert(layout.asset_id, touched);
        }
        self.waiting.insert(
            layout.asset_id,
            Waiting {
                code: layout.code.clone(),
                silent,
                touched,
                forget_after,
            },
        );
        self.report_waiting();
    }

    /// The asset predicts again (or is gone, or has no model to wait for).
    fn stop_waiting(&mut self, asset: AssetId) {
        if let Some(w) = self.waiting.remove(&asset) {
            tracing::info!(asset = %w.code, "RUL: the asset is no longer waiting for silent sensors");
            self.report_waiting();
        }
    }

    /// Forgets (at most once a minute) the waiting assets whose windows stopped coming here.
    fn prune_waiting(&mut self) {
        if self.waiting_pruned.elapsed() < Duration::from_secs(60) {
            return;
        }
        self.waiting_pruned = std::time::Instant::now();
        let before = self.waiting.len();
        self.waiting
            .retain(|_, w| w.touched.elapsed() < w.forget_after);
        self.warned
            .retain(|_, at| at.elapsed() < WAITING_WARN_EVERY);
        if self.waiting.len() != before {
            self.report_waiting();
        }
    }

    fn report_waiting(&self) {
        metrics::gauge!("mantis_rul_assets_waiting_for_sensors").set(self.waiting.len() as f64);
        let listed: Vec<serde_json::Value> = self
            .waiting
            .iter()
            .take(WAITING_LISTED)
            .map(|(id, w)| {
                let reason = if w.silent.is_empty() {
                    "windows not aligned"
                } else {
                    "silent sensors"
                };
                serde_json::json!({
                    "assetId": id,
                    "asset": w.code,
                    "reason": reason,
                    "silentSensors": w.silent,
                })
            })
            .collect();
        self.health.set_detail(
            "assetsWaitingForSensors",
            serde_json::json!({"count": self.waiting.len(), "assets": listed}),
        );
    }

    fn skip(&mut self) {
        self.skipped += 1;
        metrics::counter!("mantis_rul_skipped_no_model_total").increment(1);
        self.health.set_detail(
            "featureVectorsWithoutPrediction",
            serde_json::json!(self.skipped),
        );
    }
}

fn model_error(e: ModelError) -> HandleError {
    match e {
        ModelError::Store(e) => e.into(),
        ModelError::Registry(e) => HandleError::Transient(e.to_string()),
        other => HandleError::Permanent(other.to_string()),
    }
}

#[async_trait]
impl Handler for RulHandler {
    type Input = FeatureVector;

    async fn handle(
        &mut self,
        fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> std::result::Result<Option<Position>, HandleError> {
        self.partitions.insert(fv.asset_id, ctx.envelope.partition);
        let done = self.handle_window(fv, ctx).await?;
        self.handled += 1;
        self.health
            .set_detail("featureVectorsHandled", serde_json::json!(self.handled));
        Ok(done)
    }

    fn revoked(&mut self, partitions: &[i32]) {
        // Another replica predicts for these assets now: should one come back here, its
        // sequence and sensor watch are rebuilt from the store (with what the other replica
        // handled meanwhile), not continued from what this replica had; its waiting entry
        // is the other replica's to report.
        let gone: Vec<AssetId> = self
            .partitions
            .iter()
            .filter(|(_, p)| partitions.contains(p))
            .map(|(a, _)| *a)
            .collect();
        if gone.is_empty() {
            return;
        }
        let before = self.waiting.len();
        for asset in &gone {
            self.partitions.remove(asset);
            self.states.remove(asset);
            self.watches.remove(asset);
            self.warned.remove(asset);
            self.waiting.remove(asset);
        }
        if self.waiting.len() != before {
            self.report_waiting();
        }
        tracing::debug!(
            assets = gone.len(),
            "RUL: assets of revoked partitions forgotten"
        );
    }
}

impl RulHandler {
    /// Handles one sensor's window of an asset.
    async fn handle_window(
        &mut self,
        fv: &FeatureVector,
        ctx: &RecordContext<'_>,
    ) -> std::result::Result<Option<Position>, HandleError> {
        let Some(layout) = self.layout(fv).await? else {
            tracing::debug!(asset = %fv.asset_id, sensor = %fv.sensor_id, "RUL: unknown asset or sensor");
            return Ok(ctx.done());
        };
        self.prune_waiting();
        let Some(served) = self.models.served(&layout.fleet) else {
            // Nothing to predict with: not waiting for sensors (the skip counter tells).
            self.stop_waiting(fv.asset_id);
            self.skip();
            return Ok(ctx.done());
        };
        let window = served.predictor.window().max(1);
        let baseline = served.predictor.baseline();
        let known_life = self
            .lives
            .read()
            .ok()
            .and_then(|l| l.get(&fv.asset_id).copied());
        let fresh = match self.states.get(&fv.asset_id) {
            Some(s) => {
                s.model_version != served.version
                    || known_life.is_some_and(|life| life > s.life_start)
                    || s.rows.skips_to(fv.window_start)
            }
            None => true,
        };
        if fresh {
            // Rebuild the sequence from the stored history of the current life, this window
            // included (other sensors' parts of it may have been handled before).
            let life_start = self
                .models
                .life_start(fv.asset_id)
                .await
                .map_err(model_error)?;
            // Through the newest window handled before too: another sensor's part of a newer
            // window may already be in (a sensor lagging the others when a new life began).
            let handled = self
                .states
                .get(&fv.asset_id)
                .and_then(|s| s.rows.last_start())
                .unwrap_or(fv.window_start);
            let through = fv.window_start.max(handled) + chrono::Duration::milliseconds(1);
            // The rows a lagging sensor may still complete too.
            let rows = self
                .models
                .rows(
                    &layout,
                    life_start,
                    through,
                    u32::try_from(window + PENDING_ROWS + 1).unwrap_or(u32::MAX),
                )
                .await
                .map_err(model_error)?;
            if life_start > DateTime::UNIX_EPOCH
                && !self.steps.contains_key(&fv.asset_id)
                && rows.step_secs().is_none()
            {
                // Too few rows of this life to measure the window step, and none remembered
                // (the service restarted since): the previous life's last rows tell it.
                let before = self
                    .models
                    .rows(&layout, DateTime::UNIX_EPOCH, life_start, STEP_ROWS)
                    .await
                    .map_err(model_error)?;
                if let Some(step) = before.step_secs() {
                    self.steps.insert(fv.asset_id, step);
                }
            }
            let early = self
                .models
                .first_rows(&layout, life_start, through, baseline)
                .await
                .map_err(model_error)?;
            // What the stored rows tell adds to what was seen before in this life (a sensor
            // silent since before this rebuild stays silent); a new life is watched afresh.
            let same_life = self
                .states
                .get(&fv.asset_id)
                .is_some_and(|s| s.life_start == life_start);
            match self.watches.get_mut(&fv.asset_id) {
                // The rows' own times: only a newer window moves a sensor on.
                Some(watch) if same_life => {
                    watch.absorb(&SensorWatch::from_rows(&rows, &layout, None));
                }
                _ => {
                    let step = self
                        .steps
                        .get(&fv.asset_id)
                        .copied()
                        .unwrap_or_else(|| row_step_secs([&rows]));
                    let span = silence_span(step);
                    let mut rebuilt = SensorWatch::from_rows(&rows, &layout, Some(span));
                    // Each sensor's newest stored window of this life too: the rows read stop
                    // at this window, and after a restart it may be a lagging sensor's while
                    // the others have gone further (as stored: how they got there is unknown,
                    // so no pause is judged from it).
                    let latest: Vec<(DateTime<Utc>, SensorId)> = self
                        .store
                        .latest_features(fv.asset_id)
                        .await?
                        .into_iter()
                        .filter(|f| {
                            f.window_start >= life_start
                                && f.window_start <= Utc::now() + span
                                && layout.has_sensor(f.sensor_id)
                        })
                        .map(|f| (f.window_start, f.sensor_id))
                        .collect();
                    for (start, sensor) in latest {
                        rebuilt.note(sensor, start, false);
                    }
                    self.watches.insert(fv.asset_id, rebuilt);
                }
            }
            self.states.insert(
                fv.asset_id,
                AssetState {
                    layout: layout.clone(),
                    life_start,
                    model_version: served.version,
                    rows,
                    early,
                },
            );
        }
        let Some(state) = self.states.get_mut(&fv.asset_id) else {
            return Ok(ctx.done());
        };
        if fv.window_start < state.life_start {
            // A window of the previous life (redelivered or late): not this life's wear.
            return Ok(ctx.done());
        }
        if !fresh
            && state
                .rows
                .completes(&state.layout, fv.window_start, fv.sensor_id)
        {
            // The window completes a row: a failure or replacement recorded since the state was
            // built (the checker refreshes the lives only once a check) makes it a new life's,
            // never predicted from the old life's wear. Asked when a row completes (or a complete
            // row's window is delivered again), not for every sensor.
            let life_now = self
                .models
                .life_start(fv.asset_id)
                .await
                .map_err(model_error)?;
            if life_now > state.life_start {
                tracing::info!(asset = %fv.asset_id, life_start = %life_now, "RUL: a new life began; its sequence starts again");
                // Handled again from the new life's stored history: the newer life makes the
                // state fresh (rebuilt, then checked against the life it was built for: no
                // further round).
                match self.lives.write() {
                    Ok(mut lives) => {
                        lives.insert(fv.asset_id, life_now);
                    }
                    Err(_) => {
                        self.states.remove(&fv.asset_id);
                    }
                }
                return Box::pin(self.handle_window(fv, ctx)).await;
            }
        }
        let Some(state) = self.states.get_mut(&fv.asset_id) else {
            return Ok(ctx.done());
        };
        state.rows.merge(&state.layout, fv);
        if baseline > 0
            && (state.early.len() < baseline
                || state
                    .early
                    .last_start()
                    .is_some_and(|s| fv.window_start <= s))
        {
            // One of the life's first windows: part of the early-life baseline.
            state.early.merge(&state.layout, fv);
            state.early.keep_first(baseline);
        }
        // The prediction this window makes when it completes its row (a late window too, from
        // the history held); the rows are bounded afterwards whatever happens, so a sensor that
        // never reports (or a model that cannot predict) does not grow the asset's history,
        // while a sensor lagging the others by up to PENDING_ROWS windows still completes them.
        // Rows count as the hop between windows, measured when a row completes; a life's first
        // row has no step to measure, so it takes the asset's last measured one (the window
        // length when there is none).
        let complete = state
            .rows
            .get(fv.window_start)
            .is_some_and(|row| row.is_complete(&state.layout));
        if complete && let Some(step) = state.rows.step_secs() {
            self.steps.insert(fv.asset_id, step);
        }
        let step = match self.steps.get(&fv.asset_id) {
            Some(step) => *step,
            None => row_step_secs([&state.rows]),
        };
        let span = silence_span(step);
        let watch = self.watches.entry(fv.asset_id).or_default();
        // A window from the future (a sensor's clock ahead) would move every time on with it.
        if fv.window_start <= Utc::now() + span {
            watch.saw(fv.sensor_id, fv.window_start, span);
        }
        if complete {
            watch.completed(fv.window_start);
        }
        let silent = watch.silent(&state.layout, span);
        let unaligned = silent.is_empty() && watch.unaligned(span);
        let outcome = state
            .rows
            .get(fv.window_start)
            .filter(|_| complete)
            .map(|row| {
                let scale =
                    cycles_per_window(&self.cycle_secs, &state.layout.fleet.asset_type, step);
                let tail = with_early(&state.early, state.rows.last_until(fv.window_start, window));
                (row.window_end, scale, served.predictor.cycles(&tail))
            });
        state.rows.keep_last(window + PENDING_ROWS);
        let layout = state.layout.clone();
        self.watch_sensors(&layout, silent, unaligned, step);
        let Some((predicted_at, scale, cycles)) = outcome else {
            return Ok(ctx.done());
        };
        let prediction = match served.predict_off_workers(cycles).await {
            // The runtime is stopping: the window is handled again after the restart.
            Err(ModelError::Task(e)) => return Err(HandleError::Transient(e)),
            Ok(p) => p,
            Err(e) => {
                metrics::counter!("mantis_rul_prediction_errors_total").increment(1);
                tracing::warn!(asset = %fv.asset_id, error = %e, "RUL: no prediction for this window");
                return Ok(ctx.done());
            }
        };
        let record = RulPrediction {
            asset_id: fv.asset_id,
            predicted_at,
            rul_cycles: prediction.rul * scale,
            confidence_lower: prediction.lower * scale,
            confidence_upper: prediction.upper * scale,
            model_version: served.label(),
        };
        // A window handled before (redelivered after a restart, maybe since predicted by
        // another model version) publishes what was stored then: the topic and the table
        // never tell two stories of one window.
        let record = if self.store.insert_rul_prediction(&record).await? {
            record
        } else {
            self.store
                .get_rul_prediction(record.asset_id, record.predicted_at)
                .await?
                .unwrap_or(record)
        };
        // Published even when the row existed: the previous attempt may have stopped before
        // publishing; the orchestrator keys its decisions by asset and prediction time.
        self.publisher
            .publish(Some(fv.asset_id.to_string()), &record, ctx.trace, vec![])
            .await?;
        self.predicted += 1;
        metrics::counter!("mantis_rul_predictions_total").increment(1);
        metrics::gauge!("mantis_rul_cycles", "asset" => fv.asset_id.to_string())
            .set(record.rul_cycles);
        self.health
            .set_detail("predictions", serde_json::json!(self.predicted));
        Ok(ctx.done())
    }
}

/// Rows kept per asset beyond the model's window: windows whose row another sensor has not
/// completed yet (a sensor lagging the others), and late windows. A sensor whose newest window
/// is more than this many window steps behind the asset's newest is silent: the asset is
/// reported as waiting for it (health, metric, one warning) until it catches up.
const PENDING_ROWS: usize = 72;

/// Rows of an asset's previous life read to measure its window step when it is not known.
const STEP_ROWS: u32 = 6;

/// How far behind the asset's newest window a sensor is silent, for windows `step_secs` apart:
/// further than the rows kept for a lagging one ([`PENDING_ROWS`] steps), so no row of the
/// asset completes without it.
fn silence_span(step_secs: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((step_secs * 1000.0 * PENDING_ROWS as f64) as i64)
}

/// At most one warning about an asset's sensors this often (the report itself is always
/// current).
const WAITING_WARN_EVERY: Duration = Duration::from_secs(600);

/// Assets listed by name in the health report's `assetsWaitingForSensors` (all are counted).
const WAITING_LISTED: usize = 50;

/// Reloads promoted models, refreshes the assets' lives and trains types that can be trained.
async fn checker(
    models: Arc<Models>,
    store: Arc<dyn Store>,
    lives: Lives,
    config: Config,
    health: Health,
    shutdown: CancellationToken,
) -> Result<()> {
    let period = Duration::from_secs(config.check_secs.max(1));
    let failures: TrainingFailures = Arc::default();
    let mut trainer: Option<tokio::task::JoinHandle<()>> = None;
    let holder: Arc<str> = mantis_runtime::lease_holder(None, "rul").into();
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // A training in flight registers nothing after the service stopped.
                    if let Some(t) = trainer.take() {
                        t.abort();
                    }
                    return Ok(());
                }
                () = tokio::time::sleep(period) => {}
            }
        }
        first = false;
        if let Err(e) = check_once(
            &models,
            &store,
            &lives,
            &config,
            &failures,
            (&mut trainer, &holder),
        )
        .await
        {
            tracing::warn!(error = %e, "RUL check failed; retrying at the next one");
        }
        let served = models.served_fleets();
        health.set_detail(
            "model",
            serde_json::json!({
                "loaded": !served.is_empty(),
                // Registry scopes: the asset type for the default tenant, `{tenant}.{type}` else.
                "assetTypes": served.iter().map(Fleet::scope).collect::<Vec<_>>(),
            }),
        );
    }
}

/// When each fleet's last automatic training failed: it is not tried again for
/// [`RETRAIN_BACKOFF_CHECKS`] checks (each attempt reads the fleet's whole history).
type TrainingFailures = Arc<std::sync::Mutex<HashMap<Fleet, std::time::Instant>>>;

/// Checks skipped after a failed automatic training of a fleet.
const RETRAIN_BACKOFF_CHECKS: u32 = 10;

/// The lease of a fleet's automatic training (`rul.train.<registry scope>`), renewed while it
/// runs: one replica trains a fleet at a time.
const TRAIN_LEASE_TTL: Duration = Duration::from_secs(120);

async fn check_once(
    models: &Arc<Models>,
    store: &Arc<dyn Store>,
    lives: &Lives,
    config: &Config,
    failures: &TrainingFailures,
    (trainer, holder): (&mut Option<tokio::task::JoinHandle<()>>, &Arc<str>),
) -> std::result::Result<(), ModelError> {
    let mut due = Vec::new();
    // One row per asset with a life end, however long the plant's maintenance history.
    let ends = store.life_ends().await?;
    let runs: HashMap<AssetId, usize> = ends
        .iter()
        .map(|e| (e.asset_id, usize::try_from(e.count).unwrap_or(usize::MAX)))
        .collect();
    if let Ok(mut l) = lives.write() {
        *l = ends.iter().map(|e| (e.asset_id, e.latest)).collect();
    }
    let assets = store.list_assets(None).await?;
    // Each tenant's asset types: tenants never learn from, nor are served by, another's runs.
    let mut fleets: Vec<Fleet> = assets.iter().map(Asset::fleet).collect();
    fleets.sort();
    fleets.dedup();
    for fleet in fleets {
        if let Err(e) = models.reload(&fleet).await {
            tracing::warn!(%fleet, error = %e, "RUL: cannot load the promoted model");
        }
        if !config.auto_train || models.served(&fleet).is_some() {
            continue;
        }
        let fleet_runs: usize = assets
            .iter()
            .filter(|a| a.tenant_id == fleet.tenant_id && a.asset_type == fleet.asset_type)
            .map(|a| runs.get(&a.id).copied().unwrap_or(0))
            .fold(0, usize::saturating_add);
        if fleet_runs < config.min_runs.max(1) {
            continue;
        }
        match models.versions(&fleet).await {
            Ok((_, Some(_))) => continue, // promoted but not loadable: reported above, never retrained over it
            Ok((_, None)) => {}
            Err(e) => {
                tracing::warn!(%fleet, error = %e, "RUL: cannot list the registered models");
                continue;
            }
        }
        let backoff =
            Duration::from_secs(config.check_secs.max(1)).saturating_mul(RETRAIN_BACKOFF_CHECKS);
        if failures
            .lock()
            .ok()
            .and_then(|f| f.get(&fleet).copied())
            .is_some_and(|at| at.elapsed() < backoff)
        {
            continue;
        }
        due.push((
            fleet_runs,
            TrainRequest {
                asset_type: fleet.asset_type.clone(),
                tenant_id: fleet.tenant_id,
                settings_columns: config.settings_columns.clone(),
                config: config.training.clone(),
                promote: true,
            },
        ));
    }
    // One training task at a time, off this loop: a training takes minutes, and meanwhile the
    // other fleets' promotions must still be loaded and the assets' lives refreshed; one at a
    // time, as before, so the live pipeline keeps a core. Fleets due while it runs wait for
    // the next check.
    if !due.is_empty() && trainer.as_ref().is_none_or(|t| t.is_finished()) {
        let (models, failures) = (models.clone(), failures.clone());
        let (store, holder) = (store.clone(), holder.clone());
        let backoff =
            Duration::from_secs(config.check_secs.max(1)).saturating_mul(RETRAIN_BACKOFF_CHECKS);
        *trainer = Some(tokio::spawn(async move {
            for (runs, request) in due {
                let fleet = Fleet::new(request.tenant_id, request.asset_type.clone());
                // One replica trains a fleet: the others find the lease taken and load the
                // model it promotes at a later check.
                let lease = format!("rul.train.{}", fleet.scope());
                let failed_key = format!("rul.train.failed.{}", fleet.scope());
                let work = async {
                    // Failed lately on another replica: not tried again before its time.
                    if mantis_runtime::noted_within(store.as_ref(), &failed_key, backoff).await {
                        return None;
                    }
                    // Promoted by another replica since this check's reload: not retrained.
                    if let Err(e) = models.reload(&fleet).await {
                        tracing::warn!(%fleet, error = %e, "RUL: cannot load the promoted model");
                    }
                    if models.served(&fleet).is_some() {
                        return None;
                    }
                    tracing::info!(%fleet, runs, "RUL: training the first model of the type");
                    let trained = models.train(request, None).await;
                    // Noted while the lease is held: another replica does not start a retry
                    // in between.
                    if trained.as_ref().is_err_and(|e| {
                        !matches!(e, ModelError::Busy(_) | ModelError::OtherTraining(_))
                    }) {
                        mantis_runtime::note_time(store.as_ref(), &failed_key).await;
                    }
                    Some(trained)
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
                    Ok(Some(Some(outcome))) => outcome,
                    Ok(Some(None) | None) => continue,
                    Err(e) => {
                        tracing::warn!(%fleet, error = %e, "RUL: automatic training not started (lease unavailable); will retry");
                        continue;
                    }
                };
                let failed = match outcome {
                    Ok(t) => {
                        tracing::info!(
                            %fleet,
                            version = t.version,
                            validation_rmse = t.report.validation_rmse,
                            "RUL: model trained and promoted"
                        );
                        false
                    }
                    Err(ModelError::Busy(_) | ModelError::OtherTraining(_)) => false,
                    Err(ModelError::NoRuns { .. }) => true,
                    Err(e) => {
                        tracing::warn!(%fleet, error = %e, "RUL: automatic training failed");
                        true
                    }
                };
                if let Ok(mut f) = failures.lock() {
                    if failed {
                        f.insert(fleet, std::time::Instant::now());
                    } else {
                        f.remove(&fleet);
                    }
                }
            }
        }));
    }
    Ok(())
}

/// The models of the platform configured by `infra` (also what `mantis train rul` uses).
pub fn models(infra: &Infra, config: &Config) -> Arc<Models> {
    Arc::new(Models::new(
        mantis_objects::registry::ModelRegistry::new(infra.objects.clone()),
        infra.store.clone(),
        config.max_rows_per_run,
        config.max_training_rows,
    ))
}

/// Builds the RUL service.
pub async fn build(infra: Infra, config: Config) -> Result<App> {
    config.validate()?;
    infra.check_object_store().await;
    let health = App::health("rul", &infra);
    health.set_detail(
        "model",
        serde_json::json!({ "loaded": false, "assetTypes": [] }),
    );
    let models = models(&infra, &config);
    let lives: Lives = Arc::new(RwLock::new(HashMap::new()));
    let handler = RulHandler::new(
        &infra,
        &config,
        models.clone(),
        lives.clone(),
        health.clone(),
    );
    handler.report_waiting();
    let api = routes::router(routes::ApiState {
        models: models.clone(),
        store: infra.store.clone(),
        training: config.training.clone(),
        settings_columns: config.settings_columns.clone(),
        cycle_secs: config.cycle_secs.clone(),
    });
    let (store, checker_config, checker_health) =
        (infra.store.clone(), config.clone(), health.clone());
    Ok(App::new("rul", &config.bind, api, health)
        .await?
        .worker("consumer", move |shutdown| {
            run_consumer(infra, GROUP, handler, shutdown)
        })
        .worker("checker", move |shutdown| {
            checker(
                models,
                store,
                lives,
                checker_config,
                checker_health,
                shutdown,
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change that makes a valid configuration invalid.
    type Spoil = fn(&mut Config);

    /// The message of the refusal of the default configuration changed by `spoil`.
    fn refused(spoil: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        spoil(&mut config);
        config.validate().expect_err("refused").to_string()
    }

    #[test]
    fn every_setting_is_checked_and_named_when_bad() {
        assert!(Config::default().validate().is_ok());
        let bad: [(&str, Spoil); 8] = [
            ("rul.min_runs", |c| c.min_runs = 1),
            ("rul.check_secs", |c| c.check_secs = 0),
            ("rul.max_rows_per_run", |c| c.max_rows_per_run = 0),
            ("rul.training.window (30)", |c| c.max_rows_per_run = 29),
            ("rul.max_training_rows must be at least 1000", |c| {
                c.max_training_rows = 0;
            }),
            ("rul.settings_columns", |c| {
                c.settings_columns = vec!["load.mean".into(), " ".into()];
            }),
            ("rul.cycle_secs.pump", |c| {
                c.cycle_secs = [("pump".to_owned(), 0.0)].into();
            }),
            ("rul.training: trees", |c| c.training.trees = 0),
        ];
        for (named, spoil) in bad {
            let message = refused(spoil);
            assert!(message.contains(named), "{named}: {message}");
        }
        // A small run limit needs room for two runs of it, not of 500 windows.
        let small = |c: &mut Config| c.max_rows_per_run = 100;
        let mut config = Config::default();
        small(&mut config);
        config.max_training_rows = 200;
        assert!(config.validate().is_ok());
        let message = refused(|c| {
            small(c);
            c.max_training_rows = 199;
        });
        assert!(message.contains("at least 200"), "{message}");
    }

    /// The assets of a partition another replica took are forgotten (sequence, sensor watch,
    /// waiting entry: rebuilt from the store should the partition come back); the others are
    /// kept.
    #[tokio::test]
    async fn the_assets_of_a_revoked_partition_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = mantis_bus::embedded::EmbeddedBus::open(dir.path())
            .await
            .expect("log");
        let store = mantis_store::sqlite::SqliteStore::in_memory()
            .await
            .expect("sqlite");
        let infra = Infra::in_process(Arc::new(bus), Arc::new(store));
        let config = Config::default();
        let health = App::health("rul", &infra);
        let mut handler = RulHandler::new(
            &infra,
            &config,
            models(&infra, &config),
            Arc::default(),
            health,
        );
        let (kept, gone) = (AssetId::new_random(), AssetId::new_random());
        for (id, partition) in [(kept, 0), (gone, 2)] {
            let asset = Asset {
                id,
                tenant_id: mantis_domain::TenantId::DEFAULT,
                code: format!("PMP-{partition}"),
                name: "pump".into(),
                asset_type: "pump".into(),
                location: "line 1".into(),
                criticality: mantis_domain::Criticality::High,
            };
            handler.partitions.insert(id, partition);
            handler.states.insert(
                id,
                AssetState {
                    layout: Arc::new(AssetLayout::new(&asset, &[])),
                    life_start: DateTime::UNIX_EPOCH,
                    model_version: 1,
                    rows: Rows::new(),
                    early: Rows::new(),
                },
            );
            handler.watches.insert(id, SensorWatch::default());
            handler.waiting.insert(
                id,
                Waiting {
                    code: asset.code.clone(),
                    silent: vec!["PMP-VIB".into()],
                    touched: std::time::Instant::now(),
                    forget_after: Duration::from_secs(600),
                },
            );
        }
        handler.revoked(&[1, 2]);
        for (what, kept_there, gone_there) in [
            (
                "sequence",
                handler.states.contains_key(&kept),
                handler.states.contains_key(&gone),
            ),
            (
                "watch",
                handler.watches.contains_key(&kept),
                handler.watches.contains_key(&gone),
            ),
            (
                "waiting",
                handler.waiting.contains_key(&kept),
                handler.waiting.contains_key(&gone),
            ),
            (
                "partition",
                handler.partitions.contains_key(&kept),
                handler.partitions.contains_key(&gone),
            ),
        ] {
            assert!(kept_there, "{what} of partition 0 kept");
            assert!(!gone_there, "{what} of revoked partition 2 forgotten");
        }
    }
}
