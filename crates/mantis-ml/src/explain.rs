//! Explanations: which features (and so which sensors) made a score high.

use serde::{Deserialize, Serialize};

/// One feature's part in an anomaly score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Index of the feature in the feature vector.
    pub feature: usize,
    /// Its name (as given when the model was fitted; `f{index}` otherwise).
    pub name: String,
    /// Share of the total, in [0, 1]; the shares of all features sum to 1.
    pub share: f64,
}

/// Turns non-negative per-feature contributions into shares, largest first, `top` of them.
/// Non-finite or negative values count as 0; all zeros give equal shares.
pub fn rank(contributions: &[f64], names: &[String], top: usize) -> Vec<Contribution> {
    let clean: Vec<f64> = contributions
        .iter()
        .map(|c| if c.is_finite() && *c > 0.0 { *c } else { 0.0 })
        .collect();
    let total: f64 = clean.iter().sum();
    let n = clean.len().max(1) as f64;
    let mut out: Vec<Contribution> = clean
        .iter()
        .enumerate()
        .map(|(i, c)| Contribution {
            feature: i,
            name: names.get(i).cloned().unwrap_or_else(|| format!("f{i}")),
            share: if total > 0.0 { c / total } else { 1.0 / n },
        })
        .collect();
    // Stable on ties: lower index first.
    out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.feature.cmp(&b.feature)));
    out.truncate(top);
    out
}

/// Normalises contributions to shares summing to 1 (all zeros stay zeros).
pub(crate) fn normalise(c: &[f64]) -> Vec<f64> {
    let clean = c
        .iter()
        .map(|v| if v.is_finite() && *v > 0.0 { *v } else { 0.0 });
    let total: f64 = clean.clone().sum();
    if total > 0.0 {
        clean.map(|v| v / total).collect()
    } else {
        vec![0.0; c.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_largest_first_with_names() {
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let r = rank(&[1.0, 3.0, f64::NAN], &names, 2);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "b");
        assert!((r[0].share - 0.75).abs() < 1e-12);
        assert_eq!(r[1].feature, 0);
    }
}
