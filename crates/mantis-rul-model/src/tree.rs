//! The in-platform RUL model: gradient-boosted regression trees on windowed features, trained
//! in Rust on a plant's own runs to failure (no offline pipeline, no GPU).
//!
//! Training ([`TreeRulModel::train`]):
//! 1. **Operating regimes.** When the data has setting columns (load, speed, altitude...),
//!    k-means on the standardised settings finds the regimes (`regimes = 0` picks k in 1..=8
//!    by the largest drop of within-cluster variance, 1 when the settings do not cluster), and
//!    every value is normalised by its regime's mean and standard deviation.
//! 2. **Window features.** For each row, the last `window` rows (fewer at the start of a life)
//!    give per column: last value, mean, standard deviation, least-squares slope, plus the
//!    number of rows. Missing values (NaN) are carried forward inside the window (the first
//!    known value backward); a column with no value in the window gives NaN features, which
//!    the trees route by a learned default direction.
//! 3. **Labels.** Cycles left until the run's end (`rows after this one + rul_at_end`),
//!    capped at `label_cap` (piecewise-linear degradation: a healthy machine's RUL is "at
//!    least the cap").
//! 4. **Cross-fitting by unit.** Units (runs) are dealt into `folds` folds; a model per fold
//!    learns on the other folds and scores the held-out units at every boosting round. The
//!    number of trees minimising the summed held-out error is kept (early stopping that also
//!    works with three runs), and the held-out absolute errors at that size give the
//!    split-conformal half-width of the `coverage` interval. The served model is then trained
//!    on every unit with that many trees.
//!
//! Trees are grown depth-wise on 8-bit feature histograms (quantile bins, histogram
//! subtraction for the larger child), squared loss, L2-regularised leaves, row subsampling.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::RulPrediction;
use crate::error::{Result, RulError};

/// Statistics computed per column over a window, in feature order.
pub const WINDOW_STATS: [&str; 4] = ["last", "mean", "std", "slope"];

/// One row (cycle, window) of an asset: its operating settings and its values, `NaN` where
/// unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleRow {
    /// Operating settings, in the order of the model's setting columns.
    pub settings: Vec<f64>,
    /// Values, in the order of the model's columns.
    pub values: Vec<f64>,
}

/// The rows of one life of a unit, oldest first, ending at (or `rul_at_end` cycles before) a
/// failure.
#[derive(Clone, Debug)]
pub struct RunToFailure {
    /// A name for the run (for reports).
    pub unit: String,
    /// Rows, oldest first.
    pub rows: Vec<CycleRow>,
    /// Cycles between the last row and the failure.
    pub rul_at_end: f64,
}

/// Training settings (`[rul.training]` in the configuration, the body of the train API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TreeConfig {
    /// Rows per feature window.
    pub window: usize,
    /// Label cap (cycles); `None` trains on the raw remaining cycles.
    pub label_cap: Option<f64>,
    /// Operating regimes: 0 picks the number from the settings, 1 disables them.
    pub regimes: usize,
    /// Most trees per model (early stopping keeps fewer).
    pub trees: usize,
    /// Shrinkage per tree.
    pub learning_rate: f64,
    /// Depth of each tree.
    pub max_depth: usize,
    /// Fewest rows per leaf.
    pub min_samples_leaf: usize,
    /// Fraction of the rows each tree sees.
    pub subsample: f64,
    /// Histogram bins per feature (2..=255).
    pub bins: usize,
    /// L2 regularisation of leaf values.
    pub l2: f64,
    /// Cross-fitting folds (by unit; fewer when there are fewer units).
    pub folds: usize,
    /// Nominal coverage of the prediction interval.
    pub coverage: f64,
    /// Seed of the fold assignment, k-means and row subsampling.
    pub seed: u64,
}

impl Default for TreeConfig {
    fn default() -> Self {
        Self {
            window: 30,
            label_cap: Some(125.0),
            regimes: 0,
            trees: 300,
            learning_rate: 0.05,
            max_depth: 5,
            min_samples_leaf: 20,
            subsample: 0.8,
            bins: 64,
            l2: 1.0,
            folds: 5,
            coverage: 0.9,
            seed: 0,
        }
    }
}

impl TreeConfig {
    /// Checks every setting; the message names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(RulError::Training(m));
        if self.window == 0 || self.window > crate::contract::MAX_WINDOW {
            return bad(format!(
                "window must be in 1..={}, got {}",
                crate::contract::MAX_WINDOW,
                self.window
            ));
        }
        if let Some(cap) = self.label_cap
            && !(cap.is_finite() && cap > 0.0)
        {
            return bad(format!("labelCap must be positive, got {cap}"));
        }
        if self.regimes > 16 {
            return bad(format!("regimes must be at most 16, got {}", self.regimes));
        }
        if self.trees == 0 || self.trees > 10_000 {
            return bad(format!("trees must be in 1..=10000, got {}", self.trees));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad(format!(
                "learningRate must be in (0, 1], got {}",
                self.learning_rate
            ));
        }
        if self.max_depth == 0 || self.max_depth > 12 {
            return bad(format!(
                "maxDepth must be in 1..=12, got {}",
                self.max_depth
            ));
        }
        if self.min_samples_leaf == 0 {
            return bad("minSamplesLeaf must be at least 1".into());
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return bad(format!(
                "subsample must be in (0, 1], got {}",
                self.subsample
            ));
        }
        if !(2..=255).contains(&self.bins) {
            return bad(format!("bins must be in 2..=255, got {}", self.bins));
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad(format!("l2 must be non-negative, got {}", self.l2));
        }
        if self.folds < 2 {
            return bad(format!("folds must be at least 2, got {}", self.folds));
        }
        if !(self.coverage > 0.0 && self.coverage < 1.0) {
            return bad(format!("coverage must be in (0, 1), got {}", self.coverage));
        }
        Ok(())
    }
}

/// Where a training is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainProgress {
    /// `features`, `fold 2/5`, `final model`.
    pub stage: String,
    /// Trees grown so far, over all stages.
    pub done: usize,
    /// Trees to grow, over all stages.
    pub total: usize,
}

/// A feature and its share of the model's split gain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureShare {
    /// `{column}:{statistic}` (`vibration.rms:slope`) or `rows`.
    pub feature: String,
    /// Share of the total split gain, 0..1.
    pub share: f64,
}

/// What a training measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainReport {
    /// Runs to failure used.
    pub units: usize,
    /// Training rows (one per row of every run).
    pub rows: usize,
    /// Cross-fitting folds.
    pub folds: usize,
    /// RMSE of the held-out predictions at the chosen size (cycles, on capped labels).
    pub validation_rmse: f64,
    /// Half-width of the prediction interval over all held-out rows (cycles).
    pub q90: f64,
    /// Half-widths by predicted RUL (Mondrian conformal: the interval of a prediction is
    /// calibrated on the held-out rows predicted alike, so near a failure it is not the width
    /// learned mostly from healthy rows).
    pub bands: Vec<IntervalBand>,
    /// Its nominal coverage.
    pub coverage: f64,
    /// Operating regimes found.
    pub regimes: usize,
    /// Trees in the served model.
    pub trees: usize,
    /// Wall time of the training (seconds).
    pub seconds: f64,
    /// The features with the largest share of split gain (at most 10).
    pub top_features: Vec<FeatureShare>,
}

/// The interval half-width of predictions up to `up_to` cycles (above the previous band's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntervalBand {
    /// Largest prediction of the band (`f64::MAX` for the last one).
    pub up_to: f64,
    /// Half-width (cycles).
    pub q: f64,
    /// Held-out rows it was calibrated on.
    pub rows: usize,
}

/// Fewest held-out rows per interval band.
const MIN_BAND_ROWS: usize = 200;
/// Most interval bands.
const MAX_BANDS: usize = 4;

/// Bands of equal count by predicted value, each with its conformal half-width; one band when
/// there are too few rows.
fn interval_bands(held_out: &mut [(f64, f64)], coverage: f64) -> Vec<IntervalBand> {
    held_out.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = held_out.len();
    let bands = (n / MIN_BAND_ROWS).clamp(1, MAX_BANDS);
    // Boundaries at equal counts; ties (e.g. many predictions at the cap) merge bands.
    let mut bounds: Vec<f64> = (1..bands).map(|b| held_out[b * n / bands - 1].0).collect();
    bounds.dedup();
    bounds.push(f64::MAX);
    let mut out: Vec<IntervalBand> = Vec::with_capacity(bounds.len());
    let mut lo = 0;
    for up_to in bounds {
        let hi = lo + held_out[lo..].partition_point(|(p, _)| *p <= up_to);
        if hi > lo {
            let mut residuals: Vec<f64> = held_out[lo..hi].iter().map(|(_, r)| *r).collect();
            out.push(IntervalBand {
                up_to,
                q: conformal_quantile(&mut residuals, coverage),
                rows: hi - lo,
            });
        }
        lo = hi;
    }
    if let Some(last) = out.last_mut() {
        last.up_to = f64::MAX;
    }
    out
}

/// Per-regime normalisation of values.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Normaliser {
    /// Mean and standard deviation of each setting (for the regime distance).
    settings_mean: Vec<f64>,
    settings_std: Vec<f64>,
    /// Regime centroids in standardised settings space (empty or one: a single regime).
    centroids: Vec<Vec<f64>>,
    /// `mean[regime][column]`, `std[regime][column]` (std > 0).
    mean: Vec<Vec<f64>>,
    std: Vec<Vec<f64>>,
}

impl Normaliser {
    fn regime(&self, settings: &[f64]) -> usize {
        if self.centroids.len() <= 1 {
            return 0;
        }
        let z: Vec<f64> = standardise(settings, &self.settings_mean, &self.settings_std);
        nearest(&self.centroids, &z).0
    }

    /// Normalised values of `row`, appended to `out` (NaN stays NaN).
    fn normalise(&self, row: &CycleRow, out: &mut Vec<f64>) {
        let r = self.regime(&row.settings);
        for (j, v) in row.values.iter().enumerate() {
            out.push(if v.is_finite() {
                (v - self.mean[r][j]) / self.std[r][j]
            } else {
                f64::NAN
            });
        }
    }
}

fn standardise(settings: &[f64], mean: &[f64], std: &[f64]) -> Vec<f64> {
    settings
        .iter()
        .zip(mean.iter().zip(std))
        .map(|(v, (m, s))| if v.is_finite() { (v - m) / s } else { 0.0 })
        .collect()
}

fn nearest(centroids: &[Vec<f64>], z: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (k, c) in centroids.iter().enumerate() {
        let d: f64 = c.iter().zip(z).map(|(a, b)| (a - b) * (a - b)).sum();
        if d < best.1 {
            best = (k, d);
        }
    }
    best
}

/// One node of a tree. Splits send a value `<= threshold` left, NaN to `nan_left`'s side.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Node {
    Split {
        feature: u32,
        threshold: f64,
        /// The split in bins (training only; not needed to predict).
        #[serde(skip)]
        bin: u8,
        nan_left: bool,
        left: u32,
        right: u32,
    },
    Leaf {
        value: f64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// Walks from the root to a leaf, `go_left(feature, threshold, bin, nan_left)` choosing
    /// at each split.
    fn walk(&self, go_left: impl Fn(usize, f64, u8, bool) -> bool) -> f64 {
        let mut i = 0usize;
        loop {
            match self.nodes.get(i) {
                Some(Node::Leaf { value }) => return *value,
                Some(Node::Split {
                    feature,
                    threshold,
                    bin,
                    nan_left,
                    left,
                    right,
                }) => {
                    let l = go_left(*feature as usize, *threshold, *bin, *nan_left);
                    i = if l { *left } else { *right } as usize;
                }
                None => return 0.0,
            }
        }
    }

    /// On raw features (serving).
    fn predict(&self, x: &[f64]) -> f64 {
        self.walk(|f, threshold, _, nan_left| {
            let v = x.get(f).copied().unwrap_or(f64::NAN);
            if v.is_nan() { nan_left } else { v <= threshold }
        })
    }

    /// On the binned training rows (the split's bin; the threshold is its upper edge).
    fn predict_binned(&self, bins: &Binned, row: usize) -> f64 {
        self.walk(|f, _, bin, nan_left| {
            let b = bins.get(f, row);
            if b == 0 { nan_left } else { b <= bin }
        })
    }
}

/// The trained model: normaliser, window length, trees, interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeRulModel {
    format: String,
    columns: Vec<String>,
    settings_columns: Vec<String>,
    window: usize,
    label_cap: Option<f64>,
    normaliser: Normaliser,
    base: f64,
    trees: Vec<Tree>,
    bands: Vec<IntervalBand>,
    report: TrainReport,
}

/// Format tag stored in the serialised model.
pub const FORMAT: &str = "mantis-rul-tree/1";

impl TreeRulModel {
    /// Trains a model on `runs`, whose rows carry `columns` values and `settings_columns`
    /// settings. `progress` sees each stage (called from this thread).
    pub fn train(
        runs: &[RunToFailure],
        columns: &[String],
        settings_columns: &[String],
        config: &TreeConfig,
        progress: &mut dyn FnMut(&TrainProgress),
    ) -> Result<(TreeRulModel, TrainReport)> {
        let t0 = Instant::now();
        config.validate()?;
        if columns.is_empty() {
            return Err(RulError::Training("no value columns".into()));
        }
        let runs: Vec<&RunToFailure> = runs.iter().filter(|r| !r.rows.is_empty()).collect();
        if runs.len() < 2 {
            return Err(RulError::Training(format!(
                "needs at least 2 runs to failure with rows, got {}",
                runs.len()
            )));
        }
        for run in &runs {
            if !(run.rul_at_end.is_finite() && run.rul_at_end >= 0.0) {
                return Err(RulError::Training(format!(
                    "run {} ends {} cycles before its failure",
                    run.unit, run.rul_at_end
                )));
            }
            for (i, row) in run.rows.iter().enumerate() {
                check_width(row, columns.len(), settings_columns.len())
                    .map_err(|m| RulError::Training(format!("run {} row {i}: {m}", run.unit)))?;
            }
        }
        progress(&TrainProgress {
            stage: "features".into(),
            done: 0,
            total: 0,
        });
        let mut rng = SplitMix(config.seed ^ 0x6d61_6e74_6973);
        let normaliser = fit_normaliser(
            &runs,
            columns.len(),
            settings_columns.len(),
            config,
            &mut rng,
        );
        let n_regimes = normaliser.centroids.len().max(1);

        // Features and labels of every row, and the unit each row belongs to.
        let n_features = columns.len() * WINDOW_STATS.len() + 1;
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut unit_of = Vec::new();
        let mut z = Vec::new();
        for (u, run) in runs.iter().enumerate() {
            z.clear();
            for row in &run.rows {
                normaliser.normalise(row, &mut z);
            }
            let len = run.rows.len();
            for t in 0..len {
                let start = (t + 1).saturating_sub(config.window);
                window_features(
                    &z[start * columns.len()..(t + 1) * columns.len()],
                    columns.len(),
                    &mut x,
                );
                let rul = (len - 1 - t) as f64 + run.rul_at_end;
                y.push(config.label_cap.map_or(rul, |c| rul.min(c)));
                unit_of.push(u);
            }
        }
        let n_rows = y.len();
        let binned = Binned::new(&x, n_rows, n_features, config.bins, &mut rng);

        // Cross-fitting: units dealt into folds in a seeded order.
        let folds = config.folds.min(runs.len());
        let mut order: Vec<usize> = (0..runs.len()).collect();
        rng.shuffle(&mut order);
        let mut fold_of_unit = vec![0usize; runs.len()];
        for (i, u) in order.iter().enumerate() {
            fold_of_unit[*u] = i % folds;
        }
        let total_trees = config.trees * (folds + 1);
        let mut done = 0usize;
        let mut sse = vec![0.0; config.trees];
        let mut fold_models = Vec::with_capacity(folds);
        for k in 0..folds {
            let (valid, train): (Vec<u32>, Vec<u32>) =
                (0..n_rows as u32).partition(|r| fold_of_unit[unit_of[*r as usize]] == k);
            let stage = format!("fold {}/{folds}", k + 1);
            let fit = boost(
                &binned,
                &y,
                &train,
                &valid,
                config.trees,
                config,
                &mut rng,
                &mut |_| {
                    done += 1;
                    if done.is_multiple_of(10) {
                        progress(&TrainProgress {
                            stage: stage.clone(),
                            done,
                            total: total_trees,
                        });
                    }
                },
            );
            for (s, v) in sse.iter_mut().zip(&fit.valid_sse) {
                *s += v;
            }
            fold_models.push((valid, fit));
        }
        let best = sse
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let n_trees = best + 1;
        let validation_rmse = (sse[best] / n_rows as f64).sqrt();
        let mut residuals = Vec::with_capacity(n_rows);
        let mut held_out = Vec::with_capacity(n_rows);
        for (valid, fit) in &fold_models {
            for r in valid {
                let r = *r as usize;
                let p = fit.base
                    + fit.trees[..n_trees.min(fit.trees.len())]
                        .iter()
                        .map(|t| t.predict_binned(&binned, r))
                        .sum::<f64>();
                let p = clamp(p, config.label_cap);
                residuals.push((p - y[r]).abs());
                held_out.push((p, (p - y[r]).abs()));
            }
        }
        let q90 = conformal_quantile(&mut residuals, config.coverage);
        let bands = interval_bands(&mut held_out, config.coverage);

        let all: Vec<u32> = (0..n_rows as u32).collect();
        let total_final = config.trees * folds + n_trees;
        let fit = boost(
            &binned,
            &y,
            &all,
            &[],
            n_trees,
            config,
            &mut rng,
            &mut |_| {
                done += 1;
                if done.is_multiple_of(10) || done == total_final {
                    progress(&TrainProgress {
                        stage: "final model".into(),
                        done,
                        total: total_final,
                    });
                }
            },
        );
        let top_features = top_features(&fit.gain, columns);
        let report = TrainReport {
            units: runs.len(),
            rows: n_rows,
            folds,
            validation_rmse,
            q90,
            bands: bands.clone(),
            coverage: config.coverage,
            regimes: n_regimes,
            trees: n_trees,
            seconds: t0.elapsed().as_secs_f64(),
            top_features,
        };
        tracing::info!(
            units = report.units,
            rows = report.rows,
            trees = report.trees,
            validation_rmse = report.validation_rmse,
            q90 = report.q90,
            seconds = report.seconds,
            "RUL tree model trained"
        );
        let model = Self {
            format: FORMAT.to_owned(),
            columns: columns.to_vec(),
            settings_columns: settings_columns.to_vec(),
            window: config.window,
            label_cap: config.label_cap,
            normaliser,
            base: fit.base,
            trees: fit.trees,
            bands,
            report: report.clone(),
        };
        Ok((model, report))
    }

    /// Predicts from the rows of the current life, oldest first (the model reads the last
    /// [`window`](Self::window) of them).
    pub fn predict(&self, rows: &[CycleRow]) -> Result<RulPrediction> {
        if rows.is_empty() {
            return Err(RulError::NoCycles);
        }
        for row in rows {
            check_width(row, self.columns.len(), self.settings_columns.len())
                .map_err(RulError::Contract)?;
        }
        let start = rows.len().saturating_sub(self.window);
        let mut z = Vec::with_capacity(self.window * self.columns.len());
        for row in &rows[start..] {
            self.normaliser.normalise(row, &mut z);
        }
        let mut x = Vec::with_capacity(self.columns.len() * WINDOW_STATS.len() + 1);
        window_features(&z, self.columns.len(), &mut x);
        let raw = self.base + self.trees.iter().map(|t| t.predict(&x)).sum::<f64>();
        let rul = clamp(raw, self.label_cap);
        let q = self
            .bands
            .iter()
            .find(|b| rul <= b.up_to)
            .or(self.bands.last())
            .map_or(0.0, |b| b.q);
        Ok(RulPrediction {
            rul,
            lower: (rul - q).max(0.0),
            upper: rul + q,
        })
    }

    /// [`predict`](Self::predict) for several histories.
    pub fn predict_batch(&self, histories: &[&[CycleRow]]) -> Result<Vec<RulPrediction>> {
        histories.iter().map(|h| self.predict(h)).collect()
    }

    /// Value columns, in the order of [`CycleRow::values`].
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Setting columns, in the order of [`CycleRow::settings`].
    pub fn settings_columns(&self) -> &[String] {
        &self.settings_columns
    }

    /// Rows per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The training report.
    pub fn report(&self) -> &TrainReport {
        &self.report
    }

    /// The serialised model (JSON; every number in it is finite).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| RulError::Contract(format!("cannot serialise: {e}")))
    }

    /// Reads a model written by [`to_bytes`](Self::to_bytes), checking its consistency.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let model: Self = serde_json::from_slice(bytes)
            .map_err(|e| RulError::Contract(format!("not a {FORMAT} model: {e}")))?;
        if model.format != FORMAT {
            return Err(RulError::Contract(format!(
                "format {:?}, expected {FORMAT:?}",
                model.format
            )));
        }
        let n = &model.normaliser;
        let cols = model.columns.len();
        let regimes = n.centroids.len().max(1);
        let consistent = model.window > 0
            && model.window <= crate::contract::MAX_WINDOW
            && n.mean.len() == regimes
            && n.std.len() == regimes
            && n.mean.iter().chain(&n.std).all(|v| v.len() == cols)
            && n.std.iter().flatten().all(|s| *s > 0.0)
            && n.settings_mean.len() == model.settings_columns.len()
            && n.settings_std.len() == model.settings_columns.len()
            && n.centroids
                .iter()
                .all(|c| c.len() == model.settings_columns.len());
        if !consistent {
            return Err(RulError::Contract(
                "the model's normaliser does not match its columns".into(),
            ));
        }
        if model.bands.is_empty() || model.bands.iter().any(|b| b.q.is_nan() || b.q < 0.0) {
            return Err(RulError::Contract("the model has no valid interval".into()));
        }
        let n_features = (cols * WINDOW_STATS.len() + 1) as u32;
        for tree in &model.trees {
            for node in &tree.nodes {
                if let Node::Split {
                    feature,
                    left,
                    right,
                    ..
                } = node
                    && (*feature >= n_features
                        || *left as usize >= tree.nodes.len()
                        || *right as usize >= tree.nodes.len())
                {
                    return Err(RulError::Contract(
                        "a tree node points outside its tree".into(),
                    ));
                }
            }
        }
        Ok(model)
    }
}

fn check_width(row: &CycleRow, values: usize, settings: usize) -> std::result::Result<(), String> {
    if row.values.len() != values {
        return Err(format!(
            "row has {} values, the model expects {values} columns",
            row.values.len()
        ));
    }
    if row.settings.len() != settings {
        return Err(format!(
            "row has {} settings, the model expects {settings}",
            row.settings.len()
        ));
    }
    Ok(())
}

fn clamp(p: f64, cap: Option<f64>) -> f64 {
    let p = p.max(0.0);
    cap.map_or(p, |c| p.min(c))
}

/// The `ceil((n + 1) · coverage)`-th smallest absolute residual (the largest one when there
/// are too few); 0 without residuals.
fn conformal_quantile(residuals: &mut [f64], coverage: f64) -> f64 {
    if residuals.is_empty() {
        return 0.0;
    }
    residuals.sort_by(f64::total_cmp);
    let n = residuals.len();
    let rank = (((n + 1) as f64) * coverage).ceil() as usize;
    residuals[rank.clamp(1, n) - 1]
}

/// Window statistics of `z` (rows × `cols`, row-major, normalised, NaN where unknown),
/// appended to `out`: per column last, mean, std, slope; then the number of rows.
fn window_features(z: &[f64], cols: usize, out: &mut Vec<f64>) {
    let n = z.len().checked_div(cols).unwrap_or(0);
    for j in 0..cols {
        let first = (0..n).map(|i| z[i * cols + j]).find(|v| !v.is_nan());
        let Some(mut last) = first else {
            out.extend([f64::NAN; WINDOW_STATS.len()]);
            continue;
        };
        let (mut sum, mut sum_sq, mut sum_iv) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let v = z[i * cols + j];
            if !v.is_nan() {
                last = v;
            }
            sum += last;
            sum_sq += last * last;
            sum_iv += i as f64 * last;
        }
        let nf = n as f64;
        let mean = sum / nf;
        let var = (sum_sq / nf - mean * mean).max(0.0);
        let i_mean = (nf - 1.0) / 2.0;
        let s_ii = nf * (nf * nf - 1.0) / 12.0;
        let slope = if n > 1 {
            (sum_iv - nf * i_mean * mean) / s_ii
        } else {
            0.0
        };
        out.extend([last, mean, var.sqrt(), slope]);
    }
    out.push(n as f64);
}

fn fit_normaliser(
    runs: &[&RunToFailure],
    cols: usize,
    n_settings: usize,
    config: &TreeConfig,
    rng: &mut SplitMix,
) -> Normaliser {
    let rows: Vec<&CycleRow> = runs.iter().flat_map(|r| &r.rows).collect();
    let (settings_mean, settings_std) =
        column_stats(rows.iter().map(|r| &r.settings[..]), n_settings);
    let mut centroids = Vec::new();
    if n_settings > 0 && config.regimes != 1 {
        // k-means on a sample of the standardised settings.
        let step = (rows.len() / 20_000).max(1);
        let points: Vec<Vec<f64>> = rows
            .iter()
            .step_by(step)
            .map(|r| standardise(&r.settings, &settings_mean, &settings_std))
            .collect();
        let total: f64 = points
            .iter()
            .map(|p| p.iter().map(|v| v * v).sum::<f64>())
            .sum();
        if total > 0.0 {
            let ks: Vec<usize> = if config.regimes == 0 {
                (1..=8).collect()
            } else {
                vec![config.regimes]
            };
            let fits: Vec<(Vec<Vec<f64>>, f64)> = ks
                .iter()
                .map(|k| kmeans(&points, (*k).min(points.len()), rng))
                .collect();
            let chosen = if config.regimes == 0 {
                // The k after the largest relative drop of within-cluster variance, provided
                // the clusters explain 99 % of it; one regime otherwise.
                let ratio: Vec<f64> = fits.iter().map(|(_, w)| w / total).collect();
                (1..ratio.len())
                    .filter(|k| ratio[*k] < 0.01)
                    .max_by(|a, b| {
                        let da = ratio[a - 1] / ratio[*a].max(1e-12);
                        let db = ratio[b - 1] / ratio[*b].max(1e-12);
                        da.total_cmp(&db)
                    })
                    .unwrap_or(0)
            } else {
                0
            };
            centroids = fits
                .into_iter()
                .nth(chosen)
                .map(|f| f.0)
                .unwrap_or_default();
            if centroids.len() <= 1 {
                centroids.clear();
            }
        }
    }
    let regimes = centroids.len().max(1);
    let mut n = Normaliser {
        settings_mean,
        settings_std,
        centroids,
        mean: Vec::new(),
        std: Vec::new(),
    };
    let mut grouped: Vec<Vec<&[f64]>> = vec![Vec::new(); regimes];
    for r in &rows {
        grouped[n.regime(&r.settings)].push(&r.values);
    }
    for g in grouped {
        let (m, s) = column_stats(g.into_iter(), cols);
        n.mean.push(m);
        n.std.push(s);
    }
    n
}

/// Mean and standard deviation (1 where constant or unknown) of each of `width` columns over
/// the finite values.
fn column_stats<'a>(rows: impl Iterator<Item = &'a [f64]>, width: usize) -> (Vec<f64>, Vec<f64>) {
    let mut count = vec![0.0; width];
    let mut sum = vec![0.0; width];
    let mut sum_sq = vec![0.0; width];
    let rows: Vec<&[f64]> = rows.collect();
    for r in &rows {
        for (j, v) in r.iter().enumerate().take(width) {
            if v.is_finite() {
                count[j] += 1.0;
                sum[j] += v;
            }
        }
    }
    let mean: Vec<f64> = (0..width)
        .map(|j| {
            if count[j] > 0.0 {
                sum[j] / count[j]
            } else {
                0.0
            }
        })
        .collect();
    for r in &rows {
        for (j, v) in r.iter().enumerate().take(width) {
            if v.is_finite() {
                sum_sq[j] += (v - mean[j]) * (v - mean[j]);
            }
        }
    }
    let std = (0..width)
        .map(|j| {
            let s = if count[j] > 1.0 {
                (sum_sq[j] / count[j]).sqrt()
            } else {
                0.0
            };
            if s > 1e-9 * (1.0 + mean[j].abs()) {
                s
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

/// k-means (k-means++ start, Lloyd iterations, best of three starts): centroids and the
/// within-cluster sum of squares.
fn kmeans(points: &[Vec<f64>], k: usize, rng: &mut SplitMix) -> (Vec<Vec<f64>>, f64) {
    let mut best: (Vec<Vec<f64>>, f64) = (Vec::new(), f64::INFINITY);
    if points.is_empty() || k == 0 {
        return (Vec::new(), 0.0);
    }
    for _ in 0..3 {
        let mut centroids = vec![points[rng.below(points.len())].clone()];
        while centroids.len() < k {
            let d: Vec<f64> = points.iter().map(|p| nearest(&centroids, p).1).collect();
            let total: f64 = d.iter().sum();
            if total <= 0.0 {
                break;
            }
            let mut target = rng.unit() * total;
            let mut pick = points.len() - 1;
            for (i, di) in d.iter().enumerate() {
                target -= di;
                if target <= 0.0 {
                    pick = i;
                    break;
                }
            }
            centroids.push(points[pick].clone());
        }
        let dim = points[0].len();
        let mut wss = f64::INFINITY;
        for _ in 0..50 {
            let mut sums = vec![vec![0.0; dim]; centroids.len()];
            let mut counts = vec![0usize; centroids.len()];
            let mut new_wss = 0.0;
            for p in points {
                let (c, d) = nearest(&centroids, p);
                new_wss += d;
                counts[c] += 1;
                for (s, v) in sums[c].iter_mut().zip(p) {
                    *s += v;
                }
            }
            for (c, (s, n)) in centroids.iter_mut().zip(sums.iter().zip(&counts)) {
                if *n > 0 {
                    for (ci, si) in c.iter_mut().zip(s) {
                        *ci = si / *n as f64;
                    }
                }
            }
            let converged = (wss - new_wss).abs() <= 1e-12 * (1.0 + new_wss);
            wss = new_wss;
            if converged {
                break;
            }
        }
        if wss < best.1 {
            best = (centroids, wss);
        }
    }
    best
}

/// The features, binned: `bins[feature][row]`, 0 for NaN, `1 + #edges < value` otherwise,
/// with the edges (quantiles of the feature) to turn a bin split back into a threshold.
struct Binned {
    n_rows: usize,
    n_features: usize,
    bins: Vec<u8>,
    edges: Vec<Vec<f64>>,
}

impl Binned {
    fn new(x: &[f64], n_rows: usize, n_features: usize, n_bins: usize, rng: &mut SplitMix) -> Self {
        let sample: Vec<usize> = if n_rows > 50_000 {
            (0..50_000).map(|_| rng.below(n_rows)).collect()
        } else {
            (0..n_rows).collect()
        };
        let mut edges = Vec::with_capacity(n_features);
        let mut bins = vec![0u8; n_rows * n_features];
        let mut values = Vec::with_capacity(sample.len());
        for f in 0..n_features {
            values.clear();
            values.extend(
                sample
                    .iter()
                    .map(|r| x[r * n_features + f])
                    .filter(|v| !v.is_nan()),
            );
            values.sort_by(f64::total_cmp);
            let mut e: Vec<f64> = Vec::new();
            if !values.is_empty() {
                for q in 1..n_bins {
                    let v = values[(q * (values.len() - 1)) / (n_bins - 1)];
                    if e.last().is_none_or(|l| v > *l) {
                        e.push(v);
                    }
                }
            }
            // The largest value needs no edge of its own: everything above the last edge
            // falls in the last bin.
            if e.len() > 1 && e.last().is_some_and(|l| Some(l) == values.last()) {
                e.pop();
            }
            for r in 0..n_rows {
                let v = x[r * n_features + f];
                bins[f * n_rows + r] = if v.is_nan() {
                    0
                } else {
                    (1 + e.partition_point(|edge| *edge < v)) as u8
                };
            }
            edges.push(e);
        }
        Self {
            n_rows,
            n_features,
            bins,
            edges,
        }
    }

    fn get(&self, feature: usize, row: usize) -> u8 {
        self.bins[feature * self.n_rows + row]
    }

    /// Bins used by `feature` (NaN bin included).
    fn width(&self, feature: usize) -> usize {
        self.edges[feature].len() + 2
    }
}

/// Gradient sums and counts per (feature, bin).
#[derive(Clone)]
struct Histogram {
    stride: usize,
    sum: Vec<f64>,
    count: Vec<u32>,
}

impl Histogram {
    fn build(binned: &Binned, stride: usize, rows: &[u32], grad: &[f64]) -> Self {
        let mut h = Self {
            stride,
            sum: vec![0.0; stride * binned.n_features],
            count: vec![0; stride * binned.n_features],
        };
        for f in 0..binned.n_features {
            let col = &binned.bins[f * binned.n_rows..(f + 1) * binned.n_rows];
            let (sum, count) = (
                &mut h.sum[f * stride..(f + 1) * stride],
                &mut h.count[f * stride..(f + 1) * stride],
            );
            for r in rows {
                let b = col[*r as usize] as usize;
                sum[b] += grad[*r as usize];
                count[b] += 1;
            }
        }
        h
    }

    fn minus(&self, other: &Self) -> Self {
        Self {
            stride: self.stride,
            sum: self
                .sum
                .iter()
                .zip(&other.sum)
                .map(|(a, b)| a - b)
                .collect(),
            count: self
                .count
                .iter()
                .zip(&other.count)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        }
    }
}

struct SplitChoice {
    gain: f64,
    feature: usize,
    bin: u8,
    nan_left: bool,
}

struct Fit {
    base: f64,
    trees: Vec<Tree>,
    /// Held-out sum of squared errors after each tree.
    valid_sse: Vec<f64>,
    /// Split gain per feature.
    gain: Vec<f64>,
}

struct Grower<'a> {
    binned: &'a Binned,
    grad: &'a [f64],
    config: &'a TreeConfig,
    stride: usize,
    nodes: Vec<Node>,
    gain: &'a mut [f64],
}

impl Grower<'_> {
    fn leaf(&mut self, sum: f64, count: usize) -> u32 {
        let value = self.config.learning_rate * sum / (count as f64 + self.config.l2);
        self.nodes.push(Node::Leaf { value });
        (self.nodes.len() - 1) as u32
    }

    fn best_split(&self, h: &Histogram, sum: f64, count: usize) -> Option<SplitChoice> {
        let l2 = self.config.l2;
        let min_leaf = self.config.min_samples_leaf;
        let parent = sum * sum / (count as f64 + l2);
        let score = |g: f64, n: usize| g * g / (n as f64 + l2);
        let mut best: Option<SplitChoice> = None;
        for f in 0..self.binned.n_features {
            let width = self.binned.width(f);
            let s = &h.sum[f * self.stride..f * self.stride + width];
            let c = &h.count[f * self.stride..f * self.stride + width];
            let (nan_g, nan_n) = (s[0], c[0] as usize);
            let (mut gl, mut nl) = (0.0, 0usize);
            // Left = bins 1..=b (b = 0: no value on the left), NaN on either side.
            for b in 0..width - 1 {
                if b > 0 {
                    gl += s[b];
                    nl += c[b] as usize;
                }
                for nan_left in [false, true] {
                    if nan_left && nan_n == 0 {
                        continue;
                    }
                    let (g_left, n_left) = if nan_left {
                        (gl + nan_g, nl + nan_n)
                    } else {
                        (gl, nl)
                    };
                    let n_right = count.saturating_sub(n_left);
                    if n_left < min_leaf || n_right < min_leaf {
                        continue;
                    }
                    let gain = score(g_left, n_left) + score(sum - g_left, n_right) - parent;
                    if gain > 1e-12 && best.as_ref().is_none_or(|x| gain > x.gain) {
                        best = Some(SplitChoice {
                            gain,
                            feature: f,
                            bin: b as u8,
                            nan_left,
                        });
                    }
                }
            }
        }
        best
    }

    fn grow(&mut self, rows: &mut [u32], hist: Histogram, depth: usize) -> u32 {
        let sum: f64 = rows.iter().map(|r| self.grad[*r as usize]).sum();
        let count = rows.len();
        if depth >= self.config.max_depth || count < 2 * self.config.min_samples_leaf {
            return self.leaf(sum, count);
        }
        let Some(split) = self.best_split(&hist, sum, count) else {
            return self.leaf(sum, count);
        };
        self.gain[split.feature] += split.gain;
        // Partition rows: left first.
        let goes_left = |b: u8| {
            if b == 0 {
                split.nan_left
            } else {
                b <= split.bin
            }
        };
        let mut mid = 0;
        for i in 0..rows.len() {
            if goes_left(self.binned.get(split.feature, rows[i] as usize)) {
                rows.swap(i, mid);
                mid += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(mid);
        let (left_hist, right_hist) = if left_rows.len() <= right_rows.len() {
            let l = Histogram::build(self.binned, self.stride, left_rows, self.grad);
            let r = hist.minus(&l);
            (l, r)
        } else {
            let r = Histogram::build(self.binned, self.stride, right_rows, self.grad);
            let l = hist.minus(&r);
            (l, r)
        };
        drop(hist);
        let threshold = if split.bin == 0 {
            f64::MIN
        } else {
            self.binned.edges[split.feature][split.bin as usize - 1]
        };
        let index = self.nodes.len();
        self.nodes.push(Node::Leaf { value: 0.0 });
        let left = self.grow(left_rows, left_hist, depth + 1);
        let right = self.grow(right_rows, right_hist, depth + 1);
        self.nodes[index] = Node::Split {
            feature: split.feature as u32,
            threshold,
            bin: split.bin,
            nan_left: split.nan_left,
            left,
            right,
        };
        index as u32
    }
}

/// Grows `n_trees` trees on the `train` rows, scoring `valid` after each one.
#[allow(clippy::too_many_arguments)]
fn boost(
    binned: &Binned,
    y: &[f64],
    train: &[u32],
    valid: &[u32],
    n_trees: usize,
    config: &TreeConfig,
    rng: &mut SplitMix,
    on_tree: &mut dyn FnMut(usize),
) -> Fit {
    let base = if train.is_empty() {
        0.0
    } else {
        train.iter().map(|r| y[*r as usize]).sum::<f64>() / train.len() as f64
    };
    let mut pred = vec![base; y.len()];
    let mut grad = vec![0.0; y.len()];
    let stride = (0..binned.n_features)
        .map(|f| binned.width(f))
        .max()
        .unwrap_or(2);
    let mut trees = Vec::with_capacity(n_trees);
    let mut valid_sse = Vec::with_capacity(n_trees);
    let mut gain = vec![0.0; binned.n_features];
    let mut sample: Vec<u32> = Vec::with_capacity(train.len());
    for t in 0..n_trees {
        sample.clear();
        if config.subsample < 1.0 {
            sample.extend(train.iter().filter(|_| rng.unit() < config.subsample));
        }
        if sample.len() < 2 * config.min_samples_leaf {
            sample.clear();
            sample.extend_from_slice(train);
        }
        for r in &sample {
            grad[*r as usize] = y[*r as usize] - pred[*r as usize];
        }
        let hist = Histogram::build(binned, stride, &sample, &grad);
        let mut grower = Grower {
            binned,
            grad: &grad,
            config,
            stride,
            nodes: Vec::new(),
            gain: &mut gain,
        };
        grower.grow(&mut sample, hist, 0);
        let tree = Tree {
            nodes: grower.nodes,
        };
        for r in train.iter().chain(valid) {
            pred[*r as usize] += tree.predict_binned(binned, *r as usize);
        }
        valid_sse.push(
            valid
                .iter()
                .map(|r| {
                    let e = clamp(pred[*r as usize], config.label_cap) - y[*r as usize];
                    e * e
                })
                .sum(),
        );
        trees.push(tree);
        on_tree(t);
    }
    Fit {
        base,
        trees,
        valid_sse,
        gain,
    }
}

fn top_features(gain: &[f64], columns: &[String]) -> Vec<FeatureShare> {
    let total: f64 = gain.iter().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let mut ranked: Vec<(usize, f64)> = gain.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .filter(|(_, g)| *g > 0.0)
        .take(10)
        .map(|(f, g)| FeatureShare {
            feature: feature_name(f, columns),
            share: g / total,
        })
        .collect()
}

/// `{column}:{statistic}` of feature `f`, or `rows` for the last one.
pub fn feature_name(f: usize, columns: &[String]) -> String {
    let per = WINDOW_STATS.len();
    match columns.get(f / per) {
        Some(c) => format!("{c}:{}", WINDOW_STATS[f % per]),
        None => "rows".to_owned(),
    }
}

/// SplitMix64: small, seeded, good enough for shuffles and subsampling.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit whose `wear` column rises from 0 after a healthy phase, with noise and a
    /// settings-dependent offset, plus a column of noise and gaps.
    fn run(unit: usize, life: usize, regimes: bool) -> RunToFailure {
        let mut rng = SplitMix(unit as u64 + 1);
        let healthy = life / 2;
        let rows = (0..life)
            .map(|t| {
                let setting = if regimes { (t % 3) as f64 * 10.0 } else { 0.0 };
                let wear = if t < healthy {
                    0.0
                } else {
                    (t - healthy) as f64 / (life - healthy) as f64
                };
                let noise = rng.unit() - 0.5;
                let gap = t % 7 == 3;
                CycleRow {
                    settings: vec![setting],
                    values: vec![
                        if gap {
                            f64::NAN
                        } else {
                            5.0 * wear + setting + 0.3 * noise
                        },
                        rng.unit(),
                    ],
                }
            })
            .collect();
        RunToFailure {
            unit: format!("u{unit}"),
            rows,
            rul_at_end: 0.0,
        }
    }

    fn columns() -> Vec<String> {
        vec!["vibration".into(), "noise".into()]
    }

    fn small_config() -> TreeConfig {
        TreeConfig {
            window: 8,
            label_cap: Some(40.0),
            trees: 120,
            learning_rate: 0.1,
            max_depth: 3,
            min_samples_leaf: 5,
            ..TreeConfig::default()
        }
    }

    #[test]
    fn learns_falling_rul_from_a_few_runs_with_regimes_and_gaps() {
        let runs: Vec<RunToFailure> = (0..4).map(|u| run(u, 100 + 10 * u, true)).collect();
        let mut stages = Vec::new();
        let (model, report) = TreeRulModel::train(
            &runs,
            &columns(),
            &["load".into()],
            &small_config(),
            &mut |p| stages.push(p.stage.clone()),
        )
        .expect("trains");
        assert_eq!(report.units, 4);
        assert_eq!(report.folds, 4);
        assert_eq!(report.regimes, 3, "three setting values, three regimes");
        assert!(report.trees >= 1 && report.trees <= 120);
        assert!(report.validation_rmse < 10.0, "{report:?}");
        assert!(report.q90 > 0.0 && report.q90 < 25.0, "{report:?}");
        assert_eq!(
            report
                .top_features
                .first()
                .map(|f| f.feature.starts_with("vibration")),
            Some(true),
            "{:?}",
            report.top_features
        );
        assert!(stages.iter().any(|s| s == "final model"));

        let fresh = run(9, 120, true);
        let healthy = model.predict(&fresh.rows[..30]).expect("predicts");
        let late = model.predict(&fresh.rows[..115]).expect("predicts");
        assert!(healthy.rul > 30.0, "healthy {healthy:?}");
        assert!(late.rul < 15.0, "late {late:?}");
        assert!(late.lower <= late.rul && late.rul <= late.upper);

        // The serialised model predicts the same.
        let bytes = model.to_bytes().expect("serialises");
        let back = TreeRulModel::from_bytes(&bytes).expect("reads back");
        let again = back.predict(&fresh.rows[..115]).expect("predicts");
        assert_eq!(again, late);
    }

    #[test]
    fn same_seed_same_model() {
        let runs: Vec<RunToFailure> = (0..3).map(|u| run(u, 60, false)).collect();
        let cfg = TreeConfig {
            trees: 30,
            ..small_config()
        };
        let a = TreeRulModel::train(&runs, &columns(), &["load".into()], &cfg, &mut |_| {})
            .expect("trains")
            .0;
        let b = TreeRulModel::train(&runs, &columns(), &["load".into()], &cfg, &mut |_| {})
            .expect("trains")
            .0;
        // Same trees and interval (the report's wall time aside).
        let strip = |m: &TreeRulModel| {
            let mut m = m.clone();
            m.report.seconds = 0.0;
            m.to_bytes().ok()
        };
        assert!(strip(&a) == strip(&b), "same seed, same model");
        assert_eq!(a.report().regimes, 1, "constant settings: one regime");
    }

    #[test]
    fn refuses_bad_input_with_reasons() {
        let one = vec![run(0, 50, false)];
        let err = TreeRulModel::train(
            &one,
            &columns(),
            &["load".into()],
            &small_config(),
            &mut |_| {},
        )
        .err()
        .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("at least 2 runs")));

        let runs: Vec<RunToFailure> = (0..3).map(|u| run(u, 50, false)).collect();
        let err = TreeRulModel::train(
            &runs,
            &["only".into()],
            &["load".into()],
            &small_config(),
            &mut |_| {},
        )
        .err()
        .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("2 values")),
            "width mismatch named"
        );

        let bad = TreeConfig {
            bins: 1,
            ..small_config()
        };
        let err = TreeRulModel::train(&runs, &columns(), &["load".into()], &bad, &mut |_| {})
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("bins")));

        let (model, _) = TreeRulModel::train(
            &runs,
            &columns(),
            &["load".into()],
            &TreeConfig {
                trees: 5,
                ..small_config()
            },
            &mut |_| {},
        )
        .expect("trains");
        assert!(matches!(model.predict(&[]), Err(RulError::NoCycles)));
        let short = CycleRow {
            settings: vec![0.0],
            values: vec![1.0],
        };
        assert!(matches!(
            model.predict(&[short]),
            Err(RulError::Contract(_))
        ));
        assert!(TreeRulModel::from_bytes(b"{\"format\":\"other\"}").is_err());
    }

    #[test]
    fn window_features_fill_gaps_inside_the_window() {
        let mut out = Vec::new();
        // One column: NaN, 1, NaN, 3 -> filled 1, 1, 1, 3.
        window_features(&[f64::NAN, 1.0, f64::NAN, 3.0], 1, &mut out);
        assert_eq!(out[0], 3.0);
        assert!((out[1] - 1.5).abs() < 1e-12);
        assert!((out[2] - (0.75f64).sqrt()).abs() < 1e-12);
        // slope of 1,1,1,3 over 0..3: cov(i, v)/var(i) = 0.6
        assert!((out[3] - 0.6).abs() < 1e-12);
        assert_eq!(out[4], 4.0);
        out.clear();
        window_features(&[f64::NAN, f64::NAN], 1, &mut out);
        assert!(out[..4].iter().all(|v| v.is_nan()));
    }

    #[test]
    fn interval_bands_follow_the_predictions() {
        // Residuals grow with the prediction: each band gets its own width.
        let mut held_out: Vec<(f64, f64)> = (0..1000)
            .map(|i| {
                (
                    f64::from(i),
                    f64::from(i % 10) * (1.0 + f64::from(i) / 250.0),
                )
            })
            .collect();
        let bands = interval_bands(&mut held_out, 0.9);
        assert_eq!(bands.len(), 4);
        assert!(bands.windows(2).all(|w| w[0].q < w[1].q), "{bands:?}");
        assert_eq!(bands[0].up_to, 249.0);
        assert_eq!(bands[3].up_to, f64::MAX);
        // Every prediction at the same value: one band.
        let mut flat: Vec<(f64, f64)> = (0..1000).map(|i| (125.0, f64::from(i % 7))).collect();
        assert_eq!(interval_bands(&mut flat, 0.9).len(), 1);
        // Too few rows: one band.
        let mut few: Vec<(f64, f64)> = (0..150).map(|i| (f64::from(i), 1.0)).collect();
        assert_eq!(interval_bands(&mut few, 0.9).len(), 1);
    }

    #[test]
    fn conformal_quantile_uses_the_finite_sample_rank() {
        let mut r: Vec<f64> = (1..=9).map(f64::from).collect();
        // ceil(10 * 0.9) = 9 -> the 9th smallest.
        assert_eq!(conformal_quantile(&mut r, 0.9), 9.0);
        let mut r: Vec<f64> = (1..=99).map(f64::from).collect();
        assert_eq!(conformal_quantile(&mut r, 0.9), 90.0);
    }
}
