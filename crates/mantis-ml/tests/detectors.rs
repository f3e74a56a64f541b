//! Behaviour of the detectors, calibration, ensemble, explanation and drift on synthetic data.

use mantis_ml::{
    Autoencoder, AutoencoderConfig, CalibrationMode, Calibrator, Detector, DriftReference,
    Ensemble, EnsembleConfig, IsolationForest, IsolationForestConfig, Matrix, OneClassSvm,
    OneClassSvmConfig, RobustZ, rng::Rng,
};

const D: usize = 5;

/// Correlated Gaussian rows: feature k = z_k + 0.5·z_0 (a shared factor).
fn normal_rows(rng: &mut Rng, n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            let base = rng.normal();
            (0..D)
                .map(|k| rng.normal() + 0.5 * base + k as f64)
                .collect()
        })
        .collect()
}

/// Rows 7 standard deviations out along a random direction.
fn outlier_rows(rng: &mut Rng, n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            let dir: Vec<f64> = (0..D).map(|_| rng.normal()).collect();
            let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            dir.iter()
                .enumerate()
                .map(|(k, v)| 7.0 * v / norm + k as f64)
                .collect()
        })
        .collect()
}

fn quick_ae() -> AutoencoderConfig {
    AutoencoderConfig {
        epochs: 60,
        ..Default::default()
    }
}

fn detectors(train: &Matrix) -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(RobustZ::fit(train).expect("robust z")),
        Box::new(IsolationForest::fit(train, &IsolationForestConfig::default()).expect("iforest")),
        Box::new(
            IsolationForest::fit(
                train,
                &IsolationForestConfig {
                    extension_level: D - 1,
                    ..Default::default()
                },
            )
            .expect("extended iforest"),
        ),
        Box::new(OneClassSvm::fit(train, &OneClassSvmConfig::default()).expect("ocsvm")),
        Box::new(Autoencoder::fit(train, &quick_ae()).expect("autoencoder")),
    ]
}

fn quick_ensemble_config() -> EnsembleConfig {
    let mut c = EnsembleConfig::default();
    for m in &mut c.members {
        if let mantis_ml::DetectorConfig::Autoencoder(a) = &mut m.detector {
            *a = quick_ae();
        }
    }
    c.calibration = CalibrationMode::CrossFit {
        folds: 3,
        contiguous: false,
    };
    c
}

#[test]
fn every_detector_scores_obvious_outliers_above_inliers() {
    let mut rng = Rng::new(1);
    let train = Matrix::from_rows(&normal_rows(&mut rng, 300)).expect("train");
    let inliers = normal_rows(&mut rng, 100);
    let outliers = outlier_rows(&mut rng, 50);
    for d in detectors(&train) {
        let mut inlier_scores: Vec<f64> =
            inliers.iter().map(|x| d.score(x).expect("score")).collect();
        inlier_scores.sort_by(f64::total_cmp);
        let p99 = inlier_scores[98];
        let caught = outliers
            .iter()
            .filter(|x| d.score(x).expect("score") > p99)
            .count();
        assert!(
            caught >= 45,
            "{}: only {caught}/50 outliers above the inliers' 99th percentile",
            d.kind()
        );
    }
}

#[test]
fn saved_and_loaded_models_give_identical_scores() {
    let mut rng = Rng::new(2);
    let train = Matrix::from_rows(&normal_rows(&mut rng, 200)).expect("train");
    let probe: Vec<Vec<f64>> = normal_rows(&mut rng, 20)
        .into_iter()
        .chain(outlier_rows(&mut rng, 20))
        .collect();
    let rz = RobustZ::fit(&train).expect("fit");
    let rz2 = RobustZ::load(&rz.save().expect("save")).expect("load");
    let ifo = IsolationForest::fit(&train, &Default::default()).expect("fit");
    let ifo2 = IsolationForest::load(&ifo.save().expect("save")).expect("load");
    let sv = OneClassSvm::fit(&train, &Default::default()).expect("fit");
    let sv2 = OneClassSvm::load(&sv.save().expect("save")).expect("load");
    let ae = Autoencoder::fit(&train, &quick_ae()).expect("fit");
    let ae2 = Autoencoder::load(&ae.save().expect("save")).expect("load");
    let ens = Ensemble::fit(&train, Vec::new(), &quick_ensemble_config()).expect("fit");
    let ens2 = Ensemble::load(&ens.save().expect("save")).expect("load");
    for x in &probe {
        assert_eq!(rz.score(x).expect("a"), rz2.score(x).expect("b"));
        assert_eq!(ifo.score(x).expect("a"), ifo2.score(x).expect("b"));
        assert_eq!(sv.score(x).expect("a"), sv2.score(x).expect("b"));
        assert_eq!(ae.score(x).expect("a"), ae2.score(x).expect("b"));
        assert_eq!(ens.score(x).expect("a"), ens2.score(x).expect("b"));
        assert_eq!(
            ens.explain(x, 3).expect("a"),
            ens2.explain(x, 3).expect("b")
        );
    }
}

#[test]
fn loading_rejects_garbage_and_wrong_dimensions_are_errors() {
    assert!(IsolationForest::load(b"{\"nope\":1}").is_err());
    assert!(Ensemble::load(b"not json").is_err());
    let mut rng = Rng::new(3);
    let train = Matrix::from_rows(&normal_rows(&mut rng, 50)).expect("train");
    let rz = RobustZ::fit(&train).expect("fit");
    assert!(rz.score(&[1.0, 2.0]).is_err());
    assert!(rz.score(&[f64::NAN, 0.0, 0.0, 0.0, 0.0]).is_err());
}

#[test]
fn calibration_is_uniform_on_its_baseline_and_monotone() {
    let mut rng = Rng::new(4);
    // A skewed raw score distribution, like a reconstruction error.
    let scores: Vec<f64> = (0..2000).map(|_| rng.normal().powi(2)).collect();
    let c = Calibrator::fit(&scores, 0.1).expect("fit");
    let mut p: Vec<f64> = scores.iter().map(|s| c.calibrate(*s)).collect();
    p.sort_by(f64::total_cmp);
    // Kolmogorov–Smirnov distance to U(0,1).
    let ks = p
        .iter()
        .enumerate()
        .map(|(i, v)| (v - (i as f64 + 0.5) / p.len() as f64).abs())
        .fold(0.0, f64::max);
    assert!(ks < 0.05, "KS distance {ks}");
    let grid: Vec<f64> = (0..4000).map(|i| -1.0 + i as f64 * 0.01).collect();
    let cal: Vec<f64> = grid.iter().map(|s| c.calibrate(*s)).collect();
    assert!(cal.windows(2).all(|w| w[0] <= w[1]), "monotone");
    assert!(cal.iter().all(|v| (0.0..=1.0).contains(v)));
    let sur: Vec<f64> = grid.iter().map(|s| c.surprisal(*s)).collect();
    assert!(
        sur.windows(2).all(|w| w[0] <= w[1] + 1e-12),
        "surprisal monotone"
    );
}

#[test]
fn ensemble_scores_stay_in_unit_interval_and_rank_outliers_higher() {
    let mut rng = Rng::new(5);
    let train = Matrix::from_rows(&normal_rows(&mut rng, 300)).expect("train");
    let ens = Ensemble::fit(&train, Vec::new(), &quick_ensemble_config()).expect("fit");
    let inliers = normal_rows(&mut rng, 100);
    let mut probes = inliers.clone();
    probes.extend(outlier_rows(&mut rng, 50));
    probes.push(vec![1e6; D]);
    probes.push(vec![-1e6; D]);
    for x in &probes {
        let s = ens.score(x).expect("score");
        assert!((0.0..=1.0).contains(&s.ensemble), "{}", s.ensemble);
        assert!(
            s.members
                .iter()
                .all(|m| (0.0..=1.0).contains(&m.calibrated))
        );
    }
    let mean_in = inliers
        .iter()
        .map(|x| ens.score(x).expect("score").ensemble)
        .sum::<f64>()
        / 100.0;
    assert!(
        mean_in > 0.2 && mean_in < 0.8,
        "inliers ≈ uniform: {mean_in}"
    );
    for x in outlier_rows(&mut rng, 20) {
        assert!(ens.score(&x).expect("score").ensemble > 0.99);
    }
}

#[test]
fn explanation_names_the_perturbed_feature() {
    let mut rng = Rng::new(6);
    let train = Matrix::from_rows(&normal_rows(&mut rng, 300)).expect("train");
    let names: Vec<String> = (0..D).map(|k| format!("sensor{k}.rms")).collect();
    let ens = Ensemble::fit(&train, names, &quick_ensemble_config()).expect("fit");
    for feature in 0..D {
        let mut x: Vec<f64> = (0..D).map(|k| k as f64).collect();
        x[feature] += 8.0;
        let why = ens.explain(&x, 2).expect("explain");
        assert_eq!(why[0].feature, feature, "ensemble: {why:?}");
        assert_eq!(why[0].name, format!("sensor{feature}.rms"));
        assert!(why[0].share > 0.4, "{why:?}");
        // And every member, on its own, blames the same feature.
        for m in ens.members() {
            let c = m.detector.contributions(&x).expect("contributions");
            let top = (0..D)
                .max_by(|a, b| c[*a].total_cmp(&c[*b]))
                .expect("non-empty");
            assert_eq!(top, feature, "{}: {c:?}", m.detector.kind());
        }
    }
}

#[test]
fn psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() {
    let mut rng = Rng::new(7);
    let baseline = Matrix::from_rows(&normal_rows(&mut rng, 2000)).expect("baseline");
    let reference = DriftReference::fit(&baseline, 10).expect("fit");
    let same = Matrix::from_rows(&normal_rows(&mut rng, 2000)).expect("same");
    let psi = reference.psi(&same).expect("psi");
    assert!(psi.iter().all(|p| *p < 0.05), "{psi:?}");
    let shifted: Vec<Vec<f64>> = normal_rows(&mut rng, 2000)
        .into_iter()
        .map(|mut r| {
            r[2] += 1.0;
            r
        })
        .collect();
    let psi = reference
        .psi(&Matrix::from_rows(&shifted).expect("shifted"))
        .expect("psi");
    assert!(psi[2] > mantis_ml::PSI_DRIFTED, "{psi:?}");
    assert!(psi[0] < 0.05 && psi[4] < 0.05, "{psi:?}");
}

#[test]
fn a_few_windows_of_the_baseline_distribution_are_not_called_drift_but_a_shift_is() {
    // The anomaly service's case: a 60-window baseline, then 10..60 recent windows. The PSI
    // of a small sample is large by chance alone (an unsmoothed PSI of 10 stable windows was
    // ~5 on a demo machine); drift must also beat the chance level at that size.
    let mut rng = Rng::new(11);
    let baseline = Matrix::from_rows(&normal_rows(&mut rng, 60)).expect("baseline");
    let reference = DriftReference::fit(&baseline, 10).expect("fit");
    let mut false_calls = 0;
    for n in [10, 20, 30, 60] {
        assert!(reference.chance_psi(n) > reference.chance_psi(2 * n));
        for _ in 0..50 {
            let same = Matrix::from_rows(&normal_rows(&mut rng, n)).expect("same");
            let psi = reference.psi(&same).expect("psi");
            false_calls += psi.iter().filter(|p| reference.drifted(**p, n)).count();
        }
    }
    assert_eq!(false_calls, 0, "stable samples called drift");
    for n in [20, 60] {
        let shifted: Vec<Vec<f64>> = normal_rows(&mut rng, n)
            .into_iter()
            .map(|mut r| {
                r[1] += 3.0;
                r
            })
            .collect();
        let psi = reference
            .psi(&Matrix::from_rows(&shifted).expect("shifted"))
            .expect("psi");
        assert!(reference.drifted(psi[1], n), "n {n}: {psi:?}");
        assert!(!reference.drifted(psi[0], n), "n {n}: {psi:?}");
    }
}
