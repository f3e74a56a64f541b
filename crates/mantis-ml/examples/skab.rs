//! The SKAB benchmark: runs the leaderboard protocol on every labelled file under the data
//! directory and prints a table per detector and for the ensemble, next to the leaderboard.
//!
//! ```text
//! cargo run --release -p mantis-ml --example skab -- ../shared/data/skab
//! ```
//!
//! Options (defaults are the configuration the README reports; none is tuned on test rows):
//!
//! * `--threshold T` (0.999), `--margin M` (0.0), `--open-after N` (1), `--close-after N` (1):
//!   the alert hysteresis applied to each calibrated score;
//! * `--window W` (60): rows in the causal rolling window;
//! * `--slow-ratio R` (0.65) / `--no-slow-rule`: the slow-sensor rule of `SkabConfig`;
//! * `--calibration in-sample|interleaved|contiguous` (interleaved): cross-fitting of the
//!   baseline scores;
//! * `--if-extension K` (0): Isolation Forest cuts over `K + 1` features (extended IF);
//! * `--without NAME`: drop a member (`robust_z`, `isolation_forest`, `one_class_svm`,
//!   `autoencoder`) from the ensemble;
//! * `--subset all|first-half|second-half` (all): the files, sorted by folder then number
//!   (the halves are a development / hold-out split);
//! * `--per-file`: one line per file and detector as well.

use anyhow::{Context, bail};
use mantis_ml::skab::{self, Confusion, SkabConfig};
use mantis_ml::{CalibrationMode, DetectorConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

struct Args {
    dir: PathBuf,
    config: SkabConfig,
    subset: String,
    per_file: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut dir = PathBuf::from("../shared/data/skab");
    let mut config = SkabConfig::default();
    let mut subset = "all".to_string();
    let mut per_file = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--threshold" => config.alert.threshold = value(&a)?.parse()?,
            "--margin" => config.alert.margin = value(&a)?.parse()?,
            "--open-after" => config.alert.open_after = value(&a)?.parse()?,
            "--close-after" => config.alert.close_after = value(&a)?.parse()?,
            "--window" => config.window = value(&a)?.parse()?,
            "--calibration" => {
                config.ensemble.calibration = match value(&a)?.as_str() {
                    "in-sample" => CalibrationMode::InSample,
                    "interleaved" => CalibrationMode::CrossFit {
                        folds: 5,
                        contiguous: false,
                    },
                    "contiguous" => CalibrationMode::CrossFit {
                        folds: 5,
                        contiguous: true,
                    },
                    other => bail!("unknown calibration {other}"),
                }
            }
            "--if-extension" => {
                let level: usize = value(&a)?.parse()?;
                for m in &mut config.ensemble.members {
                    if let DetectorConfig::IsolationForest(c) = &mut m.detector {
                        c.extension_level = level;
                    }
                }
            }
            "--without" => {
                let name = value(&a)?;
                config
                    .ensemble
                    .members
                    .retain(|m| m.detector.kind().as_str() != name);
            }
            "--slow-ratio" => config.slow_ratio = Some(value(&a)?.parse()?),
            "--no-slow-rule" => config.slow_ratio = None,
            "--subset" => subset = value(&a)?,
            "--per-file" => per_file = true,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            s => dir = PathBuf::from(s),
        }
    }
    Ok(Args {
        dir,
        config,
        subset,
        per_file,
    })
}

/// Labelled CSV files under `dir`, one level of folders deep, sorted by folder then number.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let mut csv: Vec<PathBuf> = std::fs::read_dir(&folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        csv.sort_by_key(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            let n = stem.as_deref().and_then(|s| s.parse::<u64>().ok());
            (n.unwrap_or(u64::MAX), stem)
        });
        out.extend(csv);
    }
    Ok(out)
}

fn row(name: &str, c: &Confusion) -> String {
    format!(
        "{name:<18} {:>6.3} {:>7.1} {:>7.1} {:>6} {:>6} {:>6} {:>6}",
        c.f1(),
        c.far(),
        c.mar(),
        c.true_pos,
        c.false_pos,
        c.false_neg,
        c.true_neg
    )
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let mut labelled = Vec::new();
    for path in files(&args.dir)? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        match skab::parse(&text) {
            Ok(f) => labelled.push((path, f)),
            Err(mantis_ml::Error::Skab { line: 1, reason }) => {
                println!("skipped {}: {reason}", path.display());
            }
            Err(e) => return Err(e).with_context(|| format!("parsing {}", path.display())),
        }
    }
    if labelled.is_empty() {
        bail!("no labelled SKAB files under {}", args.dir.display());
    }
    let half = labelled.len() / 2;
    let chosen: Vec<_> = match args.subset.as_str() {
        "all" => labelled.iter().collect(),
        "first-half" => labelled[..half].iter().collect(),
        "second-half" => labelled[half..].iter().collect(),
        other => bail!("unknown subset {other}"),
    };
    let mut pooled: BTreeMap<String, Confusion> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut test_rows = 0usize;
    for (path, file) in &chosen {
        let r = skab::run_file(file, &args.config)
            .with_context(|| format!("running {}", path.display()))?;
        test_rows += r.test_rows;
        for d in &r.results {
            if !order.contains(&d.name) {
                order.push(d.name.clone());
            }
            pooled.entry(d.name.clone()).or_default().add(&d.confusion);
            if args.per_file {
                println!("{:<28} {}", path.display(), row(&d.name, &d.confusion));
            }
        }
    }
    let c = &args.config;
    println!(
        "SKAB protocol: {} labelled files ({}), first {} rows of each for training, {} test rows",
        chosen.len(),
        args.subset,
        skab::TRAIN_ROWS,
        test_rows
    );
    println!(
        "features: causal rolling mean + std over {} rows of each sensor (slow-sensor rule: {}); \
         calibration {:?}; alert: threshold {} margin {} open after {} close after {}",
        c.window,
        c.slow_ratio.map_or("off".to_string(), |r| format!(
            "level → change when ratio > {r}"
        )),
        c.ensemble.calibration,
        c.alert.threshold,
        c.alert.margin,
        c.alert.open_after,
        c.alert.close_after
    );
    println!();
    println!(
        "{:<18} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6}",
        "detector", "F1", "FAR %", "MAR %", "TP", "FP", "FN", "TN"
    );
    for name in &order {
        let c = &pooled[name];
        assert_eq!(c.total() as usize, test_rows, "every test row counted once");
        println!("{}", row(name, c));
    }
    println!("-- SKAB leaderboard (outlier detection) --");
    println!(
        "{:<18} {:>6.3} {:>7.1} {:>7.1}",
        "Conv-AE", 0.78, 13.6, 28.0
    );
    println!(
        "{:<18} {:>6.3} {:>7.1} {:>7.1}",
        "Isolation Forest", 0.29, 2.6, 82.9
    );
    println!();
    println!("elapsed {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
