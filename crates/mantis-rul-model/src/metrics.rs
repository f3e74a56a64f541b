//! Benchmark metrics of the C-MAPSS protocol.

/// Root-mean-square error. `NaN` for empty input.
pub fn rmse(pred: &[f64], truth: &[f64]) -> f64 {
    let n = pred.len().min(truth.len());
    let sse: f64 = pred.iter().zip(truth).map(|(p, t)| (p - t) * (p - t)).sum();
    (sse / n as f64).sqrt()
}

/// PHM08 score: `Σ exp(−d/13) − 1` for `d < 0`, `exp(d/10) − 1` for `d ≥ 0`, `d = pred − truth`
/// (late predictions cost more than early ones).
pub fn phm08(pred: &[f64], truth: &[f64]) -> f64 {
    pred.iter()
        .zip(truth)
        .map(|(p, t)| {
            let d = p - t;
            if d < 0.0 {
                (-d / 13.0).exp() - 1.0
            } else {
                (d / 10.0).exp() - 1.0
            }
        })
        .sum()
}

/// Fraction of `truth` inside `[lower, upper]`. `NaN` for empty input.
pub fn coverage(lower: &[f64], upper: &[f64], truth: &[f64]) -> f64 {
    let n = truth.len().min(lower.len()).min(upper.len());
    let inside = truth
        .iter()
        .zip(lower.iter().zip(upper))
        .filter(|(t, (l, u))| *l <= *t && *t <= *u)
        .count();
    inside as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let truth = [10.0, 20.0];
        let pred = [13.0, 16.0];
        assert!((rmse(&pred, &truth) - (12.5_f64).sqrt()).abs() < 1e-12);
        let s = (0.3_f64).exp() - 1.0 + (4.0_f64 / 13.0).exp() - 1.0;
        assert!((phm08(&pred, &truth) - s).abs() < 1e-12);
        assert_eq!(coverage(&[9.0, 0.0], &[11.0, 19.0], &truth), 0.5);
    }
}
