//! The input contract of a model: the JSON sidecar written by `models/training/train_rul.py`
//! beside each ONNX file, and the regime normalisation it describes (mirrors `fit_normaliser`,
//! `assign_regimes`, `normalise` and `last_window` of the pipeline).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, RulError};
use crate::{Cycle, N_SENSORS, N_SETTINGS};

/// The sidecar format this crate reads.
pub const FORMAT: &str = "mantis-rul-onnx/1";

/// The JSON sidecar of a model.
#[derive(Clone, Debug, Deserialize)]
pub struct Sidecar {
    /// [`FORMAT`].
    pub format: String,
    /// Model name (`rul-cmapss-fd001`).
    pub name: String,
    /// File name of the ONNX model, beside the sidecar.
    pub onnx: String,
    /// Hex sha256 of the ONNX file.
    pub onnx_sha256: String,
    /// Architecture label (`cnn`, `lstm`, ...).
    pub arch: String,
    /// Cycles per input window.
    pub window: usize,
    /// Cycles of the early-life baseline (0: none). When set, every input row carries the
    /// normalised sensors and then their differences from the baseline: the mean of the
    /// normalised first `min(baseline, cycles so far)` cycles of the history (the asset's life
    /// since its last failure or replacement), so a prediction reads those first cycles too.
    #[serde(default)]
    pub baseline: usize,
    /// Training label cap (cycles).
    pub label_cap: f64,
    /// Names of the sensors fed to the model, in input order (`s2`, ...).
    pub sensor_columns: Vec<String>,
    /// 0-based indices of those sensors in the 21 C-MAPSS sensors.
    pub sensor_indices: Vec<usize>,
    /// Operating regimes and their normalisation statistics.
    pub regimes: Regimes,
    /// The conformal interval.
    pub interval: Interval,
    /// Provenance (date, data, seeds, split): kept as JSON.
    #[serde(default)]
    pub training: serde_json::Value,
    /// Scores of the pipeline: kept as JSON.
    #[serde(default)]
    pub scores: serde_json::Value,
    /// The fixed reference batch for equivalence tests.
    #[serde(default)]
    pub reference: Option<Reference>,
}

/// Operating regimes: centroids in the settings space, and per-regime sensor statistics.
#[derive(Clone, Debug, Deserialize)]
pub struct Regimes {
    /// One centroid (3 settings) per regime.
    pub centroids: Vec<Vec<f64>>,
    /// `mean[regime][input sensor]`.
    pub mean: Vec<Vec<f64>>,
    /// `std[regime][input sensor]`, all > 0.
    pub std: Vec<Vec<f64>>,
}

/// Split-conformal interval parameters.
#[derive(Clone, Debug, Deserialize)]
pub struct Interval {
    /// Nominal coverage (0.9).
    pub nominal_coverage: f64,
    /// Half-width of the interval (cycles).
    pub q90: f64,
}

/// The fixed reference batch written by the pipeline.
#[derive(Clone, Debug, Deserialize)]
pub struct Reference {
    /// Test units the windows come from.
    pub units: Vec<u32>,
    /// Raw rows (3 settings + 21 sensors), at most `window` per unit, oldest first.
    pub raw_rows: Vec<Vec<Vec<f64>>>,
    /// The normalised input tensor `[batch][window][features]`.
    pub input: Vec<Vec<Vec<f64>>>,
    /// The framework's (Keras) raw outputs.
    pub keras_output: Vec<f64>,
    /// onnxruntime's raw outputs on the exported model.
    pub onnxruntime_output: Vec<f64>,
    /// The pipeline's post-processed prediction for every test engine (last window).
    #[serde(default)]
    pub test_predictions: Vec<f64>,
}

/// Longest early-life baseline a contract may ask for (cycles).
pub const MAX_BASELINE: usize = 1_000;
/// Longest window (rows of history) a model may ask for: the service keeps that many rows per
/// asset and builds a `window × columns` input for every prediction.
pub const MAX_WINDOW: usize = 10_000;

impl Sidecar {
    /// Reads and validates a sidecar.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| RulError::Io {
            path: path.to_owned(),
            source,
        })?;
        let sidecar: Sidecar =
            serde_json::from_str(&text).map_err(|source| RulError::SidecarJson {
                path: path.to_owned(),
                source,
            })?;
        sidecar.validate()?;
        Ok(sidecar)
    }

    /// Number of sensors fed to the model per cycle.
    pub fn n_features(&self) -> usize {
        self.sensor_indices.len()
    }

    /// Number of input values per cycle: the sensors, and their baseline differences when the
    /// contract has a baseline.
    pub fn n_inputs(&self) -> usize {
        self.n_features() * if self.baseline > 0 { 2 } else { 1 }
    }

    /// Checks that `bytes` (the ONNX `file`) are the file the contract names by checksum.
    pub fn verify_onnx(&self, bytes: &[u8], file: &str) -> Result<()> {
        let actual = crate::model::sha256_hex(bytes);
        if actual.eq_ignore_ascii_case(&self.onnx_sha256) {
            Ok(())
        } else {
            Err(RulError::Checksum {
                file: file.to_owned(),
                expected: self.onnx_sha256.clone(),
                actual,
            })
        }
    }

    /// Checks the internal consistency of the contract.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(RulError::Contract(m));
        if self.format != FORMAT {
            return bad(format!("format {:?}, expected {FORMAT:?}", self.format));
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return bad(format!(
                "window of {} rows; it must be in 1..={MAX_WINDOW}",
                self.window
            ));
        }
        if self.baseline > MAX_BASELINE {
            // The service keeps these rows per asset and reads them at every rebuild.
            return bad(format!(
                "baseline of {} cycles; at most {MAX_BASELINE} are supported",
                self.baseline
            ));
        }
        let f = self.sensor_indices.len();
        if f == 0 || f != self.sensor_columns.len() {
            return bad(format!(
                "{f} sensor indices for {} sensor columns",
                self.sensor_columns.len()
            ));
        }
        if let Some(&i) = self.sensor_indices.iter().find(|&&i| i >= N_SENSORS) {
            return bad(format!("sensor index {i} >= {N_SENSORS}"));
        }
        let r = &self.regimes;
        if r.centroids.is_empty() {
            return bad("no regime".into());
        }
        if r.mean.len() != r.centroids.len() || r.std.len() != r.centroids.len() {
            return bad(format!(
                "{} centroids, {} mean rows, {} std rows",
                r.centroids.len(),
                r.mean.len(),
                r.std.len()
            ));
        }
        for (k, c) in r.centroids.iter().enumerate() {
            if c.len() != N_SETTINGS || c.iter().any(|v| !v.is_finite()) {
                return bad(format!("centroid {k} is not {N_SETTINGS} finite settings"));
            }
        }
        for k in 0..r.centroids.len() {
            if r.mean[k].len() != f || r.std[k].len() != f {
                return bad(format!("regime {k}: statistics are not {f} long"));
            }
            if r.mean[k].iter().any(|v| !v.is_finite())
                || r.std[k].iter().any(|v| !(v.is_finite() && *v > 0.0))
            {
                return bad(format!("regime {k}: non-finite mean or non-positive std"));
            }
        }
        let q = self.interval.q90;
        if !(q.is_finite() && q >= 0.0) {
            return bad(format!(
                "interval half-width {q} is not a finite non-negative number"
            ));
        }
        Ok(())
    }

    /// The rules a new contract (an upload) must meet besides [`Sidecar::validate`]: each input
    /// once (one given twice would feed a value as two inputs), and a label cap that is a
    /// positive number of cycles. Not required of a contract stored before them.
    pub fn validate_new(&self) -> Result<()> {
        let bad = |m: String| Err(RulError::Contract(m));
        let f = self.sensor_indices.len();
        let once = |n: usize, distinct: usize| n == distinct;
        if !once(
            f,
            self.sensor_indices
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        ) || !once(
            f,
            self.sensor_columns
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        ) {
            return bad("a sensor index or column is given twice".into());
        }
        if !(self.label_cap.is_finite() && self.label_cap > 0.0) {
            return bad(format!(
                "label cap {}; it must be a positive number of cycles",
                self.label_cap
            ));
        }
        Ok(())
    }

    /// The normaliser described by this contract.
    pub fn normaliser(&self) -> Normaliser {
        Normaliser {
            window: self.window,
            baseline: self.baseline,
            sensor_indices: self.sensor_indices.clone(),
            centroids: self.regimes.centroids.clone(),
            mean: self.regimes.mean.clone(),
            std: self.regimes.std.clone(),
        }
    }
}

/// Regime assignment and per-regime z-scoring of the kept sensors, windowing with front padding:
/// exactly the pipeline's arithmetic (f64, then rounded to f32).
#[derive(Clone, Debug)]
pub struct Normaliser {
    window: usize,
    baseline: usize,
    sensor_indices: Vec<usize>,
    centroids: Vec<Vec<f64>>,
    mean: Vec<Vec<f64>>,
    std: Vec<Vec<f64>>,
}

impl Normaliser {
    /// Cycles per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Sensors per cycle.
    pub fn n_features(&self) -> usize {
        self.sensor_indices.len()
    }

    /// Cycles of the early-life baseline (0: none).
    pub fn baseline(&self) -> usize {
        self.baseline
    }

    /// Input values per cycle (see [`Sidecar::n_inputs`]).
    pub fn n_inputs(&self) -> usize {
        self.n_features() * if self.baseline > 0 { 2 } else { 1 }
    }

    /// The nearest regime centroid (squared Euclidean distance on the raw settings; the first on
    /// ties, like `numpy.argmin`).
    pub fn regime(&self, settings: &[f64; N_SETTINGS]) -> usize {
        let mut best = (0, f64::INFINITY);
        for (k, c) in self.centroids.iter().enumerate() {
            let d = c
                .iter()
                .zip(settings)
                .map(|(c, s)| (s - c) * (s - c))
                .fold(0.0, |acc, v| acc + v);
            if d < best.1 {
                best = (k, d);
            }
        }
        best.0
    }

    /// The normalised sensors of one cycle, appended to `out`.
    fn push_normalised(&self, cycle: &Cycle, out: &mut Vec<f32>) {
        let r = self.regime(&cycle.settings);
        for (j, &i) in self.sensor_indices.iter().enumerate() {
            out.push(((cycle.sensors[i] - self.mean[r][j]) / self.std[r][j]) as f32);
        }
    }

    /// The input row of one cycle, appended to `out`: its normalised sensors, then (with a
    /// baseline) their differences from `base`.
    fn push_cycle(&self, cycle: &Cycle, base: &[f32], out: &mut Vec<f32>) {
        let at = out.len();
        self.push_normalised(cycle, out);
        if self.baseline > 0 {
            for j in 0..self.n_features() {
                out.push(out[at + j] - base[j]);
            }
        }
    }

    /// Fails on the first non-finite setting or used sensor of `cycles` (`offset`: the index of
    /// `cycles[0]` in the caller's slice).
    fn check_finite(&self, cycles: &[Cycle], offset: usize) -> Result<()> {
        for (k, c) in cycles.iter().enumerate() {
            if c.settings.iter().any(|v| !v.is_finite()) {
                return Err(RulError::NonFinite {
                    cycle: offset + k,
                    what: "setting",
                });
            }
            if self
                .sensor_indices
                .iter()
                .any(|&i| !c.sensors[i].is_finite())
            {
                return Err(RulError::NonFinite {
                    cycle: offset + k,
                    what: "sensor",
                });
            }
        }
        Ok(())
    }

    /// The early-life baseline of `cycles`: the mean of the normalised first
    /// `min(baseline, len)` cycles, summed in order and divided in f32 (numpy's `mean(0)` of
    /// the pipeline's float32 rows, bit for bit).
    fn base(&self, cycles: &[Cycle]) -> Vec<f32> {
        let f = self.n_features();
        if self.baseline == 0 {
            return Vec::new();
        }
        let early = &cycles[..cycles.len().min(self.baseline)];
        let mut sum = vec![0.0f32; f];
        let mut row = Vec::with_capacity(f);
        for c in early {
            row.clear();
            self.push_normalised(c, &mut row);
            for (s, v) in sum.iter_mut().zip(&row) {
                *s += *v;
            }
        }
        let n = early.len().max(1) as f32;
        sum.iter().map(|s| s / n).collect()
    }

    /// The model input for the LAST window of `cycles` (oldest first, the history of the
    /// asset's current life), `window × inputs` row-major; fewer cycles than the window are
    /// front-padded by repeating the first cycle. Only the last `window` cycles are read, and
    /// the first `baseline` when the contract has a baseline.
    pub fn last_window(&self, cycles: &[Cycle]) -> Result<Vec<f32>> {
        let first = cycles.first().ok_or(RulError::NoCycles)?;
        let start = cycles.len().saturating_sub(self.window);
        let tail = &cycles[start..];
        self.check_finite(&cycles[..cycles.len().min(self.baseline)], 0)?;
        self.check_finite(tail, start)?;
        let base = self.base(cycles);
        let mut out = Vec::with_capacity(self.window * self.n_inputs());
        for _ in tail.len()..self.window {
            self.push_cycle(first, &base, &mut out);
        }
        for c in tail {
            self.push_cycle(c, &base, &mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(
        centroids: serde_json::Value,
        mean: serde_json::Value,
        std: serde_json::Value,
    ) -> Sidecar {
        let v = serde_json::json!({
            "format": FORMAT, "name": "t", "onnx": "t.onnx", "onnx_sha256": "", "arch": "lstm",
            "window": 3, "label_cap": 125.0, "sensor_columns": ["s2", "s4"], "sensor_indices": [1, 3],
            "regimes": {"centroids": centroids, "mean": mean, "std": std},
            "interval": {"nominal_coverage": 0.9, "q90": 20.0},
        });
        serde_json::from_value(v).expect("sidecar json")
    }

    fn cycle(settings: [f64; 3], s2: f64, s4: f64) -> Cycle {
        let mut sensors = [0.0; N_SENSORS];
        sensors[1] = s2;
        sensors[3] = s4;
        Cycle { settings, sensors }
    }

    #[test]
    fn several_regimes_are_normalised_with_their_own_statistics() {
        let s = sidecar(
            serde_json::json!([[0.0, 0.0, 100.0], [42.0, 0.84, 100.0], [25.0, 0.62, 60.0]]),
            serde_json::json!([[10.0, 20.0], [1.0, 2.0], [100.0, 200.0]]),
            serde_json::json!([[2.0, 4.0], [0.5, 0.25], [10.0, 20.0]]),
        );
        s.validate().expect("valid");
        let n = s.normaliser();
        assert_eq!(n.regime(&[0.001, 0.0002, 100.0]), 0);
        assert_eq!(n.regime(&[41.99, 0.84, 100.0]), 1);
        assert_eq!(n.regime(&[25.0, 0.62, 60.0]), 2);
        let cycles = [
            cycle([42.0, 0.84, 100.0], 2.0, 3.0),
            cycle([0.0, 0.0, 100.0], 12.0, 16.0),
        ];
        let x = n.last_window(&cycles).expect("window");
        // window 3: the first cycle is repeated once at the front.
        assert_eq!(x, vec![2.0, 4.0, 2.0, 4.0, 1.0, -1.0]);
    }

    #[test]
    fn a_baseline_appends_each_sensors_difference_from_the_first_cycles() {
        let mut s = sidecar(
            serde_json::json!([[0.0, 0.0, 100.0]]),
            serde_json::json!([[10.0, 20.0]]),
            serde_json::json!([[2.0, 4.0]]),
        );
        s.baseline = 2;
        s.validate().expect("valid");
        assert_eq!(s.n_inputs(), 4);
        let n = s.normaliser();
        let at = |s2, s4| cycle([0.0, 0.0, 100.0], s2, s4);
        // z: s2 1, 2, 3, 4; s4 1, 2, 0, -1. Baseline: the mean of the first two (1.5, 1.5).
        let cycles = [
            at(12.0, 24.0),
            at(14.0, 28.0),
            at(16.0, 20.0),
            at(18.0, 16.0),
        ];
        let x = n.last_window(&cycles).expect("window");
        assert_eq!(
            x,
            vec![
                2.0, 2.0, 0.5, 0.5, 3.0, 0.0, 1.5, -1.5, 4.0, -1.0, 2.5, -2.5
            ]
        );
        // One cycle: it is its own baseline, and pads the window.
        let x = n.last_window(&cycles[..1]).expect("window");
        assert_eq!(x, [1.0, 1.0, 0.0, 0.0].repeat(3));
        // A non-finite value among the baseline's cycles is refused, though outside the window.
        let mut bad = cycles.to_vec();
        bad.extend([at(18.0, 16.0), at(18.0, 16.0)]);
        bad[0].sensors[1] = f64::NAN;
        assert!(n.last_window(&bad).is_err());
    }

    #[test]
    fn inconsistent_contracts_are_rejected() {
        let one = serde_json::json!([[0.0, 0.0, 100.0]]);
        let bad_std = sidecar(
            one.clone(),
            serde_json::json!([[0.0, 0.0]]),
            serde_json::json!([[1.0, 0.0]]),
        );
        assert!(bad_std.validate().is_err());
        let mut long_baseline = sidecar(
            one.clone(),
            serde_json::json!([[0.0, 0.0]]),
            serde_json::json!([[1.0, 1.0]]),
        );
        long_baseline.baseline = MAX_BASELINE + 1;
        assert!(long_baseline.validate().is_err());
        long_baseline.baseline = MAX_BASELINE;
        assert!(long_baseline.validate().is_ok());
        // A window the service could not hold per asset (or allocate per prediction).
        long_baseline.window = MAX_WINDOW + 1;
        assert!(long_baseline.validate().is_err());
        long_baseline.window = MAX_WINDOW;
        assert!(long_baseline.validate().is_ok());
        let short = sidecar(
            one.clone(),
            serde_json::json!([[0.0]]),
            serde_json::json!([[1.0]]),
        );
        assert!(short.validate().is_err());
        let mut bad_index = sidecar(
            one,
            serde_json::json!([[0.0, 0.0]]),
            serde_json::json!([[1.0, 1.0]]),
        );
        assert!(bad_index.validate().is_ok());
        bad_index.sensor_indices[1] = 21;
        assert!(bad_index.validate().is_err());
        // A new contract with an input given twice, by index or by column (one stored before
        // the rule still loads).
        bad_index.sensor_indices[1] = 3;
        assert!(bad_index.validate_new().is_ok());
        bad_index.sensor_indices[1] = bad_index.sensor_indices[0];
        assert!(bad_index.validate().is_ok() && bad_index.validate_new().is_err());
        bad_index.sensor_indices[1] = 3;
        bad_index.sensor_columns[1] = bad_index.sensor_columns[0].clone();
        assert!(bad_index.validate_new().is_err());
        bad_index.sensor_columns[1] = "s4".into();
        assert!(bad_index.validate_new().is_ok());
        // A label cap that is no number of cycles.
        for cap in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            bad_index.label_cap = cap;
            assert!(bad_index.validate_new().is_err(), "{cap}");
        }
    }
}
