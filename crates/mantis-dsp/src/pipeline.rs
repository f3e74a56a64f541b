//! The preprocessing stage as one object: clean → resample → filter → window statistics.
//!
//! [`Preprocessor::process`] takes one window of raw readings `(t, x)` and produces a
//! [`Preprocessed`] window: the regular-rate signal split into gap-free segments, the gaps, a
//! [`CleanReport`] and the [`WindowStats`] of the filtered values. A streaming filter carries its
//! state from one call to the next when the new window continues the previous one on the grid
//! (within half a period), and restarts from steady state (`sosfilt_zi · x0`, no start-up
//! transient) at the first window, after every gap and after a discontinuity. A zero-phase filter
//! treats each segment independently; a segment too short for SciPy's default padding is padded
//! with `len − 1` samples instead.

use crate::clean::{CleanConfig, CleanReport, Cleaner};
use crate::filter::{FilterBand, SosFilter, ZeroPhaseFilter, butter};
use crate::resample::{ResampleConfig, Resampled, Resampler};
use crate::time::WindowStats;
use crate::{Error, Result};

/// Optional Butterworth filtering of the resampled signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilterConfig {
    /// Filter order (band-pass: 2·order poles, as SciPy).
    pub order: usize,
    /// Pass band.
    pub band: FilterBand,
    /// Forward-backward (zero-phase, per segment) instead of streaming.
    pub zero_phase: bool,
}

/// Parameters of the preprocessing stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// Cleaning.
    pub clean: CleanConfig,
    /// Resampling (its rate is the filter's sample rate).
    pub resample: ResampleConfig,
    /// Filtering; `None` disables it.
    pub filter: Option<FilterConfig>,
}

/// One preprocessed window, reusable between calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preprocessed {
    /// The resampled (and filtered) signal with its segments and gaps.
    pub signal: Resampled,
    /// What cleaning changed.
    pub report: CleanReport,
    /// Statistics of `signal.values`; `None` when no sample survived.
    pub stats: Option<WindowStats>,
}

enum Filter {
    Streaming(SosFilter),
    ZeroPhase(ZeroPhaseFilter),
}

/// The preprocessing stage for one sensor (it keeps that sensor's filter state).
pub struct Preprocessor {
    config: PreprocessConfig,
    cleaner: Cleaner,
    resampler: Resampler,
    filter: Option<Filter>,
    t: Vec<f64>,
    x: Vec<f64>,
    scratch: Vec<f64>,
    /// Time of the last filtered sample, to tell whether the next window continues it.
    last_time: Option<f64>,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor")
            .field("config", &self.config)
            .field("last_time", &self.last_time)
            .finish()
    }
}

impl Preprocessor {
    /// A preprocessor for `config`; refuses invalid cleaning, resampling or filter parameters.
    pub fn new(config: PreprocessConfig) -> Result<Self> {
        let cleaner = Cleaner::new(config.clean)?;
        let resampler = Resampler::new(config.resample)?;
        let filter = match config.filter {
            Some(f) => {
                let sos = butter(f.order, f.band, config.resample.rate_hz)?;
                Some(if f.zero_phase {
                    Filter::ZeroPhase(ZeroPhaseFilter::new(sos))
                } else {
                    Filter::Streaming(SosFilter::new(sos))
                })
            }
            None => None,
        };
        Ok(Self {
            config,
            cleaner,
            resampler,
            filter,
            t: Vec::new(),
            x: Vec::new(),
            scratch: Vec::new(),
            last_time: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PreprocessConfig {
        &self.config
    }

    /// Forgets the filter state (the next window starts from steady state).
    pub fn reset(&mut self) {
        self.last_time = None;
    }

    /// Preprocesses one window of readings into `out`. A window whose readings are all dropped
    /// by cleaning yields an empty signal and `stats: None`.
    pub fn process(&mut self, t: &[f64], x: &[f64], out: &mut Preprocessed) -> Result<()> {
        if t.len() != x.len() {
            return Err(Error::LengthMismatch {
                timestamps: t.len(),
                values: x.len(),
            });
        }
        self.t.clear();
        self.t.extend_from_slice(t);
        self.x.clear();
        self.x.extend_from_slice(x);
        out.report = self.cleaner.clean(&mut self.t, &mut self.x)?;
        out.stats = None;
        if self.t.is_empty() {
            out.signal.clear();
            return Ok(());
        }
        self.resampler
            .resample_into(&self.t, &self.x, &mut out.signal)?;
        let period = 1.0 / self.config.resample.rate_hz;
        match &mut self.filter {
            None => {}
            Some(Filter::Streaming(f)) => {
                for (i, seg) in out.signal.segments.iter().enumerate() {
                    let values = &mut out.signal.values[seg.range.clone()];
                    let Some(&x0) = values.first() else { continue };
                    let continues = i == 0
                        && self
                            .last_time
                            .is_some_and(|lt| (seg.start_s - (lt + period)).abs() <= 0.5 * period);
                    if !continues {
                        f.reset_to_steady_state(x0);
                    }
                    f.process_in_place(values);
                    self.last_time = Some(seg.start_s + (values.len() - 1) as f64 * period);
                }
            }
            Some(Filter::ZeroPhase(f)) => {
                for seg in &out.signal.segments {
                    let values = &mut out.signal.values[seg.range.clone()];
                    if values.len() < 2 {
                        continue;
                    }
                    if values.len() > f.padlen() {
                        f.apply(values, &mut self.scratch)?;
                    } else {
                        let mut short =
                            ZeroPhaseFilter::with_padlen(f.sos().clone(), values.len() - 1);
                        short.apply(values, &mut self.scratch)?;
                    }
                    values.copy_from_slice(&self.scratch);
                }
            }
        }
        out.stats = WindowStats::of(&out.signal.values);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::HampelConfig;

    fn config(zero_phase: bool) -> PreprocessConfig {
        PreprocessConfig {
            clean: CleanConfig {
                hampel: Some(HampelConfig::default()),
                ..CleanConfig::default()
            },
            resample: ResampleConfig::new(100.0),
            filter: Some(FilterConfig {
                order: 4,
                band: FilterBand::LowPass { cutoff_hz: 10.0 },
                zero_phase,
            }),
        }
    }

    #[test]
    fn a_constant_window_passes_unchanged_with_a_spike_removed() {
        for zero_phase in [false, true] {
            let mut p = Preprocessor::new(config(zero_phase)).expect("valid");
            let t: Vec<f64> = (0..300).map(|i| i as f64 * 0.01).collect();
            let mut x = vec![5.0; 300];
            x[100] = 500.0;
            let mut out = Preprocessed::default();
            p.process(&t, &x, &mut out).expect("ok");
            assert_eq!(out.report.spikes, 1);
            assert_eq!(out.signal.values.len(), 300);
            assert!(out.signal.values.iter().all(|v| (v - 5.0).abs() < 1e-9));
            let s = out.stats.expect("stats");
            assert_eq!(s.count, 300);
        }
    }

    #[test]
    fn streaming_state_carries_over_consecutive_windows() {
        let t: Vec<f64> = (0..400).map(|i| i as f64 * 0.01).collect();
        let x: Vec<f64> = t
            .iter()
            .map(|s| (2.0 * 3.0 * s).sin() + (90.0 * s).cos())
            .collect();
        let mut c = config(false);
        c.clean.hampel = None;
        let mut whole = Preprocessor::new(c).expect("valid");
        let mut all = Preprocessed::default();
        whole.process(&t, &x, &mut all).expect("ok");
        let mut split = Preprocessor::new(c).expect("valid");
        let (mut a, mut b) = (Preprocessed::default(), Preprocessed::default());
        split.process(&t[..150], &x[..150], &mut a).expect("ok");
        split.process(&t[150..], &x[150..], &mut b).expect("ok");
        let joined: Vec<f64> = a
            .signal
            .values
            .iter()
            .chain(&b.signal.values)
            .copied()
            .collect();
        assert_eq!(joined.len(), all.signal.values.len());
        for (a, b) in joined.iter().zip(&all.signal.values) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
}
