//! The served model: ONNX through tract, with the sidecar's contract and conformal interval.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::Cycle;
use crate::contract::{Normaliser, Sidecar};
use crate::error::{Result, RulError};

type Plan = Arc<TypedRunnableModel>;

/// A remaining-useful-life prediction, in cycles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RulPrediction {
    /// Point prediction (`max(model output, 0)`).
    pub rul: f64,
    /// Lower bound of the conformal interval (`max(rul - q, 0)`).
    pub lower: f64,
    /// Upper bound of the conformal interval (`rul + q`).
    pub upper: f64,
}

/// A deep RUL model loaded from its ONNX file and JSON sidecar.
#[derive(Clone)]
pub struct RulModel {
    sidecar: Sidecar,
    normaliser: Normaliser,
    single: Plan,
    chunk: Plan,
}

/// Batch size of the batch plan: larger batches run in chunks of this many windows.
pub const CHUNK: usize = 64;

impl std::fmt::Debug for RulModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulModel")
            .field("name", &self.sidecar.name)
            .field("arch", &self.sidecar.arch)
            .field("window", &self.sidecar.window)
            .field("features", &self.sidecar.n_inputs())
            .finish_non_exhaustive()
    }
}

/// The hex sha256 of an ONNX file, as a sidecar's `onnx_sha256` gives it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RulModel {
    /// Loads `<dir>/<name>.json` and the ONNX file it names (beside it).
    pub fn load_named(dir: &Path, name: &str) -> Result<Self> {
        Self::load(&dir.join(format!("{name}.json")))
    }

    /// Loads a model from its sidecar path; the ONNX file is the sidecar's `onnx`, beside it.
    /// The file's sha256 must match the sidecar's.
    pub fn load(sidecar_path: &Path) -> Result<Self> {
        let sidecar = Sidecar::load(sidecar_path)?;
        let onnx_path: PathBuf = sidecar_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&sidecar.onnx);
        let bytes = std::fs::read(&onnx_path).map_err(|source| RulError::Io {
            path: onnx_path.clone(),
            source,
        })?;
        sidecar.verify_onnx(&bytes, &onnx_path.display().to_string())?;
        Self::from_parts(sidecar, &bytes)
    }

    /// Builds a model from a validated sidecar and the ONNX bytes.
    pub fn from_parts(sidecar: Sidecar, onnx: &[u8]) -> Result<Self> {
        sidecar.validate()?;
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(onnx))
            .map_err(|e| RulError::onnx("parse", e))?;
        // tract's LSTM needs a concrete batch size (its zero initial state is a constant), so
        // there are two plans: single predictions, and batches in chunks of `CHUNK`.
        let plan_for = |batch: usize| -> Result<Plan> {
            let fact = f32::fact([batch, sidecar.window, sidecar.n_inputs()]);
            model
                .clone()
                .with_input_fact(0, fact.into())
                .map_err(|e| RulError::onnx("input fact", e))?
                .into_optimized()
                .map_err(|e| RulError::onnx("optimise", e))?
                .into_runnable()
                .map_err(|e| RulError::onnx("plan", e))
        };
        let single = plan_for(1)?;
        let chunk = plan_for(CHUNK)?;
        tracing::info!(
            model = %sidecar.name,
            arch = %sidecar.arch,
            window = sidecar.window,
            features = sidecar.n_inputs(),
            regimes = sidecar.regimes.centroids.len(),
            q90 = sidecar.interval.q90,
            "RUL model loaded"
        );
        let normaliser = sidecar.normaliser();
        Ok(Self {
            sidecar,
            normaliser,
            single,
            chunk,
        })
    }

    /// Checks a model before it is accepted (an upload): its contract's stricter rules
    /// ([`Sidecar::validate_new`]); one output per window, finite and within the bound of
    /// [`RulModel::predict`], through both plans; and its sidecar's reference batch reproduced
    /// (within 1e-3) when it has one. A network whose output is of another shape, or that does
    /// not compute what its contract says, is refused when it is uploaded, not found out on
    /// every prediction. (Not run on every load: a version accepted before these checks keeps
    /// serving.)
    pub fn check(&self) -> Result<()> {
        self.sidecar.validate_new()?;
        let per = self.sidecar.window * self.sidecar.n_inputs();
        for batch in [1, 2] {
            for raw in self.run_normalised(batch, vec![0.0; batch * per])? {
                self.finish(raw)
                    .map_err(|e| RulError::Output(format!("on a window of mean values: {e}")))?;
            }
        }
        let Some(reference) = &self.sidecar.reference else {
            return Ok(());
        };
        if reference.input.is_empty() {
            return Ok(());
        }
        let shaped = reference.onnxruntime_output.len() == reference.input.len()
            && reference.input.iter().all(|w| {
                w.len() == self.sidecar.window
                    && w.iter().all(|row| row.len() == self.sidecar.n_inputs())
            });
        if !shaped {
            return Err(RulError::Output(format!(
                "the sidecar's reference batch is not {} windows of {} × {} inputs with one \
                 output each (set `reference` to null to give none)",
                reference.input.len(),
                self.sidecar.window,
                self.sidecar.n_inputs()
            )));
        }
        let mut input = Vec::with_capacity(reference.input.len() * per);
        for window in &reference.input {
            for row in window {
                input.extend(row.iter().map(|v| *v as f32));
            }
        }
        let out = self.run_normalised(reference.input.len(), input)?;
        for (i, (got, want)) in out.iter().zip(&reference.onnxruntime_output).enumerate() {
            if (f64::from(*got) - want).abs() > 1e-3 * want.abs().max(1.0) {
                return Err(RulError::Output(format!(
                    "the model does not reproduce its reference batch: output {i} is {got}, \
                     its sidecar says {want}"
                )));
            }
        }
        Ok(())
    }

    /// The model's contract.
    pub fn sidecar(&self) -> &Sidecar {
        &self.sidecar
    }

    /// The model's normaliser.
    pub fn normaliser(&self) -> &Normaliser {
        &self.normaliser
    }

    /// Runs the network on a normalised batch (`batch × window × features`, row-major): raw outputs.
    pub fn run_normalised(&self, batch: usize, input: Vec<f32>) -> Result<Vec<f32>> {
        let (w, f) = (self.sidecar.window, self.sidecar.n_inputs());
        if batch == 0 {
            return Ok(Vec::new());
        }
        if input.len() != batch * w * f {
            return Err(RulError::Output(format!(
                "input has {} values, expected {batch} × {w} × {f}",
                input.len()
            )));
        }
        if batch == 1 {
            return Self::run_plan(&self.single, 1, w, f, input);
        }
        let per = w * f;
        let mut out = Vec::with_capacity(batch);
        for chunk in input.chunks(CHUNK * per) {
            let n = chunk.len() / per;
            let mut padded = chunk.to_vec();
            // the last chunk is padded with copies of its first window (outputs dropped)
            while padded.len() < CHUNK * per {
                padded.extend_from_within(..per);
            }
            let raw = Self::run_plan(&self.chunk, CHUNK, w, f, padded)?;
            out.extend_from_slice(&raw[..n]);
        }
        Ok(out)
    }

    fn run_plan(
        plan: &Plan,
        batch: usize,
        w: usize,
        f: usize,
        input: Vec<f32>,
    ) -> Result<Vec<f32>> {
        let tensor = tract_ndarray::Array3::from_shape_vec((batch, w, f), input)
            .map_err(|e| RulError::onnx("input tensor", e))?
            .into_tensor();
        let out = plan
            .run(tvec!(tensor.into()))
            .map_err(|e| RulError::onnx("run", e))?;
        let first = out
            .first()
            .ok_or_else(|| RulError::Output("no output".into()))?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(|e| RulError::onnx("output", e))?;
        if view.len() != batch {
            return Err(RulError::Output(format!(
                "output shape {:?} for a batch of {batch}",
                view.shape()
            )));
        }
        Ok(view.iter().copied().collect())
    }

    fn finish(&self, raw: f32) -> Result<RulPrediction> {
        let raw = f64::from(raw);
        if !raw.is_finite() {
            return Err(RulError::Output(format!("non-finite prediction {raw}")));
        }
        // Ten times what it was trained to say at most, either way: beyond, the model is
        // broken, and a number of cycles like 3e38 (or -3e38, read as "due now") must not reach
        // a work order.
        let cap = self.sidecar.label_cap;
        if cap.is_finite() && cap > 0.0 && raw.abs() > 10.0 * cap {
            return Err(RulError::Output(format!(
                "prediction {raw} beyond ten times the label cap ({cap})"
            )));
        }
        let rul = raw.max(0.0);
        let q = self.sidecar.interval.q90;
        Ok(RulPrediction {
            rul,
            lower: (rul - q).max(0.0),
            upper: rul + q,
        })
    }

    /// Predicts the RUL after the last of `cycles` (an engine's history, oldest first; only the
    /// last `window` cycles are used, fewer are front-padded with the first).
    pub fn predict(&self, cycles: &[Cycle]) -> Result<RulPrediction> {
        let x = self.normaliser.last_window(cycles)?;
        let raw = self.run_normalised(1, x)?;
        let p = self.finish(raw.first().copied().unwrap_or(f32::NAN))?;
        tracing::trace!(model = %self.sidecar.name, cycles = cycles.len(), rul = p.rul, "RUL predicted");
        Ok(p)
    }

    /// Predicts one RUL per engine history, in one batch.
    pub fn predict_batch(&self, histories: &[&[Cycle]]) -> Result<Vec<RulPrediction>> {
        let per = self.sidecar.window * self.sidecar.n_inputs();
        let mut x = Vec::with_capacity(histories.len() * per);
        for h in histories {
            x.extend(self.normaliser.last_window(h)?);
        }
        self.run_normalised(histories.len(), x)?
            .into_iter()
            .map(|r| self.finish(r))
            .collect()
    }
}
