//! Cleaning of irregular readings before resampling: non-finite values, time order, duplicate
//! timestamps and spikes (Hampel filter).
//!
//! Readings arrive as two parallel slices, timestamps `t` (seconds, any origin) and values `x`.
//! [`Cleaner::clean`] applies, in order: the [`NonFinitePolicy`], a stable sort by timestamp, the
//! [`DuplicatePolicy`], then the [`HampelFilter`] on the values, and reports what it changed in a
//! [`CleanReport`]. Each step is also available on its own. Event-time concerns (watermarks,
//! late readings) belong to the windowing service; this module only sees one window's readings.

use crate::{Error, Result};
use std::cmp::Ordering;

/// `Φ⁻¹(3/4)` (`scipy.special.ndtri(0.75)`): the median absolute deviation of a standard normal
/// distribution. `MAD / NORMAL_MAD` estimates σ, as `scipy.stats.median_abs_deviation(x,
/// scale='normal')` does.
pub const NORMAL_MAD: f64 = 0.674_489_750_196_081_7;

/// What to do with readings whose value or timestamp is NaN or infinite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinitePolicy {
    /// Remove the reading (resampling then fills the hole). The default.
    #[default]
    Drop,
    /// Replace a non-finite value by the previous finite value; readings before the first finite
    /// value, and readings with a non-finite timestamp, are dropped.
    HoldLast,
    /// Refuse the window with [`Error::NonFinite`].
    Reject,
}

/// What to keep when several readings share one timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// Keep the first reading received. The default.
    #[default]
    KeepFirst,
    /// Keep the last reading received.
    KeepLast,
    /// Replace them by their mean.
    Mean,
}

/// Parameters of the Hampel filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HampelConfig {
    /// Half-width `k` of the moving window: sample `i` is judged against `x[i−k ..= i+k]`,
    /// clipped to the signal at its ends. At least 1. Default 3.
    pub half_width: usize,
    /// Threshold in robust standard deviations: `x[i]` is a spike when
    /// `|x[i] − median| > n_sigmas · MAD / NORMAL_MAD`. Default 3.
    pub n_sigmas: f64,
    /// Take as the robust standard deviation at least the signal's noise level, not the
    /// moving window's MAD alone: the MAD of its first differences (over their median) /
    /// `NORMAL_MAD` / √2, which a trend, an oscillation slow against the sampling or a step
    /// barely moves (a step changes one difference). The MAD of a few samples of plain noise
    /// is often small: with `k` = 3 and 3 σ the usual filter replaces about 5 % of Gaussian
    /// noise samples (4 windows in 10 of ten samples lose one), which distorts a healthy
    /// signal's statistics; floored, about 1 % (1 window in 10), while a spike several σ of
    /// the noise high is still taken out. Default `false` (the usual definition, MATLAB
    /// `hampel`).
    pub signal_floor: bool,
}

impl Default for HampelConfig {
    fn default() -> Self {
        Self {
            half_width: 3,
            n_sigmas: 3.0,
            signal_floor: false,
        }
    }
}

/// Parameters of [`Cleaner`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CleanConfig {
    /// Non-finite readings.
    pub non_finite: NonFinitePolicy,
    /// Readings sharing a timestamp.
    pub duplicates: DuplicatePolicy,
    /// Spike removal; `None` disables it.
    pub hampel: Option<HampelConfig>,
}

/// What cleaning changed in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Readings dropped or replaced because their value or timestamp was not finite.
    pub non_finite: usize,
    /// Readings that arrived after a reading with a later timestamp (and were moved).
    pub out_of_order: usize,
    /// Readings removed because another one had the same timestamp.
    pub duplicates: usize,
    /// Values replaced by the Hampel filter.
    pub spikes: usize,
}

/// Applies the [`NonFinitePolicy`] in place; returns the number of readings dropped or replaced.
pub fn remove_non_finite(
    t: &mut Vec<f64>,
    x: &mut Vec<f64>,
    policy: NonFinitePolicy,
) -> Result<usize> {
    check_lengths(t, x)?;
    let mut write = 0;
    let mut last: Option<f64> = None;
    let mut changed = 0;
    for read in 0..t.len() {
        let (ti, xi) = (t[read], x[read]);
        if !ti.is_finite() || !xi.is_finite() {
            if policy == NonFinitePolicy::Reject {
                return Err(Error::NonFinite { index: read });
            }
            changed += 1;
            match (policy, last) {
                (NonFinitePolicy::HoldLast, Some(v)) if ti.is_finite() => {
                    t[write] = ti;
                    x[write] = v;
                    write += 1;
                }
                _ => {}
            }
            continue;
        }
        last = Some(xi);
        t[write] = ti;
        x[write] = xi;
        write += 1;
    }
    t.truncate(write);
    x.truncate(write);
    Ok(changed)
}

/// Sorts readings by timestamp, keeping the arrival order of equal timestamps (a stable sort);
/// `pairs` is scratch space reused between calls. Returns the number of readings that arrived
/// after a later one. Timestamps must be finite (see [`remove_non_finite`]).
pub fn sort_by_time(t: &mut [f64], x: &mut [f64], pairs: &mut Vec<(f64, f64)>) -> Result<usize> {
    check_lengths(t, x)?;
    let mut late = 0;
    let mut max = f64::NEG_INFINITY;
    for (i, &ti) in t.iter().enumerate() {
        if !ti.is_finite() {
            return Err(Error::NonFinite { index: i });
        }
        if ti < max {
            late += 1;
        } else {
            max = ti;
        }
    }
    if late == 0 {
        return Ok(0);
    }
    pairs.clear();
    pairs.extend(t.iter().copied().zip(x.iter().copied()));
    pairs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    for (i, (ti, xi)) in pairs.iter().enumerate() {
        t[i] = *ti;
        x[i] = *xi;
    }
    Ok(late)
}

/// Collapses runs of equal timestamps (in sorted readings) according to `policy`; returns the
/// number of readings removed.
pub fn dedup_timestamps(
    t: &mut Vec<f64>,
    x: &mut Vec<f64>,
    policy: DuplicatePolicy,
) -> Result<usize> {
    check_lengths(t, x)?;
    let n = t.len();
    let mut write = 0;
    let mut read = 0;
    while read < n {
        let ti = t[read];
        let mut end = read + 1;
        while end < n && t[end] == ti {
            end += 1;
        }
        let v = match policy {
            DuplicatePolicy::KeepFirst => x[read],
            DuplicatePolicy::KeepLast => x[end - 1],
            DuplicatePolicy::Mean => x[read..end].iter().sum::<f64>() / (end - read) as f64,
        };
        t[write] = ti;
        x[write] = v;
        write += 1;
        read = end;
    }
    t.truncate(write);
    x.truncate(write);
    Ok(n - write)
}

/// Hampel spike filter: a sample further than `n_sigmas` robust standard deviations from the
/// median of its window is replaced by that median. Each sample is judged against the original
/// (unfiltered) values. With a flat window (MAD = 0) any value differing from the median is a
/// spike, as in the usual definition (MATLAB `hampel`).
///
/// Holds its scratch buffers, so filtering a window allocates nothing once warmed up.
#[derive(Clone, Debug)]
pub struct HampelFilter {
    config: HampelConfig,
    original: Vec<f64>,
    window: Vec<f64>,
    /// The signal's first differences, sorted (for `signal_floor`).
    diffs: Vec<f64>,
}

impl HampelFilter {
    /// A filter with `config`; refuses a zero half-width or a negative or non-finite threshold.
    pub fn new(config: HampelConfig) -> Result<Self> {
        if config.half_width == 0 {
            return Err(Error::invalid("Hampel half-width", "must be at least 1"));
        }
        if !(config.n_sigmas.is_finite() && config.n_sigmas >= 0.0) {
            return Err(Error::invalid(
                "Hampel threshold",
                format!("{} is not a finite number ≥ 0", config.n_sigmas),
            ));
        }
        Ok(Self {
            config,
            original: Vec::new(),
            window: Vec::with_capacity(2 * config.half_width + 1),
            diffs: Vec::new(),
        })
    }

    /// The filter's parameters.
    pub fn config(&self) -> HampelConfig {
        self.config
    }

    /// Filters `x` in place; returns the number of values replaced. Values must be finite.
    ///
    /// The window is kept sorted as it slides (one removal and one insertion per sample), so
    /// the median is read off directly and the MAD is found by merging the two sorted runs of
    /// deviations on either side of the median: O(k) per sample, no allocation.
    pub fn apply(&mut self, x: &mut [f64]) -> Result<usize> {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        let k = self.config.half_width;
        let n = x.len();
        self.original.clear();
        self.original.extend_from_slice(x);
        let floor = if self.config.signal_floor && n > 2 {
            self.diffs.clear();
            self.diffs.extend(x.windows(2).map(|w| w[1] - w[0]));
            self.diffs.sort_by(f64::total_cmp);
            median_and_mad(&self.diffs).1 / NORMAL_MAD / std::f64::consts::SQRT_2
        } else {
            0.0
        };
        let sorted = &mut self.window;
        sorted.clear();
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut replaced = 0;
        for (i, xi) in x.iter_mut().enumerate() {
            let (new_lo, new_hi) = (i.saturating_sub(k), (i + k + 1).min(n));
            while hi < new_hi {
                let v = self.original[hi];
                let at = sorted.partition_point(|w| *w < v);
                sorted.insert(at, v);
                hi += 1;
            }
            while lo < new_lo {
                let v = self.original[lo];
                let at = sorted.partition_point(|w| *w < v);
                sorted.remove(at);
                lo += 1;
            }
            let (med, mad) = median_and_mad(sorted);
            let sigma = (mad / NORMAL_MAD).max(floor);
            if (self.original[i] - med).abs() > self.config.n_sigmas * sigma {
                *xi = med;
                replaced += 1;
            }
        }
        Ok(replaced)
    }
}

/// Median and median absolute deviation of a sorted, non-empty window, as NumPy's `median`
/// defines them (mean of the two middle values for an even count).
fn median_and_mad(sorted: &[f64]) -> (f64, f64) {
    let m = sorted.len();
    let med = if m % 2 == 1 {
        sorted[m / 2]
    } else {
        (sorted[m / 2 - 1] + sorted[m / 2]) / 2.0
    };
    // Deviations grow leftwards from `split − 1` and rightwards from `split`; merge the two runs
    // up to the middle rank(s). |w − med| equals med − w exactly for w < med.
    let split = sorted.partition_point(|w| *w < med);
    let (mut l, mut r) = (split, split);
    let mut next = || {
        let left = (l > 0).then(|| med - sorted[l - 1]);
        let right = (r < m).then(|| sorted[r] - med);
        match (left, right) {
            (Some(a), Some(b)) if a <= b => {
                l -= 1;
                a
            }
            (Some(a), None) => {
                l -= 1;
                a
            }
            (_, Some(b)) => {
                r += 1;
                b
            }
            (None, None) => 0.0,
        }
    };
    let mut prev = 0.0;
    for _ in 0..m / 2 {
        prev = next();
    }
    let mid = next();
    let mad = if m % 2 == 1 { mid } else { (prev + mid) / 2.0 };
    (med, mad)
}

/// Runs every cleaning step on a window of readings, with reusable scratch space.
#[derive(Clone, Debug)]
pub struct Cleaner {
    config: CleanConfig,
    hampel: Option<HampelFilter>,
    pairs: Vec<(f64, f64)>,
}

impl Cleaner {
    /// A cleaner for `config`.
    pub fn new(config: CleanConfig) -> Result<Self> {
        Ok(Self {
            config,
            hampel: config.hampel.map(HampelFilter::new).transpose()?,
            pairs: Vec::new(),
        })
    }

    /// The cleaner's parameters.
    pub fn config(&self) -> CleanConfig {
        self.config
    }

    /// Cleans the readings `(t, x)` in place: non-finite policy, stable sort by time, duplicate
    /// policy, Hampel filter.
    pub fn clean(&mut self, t: &mut Vec<f64>, x: &mut Vec<f64>) -> Result<CleanReport> {
        let non_finite = remove_non_finite(t, x, self.config.non_finite)?;
        let out_of_order = sort_by_time(t, x, &mut self.pairs)?;
        let duplicates = dedup_timestamps(t, x, self.config.duplicates)?;
        let spikes = match &mut self.hampel {
            Some(h) => h.apply(x)?,
            None => 0,
        };
        Ok(CleanReport {
            non_finite,
            out_of_order,
            duplicates,
            spikes,
        })
    }
}

fn check_lengths(t: &[f64], x: &[f64]) -> Result<()> {
    if t.len() == x.len() {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            timestamps: t.len(),
            values: x.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_match_numpy_for_odd_and_even_counts() {
        // median([1, 2, 3]) = 2; deviations [1, 0, 1] → 1.
        assert_eq!(median_and_mad(&[1.0, 2.0, 3.0]), (2.0, 1.0));
        // median([1, 2, 3, 4]) = 2.5; deviations [1.5, .5, .5, 1.5] → 1.
        assert_eq!(median_and_mad(&[1.0, 2.0, 3.0, 4.0]), (2.5, 1.0));
        assert_eq!(median_and_mad(&[7.0]), (7.0, 0.0));
        assert_eq!(median_and_mad(&[0.0, 0.0, 0.0, 10.0]), (0.0, 0.0));
        // [-5, 1, 2, 2, 9]: median 2; deviations [7, 1, 0, 0, 7] → 1.
        assert_eq!(median_and_mad(&[-5.0, 1.0, 2.0, 2.0, 9.0]), (2.0, 1.0));
    }

    #[test]
    fn non_finite_policies() {
        let (t0, x0) = (
            vec![0.0, 1.0, 2.0, f64::NAN, 4.0],
            vec![f64::NAN, 1.0, f64::INFINITY, 3.0, 4.0],
        );
        let (mut t, mut x) = (t0.clone(), x0.clone());
        assert_eq!(
            remove_non_finite(&mut t, &mut x, NonFinitePolicy::Drop),
            Ok(3)
        );
        assert_eq!((t, x), (vec![1.0, 4.0], vec![1.0, 4.0]));
        let (mut t, mut x) = (t0.clone(), x0.clone());
        assert_eq!(
            remove_non_finite(&mut t, &mut x, NonFinitePolicy::HoldLast),
            Ok(3)
        );
        assert_eq!((t, x), (vec![1.0, 2.0, 4.0], vec![1.0, 1.0, 4.0]));
        let (mut t, mut x) = (t0, x0);
        assert_eq!(
            remove_non_finite(&mut t, &mut x, NonFinitePolicy::Reject),
            Err(Error::NonFinite { index: 0 })
        );
    }

    #[test]
    fn sorting_is_stable_and_counts_late_readings() {
        let mut t = vec![0.0, 2.0, 1.0, 2.0, 0.5];
        let mut x = vec![0.0, 20.0, 10.0, 21.0, 5.0];
        let late = sort_by_time(&mut t, &mut x, &mut Vec::new()).expect("sorted");
        assert_eq!(late, 2);
        assert_eq!(t, vec![0.0, 0.5, 1.0, 2.0, 2.0]);
        assert_eq!(x, vec![0.0, 5.0, 10.0, 20.0, 21.0]);
    }

    #[test]
    fn duplicate_policies() {
        let base = (vec![0.0, 1.0, 1.0, 1.0, 2.0], vec![0.0, 1.0, 2.0, 6.0, 4.0]);
        for (policy, kept) in [
            (DuplicatePolicy::KeepFirst, 1.0),
            (DuplicatePolicy::KeepLast, 6.0),
            (DuplicatePolicy::Mean, 3.0),
        ] {
            let (mut t, mut x) = base.clone();
            assert_eq!(dedup_timestamps(&mut t, &mut x, policy), Ok(2));
            assert_eq!(t, vec![0.0, 1.0, 2.0]);
            assert_eq!(x, vec![0.0, kept, 4.0]);
        }
    }

    #[test]
    fn hampel_replaces_a_spike_by_the_local_median() {
        let mut x = vec![1.0, 1.1, 0.9, 1.0, 50.0, 1.05, 0.95, 1.0, 1.02];
        let mut h = HampelFilter::new(HampelConfig::default()).expect("valid");
        assert_eq!(h.apply(&mut x), Ok(1));
        assert!((x[4] - 1.0).abs() < 0.06);
        assert_eq!(x[0], 1.0);
    }

    #[test]
    fn hampel_floored_at_the_signal_scale_leaves_plain_noise_alone_and_takes_spikes() {
        // Seeded Gaussian noise (an LCG and Box–Muller), cut into windows of ten samples as a
        // 10 s window of a 1 Hz sensor.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let noise: Vec<f64> = (0..20_000)
            .map(|_| (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos())
            .collect();
        let replaced = |signal_floor: bool| {
            let mut h = HampelFilter::new(HampelConfig {
                signal_floor,
                ..HampelConfig::default()
            })
            .expect("valid");
            noise
                .chunks(10)
                .map(|w| h.apply(&mut w.to_vec()).expect("finite"))
                .sum::<usize>() as f64
                / noise.len() as f64
        };
        let (plain, floored) = (replaced(false), replaced(true));
        assert!(plain > 0.04, "the usual filter: {plain}");
        assert!(floored < 0.015, "floored at the noise level: {floored}");
        let mut h = HampelFilter::new(HampelConfig {
            signal_floor: true,
            ..HampelConfig::default()
        })
        .expect("valid");
        let mut spiked = noise[..10].to_vec();
        spiked[4] = 10.0;
        assert!(h.apply(&mut spiked).expect("finite") >= 1);
        assert!(spiked[4].abs() < 3.0, "{spiked:?}");
        // On a slow oscillation ten times the noise, a spike of eight times the noise at its
        // crest is still taken out (a floor at the whole signal's MAD, about 10, would have let
        // it through).
        let mut wave: Vec<f64> = (0..40)
            .map(|i| 10.0 * (i as f64 / 40.0 * std::f64::consts::TAU).sin() + noise[i])
            .collect();
        let clean_value = wave[10];
        wave[10] += 8.0;
        assert!(h.apply(&mut wave).expect("finite") >= 1);
        assert!((wave[10] - clean_value).abs() < 4.0, "{wave:?}");
    }

    #[test]
    fn hampel_refuses_bad_parameters() {
        let bad = HampelConfig {
            half_width: 0,
            ..HampelConfig::default()
        };
        assert!(HampelFilter::new(bad).is_err());
        let bad = HampelConfig {
            n_sigmas: f64::NAN,
            ..HampelConfig::default()
        };
        assert!(HampelFilter::new(bad).is_err());
    }

    #[test]
    fn cleaner_runs_every_step() {
        let mut t = vec![3.0, 0.0, 1.0, 1.0, 2.0, 4.0, 5.0, 6.0, 7.0];
        let mut x = vec![1.0, 1.0, f64::NAN, 1.0, 1.0, 90.0, 1.0, 1.0, 1.0];
        let mut c = Cleaner::new(CleanConfig {
            hampel: Some(HampelConfig::default()),
            ..CleanConfig::default()
        })
        .expect("valid");
        let r = c.clean(&mut t, &mut x).expect("cleaned");
        assert_eq!(
            r,
            CleanReport {
                non_finite: 1,
                out_of_order: 3,
                duplicates: 0,
                spikes: 1
            }
        );
        assert_eq!(t, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!(x.iter().all(|v| *v == 1.0));
    }
}
