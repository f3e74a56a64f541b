//! A per-sensor robust baseline: learned from the first windows of normal operation, then used
//! to score each new feature vector by robust z-scores (median and MAD). Pure, no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The features scored (names from `mantis-dsp`). Shape features (kurtosis, skewness, crest
/// factor) are too noisy on the short, slow windows of process sensors to be scored by a
/// per-feature z-score; they are kept in the feature vectors for the model-based detectors.
pub const SCORED_FEATURES: [&str; 4] = ["mean", "std", "rms", "peak_to_peak"];

/// MAD × 1.4826 estimates the standard deviation of a Gaussian.
const MAD_TO_SIGMA: f64 = 1.4826;
/// z-score at which the anomaly score is 0.5.
const Z_MID: f64 = 5.0;
/// Steepness of the z → score mapping.
const Z_SLOPE: f64 = 1.2;

/// Robust location and scale of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RobustStat {
    /// Median over the training windows.
    pub median: f64,
    /// Robust standard deviation (1.4826 × MAD), floored to stay positive.
    pub scale: f64,
}

/// One feature's part in a score.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureDeviation {
    /// Feature name.
    pub feature: String,
    /// Observed value.
    pub value: f64,
    /// Robust z-score (signed).
    pub z: f64,
}

/// The result of observing a feature vector.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Still learning: `seen` of `needed` windows.
    Learning {
        /// Windows learned so far.
        seen: usize,
        /// Windows needed.
        needed: usize,
        /// Whether the baseline changed (persist it).
        changed: bool,
    },
    /// Scored against the learned baseline.
    Scored {
        /// Score in [0,1].
        score: f64,
        /// Deviations, largest |z| first.
        deviations: Vec<FeatureDeviation>,
    },
}

/// A sensor's baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Windows needed before scoring.
    pub warmup: usize,
    /// Training feature values, per feature, while learning.
    pub training: BTreeMap<String, Vec<f64>>,
    /// Training windows seen.
    pub seen: usize,
    /// Start (ms) of the newest training window: older or equal ones are redeliveries.
    pub last_window_ms: Option<i64>,
    /// The learned statistics, once `warmup` windows were seen.
    pub model: Option<BTreeMap<String, RobustStat>>,
}

impl Baseline {
    /// A baseline that learns from `warmup` windows (at least 3).
    pub fn new(warmup: usize) -> Self {
        Self {
            warmup: warmup.max(3),
            training: BTreeMap::new(),
            seen: 0,
            last_window_ms: None,
            model: None,
        }
    }

    /// Learns from or scores the feature vector of the window starting at `window_ms`.
    pub fn observe(&mut self, window_ms: i64, features: &BTreeMap<String, f64>) -> Observation {
        if let Some(model) = &self.model {
            return score(model, features);
        }
        if self.last_window_ms.is_some_and(|last| window_ms <= last) {
            // A redelivered (or late) window: already learned, learn nothing twice.
            return Observation::Learning {
                seen: self.seen,
                needed: self.warmup,
                changed: false,
            };
        }
        for name in SCORED_FEATURES {
            if let Some(v) = features.get(name).filter(|v| v.is_finite()) {
                self.training.entry(name.to_owned()).or_default().push(*v);
            }
        }
        self.seen += 1;
        self.last_window_ms = Some(window_ms);
        if self.seen >= self.warmup {
            let model: BTreeMap<String, RobustStat> = self
                .training
                .iter()
                .filter_map(|(k, vs)| robust_stat(vs).map(|s| (k.clone(), s)))
                .collect();
            self.model = Some(model);
            self.training.clear();
        }
        Observation::Learning {
            seen: self.seen,
            needed: self.warmup,
            changed: true,
        }
    }

    /// Whether the baseline is learned.
    pub fn is_ready(&self) -> bool {
        self.model.is_some()
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn robust_stat(values: &[f64]) -> Option<RobustStat> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let med = median(&v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median(&dev);
    // With few training windows the MAD can come out small by chance; the sample standard
    // deviation bounds it from below. The last floor keeps a perfectly steady feature from
    // turning rounding noise into anomalies.
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let floor = 1e-3 * med.abs() + 1e-9;
    Some(RobustStat {
        median: med,
        scale: (MAD_TO_SIGMA * mad).max(0.75 * sd).max(floor),
    })
}

fn score(model: &BTreeMap<String, RobustStat>, features: &BTreeMap<String, f64>) -> Observation {
    let mut deviations: Vec<FeatureDeviation> = model
        .iter()
        .filter_map(|(name, stat)| {
            let value = *features.get(name)?;
            value.is_finite().then(|| FeatureDeviation {
                feature: name.clone(),
                value,
                z: (value - stat.median) / stat.scale,
            })
        })
        .collect();
    deviations.sort_by(|a, b| b.z.abs().total_cmp(&a.z.abs()));
    let z_max = deviations.first().map(|d| d.z.abs()).unwrap_or(0.0);
    Observation::Scored {
        score: z_to_score(z_max),
        deviations,
    }
}

/// Maps the largest robust z-score to [0,1]: 0.5 at z = 5, ≈0.77 at 6, ≈0.92 at 7.
pub fn z_to_score(z: f64) -> f64 {
    1.0 / (1.0 + (-Z_SLOPE * (z - Z_MID)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv(rms: f64, mean: f64) -> BTreeMap<String, f64> {
        [("rms".to_string(), rms), ("mean".to_string(), mean)]
            .into_iter()
            .collect()
    }

    fn trained() -> Baseline {
        let mut b = Baseline::new(10);
        for i in 0..10 {
            let jitter = (i as f64 * 0.37).sin() * 0.1;
            b.observe(i * 1000, &fv(2.0 + jitter, 50.0 + jitter));
        }
        b
    }

    #[test]
    fn learns_for_warmup_windows_then_scores() {
        let mut b = Baseline::new(3);
        assert!(matches!(
            b.observe(0, &fv(1.0, 1.0)),
            Observation::Learning {
                seen: 1,
                needed: 3,
                ..
            }
        ));
        b.observe(1, &fv(1.1, 1.0));
        b.observe(2, &fv(0.9, 1.0));
        assert!(b.is_ready());
        assert!(matches!(
            b.observe(3, &fv(1.0, 1.0)),
            Observation::Scored { .. }
        ));
    }

    #[test]
    fn redelivered_windows_are_not_learned_twice() {
        let mut b = Baseline::new(5);
        b.observe(10, &fv(1.0, 1.0));
        let again = b.observe(10, &fv(1.0, 1.0));
        assert_eq!(
            again,
            Observation::Learning {
                seen: 1,
                needed: 5,
                changed: false
            }
        );
    }

    #[test]
    fn normal_windows_score_low_and_a_drift_scores_high_naming_the_feature() {
        let mut b = trained();
        let Observation::Scored { score, .. } = b.observe(100_000, &fv(2.02, 50.0)) else {
            panic!("should score");
        };
        assert!(score < 0.5, "normal score {score}");
        let Observation::Scored { score, deviations } = b.observe(101_000, &fv(4.0, 50.0)) else {
            panic!("should score");
        };
        assert!(score > 0.95, "drift score {score}");
        assert_eq!(deviations[0].feature, "rms");
        assert!(deviations[0].z > 0.0);
    }

    #[test]
    fn score_mapping_is_monotone_and_bounded() {
        let s: Vec<f64> = [0.0, 3.0, 5.0, 6.0, 7.0, 50.0]
            .iter()
            .map(|z| z_to_score(*z))
            .collect();
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(s[0] > 0.0 && s[5] <= 1.0);
        assert!((s[2] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn survives_a_json_round_trip() {
        let b = trained();
        let json = serde_json::to_value(&b).expect("serialize");
        let back: Baseline = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, b);
    }
}
