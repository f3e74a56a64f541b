//! A small dense row-major matrix: the training set of every detector.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A dense row-major matrix of finite `f64`, one row per feature vector (window).
///
/// Built through [`Matrix::from_rows`] or [`Matrix::from_vec`], which reject ragged rows and
/// non-finite values, so every detector can trust its input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A matrix from feature vectors (all the same length, all finite, at least one).
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (r, row) in rows.iter().enumerate() {
            if row.len() != cols {
                return Err(Error::RaggedRows {
                    row: r,
                    expected: cols,
                    got: row.len(),
                });
            }
            data.extend_from_slice(row);
        }
        Self::from_vec(rows.len(), cols, data)
    }

    /// A matrix from `rows × cols` values in row-major order.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if rows == 0 {
            return Err(Error::TooFewRows { needed: 1, got: 0 });
        }
        if cols == 0 {
            return Err(Error::Dimension {
                expected: 1,
                got: 0,
            });
        }
        if data.len() != rows * cols {
            return Err(crate::error::invalid(
                "matrix data",
                format!("{} values for {rows} × {cols}", data.len()),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                row: i / cols,
                feature: i % cols,
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// Number of rows (feature vectors).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`. Panics if `i >= rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows in order.
    pub fn iter_rows(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        self.data.chunks_exact(self.cols)
    }

    /// Column `j` as a vector.
    pub fn column(&self, j: usize) -> Vec<f64> {
        self.iter_rows().map(|r| r[j]).collect()
    }

    /// A matrix of the given rows (indices may repeat). `None` when `idx` is empty.
    pub fn select_rows(&self, idx: &[usize]) -> Option<Self> {
        if idx.is_empty() {
            return None;
        }
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Some(Self {
            rows: idx.len(),
            cols: self.cols,
            data,
        })
    }
}

/// Checks a feature vector against the model's dimension and for finite values.
pub(crate) fn check_vector(x: &[f64], expected: usize) -> Result<()> {
    if x.len() != expected {
        return Err(Error::Dimension {
            expected,
            got: x.len(),
        });
    }
    if let Some(feature) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite { row: 0, feature });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ragged_rows_and_non_finite_values() {
        assert!(matches!(
            Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0]]),
            Err(Error::RaggedRows { row: 1, .. })
        ));
        assert!(matches!(
            Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, f64::NAN]]),
            Err(Error::NonFinite { row: 1, feature: 1 })
        ));
        assert!(matches!(
            Matrix::from_rows(&[]),
            Err(Error::TooFewRows { .. })
        ));
    }

    #[test]
    fn rows_and_columns_read_back() {
        let m = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]]).expect("matrix");
        assert_eq!(m.row(1), &[3.0, 4.0]);
        assert_eq!(m.column(0), vec![1.0, 3.0]);
        assert_eq!(
            m.select_rows(&[1, 1]).expect("rows").column(1),
            vec![4.0, 4.0]
        );
    }
}
