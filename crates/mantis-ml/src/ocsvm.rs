//! One-Class SVM (Schölkopf et al. 2001) with an RBF kernel, trained by SMO.
//!
//! Own implementation rather than `linfa-svm`: the solver is ~100 lines, it keeps the crate
//! free of `ndarray`/`linfa` (build time on a 2-core CI) and lets the model share the crate's
//! JSON format. It solves libsvm's one-class dual
//!
//! ```text
//! min ½ αᵀQα   subject to  0 ≤ αᵢ ≤ 1,  Σαᵢ = ν·l,   Qᵢⱼ = exp(−γ‖zᵢ − zⱼ‖²)
//! ```
//!
//! with libsvm's second-order working-set selection (Fan, Chen & Lin 2005) and its initial
//! point (the first ⌊νl⌋ coefficients at 1), on standardised features (mean/std of the
//! training rows). `γ` defaults to `1 / n_features`, which is scikit-learn's `gamma="scale"` on
//! standardised data, and `ν` to 0.05.
//!
//! Raw score: `ln ρ − ln Σᵢ α̃ᵢ K(zᵢ, z)` with α̃ normalised to sum 1. It is a monotone
//! transform of scikit-learn's `−decision_function` (0 on the boundary, positive outside), but
//! computed by log-sum-exp, so it keeps growing (≈ γ·distance²) far from the data where the
//! kernel sum underflows — which gives the calibration's tail something to resolve.
//!
//! Explanation: with weights `wᵢ ∝ α̃ᵢ K(zᵢ, z)` on the support vectors, feature `j` is credited
//! `γ Σᵢ wᵢ (z_j − zᵢⱼ)²`, its part of the kernel distance to the support that still "sees" z.

use crate::detector::{Detector, DetectorKind};
use crate::error::{Error, Result, invalid};
use crate::matrix::Matrix;
use crate::scaler::Standardizer;
use serde::{Deserialize, Serialize};

/// Training parameters of a [`OneClassSvm`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneClassSvmConfig {
    /// Upper bound on the fraction of training rows outside the boundary. Default 0.05.
    pub nu: f64,
    /// RBF width; `None` for `1 / n_features` (scikit-learn's `"scale"` on standardised data).
    pub gamma: Option<f64>,
    /// Stopping tolerance on the KKT gap. Default 1e-3 (libsvm's).
    pub tolerance: f64,
    /// Cap on SMO iterations. Default 100 000.
    pub max_iterations: usize,
    /// Rows used for training at most (evenly strided subsample above it, which bounds the
    /// kernel matrix at `max_train_rows²` values). Default 2000.
    pub max_train_rows: usize,
}

impl Default for OneClassSvmConfig {
    fn default() -> Self {
        Self {
            nu: 0.05,
            gamma: None,
            tolerance: 1e-3,
            max_iterations: 100_000,
            max_train_rows: 2000,
        }
    }
}

/// A fitted One-Class SVM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneClassSvm {
    scaler: Standardizer,
    gamma: f64,
    /// Support vectors (standardised), row-major, `alpha.len()` rows.
    support: Vec<f64>,
    /// Dual coefficients of the support vectors, normalised to sum 1.
    alpha: Vec<f64>,
    /// Offset, in the same normalisation as `alpha`.
    rho: f64,
    /// SMO iterations used (diagnostic).
    iterations: usize,
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl OneClassSvm {
    /// Fits the boundary around the training rows (at least 2).
    pub fn fit(x: &Matrix, config: &OneClassSvmConfig) -> Result<Self> {
        if !(config.nu > 0.0 && config.nu <= 1.0) {
            return Err(invalid("nu", "must be in (0, 1]"));
        }
        if config.gamma.is_some_and(|g| !(g > 0.0 && g.is_finite())) {
            return Err(invalid("gamma", "must be positive"));
        }
        if x.rows() < 2 {
            return Err(Error::TooFewRows {
                needed: 2,
                got: x.rows(),
            });
        }
        let scaler = Standardizer::fit(x);
        let step = x.rows().div_ceil(config.max_train_rows.max(2));
        let idx: Vec<usize> = (0..x.rows()).step_by(step).collect();
        let z = scaler.transform_matrix(&x.select_rows(&idx).unwrap_or_else(|| x.clone()))?;
        let l = z.rows();
        let gamma = config.gamma.unwrap_or(1.0 / z.cols() as f64);

        let mut k = vec![0.0; l * l];
        for i in 0..l {
            k[i * l + i] = 1.0;
            for j in 0..i {
                let v = (-gamma * sq_dist(z.row(i), z.row(j))).exp();
                k[i * l + j] = v;
                k[j * l + i] = v;
            }
        }
        // libsvm's initial point: the first ⌊νl⌋ at the bound, one fractional, the rest 0.
        let total = config.nu * l as f64;
        let mut alpha = vec![0.0; l];
        let mut left = total;
        for a in alpha.iter_mut() {
            let v = left.min(1.0);
            *a = v;
            left -= v;
            if left <= 0.0 {
                break;
            }
        }
        let mut grad: Vec<f64> = (0..l)
            .map(|t| (0..l).map(|s| k[t * l + s] * alpha[s]).sum())
            .collect();
        const TAU: f64 = 1e-12;
        let mut iterations = 0;
        while iterations < config.max_iterations {
            // i: can grow, smallest gradient.
            let mut i = usize::MAX;
            let mut g_min = f64::INFINITY;
            for t in 0..l {
                if alpha[t] < 1.0 && grad[t] < g_min {
                    g_min = grad[t];
                    i = t;
                }
            }
            // j: can shrink; second-order choice among the violators.
            let mut j = usize::MAX;
            let mut g_max = f64::NEG_INFINITY;
            let mut best = f64::INFINITY;
            for t in 0..l {
                if alpha[t] > 0.0 {
                    g_max = g_max.max(grad[t]);
                    if i != usize::MAX {
                        let b = grad[t] - g_min;
                        if b > 0.0 {
                            let a = (2.0 - 2.0 * k[i * l + t]).max(TAU);
                            let gain = -b * b / a;
                            if gain < best {
                                best = gain;
                                j = t;
                            }
                        }
                    }
                }
            }
            if i == usize::MAX || j == usize::MAX || g_max - g_min < config.tolerance {
                break;
            }
            let a = (2.0 - 2.0 * k[i * l + j]).max(TAU);
            let delta = ((grad[j] - grad[i]) / a).min(1.0 - alpha[i]).min(alpha[j]);
            alpha[i] += delta;
            alpha[j] -= delta;
            for t in 0..l {
                grad[t] += delta * (k[t * l + i] - k[t * l + j]);
            }
            iterations += 1;
        }
        // ρ: mean gradient over the free coefficients, else the middle of the KKT interval.
        let free: Vec<f64> = (0..l)
            .filter(|&t| alpha[t] > 1e-12 && alpha[t] < 1.0 - 1e-12)
            .map(|t| grad[t])
            .collect();
        let rho = if free.is_empty() {
            let ub = (0..l)
                .filter(|&t| alpha[t] <= 1e-12)
                .map(|t| grad[t])
                .fold(f64::INFINITY, f64::min);
            let lb = (0..l)
                .filter(|&t| alpha[t] >= 1.0 - 1e-12)
                .map(|t| grad[t])
                .fold(f64::NEG_INFINITY, f64::max);
            match (ub.is_finite(), lb.is_finite()) {
                (true, true) => (ub + lb) / 2.0,
                (true, false) => ub,
                (false, true) => lb,
                (false, false) => 0.0,
            }
        } else {
            free.iter().sum::<f64>() / free.len() as f64
        };
        let sum: f64 = alpha.iter().sum();
        let mut support = Vec::new();
        let mut coef = Vec::new();
        for (t, a) in alpha.iter().enumerate() {
            if *a > 1e-12 {
                support.extend_from_slice(z.row(t));
                coef.push(a / sum);
            }
        }
        let model = Self {
            scaler,
            gamma,
            support,
            alpha: coef,
            // A non-positive ρ would mean a degenerate solve; the floor keeps `ln ρ` finite.
            rho: (rho / sum).max(1e-300),
            iterations,
        };
        model.validate()?;
        Ok(model)
    }

    /// Loads a model saved by [`Detector::save`].
    pub fn load(bytes: &[u8]) -> Result<Self> {
        let m: Self = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.scaler.validate()?;
        let d = self.scaler.n_features();
        let ok = !self.alpha.is_empty()
            && self.support.len() == self.alpha.len() * d
            && self.alpha.iter().all(|a| *a > 0.0 && a.is_finite())
            && self.gamma > 0.0
            && self.gamma.is_finite()
            && self.rho > 0.0
            && self.rho.is_finite();
        if ok {
            Ok(())
        } else {
            Err(Error::CorruptModel(
                "one-class SVM: support vectors, coefficients, gamma or rho".into(),
            ))
        }
    }

    /// Number of support vectors.
    pub fn n_support(&self) -> usize {
        self.alpha.len()
    }

    /// SMO iterations the fit took.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// `ln α̃ᵢ − γ‖z − zᵢ‖²` per support vector, and their log-sum-exp.
    fn log_terms(&self, z: &[f64]) -> (Vec<f64>, f64) {
        let d = z.len();
        let terms: Vec<f64> = self
            .support
            .chunks_exact(d)
            .zip(&self.alpha)
            .map(|(s, a)| a.ln() - self.gamma * sq_dist(z, s))
            .collect();
        let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln();
        (terms, lse)
    }
}

impl Detector for OneClassSvm {
    fn kind(&self) -> DetectorKind {
        DetectorKind::OneClassSvm
    }

    fn n_features(&self) -> usize {
        self.scaler.n_features()
    }

    fn score(&self, x: &[f64]) -> Result<f64> {
        let z = self.scaler.transform(x)?;
        let d = z.len();
        // Streaming log-sum-exp: one pass, no allocation.
        let (mut m, mut sum) = (f64::NEG_INFINITY, 0.0);
        for (s, a) in self.support.chunks_exact(d).zip(&self.alpha) {
            let t = a.ln() - self.gamma * sq_dist(&z, s);
            if t > m {
                sum = sum * (m - t).exp() + 1.0;
                m = t;
            } else {
                sum += (t - m).exp();
            }
        }
        Ok(self.rho.ln() - (m + sum.ln()))
    }

    fn contributions(&self, x: &[f64]) -> Result<Vec<f64>> {
        let z = self.scaler.transform(x)?;
        let d = z.len();
        let (terms, lse) = self.log_terms(&z);
        let mut c = vec![0.0; d];
        for (s, t) in self.support.chunks_exact(d).zip(&terms) {
            let w = (t - lse).exp();
            for j in 0..d {
                c[j] += self.gamma * w * (z[j] - s[j]) * (z[j] - s[j]);
            }
        }
        Ok(c)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn about_nu_of_the_training_rows_fall_outside() {
        let mut r = Rng::new(5);
        let rows: Vec<Vec<f64>> = (0..300).map(|_| vec![r.normal(), r.normal()]).collect();
        let x = Matrix::from_rows(&rows).expect("matrix");
        let m = OneClassSvm::fit(
            &x,
            &OneClassSvmConfig {
                nu: 0.1,
                ..Default::default()
            },
        )
        .expect("fit");
        let outside = rows
            .iter()
            .filter(|r| m.score(r).expect("score") > 1e-6)
            .count() as f64
            / 300.0;
        // ν bounds the outlier fraction from above and the support fraction from below.
        assert!(outside <= 0.12, "outside {outside}");
        assert!(m.n_support() as f64 >= 0.1 * 300.0 - 1.0);
    }
}
