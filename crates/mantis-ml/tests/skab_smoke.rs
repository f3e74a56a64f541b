//! The SKAB protocol on one real file, in debug mode: the arithmetic of the protocol.
//!
//! Reads `../shared/data/skab/valve1/0.csv` beside the repository (GPL-3.0 data, never copied
//! into it). Without that folder the test says so and passes: the data is not part of the repo.

use mantis_ml::skab::{self, SkabConfig, TRAIN_ROWS};
use mantis_ml::{AutoencoderConfig, CalibrationMode, DetectorConfig};
use std::path::PathBuf;

#[test]
fn one_file_through_the_protocol_counts_every_test_row_once() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/skab/valve1/0.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipped: {} not found (SKAB data lives outside the repo)",
            path.display()
        );
        return;
    };
    let file = skab::parse(&text).expect("a SKAB file");
    assert_eq!(file.sensors.len(), 8);
    assert_eq!(file.rows.len(), file.anomaly.len());
    assert!(
        file.anomaly[..TRAIN_ROWS].iter().all(|a| !a),
        "training rows are normal"
    );

    // A quick configuration: debug mode, in-sample calibration, a short autoencoder run.
    let mut config = SkabConfig::default();
    config.ensemble.calibration = CalibrationMode::InSample;
    for m in &mut config.ensemble.members {
        if let DetectorConfig::Autoencoder(a) = &mut m.detector {
            *a = AutoencoderConfig {
                epochs: 10,
                ..Default::default()
            };
        }
    }
    let result = skab::run_file(&file, &config).expect("protocol");
    let test_rows = file.rows.len() - TRAIN_ROWS;
    let positives = file.anomaly[TRAIN_ROWS..].iter().filter(|a| **a).count() as u64;
    assert_eq!(result.test_rows, test_rows);
    let names: Vec<&str> = result.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "robust_z",
            "isolation_forest",
            "one_class_svm",
            "autoencoder",
            "ensemble"
        ]
    );
    for r in &result.results {
        let c = r.confusion;
        assert_eq!(c.total() as usize, test_rows, "{}", r.name);
        assert_eq!(c.true_pos + c.false_neg, positives, "{}", r.name);
        let f1 = c.true_pos as f64 / (c.true_pos as f64 + (c.false_pos + c.false_neg) as f64 / 2.0);
        assert!((c.f1() - f1).abs() < 1e-12);
        assert!((0.0..=100.0).contains(&c.far()) && (0.0..=100.0).contains(&c.mar()));
    }
}
