//! Resampling of irregular readings onto a regular grid at the sensor's nominal rate.
//!
//! The grid is `origin + k / rate` for integers `k` (the origin defaults to the first reading),
//! restricted to `[t_first, t_last]` (with `jitter`, see below: to `[t_first − tol, t_last +
//! tol]`, `tol` = `jitter` periods). Each grid point takes its value from the readings that
//! bracket it, by linear interpolation (as `numpy.interp`) or by holding the previous reading
//! (zero-order hold). Where two consecutive readings are more than `max_gap_s` apart, no value is
//! invented: the grid points strictly between them are skipped, the output is split into
//! [`Segment`]s and the hole is reported as a [`Gap`].
//!
//! **Jitter.** A regularly sampled sensor whose readings are stamped with some timing jitter (a
//! polled device, stamped when each poll is answered) would have its values smoothed by the
//! interpolation: a grid point a fraction `f` of a period off its reading mixes in `f` of the
//! next one, and with the grid through the first reading a first reading stamped late shifts
//! every point of the window (half a period off halves the noise power). With `jitter` set, the
//! grid goes through the readings' median phase (one late reading does not move it), and a
//! reading within `jitter` periods of a grid point gives that point its value as it is (with
//! `Hold` too: a point may take a reading stamped up to `tol` after it): the window is the
//! signal as sampled, as long as the stamps stay within `jitter` of their sampling instants.

use crate::{Error, Result};
use std::ops::Range;

/// How a grid point between two readings gets its value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interpolation {
    /// Straight line between the bracketing readings (`numpy.interp`). The default.
    #[default]
    Linear,
    /// The value of the latest reading at or before the grid point (zero-order hold).
    Hold,
}

/// Parameters of [`Resampler`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResampleConfig {
    /// Output rate in Hz (samples per second of timestamp).
    pub rate_hz: f64,
    /// Interpolation method.
    pub method: Interpolation,
    /// Longest interval between two readings, in seconds, that is bridged by interpolation;
    /// longer ones are gaps. At least one output period; `f64::INFINITY` never splits.
    pub max_gap_s: f64,
    /// Time of grid point 0, in seconds; `None` puts it on the first reading (with `jitter`:
    /// on the readings' median phase). An absolute origin (for instance 0.0) keeps
    /// consecutive windows on one grid.
    pub origin_s: Option<f64>,
    /// Timing jitter tolerated, in periods (`0..0.5`): a reading this close to a grid point
    /// gives it its value as is, and with no `origin_s` the grid goes through the readings'
    /// median phase. 0 (the default): every point interpolated, the grid on the first reading.
    pub jitter: f64,
}

impl ResampleConfig {
    /// Linear interpolation at `rate_hz`, gaps longer than ten periods, grid on the first
    /// reading.
    pub fn new(rate_hz: f64) -> Self {
        Self {
            rate_hz,
            method: Interpolation::Linear,
            max_gap_s: 10.0 / rate_hz,
            origin_s: None,
            jitter: 0.0,
        }
    }
}

/// A run of consecutive grid samples with no gap inside.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Time of the segment's first sample, seconds.
    pub start_s: f64,
    /// The segment's samples, as indices into [`Resampled::values`].
    pub range: Range<usize>,
}

/// Two consecutive readings further apart than the configured limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gap {
    /// Timestamp of the reading before the gap, seconds.
    pub from_s: f64,
    /// Timestamp of the reading after it, seconds.
    pub to_s: f64,
}

impl Gap {
    /// Length of the gap, seconds.
    pub fn duration_s(&self) -> f64 {
        self.to_s - self.from_s
    }
}

/// Output of the resampler, reusable between calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resampled {
    /// Grid values, segment after segment.
    pub values: Vec<f64>,
    /// The segments, in time order; they cover `values` exactly.
    pub segments: Vec<Segment>,
    /// The gaps between segments, in time order.
    pub gaps: Vec<Gap>,
    /// Sample rate of `values`, Hz.
    pub rate_hz: f64,
}

impl Resampled {
    /// Empties the output, keeping its allocations.
    pub fn clear(&mut self) {
        self.values.clear();
        self.segments.clear();
        self.gaps.clear();
    }

    /// The values of segment `i`.
    pub fn segment_values(&self, i: usize) -> Option<&[f64]> {
        self.segments.get(i).map(|s| &self.values[s.range.clone()])
    }
}

/// Resamples irregular readings onto a regular grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resampler {
    config: ResampleConfig,
}

impl Resampler {
    /// A resampler for `config`; refuses a non-positive rate or a gap limit shorter than one
    /// period.
    pub fn new(config: ResampleConfig) -> Result<Self> {
        if !(config.rate_hz.is_finite() && config.rate_hz > 0.0) {
            return Err(Error::invalid(
                "resampling rate",
                format!("{} Hz is not a positive finite rate", config.rate_hz),
            ));
        }
        if config.max_gap_s.is_nan() || config.max_gap_s < 1.0 / config.rate_hz {
            return Err(Error::invalid(
                "gap limit",
                format!(
                    "{} s is shorter than one period ({} s)",
                    config.max_gap_s,
                    1.0 / config.rate_hz
                ),
            ));
        }
        if let Some(o) = config.origin_s
            && !o.is_finite()
        {
            return Err(Error::invalid("grid origin", "must be finite"));
        }
        if !(0.0..0.5).contains(&config.jitter) {
            return Err(Error::invalid(
                "jitter",
                format!("{} periods is not within 0..0.5", config.jitter),
            ));
        }
        // Shorter, a gap could hold no grid point further than `jitter` from both its ends,
        // and go unnoticed.
        let shortest_gap = (1.0 + 2.0 * config.jitter) / config.rate_hz;
        if config.jitter > 0.0 && config.max_gap_s < shortest_gap {
            return Err(Error::invalid(
                "gap limit",
                format!(
                    "{} s is shorter than one period and twice the jitter tolerated ({shortest_gap} s)",
                    config.max_gap_s
                ),
            ));
        }
        Ok(Self { config })
    }

    /// The resampler's parameters.
    pub fn config(&self) -> ResampleConfig {
        self.config
    }

    /// Resamples readings into a new [`Resampled`].
    pub fn resample(&self, t: &[f64], x: &[f64]) -> Result<Resampled> {
        let mut out = Resampled::default();
        self.resample_into(t, x, &mut out)?;
        Ok(out)
    }

    /// Resamples readings `(t, x)` (strictly increasing finite timestamps in seconds, finite
    /// values; see [`crate::clean`]) into `out`, replacing its content.
    pub fn resample_into(&self, t: &[f64], x: &[f64], out: &mut Resampled) -> Result<()> {
        out.clear();
        out.rate_hz = self.config.rate_hz;
        if t.len() != x.len() {
            return Err(Error::LengthMismatch {
                timestamps: t.len(),
                values: x.len(),
            });
        }
        if t.is_empty() {
            return Err(Error::Empty);
        }
        for i in 0..t.len() {
            if !t[i].is_finite() || !x[i].is_finite() {
                return Err(Error::NonFinite { index: i });
            }
            if i > 0 && t[i] <= t[i - 1] {
                return Err(Error::Unsorted { index: i });
            }
        }
        let rate = self.config.rate_hz;
        let tol = self.config.jitter / rate;
        let origin = match self.config.origin_s {
            Some(o) => o,
            None if tol > 0.0 => median_phase(t, rate),
            None => t[0],
        };
        let time = |k: i64| origin + k as f64 / rate;
        // The reading that stands for grid point `tk` as is: the nearer of `t[j]` and
        // `t[j + 1]`, if within the jitter tolerated.
        let snapped = |tk: f64, j: usize| -> Option<usize> {
            if tol <= 0.0 {
                return None;
            }
            let mut best: Option<(usize, f64)> = None;
            for i in [j, j + 1] {
                if let Some(ti) = t.get(i) {
                    let d = (ti - tk).abs();
                    if d <= tol && best.is_none_or(|(_, b)| d < b) {
                        best = Some((i, d));
                    }
                }
            }
            best.map(|(i, _)| i)
        };
        let first_at_or_after = |s: f64| {
            // Estimate, then correct for rounding so that time(k) >= s > time(k - 1).
            let mut k = ((s - origin) * rate).ceil() as i64;
            while time(k) < s {
                k += 1;
            }
            while time(k - 1) >= s {
                k -= 1;
            }
            k
        };
        let last = t[t.len() - 1];
        // A grid point up to the tolerance before the first reading (or after the last) is
        // that reading's own instant.
        let mut k = first_at_or_after(t[0] - tol);
        // t[j] <= time(k) < t[j + 1], except before the first reading and just after a gap
        // (where time(k) may be up to `tol` before t[j]).
        let mut j = 0usize;
        let mut segment_start = out.values.len();
        let mut segment_time = time(k);
        loop {
            let tk = time(k);
            if tk > last + tol {
                break;
            }
            while j + 1 < t.len() && t[j + 1] <= tk {
                j += 1;
            }
            let snap = snapped(tk, j);
            // Past a reading followed by a gap, and not that reading's own instant: a point
            // inside the gap, or the first of the readings after it (reached again once the
            // segment before the gap is closed).
            if snap != Some(j)
                && j + 1 < t.len()
                && tk > t[j]
                && t[j + 1] - t[j] > self.config.max_gap_s
            {
                // Inside a gap: close the segment, report the gap and jump past it.
                if out.values.len() > segment_start {
                    out.segments.push(Segment {
                        start_s: segment_time,
                        range: segment_start..out.values.len(),
                    });
                }
                out.gaps.push(Gap {
                    from_s: t[j],
                    to_s: t[j + 1],
                });
                k = first_at_or_after(t[j + 1] - tol);
                j += 1;
                segment_start = out.values.len();
                segment_time = time(k);
                continue;
            }
            let v = if let Some(i) = snap {
                x[i]
            } else if tk <= t[j] || j + 1 == t.len() {
                x[j]
            } else {
                match self.config.method {
                    Interpolation::Linear => {
                        let slope = (x[j + 1] - x[j]) / (t[j + 1] - t[j]);
                        slope * (tk - t[j]) + x[j]
                    }
                    Interpolation::Hold => x[j],
                }
            };
            out.values.push(v);
            k += 1;
        }
        if out.values.len() > segment_start {
            out.segments.push(Segment {
                start_s: segment_time,
                range: segment_start..out.values.len(),
            });
        }
        // Gaps between readings that no grid point fell into are still breaks in the signal.
        // (They can only occur when the gap is shorter than one period, which `new` refuses.)
        Ok(())
    }
}

/// The origin of a grid through the readings' median phase. The phases are circular (a
/// reading half a period late is as near the next instant as its own), so they are first
/// centred on their circular mean (which a few outliers barely move), then each reading's
/// offset from that reference is wrapped into half a period either side and the median taken.
fn median_phase(t: &[f64], rate: f64) -> f64 {
    let (sin, cos) = t.iter().fold((0.0, 0.0), |(s, c), ti| {
        let angle = std::f64::consts::TAU * (ti - t[0]) * rate;
        (s + angle.sin(), c + angle.cos())
    });
    let reference = if sin == 0.0 && cos == 0.0 {
        t[0]
    } else {
        t[0] + sin.atan2(cos) / std::f64::consts::TAU / rate
    };
    let mut offsets: Vec<f64> = t
        .iter()
        .map(|ti| {
            let periods = (ti - reference) * rate;
            periods - periods.round()
        })
        .collect();
    offsets.sort_by(f64::total_cmp);
    let n = offsets.len();
    let median = if n % 2 == 1 {
        offsets[n / 2]
    } else {
        (offsets[n / 2 - 1] + offsets[n / 2]) / 2.0
    };
    reference + median / rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resampler(rate: f64, method: Interpolation, max_gap: f64) -> Resampler {
        Resampler::new(ResampleConfig {
            rate_hz: rate,
            method,
            max_gap_s: max_gap,
            origin_s: None,
            jitter: 0.0,
        })
        .expect("valid")
    }

    #[test]
    fn jittered_stamps_keep_the_values_as_sampled() {
        // A 1 Hz sensor stamped when each poll is answered: up to 0.2 s late, the first
        // reading the latest. Interpolated on the first reading's grid, every value would mix
        // in its neighbour; with the jitter tolerated, the window is the samples themselves.
        let late = [0.2, 0.02, 0.1, 0.0, 0.15, 0.05, 0.01, 0.12, 0.03, 0.08];
        let t: Vec<f64> = late.iter().enumerate().map(|(k, d)| k as f64 + d).collect();
        let x: Vec<f64> = (0..10)
            .map(|k| if k % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let plain = resampler(1.0, Interpolation::Linear, 10.0)
            .resample(&t, &x)
            .expect("ok");
        assert_eq!(
            plain.values.len(),
            9,
            "the grid through the late first reading"
        );
        assert!(
            plain.values[1..].iter().all(|v| v.abs() < 0.95),
            "every value after the first mixes in a neighbour: {:?}",
            plain.values
        );
        let tolerant = Resampler::new(ResampleConfig {
            jitter: 0.25,
            ..ResampleConfig::new(1.0)
        })
        .expect("valid")
        .resample(&t, &x)
        .expect("ok");
        assert_eq!(tolerant.values, x);
        assert_eq!(tolerant.segments.len(), 1);
        // A missing reading is still interpolated between its neighbours.
        let (mut t2, mut x2) = (t.clone(), x.clone());
        t2.remove(4);
        x2.remove(4);
        let r = Resampler::new(ResampleConfig {
            jitter: 0.25,
            ..ResampleConfig::new(1.0)
        })
        .expect("valid")
        .resample(&t2, &x2)
        .expect("ok");
        assert_eq!(r.values.len(), 10);
        assert!(
            (r.values[4] + 1.0).abs() < 1e-12,
            "between -1 and -1: {:?}",
            r.values
        );
        // The first reading about half a period off the others: the grid is still theirs.
        let t4 = [0.45, 1.0, 1.93, 3.0, 3.92, 5.0, 5.94];
        let x4 = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0];
        let r = Resampler::new(ResampleConfig {
            jitter: 0.25,
            ..ResampleConfig::new(1.0)
        })
        .expect("valid")
        .resample(&t4, &x4)
        .expect("ok");
        // (The odd one out has no instant of its own: the others keep their values.)
        assert_eq!(r.values, x4[1..].to_vec(), "{:?}", r.segments);
        // A gap after a jittered reading still splits the output there.
        let t3 = [0.1, 1.0, 2.2, 10.15, 11.0, 12.1];
        let x3 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let r = Resampler::new(ResampleConfig {
            jitter: 0.25,
            max_gap_s: 3.0,
            ..ResampleConfig::new(1.0)
        })
        .expect("valid")
        .resample(&t3, &x3)
        .expect("ok");
        assert_eq!(r.values, x3.to_vec());
        assert_eq!(
            r.gaps,
            vec![Gap {
                from_s: 2.2,
                to_s: 10.15
            }]
        );
        assert_eq!(
            r.segments
                .iter()
                .map(|s| s.range.clone())
                .collect::<Vec<_>>(),
            vec![0..3, 3..6]
        );
        assert!(
            Resampler::new(ResampleConfig {
                jitter: 0.5,
                ..ResampleConfig::new(1.0)
            })
            .is_err()
        );
        // A gap limit a gap could slip under (between two snapped points) is refused.
        assert!(
            Resampler::new(ResampleConfig {
                jitter: 0.25,
                max_gap_s: 1.2,
                ..ResampleConfig::new(1.0)
            })
            .is_err()
        );
    }

    #[test]
    fn linear_and_hold_on_a_regular_grid() {
        let t = [0.0, 1.0, 2.5, 3.0];
        let x = [0.0, 10.0, 25.0, 0.0];
        let lin = resampler(2.0, Interpolation::Linear, 10.0)
            .resample(&t, &x)
            .expect("ok");
        assert_eq!(lin.values, vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 0.0]);
        assert_eq!(lin.segments.len(), 1);
        let hold = resampler(2.0, Interpolation::Hold, 10.0)
            .resample(&t, &x)
            .expect("ok");
        assert_eq!(hold.values, vec![0.0, 0.0, 10.0, 10.0, 10.0, 25.0, 0.0]);
    }

    #[test]
    fn long_gaps_split_the_output_and_are_reported() {
        let t = [0.0, 1.0, 2.0, 10.0, 11.0];
        let x = [0.0, 1.0, 2.0, 10.0, 11.0];
        let r = resampler(1.0, Interpolation::Linear, 3.0)
            .resample(&t, &x)
            .expect("ok");
        assert_eq!(r.values, vec![0.0, 1.0, 2.0, 10.0, 11.0]);
        assert_eq!(
            r.gaps,
            vec![Gap {
                from_s: 2.0,
                to_s: 10.0
            }]
        );
        assert_eq!(r.segments.len(), 2);
        assert_eq!(r.segments[1].start_s, 10.0);
        assert_eq!(r.segments[1].range, 3..5);
        assert_eq!(r.segment_values(1), Some(&[10.0, 11.0][..]));
    }

    #[test]
    fn refuses_unsorted_or_mismatched_input_and_bad_config() {
        let r = resampler(1.0, Interpolation::Linear, 5.0);
        assert_eq!(
            r.resample(&[0.0, 0.0], &[1.0, 2.0]),
            Err(Error::Unsorted { index: 1 })
        );
        assert!(matches!(
            r.resample(&[0.0], &[1.0, 2.0]),
            Err(Error::LengthMismatch { .. })
        ));
        assert_eq!(r.resample(&[], &[]), Err(Error::Empty));
        assert!(Resampler::new(ResampleConfig::new(0.0)).is_err());
        let mut c = ResampleConfig::new(100.0);
        c.max_gap_s = 0.001;
        assert!(Resampler::new(c).is_err());
    }

    #[test]
    fn an_absolute_origin_aligns_the_grid() {
        let c = ResampleConfig {
            origin_s: Some(0.0),
            ..ResampleConfig::new(4.0)
        };
        let r = Resampler::new(c)
            .expect("valid")
            .resample(&[0.1, 1.1], &[0.0, 1.0])
            .expect("ok");
        assert_eq!(r.segments[0].start_s, 0.25);
        assert_eq!(r.values.len(), 4); // 0.25, 0.5, 0.75, 1.0
    }
}
