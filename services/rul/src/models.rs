//! The served RUL models: one per fleet (a tenant's assets of one type), in the model registry
//! (object storage). Tenants never share a model: each learns from its own runs to failure.
//!
//! Two kinds of models serve: the in-platform gradient-boosted trees
//! ([`mantis_rul_model::tree`]), trained here from the plant's own runs to failure (the
//! feature history of each asset of a type between two failures or replacements recorded as
//! maintenance events), and deep models trained elsewhere and uploaded as ONNX with their
//! input contract (the sidecar of `models/training/train_rul.py`, whose columns name the
//! platform's columns, see [`crate::rows`]).
//!
//! Every replica polls the registry's promoted pointers (`reload`), so a promotion through any
//! replica's API, or by `mantis train rul`, is served by all of them within one check
//! interval; the replica that promotes swaps at once.

use crate::rows::{AssetLayout, Row, Rows, row_step_secs, span_step_secs, with_early};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use mantis_domain::{AssetId, Fleet, MaintenanceEvent};
use mantis_objects::registry::{
    ModelMetadata, ModelRegistry, ModelSeries, ModelVersion, TrainingPeriod,
};
use mantis_rul_model::tree::{
    CycleRow, RunToFailure, TrainProgress, TrainReport, TreeConfig, TreeRulModel,
};
use mantis_rul_model::{Cycle, N_SENSORS, N_SETTINGS, RulModel, RulPrediction, Sidecar};
use mantis_store::Store;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// The registry kind of RUL models (scope: [`Fleet::scope`], the asset type for the default tenant).
pub const MODEL_KIND: &str = "rul";
/// The format of in-platform tree models.
pub const TREE_FORMAT: &str = "mantis-rul-tree/1";
/// The format of uploaded ONNX models (`model.bin` is the ONNX file, the contract its sidecar).
pub const ONNX_FORMAT: &str = "mantis-rul-onnx/1";
/// Runs to failure a training needs at least (the tree model's cross-fitting holds one out).
pub const MIN_TRAINING_RUNS: usize = 2;

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No asset of the tenant has this type.
    #[error("no asset has the type `{0}`")]
    UnknownAssetType(Fleet),
    /// The asset is not registered.
    #[error("asset {0} is not registered")]
    UnknownAsset(AssetId),
    /// No model serves the asset's fleet.
    #[error("no RUL model is promoted for asset type `{0}`")]
    NoModel(Fleet),
    /// The asset has no window to predict from.
    #[error("asset {0} has no feature windows since its last failure or replacement")]
    NoWindows(AssetId),
    /// The history holds fewer runs to failure than training needs.
    #[error(
        "the assets of type `{fleet}` have {found} run(s) to failure with at least {min_rows} \
         windows, training needs {MIN_TRAINING_RUNS}: record failures or replacements \
         (maintenance events) on assets that have feature history"
    )]
    NoRuns {
        /// The fleet.
        fleet: Fleet,
        /// Runs to failure with enough windows.
        found: usize,
        /// Windows a run needs.
        min_rows: usize,
    },
    /// The version does not exist.
    #[error("asset type `{fleet}` has no RUL model version {version}")]
    UnknownVersion {
        /// The fleet.
        fleet: Fleet,
        /// The version asked for.
        version: u64,
    },
    /// Another training of the fleet is running.
    #[error("a RUL model of asset type `{0}` is being trained already")]
    Busy(Fleet),
    /// A training of another fleet is running (one at a time: each takes the CPU and its
    /// history's memory).
    #[error(
        "a RUL model of asset type `{0}` is being trained; one is trained at a time, try again when it ends"
    )]
    OtherTraining(Fleet),
    /// Another upload is being checked (one at a time: each holds its model several times
    /// over while tract builds its plans).
    #[error("another ONNX model is being uploaded; try again when it is done")]
    UploadBusy,
    /// The model (training, upload, prediction) failed.
    #[error(transparent)]
    Model(#[from] mantis_rul_model::RulError),
    /// An uploaded model or its contract is not usable.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mantis_store::Error),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] mantis_objects::Error),
    /// A blocking task failed.
    #[error("model task failed: {0}")]
    Task(String),
}

/// Receives a training's progress (the CLI's progress line).
pub type ProgressSink = Box<dyn FnMut(&TrainProgress) + Send>;

/// A model that predicts from rows.
pub enum Predictor {
    /// In-platform gradient-boosted trees.
    Tree(Box<TreeRulModel>),
    /// An uploaded ONNX model and its columns.
    Onnx {
        /// The model.
        model: Box<RulModel>,
        /// Columns of the sidecar's `sensor_columns`, in order.
        columns: Vec<String>,
        /// Columns of the sidecar's `setting_columns`, in order.
        settings: Vec<String>,
    },
}

impl Predictor {
    /// Rows the model reads.
    pub fn window(&self) -> usize {
        match self {
            Self::Tree(m) => m.window(),
            Self::Onnx { model, .. } => model.sidecar().window,
        }
    }

    /// Cycles of the early-life baseline the model reads besides the window: the first rows
    /// of the asset's current life (0: none).
    pub fn baseline(&self) -> usize {
        match self {
            Self::Tree(_) => 0,
            Self::Onnx { model, .. } => model.sidecar().baseline,
        }
    }

    /// Value columns, in the order of [`CycleRow::values`].
    pub fn columns(&self) -> &[String] {
        match self {
            Self::Tree(m) => m.columns(),
            Self::Onnx { columns, .. } => columns,
        }
    }

    /// Setting columns, in the order of [`CycleRow::settings`].
    pub fn settings_columns(&self) -> &[String] {
        match self {
            Self::Tree(m) => m.settings_columns(),
            Self::Onnx { settings, .. } => settings,
        }
    }

    /// The model's kind, for the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tree(_) => "tree",
            Self::Onnx { .. } => "onnx",
        }
    }

    /// The model's input rows of `rows` (oldest first; the model reads the last
    /// [`window`](Self::window), and the first [`baseline`](Self::baseline): the life's first
    /// rows come first): its columns in order (cheap; no model run).
    pub fn cycles(&self, rows: &[&Row]) -> Vec<CycleRow> {
        rows.iter()
            .map(|r| r.cycle(self.columns(), self.settings_columns()))
            .collect()
    }

    /// Whether a prediction costs milliseconds (a deep network) rather than microseconds (the
    /// trees): worth running off the async workers, which every service of a `mantis`
    /// process shares.
    pub fn is_heavy(&self) -> bool {
        matches!(self, Self::Onnx { .. })
    }

    /// Predicts from the model's input rows (see [`Predictor::cycles`]).
    pub fn predict_cycles(&self, cycles: &[CycleRow]) -> Result<RulPrediction, ModelError> {
        match self {
            Self::Tree(m) => Ok(m.predict(cycles)?),
            Self::Onnx { model, .. } => {
                let idx = &model.sidecar().sensor_indices;
                let filled = forward_fill(cycles, self.columns())?;
                let cycles: Vec<Cycle> = filled
                    .iter()
                    .map(|r| {
                        let mut c = Cycle {
                            settings: [0.0; N_SETTINGS],
                            sensors: [0.0; N_SENSORS],
                        };
                        for (slot, v) in c.settings.iter_mut().zip(&r.settings) {
                            *slot = *v;
                        }
                        for (i, v) in idx.iter().zip(&r.values) {
                            if let Some(slot) = c.sensors.get_mut(*i) {
                                *slot = *v;
                            }
                        }
                        c
                    })
                    .collect();
                Ok(model.predict(&cycles)?)
            }
        }
    }
}

/// Deep models need every value: carries the last known value of each column forward (and
/// the first known one backward); a column without any value is an error naming it.
fn forward_fill(rows: &[CycleRow], columns: &[String]) -> Result<Vec<CycleRow>, ModelError> {
    let mut out = rows.to_vec();
    fill(
        &mut out,
        |r| &mut r.values,
        |j| format!("`{}`", columns.get(j).map_or("?", String::as_str)),
    )?;
    fill(&mut out, |r| &mut r.settings, |j| format!("setting {j}"))?;
    Ok(out)
}

fn fill(
    rows: &mut [CycleRow],
    part: fn(&mut CycleRow) -> &mut Vec<f64>,
    name: impl Fn(usize) -> String,
) -> Result<(), ModelError> {
    let width = rows.first_mut().map_or(0, |r| part(r).len());
    for j in 0..width {
        let first = rows
            .iter_mut()
            .find_map(|r| part(r).get(j).copied().filter(|v| v.is_finite()));
        let Some(mut last) = first else {
            return Err(ModelError::Invalid(format!(
                "the asset reports no value for the model's column {}",
                name(j)
            )));
        };
        for r in rows.iter_mut() {
            if let Some(v) = part(r).get_mut(j) {
                if v.is_finite() {
                    last = *v;
                } else {
                    *v = last;
                }
            }
        }
    }
    Ok(())
}

/// A loaded model and its registry version.
pub struct Served {
    /// The fleet it serves.
    pub fleet: Fleet,
    /// The registry version.
    pub version: u64,
    /// The model.
    pub predictor: Predictor,
}

impl Served {
    /// The version label recorded with each prediction: `rul/{registry scope}/v{version}`
    /// (`rul/pump/v3` for the default tenant).
    pub fn label(&self) -> String {
        format!("{MODEL_KIND}/{}/v{}", self.fleet.scope(), self.version)
    }
}

/// What a training produced.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trained {
    /// The asset type.
    pub asset_type: String,
    /// The tenant whose runs it learned from and whose assets it serves.
    pub tenant_id: mantis_domain::TenantId,
    /// The registered version.
    pub version: u64,
    /// Whether it is now the served version.
    pub promoted: bool,
    /// The runs to failure it learned from (`{asset code}#{n}`).
    pub units: Vec<String>,
    /// Its input columns.
    pub columns: Vec<String>,
    /// Seconds one row (a window step, the hop) spans.
    pub cycle_secs: f64,
    /// What training measured.
    pub report: TrainReport,
}

/// A training request.
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    /// The asset type to train for.
    pub asset_type: String,
    /// Whose assets of that type (their runs to failure only; default: the default tenant).
    pub tenant_id: mantis_domain::TenantId,
    /// Columns that are operating settings (regimes), e.g. `speed.mean`.
    pub settings_columns: Vec<String>,
    /// Model configuration.
    pub config: TreeConfig,
    /// Serve it once registered.
    pub promote: bool,
}

/// Runs to failure of one asset type, assembled from the store.
pub struct History {
    /// The runs.
    pub runs: Vec<RunToFailure>,
    /// The rows' columns, sorted, without the settings columns.
    pub columns: Vec<String>,
    /// Seconds one row spans (see [`row_step_secs`]).
    pub cycle_secs: f64,
    /// First window start and last failure.
    pub period: Option<TrainingPeriod>,
}

/// The models of every asset type.
pub struct Models {
    registry: ModelRegistry,
    store: Arc<dyn Store>,
    max_rows_per_run: u32,
    max_training_rows: u64,
    served: RwLock<HashMap<Fleet, Arc<Served>>>,
    training: Mutex<HashSet<Fleet>>,
    progress: Mutex<HashMap<Fleet, TrainProgress>>,
    /// One training at a time in the service (the API's, the automatic trainer's).
    trainings: tokio::sync::Semaphore,
    /// One upload at a time.
    uploads: tokio::sync::Semaphore,
}

fn series(fleet: &Fleet) -> Result<ModelSeries, ModelError> {
    Ok(ModelSeries::new(MODEL_KIND, fleet.scope())?)
}

/// Which end of a period [`Models::merged`] reads.
#[derive(Clone, Copy)]
enum End {
    Newest,
    Oldest,
}

/// Removes the fleet from the set of running trainings when dropped.
struct TrainingGuard<'a>(&'a Mutex<HashSet<Fleet>>, Fleet);

impl Drop for TrainingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&self.1);
        }
    }
}

/// How many of a fleet's runs to failure, and how many rows of each (its last ones), a
/// training reads: every run and `max_rows_per_run` rows of each while that stays within
/// `max_training_rows` in all; beyond that fewer rows per run (down to
/// [`MIN_ROWS_PER_RUN_WHEN_SHARED`]), then only the newest runs (at least
/// [`MIN_TRAINING_RUNS`]). Training holds every row it reads in memory: this bounds it however
/// long the plant's history (about: a run's limit is each sensor's newest windows, so sensors
/// whose windows do not line up give a few more rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RowBudget {
    runs: usize,
    rows_per_run: u32,
}

/// Rows per run below which a shared row budget leaves runs out rather than cutting them
/// shorter.
pub const MIN_ROWS_PER_RUN_WHEN_SHARED: u32 = 500;

impl RowBudget {
    fn new(runs: usize, max_rows_per_run: u32, max_training_rows: u64) -> Self {
        let max_rows_per_run = max_rows_per_run.max(1);
        let total = max_training_rows.max(1);
        let fair = total / u64::try_from(runs.max(1)).unwrap_or(u64::MAX);
        let floor = u64::from(max_rows_per_run.min(MIN_ROWS_PER_RUN_WHEN_SHARED));
        let rows_per_run = fair.clamp(floor, u64::from(max_rows_per_run));
        let fitting = usize::try_from(total / rows_per_run).unwrap_or(usize::MAX);
        Self {
            runs: runs.min(fitting.max(MIN_TRAINING_RUNS)),
            rows_per_run: u32::try_from(rows_per_run).unwrap_or(max_rows_per_run),
        }
    }
}

/// The names of the columns met while loading a fleet's runs, each given a position.
#[derive(Default)]
struct ColumnNames {
    names: Vec<String>,
    positions: HashMap<String, usize>,
}

impl ColumnNames {
    /// `row` as numbers by position (NaN where it has no value).
    fn row(&mut self, row: &Row) -> LoadedRow {
        let mut values = Vec::new();
        for (name, value) in &row.values {
            let at = match self.positions.get(name) {
                Some(at) => *at,
                None => {
                    self.names.push(name.clone());
                    self.positions.insert(name.clone(), self.names.len() - 1);
                    self.names.len() - 1
                }
            };
            if values.len() <= at {
                values.resize(at + 1, f64::NAN);
            }
            values[at] = *value;
        }
        LoadedRow {
            window_start: row.window_start,
            window_end: row.window_end,
            values,
        }
    }

    /// Every name met, sorted.
    fn sorted(&self) -> Vec<String> {
        let mut names = self.names.clone();
        names.sort();
        names
    }

    /// The position of each of `names` (`None`: never met).
    fn positions(&self, names: &[String]) -> Vec<Option<usize>> {
        names
            .iter()
            .map(|n| self.positions.get(n).copied())
            .collect()
    }
}

/// One run to failure as read for training.
struct LoadedRun {
    unit: String,
    end: DateTime<Utc>,
    rows: Vec<LoadedRow>,
}

/// One row of a [`LoadedRun`]: its window and its values by [`ColumnNames`] position.
struct LoadedRow {
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    values: Vec<f64>,
}

impl LoadedRow {
    /// The values at `positions`, NaN where missing.
    fn pick(&self, positions: &[Option<usize>]) -> Vec<f64> {
        positions
            .iter()
            .map(|at| {
                at.and_then(|i| self.values.get(i).copied())
                    .unwrap_or(f64::NAN)
            })
            .collect()
    }
}

/// The life-ending events of an asset, oldest first.
fn life_ends(events: &[MaintenanceEvent]) -> Vec<DateTime<Utc>> {
    let mut ends: Vec<DateTime<Utc>> = events
        .iter()
        .filter(|e| e.kind.ends_life())
        .map(|e| e.occurred_at)
        .collect();
    ends.sort();
    ends.dedup();
    ends
}

impl Models {
    /// Models kept in `registry`, trained from `store`'s history; a run to failure contributes
    /// at most `max_rows_per_run` windows (its last ones), a training at most
    /// `max_training_rows` in all (see [`RowBudget`]).
    pub fn new(
        registry: ModelRegistry,
        store: Arc<dyn Store>,
        max_rows_per_run: u32,
        max_training_rows: u64,
    ) -> Self {
        Self {
            registry,
            store,
            max_rows_per_run,
            max_training_rows,
            served: RwLock::new(HashMap::new()),
            training: Mutex::new(HashSet::new()),
            progress: Mutex::new(HashMap::new()),
            trainings: tokio::sync::Semaphore::new(1),
            uploads: tokio::sync::Semaphore::new(1),
        }
    }

    /// The served model of `fleet`, if any.
    pub fn served(&self, fleet: &Fleet) -> Option<Arc<Served>> {
        self.served.read().ok()?.get(fleet).cloned()
    }

    /// The fleets with a served model.
    pub fn served_fleets(&self) -> Vec<Fleet> {
        let mut fleets: Vec<Fleet> = self
            .served
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        fleets.sort();
        fleets
    }

    /// The progress of the running training of `fleet`, if one runs.
    pub fn progress(&self, fleet: &Fleet) -> Option<TrainProgress> {
        self.progress.lock().ok()?.get(fleet).cloned()
    }

    fn swap(&self, served: Served) {
        if let Ok(mut map) = self.served.write() {
            tracing::info!(
                asset_type = %served.fleet.asset_type,
                tenant = %served.fleet.tenant_id,
                version = served.version,
                kind = served.predictor.kind(),
                "RUL model now served"
            );
            map.insert(served.fleet.clone(), Arc::new(served));
        }
    }

    /// Loads the promoted version of `fleet` when it differs from the served one.
    pub async fn reload(&self, fleet: &Fleet) -> Result<(), ModelError> {
        let series = series(fleet)?;
        let Some(promoted) = self.registry.promoted(&series).await? else {
            return Ok(());
        };
        if self.served(fleet).is_some_and(|s| s.version == promoted) {
            return Ok(());
        }
        let served = self.prepare(fleet, promoted).await?;
        // Decoding takes a while: a promotion or rollback through this replica's API may have
        // swapped in another version meanwhile. Served only if still the promoted one.
        if self.registry.promoted(&series).await? == Some(promoted) {
            self.swap(served);
        }
        Ok(())
    }

    async fn load(&self, fleet: &Fleet, version: u64) -> Result<(), ModelError> {
        let served = self.prepare(fleet, version).await?;
        self.swap(served);
        Ok(())
    }

    /// `version` of `fleet` read from the registry and decoded, ready to serve.
    async fn prepare(&self, fleet: &Fleet, version: u64) -> Result<Served, ModelError> {
        let series = series(fleet)?;
        let Some(found) = self.registry.get(&series, version).await? else {
            return Err(ModelError::UnknownVersion {
                fleet: fleet.clone(),
                version,
            });
        };
        let predictor = tokio::task::spawn_blocking(move || decode(&found.version, &found.bytes))
            .await
            .map_err(|e| ModelError::Task(e.to_string()))??;
        Ok(Served {
            fleet: fleet.clone(),
            version,
            predictor,
        })
    }

    /// Assets of a fleet whose newest windows are read at most to tell which columns it has
    /// (an upload's check).
    const COLUMN_PROBE_ASSETS: usize = 200;

    /// The columns the assets of `fleet` have (their newest windows'), read until every one of
    /// `wanted` is found or [`Self::COLUMN_PROBE_ASSETS`] assets were read: a column any asset
    /// has counts (a sensor only the newer machines carry). `None` while none has a window.
    async fn fleet_columns(
        &self,
        fleet: &Fleet,
        wanted: &BTreeSet<String>,
    ) -> Result<Option<BTreeSet<String>>, ModelError> {
        let mut have = BTreeSet::new();
        let until = Utc::now() + chrono::Duration::days(1);
        for layout in self
            .layouts(fleet)
            .await?
            .iter()
            .take(Self::COLUMN_PROBE_ASSETS)
        {
            let rows = self
                .rows(layout, DateTime::<Utc>::UNIX_EPOCH, until, 1)
                .await?;
            for row in rows.iter() {
                have.extend(row.values.keys().cloned());
            }
            if wanted.is_subset(&have) {
                break;
            }
        }
        Ok((!have.is_empty()).then_some(have))
    }

    /// The layouts of the assets of `fleet`.
    async fn layouts(&self, fleet: &Fleet) -> Result<Vec<AssetLayout>, ModelError> {
        let mut layouts = Vec::new();
        for asset in self.store.list_assets(Some(fleet.tenant_id)).await? {
            if asset.asset_type != fleet.asset_type {
                continue;
            }
            let sensors = self.store.list_sensors(Some(asset.id)).await?;
            layouts.push(AssetLayout::new(&asset, &sensors));
        }
        Ok(layouts)
    }

    /// The rows of `layout`'s asset with windows in `[from, to)`: the newest `limit` per sensor.
    pub async fn rows(
        &self,
        layout: &AssetLayout,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Rows, ModelError> {
        self.merged(layout, from, to, limit, End::Newest).await
    }

    /// The first windows of `layout`'s asset starting within `[from, to)`: its oldest `limit`
    /// rows (the early-life baseline of a life that began at `from`).
    pub async fn first_rows(
        &self,
        layout: &AssetLayout,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Rows, ModelError> {
        if limit == 0 {
            return Ok(Rows::new());
        }
        let per_sensor = u32::try_from(limit).unwrap_or(u32::MAX);
        let mut rows = self
            .merged(layout, from, to, per_sensor, End::Oldest)
            .await?;
        rows.keep_first(limit);
        Ok(rows)
    }

    /// Each sensor's `limit` feature vectors at `end` of `[from, to)`, merged into rows.
    async fn merged(
        &self,
        layout: &AssetLayout,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
        end: End,
    ) -> Result<Rows, ModelError> {
        let mut rows = Rows::new();
        for sensor in layout.prefixes.keys() {
            let features = match end {
                End::Newest => self.store.recent_features(*sensor, from, to, limit).await?,
                End::Oldest => self.store.first_features(*sensor, from, to, limit).await?,
            };
            for fv in &features {
                rows.merge(layout, fv);
            }
        }
        Ok(rows)
    }

    /// When the current life of `asset` began: its last failure or replacement (the epoch
    /// when it has none).
    pub async fn life_start(&self, asset: AssetId) -> Result<DateTime<Utc>, ModelError> {
        Ok(self
            .store
            .last_life_end(asset)
            .await?
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH))
    }

    /// The runs to failure of the assets of `fleet`: each asset's windows between two
    /// consecutive failures or replacements (from its first window before the first one).
    pub async fn history(
        &self,
        fleet: &Fleet,
        settings_columns: &[String],
        min_rows: usize,
    ) -> Result<History, ModelError> {
        let layouts = self.layouts(fleet).await?;
        if layouts.is_empty() {
            return Err(ModelError::UnknownAssetType(fleet.clone()));
        }
        // Every run first (when it ended), then the rows of those the row budget holds.
        let mut planned = Vec::new();
        for (asset, layout) in layouts.iter().enumerate() {
            let events = self
                .store
                .list_maintenance_events(Some(layout.asset_id), 10_000)
                .await?;
            let mut from = DateTime::<Utc>::UNIX_EPOCH;
            for (n, end) in life_ends(&events).into_iter().enumerate() {
                planned.push((asset, n, from, end));
                from = end;
            }
        }
        let budget = RowBudget::new(planned.len(), self.max_rows_per_run, self.max_training_rows);
        let capped = budget.runs < planned.len();
        if capped {
            // The newest first, so that the runs left out are the oldest (a run too short to
            // use makes room for an older one).
            planned.sort_by_key(|&(asset, n, _, end)| (std::cmp::Reverse(end), asset, n));
        }
        // Each run is loaded, then kept as plain numbers: a row of a few floats instead of a
        // map of named values (a run holds up to `max_rows_per_run` of them).
        let mut names = ColumnNames::default();
        let mut loaded: Vec<((usize, usize), LoadedRun)> = Vec::new();
        for &(asset, n, from, end) in &planned {
            if loaded.len() >= budget.runs {
                break;
            }
            let layout = &layouts[asset];
            let rows = self.rows(layout, from, end, budget.rows_per_run).await?;
            if rows.len() >= min_rows.max(1) {
                let run = LoadedRun {
                    unit: format!("{}#{}", layout.code, n + 1),
                    end,
                    rows: rows.iter().map(|r| names.row(r)).collect(),
                };
                loaded.push(((asset, n), run));
            }
        }
        if capped {
            tracing::info!(
                %fleet,
                runs = planned.len(),
                used = loaded.len(),
                rows_per_run = budget.rows_per_run,
                "RUL training: the oldest runs to failure are left out (rul.max_training_rows)"
            );
            loaded.sort_by_key(|(at, _)| *at);
        }
        let loaded: Vec<LoadedRun> = loaded.into_iter().map(|(_, run)| run).collect();
        if loaded.len() < MIN_TRAINING_RUNS {
            return Err(ModelError::NoRuns {
                fleet: fleet.clone(),
                found: loaded.len(),
                min_rows: min_rows.max(1),
            });
        }
        let columns: Vec<String> = names
            .sorted()
            .into_iter()
            .filter(|c| !settings_columns.contains(c))
            .collect();
        let (value_at, setting_at) = (names.positions(&columns), names.positions(settings_columns));
        let cycle_secs = span_step_secs(
            loaded
                .iter()
                .map(|run| run.rows.iter().map(|r| (r.window_start, r.window_end))),
        );
        let first = loaded
            .iter()
            .filter_map(|run| run.rows.first().map(|r| r.window_start))
            .min();
        let last = loaded.iter().map(|run| run.end).max();
        let runs = loaded
            .into_iter()
            .map(|run| {
                let last_end = run.rows.last().map_or(run.end, |r| r.window_end);
                let gap = (run.end - last_end).num_milliseconds() as f64 / 1000.0;
                RunToFailure {
                    unit: run.unit,
                    rows: run
                        .rows
                        .iter()
                        .map(|r| CycleRow {
                            settings: r.pick(&setting_at),
                            values: r.pick(&value_at),
                        })
                        .collect(),
                    rul_at_end: (gap / cycle_secs).floor().max(0.0),
                }
            })
            .collect();
        Ok(History {
            runs,
            columns,
            cycle_secs,
            period: first
                .zip(last)
                .map(|(from, to)| TrainingPeriod { from, to }),
        })
    }

    /// Trains the in-platform model of a tenant's asset type on the runs to failure of its
    /// assets, registers it and, when asked, serves it. `progress` sees each stage.
    pub async fn train(
        &self,
        request: TrainRequest,
        progress: Option<ProgressSink>,
    ) -> Result<Trained, ModelError> {
        let fleet = Fleet::new(request.tenant_id, request.asset_type.clone());
        let series = series(&fleet)?;
        {
            let mut running = self
                .training
                .lock()
                .map_err(|_| ModelError::Busy(fleet.clone()))?;
            if !running.insert(fleet.clone()) {
                return Err(ModelError::Busy(fleet));
            }
        }
        let _guard = TrainingGuard(&self.training, fleet.clone());
        let Ok(_slot) = self.trainings.try_acquire() else {
            let other = self
                .training
                .lock()
                .ok()
                .and_then(|running| running.iter().find(|f| **f != fleet).cloned())
                .unwrap_or_else(|| fleet.clone());
            return Err(ModelError::OtherTraining(other));
        };
        let history = self.history(&fleet, &request.settings_columns, 2).await?;
        let (config, settings) = (request.config.clone(), request.settings_columns.clone());
        let progress_map = &self.progress;
        let runs = history.runs;
        let columns = history.columns.clone();
        let units: Vec<String> = runs.iter().map(|r| r.unit.clone()).collect();
        let shared: Arc<Mutex<Option<TrainProgress>>> = Arc::new(Mutex::new(None));
        let sink = shared.clone();
        let mut external = progress;
        let task = tokio::task::spawn_blocking(move || {
            TreeRulModel::train(&runs, &columns, &settings, &config, &mut |p| {
                if let Ok(mut slot) = sink.lock() {
                    *slot = Some(p.clone());
                }
                if let Some(f) = external.as_mut() {
                    f(p);
                }
            })
        });
        // Mirror the blocking task's progress for `GET .../progress` while it runs.
        let result = {
            tokio::pin!(task);
            loop {
                tokio::select! {
                    done = &mut task => break done,
                    () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                        if let (Ok(p), Ok(mut map)) = (shared.lock(), progress_map.lock())
                            && let Some(p) = p.as_ref()
                        {
                            map.insert(fleet.clone(), p.clone());
                        }
                    }
                }
            }
        };
        if let Ok(mut map) = progress_map.lock() {
            map.remove(&fleet);
        }
        let (model, report) = result.map_err(|e| ModelError::Task(e.to_string()))??;
        let mut metadata = ModelMetadata::new(TREE_FORMAT);
        metadata.training_period = history.period;
        metadata.metrics = [
            ("validation_rmse_cycles", report.validation_rmse),
            ("interval_half_width_cycles", report.q90),
            ("runs_to_failure", report.units as f64),
            ("training_rows", report.rows as f64),
            ("trees", report.trees as f64),
            ("training_seconds", report.seconds),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        metadata.contract = serde_json::json!({
            "columns": model.columns(),
            "settingsColumns": model.settings_columns(),
            "window": model.window(),
            "unit": "cycles (windows of the asset)",
            "cycleSecs": history.cycle_secs,
            "units": units,
        });
        let version = self
            .registry
            .register(&series, Bytes::from(model.to_bytes()?), metadata)
            .await?;
        let trained = Trained {
            asset_type: fleet.asset_type.clone(),
            tenant_id: fleet.tenant_id,
            version,
            promoted: request.promote,
            units,
            columns: model.columns().to_vec(),
            cycle_secs: history.cycle_secs,
            report,
        };
        if request.promote {
            self.registry.promote(&series, version).await?;
            self.swap(Served {
                fleet,
                version,
                predictor: Predictor::Tree(Box::new(model)),
            });
        }
        metrics::counter!("mantis_rul_models_trained_total").increment(1);
        Ok(trained)
    }

    /// Registers an externally trained ONNX model with its sidecar (input contract) for
    /// `fleet`; serves it when `promote`.
    pub async fn upload_onnx(
        &self,
        fleet: &Fleet,
        sidecar: serde_json::Value,
        onnx: Vec<u8>,
        promote: bool,
    ) -> Result<u64, ModelError> {
        let series = series(fleet)?;
        let Ok(_slot) = self.uploads.try_acquire() else {
            return Err(ModelError::UploadBusy);
        };
        let predictor = {
            let (sidecar, onnx) = (sidecar.clone(), onnx.clone());
            match tokio::task::spawn_blocking(move || onnx_predictor(&sidecar, &onnx, true)).await {
                Ok(predictor) => predictor?,
                // A model that makes tract panic is the upload's fault, not the service's.
                Err(e) if e.is_panic() => {
                    return Err(ModelError::Invalid(format!(
                        "the ONNX model cannot be loaded: {e}"
                    )));
                }
                Err(e) => return Err(ModelError::Task(e.to_string())),
            }
        };
        // The columns it reads must be ones the fleet's assets have: a contract of another
        // plant (or a typo) would be served and fail on every window.
        let wanted: BTreeSet<String> = predictor
            .columns()
            .iter()
            .chain(predictor.settings_columns())
            .cloned()
            .collect();
        if let Some(have) = self.fleet_columns(fleet, &wanted).await? {
            let missing: Vec<&String> = wanted.iter().filter(|c| !have.contains(*c)).collect();
            if !missing.is_empty() {
                return Err(ModelError::Invalid(format!(
                    "the model reads columns the {} assets do not have: {} (they have {})",
                    fleet.asset_type,
                    missing
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    have.iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let mut metadata = ModelMetadata::new(ONNX_FORMAT);
        if let Some(rmse) = sidecar
            .pointer("/scores/over_seeds/test_rmse/mean")
            .and_then(|v| v.as_f64())
        {
            metadata.metrics.insert("reported_test_rmse".into(), rmse);
        }
        metadata.contract = sidecar;
        let version = self
            .registry
            .register(&series, Bytes::from(onnx), metadata)
            .await?;
        if promote {
            self.registry.promote(&series, version).await?;
            self.swap(Served {
                fleet: fleet.clone(),
                version,
                predictor,
            });
        }
        Ok(version)
    }

    /// Serves `version` of `fleet` (it must exist).
    pub async fn promote(&self, fleet: &Fleet, version: u64) -> Result<(), ModelError> {
        let series = series(fleet)?;
        if self.registry.version(&series, version).await?.is_none() {
            return Err(ModelError::UnknownVersion {
                fleet: fleet.clone(),
                version,
            });
        }
        // Decoded first: a version that cannot serve is never promoted; served once the
        // registry says it is promoted, so this replica never serves what the others do not.
        let served = self.prepare(fleet, version).await?;
        self.registry.promote(&series, version).await?;
        self.swap(served);
        Ok(())
    }

    /// Serves the version promoted before the current one; returns it. A version that cannot
    /// serve (its bytes gone, damaged or no longer decodable) is not rolled back to: the
    /// promoted version stays.
    pub async fn rollback(&self, fleet: &Fleet) -> Result<u64, ModelError> {
        let series = series(fleet)?;
        let target = self.registry.rollback_target(&series).await?;
        let served = self.prepare(fleet, target).await?;
        let version = self.registry.rollback(&series).await?;
        if version == target {
            self.swap(served);
        } else {
            // Another promotion or rollback came in between.
            self.load(fleet, version).await?;
        }
        Ok(version)
    }

    /// The registered versions of `fleet`, oldest first, with the promoted one.
    pub async fn versions(
        &self,
        fleet: &Fleet,
    ) -> Result<(Vec<ModelVersion>, Option<u64>), ModelError> {
        let series = series(fleet)?;
        Ok((
            self.registry.versions(&series).await?,
            self.registry.promoted(&series).await?,
        ))
    }

    /// Predicts the RUL of `asset` now from its stored windows since its last failure or
    /// replacement, with its fleet's served model: the prediction (in rows), the model, the
    /// end of the last window and the seconds one row spans (the windows' hop).
    pub async fn predict_now(
        &self,
        asset: AssetId,
    ) -> Result<(RulPrediction, Arc<Served>, DateTime<Utc>, f64), ModelError> {
        let found = self
            .store
            .get_asset(asset)
            .await?
            .ok_or(ModelError::UnknownAsset(asset))?;
        let fleet = found.fleet();
        let served = self.served(&fleet).ok_or(ModelError::NoModel(fleet))?;
        let sensors = self.store.list_sensors(Some(asset)).await?;
        let layout = AssetLayout::new(&found, &sensors);
        let from = self.life_start(asset).await?;
        let window = served.predictor.window();
        let until = Utc::now() + chrono::Duration::days(1);
        let rows = self
            .rows(
                &layout,
                from,
                until,
                u32::try_from(window + 1).unwrap_or(u32::MAX),
            )
            .await?;
        let early = self
            .first_rows(&layout, from, until, served.predictor.baseline())
            .await?;
        let history: Vec<&Row> = rows.iter().collect();
        let tail = history[history.len().saturating_sub(window)..].to_vec();
        let Some(last) = tail.last().copied() else {
            return Err(ModelError::NoWindows(asset));
        };
        let at = last.window_end;
        let step_secs = row_step_secs([&rows]);
        let cycles = served.predictor.cycles(&with_early(&early, tail));
        let prediction = served.predict_off_workers(cycles).await?;
        Ok((prediction, served, at, step_secs))
    }
}

impl Served {
    /// Predicts from the model's input rows: a deep model's milliseconds off the async workers
    /// (which every service of a `mantis` process shares), the trees' microseconds inline.
    /// [`ModelError::Task`] when the runtime is shutting down (try again later);
    /// [`ModelError::Invalid`] when the model panicked on these rows (trying again cannot help).
    pub async fn predict_off_workers(
        self: &Arc<Self>,
        cycles: Vec<CycleRow>,
    ) -> Result<RulPrediction, ModelError> {
        if !self.predictor.is_heavy() {
            return self.predictor.predict_cycles(&cycles);
        }
        let model = Arc::clone(self);
        match tokio::task::spawn_blocking(move || model.predictor.predict_cycles(&cycles)).await {
            Ok(prediction) => prediction,
            Err(e) if e.is_panic() => Err(ModelError::Invalid(format!(
                "the model failed on these rows: {e}"
            ))),
            Err(e) => Err(ModelError::Task(e.to_string())),
        }
    }
}

/// Decodes a registered version.
fn decode(version: &ModelVersion, bytes: &[u8]) -> Result<Predictor, ModelError> {
    match version.metadata.format.as_str() {
        TREE_FORMAT => Ok(Predictor::Tree(Box::new(TreeRulModel::from_bytes(bytes)?))),
        ONNX_FORMAT => onnx_predictor(&version.metadata.contract, bytes, false),
        other => Err(ModelError::Invalid(format!(
            "unknown RUL model format `{other}` (expected {TREE_FORMAT} or {ONNX_FORMAT})"
        ))),
    }
}

/// An ONNX model with its sidecar; the sidecar's columns name the platform's columns. A `new`
/// one (an upload) is also checked as [`RulModel::check`] does; a stored one only as it was
/// when it was accepted (it keeps serving).
fn onnx_predictor(
    sidecar: &serde_json::Value,
    onnx: &[u8],
    new: bool,
) -> Result<Predictor, ModelError> {
    let parsed: Sidecar = serde_json::from_value(sidecar.clone())
        .map_err(|e| ModelError::Invalid(format!("the sidecar does not parse: {e}")))?;
    // The contract must name this very file (uploaded, or read back from the registry).
    parsed.verify_onnx(onnx, &format!("`{}`", parsed.onnx))?;
    let columns = parsed.sensor_columns.clone();
    let settings: Vec<String> = match sidecar.get("setting_columns") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            ModelError::Invalid(format!(
                "the sidecar's setting_columns must be a list of column names: {e}"
            ))
        })?,
    };
    // Regimes are told apart by the settings: every setting in which they differ must come
    // from a named column (one fed as 0 would put every cycle in the regime nearest 0).
    let centroids = &parsed.regimes.centroids;
    if let Some(j) = (settings.len()..N_SETTINGS).find(|&j| {
        centroids
            .iter()
            .any(|c| c.get(j) != centroids.first().and_then(|f| f.get(j)))
    }) {
        return Err(ModelError::Invalid(format!(
            "the sidecar's operating regimes differ in setting {}, which its setting_columns ({} named) do not name",
            j + 1,
            settings.len()
        )));
    }
    if settings.len() > N_SETTINGS {
        return Err(ModelError::Invalid(format!(
            "the sidecar names {} setting columns; at most {N_SETTINGS} are supported",
            settings.len()
        )));
    }
    if parsed.sensor_indices.len() != columns.len()
        || parsed.sensor_indices.iter().any(|i| *i >= N_SENSORS)
    {
        return Err(ModelError::Invalid(format!(
            "the sidecar's sensor_indices must give one index below {N_SENSORS} per sensor column"
        )));
    }
    // Each setting once (the sensors' are checked with the contract).
    if new && settings.iter().collect::<BTreeSet<_>>().len() != settings.len() {
        return Err(ModelError::Invalid(
            "the sidecar's setting_columns name a column twice".into(),
        ));
    }
    let model = RulModel::from_parts(parsed, onnx)?;
    if new {
        model.check()?;
    }
    Ok(Predictor::Onnx {
        model: Box::new(model),
        columns,
        settings,
    })
}

/// Registered versions of every fleet with a model, for `GET /api/v1/rul/models`, keyed by
/// their registry scope ([`Fleet::scope`]: the asset type for the default tenant).
pub async fn catalogue(
    models: &Models,
    fleets: &[Fleet],
) -> Result<BTreeMap<String, serde_json::Value>, ModelError> {
    let mut out = BTreeMap::new();
    for fleet in fleets {
        let (versions, promoted) = models.versions(fleet).await?;
        if versions.is_empty() {
            continue;
        }
        out.insert(
            fleet.scope(),
            serde_json::json!({
                "assetType": fleet.asset_type,
                "tenantId": fleet.tenant_id,
                "promoted": promoted,
                "versions": versions,
            }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_budget_shortens_runs_then_leaves_out_the_oldest() {
        let budget = |runs, per_run, total| {
            let b = RowBudget::new(runs, per_run, total);
            (b.runs, b.rows_per_run)
        };
        // Within the budget: every run, whole.
        assert_eq!(budget(10, 20_000, 250_000), (10, 20_000));
        assert_eq!(budget(0, 20_000, 250_000), (0, 20_000));
        // Beyond it: shorter runs, all of them.
        assert_eq!(budget(50, 20_000, 250_000), (50, 5_000));
        assert_eq!(budget(500, 20_000, 250_000), (500, 500));
        // Beyond that: 500 rows of the newest runs that fit.
        assert_eq!(budget(1_000, 20_000, 250_000), (500, 500));
        // Never fewer runs than a training needs, nor rows than a run has room for.
        assert_eq!(budget(5, 20_000, 10), (MIN_TRAINING_RUNS, 500));
        assert_eq!(budget(5, 100, 250_000), (5, 100));
        assert_eq!(budget(3, 0, 0), (MIN_TRAINING_RUNS, 1));
    }

    #[test]
    fn loaded_rows_keep_their_values_by_name_whatever_columns_appear_later() {
        let at = |s| DateTime::from_timestamp(s, 0).expect("time");
        let row = |start, values: &[(&str, f64)]| Row {
            window_start: at(start),
            window_end: at(start + 10),
            values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            sensors: std::collections::BTreeSet::new(),
        };
        let mut names = ColumnNames::default();
        let first = names.row(&row(0, &[("vibration.rms", 1.0), ("load.mean", 7.0)]));
        let second = names.row(&row(
            10,
            &[("temperature.mean", 40.0), ("vibration.rms", 2.0)],
        ));
        assert_eq!(
            names.sorted(),
            ["load.mean", "temperature.mean", "vibration.rms"]
        );
        let columns = ["temperature.mean".to_owned(), "vibration.rms".to_owned()];
        let (values, settings) = (
            names.positions(&columns),
            names.positions(&["load.mean".to_owned(), "never.seen".to_owned()]),
        );
        let first_values = first.pick(&values);
        assert!(first_values[0].is_nan(), "no temperature in the first row");
        assert_eq!(first_values[1], 1.0);
        assert_eq!(second.pick(&values), vec![40.0, 2.0]);
        let first_settings = first.pick(&settings);
        assert_eq!(first_settings[0], 7.0);
        assert!(first_settings[1].is_nan());
        assert!(second.pick(&settings).iter().all(|v| v.is_nan()));
        assert_eq!((first.window_start, second.window_end), (at(0), at(20)));
    }

    fn fd001() -> (serde_json::Value, Vec<u8>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let onnx = std::fs::read(dir.join("rul-cmapss-fd001.onnx")).expect("onnx");
        let sidecar = serde_json::from_slice(
            &std::fs::read(dir.join("rul-cmapss-fd001.json")).expect("sidecar"),
        )
        .expect("sidecar json");
        (sidecar, onnx)
    }

    /// Regimes that differ in a setting the contract does not name cannot be told apart (the
    /// setting would be fed as 0): refused at upload, as is a `setting_columns` that is not a
    /// list of names.
    #[test]
    fn regimes_must_differ_only_in_named_settings() {
        let (mut sidecar, onnx) = fd001();
        assert!(
            onnx_predictor(&sidecar, &onnx, true).is_ok(),
            "the committed model"
        );
        let regimes = &mut sidecar["regimes"];
        let second = vec![0.0, 0.0, 60.0];
        regimes["centroids"]
            .as_array_mut()
            .expect("centroids")
            .push(serde_json::json!(second));
        for key in ["mean", "std"] {
            let first = regimes[key][0].clone();
            regimes[key].as_array_mut().expect("rows").push(first);
        }
        assert!(
            onnx_predictor(&sidecar, &onnx, true).is_ok(),
            "all three settings named"
        );
        sidecar["setting_columns"] = serde_json::json!(["setting1", "setting2"]);
        let e = onnx_predictor(&sidecar, &onnx, true)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("setting 3"), "{e}");
        sidecar
            .as_object_mut()
            .expect("object")
            .remove("setting_columns");
        assert!(onnx_predictor(&sidecar, &onnx, true).is_err());
        sidecar["setting_columns"] = serde_json::json!("setting1");
        assert!(onnx_predictor(&sidecar, &onnx, true).is_err());
    }
}
