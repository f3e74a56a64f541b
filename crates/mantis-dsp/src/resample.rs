//! Resampling of irregular readings onto a regular grid at the sensor's nominal rate.
//!
//! The grid is `origin + k / rate` for integers `k` (the origin defaults to the first reading),
//! restricted to `[t_first, t_last]`. Each grid point takes its value from the readings that
//! bracket it, by linear interpolation (as `numpy.interp`) or by holding the previous reading
//! (zero-order hold). Where two consecutive readings are more than `max_gap_s` apart, no value is
//! invented: the grid points strictly between them are skipped, the output is split into
//! [`Segment`]s and the hole is reported as a [`Gap`].

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
    /// Time of grid point 0, in seconds; `None` puts it on the first reading. An absolute origin
    /// (for instance 0.0) keeps consecutive windows on one grid.
    pub origin_s: Option<f64>,
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
        let origin = self.config.origin_s.unwrap_or(t[0]);
        let time = |k: i64| origin + k as f64 / rate;
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
        let mut k = first_at_or_after(t[0]);
        let mut j = 0usize; // t[j] <= time(k) < t[j + 1]
        let mut segment_start = out.values.len();
        let mut segment_time = time(k);
        loop {
            let tk = time(k);
            if tk > last {
                break;
            }
            while j + 1 < t.len() && t[j + 1] <= tk {
                j += 1;
            }
            if j + 1 < t.len() && tk != t[j] && t[j + 1] - t[j] > self.config.max_gap_s {
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
                k = first_at_or_after(t[j + 1]);
                j += 1;
                segment_start = out.values.len();
                segment_time = time(k);
                continue;
            }
            let v = if tk == t[j] || j + 1 == t.len() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn resampler(rate: f64, method: Interpolation, max_gap: f64) -> Resampler {
        Resampler::new(ResampleConfig {
            rate_hz: rate,
            method,
            max_gap_s: max_gap,
            origin_s: None,
        })
        .expect("valid")
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
