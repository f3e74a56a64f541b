//! C-MAPSS benchmark of the committed deep RUL models, next to the published results.
//!
//! ```text
//! cargo run --release -p mantis-rul-model --example cmapss_eval -- ../shared/data/cmapss
//! ```
//!
//! The data directory is taken relative to the repository root (whatever the current
//! directory); it defaults to `../shared/data/cmapss`.

use std::path::PathBuf;
use std::process::ExitCode;

use mantis_rul_model::RulModel;
use mantis_rul_model::cmapss::Dataset;
use mantis_rul_model::eval::{evaluate, evaluate_tree, models_dir, resolve_from_repo_root};
use mantis_rul_model::tree::TreeConfig;

/// Seeds of the in-platform tree model (`MANTIS_TREE_SEEDS` overrides).
const TREE_SEEDS: u64 = 5;

const PUBLISHED: [(&str, f64, f64); 5] = [
    ("LSTM (Zheng 2017)", 16.14, 16.18),
    ("DCNN (Li 2018)", 12.61, 12.64),
    ("MS-DCNN (2020)", 11.44, 11.67),
    ("MTSTAN", 10.97, 10.90),
    ("Random forest, last cycle", 18.3, 21.4),
];

fn main() -> ExitCode {
    let arg = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/cmapss"));
    let data = resolve_from_repo_root(&arg);
    match run(&data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmapss_eval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(data: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("C-MAPSS test sets, one prediction per engine from its last window of cycles,");
    println!(
        "scored against the unclipped true RUL (data: {})\n",
        data.display()
    );
    println!(
        "{:<8} {:<60} {:>7} {:>9} {:>13} {:>7} {:>12}",
        "dataset", "model", "RMSE", "PHM08", "cover. (90%)", "q90", "|Rust-py|"
    );
    let mut ours = Vec::new();
    for ds in ["FD001", "FD003"] {
        let name = format!("rul-cmapss-{}", ds.to_lowercase());
        let model = RulModel::load_named(&models_dir(), &name)?;
        let dataset = Dataset::load(data, ds)?;
        let r = evaluate(&model, &dataset)?;
        let label = format!(
            "MANTIS {} {}-cycle ({name})",
            model.sidecar().arch,
            model.sidecar().window
        );
        println!(
            "{:<8} {:<60} {:>7.2} {:>9.1} {:>12.1}% {:>7.1} {:>12}",
            ds,
            label,
            r.rmse,
            r.phm08,
            100.0 * r.coverage,
            r.q90,
            r.max_diff_vs_pipeline
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.1e}")),
        );
        let seeds = &model.sidecar().scores["over_seeds"];
        ours.push((ds, seeds["test_rmse"].clone(), seeds["test_phm08"].clone()));
    }
    for (ds, rmse, score) in &ours {
        println!(
            "{:<8} {:<60} {:>7} {:>9}   (pipeline, mean ± std over seeds)",
            ds,
            "MANTIS, all training seeds",
            format!(
                "{:.2}±{:.2}",
                rmse["mean"].as_f64().unwrap_or(f64::NAN),
                rmse["std"].as_f64().unwrap_or(f64::NAN)
            ),
            format!(
                "{:.0}±{:.0}",
                score["mean"].as_f64().unwrap_or(f64::NAN),
                score["std"].as_f64().unwrap_or(f64::NAN)
            ),
        );
    }
    let seeds = std::env::var("MANTIS_TREE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(TREE_SEEDS);
    println!(
        "\nMANTIS in-platform tree model (trained here, in Rust, default settings), mean ± std over {seeds} seeds:"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>13} {:>13} {:>7} {:>8} {:>7} {:>10} {:>12}",
        "dataset",
        "RMSE",
        "PHM08",
        "cover. (90%)",
        "capped truth",
        "q90",
        "regimes",
        "trees",
        "train s",
        "predict µs"
    );
    for ds in ["FD001", "FD002", "FD003", "FD004"] {
        if !data.join(format!("train_{ds}.txt")).exists() {
            continue; // not every sub-dataset is shipped in ../shared/data
        }
        let dataset = Dataset::load(data, ds)?;
        let mut reports = Vec::new();
        for seed in 0..seeds {
            let config = TreeConfig {
                seed,
                ..TreeConfig::default()
            };
            reports.push(evaluate_tree(&dataset, &config)?);
        }
        let stat = |f: &dyn Fn(&mantis_rul_model::eval::TreeEvalReport) -> f64| {
            let v: Vec<f64> = reports.iter().map(f).collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt();
            (m, s)
        };
        let (rmse, rmse_sd) = stat(&|r| r.rmse);
        let (score, score_sd) = stat(&|r| r.phm08);
        let (cov, _) = stat(&|r| r.coverage);
        let (cov_capped, _) = stat(&|r| r.coverage_capped);
        let (q90, _) = stat(&|r| r.report.q90);
        let (trees, _) = stat(&|r| r.report.trees as f64);
        let (secs, _) = stat(&|r| r.report.seconds);
        let (pred, _) = stat(&|r| r.predict_seconds);
        println!(
            "{:<8} {:>12} {:>12} {:>12.1}% {:>12.1}% {:>7.1} {:>8} {:>7.0} {:>10.1} {:>12.1}",
            ds,
            format!("{rmse:.2}±{rmse_sd:.2}"),
            format!("{score:.0}±{score_sd:.0}"),
            100.0 * cov,
            100.0 * cov_capped,
            q90,
            reports.first().map_or(0, |r| r.report.regimes),
            trees,
            secs,
            pred * 1e6,
        );
    }
    println!("\npublished RMSE (FD001 / FD003):");
    for (m, a, b) in PUBLISHED {
        println!("  {m:<28} {a:>6.2} / {b:>6.2}");
    }
    Ok(())
}
