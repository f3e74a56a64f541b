//! Time-domain statistics and features of a window.
//!
//! Moments are computed in two passes (sum, then central moments), the textbook definition that
//! `scipy.stats` uses (`bias=True`), with four independent accumulators per pass so that the
//! loops pipeline well and rounding grows more slowly than with one running sum.

/// Count, mean, population standard deviation, min and max of a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowStats {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl WindowStats {
    /// Statistics of `samples`; `None` when empty or when a sample is not finite.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let m = Moments::of(samples)?;
        Some(Self {
            count: samples.len(),
            mean: m.mean,
            std: m.variance().sqrt(),
            min: m.min,
            max: m.max,
        })
    }
}

/// Sums gathered over a window in two passes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moments {
    pub(crate) n: f64,
    pub(crate) mean: f64,
    /// Σ(x − mean)², Σ(x − mean)³, Σ(x − mean)⁴.
    m2: f64,
    m3: f64,
    m4: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    sum_sq: f64,
    max_abs: f64,
    sum_abs: f64,
    sum_sqrt_abs: f64,
    zero_crossings: usize,
    mean_crossings: usize,
}

impl Moments {
    /// `None` when `samples` is empty or holds a non-finite value.
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        let n = samples.len();
        if n == 0 {
            return None;
        }
        // Pass 1: sums and extremes, in four lanes written out plainly (compare-and-select
        // rather than f64::min) so that the loop vectorises. A non-finite sample makes Σx²
        // non-finite, so finiteness is checked once afterwards.
        let mut sum = [0.0f64; 4];
        let mut sum_sq = [0.0f64; 4];
        let mut sum_abs = [0.0f64; 4];
        let mut sum_sqrt_abs = [0.0f64; 4];
        let mut lo = [f64::INFINITY; 4];
        let mut hi = [f64::NEG_INFINITY; 4];
        let mut chunks = samples.chunks_exact(4);
        for c in &mut chunks {
            let c: &[f64; 4] = match c.try_into() {
                Ok(c) => c,
                Err(_) => continue,
            };
            let a = c.map(f64::abs);
            let r = a.map(f64::sqrt);
            for l in 0..4 {
                sum[l] += c[l];
                sum_sq[l] += c[l] * c[l];
                sum_abs[l] += a[l];
                sum_sqrt_abs[l] += r[l];
                lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
                hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
            }
        }
        for &x in chunks.remainder() {
            sum[0] += x;
            sum_sq[0] += x * x;
            sum_abs[0] += x.abs();
            sum_sqrt_abs[0] += x.abs().sqrt();
            lo[0] = if x < lo[0] { x } else { lo[0] };
            hi[0] = if x > hi[0] { x } else { hi[0] };
        }
        let squares = (sum_sq[0] + sum_sq[1]) + (sum_sq[2] + sum_sq[3]);
        if !squares.is_finite() && samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let min = lo.iter().copied().fold(f64::INFINITY, f64::min);
        let max = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let max_abs = max.abs().max(min.abs());
        let total = |v: [f64; 4]| (v[0] + v[1]) + (v[2] + v[3]);
        let nf = n as f64;
        let mean = total(sum) / nf;

        // Pass 2: central moments, and crossings of zero and of the mean.
        let mut m2 = [0.0f64; 4];
        let mut m3 = [0.0f64; 4];
        let mut m4 = [0.0f64; 4];
        let mut zero_crossings = 0usize;
        let mut mean_crossings = 0usize;
        let mut above_zero = samples[0] > 0.0;
        let mut above_mean = samples[0] > mean;
        let mut central = |l: usize, x: f64| {
            let d = x - mean;
            let d2 = d * d;
            m2[l] += d2;
            m3[l] += d2 * d;
            m4[l] += d2 * d2;
            let (z, m) = (x > 0.0, x > mean);
            zero_crossings += usize::from(z != above_zero);
            mean_crossings += usize::from(m != above_mean);
            above_zero = z;
            above_mean = m;
        };
        let mut chunks = samples.chunks_exact(4);
        for c in &mut chunks {
            for (l, x) in c.iter().enumerate() {
                central(l, *x);
            }
        }
        for &x in chunks.remainder() {
            central(0, x);
        }
        Some(Moments {
            n: nf,
            mean,
            m2: total(m2),
            m3: total(m3),
            m4: total(m4),
            min,
            max,
            sum_sq: total(sum_sq),
            max_abs,
            sum_abs: total(sum_abs),
            sum_sqrt_abs: total(sum_sqrt_abs),
            zero_crossings,
            mean_crossings,
        })
    }

    /// Population variance.
    pub(crate) fn variance(&self) -> f64 {
        (self.m2 / self.n).max(0.0)
    }
}

/// Time-domain features of a window.
///
/// Definitions (`n` samples, `|x|` the absolute values, all means over the window):
///
/// | field | definition | for a flat / all-zero window |
/// |---|---|---|
/// | `rms` | √mean(x²) | |
/// | `kurtosis` | m4/m2² (Pearson, not excess: 3 for a Gaussian) | 0 |
/// | `skewness` | m3/m2^1.5 | 0 |
/// | `crest_factor` | max\|x\| / rms | 0 when rms = 0 |
/// | `shape_factor` | rms / mean\|x\| | 0 when mean\|x\| = 0 |
/// | `impulse_factor` | max\|x\| / mean\|x\| | 0 when mean\|x\| = 0 |
/// | `clearance_factor` | max\|x\| / mean(√\|x\|)² | 0 when all zero |
/// | `zero_crossing_rate` | tsfresh `number_crossing_m(x, 0) / (n − 1)`: the fraction of consecutive pairs where `x > 0` changes | 0 when n < 2 |
/// | `mean_crossing_rate` | the same with the window mean instead of 0 (shift-invariant) | 0 when n < 2 |
///
/// m2, m3, m4 are central moments with the 1/n normalisation (`scipy.stats` with `bias=True`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeFeatures {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Root mean square.
    pub rms: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// max − min.
    pub peak_to_peak: f64,
    /// Pearson (not excess) kurtosis, m4/m2²; 3 for a Gaussian; 0 for a constant signal.
    pub kurtosis: f64,
    /// Skewness, m3/m2^1.5; 0 for a constant signal.
    pub skewness: f64,
    /// Peak |x| over RMS; 0 for an all-zero signal.
    pub crest_factor: f64,
    /// RMS over mean |x|; 0 for an all-zero signal.
    pub shape_factor: f64,
    /// Peak |x| over mean |x|; 0 for an all-zero signal.
    pub impulse_factor: f64,
    /// Peak |x| over the squared mean of √|x|; 0 for an all-zero signal.
    pub clearance_factor: f64,
    /// Fraction of consecutive sample pairs across which `x > 0` changes (tsfresh
    /// `number_crossing_m(x, 0)` divided by n − 1).
    pub zero_crossing_rate: f64,
    /// Fraction of consecutive sample pairs across which `x > mean` changes.
    pub mean_crossing_rate: f64,
}

/// Number of features in [`TimeFeatures::named`] (the `time-v1` set).
pub const TIME_V1_LEN: usize = 9;

impl TimeFeatures {
    /// Features of `samples`; `None` when empty or when a sample is not finite.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let m = Moments::of(samples)?;
        let var = m.variance();
        let rms = (m.sum_sq / m.n).sqrt();
        // A (numerically) constant window has no shape: report 0 rather than NaN.
        let flat = var <= f64::EPSILON * m.mean.abs().max(1.0).powi(2);
        let (kurtosis, skewness) = if flat {
            (0.0, 0.0)
        } else {
            let m2 = m.m2 / m.n;
            ((m.m4 / m.n) / (m2 * m2), (m.m3 / m.n) / m2.powf(1.5))
        };
        let mean_abs = m.sum_abs / m.n;
        let mean_sqrt_abs = m.sum_sqrt_abs / m.n;
        let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
        let pairs = samples.len().saturating_sub(1) as f64;
        Some(Self {
            mean: m.mean,
            std: var.sqrt(),
            rms,
            min: m.min,
            max: m.max,
            peak_to_peak: m.max - m.min,
            kurtosis,
            skewness,
            crest_factor: ratio(m.max_abs, rms),
            shape_factor: ratio(rms, mean_abs),
            impulse_factor: ratio(m.max_abs, mean_abs),
            clearance_factor: ratio(m.max_abs, mean_sqrt_abs * mean_sqrt_abs),
            zero_crossing_rate: ratio(m.zero_crossings as f64, pairs),
            mean_crossing_rate: ratio(m.mean_crossings as f64, pairs),
        })
    }

    /// The `time-v1` feature set (version [`crate::FEATURE_SET_VERSION`]) as `(name, value)`
    /// pairs, with the names used on `features.extracted`. The newer shape, impulse, clearance
    /// and crossing features are in [`TimeFeatures::named_all`] and in the `full-v1` set of
    /// [`crate::FeatureExtractor`].
    pub fn named(&self) -> [(&'static str, f64); TIME_V1_LEN] {
        [
            ("mean", self.mean),
            ("std", self.std),
            ("rms", self.rms),
            ("min", self.min),
            ("max", self.max),
            ("peak_to_peak", self.peak_to_peak),
            ("kurtosis", self.kurtosis),
            ("skewness", self.skewness),
            ("crest_factor", self.crest_factor),
        ]
    }

    /// Every time-domain feature as `(name, value)` pairs: the `time-v1` nine followed by the
    /// five added in `full-v1`.
    pub fn named_all(&self) -> [(&'static str, f64); TIME_FEATURE_NAMES.len()] {
        [
            ("mean", self.mean),
            ("std", self.std),
            ("rms", self.rms),
            ("min", self.min),
            ("max", self.max),
            ("peak_to_peak", self.peak_to_peak),
            ("kurtosis", self.kurtosis),
            ("skewness", self.skewness),
            ("crest_factor", self.crest_factor),
            ("shape_factor", self.shape_factor),
            ("impulse_factor", self.impulse_factor),
            ("clearance_factor", self.clearance_factor),
            ("zero_crossing_rate", self.zero_crossing_rate),
            ("mean_crossing_rate", self.mean_crossing_rate),
        ]
    }
}

/// Names of [`TimeFeatures::named_all`], in order.
pub const TIME_FEATURE_NAMES: [&str; 14] = [
    "mean",
    "std",
    "rms",
    "min",
    "max",
    "peak_to_peak",
    "kurtosis",
    "skewness",
    "crest_factor",
    "shape_factor",
    "impulse_factor",
    "clearance_factor",
    "zero_crossing_rate",
    "mean_crossing_rate",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn empty_and_non_finite_windows_have_no_features() {
        assert!(TimeFeatures::of(&[]).is_none());
        assert!(TimeFeatures::of(&[1.0, f64::NAN]).is_none());
        assert!(WindowStats::of(&[f64::INFINITY]).is_none());
        assert!(WindowStats::of(&[1.0, 2.0, 3.0, 4.0, f64::NEG_INFINITY]).is_none());
    }

    #[test]
    fn matches_two_pass_definitions() {
        // Reference values computed with the textbook two-pass formulas (as scipy.stats does
        // with bias=True, fisher=False).
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, -3.0, 0.5];
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let c = |k: i32| x.iter().map(|v| (v - mean).powi(k)).sum::<f64>() / n;
        let f = TimeFeatures::of(&x).expect("features");
        assert!(close(f.mean, mean, 1e-12));
        assert!(close(f.std, c(2).sqrt(), 1e-12));
        assert!(close(f.skewness, c(3) / c(2).powf(1.5), 1e-12));
        assert!(close(f.kurtosis, c(4) / (c(2) * c(2)), 1e-12));
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        assert!(close(f.rms, rms, 1e-12));
        assert!(close(f.crest_factor, 9.0 / rms, 1e-12));
        assert_eq!(f.peak_to_peak, 12.0);
        let mean_abs = x.iter().map(|v| v.abs()).sum::<f64>() / n;
        assert!(close(f.shape_factor, rms / mean_abs, 1e-12));
        assert!(close(f.impulse_factor, 9.0 / mean_abs, 1e-12));
        // Signs: + + + + + + + + − + → two changes of x > 0 over nine pairs.
        assert!(close(f.zero_crossing_rate, 2.0 / 9.0, 1e-15));
    }

    #[test]
    fn sine_has_known_rms_crest_and_kurtosis() {
        let n = 10_000;
        let x: Vec<f64> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * 5.0 * i as f64 / n as f64).sin())
            .collect();
        let f = TimeFeatures::of(&x).expect("features");
        assert!(close(f.rms, 1.0 / 2f64.sqrt(), 1e-6));
        assert!(close(f.crest_factor, 2f64.sqrt(), 1e-4));
        assert!(close(f.kurtosis, 1.5, 1e-4));
        // π/(2√2) for a sine.
        assert!(close(
            f.shape_factor,
            std::f64::consts::PI / 8f64.sqrt(),
            1e-4
        ));
        assert!(f.skewness.abs() < 1e-9);
    }

    #[test]
    fn constant_window_is_flat_not_nan() {
        let f = TimeFeatures::of(&[3.0; 30]).expect("features");
        assert_eq!((f.std, f.kurtosis, f.skewness), (0.0, 0.0, 0.0));
        assert_eq!(f.crest_factor, 1.0);
        assert_eq!((f.shape_factor, f.impulse_factor), (1.0, 1.0));
        let z = TimeFeatures::of(&[0.0; 4]).expect("features");
        assert_eq!(z.crest_factor, 0.0);
        assert_eq!(
            (z.shape_factor, z.impulse_factor, z.clearance_factor),
            (0.0, 0.0, 0.0)
        );
        let one = TimeFeatures::of(&[2.0]).expect("features");
        assert_eq!(one.zero_crossing_rate, 0.0);
    }

    #[test]
    fn shift_and_scale_behave() {
        let x = [1.0, 3.0, 2.0, 8.0, -1.0];
        let shifted: Vec<f64> = x.iter().map(|v| v + 10.0).collect();
        let scaled: Vec<f64> = x.iter().map(|v| v * 3.0).collect();
        let (a, b, c) = (
            TimeFeatures::of(&x).expect("f"),
            TimeFeatures::of(&shifted).expect("f"),
            TimeFeatures::of(&scaled).expect("f"),
        );
        assert!(close(b.std, a.std, 1e-12) && close(b.kurtosis, a.kurtosis, 1e-9));
        assert!(close(c.std, 3.0 * a.std, 1e-12) && close(c.skewness, a.skewness, 1e-9));
        assert!(close(c.rms, 3.0 * a.rms, 1e-12));
    }

    #[test]
    fn window_stats() {
        let s = WindowStats::of(&[1.0, 2.0, 3.0, 4.0]).expect("stats");
        assert_eq!((s.count, s.min, s.max), (4, 1.0, 4.0));
        assert!(close(s.std, 1.25f64.sqrt(), 1e-12));
    }

    #[test]
    fn named_keeps_the_time_v1_set_and_named_all_extends_it() {
        let f = TimeFeatures::of(&[1.0, -1.0, 2.0]).expect("f");
        let v1 = f.named();
        let all = f.named_all();
        assert_eq!(&all[..TIME_V1_LEN], &v1[..]);
        for (i, (name, _)) in all.iter().enumerate() {
            assert_eq!(*name, TIME_FEATURE_NAMES[i]);
        }
    }
}
