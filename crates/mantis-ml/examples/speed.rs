//! Speed of each detector and of the ensemble: single-record scoring latency and batch
//! throughput, on SKAB data (the 8 raw sensor columns of one file: first 400 rows to train, the
//! rest to score). Prints figures; asserts nothing about time.
//!
//! ```text
//! cargo run --release -p mantis-ml --example speed -- ../shared/data/skab/valve1/0.csv [--json]
//! ```
//!
//! `reference/sklearn_speed.py` runs this with `--json` and scikit-learn on the same rows, and
//! prints both side by side.

use anyhow::Context;
use mantis_ml::skab::{self, TRAIN_ROWS};
use mantis_ml::{
    Autoencoder, Detector, Ensemble, EnsembleConfig, IsolationForest, Matrix, OneClassSvm, RobustZ,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Single calls timed per detector.
const SINGLE_CALLS: usize = 20_000;
/// Minimum wall time of the batch measurement.
const BATCH_TIME: Duration = Duration::from_millis(500);

struct Figures {
    name: &'static str,
    fit_ms: f64,
    single_median_us: f64,
    single_p99_us: f64,
    batch_rows_per_s: f64,
}

fn measure(
    name: &'static str,
    fit_ms: f64,
    test: &[Vec<f64>],
    score: impl Fn(&[f64]) -> f64,
) -> Figures {
    for x in test.iter().take(200) {
        black_box(score(x)); // warm-up
    }
    let mut times = Vec::with_capacity(SINGLE_CALLS);
    for i in 0..SINGLE_CALLS {
        let x = &test[i % test.len()];
        let t = Instant::now();
        black_box(score(black_box(x)));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let started = Instant::now();
    let mut rows = 0usize;
    while started.elapsed() < BATCH_TIME {
        for x in test {
            black_box(score(x));
        }
        rows += test.len();
    }
    Figures {
        name,
        fit_ms,
        single_median_us: times[times.len() / 2],
        single_p99_us: times[times.len() * 99 / 100],
        batch_rows_per_s: rows as f64 / started.elapsed().as_secs_f64(),
    }
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64() * 1e3))
}

fn main() -> anyhow::Result<()> {
    let mut path = "../shared/data/skab/valve1/0.csv".to_string();
    let mut json = false;
    for a in std::env::args().skip(1) {
        if a == "--json" {
            json = true;
        } else {
            path = a;
        }
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let file = skab::parse(&text)?;
    anyhow::ensure!(file.rows.len() > TRAIN_ROWS, "{path}: too few rows");
    let train = Matrix::from_rows(&file.rows[..TRAIN_ROWS])?;
    let test = &file.rows[TRAIN_ROWS..];

    let (rz, rz_ms) = timed(|| Ok(RobustZ::fit(&train)?))?;
    let (ifo, if_ms) = timed(|| Ok(IsolationForest::fit(&train, &Default::default())?))?;
    let (svm, svm_ms) = timed(|| Ok(OneClassSvm::fit(&train, &Default::default())?))?;
    let (ae, ae_ms) = timed(|| Ok(Autoencoder::fit(&train, &Default::default())?))?;
    let (ens, ens_ms) = timed(|| {
        Ok(Ensemble::fit(
            &train,
            file.sensors.clone(),
            &EnsembleConfig::default(),
        )?)
    })?;

    let nan = f64::NAN;
    let figures = [
        measure("robust_z", rz_ms, test, |x| rz.score(x).unwrap_or(nan)),
        measure("isolation_forest", if_ms, test, |x| {
            ifo.score(x).unwrap_or(nan)
        }),
        measure("one_class_svm", svm_ms, test, |x| {
            svm.score(x).unwrap_or(nan)
        }),
        measure("autoencoder", ae_ms, test, |x| ae.score(x).unwrap_or(nan)),
        measure("ensemble", ens_ms, test, |x| {
            ens.score(x).map_or(nan, |s| s.ensemble)
        }),
        measure("ensemble+explain", ens_ms, test, |x| {
            ens.explain(x, 3)
                .map_or(nan, |c| c.first().map_or(nan, |c| c.share))
        }),
    ];
    if json {
        let v: serde_json::Map<String, serde_json::Value> = figures
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    serde_json::json!({
                        "fit_ms": f.fit_ms,
                        "single_median_us": f.single_median_us,
                        "single_p99_us": f.single_p99_us,
                        "batch_rows_per_s": f.batch_rows_per_s,
                    }),
                )
            })
            .collect();
        println!("{}", serde_json::Value::Object(v));
        return Ok(());
    }
    println!(
        "{path}: {} training rows, {} scored rows, {} features; OCSVM support vectors: {}",
        train.rows(),
        test.len(),
        train.cols(),
        svm.n_support()
    );
    println!(
        "{:<18} {:>10} {:>14} {:>12} {:>16}",
        "detector", "fit ms", "single µs p50", "single p99", "batch rows/s"
    );
    for f in &figures {
        println!(
            "{:<18} {:>10.1} {:>14.2} {:>12.2} {:>16.0}",
            f.name, f.fit_ms, f.single_median_us, f.single_p99_us, f.batch_rows_per_s
        );
    }
    Ok(())
}
