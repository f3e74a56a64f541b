//! The SKAB benchmark protocol (Katser & Kozitsin 2020), as pure functions: parse a file's
//! text, build its causal features, train on its first 400 rows, decide on the rest, count.
//!
//! Protocol of the SKAB leaderboard, followed exactly: per file, the first [`TRAIN_ROWS`] rows
//! are the training (baseline) rows and every later row is a test row; the confusion matrices
//! of all files are summed; F1 = TP / (TP + (FP + FN)/2), FAR = FP / (FP + TN)·100,
//! MAR = FN / (FN + TP)·100; the label is the `anomaly` column.
//!
//! What a row's feature vector is: the causal rolling mean and standard deviation of each of
//! the file's sensor columns over the last `window` rows, the row included
//! ([`RollingFeatures`]). Rows of the training part feed the window of the first test rows
//! (they are past rows); no test row ever influences training, calibration or the threshold.
//! The decision per row is the [`Hysteresis`] state after feeding it the row's calibrated
//! score, with the threshold fixed in the configuration, never tuned on test rows.
//!
//! The data is GPL-3.0: it is read at run time from `../shared/data/skab`, never copied here.

use crate::detector::DetectorKind;
use crate::ensemble::{Ensemble, EnsembleConfig};
use crate::error::{Error, Result};
use crate::features::RollingFeatures;
use crate::hysteresis::{Hysteresis, HysteresisConfig};
use crate::matrix::Matrix;
use serde::{Deserialize, Serialize};

/// Rows per file used for training, by the protocol.
pub const TRAIN_ROWS: usize = 400;

/// One labelled SKAB file.
#[derive(Clone, Debug, PartialEq)]
pub struct SkabFile {
    /// Sensor column names, in file order.
    pub sensors: Vec<String>,
    /// Sensor values per row.
    pub rows: Vec<Vec<f64>>,
    /// The `anomaly` label per row.
    pub anomaly: Vec<bool>,
}

/// Parses a SKAB CSV (`;`-separated; `datetime`, sensors…, `anomaly`, `changepoint`).
/// Columns other than `datetime`, `anomaly` and `changepoint` are sensors.
pub fn parse(text: &str) -> Result<SkabFile> {
    let mut lines = text.lines().enumerate();
    let err = |line: usize, reason: String| Error::Skab {
        line: line + 1,
        reason,
    };
    let Some((_, header)) = lines.next() else {
        return Err(err(0, "empty file".into()));
    };
    let cols: Vec<&str> = header.split(';').map(str::trim).collect();
    let Some(label) = cols.iter().position(|c| *c == "anomaly") else {
        return Err(err(0, "no `anomaly` column (an unlabelled file)".into()));
    };
    let sensor_cols: Vec<usize> = (0..cols.len())
        .filter(|&i| !matches!(cols[i], "datetime" | "anomaly" | "changepoint"))
        .collect();
    if sensor_cols.is_empty() {
        return Err(err(0, "no sensor columns".into()));
    }
    let mut rows = Vec::new();
    let mut anomaly = Vec::new();
    for (no, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        if fields.len() != cols.len() {
            return Err(err(
                no,
                format!("{} fields, the header has {}", fields.len(), cols.len()),
            ));
        }
        let num = |i: usize| -> Result<f64> {
            fields[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    err(
                        no,
                        format!("`{}` in column `{}` is not a number", fields[i], cols[i]),
                    )
                })
        };
        let mut row = Vec::with_capacity(sensor_cols.len());
        for &i in &sensor_cols {
            row.push(num(i)?);
        }
        let a = num(label)?;
        if a != 0.0 && a != 1.0 {
            return Err(err(no, format!("anomaly label {a} is neither 0 nor 1")));
        }
        rows.push(row);
        anomaly.push(a == 1.0);
    }
    Ok(SkabFile {
        sensors: sensor_cols.iter().map(|&i| cols[i].to_owned()).collect(),
        rows,
        anomaly,
    })
}

/// A confusion matrix over test rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    /// Anomalous rows flagged.
    pub true_pos: u64,
    /// Normal rows flagged.
    pub false_pos: u64,
    /// Anomalous rows missed.
    pub false_neg: u64,
    /// Normal rows not flagged.
    pub true_neg: u64,
}

impl Confusion {
    /// Counts predictions against labels (pairs beyond the shorter slice are ignored).
    pub fn of(predicted: &[bool], truth: &[bool]) -> Self {
        let mut c = Self::default();
        for (p, t) in predicted.iter().zip(truth) {
            match (p, t) {
                (true, true) => c.true_pos += 1,
                (true, false) => c.false_pos += 1,
                (false, true) => c.false_neg += 1,
                (false, false) => c.true_neg += 1,
            }
        }
        c
    }

    /// Sum of two matrices (pooling over files).
    pub fn add(&mut self, other: &Self) {
        self.true_pos += other.true_pos;
        self.false_pos += other.false_pos;
        self.false_neg += other.false_neg;
        self.true_neg += other.true_neg;
    }

    /// Rows counted.
    pub fn total(&self) -> u64 {
        self.true_pos + self.false_pos + self.false_neg + self.true_neg
    }

    /// F1 = TP / (TP + (FP + FN)/2); 0 when nothing is positive.
    pub fn f1(&self) -> f64 {
        let d = self.true_pos as f64 + (self.false_pos + self.false_neg) as f64 / 2.0;
        if d > 0.0 {
            self.true_pos as f64 / d
        } else {
            0.0
        }
    }

    /// False alarm rate in %: FP / (FP + TN) · 100.
    pub fn far(&self) -> f64 {
        pct(self.false_pos, self.false_pos + self.true_neg)
    }

    /// Missing alarm rate in %: FN / (FN + TP) · 100.
    pub fn mar(&self) -> f64 {
        pct(self.false_neg, self.false_neg + self.true_pos)
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64 * 100.0
    }
}

/// How the benchmark builds features, trains and decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkabConfig {
    /// Rows in the causal rolling window. Default 60 (one minute at 1 Hz).
    pub window: usize,
    /// Slow-sensor rule: a sensor whose rolling mean, over the training rows, varies by more
    /// than this fraction of its raw standard deviation is "slow" (it trends over the
    /// baseline: temperatures); its level feature is replaced by the change of its rolling
    /// mean over one window (`mean_t − mean_{t−window}`). `None` keeps every level. Decided on
    /// the training rows only.
    pub slow_ratio: Option<f64>,
    /// The ensemble trained per file.
    pub ensemble: EnsembleConfig,
    /// The alert decision applied to every detector's calibrated score and the ensemble's.
    pub alert: HysteresisConfig,
}

impl Default for SkabConfig {
    fn default() -> Self {
        Self {
            window: 60,
            slow_ratio: Some(0.65),
            ensemble: EnsembleConfig::default(),
            alert: HysteresisConfig {
                threshold: 0.999,
                margin: 0.0,
                open_after: 1,
                close_after: 1,
            },
        }
    }
}

/// The name under which the ensemble's confusion is reported.
pub const ENSEMBLE: &str = "ensemble";

/// One detector's counts on one file (or pooled).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorResult {
    /// `robust_z`, `isolation_forest`, `one_class_svm`, `autoencoder` or `ensemble`.
    pub name: String,
    /// Its confusion matrix over the test rows.
    pub confusion: Confusion,
}

/// The outcome on one file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileResult {
    /// Test rows (rows after the first [`TRAIN_ROWS`]).
    pub test_rows: usize,
    /// Per member, in ensemble order, then the ensemble.
    pub results: Vec<DetectorResult>,
}

/// The causal feature vector of every row of a file, and the feature names.
pub fn feature_rows(file: &SkabFile, window: usize) -> Result<(Vec<String>, Vec<Vec<f64>>)> {
    let mut f = RollingFeatures::new(file.sensors.len(), window)?;
    let rows = file
        .rows
        .iter()
        .map(|r| f.push(r))
        .collect::<Result<Vec<_>>>()?;
    Ok((RollingFeatures::names(&file.sensors), rows))
}

/// Applies the slow-sensor rule (see [`SkabConfig::slow_ratio`]) to causal feature rows, in
/// place, deciding which sensors are slow on the first [`TRAIN_ROWS`] rows. Returns the indices
/// of the slow sensors; their names get the suffix `.change`.
pub fn apply_slow_rule(
    file: &SkabFile,
    names: &mut [String],
    rows: &mut [Vec<f64>],
    window: usize,
    ratio: f64,
) -> Vec<usize> {
    let n = file.sensors.len();
    let train = TRAIN_ROWS.min(rows.len());
    let sd = |v: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = v.collect();
        let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    let slow: Vec<usize> = (0..n)
        .filter(|&j| {
            let raw = sd(&mut file.rows[..train].iter().map(|r| r[j]));
            let mean = sd(&mut rows[..train].iter().map(|r| r[j]));
            raw > 0.0 && mean > ratio * raw
        })
        .collect();
    for &j in &slow {
        let levels: Vec<f64> = rows.iter().map(|r| r[j]).collect();
        for (t, r) in rows.iter_mut().enumerate() {
            r[j] = levels[t] - levels[t.saturating_sub(window)];
        }
        names[j] = format!("{}.change", file.sensors[j]);
    }
    slow
}

/// Runs the protocol on one file: train on the first 400 rows, decide on every later row.
pub fn run_file(file: &SkabFile, config: &SkabConfig) -> Result<FileResult> {
    if file.rows.len() <= TRAIN_ROWS {
        return Err(Error::TooFewRows {
            needed: TRAIN_ROWS + 1,
            got: file.rows.len(),
        });
    }
    let (mut names, mut rows) = feature_rows(file, config.window)?;
    if let Some(ratio) = config.slow_ratio {
        apply_slow_rule(file, &mut names, &mut rows, config.window, ratio);
    }
    let train = Matrix::from_rows(&rows[..TRAIN_ROWS])?;
    let ensemble = Ensemble::fit(&train, names, &config.ensemble)?;
    let kinds: Vec<DetectorKind> = ensemble
        .members()
        .iter()
        .map(|m| crate::Detector::kind(&m.detector))
        .collect();
    let mut alerts = (0..=kinds.len())
        .map(|_| Hysteresis::new(config.alert.clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut predicted = vec![Vec::with_capacity(rows.len() - TRAIN_ROWS); kinds.len() + 1];
    for row in &rows[TRAIN_ROWS..] {
        let s = ensemble.score(row)?;
        let values = s.members.iter().map(|m| m.calibrated).chain([s.ensemble]);
        for ((alert, p), v) in alerts.iter_mut().zip(predicted.iter_mut()).zip(values) {
            alert.update(v);
            p.push(alert.is_open());
        }
    }
    let truth = &file.anomaly[TRAIN_ROWS..];
    let names = kinds
        .iter()
        .map(|k| k.as_str().to_owned())
        .chain([ENSEMBLE.to_owned()]);
    Ok(FileResult {
        test_rows: truth.len(),
        results: names
            .zip(&predicted)
            .map(|(name, p)| DetectorResult {
                name,
                confusion: Confusion::of(p, truth),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_the_leaderboard_definitions() {
        let c = Confusion {
            true_pos: 60,
            false_pos: 10,
            false_neg: 40,
            true_neg: 90,
        };
        assert!((c.f1() - 60.0 / 85.0).abs() < 1e-12);
        assert!((c.far() - 10.0).abs() < 1e-12);
        assert!((c.mar() - 40.0).abs() < 1e-12);
        assert_eq!(c.total(), 200);
    }

    #[test]
    fn parses_the_skab_layout_and_reports_bad_lines() {
        let text = "datetime;A;B;anomaly;changepoint\n\
                    2020-03-09 10:14:33;1.0;2.0;0.0;0.0\n\
                    2020-03-09 10:14:34;1.5;2.5;1.0;1.0\n";
        let f = parse(text).expect("parse");
        assert_eq!(f.sensors, vec!["A", "B"]);
        assert_eq!(f.rows[1], vec![1.5, 2.5]);
        assert_eq!(f.anomaly, vec![false, true]);
        let bad = "datetime;A;anomaly;changepoint\nx;oops;0;0\n";
        assert!(matches!(parse(bad), Err(Error::Skab { line: 2, .. })));
        assert!(parse("datetime;A\nx;1\n").is_err());
    }
}
