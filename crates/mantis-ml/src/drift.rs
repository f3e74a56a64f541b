//! Feature drift: the Population Stability Index between the baseline and a recent window.
//!
//! Bins are the baseline's deciles per feature (so each holds ≈10 % of the baseline; tied
//! values merge bins); `PSI = Σ (aᵢ − eᵢ)·ln(aᵢ/eᵢ)` over bins, expected shares `e` from the
//! baseline and actual shares `a` from the recent window, both floored at 1e-4 so an empty bin
//! is a large but finite term. Usual reading: < 0.1 stable, 0.1–0.25 moderate, > 0.25 drifted.

use crate::error::{Result, invalid};
use crate::matrix::{Matrix, check_vector};
use crate::scaler::quantile_sorted;
use serde::{Deserialize, Serialize};

const FLOOR: f64 = 1e-4;

/// PSI above which a feature is conventionally considered drifted.
pub const PSI_DRIFTED: f64 = 0.25;

/// The baseline distribution of each feature, binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    /// Interior bin edges per feature: `v` falls in bin `#{edges e : e < v}`.
    edges: Vec<Vec<f64>>,
    /// Baseline share of each bin per feature.
    expected: Vec<Vec<f64>>,
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
        Ok(Self { edges, expected })
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
        Ok((0..self.n_features())
            .map(|j| {
                let e = &self.expected[j];
                let mut counts = vec![0.0; e.len()];
                for row in recent.iter_rows() {
                    counts[bin(&self.edges[j], row[j])] += 1.0;
                }
                counts
                    .iter()
                    .zip(e)
                    .map(|(c, e)| {
                        let a = (c / n).max(FLOOR);
                        let e = e.max(FLOOR);
                        (a - e) * (a / e).ln()
                    })
                    .sum()
            })
            .collect())
    }
}
