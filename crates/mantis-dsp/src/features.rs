//! The feature vector of a window: time-domain, spectral and wavelet families, by stable name.
//!
//! A [`FeatureExtractor`] is built once from a [`FeatureConfig`]; its [`names`] are fixed at
//! construction, and each call to [`extract_into`] fills a caller-provided `Vec<f64>` with the
//! values in that order, reusing the FFT plan, window and wavelet buffers (no allocation per
//! window once warmed up). The set is versioned by [`FULL_FEATURE_SET_VERSION`].
//!
//! Names (`full-v1`), in order, for the families that are enabled:
//!
//! * time: `mean std rms min max peak_to_peak kurtosis skewness crest_factor shape_factor
//!   impulse_factor clearance_factor zero_crossing_rate mean_crossing_rate` (see
//!   [`TimeFeatures`]);
//! * spectral: `spectral_peak_frequency_hz spectral_peak_amplitude spectral_centroid_hz
//!   spectral_entropy spectral_total_power`, then for each band `band_energy_<name>` and
//!   `band_energy_ratio_<name>` (band power over total power), then `harmonic_fundamental_hz` and
//!   `harmonic_<h>_amplitude` for h = 1..=k (see [`crate::spectrum`]);
//! * wavelet: `wavelet_energy_<band>` then `wavelet_entropy_<band>` for the bands `a<L>, d<L>, …,
//!   d1` (see [`crate::wavelet`]).
//!
//! [`names`]: FeatureExtractor::names
//! [`extract_into`]: FeatureExtractor::extract_into

use crate::spectrum::{Fundamental, SpectrumAnalyzer};
use crate::time::{TIME_FEATURE_NAMES, TimeFeatures};
use crate::wavelet::{self, Wavelet, WaveletTransform};
use crate::window::WindowFunction;
use crate::{Error, Result};

/// Version of the feature set produced by [`FeatureExtractor`]; bump it when a name or a
/// definition changes. (The older nine-feature set of [`TimeFeatures::named`] is
/// [`crate::FEATURE_SET_VERSION`], `time-v1`.)
pub const FULL_FEATURE_SET_VERSION: &str = "full-v1";

/// A named frequency band, `low_hz ≤ f < high_hz`.
#[derive(Clone, Debug, PartialEq)]
pub struct FrequencyBand {
    /// Used in feature names (`band_energy_<name>`): lower-case letters, digits and `_`.
    pub name: String,
    /// Lower edge, Hz (inclusive).
    pub low_hz: f64,
    /// Upper edge, Hz (exclusive).
    pub high_hz: f64,
}

impl FrequencyBand {
    /// A band called `name` from `low_hz` to `high_hz`.
    pub fn new(name: impl Into<String>, low_hz: f64, high_hz: f64) -> Self {
        Self {
            name: name.into(),
            low_hz,
            high_hz,
        }
    }
}

/// Rolling-element bearing geometry, for fault-frequency bands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BearingGeometry {
    /// Number of rolling elements.
    pub rolling_elements: u32,
    /// Rolling-element diameter (any unit, the same as `pitch_diameter`).
    pub ball_diameter: f64,
    /// Pitch diameter.
    pub pitch_diameter: f64,
    /// Contact angle, degrees.
    pub contact_angle_deg: f64,
}

/// Characteristic fault frequencies of a bearing at a shaft speed, Hz.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BearingFrequencies {
    /// Ball-pass frequency, outer race.
    pub bpfo: f64,
    /// Ball-pass frequency, inner race.
    pub bpfi: f64,
    /// Ball spin frequency.
    pub bsf: f64,
    /// Fundamental train (cage) frequency.
    pub ftf: f64,
}

impl BearingGeometry {
    /// The textbook fault frequencies at `shaft_hz` (BPFO = n/2·f·(1 − r), BPFI = n/2·f·(1 + r),
    /// BSF = D/(2d)·f·(1 − r²), FTF = f/2·(1 − r), with r = d/D·cos φ).
    pub fn fault_frequencies(&self, shaft_hz: f64) -> BearingFrequencies {
        let r =
            self.ball_diameter / self.pitch_diameter * self.contact_angle_deg.to_radians().cos();
        let n = f64::from(self.rolling_elements);
        BearingFrequencies {
            bpfo: n / 2.0 * shaft_hz * (1.0 - r),
            bpfi: n / 2.0 * shaft_hz * (1.0 + r),
            bsf: self.pitch_diameter / (2.0 * self.ball_diameter) * shaft_hz * (1.0 - r * r),
            ftf: shaft_hz / 2.0 * (1.0 - r),
        }
    }

    /// Bands `bpfo`, `bpfi`, `bsf`, `ftf` of ± `half_width_hz` around each fault frequency.
    pub fn fault_bands(&self, shaft_hz: f64, half_width_hz: f64) -> Vec<FrequencyBand> {
        let f = self.fault_frequencies(shaft_hz);
        [
            ("bpfo", f.bpfo),
            ("bpfi", f.bpfi),
            ("bsf", f.bsf),
            ("ftf", f.ftf),
        ]
        .into_iter()
        .map(|(name, c)| FrequencyBand::new(name, (c - half_width_hz).max(0.0), c + half_width_hz))
        .collect()
    }
}

/// Spectral family settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SpectralConfig {
    /// Window applied to the frame (periodic). Default Hann.
    pub window: WindowFunction,
    /// Subtract the frame mean first. Default `true`.
    pub remove_mean: bool,
    /// Bands whose power is reported.
    pub bands: Vec<FrequencyBand>,
    /// Number of harmonics reported (0 for none). Default 3.
    pub harmonics: usize,
    /// Fundamental of the harmonics. Default: the spectral peak.
    pub fundamental: Fundamental,
    /// Search half-width around each harmonic, bins. Default 1.
    pub harmonic_tolerance_bins: usize,
}

impl SpectralConfig {
    /// Hann window, mean removed, four equal bands `q1`..`q4` over 0..Nyquist of
    /// `sample_rate_hz`, three harmonics of the peak.
    pub fn new(sample_rate_hz: f64) -> Self {
        let q = sample_rate_hz / 8.0;
        Self {
            window: WindowFunction::Hann,
            remove_mean: true,
            bands: (0..4)
                .map(|i| {
                    let hi = if i == 3 {
                        f64::INFINITY
                    } else {
                        (i + 1) as f64 * q
                    };
                    FrequencyBand::new(format!("q{}", i + 1), i as f64 * q, hi)
                })
                .collect(),
            harmonics: 3,
            fundamental: Fundamental::Peak,
            harmonic_tolerance_bins: 1,
        }
    }
}

/// Wavelet family settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaveletConfig {
    /// Wavelet. Default db4.
    pub wavelet: Wavelet,
    /// Decomposition levels. Default 4.
    pub levels: usize,
}

impl Default for WaveletConfig {
    fn default() -> Self {
        Self {
            wavelet: Wavelet::Db4,
            levels: 4,
        }
    }
}

/// Which features to compute, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureConfig {
    /// Sample rate of the windows, Hz.
    pub sample_rate_hz: f64,
    /// Time-domain family.
    pub time: bool,
    /// Spectral family; `None` disables it.
    pub spectral: Option<SpectralConfig>,
    /// Wavelet family; `None` disables it.
    pub wavelet: Option<WaveletConfig>,
}

impl FeatureConfig {
    /// Time-domain features only (process and temperature channels).
    pub fn time_only(sample_rate_hz: f64) -> Self {
        Self {
            sample_rate_hz,
            time: true,
            spectral: None,
            wavelet: None,
        }
    }

    /// Every family with default settings (vibration channels).
    pub fn vibration(sample_rate_hz: f64) -> Self {
        Self {
            sample_rate_hz,
            time: true,
            spectral: Some(SpectralConfig::new(sample_rate_hz)),
            wavelet: Some(WaveletConfig::default()),
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return Err(Error::invalid(
                "sample rate",
                format!("{} Hz is not a positive finite rate", self.sample_rate_hz),
            ));
        }
        if !self.time && self.spectral.is_none() && self.wavelet.is_none() {
            return Err(Error::invalid("feature config", "every family is disabled"));
        }
        if let Some(s) = &self.spectral {
            let mut seen = std::collections::HashSet::new();
            for b in &s.bands {
                let ok_name = !b.name.is_empty()
                    && b.name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !ok_name {
                    return Err(Error::invalid(
                        "band name",
                        format!("{:?} must be lower-case letters, digits and _", b.name),
                    ));
                }
                if !seen.insert(b.name.as_str()) {
                    return Err(Error::invalid(
                        "band name",
                        format!("{:?} is used twice", b.name),
                    ));
                }
                if b.low_hz.is_nan() || b.high_hz.is_nan() || b.low_hz > b.high_hz {
                    return Err(Error::invalid(
                        "band edges",
                        format!("band {:?}: {} .. {} Hz", b.name, b.low_hz, b.high_hz),
                    ));
                }
            }
            if let Fundamental::Hz(f) = s.fundamental
                && !(f.is_finite() && f > 0.0)
            {
                return Err(Error::invalid(
                    "fundamental",
                    format!("{f} Hz is not a positive finite frequency"),
                ));
            }
        }
        Ok(())
    }
}

/// Computes feature vectors; build one per configuration (and per thread) and reuse it.
#[derive(Debug)]
pub struct FeatureExtractor {
    config: FeatureConfig,
    names: Vec<String>,
    spectrum: Option<SpectrumAnalyzer>,
    wavelet: Option<WaveletTransform>,
    harmonics: Vec<f64>,
}

impl FeatureExtractor {
    /// An extractor for `config`; refuses an invalid configuration.
    pub fn new(config: FeatureConfig) -> Result<Self> {
        config.validate()?;
        let mut names = Vec::new();
        if config.time {
            names.extend(TIME_FEATURE_NAMES.iter().map(|s| s.to_string()));
        }
        let spectrum = config.spectral.as_ref().map(|s| {
            names.extend(
                [
                    "spectral_peak_frequency_hz",
                    "spectral_peak_amplitude",
                    "spectral_centroid_hz",
                    "spectral_entropy",
                    "spectral_total_power",
                ]
                .map(String::from),
            );
            for b in &s.bands {
                names.push(format!("band_energy_{}", b.name));
                names.push(format!("band_energy_ratio_{}", b.name));
            }
            if s.harmonics > 0 {
                names.push("harmonic_fundamental_hz".into());
                names.extend((1..=s.harmonics).map(|h| format!("harmonic_{h}_amplitude")));
            }
            SpectrumAnalyzer::new(s.window).with_mean_removal(s.remove_mean)
        });
        let wavelet = match &config.wavelet {
            Some(w) => {
                let t = WaveletTransform::new(w.wavelet, w.levels)?;
                let labels: Vec<String> = std::iter::once(format!("a{}", w.levels))
                    .chain((1..=w.levels).rev().map(|l| format!("d{l}")))
                    .collect();
                names.extend(labels.iter().map(|l| format!("wavelet_energy_{l}")));
                names.extend(labels.iter().map(|l| format!("wavelet_entropy_{l}")));
                Some(t)
            }
            None => None,
        };
        let harmonics = vec![0.0; config.spectral.as_ref().map_or(0, |s| s.harmonics)];
        Ok(Self {
            config,
            names,
            spectrum,
            wavelet,
            harmonics,
        })
    }

    /// Feature names, in the order of the values.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The configuration.
    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// The feature-set version, [`FULL_FEATURE_SET_VERSION`].
    pub fn version(&self) -> &'static str {
        FULL_FEATURE_SET_VERSION
    }

    /// Smallest window accepted (2 samples with the spectral family, else 1).
    pub fn min_len(&self) -> usize {
        if self.spectrum.is_some() { 2 } else { 1 }
    }

    /// Computes the features of `x` into `values` (cleared, then filled in the order of
    /// [`FeatureExtractor::names`]). Refuses an empty or too short window and non-finite samples;
    /// a feature that overflows is NaN, never infinite.
    pub fn extract_into(&mut self, x: &[f64], values: &mut Vec<f64>) -> Result<()> {
        values.clear();
        if x.is_empty() {
            return Err(Error::Empty);
        }
        if x.len() < self.min_len() {
            return Err(Error::TooShort {
                len: x.len(),
                min: self.min_len(),
            });
        }
        if self.config.time {
            let t = TimeFeatures::of(x).ok_or_else(|| non_finite(x))?;
            values.extend(t.named_all().iter().map(|(_, v)| *v));
        }
        if let (Some(sa), Some(cfg)) = (&mut self.spectrum, &self.config.spectral) {
            let s = sa.analyze(x, self.config.sample_rate_hz)?;
            let (pf, pa) = s.peak();
            let total = s.total_power();
            values.extend([pf, pa, s.centroid(), s.entropy(), total]);
            for b in &cfg.bands {
                let p = s.band_power(b.low_hz, b.high_hz);
                values.push(p);
                values.push(if total > 0.0 { p / total } else { 0.0 });
            }
            if cfg.harmonics > 0 {
                s.harmonics(
                    cfg.fundamental,
                    cfg.harmonic_tolerance_bins,
                    &mut self.harmonics,
                );
                values.push(s.fundamental_hz(cfg.fundamental));
                values.extend_from_slice(&self.harmonics);
            }
        }
        if let Some(wt) = &mut self.wavelet {
            let d = wt.decompose(x)?;
            let bands = d.levels() + 1;
            let start = values.len();
            values.resize(start + 2 * bands, 0.0);
            for (i, (_, c)) in d.bands().enumerate() {
                let (e, h) = wavelet::energy_and_entropy(c);
                values[start + i] = e;
                values[start + bands + i] = h;
            }
        }
        debug_assert_eq!(values.len(), self.names.len());
        // Finite samples whose squares overflow (a device's sentinel near f64::MAX) give an
        // infinite spread: not a figure. NaN, as any feature that cannot be computed.
        for v in values.iter_mut().filter(|v| v.is_infinite()) {
            *v = f64::NAN;
        }
        Ok(())
    }

    /// Computes the features of `x` as `(name, value)` pairs (allocates the names; prefer
    /// [`FeatureExtractor::extract_into`] on hot paths).
    pub fn extract(&mut self, x: &[f64]) -> Result<Vec<(String, f64)>> {
        let mut values = Vec::with_capacity(self.names.len());
        self.extract_into(x, &mut values)?;
        Ok(self.names.iter().cloned().zip(values).collect())
    }
}

fn non_finite(x: &[f64]) -> Error {
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Error::NonFinite { index },
        None => Error::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_line_up() {
        let mut fx = FeatureExtractor::new(FeatureConfig::vibration(1000.0)).expect("valid");
        let x: Vec<f64> = (0..1000)
            .map(|i| (2.0 * std::f64::consts::PI * 50.0 * i as f64 / 1000.0).sin())
            .collect();
        let mut v = Vec::new();
        fx.extract_into(&x, &mut v).expect("ok");
        assert_eq!(v.len(), fx.names().len());
        let named = fx.extract(&x).expect("ok");
        let get = |n: &str| named.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("spectral_peak_frequency_hz"), Some(50.0));
        assert_eq!(get("harmonic_fundamental_hz"), Some(50.0));
        assert!(get("band_energy_ratio_q1").expect("q1") > 0.99);
        assert!(get("wavelet_energy_a4").is_some() && get("wavelet_entropy_d1").is_some());
        let unique: std::collections::HashSet<_> = fx.names().iter().collect();
        assert_eq!(unique.len(), fx.names().len());
    }

    #[test]
    fn refuses_bad_configs_and_windows() {
        let mut c = FeatureConfig::vibration(100.0);
        if let Some(s) = &mut c.spectral {
            s.bands.push(FrequencyBand::new("Bad Name", 1.0, 2.0));
        }
        assert!(FeatureExtractor::new(c).is_err());
        assert!(FeatureExtractor::new(FeatureConfig::time_only(0.0)).is_err());
        let mut fx = FeatureExtractor::new(FeatureConfig::vibration(100.0)).expect("valid");
        let mut v = Vec::new();
        assert_eq!(fx.extract_into(&[], &mut v), Err(Error::Empty));
        assert_eq!(
            fx.extract_into(&[1.0], &mut v),
            Err(Error::TooShort { len: 1, min: 2 })
        );
        assert_eq!(
            fx.extract_into(&[1.0, f64::NAN], &mut v),
            Err(Error::NonFinite { index: 1 })
        );
    }

    #[test]
    fn a_feature_that_overflows_is_nan_never_infinite() {
        let mut fx = FeatureExtractor::new(FeatureConfig::vibration(100.0)).expect("valid");
        let mut v = Vec::new();
        let x: Vec<f64> = (0..64)
            .map(|i| if i % 2 == 0 { 1e200 } else { -1e200 })
            .collect();
        fx.extract_into(&x, &mut v).expect("finite samples");
        assert!(v.iter().all(|f| !f.is_infinite()), "{v:?}");
        assert!(v.iter().any(|f| f.is_nan()), "the spread overflowed: {v:?}");
    }

    #[test]
    fn bearing_fault_frequencies() {
        // A 6205-like bearing: 9 balls, d = 7.94 mm, D = 39.04 mm, 0°.
        let g = BearingGeometry {
            rolling_elements: 9,
            ball_diameter: 7.94,
            pitch_diameter: 39.04,
            contact_angle_deg: 0.0,
        };
        let f = g.fault_frequencies(29.95);
        assert!((f.bpfo - 107.36).abs() < 0.05, "{}", f.bpfo);
        assert!((f.bpfi - 162.19).abs() < 0.05, "{}", f.bpfi);
        let bands = g.fault_bands(29.95, 2.0);
        assert_eq!(bands[0].name, "bpfo");
    }
}
