//! Criterion benchmarks of every stage on 30 s windows at 100 Hz (3 000 samples) and at
//! 25.6 kHz (768 000 samples). Criterion prints the throughput in samples per second
//! (`thrpt`), one core. Run with `cargo bench -p mantis-dsp`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mantis_dsp::clean::{CleanConfig, HampelConfig, HampelFilter};
use mantis_dsp::filter::{FilterBand, SosFilter, ZeroPhaseFilter, butter};
use mantis_dsp::pipeline::FilterConfig;
use mantis_dsp::resample::{ResampleConfig, Resampled, Resampler};
use mantis_dsp::spectrum::SpectrumAnalyzer;
use mantis_dsp::wavelet::{Wavelet, WaveletTransform};
use mantis_dsp::window::{Symmetry, WindowFunction};
use mantis_dsp::{
    FeatureConfig, FeatureExtractor, PreprocessConfig, Preprocessed, Preprocessor, TimeFeatures,
};
use std::hint::black_box;
use std::time::Duration;

/// (label, sample rate, samples per 30 s window)
const CASES: [(&str, f64, usize); 2] = [("100Hz", 100.0, 3_000), ("25.6kHz", 25_600.0, 768_000)];

/// Deterministic vibration-like signal: two tones, a resonance burst train and pseudo-noise.
fn signal(fs: f64, n: usize) -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let t = i as f64 / fs;
            let tone = (2.0 * std::f64::consts::PI * 0.0117 * fs * t).sin()
                + 0.3 * (2.0 * std::f64::consts::PI * 0.0411 * fs * t).sin();
            let burst = (-((t * 7.3).fract()) * 40.0).exp()
                * (2.0 * std::f64::consts::PI * 0.12 * fs * t).sin();
            tone + burst + 0.1 * noise
        })
        .collect()
}

/// Readings with jittered timestamps, as they arrive before resampling.
fn readings(fs: f64, n: usize) -> (Vec<f64>, Vec<f64>) {
    let x = signal(fs, n);
    let t = (0..n)
        .map(|i| (i as f64 + 0.2 * ((i * 7919 % 13) as f64 / 13.0 - 0.5)) / fs)
        .collect();
    (t, x)
}

fn filter_band(fs: f64) -> FilterBand {
    if fs > 1000.0 {
        FilterBand::BandPass {
            low_hz: 500.0,
            high_hz: 10_000.0,
        }
    } else {
        FilterBand::LowPass { cutoff_hz: 20.0 }
    }
}

fn stages(c: &mut Criterion) {
    for (label, fs, n) in CASES {
        let x = signal(fs, n);
        let (t, raw) = readings(fs, n);
        let mut g = c.benchmark_group(format!("stages/{label}"));
        g.throughput(Throughput::Elements(n as u64));
        if n > 10_000 {
            g.sample_size(10);
            g.warm_up_time(Duration::from_millis(500));
            g.measurement_time(Duration::from_secs(3));
        } else {
            g.warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_secs(2));
        }

        let mut hampel = HampelFilter::new(HampelConfig::default()).expect("config");
        let mut y = x.clone();
        g.bench_function(BenchmarkId::new("hampel_k3", n), |b| {
            b.iter(|| {
                y.copy_from_slice(&x);
                black_box(hampel.apply(&mut y).expect("hampel"))
            })
        });

        let resampler = Resampler::new(ResampleConfig::new(fs)).expect("config");
        let mut out = Resampled::default();
        g.bench_function(BenchmarkId::new("resample_linear", n), |b| {
            b.iter(|| {
                resampler
                    .resample_into(&t, &raw, &mut out)
                    .expect("resample");
                black_box(out.values.len())
            })
        });

        let sos = butter(4, filter_band(fs), fs).expect("design");
        let mut streaming = SosFilter::new(sos.clone());
        g.bench_function(BenchmarkId::new("sosfilt_order4", n), |b| {
            b.iter(|| {
                y.copy_from_slice(&x);
                streaming.process_in_place(&mut y);
                black_box(y[n - 1])
            })
        });
        let mut zero_phase = ZeroPhaseFilter::new(sos);
        let mut z = Vec::new();
        g.bench_function(BenchmarkId::new("sosfiltfilt_order4", n), |b| {
            b.iter(|| {
                zero_phase.apply(&x, &mut z).expect("filtfilt");
                black_box(z[0])
            })
        });

        let mut w = vec![0.0; n];
        g.bench_function(BenchmarkId::new("window_hann", n), |b| {
            b.iter(|| {
                WindowFunction::Hann.fill(&mut w, Symmetry::Periodic);
                black_box(w[1])
            })
        });

        let mut sa = SpectrumAnalyzer::new(WindowFunction::Hann);
        g.bench_function(BenchmarkId::new("spectrum_hann", n), |b| {
            b.iter(|| {
                let s = sa.analyze(&x, fs).expect("spectrum");
                black_box((s.peak(), s.centroid(), s.entropy()))
            })
        });

        let mut wt = WaveletTransform::new(Wavelet::Db4, 4).expect("levels");
        g.bench_function(BenchmarkId::new("wavedec_db4_l4", n), |b| {
            b.iter(|| black_box(wt.decompose(&x).expect("dwt").approximation()[0]))
        });

        g.bench_function(BenchmarkId::new("time_features", n), |b| {
            b.iter(|| black_box(TimeFeatures::of(&x)))
        });

        let mut fx = FeatureExtractor::new(FeatureConfig::vibration(fs)).expect("config");
        let mut values = Vec::new();
        g.bench_function(BenchmarkId::new("feature_extraction_full", n), |b| {
            b.iter(|| {
                fx.extract_into(&x, &mut values).expect("features");
                black_box(values[0])
            })
        });

        let mut pre = Preprocessor::new(PreprocessConfig {
            clean: CleanConfig {
                hampel: Some(HampelConfig::default()),
                ..CleanConfig::default()
            },
            resample: ResampleConfig::new(fs),
            filter: Some(FilterConfig {
                order: 4,
                band: filter_band(fs),
                zero_phase: false,
            }),
        })
        .expect("config");
        let mut pp = Preprocessed::default();
        g.bench_function(BenchmarkId::new("preprocess_plus_features", n), |b| {
            b.iter(|| {
                pre.process(&t, &raw, &mut pp).expect("preprocess");
                fx.extract_into(&pp.signal.values, &mut values)
                    .expect("features");
                black_box(values[0])
            })
        });
        g.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
