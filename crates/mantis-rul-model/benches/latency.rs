//! Serving speed of the committed FD001 model: single-prediction latency (normalisation +
//! tract run + interval) and batch throughput.
//!
//! ```text
//! cargo bench -p mantis-rul-model --bench latency
//! ```

use std::time::{Duration, Instant};

use mantis_rul_model::RulModel;
use mantis_rul_model::cmapss::Dataset;
use mantis_rul_model::eval::{default_data_dir, models_dir};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; nothing to parse.
    for name in ["rul-cmapss-fd001", "rul-cmapss-fd003"] {
        let t0 = Instant::now();
        let model = RulModel::load_named(&models_dir(), name)?;
        let load = t0.elapsed();
        let ds = if name.ends_with("fd001") {
            "FD001"
        } else {
            "FD003"
        };
        let data = Dataset::load(&default_data_dir(), ds)?;
        let histories: Vec<&[mantis_rul_model::Cycle]> =
            data.test.iter().map(|e| &e.cycles[..]).collect();

        for h in histories.iter().take(20) {
            std::hint::black_box(model.predict(h)?);
        }
        let mut lat = Vec::with_capacity(2000);
        for i in 0..2000 {
            let h = histories[i % histories.len()];
            let t = Instant::now();
            std::hint::black_box(model.predict(h)?);
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "{name} ({}): load {:.0} ms; single prediction p50 {:.1} µs, p99 {:.1} µs",
            model.sidecar().arch,
            load.as_secs_f64() * 1e3,
            percentile(&lat, 0.5).as_secs_f64() * 1e6,
            percentile(&lat, 0.99).as_secs_f64() * 1e6
        );
        for batch in [100usize, 1000] {
            let hs: Vec<&[mantis_rul_model::Cycle]> =
                (0..batch).map(|i| histories[i % histories.len()]).collect();
            std::hint::black_box(model.predict_batch(&hs)?);
            let reps = if batch == 100 { 50 } else { 10 };
            let t = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(model.predict_batch(&hs)?);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{name}: batch of {batch}: {:.2} ms, {:.0} predictions/s",
                s * 1e3,
                batch as f64 / s
            );
        }
    }
    Ok(())
}
