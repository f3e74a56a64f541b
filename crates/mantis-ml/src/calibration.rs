//! Raw score → [0, 1] by the empirical CDF of the asset's own baseline scores, with an
//! exponential upper tail for resolution beyond the largest baseline score.
//!
//! Below the tail start (the `1 − tail_fraction` quantile, default the 90th percentile) the
//! calibrated value is the baseline's empirical CDF (mid-ranks, linear between order
//! statistics). Above it, the excesses over the start are modelled as exponential (a
//! generalised Pareto tail with shape 0, whose maximum-likelihood scale is the mean excess):
//! `p(s) = 1 − (1 − p_u)·exp(−(s − u)/β)`. The exponential is the conservative choice with
//! ~40 exceedances: a fitted GPD shape is too noisy at that size. The map is monotone, ≈uniform
//! on the baseline, and strictly increasing in the tail, so a score twice as far beyond the
//! baseline maximum still reads higher.
//!
//! [`Calibrator::surprisal`] gives `−ln(1 − p)` computed without cancellation, which is how the
//! ensemble combines members (a value of 4.6 is "1 baseline window in 100", 6.9 "1 in 1000").

use crate::error::{Error, Result, invalid};
use crate::scaler::quantile_sorted;
use serde::{Deserialize, Serialize};

/// Knots kept at most (order statistics at evenly spaced ranks beyond that).
const MAX_KNOTS: usize = 1024;
/// Exceedances needed to fit the tail.
const MIN_EXCEEDANCES: usize = 5;

/// The exponential upper tail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tail {
    /// Where the tail starts (raw score).
    start: f64,
    /// Calibrated value at `start`.
    p_start: f64,
    /// Mean excess over `start` of the baseline scores above it.
    mean_excess: f64,
}

/// A fitted score calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    knots: Vec<f64>,
    probs: Vec<f64>,
    tail: Option<Tail>,
}

impl Calibrator {
    /// Fits on baseline scores (non-finite ones are ignored; at least one must remain).
    /// `tail_fraction` in [0, 0.5]: the upper fraction modelled by the exponential tail
    /// (0 for a pure empirical CDF that saturates at the baseline maximum).
    pub fn fit(scores: &[f64], tail_fraction: f64) -> Result<Self> {
        if !(0.0..=0.5).contains(&tail_fraction) {
            return Err(invalid("tail_fraction", "must be in [0, 0.5]"));
        }
        let mut s: Vec<f64> = scores.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return Err(Error::TooFewRows { needed: 1, got: 0 });
        }
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let m = n.min(MAX_KNOTS);
        let mut knots = Vec::with_capacity(m);
        let mut probs = Vec::with_capacity(m);
        for k in 0..m {
            let rank = if m == n {
                k
            } else {
                (k as f64 * (n - 1) as f64 / (m - 1) as f64).round() as usize
            };
            knots.push(s[rank]);
            probs.push((rank as f64 + 0.5) / n as f64);
        }
        let mut cal = Self {
            knots,
            probs,
            tail: None,
        };
        if tail_fraction > 0.0 {
            let start = quantile_sorted(&s, 1.0 - tail_fraction);
            let excess: Vec<f64> = s
                .iter()
                .filter(|v| **v > start)
                .map(|v| v - start)
                .collect();
            let mean_excess = excess.iter().sum::<f64>() / excess.len().max(1) as f64;
            if excess.len() >= MIN_EXCEEDANCES && mean_excess > 0.0 {
                let p_start = cal.ecdf(start);
                cal.tail = Some(Tail {
                    start,
                    p_start,
                    mean_excess,
                });
            }
        }
        Ok(cal)
    }

    /// Interpolated empirical CDF, saturating at the extreme knots' mid-ranks.
    fn ecdf(&self, s: f64) -> f64 {
        let k = self.knots.partition_point(|v| *v <= s);
        if k == 0 {
            // Below every baseline score: less anomalous than anything seen.
            return if s < self.knots[0] {
                0.0
            } else {
                self.probs[0]
            };
        }
        let i = k - 1;
        if i + 1 >= self.knots.len() || self.knots[i + 1] <= self.knots[i] {
            return self.probs[i];
        }
        let t = (s - self.knots[i]) / (self.knots[i + 1] - self.knots[i]);
        self.probs[i] + t * (self.probs[i + 1] - self.probs[i])
    }

    /// Calibrated score in [0, 1]: the fraction of baseline scores below `s` (tail-extended).
    /// A NaN is treated as the most anomalous value.
    pub fn calibrate(&self, s: f64) -> f64 {
        if s.is_nan() {
            return 1.0;
        }
        match &self.tail {
            Some(t) if s > t.start => {
                1.0 - (1.0 - t.p_start) * (-(s - t.start) / t.mean_excess).exp()
            }
            _ => self.ecdf(s),
        }
    }

    /// `−ln(1 − calibrate(s))`, computed without cancellation in the tail: how surprising `s`
    /// is on the baseline, in nats. Finite for every finite `s`.
    pub fn surprisal(&self, s: f64) -> f64 {
        match &self.tail {
            Some(t) if s > t.start => -(1.0 - t.p_start).ln() + (s - t.start) / t.mean_excess,
            Some(t) if s.is_nan() => -(1.0 - t.p_start).ln() + 50.0,
            _ => {
                let p = if s.is_nan() { 1.0 } else { self.ecdf(s) };
                // Without a tail the ECDF saturates at the top mid-rank (< 1).
                let top = self.probs.last().copied().unwrap_or(0.5);
                -(1.0 - p.min(top)).ln()
            }
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let ok = !self.knots.is_empty()
            && self.knots.len() == self.probs.len()
            && self.knots.windows(2).all(|w| w[0] <= w[1])
            && self.probs.iter().all(|p| (0.0..1.0).contains(p))
            && self.tail.as_ref().is_none_or(|t| {
                t.mean_excess > 0.0 && t.mean_excess.is_finite() && (0.0..1.0).contains(&t.p_start)
            });
        if ok {
            Ok(())
        } else {
            Err(Error::CorruptModel("calibrator knots or tail".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn tail_keeps_increasing_beyond_the_baseline_maximum() {
        let mut r = Rng::new(1);
        let s: Vec<f64> = (0..500).map(|_| r.normal().abs()).collect();
        let c = Calibrator::fit(&s, 0.1).expect("fit");
        let max = s.iter().copied().fold(f64::MIN, f64::max);
        assert!(c.calibrate(max + 1.0) < c.calibrate(max + 2.0));
        assert!(c.calibrate(max + 2.0) < 1.0);
        assert!(c.surprisal(max + 100.0).is_finite());
        assert!(c.surprisal(max + 100.0) > c.surprisal(max + 10.0));
    }

    #[test]
    fn constant_baseline_is_handled() {
        let c = Calibrator::fit(&[1.0; 20], 0.1).expect("fit");
        assert_eq!(c.calibrate(0.5), 0.0);
        assert!(c.calibrate(1.0) > 0.9);
        assert!(c.calibrate(2.0) >= c.calibrate(1.0));
        assert!(c.surprisal(2.0).is_finite());
    }

    #[test]
    fn rejects_empty_and_bad_tail_fraction() {
        assert!(Calibrator::fit(&[f64::NAN], 0.1).is_err());
        assert!(Calibrator::fit(&[1.0], 0.9).is_err());
    }
}
