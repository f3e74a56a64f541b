//! The per-asset anomaly model: one `mantis-ml` ensemble (robust z-score, isolation forest,
//! one-class SVM, autoencoder; each calibrated on the asset's own baseline) per sensor of the
//! asset, trained on the feature vectors of a period of normal operation. Pure, no I/O.
//!
//! **Score scale.** The ensemble's calibrated score `p` is ≈ uniform on the baseline (a
//! threshold `t` on it would flag the fraction `1 − t` of normal windows), so it is not what
//! the criticality thresholds (0.75 … 0.90) are compared with. The service compares the
//! *alarm score* `1 − (1 − p)^(1/5)` = `1 − exp(−S/5)`, where `S = −ln(1 − p)` is the
//! ensemble surprisal: 0.75 is a window rarer than 1 in ~1,000 baseline windows, 0.80 1 in
//! ~3,000, 0.85 1 in ~13,000, 0.90 1 in ~100,000 (the calibration's exponential tail
//! extrapolates beyond the baseline's largest score). Monotone in `p`, bounded in [0, 1].

use chrono::{DateTime, Utc};
use mantis_domain::{AssetId, FeatureVector, SensorId};
use mantis_ml::{DetectorKind, DriftReference, Ensemble, EnsembleConfig, Matrix};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Surprisal scale of the alarm score (see the module documentation).
pub const ALARM_SCALE: f64 = 5.0;
/// Features never used as model inputs (bookkeeping, not signal).
const EXCLUDED: [&str; 1] = ["sample_count"];
/// A feature must be finite in this fraction of the training windows to be an input.
const MIN_PRESENT: f64 = 0.95;
/// Quantile bins of the drift reference.
const DRIFT_BINS: usize = 10;
/// Fewest recent windows a drift figure is computed from (fewer say nothing about a
/// distribution).
pub const MIN_DRIFT_WINDOWS: usize = 10;
/// Version of the saved model format.
pub const FORMAT_VERSION: u32 = 1;

/// Maps an ensemble surprisal to the alarm score compared with the thresholds.
pub fn alarm_score(surprisal: f64) -> f64 {
    if surprisal.is_nan() {
        return 0.0;
    }
    (1.0 - (-surprisal.max(0.0) / ALARM_SCALE).exp()).clamp(0.0, 1.0)
}

/// How far one sensor's recent windows moved from the model's training distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorDrift {
    /// Windows compared.
    pub windows: usize,
    /// PSI per input feature.
    pub psi: Vec<(String, f64)>,
    /// The largest of them.
    pub max_psi: f64,
    /// The PSI that windows of the training distribution reach by chance at this sample size
    /// (see `mantis_ml::drift`).
    pub chance_psi: f64,
    /// `max_psi` above both [`mantis_ml::PSI_DRIFTED`] and `chance_psi`.
    pub drifted: bool,
}

/// Why a model could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Not enough windows of normal operation.
    #[error("sensor {sensor}: {got} windows of normal operation, at least {needed} needed")]
    TooFewWindows {
        /// The sensor.
        sensor: SensorId,
        /// Windows available.
        got: usize,
        /// Windows needed.
        needed: usize,
    },
    /// No sensor of the asset had usable feature vectors.
    #[error("no sensor of the asset has feature vectors in the training period")]
    NoSensors,
    /// The learning library refused the data.
    #[error("training failed: {0}")]
    Ml(#[from] mantis_ml::Error),
    /// The model could not be (de)serialised.
    #[error("model format: {0}")]
    Format(String),
}

/// How models are trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Windows per sensor needed to train. Default 60.
    pub min_windows: usize,
    /// At most this many (the newest) windows per sensor are used. Default 5000.
    pub max_windows: usize,
    /// The ensemble (members, calibration). Default: all four detectors, cross-fitted.
    pub ensemble: EnsembleConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            min_windows: 60,
            max_windows: 5000,
            ensemble: EnsembleConfig::default(),
        }
    }
}

/// One sensor's part of an asset model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SensorModel {
    /// Input features, in column order.
    pub features: Vec<String>,
    /// Training medians, used for a feature missing from a window.
    pub medians: Vec<f64>,
    /// Training robust scales (1.4826 × MAD, floored), for the z-score an explanation shows.
    #[serde(default)]
    pub scales: Vec<f64>,
    /// The trained ensemble.
    pub ensemble: Ensemble,
    /// The training distribution of each feature (drift).
    pub drift: DriftReference,
    /// Training windows.
    pub windows: usize,
}

/// What training measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingReport {
    /// Windows used per sensor.
    pub windows: BTreeMap<SensorId, usize>,
    /// Features per sensor.
    pub features: BTreeMap<SensorId, usize>,
    /// Sensors left out for having too few windows (their windows), scored by the baseline:
    /// one sparse or new sensor does not keep the rest of the asset from having a model.
    #[serde(default)]
    pub skipped: BTreeMap<SensorId, usize>,
    /// Fraction of the training windows whose alarm score reaches 0.75 (in-sample; the
    /// calibration is cross-fitted, so this stays near the nominal 0.1 %).
    pub training_alarm_rate: f64,
    /// Seconds spent training.
    pub seconds: f64,
}

/// A trained model of one asset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssetModel {
    /// Format of the saved model.
    pub format: u32,
    /// The asset.
    pub asset_id: AssetId,
    /// First window start of the training period.
    pub trained_from: DateTime<Utc>,
    /// End of the training period (exclusive).
    pub trained_to: DateTime<Utc>,
    /// When it was trained.
    pub trained_at: DateTime<Utc>,
    /// The sensors it scores.
    pub sensors: BTreeMap<SensorId, SensorModel>,
    /// What training measured.
    pub report: TrainingReport,
}

/// One feature's part in a window's score.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// Feature name.
    pub feature: String,
    /// Observed value (the training median when the window lacked it).
    pub value: f64,
    /// Share of the ensemble's score, in [0, 1].
    pub share: f64,
    /// Robust z-score of the value against the training windows.
    pub z: f64,
}

/// The scores of one window under a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelScore {
    /// Alarm score in [0, 1], compared with the asset's threshold.
    pub alarm: f64,
    /// The ensemble's calibrated score in [0, 1].
    pub ensemble: f64,
    /// Each detector's calibrated score.
    pub members: BTreeMap<DetectorKind, f64>,
    /// The features that contributed most, largest share first.
    pub contributions: Vec<Explained>,
}

impl AssetModel {
    /// Trains on `history` (each sensor's feature vectors of normal operation).
    pub fn train(
        asset_id: AssetId,
        history: &BTreeMap<SensorId, Vec<FeatureVector>>,
        config: &TrainConfig,
    ) -> Result<Self, TrainError> {
        let started = std::time::Instant::now();
        let mut sensors = BTreeMap::new();
        let mut report = TrainingReport::default();
        let (mut from, mut to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
        let (mut alarms, mut rows_total) = (0usize, 0usize);
        let needed = config.min_windows.max(10);
        for (sensor, vectors) in history {
            let vectors = &vectors[vectors.len().saturating_sub(config.max_windows)..];
            if vectors.len() < needed {
                report.skipped.insert(*sensor, vectors.len());
                continue;
            }
            let features = input_features(vectors);
            if features.is_empty() {
                continue;
            }
            let medians: Vec<f64> = features
                .iter()
                .map(|f| {
                    let mut v: Vec<f64> = vectors
                        .iter()
                        .filter_map(|fv| fv.features.get(f).copied())
                        .filter(|v| v.is_finite())
                        .collect();
                    v.sort_by(f64::total_cmp);
                    v.get(v.len() / 2).copied().unwrap_or(0.0)
                })
                .collect();
            let rows: Vec<Vec<f64>> = vectors
                .iter()
                .map(|fv| row(fv, &features, &medians))
                .collect();
            let scales: Vec<f64> = (0..features.len())
                .map(|j| {
                    let mut dev: Vec<f64> =
                        rows.iter().map(|r| (r[j] - medians[j]).abs()).collect();
                    dev.sort_by(f64::total_cmp);
                    let mad = dev.get(dev.len() / 2).copied().unwrap_or(0.0);
                    (1.4826 * mad).max(1e-3 * medians[j].abs()).max(1e-9)
                })
                .collect();
            let x = Matrix::from_rows(&rows)?;
            let ensemble = Ensemble::fit(&x, features.clone(), &config.ensemble)?;
            let drift = DriftReference::fit(&x, DRIFT_BINS)?;
            for r in &rows {
                if alarm_score(ensemble.score(r)?.ensemble_surprisal) >= 0.75 {
                    alarms += 1;
                }
            }
            rows_total += rows.len();
            for fv in vectors {
                from = Some(from.map_or(fv.window_start, |f| f.min(fv.window_start)));
                to = Some(to.map_or(fv.window_end, |t| t.max(fv.window_end)));
            }
            report.windows.insert(*sensor, vectors.len());
            report.features.insert(*sensor, features.len());
            sensors.insert(
                *sensor,
                SensorModel {
                    features,
                    medians,
                    scales,
                    ensemble,
                    drift,
                    windows: vectors.len(),
                },
            );
        }
        let (Some(trained_from), Some(trained_to)) = (from, to) else {
            // No sensor had enough windows: say which came closest.
            if let Some((sensor, got)) = report.skipped.iter().max_by_key(|(_, n)| **n) {
                return Err(TrainError::TooFewWindows {
                    sensor: *sensor,
                    got: *got,
                    needed,
                });
            }
            return Err(TrainError::NoSensors);
        };
        if !report.skipped.is_empty() {
            tracing::info!(asset = %asset_id, skipped = ?report.skipped, "sensors with too few windows left to the baseline");
        }
        report.training_alarm_rate = alarms as f64 / rows_total.max(1) as f64;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(Self {
            format: FORMAT_VERSION,
            asset_id,
            trained_from,
            trained_to,
            trained_at: Utc::now(),
            sensors,
            report,
        })
    }

    /// Scores a window of one of its sensors (`None`: the model does not know the sensor).
    pub fn score(&self, fv: &FeatureVector, top: usize) -> Option<Result<ModelScore, TrainError>> {
        let m = self.sensors.get(&fv.sensor_id)?;
        let x = row(fv, &m.features, &m.medians);
        Some((|| {
            let scores = m.ensemble.score(&x)?;
            let contributions = m
                .ensemble
                .explain(&x, top)?
                .into_iter()
                .map(|c| {
                    let value = x.get(c.feature).copied().unwrap_or(f64::NAN);
                    let z = match (m.medians.get(c.feature), m.scales.get(c.feature)) {
                        (Some(med), Some(scale)) => (value - med) / scale,
                        _ => f64::NAN,
                    };
                    Explained {
                        feature: c.name,
                        value,
                        share: c.share,
                        z,
                    }
                })
                .collect();
            Ok(ModelScore {
                alarm: alarm_score(scores.ensemble_surprisal),
                ensemble: scores.ensemble,
                members: scores
                    .members
                    .iter()
                    .map(|s| (s.kind, s.calibrated))
                    .collect(),
                contributions,
            })
        })())
    }

    /// Population stability index of each feature of `recent` windows of `sensor` against the
    /// training distribution, and whether it is drift (`None`: unknown sensor, or fewer than
    /// [`MIN_DRIFT_WINDOWS`]).
    pub fn drift(&self, sensor: SensorId, recent: &[FeatureVector]) -> Option<SensorDrift> {
        let m = self.sensors.get(&sensor)?;
        if recent.len() < MIN_DRIFT_WINDOWS {
            return None;
        }
        let rows: Vec<Vec<f64>> = recent
            .iter()
            .map(|fv| row(fv, &m.features, &m.medians))
            .collect();
        let x = Matrix::from_rows(&rows).ok()?;
        let psi = m.drift.psi(&x).ok()?;
        let max_psi = psi.iter().copied().fold(0.0, f64::max);
        Some(SensorDrift {
            windows: recent.len(),
            max_psi,
            chance_psi: m.drift.chance_psi(recent.len()),
            drifted: m.drift.drifted(max_psi, recent.len()),
            psi: m.features.iter().cloned().zip(psi).collect(),
        })
    }

    /// The model as bytes (JSON).
    pub fn save(&self) -> Result<Vec<u8>, TrainError> {
        serde_json::to_vec(self).map_err(|e| TrainError::Format(e.to_string()))
    }

    /// Loads a model saved by [`AssetModel::save`].
    pub fn load(bytes: &[u8]) -> Result<Self, TrainError> {
        let m: Self =
            serde_json::from_slice(bytes).map_err(|e| TrainError::Format(e.to_string()))?;
        if m.format != FORMAT_VERSION {
            return Err(TrainError::Format(format!(
                "model format {} (this version reads {FORMAT_VERSION})",
                m.format
            )));
        }
        Ok(m)
    }
}

/// The features usable as inputs: finite in nearly every window, not bookkeeping, and not
/// constant over the training period.
fn input_features(vectors: &[FeatureVector]) -> Vec<String> {
    let mut present: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    for fv in vectors {
        for (name, v) in &fv.features {
            if v.is_finite() && !EXCLUDED.contains(&name.as_str()) {
                let e = present
                    .entry(name)
                    .or_insert((0, f64::INFINITY, f64::NEG_INFINITY));
                e.0 += 1;
                e.1 = e.1.min(*v);
                e.2 = e.2.max(*v);
            }
        }
    }
    let needed = (MIN_PRESENT * vectors.len() as f64).ceil() as usize;
    present
        .into_iter()
        .filter(|(_, (n, lo, hi))| *n >= needed && hi > lo)
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn row(fv: &FeatureVector, features: &[String], medians: &[f64]) -> Vec<f64> {
    features
        .iter()
        .zip(medians)
        .map(|(f, m)| {
            fv.features
                .get(f)
                .copied()
                .filter(|v| v.is_finite())
                .unwrap_or(*m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mantis_domain::SensorType;

    fn fv(sensor: SensorId, i: i64, level: f64, noise: f64) -> FeatureVector {
        let start = DateTime::from_timestamp_millis(i * 10_000).expect("time");
        let wobble = ((i as f64) * 1.7).sin() * noise;
        FeatureVector {
            asset_id: AssetId(uuid::Uuid::nil()),
            sensor_id: sensor,
            sensor_type: SensorType::Vibration,
            window_start: start,
            window_end: start + chrono::Duration::seconds(10),
            feature_set_version: "v1".into(),
            features: [
                ("mean".to_string(), level + wobble),
                ("std".to_string(), 0.15 + wobble.abs() * 0.1),
                ("rms".to_string(), (level + wobble).abs()),
                ("peak_to_peak".to_string(), 0.6 + wobble.abs()),
                ("sample_count".to_string(), 10.0),
                ("constant".to_string(), 1.0),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn trained() -> (AssetModel, SensorId) {
        let sensor = SensorId(uuid::Uuid::from_u128(7));
        let history: BTreeMap<SensorId, Vec<FeatureVector>> =
            [(sensor, (0..80).map(|i| fv(sensor, i, 2.0, 0.1)).collect())]
                .into_iter()
                .collect();
        let config = TrainConfig {
            min_windows: 40,
            ..TrainConfig::default()
        };
        (
            AssetModel::train(AssetId(uuid::Uuid::nil()), &history, &config).expect("train"),
            sensor,
        )
    }

    #[test]
    fn alarm_score_maps_rarity_to_the_threshold_scale() {
        assert!((alarm_score(6.9) - 0.75).abs() < 0.01);
        assert!(alarm_score(0.0) == 0.0 && alarm_score(1e6) <= 1.0);
        assert!(alarm_score(8.0) < alarm_score(9.0));
        assert_eq!(alarm_score(f64::NAN), 0.0);
    }

    #[test]
    fn normal_windows_score_low_and_a_shifted_one_high_with_its_features_named() {
        let (model, sensor) = trained();
        assert_eq!(
            model.sensors[&sensor].features.len(),
            4,
            "sample_count and the constant are not inputs"
        );
        let normal = model
            .score(&fv(sensor, 200, 2.0, 0.1), 3)
            .expect("known")
            .expect("score");
        assert!(normal.alarm < 0.75, "normal window: {normal:?}");
        let shifted = model
            .score(&fv(sensor, 201, 6.0, 0.1), 3)
            .expect("known")
            .expect("score");
        assert!(shifted.alarm >= 0.9, "shifted window: {shifted:?}");
        assert_eq!(shifted.members.len(), 4);
        let top = &shifted.contributions[0];
        assert!(
            ["mean", "rms"].contains(&top.feature.as_str()),
            "{shifted:?}"
        );
        assert!(
            top.z > 5.0,
            "a level 4 above the training median is far out: {top:?}"
        );
    }

    #[test]
    fn an_unknown_sensor_is_not_scored_and_a_missing_feature_takes_the_median() {
        let (model, sensor) = trained();
        assert!(
            model
                .score(&fv(SensorId(uuid::Uuid::from_u128(8)), 1, 2.0, 0.1), 3)
                .is_none()
        );
        let mut partial = fv(sensor, 300, 2.0, 0.1);
        partial.features.remove("std");
        let s = model.score(&partial, 3).expect("known").expect("score");
        assert!(s.alarm < 0.75, "{s:?}");
    }

    #[test]
    fn too_little_history_is_refused_with_the_counts() {
        let sensor = SensorId(uuid::Uuid::from_u128(7));
        let history: BTreeMap<SensorId, Vec<FeatureVector>> =
            [(sensor, (0..12).map(|i| fv(sensor, i, 2.0, 0.1)).collect())]
                .into_iter()
                .collect();
        let err = AssetModel::train(
            AssetId(uuid::Uuid::nil()),
            &history,
            &TrainConfig::default(),
        )
        .expect_err("too few");
        assert!(
            matches!(
                err,
                TrainError::TooFewWindows {
                    got: 12,
                    needed: 60,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_sensor_with_too_few_windows_is_left_out_not_the_whole_asset() {
        let (a, b) = (
            SensorId(uuid::Uuid::from_u128(7)),
            SensorId(uuid::Uuid::from_u128(8)),
        );
        let history: BTreeMap<SensorId, Vec<FeatureVector>> = [
            (a, (0..80).map(|i| fv(a, i, 2.0, 0.1)).collect()),
            (b, (0..12).map(|i| fv(b, i, 2.0, 0.1)).collect()),
        ]
        .into_iter()
        .collect();
        let config = TrainConfig {
            min_windows: 40,
            ..TrainConfig::default()
        };
        let model = AssetModel::train(AssetId(uuid::Uuid::nil()), &history, &config)
            .expect("trained on the sensor that has the history");
        assert!(model.sensors.contains_key(&a));
        assert_eq!(model.report.skipped, BTreeMap::from([(b, 12)]));
        assert!(
            model.score(&fv(b, 100, 2.0, 0.1), 3).is_none(),
            "b: the baseline's"
        );
    }

    #[test]
    fn drift_is_low_on_the_training_distribution_and_high_after_a_shift() {
        let (model, sensor) = trained();
        assert!(
            model.drift(sensor, &[fv(sensor, 99, 9.0, 0.1)]).is_none(),
            "one window says nothing"
        );
        let same: Vec<FeatureVector> = (100..160).map(|i| fv(sensor, i, 2.0, 0.1)).collect();
        let moved: Vec<FeatureVector> = (100..160).map(|i| fv(sensor, i, 2.5, 0.1)).collect();
        let same = model.drift(sensor, &same).expect("drift");
        assert!(
            !same.drifted && same.max_psi < mantis_ml::PSI_DRIFTED,
            "{same:?}"
        );
        let moved = model.drift(sensor, &moved).expect("drift");
        assert!(
            moved.drifted && moved.max_psi > moved.chance_psi,
            "{moved:?}"
        );
    }

    #[test]
    fn a_saved_model_loads_and_scores_the_same() {
        let (model, sensor) = trained();
        let back = AssetModel::load(&model.save().expect("save")).expect("load");
        let w = fv(sensor, 500, 3.0, 0.1);
        assert_eq!(
            model.score(&w, 3).expect("a").expect("a").alarm,
            back.score(&w, 3).expect("b").expect("b").alarm
        );
    }
}
