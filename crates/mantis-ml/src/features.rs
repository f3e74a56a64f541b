//! Causal rolling-window features over a stream of sensor readings.
//!
//! For each new row of `n` signals, the mean and the standard deviation (population) of each
//! signal over the last `window` rows, the new row included — only past and present rows, never
//! future ones, so a feature vector can be computed the moment its row arrives. Before `window`
//! rows have been seen, the statistics cover the rows seen so far.

use crate::error::{Result, invalid};
use crate::matrix::check_vector;
use std::collections::VecDeque;

/// A causal rolling window producing `[mean₀ … meanₙ₋₁, std₀ … stdₙ₋₁]` per row.
#[derive(Clone, Debug)]
pub struct RollingFeatures {
    n_signals: usize,
    window: usize,
    rows: VecDeque<Vec<f64>>,
}

impl RollingFeatures {
    /// A window of `window` rows (≥ 1) over `n_signals` signals (≥ 1).
    pub fn new(n_signals: usize, window: usize) -> Result<Self> {
        if n_signals == 0 || window == 0 {
            return Err(invalid("window / signals", "must be at least 1"));
        }
        Ok(Self {
            n_signals,
            window,
            rows: VecDeque::with_capacity(window),
        })
    }

    /// Feature names for the given signal names: `{signal}.mean`, then `{signal}.std`.
    pub fn names(signals: &[String]) -> Vec<String> {
        signals
            .iter()
            .map(|s| format!("{s}.mean"))
            .chain(signals.iter().map(|s| format!("{s}.std")))
            .collect()
    }

    /// Number of features per row (`2 × n_signals`).
    pub fn n_features(&self) -> usize {
        2 * self.n_signals
    }

    /// Adds a row and returns the features of the window ending with it.
    pub fn push(&mut self, row: &[f64]) -> Result<Vec<f64>> {
        check_vector(row, self.n_signals)?;
        if self.rows.len() == self.window {
            self.rows.pop_front();
        }
        self.rows.push_back(row.to_vec());
        let n = self.rows.len() as f64;
        let mut out = vec![0.0; 2 * self.n_signals];
        for r in &self.rows {
            for (j, v) in r.iter().enumerate() {
                out[j] += v;
            }
        }
        for m in out.iter_mut().take(self.n_signals) {
            *m /= n;
        }
        for r in &self.rows {
            for (j, v) in r.iter().enumerate() {
                let d = v - out[j];
                out[self.n_signals + j] += d * d;
            }
        }
        for s in out.iter_mut().skip(self.n_signals) {
            *s = (*s / n).sqrt();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_only_the_last_window_rows() {
        let mut f = RollingFeatures::new(1, 3).expect("window");
        assert_eq!(f.push(&[1.0]).expect("push"), vec![1.0, 0.0]);
        f.push(&[2.0]).expect("push");
        f.push(&[3.0]).expect("push");
        let v = f.push(&[10.0]).expect("push"); // window: 2, 3, 10
        assert!((v[0] - 5.0).abs() < 1e-12);
        assert!((v[1] - (38.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(f.push(&[1.0, 2.0]).is_err());
    }
}
