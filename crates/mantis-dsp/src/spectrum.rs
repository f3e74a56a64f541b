//! One-sided spectra of windowed frames and the spectral features computed from them.
//!
//! For a frame `x` of `n` samples at `fs` Hz, with window `w` (periodic, see [`crate::window`])
//! and the frame's mean removed first (configurable), let `X = rfft((x − mean)·w)` (`n/2 + 1`
//! bins, bin `k` at `k·fs/n` Hz) and `c_k = 2` except `c_0 = 1` and, for even `n`, `c_{n/2} = 1`.
//!
//! * **amplitude** `A_k = c_k·|X_k| / Σw`: a sine of amplitude `a` centred on a bin reads `a`,
//!   whatever the window (coherent-gain correction).
//! * **power** `P_k = c_k·|X_k|² / (n·Σw²)`: the one-sided periodogram (`scipy.signal.periodogram`
//!   with `scaling='density'`) times the bin width `fs/n`. By Parseval, `Σ P_k = Σ(x·w)² / Σw²`,
//!   the window-weighted mean square (plain `mean(x²)` with the rectangular window), so band
//!   powers are in the signal's units squared.
//!
//! Features over those (see [`Spectrum`]): the peak (largest amplitude outside DC), the
//! amplitude-weighted centroid (as `librosa.feature.spectral_centroid`), the spectral entropy
//! `−Σ p_k ln p_k / ln K` with `p = P / ΣP` over all `K` bins (0 for a flat-zero frame, 1 for white
//! power), band powers `Σ P_k` over `lo ≤ f_k < hi`, and harmonic amplitudes.
//!
//! [`SpectrumAnalyzer`] keeps one real-FFT plan, window and scratch buffers per frame length, so
//! analysing a stream of equal-length frames allocates nothing after the first.

use crate::window::{Symmetry, WindowFunction};
use crate::{Error, Result};
use realfft::num_complex::Complex64;
use realfft::{RealFftPlanner, RealToComplex};
use std::collections::HashMap;
use std::sync::Arc;

struct Plan {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// Σw.
    sum_w: f64,
    /// Σw².
    sum_w2: f64,
}

/// Frame lengths whose FFT plans an analyser keeps at once.
const MAX_PLANS: usize = 8;

/// Computes spectra of frames; reuse one per thread.
pub struct SpectrumAnalyzer {
    window: WindowFunction,
    remove_mean: bool,
    planner: RealFftPlanner<f64>,
    plans: HashMap<usize, Plan>,
    input: Vec<f64>,
    output: Vec<Complex64>,
    scratch: Vec<Complex64>,
    amplitude: Vec<f64>,
    power: Vec<f64>,
    bin_hz: f64,
}

impl std::fmt::Debug for SpectrumAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrumAnalyzer")
            .field("window", &self.window)
            .field("remove_mean", &self.remove_mean)
            .field("cached_lengths", &self.plans.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SpectrumAnalyzer {
    /// An analyser applying `window` (periodic) after removing each frame's mean.
    pub fn new(window: WindowFunction) -> Self {
        Self {
            window,
            remove_mean: true,
            planner: RealFftPlanner::new(),
            plans: HashMap::new(),
            input: Vec::new(),
            output: Vec::new(),
            scratch: Vec::new(),
            amplitude: Vec::new(),
            power: Vec::new(),
            bin_hz: 0.0,
        }
    }

    /// Whether to subtract the frame's mean before windowing (default `true`; the DC bin then
    /// holds only the window's leakage).
    pub fn with_mean_removal(mut self, remove_mean: bool) -> Self {
        self.remove_mean = remove_mean;
        self
    }

    /// The window applied to frames.
    pub fn window(&self) -> WindowFunction {
        self.window
    }

    /// Spectrum of `frame` sampled at `sample_rate_hz`. Needs at least 2 finite samples.
    pub fn analyze(&mut self, frame: &[f64], sample_rate_hz: f64) -> Result<Spectrum<'_>> {
        let n = frame.len();
        if n < 2 {
            return Err(Error::TooShort { len: n, min: 2 });
        }
        if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
            return Err(Error::invalid(
                "sample rate",
                format!("{sample_rate_hz} Hz is not a positive finite rate"),
            ));
        }
        // Sum in four lanes; a non-finite sample makes Σx² non-finite, so finiteness is checked
        // once at the end (and located only then).
        let mut acc = [0.0f64; 4];
        let mut acc2 = [0.0f64; 4];
        let mut chunks = frame.chunks_exact(4);
        for c in &mut chunks {
            for l in 0..4 {
                acc[l] += c[l];
                acc2[l] += c[l] * c[l];
            }
        }
        for &v in chunks.remainder() {
            acc[0] += v;
            acc2[0] += v * v;
        }
        let sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        if !((acc2[0] + acc2[1]) + (acc2[2] + acc2[3])).is_finite()
            && let Some(index) = frame.iter().position(|v| !v.is_finite())
        {
            return Err(Error::NonFinite { index });
        }
        let mean = if self.remove_mean {
            sum / n as f64
        } else {
            0.0
        };
        if self.plans.len() >= MAX_PLANS && !self.plans.contains_key(&n) {
            // Frame lengths vary (windows cut short by gaps): keep the plans (and the
            // planner's own cache) bounded rather than one per length ever seen.
            self.plans.clear();
            self.planner = RealFftPlanner::new();
        }
        let window = self.window;
        let planner = &mut self.planner;
        let plan = self.plans.entry(n).or_insert_with(|| {
            let w = window.coefficients(n, Symmetry::Periodic);
            Plan {
                fft: planner.plan_fft_forward(n),
                sum_w: w.iter().sum(),
                sum_w2: w.iter().map(|v| v * v).sum(),
                window: w,
            }
        });
        self.input.clear();
        self.input
            .extend(frame.iter().zip(&plan.window).map(|(x, w)| (x - mean) * w));
        let bins = n / 2 + 1;
        self.output.resize(bins, Complex64::new(0.0, 0.0));
        self.scratch
            .resize(plan.fft.get_scratch_len(), Complex64::new(0.0, 0.0));
        plan.fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch)
            .map_err(|e| Error::invalid("FFT buffers", e.to_string()))?;
        // One pass over the bins: amplitude, power, and the sums the features need.
        let bins = self.output.len();
        self.amplitude.resize(bins, 0.0);
        self.power.resize(bins, 0.0);
        let amp_scale = 1.0 / plan.sum_w;
        let pow_scale = 1.0 / (n as f64 * plan.sum_w2);
        let nyquist_single = n.is_multiple_of(2);
        // Pass 1 (vectorisable): amplitude and power per bin, all with the factor 2…
        for ((c, a), p) in self
            .output
            .iter()
            .zip(self.amplitude.iter_mut())
            .zip(self.power.iter_mut())
        {
            let m2 = c.norm_sqr();
            *a = 2.0 * m2.sqrt() * amp_scale;
            *p = 2.0 * m2 * pow_scale;
        }
        // …then halve DC and, for even n, the Nyquist bin.
        self.amplitude[0] *= 0.5;
        self.power[0] *= 0.5;
        if nyquist_single && bins > 1 {
            self.amplitude[bins - 1] *= 0.5;
            self.power[bins - 1] *= 0.5;
        }
        // Pass 2: sums in four lanes, and the peak outside DC.
        let mut stats = BinStats::default();
        let (mut tp, mut sa, mut ska) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
        let mut k = 0usize;
        let mut chunks = self
            .amplitude
            .chunks_exact(4)
            .zip(self.power.chunks_exact(4));
        for (a, p) in &mut chunks {
            for l in 0..4 {
                tp[l] += p[l];
                sa[l] += a[l];
                ska[l] += (k + l) as f64 * a[l];
            }
            k += 4;
        }
        for (a, p) in self.amplitude[k..].iter().zip(&self.power[k..]) {
            tp[0] += p;
            sa[0] += a;
            ska[0] += k as f64 * a;
            k += 1;
        }
        let total = |v: [f64; 4]| (v[0] + v[1]) + (v[2] + v[3]);
        stats.total_power = total(tp);
        stats.sum_amp = total(sa);
        stats.sum_k_amp = total(ska);
        for (k, &a) in self.amplitude.iter().enumerate().skip(1) {
            if a > stats.peak_amp {
                stats.peak_amp = a;
                stats.peak_k = k;
            }
        }
        self.bin_hz = sample_rate_hz / n as f64;
        Ok(Spectrum {
            amplitude: &self.amplitude,
            power: &self.power,
            bin_hz: self.bin_hz,
            stats,
        })
    }
}

/// Sums gathered while the bins are computed.
#[derive(Clone, Copy, Debug)]
struct BinStats {
    total_power: f64,
    sum_amp: f64,
    sum_k_amp: f64,
    peak_k: usize,
    peak_amp: f64,
}

impl Default for BinStats {
    fn default() -> Self {
        Self {
            total_power: 0.0,
            sum_amp: 0.0,
            sum_k_amp: 0.0,
            peak_k: 0,
            peak_amp: f64::NEG_INFINITY,
        }
    }
}

/// The one-sided spectrum of one frame (borrowed from its [`SpectrumAnalyzer`]).
#[derive(Clone, Copy, Debug)]
pub struct Spectrum<'a> {
    amplitude: &'a [f64],
    power: &'a [f64],
    bin_hz: f64,
    stats: BinStats,
}

/// How to choose the fundamental whose harmonics are measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Fundamental {
    /// The spectral peak (largest amplitude outside DC). The default.
    #[default]
    Peak,
    /// A known frequency, Hz (for instance the shaft speed).
    Hz(f64),
}

impl<'a> Spectrum<'a> {
    /// Amplitude per bin (see the module documentation).
    pub fn amplitude(&self) -> &'a [f64] {
        self.amplitude
    }

    /// Power per bin (see the module documentation).
    pub fn power(&self) -> &'a [f64] {
        self.power
    }

    /// Width of one bin, Hz (`fs / n`).
    pub fn bin_hz(&self) -> f64 {
        self.bin_hz
    }

    /// Frequency of bin `k`, Hz.
    pub fn frequency(&self, k: usize) -> f64 {
        k as f64 * self.bin_hz
    }

    /// `(frequency Hz, amplitude)` of the largest amplitude outside the DC bin (first one on a
    /// tie).
    pub fn peak(&self) -> (f64, f64) {
        if self.stats.peak_k == 0 {
            return (0.0, self.amplitude.first().copied().unwrap_or(0.0));
        }
        (self.frequency(self.stats.peak_k), self.stats.peak_amp)
    }

    /// Amplitude-weighted mean frequency `Σ f_k A_k / Σ A_k`, Hz; 0 when the spectrum is zero.
    pub fn centroid(&self) -> f64 {
        if self.stats.sum_amp > 0.0 {
            self.stats.sum_k_amp / self.stats.sum_amp * self.bin_hz
        } else {
            0.0
        }
    }

    /// Total power `Σ P_k`.
    pub fn total_power(&self) -> f64 {
        self.stats.total_power
    }

    /// Normalised Shannon entropy of the power spectrum, in [0, 1]; 0 when the power is zero.
    pub fn entropy(&self) -> f64 {
        let k = self.power.len();
        if k < 2 {
            return 0.0;
        }
        let (total, s) = crate::math::sum_and_sum_v_ln_v(self.power, |p| p);
        crate::math::entropy_from_sums(total, s) / (k as f64).ln()
    }

    /// Power in the bins with `low_hz ≤ f < high_hz`.
    pub fn band_power(&self, low_hz: f64, high_hz: f64) -> f64 {
        let (lo, hi) = self.bin_range(low_hz, high_hz);
        self.power[lo..hi].iter().sum()
    }

    /// Indices of the bins with `low_hz ≤ f < high_hz`.
    fn bin_range(&self, low_hz: f64, high_hz: f64) -> (usize, usize) {
        let len = self.power.len();
        let first = |f: f64| -> usize {
            if f.is_nan() || f <= 0.0 {
                return 0;
            }
            // Smallest k with k·bin ≥ f, corrected for rounding of the division.
            let mut k = (f / self.bin_hz).ceil().min(len as f64) as usize;
            while k > 0 && self.frequency(k - 1) >= f {
                k -= 1;
            }
            while k < len && self.frequency(k) < f {
                k += 1;
            }
            k
        };
        let lo = first(low_hz);
        let hi = first(high_hz).max(lo);
        (lo, hi)
    }

    /// The fundamental frequency that [`Spectrum::harmonics`] would use.
    pub fn fundamental_hz(&self, fundamental: Fundamental) -> f64 {
        match fundamental {
            Fundamental::Peak => self.peak().0,
            Fundamental::Hz(f) => f,
        }
    }

    /// Amplitudes of harmonics 1..=`out.len()` of `fundamental`: for harmonic `h`, the largest
    /// amplitude within `tolerance_bins` of the bin nearest `h·f0` (DC excluded). Harmonics above
    /// the Nyquist frequency, or of a non-positive fundamental, read 0.
    pub fn harmonics(&self, fundamental: Fundamental, tolerance_bins: usize, out: &mut [f64]) {
        let f0 = self.fundamental_hz(fundamental);
        let last = self.amplitude.len() - 1;
        let nyquist = self.frequency(last);
        for (i, o) in out.iter_mut().enumerate() {
            let f = f0 * (i + 1) as f64;
            *o = 0.0;
            if f0.is_nan() || f0 <= 0.0 || !f.is_finite() || f > nyquist + 0.5 * self.bin_hz {
                continue;
            }
            let centre = (f / self.bin_hz).round() as usize;
            let lo = centre.saturating_sub(tolerance_bins).max(1);
            let hi = (centre + tolerance_bins).min(last);
            if lo <= hi {
                *o = self.amplitude[lo..=hi].iter().copied().fold(0.0, f64::max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(n: usize, fs: f64, f: f64, a: f64) -> Vec<f64> {
        (0..n)
            .map(|i| a * (2.0 * PI * f * i as f64 / fs).sin())
            .collect()
    }

    #[test]
    fn a_bin_centred_sine_reads_its_amplitude_with_every_window() {
        for w in [
            WindowFunction::Rectangular,
            WindowFunction::Hann,
            WindowFunction::Hamming,
            WindowFunction::Blackman,
        ] {
            let mut sa = SpectrumAnalyzer::new(w);
            let s = sa
                .analyze(&sine(1000, 1000.0, 50.0, 3.0), 1000.0)
                .expect("ok");
            let (f, a) = s.peak();
            assert_eq!(f, 50.0);
            assert!((a - 3.0).abs() < 1e-9, "{w:?}: {a}");
        }
    }

    #[test]
    fn rectangular_power_sums_to_the_mean_square() {
        let x = sine(999, 100.0, 7.3, 2.0);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let ms = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        let mut sa = SpectrumAnalyzer::new(WindowFunction::Rectangular);
        let s = sa.analyze(&x, 100.0).expect("ok");
        assert!((s.total_power() - ms).abs() < 1e-12 * ms);
    }

    #[test]
    fn harmonics_of_a_known_fundamental() {
        let x: Vec<f64> = sine(2000, 1000.0, 25.0, 1.0)
            .iter()
            .zip(sine(2000, 1000.0, 50.0, 0.5))
            .zip(sine(2000, 1000.0, 75.0, 0.25))
            .map(|((a, b), c)| a + b + c)
            .collect();
        let mut sa = SpectrumAnalyzer::new(WindowFunction::Hann);
        let s = sa.analyze(&x, 1000.0).expect("ok");
        let mut h = [0.0; 4];
        s.harmonics(Fundamental::Hz(25.0), 1, &mut h);
        assert!((h[0] - 1.0).abs() < 1e-9 && (h[1] - 0.5).abs() < 1e-9);
        assert!((h[2] - 0.25).abs() < 1e-9 && h[3] < 1e-9);
        let mut hp = [0.0; 4];
        s.harmonics(Fundamental::Peak, 1, &mut hp);
        assert_eq!(h, hp);
        let mut above = [1.0; 1];
        s.harmonics(Fundamental::Hz(600.0), 1, &mut above);
        assert_eq!(above[0], 0.0);
    }

    #[test]
    fn entropy_is_low_for_a_tone_and_band_power_finds_it() {
        let mut sa = SpectrumAnalyzer::new(WindowFunction::Hann);
        let s = sa
            .analyze(&sine(1024, 1024.0, 100.0, 1.0), 1024.0)
            .expect("ok");
        // Hann spreads a bin-centred tone over three bins with powers 1/4, 1, 1/4.
        let three_bins = -(2.0 / 6.0 * (1.0f64 / 6.0).ln() + 2.0 / 3.0 * (2.0f64 / 3.0).ln());
        assert!(
            (s.entropy() - three_bins / 513f64.ln()).abs() < 1e-9,
            "{}",
            s.entropy()
        );
        let total = s.total_power();
        assert!((s.band_power(90.0, 110.0) - total).abs() < 1e-12 * total);
        assert!(s.band_power(200.0, 300.0) < 1e-20);
        assert_eq!(s.band_power(300.0, 200.0), 0.0);
    }

    #[test]
    fn refuses_short_or_non_finite_frames() {
        let mut sa = SpectrumAnalyzer::new(WindowFunction::Hann);
        assert_eq!(
            sa.analyze(&[1.0], 10.0).err(),
            Some(Error::TooShort { len: 1, min: 2 })
        );
        assert_eq!(
            sa.analyze(&[1.0, f64::NAN], 10.0).err(),
            Some(Error::NonFinite { index: 1 })
        );
    }
}
