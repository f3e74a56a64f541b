//! Feature standardisation fitted on training data, and the order statistics used around it.

use crate::error::Result;
use crate::matrix::{Matrix, check_vector};
use serde::{Deserialize, Serialize};

/// Per-feature `(x − mean) / std`, with mean and std of the training rows.
///
/// A feature that was constant in training gets a small floor instead of a zero scale
/// (`1e-3·|mean| + 1e-9`, as the service's robust baseline does), so a later change of that
/// feature is a large deviation rather than a division by zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Training mean per feature.
    pub mean: Vec<f64>,
    /// Training standard deviation per feature (population, floored).
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Fits mean and standard deviation per column.
    pub fn fit(x: &Matrix) -> Self {
        let n = x.rows() as f64;
        let mut mean = vec![0.0; x.cols()];
        for row in x.iter_rows() {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; x.cols()];
        for row in x.iter_rows() {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| (s / n).sqrt().max(1e-3 * m.abs() + 1e-9))
            .collect();
        Self { mean, scale }
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// Standardises one vector into `out` (cleared first).
    pub fn transform_into(&self, x: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_vector(x, self.n_features())?;
        out.clear();
        out.extend(
            x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .map(|((v, m), s)| (v - m) / s),
        );
        Ok(())
    }

    /// Standardises one vector.
    pub fn transform(&self, x: &[f64]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(x.len());
        self.transform_into(x, &mut out)?;
        Ok(out)
    }

    /// Standardises every row of a matrix.
    pub fn transform_matrix(&self, x: &Matrix) -> Result<Matrix> {
        let mut data = Vec::with_capacity(x.rows() * x.cols());
        let mut buf = Vec::with_capacity(x.cols());
        for row in x.iter_rows() {
            self.transform_into(row, &mut buf)?;
            data.extend_from_slice(&buf);
        }
        Matrix::from_vec(x.rows(), x.cols(), data)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.mean.len() != self.scale.len()
            || self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(crate::Error::CorruptModel(
                "standardizer scales must be positive, one per feature".into(),
            ));
        }
        Ok(())
    }
}

/// Median of a sorted, non-empty slice.
pub(crate) fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Linear-interpolated quantile (`q` in [0, 1]) of a sorted, non-empty slice.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardised_training_data_has_zero_mean_unit_std() {
        let x = Matrix::from_rows(&[vec![1.0, 10.0], vec![2.0, 10.0], vec![3.0, 10.0]])
            .expect("matrix");
        let s = Standardizer::fit(&x);
        let t = s.transform_matrix(&x).expect("transform");
        let c0 = t.column(0);
        assert!((c0.iter().sum::<f64>()).abs() < 1e-12);
        assert!((c0.iter().map(|v| v * v).sum::<f64>() / 3.0 - 1.0).abs() < 1e-12);
        // The constant column gets a floor, not a division by zero.
        assert!(t.column(1).iter().all(|v| *v == 0.0));
        assert!(s.transform(&[2.0, 10.1]).expect("transform")[1] > 5.0);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile_sorted(&v, 0.5), 1.5);
        assert_eq!(median_sorted(&v), 1.5);
        assert_eq!(quantile_sorted(&v, 1.0), 3.0);
    }
}
