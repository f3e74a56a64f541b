//! The C-MAPSS benchmark of a model: one prediction per test engine from its last window,
//! scored against the unclipped true RUL.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cmapss::{Dataset, Engine};
use crate::error::Result;
use crate::metrics::{coverage, phm08, rmse};
use crate::{Cycle, RulModel};

/// Scores of a model on a C-MAPSS test set.
#[derive(Clone, Debug)]
pub struct EvalReport {
    /// `FD001`, ...
    pub dataset: String,
    /// Test engines.
    pub engines: usize,
    /// RMSE against the unclipped true RUL.
    pub rmse: f64,
    /// PHM08 score.
    pub phm08: f64,
    /// Empirical coverage of the conformal interval.
    pub coverage: f64,
    /// Nominal coverage of the interval.
    pub nominal_coverage: f64,
    /// Interval half-width (cycles).
    pub q90: f64,
    /// Largest |Rust − pipeline| over the test predictions stored in the sidecar (if any).
    pub max_diff_vs_pipeline: Option<f64>,
    /// Predictions, one per test engine.
    pub predictions: Vec<f64>,
    /// Wall time of the batch prediction (seconds).
    pub seconds: f64,
}

/// Evaluates `model` on the test engines of `data`.
pub fn evaluate(model: &RulModel, data: &Dataset) -> Result<EvalReport> {
    let histories: Vec<&[Cycle]> = data.test.iter().map(|e: &Engine| &e.cycles[..]).collect();
    let t0 = Instant::now();
    let preds = model.predict_batch(&histories)?;
    let seconds = t0.elapsed().as_secs_f64();
    let rul: Vec<f64> = preds.iter().map(|p| p.rul).collect();
    let lower: Vec<f64> = preds.iter().map(|p| p.lower).collect();
    let upper: Vec<f64> = preds.iter().map(|p| p.upper).collect();
    let max_diff_vs_pipeline = model.sidecar().reference.as_ref().and_then(|r| {
        (r.test_predictions.len() == rul.len()).then(|| {
            r.test_predictions
                .iter()
                .zip(&rul)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max)
        })
    });
    let report = EvalReport {
        dataset: data.name.clone(),
        engines: rul.len(),
        rmse: rmse(&rul, &data.test_rul),
        phm08: phm08(&rul, &data.test_rul),
        coverage: coverage(&lower, &upper, &data.test_rul),
        nominal_coverage: model.sidecar().interval.nominal_coverage,
        q90: model.sidecar().interval.q90,
        max_diff_vs_pipeline,
        predictions: rul,
        seconds,
    };
    tracing::info!(
        dataset = %report.dataset,
        rmse = report.rmse,
        phm08 = report.phm08,
        coverage = report.coverage,
        "C-MAPSS evaluation"
    );
    Ok(report)
}

/// The repository's `models/` directory (from this crate's manifest directory).
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// `../shared/data/cmapss` beside the repository (from this crate's manifest directory).
pub fn default_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cmapss")
}

/// Resolves a data directory argument given relative to the repository root (as in
/// `cargo run ... -- ../shared/data/cmapss`): absolute paths are kept, relative ones are taken
/// from the repository root whatever the current directory.
pub fn resolve_from_repo_root(arg: &Path) -> PathBuf {
    if arg.is_absolute() {
        arg.to_owned()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(arg)
    }
}

/// The C-MAPSS columns as the tree model sees them: `s1..s21` values, three settings.
pub fn tree_columns() -> (Vec<String>, Vec<String>) {
    (
        (1..=crate::N_SENSORS).map(|i| format!("s{i}")).collect(),
        (1..=crate::N_SETTINGS)
            .map(|i| format!("setting{i}"))
            .collect(),
    )
}

/// Cycles as tree-model rows.
pub fn tree_rows(cycles: &[Cycle]) -> Vec<crate::tree::CycleRow> {
    cycles
        .iter()
        .map(|c| crate::tree::CycleRow {
            settings: c.settings.to_vec(),
            values: c.sensors.to_vec(),
        })
        .collect()
}

/// Scores of an in-platform tree model trained on a C-MAPSS training set.
#[derive(Clone, Debug)]
pub struct TreeEvalReport {
    /// `FD001`, ...
    pub dataset: String,
    /// RMSE against the unclipped true RUL of the test engines.
    pub rmse: f64,
    /// PHM08 score.
    pub phm08: f64,
    /// Empirical coverage of the conformal interval on the test engines.
    pub coverage: f64,
    /// The same against the true RUL capped like the training labels (what the interval is
    /// calibrated for: a capped model cannot tell 150 cycles from 125).
    pub coverage_capped: f64,
    /// What the training measured.
    pub report: crate::tree::TrainReport,
    /// Mean prediction time per test engine (seconds).
    pub predict_seconds: f64,
}

/// Trains a tree model on the training engines of `data` (runs to failure) and scores it on
/// the last window of each test engine.
pub fn evaluate_tree(data: &Dataset, config: &crate::tree::TreeConfig) -> Result<TreeEvalReport> {
    use crate::tree::{RunToFailure, TreeRulModel};
    let (columns, settings) = tree_columns();
    let runs: Vec<RunToFailure> = data
        .train
        .iter()
        .map(|e| RunToFailure {
            unit: e.unit.to_string(),
            rows: tree_rows(&e.cycles),
            rul_at_end: 0.0,
        })
        .collect();
    let (model, report) = TreeRulModel::train(&runs, &columns, &settings, config, &mut |_| {})?;
    let tests: Vec<Vec<crate::tree::CycleRow>> =
        data.test.iter().map(|e| tree_rows(&e.cycles)).collect();
    let t0 = Instant::now();
    let preds = tests
        .iter()
        .map(|rows| model.predict(rows))
        .collect::<Result<Vec<_>>>()?;
    let predict_seconds = t0.elapsed().as_secs_f64() / tests.len().max(1) as f64;
    let rul: Vec<f64> = preds.iter().map(|p| p.rul).collect();
    let lower: Vec<f64> = preds.iter().map(|p| p.lower).collect();
    let upper: Vec<f64> = preds.iter().map(|p| p.upper).collect();
    Ok(TreeEvalReport {
        dataset: data.name.clone(),
        rmse: rmse(&rul, &data.test_rul),
        phm08: phm08(&rul, &data.test_rul),
        coverage: coverage(&lower, &upper, &data.test_rul),
        coverage_capped: coverage(
            &lower,
            &upper,
            &data
                .test_rul
                .iter()
                .map(|t| config.label_cap.map_or(*t, |c| t.min(c)))
                .collect::<Vec<_>>(),
        ),
        report,
        predict_seconds,
    })
}
