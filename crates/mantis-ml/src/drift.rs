//! Feature drift: the Population Stability Index between the baseline and a recent window.
//!
//! Bins are the baseline's deciles per feature (so each holds ≈10 % of the baseline; tied
//! values merge bins); `PSI = Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ)` over bins, expected shares `e` from the
//! baseline and actual shares `a` from the recent window, both smoothed by half a count per
//! bin (`(count + ½)/(n + ½·bins)`, so an empty bin is a finite term that shrinks as the sample
//! grows). Usual reading on large samples: < 0.1 stable, 0.1–0.25 moderate, > 0.25 drifted.
//!
//! **Small samples.** The PSI of a few windows is large by chance alone: drawn from the very
//! distribution of a 60-window baseline, 10 recent windows give a PSI of about 1 and the
//! largest of 30 features several times that with unsmoothed shares. So "drifted" also needs
//! the PSI to exceed what chance gives at that sample size ([`DriftReference::chance_psi`]):
//! without drift, `PSI ≈ (1/n + 1/N)·χ²(bins − 1)` (the PSI is the symmetrised
//! Kullback–Leibler divergence, whose two-sample statistic is asymptotically χ²), and the bound
//! is its `1 − 0.001/features` quantile, so that no feature of a stable sensor is called
//! drifted more often than once in a thousand checks.

use crate::error::{Result, invalid};
use crate::matrix::{Matrix, check_vector};
use crate::scaler::quantile_sorted;
use serde::{Deserialize, Serialize};

const FLOOR: f64 = 1e-4;
/// Counts added to every bin (Jeffreys).
const PSEUDO_COUNT: f64 = 0.5;
/// Chance of calling some feature of a stable sensor drifted, per check.
const FALSE_DRIFT: f64 = 1e-3;

/// PSI above which a feature is conventionally considered drifted (on large samples; see
/// [`DriftReference::drifted`]).
pub const PSI_DRIFTED: f64 = 0.25;

/// The baseline distribution of each feature, binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    /// Interior bin edges per feature: `v` falls in bin `#{edges e : e < v}`.
    edges: Vec<Vec<f64>>,
    /// Baseline share of each bin per feature.
    expected: Vec<Vec<f64>>,
    /// Rows of the baseline (0 in references saved before it was recorded: no smoothing of
    /// the expected shares and no baseline term in the chance level).
    #[serde(default)]
    baseline_rows: usize,
}

fn bin(edges: &[f64], v: f64) -> usize {
    edges.partition_point(|e| *e < v)
}

impl DriftReference {
    /// Bins each feature of the baseline into (up to) `bins` quantile bins (2..=100).
    pub fn fit(baseline: &Matrix, bins: usize) -> Result<Self> {
        if !(2..=100).contains(&bins) {
            return Err(invalid("bins", "must be in 2..=100"));
        }
        let mut edges = Vec::with_capacity(baseline.cols());
        let mut expected = Vec::with_capacity(baseline.cols());
        for j in 0..baseline.cols() {
            let mut v = baseline.column(j);
            v.sort_by(f64::total_cmp);
            let mut e: Vec<f64> = (1..bins)
                .map(|k| quantile_sorted(&v, k as f64 / bins as f64))
                .collect();
            e.dedup();
            let mut counts = vec![0.0; e.len() + 1];
            for x in &v {
                counts[bin(&e, *x)] += 1.0;
            }
            let n = v.len() as f64;
            expected.push(counts.iter().map(|c| c / n).collect());
            edges.push(e);
        }
        Ok(Self {
            edges,
            expected,
            baseline_rows: baseline.rows(),
        })
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.edges.len()
    }

    /// PSI of each feature of the recent feature vectors against the baseline.
    pub fn psi(&self, recent: &Matrix) -> Result<Vec<f64>> {
        if let Some(row) = recent.iter_rows().next() {
            check_vector(row, self.n_features())?;
        }
        let n = recent.rows() as f64;
        let big_n = self.baseline_rows as f64;
        Ok((0..self.n_features())
            .map(|j| {
                let e = &self.expected[j];
                let bins = e.len() as f64;
                let mut counts = vec![0.0; e.len()];
                for row in recent.iter_rows() {
                    counts[bin(&self.edges[j], row[j])] += 1.0;
                }
                counts
                    .iter()
                    .zip(e)
                    .map(|(c, e)| {
                        let a = (c + PSEUDO_COUNT) / (n + PSEUDO_COUNT * bins);
                        let e = if self.baseline_rows > 0 {
                            (e * big_n + PSEUDO_COUNT) / (big_n + PSEUDO_COUNT * bins)
                        } else {
                            e.max(FLOOR)
                        };
                        (a - e) * (a / e).ln()
                    })
                    .sum()
            })
            .collect())
    }

    /// The PSI that `recent_rows` windows drawn from the baseline's own distribution exceed
    /// by chance, on any of the features, about once in a thousand checks (see the module
    /// documentation). Infinite for no rows.
    pub fn chance_psi(&self, recent_rows: usize) -> f64 {
        if recent_rows == 0 {
            return f64::INFINITY;
        }
        let bins = self.expected.iter().map(Vec::len).max().unwrap_or(2).max(2);
        let features = self.n_features().max(1) as f64;
        let inv_n = 1.0 / recent_rows as f64
            + if self.baseline_rows > 0 {
                1.0 / self.baseline_rows as f64
            } else {
                0.0
            };
        inv_n * chi2_upper_quantile((bins - 1) as f64, FALSE_DRIFT / features)
    }

    /// Whether a feature's `psi` over `recent_rows` windows is drift: above the conventional
    /// [`PSI_DRIFTED`] and above what chance gives at that sample size.
    pub fn drifted(&self, psi: f64, recent_rows: usize) -> bool {
        psi > PSI_DRIFTED.max(self.chance_psi(recent_rows))
    }
}

/// The value a χ² variable with `k` degrees of freedom exceeds with probability `p`
/// (Wilson–Hilferty; within about 2 % of the exact quantile for k ≥ 3 and p ≥ 1e-6).
fn chi2_upper_quantile(k: f64, p: f64) -> f64 {
    let z = normal_upper_quantile(p);
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + z * h.sqrt()).powi(3).max(0.0)
}

/// The value a standard normal variable exceeds with probability `p` in (0, 0.5]
/// (Abramowitz & Stegun 26.2.23, absolute error < 4.5e-4).
fn normal_upper_quantile(p: f64) -> f64 {
    let p = p.clamp(f64::MIN_POSITIVE, 0.5);
    let t = (-2.0 * p.ln()).sqrt();
    t - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
        / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_quantiles_match_the_tables() {
        // scipy.stats.chi2.isf(p, k)
        for (k, p, want) in [
            (9.0, 0.05, 16.918_977_604_620_45),
            (9.0, 0.001, 27.877_164_871_256_57),
            (9.0, 1e-3 / 30.0, 36.423_998_245_694_9),
            (4.0, 0.01, 13.276_704_135_987_62),
        ] {
            let got = chi2_upper_quantile(k, p);
            assert!(
                (got - want).abs() / want < 0.02,
                "k {k} p {p}: {got} vs {want}"
            );
        }
    }
}
