//! Invariants that must hold for any input: Parseval, filter stability and BIBO bounds,
//! streaming chunk invariance, scale/shift behaviour of every time-domain feature, linearity of
//! the wavelet transform, and range properties of resampling and the Hampel filter.

use mantis_dsp::clean::{HampelConfig, HampelFilter};
use mantis_dsp::filter::{FilterBand, SosFilter, butter};
use mantis_dsp::resample::{Interpolation, ResampleConfig, Resampler};
use mantis_dsp::spectrum::SpectrumAnalyzer;
use mantis_dsp::wavelet::{Wavelet, dwt_len, wavedec};
use mantis_dsp::window::{Symmetry, WindowFunction};
use mantis_dsp::{TimeFeatures, WindowStats};
use proptest::prelude::*;

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= rel * b.abs() + abs
}

fn signal(min_len: usize, max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1e3f64..1e3, min_len..max_len)
}

/// Integer-valued samples: sums and shifts are exact, so comparisons against the mean cannot
/// flip through rounding.
fn integer_signal() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((-50i32..50).prop_map(f64::from), 3..300)
}

fn window_fn() -> impl Strategy<Value = WindowFunction> {
    prop_oneof![
        Just(WindowFunction::Rectangular),
        Just(WindowFunction::Hann),
        Just(WindowFunction::Hamming),
        Just(WindowFunction::Blackman),
    ]
}

fn filter_band() -> impl Strategy<Value = FilterBand> {
    // Normalised frequencies (fraction of Nyquist) kept above 0.01 so that impulse responses
    // decay within the simulated length.
    prop_oneof![
        (0.01f64..0.99).prop_map(|w| FilterBand::LowPass { cutoff_hz: w }),
        (0.01f64..0.99).prop_map(|w| FilterBand::HighPass { cutoff_hz: w }),
        (0.01f64..0.9, 0.02f64..0.5).prop_map(|(lo, width)| FilterBand::BandPass {
            low_hz: lo,
            high_hz: (lo + width * (0.99 - lo)).max(lo + 1e-3),
        }),
    ]
}

/// `band` was drawn in units of the Nyquist frequency; rescale it to `fs`.
fn at_rate(band: FilterBand, fs: f64) -> FilterBand {
    let s = fs / 2.0;
    match band {
        FilterBand::LowPass { cutoff_hz } => FilterBand::LowPass {
            cutoff_hz: cutoff_hz * s,
        },
        FilterBand::HighPass { cutoff_hz } => FilterBand::HighPass {
            cutoff_hz: cutoff_hz * s,
        },
        FilterBand::BandPass { low_hz, high_hz } => FilterBand::BandPass {
            low_hz: low_hz * s,
            high_hz: high_hz * s,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Σ P_k equals the window-weighted mean square of the mean-removed frame.
    #[test]
    fn parseval(x in signal(2, 600), w in window_fn(), fs in 1.0f64..50_000.0) {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let win = w.coefficients(x.len(), Symmetry::Periodic);
        let num: f64 = x.iter().zip(&win).map(|(v, w)| ((v - mean) * w).powi(2)).sum();
        let den: f64 = win.iter().map(|w| w * w).sum();
        let mut sa = SpectrumAnalyzer::new(w);
        let s = sa.analyze(&x, fs).expect("spectrum");
        let scale = x.iter().map(|v| v * v).sum::<f64>() / n;
        prop_assert!(close(s.total_power(), num / den, 1e-9, 1e-12 * scale),
            "{} vs {}", s.total_power(), num / den);
        prop_assert_eq!(s.power().len(), x.len() / 2 + 1);
    }

    /// Amplitudes scale with |c|.
    #[test]
    fn spectrum_is_homogeneous(x in signal(2, 300), c in -100.0f64..100.0) {
        let mut sa = SpectrumAnalyzer::new(WindowFunction::Hann);
        let a: Vec<f64> = sa.analyze(&x, 100.0).expect("spectrum").amplitude().to_vec();
        let y: Vec<f64> = x.iter().map(|v| v * c).collect();
        let b = sa.analyze(&y, 100.0).expect("spectrum").amplitude().to_vec();
        let peak = a.iter().fold(0.0f64, |m, v| m.max(*v));
        for (p, q) in a.iter().zip(&b) {
            prop_assert!(close(*q, c.abs() * p, 1e-9, 1e-12 * c.abs() * peak));
        }
    }

    /// Every Butterworth design has its poles inside the unit circle, and its output for a
    /// bounded input stays within the BIBO bound max|x| · Σ|h|.
    #[test]
    fn butterworth_filters_are_stable(
        order in 1usize..=8,
        band in filter_band(),
        fs in 10.0f64..50_000.0,
        x in prop::collection::vec(-1.0f64..1.0, 1..2000),
    ) {
        let sos = butter(order, at_rate(band, fs), fs).expect("design");
        prop_assert!(sos.is_stable());
        for p in sos.poles() {
            prop_assert!(p.norm() < 1.0);
        }
        let mut f = SosFilter::new(sos.clone());
        let h1 = f.process_sample(1.0);
        let mut l1 = h1.abs();
        for _ in 0..40_000 {
            l1 += f.process_sample(0.0).abs();
        }
        let mut g = SosFilter::new(sos);
        let peak = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for v in &x {
            let y = g.process_sample(*v);
            prop_assert!(y.is_finite());
            prop_assert!(y.abs() <= peak * l1 * (1.0 + 1e-9) + 1e-12, "{} > {}", y.abs(), peak * l1);
        }
    }

    /// Filtering in arbitrary chunks equals filtering in one pass, exactly.
    #[test]
    fn streaming_is_chunk_invariant(
        x in signal(1, 500),
        cuts in prop::collection::vec(0usize..500, 0..6),
        order in 1usize..6,
    ) {
        let sos = butter(order, FilterBand::BandPass { low_hz: 5.0, high_hz: 20.0 }, 100.0)
            .expect("design");
        let mut whole = x.clone();
        SosFilter::new(sos.clone()).process_in_place(&mut whole);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (x.len() + 1)).collect();
        cuts.sort_unstable();
        let mut f = SosFilter::new(sos);
        let mut y = x.clone();
        let mut start = 0;
        for c in cuts.into_iter().chain([x.len()]) {
            f.process_in_place(&mut y[start..c]);
            start = c;
        }
        prop_assert_eq!(y, whole);
    }

    /// Shifting by s: location features move by s, spread and shape are unchanged.
    #[test]
    fn time_features_under_shift(x in integer_signal(), s in -1000i32..1000) {
        let s = f64::from(s);
        let y: Vec<f64> = x.iter().map(|v| v + s).collect();
        let (a, b) = (TimeFeatures::of(&x).expect("f"), TimeFeatures::of(&y).expect("f"));
        let scale = a.std.max(1.0) + s.abs();
        prop_assert!(close(b.mean, a.mean + s, 1e-12, 1e-12 * scale));
        prop_assert_eq!((b.min, b.max), (a.min + s, a.max + s));
        prop_assert_eq!(b.peak_to_peak, a.peak_to_peak);
        prop_assert!(close(b.std, a.std, 1e-9, 1e-12 * scale));
        if a.std > 0.0 {
            prop_assert!(close(b.kurtosis, a.kurtosis, 1e-6, 1e-9));
            prop_assert!(close(b.skewness, a.skewness, 1e-6, 1e-9));
        }
        prop_assert_eq!(b.mean_crossing_rate, a.mean_crossing_rate);
        let sa = WindowStats::of(&x).expect("stats");
        let sb = WindowStats::of(&y).expect("stats");
        prop_assert_eq!(sa.count, sb.count);
        prop_assert!(close(sb.std, sa.std, 1e-9, 1e-12 * scale));
    }

    /// Scaling by c ≠ 0: amplitude features scale by |c| (or c), dimensionless ones do not
    /// change (skewness flips sign with c).
    #[test]
    fn time_features_under_scale(x in signal(2, 400), c in prop_oneof![0.001f64..1000.0, -1000.0f64..-0.001]) {
        let y: Vec<f64> = x.iter().map(|v| v * c).collect();
        let (a, b) = (TimeFeatures::of(&x).expect("f"), TimeFeatures::of(&y).expect("f"));
        let tol = |u: f64, v: f64| close(u, v, 1e-9, 1e-12 * a.rms.max(1e-300) * c.abs());
        prop_assert!(tol(b.mean, c * a.mean));
        prop_assert!(tol(b.std, c.abs() * a.std));
        prop_assert!(tol(b.rms, c.abs() * a.rms));
        prop_assert!(tol(b.peak_to_peak, c.abs() * a.peak_to_peak));
        let (lo, hi) = if c > 0.0 { (a.min, a.max) } else { (a.max, a.min) };
        prop_assert!(tol(b.min, c * lo) && tol(b.max, c * hi));
        let same = |u: f64, v: f64| close(u, v, 1e-9, 1e-12);
        prop_assert!(same(b.crest_factor, a.crest_factor));
        prop_assert!(same(b.shape_factor, a.shape_factor));
        prop_assert!(same(b.impulse_factor, a.impulse_factor));
        prop_assert!(same(b.clearance_factor, a.clearance_factor));
        if a.std > 1e-6 * a.rms {
            prop_assert!(close(b.kurtosis, a.kurtosis, 1e-7, 1e-9));
            prop_assert!(close(b.skewness, c.signum() * a.skewness, 1e-7, 1e-9));
        }
        if c > 0.0 {
            prop_assert_eq!(b.zero_crossing_rate, a.zero_crossing_rate);
        }
        for v in [a.zero_crossing_rate, a.mean_crossing_rate] {
            prop_assert!((0.0..=1.0).contains(&v));
        }
        prop_assert!(a.crest_factor >= 1.0 - 1e-12 || a.rms == 0.0);
        prop_assert!(a.shape_factor >= 1.0 - 1e-12 || a.rms == 0.0);
    }

    /// The DWT is linear, and each band has pywt's length.
    #[test]
    fn wavelet_transform_is_linear(
        pair in (1usize..300).prop_flat_map(|n| (
            prop::collection::vec(-10.0f64..10.0, n),
            prop::collection::vec(-10.0f64..10.0, n),
        )),
        a in -5.0f64..5.0,
        b in -5.0f64..5.0,
        level in 1usize..6,
    ) {
        let (x, y) = pair;
        let z: Vec<f64> = x.iter().zip(&y).map(|(u, v)| a * u + b * v).collect();
        let (cx, cy, cz) = (
            wavedec(&x, Wavelet::Db4, level).expect("x"),
            wavedec(&y, Wavelet::Db4, level).expect("y"),
            wavedec(&z, Wavelet::Db4, level).expect("z"),
        );
        let mut n = x.len();
        let mut lens = Vec::new();
        for _ in 0..level {
            n = dwt_len(n, 8);
            lens.push(n);
        }
        prop_assert_eq!(cz[0].len(), n);
        for (i, band) in cz.iter().enumerate().skip(1) {
            prop_assert_eq!(band.len(), lens[level - i]);
        }
        let scale = 10.0 * (a.abs() + b.abs()) * 2f64.powi(level as i32);
        for ((bx, by), bz) in cx.iter().zip(&cy).zip(&cz) {
            for ((u, v), w) in bx.iter().zip(by).zip(bz) {
                prop_assert!(close(*w, a * u + b * v, 1e-9, 1e-12 * scale));
            }
        }
    }

    /// Resampled values stay within the range of the readings; resampling a regular signal at
    /// its own rate returns it.
    #[test]
    fn resampling_stays_in_range(
        steps in prop::collection::vec(0.001f64..0.05, 2..300),
        x0 in signal(300, 301),
        rate in 10.0f64..500.0,
        hold in any::<bool>(),
    ) {
        let mut t = Vec::with_capacity(steps.len());
        let mut acc = 0.0;
        for s in &steps {
            acc += s;
            t.push(acc);
        }
        let x = &x0[..t.len()];
        let method = if hold { Interpolation::Hold } else { Interpolation::Linear };
        let r = Resampler::new(ResampleConfig { rate_hz: rate, method, max_gap_s: f64::INFINITY, origin_s: None, jitter: 0.0 })
            .expect("config")
            .resample(&t, x)
            .expect("resample");
        let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
        for v in &r.values {
            prop_assert!(*v >= lo - 1e-9 && *v <= hi + 1e-9);
        }
        prop_assert_eq!(r.segments.len(), 1);
        let expected = ((t[t.len() - 1] - t[0]) * rate).floor() as usize + 1;
        prop_assert!(r.values.len().abs_diff(expected) <= 1);

        let regular: Vec<f64> = (0..x.len()).map(|i| i as f64 / rate).collect();
        let same = Resampler::new(ResampleConfig { rate_hz: rate, method, max_gap_s: f64::INFINITY, origin_s: Some(0.0), jitter: 0.0 })
            .expect("config")
            .resample(&regular, x)
            .expect("resample");
        prop_assert_eq!(&same.values[..], x);
    }

    /// The Hampel filter only ever writes medians of the input: output within the input range,
    /// and the count equals the number of changed samples.
    #[test]
    fn hampel_output_is_in_range(x in signal(1, 400), k in 1usize..8, n_sigmas in 0.0f64..5.0) {
        let mut h = HampelFilter::new(HampelConfig { half_width: k, n_sigmas, signal_floor: false }).expect("config");
        let mut y = x.clone();
        let replaced = h.apply(&mut y).expect("hampel");
        let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
        prop_assert!(y.iter().all(|v| *v >= lo && *v <= hi));
        let changed = x.iter().zip(&y).filter(|(a, b)| a != b).count();
        prop_assert!(changed <= replaced);
    }
}
