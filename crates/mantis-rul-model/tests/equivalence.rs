//! The committed models reproduce the training pipeline: tract's outputs equal Keras' on the
//! sidecar's fixed reference batch, the Rust normalisation equals the pipeline's, and the
//! C-MAPSS reader parses the data (`../shared/data/cmapss` beside the repository; CI has it).

use std::path::PathBuf;

use mantis_rul_model::cmapss::{self, Dataset};
use mantis_rul_model::eval::{default_data_dir, models_dir};
use mantis_rul_model::{Cycle, N_SETTINGS, RulModel};

const MODELS: [&str; 2] = ["rul-cmapss-fd001", "rul-cmapss-fd003"];

fn load(name: &str) -> RulModel {
    match RulModel::load_named(&models_dir(), name) {
        Ok(m) => m,
        Err(e) => panic!(
            "cannot load model {name} from {}: {e}",
            models_dir().display()
        ),
    }
}

fn data_dir() -> PathBuf {
    let dir = default_data_dir();
    assert!(
        dir.join("train_FD001.txt").is_file(),
        "the C-MAPSS data is missing: expected {} (the shared data set beside the repository, \
         ../shared/data/cmapss; see models/README.md)",
        dir.display()
    );
    dir
}

fn cycles_of(rows: &[Vec<f64>]) -> Vec<Cycle> {
    rows.iter()
        .map(|r| {
            assert_eq!(r.len(), 24, "reference row of 3 settings + 21 sensors");
            let mut c = Cycle {
                settings: [0.0; N_SETTINGS],
                sensors: [0.0; 21],
            };
            c.settings.copy_from_slice(&r[..3]);
            c.sensors.copy_from_slice(&r[3..]);
            c
        })
        .collect()
}

#[test]
fn tract_reproduces_keras_on_the_reference_batch() {
    for name in MODELS {
        let model = load(name);
        let reference = model.sidecar().reference.clone().expect("reference batch");
        let batch = reference.input.len();
        let flat: Vec<f32> = reference
            .input
            .iter()
            .flatten()
            .flatten()
            .map(|&v| v as f32)
            .collect();
        let out = model.run_normalised(batch, flat).expect("tract runs");
        for (i, (&rust, &keras)) in out.iter().zip(&reference.keras_output).enumerate() {
            let d = (f64::from(rust) - keras).abs();
            assert!(
                d <= 1e-4,
                "{name} window {i}: tract {rust} vs Keras {keras} (|d| = {d:e})"
            );
            let o = (f64::from(rust) - reference.onnxruntime_output[i]).abs();
            assert!(
                o <= 1e-4,
                "{name} window {i}: tract {rust} vs onnxruntime (|d| = {o:e})"
            );
        }
    }
}

#[test]
fn normalisation_and_predict_match_the_pipeline() {
    for name in MODELS {
        let model = load(name);
        let reference = model.sidecar().reference.clone().expect("reference batch");
        for (i, rows) in reference.raw_rows.iter().enumerate() {
            let cycles = cycles_of(rows);
            let x = model.normaliser().last_window(&cycles).expect("normalise");
            let expected: Vec<f64> = reference.input[i].iter().flatten().copied().collect();
            assert_eq!(x.len(), expected.len());
            for (k, (&a, &b)) in x.iter().zip(&expected).enumerate() {
                // Same f64 arithmetic, rounded to f32 on both sides: equal to the last bit.
                assert_eq!(f64::from(a), b, "{name} window {i} value {k}");
            }
            let p = model.predict(&cycles).expect("predict");
            let keras = reference.keras_output[i].max(0.0);
            assert!(
                (p.rul - keras).abs() <= 1e-4,
                "{name} window {i}: {} vs {keras}",
                p.rul
            );
            assert!(p.lower <= p.rul && p.rul <= p.upper);
        }
    }
}

#[test]
fn short_histories_are_front_padded() {
    let model = load(MODELS[0]);
    let reference = model.sidecar().reference.clone().expect("reference batch");
    let cycles = cycles_of(&reference.raw_rows[0]);
    let w = model.normaliser().window();
    let f = model.normaliser().n_inputs();
    let short = &cycles[cycles.len() - 5..];
    let x = model.normaliser().last_window(short).expect("normalise");
    assert_eq!(x.len(), w * f);
    let first = &x[(w - 5) * f..(w - 4) * f];
    for k in 0..w - 5 {
        assert_eq!(&x[k * f..(k + 1) * f], first, "padding row {k}");
    }
    assert!(model.predict(&[]).is_err(), "no cycles");
    let mut bad = short.to_vec();
    bad[2].sensors[model.sidecar().sensor_indices[0]] = f64::NAN;
    assert!(model.predict(&bad).is_err(), "NaN sensor");
}

#[test]
fn reader_parses_the_cmapss_files() {
    let dir = data_dir();
    for (name, train_rows, test_rows) in [("FD001", 20631, 13096), ("FD003", 24720, 16596)] {
        let d = Dataset::load(&dir, name).expect("C-MAPSS data set");
        assert_eq!(d.train.len(), 100);
        assert_eq!(d.test.len(), 100);
        assert_eq!(d.test_rul.len(), 100);
        let rows = |e: &[cmapss::Engine]| e.iter().map(|e| e.cycles.len()).sum::<usize>();
        assert_eq!(rows(&d.train), train_rows);
        assert_eq!(rows(&d.test), test_rows);
        assert_eq!(d.train[0].unit, 1);
    }
}

#[test]
fn rust_predictions_match_the_pipeline_on_the_test_engines() {
    let dir = data_dir();
    for (name, ds) in MODELS.iter().zip(["FD001", "FD003"]) {
        let model = load(name);
        let data = Dataset::load(&dir, ds).expect("C-MAPSS data set");
        let report = mantis_rul_model::eval::evaluate(&model, &data).expect("evaluate");
        let d = report
            .max_diff_vs_pipeline
            .expect("pipeline predictions in the sidecar");
        assert!(d <= 1e-3, "{name}: max |Rust - pipeline| = {d}");
    }
}
