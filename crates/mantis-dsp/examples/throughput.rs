//! Throughput of the preprocessing and feature-extraction stages on one core, in samples/s.
//!
//! ```text
//! cargo run --release -p mantis-dsp --example throughput            # table
//! cargo run --release -p mantis-dsp --example throughput -- --json  # one JSON object
//! cargo run --release -p mantis-dsp --example throughput -- --json \
//!     --input windows.f64 --rate 100 --window 3000                 # caller's windows
//! ```
//!
//! Without `--input`, it synthesises 30 s windows of a vibration-like signal at 100 Hz (3 000
//! samples) and 25.6 kHz (768 000 samples) with jittered timestamps, NaNs, duplicate timestamps,
//! late readings and spikes. With `--input`, the file holds little-endian f64 samples, `--window`
//! per window (as `reference/compare_tsfresh.py` writes them); timestamps are the regular grid
//! with a small jitter. Each window goes through [`Preprocessor`] (Hampel k = 3, linear
//! resampling, 4th-order Butterworth streaming filter, window statistics) then
//! [`FeatureExtractor`] with `FeatureConfig::vibration` (every family). Single-threaded, so
//! samples/s is per core; times are medians per window.

use mantis_dsp::clean::{CleanConfig, HampelConfig};
use mantis_dsp::filter::FilterBand;
use mantis_dsp::pipeline::FilterConfig;
use mantis_dsp::resample::ResampleConfig;
use mantis_dsp::{FeatureConfig, FeatureExtractor, PreprocessConfig, Preprocessed, Preprocessor};
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    json: bool,
    input: Option<String>,
    rate: f64,
    window: usize,
    min_seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        json: false,
        input: None,
        rate: 100.0,
        window: 3000,
        min_seconds: 2.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => a.json = true,
            "--input" => a.input = Some(value("--input")?),
            "--rate" => {
                a.rate = value("--rate")?
                    .parse()
                    .map_err(|e| format!("--rate: {e}"))?
            }
            "--window" => {
                a.window = value("--window")?
                    .parse()
                    .map_err(|e| format!("--window: {e}"))?
            }
            "--min-seconds" => {
                a.min_seconds = value("--min-seconds")?
                    .parse()
                    .map_err(|e| format!("--min-seconds: {e}"))?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: throughput [--json] [--input FILE --rate HZ --window N] \
                            [--min-seconds S]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.window < 16 || a.rate.is_nan() || a.rate <= 0.0 {
        return Err("--window must be ≥ 16 and --rate > 0".into());
    }
    Ok(a)
}

/// xorshift64: deterministic pseudo-random numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A vibration-like window: shaft tone, resonance bursts at a fault rate, noise.
fn synth_window(fs: f64, n: usize, rng: &mut Rng) -> Vec<f64> {
    let shaft = 0.0117 * fs;
    (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            let tau = (t * 0.0419 * fs).fract() / (0.0419 * fs);
            0.3 * (2.0 * std::f64::consts::PI * shaft * t).sin()
                + (-tau * 0.05 * fs).exp() * (2.0 * std::f64::consts::PI * 0.117 * fs * tau).sin()
                + 0.05 * (rng.next() - 0.5)
        })
        .collect()
}

/// Readings as they arrive: jittered timestamps; with `dirty`, also NaNs, duplicates, late
/// readings and spikes (about 0.1 % each). The first and last readings sit on the grid, so the
/// resampled window has the nominal length: the FFT of a length with large prime factors (for
/// instance 767 999 = 19·83·487 instead of 768 000 = 2¹¹·3·5³) costs about twice as much.
fn readings(x: &[f64], fs: f64, rng: &mut Rng, dirty: bool) -> (Vec<f64>, Vec<f64>) {
    let last = x.len() - 1;
    let mut t: Vec<f64> = (0..x.len())
        .map(|i| {
            let jitter = if i == 0 || i == last {
                0.0
            } else {
                0.2 * (rng.next() - 0.5)
            };
            (i as f64 + jitter) / fs
        })
        .collect();
    let mut v = x.to_vec();
    if dirty {
        for i in 2..x.len() - 2 {
            let r = rng.next();
            if r < 0.001 {
                v[i] = f64::NAN;
            } else if r < 0.002 {
                t[i] = t[i - 1];
            } else if r < 0.003 {
                t.swap(i, i + 1);
            } else if r < 0.004 {
                v[i] += 20.0;
            }
        }
    }
    (t, v)
}

fn preprocess_config(fs: f64) -> PreprocessConfig {
    let band = if fs >= 2000.0 {
        FilterBand::BandPass {
            low_hz: 0.02 * fs,
            high_hz: 0.4 * fs,
        }
    } else {
        FilterBand::LowPass {
            cutoff_hz: 0.2 * fs,
        }
    };
    PreprocessConfig {
        clean: CleanConfig {
            hampel: Some(HampelConfig::default()),
            ..CleanConfig::default()
        },
        resample: ResampleConfig::new(fs),
        filter: Some(FilterConfig {
            order: 4,
            band,
            zero_phase: false,
        }),
    }
}

struct Report {
    name: String,
    rate: f64,
    window: usize,
    windows_timed: usize,
    features: usize,
    pre_s: f64,
    feat_s: f64,
}

impl Report {
    fn total_s(&self) -> f64 {
        self.pre_s + self.feat_s
    }
    fn per_s(&self, secs: f64) -> f64 {
        self.window as f64 / secs
    }
    fn json(&self) -> String {
        format!(
            "{{\"name\":\"{}\",\"rate_hz\":{},\"window_samples\":{},\"windows_timed\":{},\
             \"features\":{},\"preprocess_s_per_window\":{:e},\"features_s_per_window\":{:e},\
             \"total_s_per_window\":{:e},\"preprocess_samples_per_s\":{:.0},\
             \"features_samples_per_s\":{:.0},\"total_samples_per_s\":{:.0}}}",
            self.name,
            self.rate,
            self.window,
            self.windows_timed,
            self.features,
            self.pre_s,
            self.feat_s,
            self.total_s(),
            self.per_s(self.pre_s),
            self.per_s(self.feat_s),
            self.per_s(self.total_s())
        )
    }
}

/// Seconds of the median of `times` (a machine shared with other work stalls some windows:
/// the median is the figure of an undisturbed one).
fn median(times: &mut [Duration]) -> f64 {
    times.sort_unstable();
    times
        .get(times.len() / 2)
        .map_or(0.0, Duration::as_secs_f64)
}

/// Times preprocessing and features over `windows` (each `(t, x)`), repeating the set until
/// `min_seconds` have been spent; returns the median seconds per window of each stage.
fn run(
    name: &str,
    fs: f64,
    windows: &[(Vec<f64>, Vec<f64>)],
    min_seconds: f64,
) -> Result<Report, mantis_dsp::Error> {
    let mut pre = Preprocessor::new(preprocess_config(fs))?;
    let mut fx = FeatureExtractor::new(FeatureConfig::vibration(fs))?;
    let mut out = Preprocessed::default();
    let mut values = Vec::new();
    // Warm-up: plans, buffers, caches.
    if let Some((t, x)) = windows.first() {
        pre.process(t, x, &mut out)?;
        fx.extract_into(&out.signal.values, &mut values)?;
    }
    // Per-window times (the vectors grow outside the timed spans).
    let (mut pre_times, mut feat_times) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while pre_times.is_empty() || start.elapsed().as_secs_f64() < min_seconds {
        for (t, x) in windows {
            let a = Instant::now();
            pre.process(t, x, &mut out)?;
            let b = Instant::now();
            fx.extract_into(&out.signal.values, &mut values)?;
            let c = Instant::now();
            std::hint::black_box(&values);
            pre_times.push(b - a);
            feat_times.push(c - b);
        }
    }
    Ok(Report {
        name: name.to_string(),
        rate: fs,
        window: windows.first().map_or(0, |w| w.1.len()),
        windows_timed: pre_times.len(),
        features: fx.names().len(),
        pre_s: median(&mut pre_times),
        feat_s: median(&mut feat_times),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut reports = Vec::new();
    let result = (|| -> Result<(), String> {
        if let Some(path) = &args.input {
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            let samples: Vec<f64> = bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b)
                })
                .collect();
            if samples.len() < args.window {
                return Err(format!("{path}: fewer samples than one window"));
            }
            let windows: Vec<(Vec<f64>, Vec<f64>)> = samples
                .chunks_exact(args.window)
                .map(|x| readings(x, args.rate, &mut rng, false))
                .collect();
            reports.push(
                run("input", args.rate, &windows, args.min_seconds).map_err(|e| e.to_string())?,
            );
        } else {
            for (name, fs, n, count) in [
                ("30s@100Hz", 100.0, 3_000usize, 32usize),
                ("30s@25.6kHz", 25_600.0, 768_000, 2),
            ] {
                let windows: Vec<(Vec<f64>, Vec<f64>)> = (0..count)
                    .map(|_| {
                        let x = synth_window(fs, n, &mut rng);
                        readings(&x, fs, &mut rng, true)
                    })
                    .collect();
                reports.push(run(name, fs, &windows, args.min_seconds).map_err(|e| e.to_string())?);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("throughput: {e}");
        return ExitCode::FAILURE;
    }
    if args.json {
        let items: Vec<String> = reports.iter().map(Report::json).collect();
        println!("{{\"scenarios\":[{}]}}", items.join(","));
    } else {
        println!(
            "{:<12} {:>8} {:>9} {:>13} {:>13} {:>15} {:>15} {:>15}",
            "window",
            "samples",
            "features",
            "pre ms/win",
            "feat ms/win",
            "pre samples/s",
            "feat samples/s",
            "total samples/s"
        );
        for r in &reports {
            println!(
                "{:<12} {:>8} {:>9} {:>13.3} {:>13.3} {:>15.3e} {:>15.3e} {:>15.3e}",
                r.name,
                r.window,
                r.features,
                r.pre_s * 1e3,
                r.feat_s * 1e3,
                r.per_s(r.pre_s),
                r.per_s(r.feat_s),
                r.per_s(r.total_s())
            );
        }
        println!("(one thread, so samples/s is per core)");
    }
    ExitCode::SUCCESS
}
