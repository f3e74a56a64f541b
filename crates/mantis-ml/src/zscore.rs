//! Robust z-score detector: median and MAD per feature, the service's baseline method.

use crate::detector::{Detector, DetectorKind};
use crate::error::{Error, Result};
use crate::matrix::{Matrix, check_vector};
use crate::scaler::median_sorted;
use serde::{Deserialize, Serialize};

/// MAD × 1.4826 estimates the standard deviation of a Gaussian.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Per-feature robust location and scale; the raw score is the largest |z| over the features.
///
/// Same semantics as `services/anomaly/src/baseline.rs`: scale = max(1.4826·MAD, 0.75·sd,
/// 1e-3·|median| + 1e-9), so that a small MAD found by chance in a short baseline, or a steady
/// feature, does not turn rounding noise into anomalies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustZ {
    /// Median per feature.
    pub median: Vec<f64>,
    /// Robust standard deviation per feature.
    pub scale: Vec<f64>,
}

impl RobustZ {
    /// Fits median and robust scale per feature (at least 3 rows).
    pub fn fit(x: &Matrix) -> Result<Self> {
        if x.rows() < 3 {
            return Err(Error::TooFewRows {
                needed: 3,
                got: x.rows(),
            });
        }
        let mut median = Vec::with_capacity(x.cols());
        let mut scale = Vec::with_capacity(x.cols());
        for j in 0..x.cols() {
            let mut v = x.column(j);
            v.sort_by(f64::total_cmp);
            let med = median_sorted(&v);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
            dev.sort_by(f64::total_cmp);
            let mad = median_sorted(&dev);
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            median.push(med);
            scale.push(
                (MAD_TO_SIGMA * mad)
                    .max(0.75 * sd)
                    .max(1e-3 * med.abs() + 1e-9),
            );
        }
        Ok(Self { median, scale })
    }

    /// Signed robust z-score per feature.
    pub fn z_scores(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_vector(x, self.median.len())?;
        Ok(x.iter()
            .zip(&self.median)
            .zip(&self.scale)
            .map(|((v, m), s)| (v - m) / s)
            .collect())
    }

    /// Loads a model saved by [`Detector::save`].
    pub fn load(bytes: &[u8]) -> Result<Self> {
        let m: Self = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.median.len() != self.scale.len()
            || self.scale.iter().any(|s| !crate::error::positive(*s))
        {
            return Err(Error::CorruptModel(
                "robust z: one positive scale per feature".into(),
            ));
        }
        Ok(())
    }
}

impl Detector for RobustZ {
    fn kind(&self) -> DetectorKind {
        DetectorKind::RobustZ
    }

    fn n_features(&self) -> usize {
        self.median.len()
    }

    fn score(&self, x: &[f64]) -> Result<f64> {
        check_vector(x, self.median.len())?;
        Ok(x.iter()
            .zip(&self.median)
            .zip(&self.scale)
            .map(|((v, m), s)| ((v - m) / s).abs())
            .fold(0.0, f64::max))
    }

    fn contributions(&self, x: &[f64]) -> Result<Vec<f64>> {
        Ok(self.z_scores(x)?.into_iter().map(f64::abs).collect())
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}
