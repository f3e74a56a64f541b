//! The per-asset ensemble: several detectors, each calibrated on the asset's own baseline,
//! combined into one `ensemble_score` in [0, 1], with an explanation.
//!
//! Combination rule (documented, fixed, learned on the baseline only):
//!
//! 1. each member's raw score `rᵢ` is calibrated on its baseline scores: `pᵢ = Fᵢ(rᵢ)`;
//! 2. members are combined by their weighted mean surprisal
//!    `S = Σ wᵢ·(−ln(1 − pᵢ)) / Σ wᵢ` — the negative log of the weighted geometric mean of the
//!    tail probabilities: one member that is very sure (p = 0.9999) outweighs three that are
//!    mildly unsure (0.6), unlike a plain mean of the `pᵢ`, and unlike a max it does not let the
//!    noisiest member decide alone;
//! 3. `S` is calibrated once more on the baseline: `ensemble_score = F_S(S)`, so the ensemble
//!    score is ≈uniform on the baseline too, and a threshold `t` means "the fraction `1 − t` of
//!    the baseline windows would have exceeded it".
//!
//! Baseline scores for calibration are *cross-fitted* by default ([`CalibrationMode`]): each
//! fold of the baseline is scored by members trained without it, because in-sample scores of a
//! flexible model (an SVM boundary, an autoencoder) are optimistic and would put every new
//! window in the tail.

use crate::autoencoder::{Autoencoder, AutoencoderConfig};
use crate::calibration::Calibrator;
use crate::detector::{AnyDetector, Detector, DetectorKind};
use crate::error::{Error, Result, invalid};
use crate::explain::{Contribution, normalise, rank};
use crate::iforest::{IsolationForest, IsolationForestConfig};
use crate::matrix::{Matrix, check_vector};
use crate::ocsvm::{OneClassSvm, OneClassSvmConfig};
use crate::zscore::RobustZ;
use serde::{Deserialize, Serialize};

/// Version of the saved ensemble format.
pub const FORMAT_VERSION: u32 = 1;

/// Which detector to train, with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DetectorConfig {
    /// [`RobustZ`] (no parameters).
    RobustZ,
    /// [`IsolationForest`].
    IsolationForest(IsolationForestConfig),
    /// [`OneClassSvm`].
    OneClassSvm(OneClassSvmConfig),
    /// [`Autoencoder`].
    Autoencoder(AutoencoderConfig),
}

impl DetectorConfig {
    /// Trains this detector on `x`.
    pub fn fit(&self, x: &Matrix) -> Result<AnyDetector> {
        Ok(match self {
            Self::RobustZ => AnyDetector::RobustZ(RobustZ::fit(x)?),
            Self::IsolationForest(c) => AnyDetector::IsolationForest(IsolationForest::fit(x, c)?),
            Self::OneClassSvm(c) => AnyDetector::OneClassSvm(OneClassSvm::fit(x, c)?),
            Self::Autoencoder(c) => AnyDetector::Autoencoder(Autoencoder::fit(x, c)?),
        })
    }

    /// The kind of detector this trains.
    pub fn kind(&self) -> DetectorKind {
        match self {
            Self::RobustZ => DetectorKind::RobustZ,
            Self::IsolationForest(_) => DetectorKind::IsolationForest,
            Self::OneClassSvm(_) => DetectorKind::OneClassSvm,
            Self::Autoencoder(_) => DetectorKind::Autoencoder,
        }
    }
}

/// One member of the ensemble to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberConfig {
    /// The detector.
    pub detector: DetectorConfig,
    /// Its weight in the combination (positive).
    pub weight: f64,
}

/// Which baseline scores the calibrators are fitted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CalibrationMode {
    /// The members' scores of their own training rows (optimistic for flexible models).
    InSample,
    /// K-fold cross-fitting: each fold scored by members trained on the other folds.
    CrossFit {
        /// Number of folds (≥ 2).
        folds: usize,
        /// Contiguous folds (blocks of consecutive windows) rather than interleaved ones.
        /// Contiguous folds make each held-out block as "new" as the future is, including the
        /// slow drift of a short baseline: conservative. Interleaved folds see neighbours of
        /// every held-out window: closer to in-sample.
        contiguous: bool,
    },
}

/// How to train an [`Ensemble`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleConfig {
    /// The members (at least one).
    pub members: Vec<MemberConfig>,
    /// Calibration data. Default: 5 interleaved cross-fitted folds.
    pub calibration: CalibrationMode,
    /// Upper fraction of the baseline scores modelled by the exponential tail. Default 0.1.
    pub tail_fraction: f64,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        let member = |detector| MemberConfig {
            detector,
            weight: 1.0,
        };
        Self {
            members: vec![
                member(DetectorConfig::RobustZ),
                member(DetectorConfig::IsolationForest(Default::default())),
                member(DetectorConfig::OneClassSvm(Default::default())),
                member(DetectorConfig::Autoencoder(Default::default())),
            ],
            calibration: CalibrationMode::CrossFit {
                folds: 5,
                contiguous: false,
            },
            tail_fraction: 0.1,
        }
    }
}

/// A trained member: detector, calibration, weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The detector, trained on the whole baseline.
    pub detector: AnyDetector,
    /// Its calibration on the baseline.
    pub calibrator: Calibrator,
    /// Its weight.
    pub weight: f64,
}

/// One member's score of a feature vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberScore {
    /// Which detector.
    pub kind: DetectorKind,
    /// Its raw score.
    pub raw: f64,
    /// Its calibrated score in [0, 1].
    pub calibrated: f64,
    /// `−ln(1 − calibrated)`, without cancellation.
    pub surprisal: f64,
}

/// The scores of one feature vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// The ensemble score in [0, 1] (calibrated on the baseline).
    pub ensemble: f64,
    /// The combined surprisal before its calibration.
    pub surprisal: f64,
    /// `−ln(1 − ensemble)`, computed without cancellation: how rare the window is on the
    /// baseline (4.6: one baseline window in 100; 6.9: one in 1000), unbounded above, so it
    /// keeps ranking windows that are all far beyond the baseline.
    pub ensemble_surprisal: f64,
    /// Each member's score, in member order.
    pub members: Vec<MemberScore>,
}

impl Scores {
    /// The calibrated score of the member of a kind, if present.
    pub fn member(&self, kind: DetectorKind) -> Option<f64> {
        self.members
            .iter()
            .find(|m| m.kind == kind)
            .map(|m| m.calibrated)
    }
}

/// A trained ensemble for one asset (or sensor group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    format: u32,
    feature_names: Vec<String>,
    members: Vec<Member>,
    combined: Calibrator,
    training_rows: usize,
}

impl Ensemble {
    /// Trains every member on the baseline `x`, calibrates them, and calibrates the combination.
    /// `feature_names` names the columns for explanations (empty for `f0`, `f1`, …).
    pub fn fit(x: &Matrix, feature_names: Vec<String>, config: &EnsembleConfig) -> Result<Self> {
        if config.members.is_empty() {
            return Err(invalid("members", "an ensemble needs at least one member"));
        }
        if config
            .members
            .iter()
            .any(|m| !(m.weight > 0.0 && m.weight.is_finite()))
        {
            return Err(invalid("weight", "member weights must be positive"));
        }
        if !feature_names.is_empty() && feature_names.len() != x.cols() {
            return Err(Error::Dimension {
                expected: x.cols(),
                got: feature_names.len(),
            });
        }
        let n = x.rows();
        let folds: Vec<Vec<usize>> = match config.calibration {
            CalibrationMode::InSample => Vec::new(),
            CalibrationMode::CrossFit { folds, contiguous } => {
                if folds < 2 {
                    return Err(invalid("folds", "cross-fitting needs at least 2 folds"));
                }
                if n < 2 * folds {
                    return Err(Error::TooFewRows {
                        needed: 2 * folds,
                        got: n,
                    });
                }
                (0..folds)
                    .map(|f| {
                        if contiguous {
                            (f * n / folds..(f + 1) * n / folds).collect()
                        } else {
                            (f..n).step_by(folds).collect()
                        }
                    })
                    .collect()
            }
        };
        let mut members = Vec::with_capacity(config.members.len());
        let mut baseline_surprisal = vec![0.0; n];
        let total_weight: f64 = config.members.iter().map(|m| m.weight).sum();
        for mc in &config.members {
            let detector = mc.detector.fit(x)?;
            let baseline = if folds.is_empty() {
                detector.score_batch(x)?
            } else {
                let mut s = vec![0.0; n];
                for held in &folds {
                    let mut out = vec![false; n];
                    held.iter().for_each(|i| out[*i] = true);
                    let keep: Vec<usize> = (0..n).filter(|i| !out[*i]).collect();
                    let (Some(train), Some(test)) = (x.select_rows(&keep), x.select_rows(held))
                    else {
                        continue;
                    };
                    let d = mc.detector.fit(&train)?;
                    for (i, v) in held.iter().zip(d.score_batch(&test)?) {
                        s[*i] = v;
                    }
                }
                s
            };
            let calibrator = Calibrator::fit(&baseline, config.tail_fraction)?;
            for (acc, s) in baseline_surprisal.iter_mut().zip(&baseline) {
                *acc += mc.weight * calibrator.surprisal(*s) / total_weight;
            }
            members.push(Member {
                detector,
                calibrator,
                weight: mc.weight,
            });
        }
        let combined = Calibrator::fit(&baseline_surprisal, config.tail_fraction)?;
        Ok(Self {
            format: FORMAT_VERSION,
            feature_names,
            members,
            combined,
            training_rows: n,
        })
    }

    /// Length of the feature vectors it scores.
    pub fn n_features(&self) -> usize {
        self.members.first().map_or(0, |m| m.detector.n_features())
    }

    /// The feature names given at training.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The trained members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Baseline rows it was trained on.
    pub fn training_rows(&self) -> usize {
        self.training_rows
    }

    /// Scores one feature vector.
    pub fn score(&self, x: &[f64]) -> Result<Scores> {
        check_vector(x, self.n_features())?;
        let mut members = Vec::with_capacity(self.members.len());
        let mut total = 0.0;
        let mut weights = 0.0;
        for m in &self.members {
            let raw = m.detector.score(x)?;
            let surprisal = m.calibrator.surprisal(raw);
            total += m.weight * surprisal;
            weights += m.weight;
            members.push(MemberScore {
                kind: m.detector.kind(),
                raw,
                calibrated: m.calibrator.calibrate(raw),
                surprisal,
            });
        }
        let surprisal = total / weights;
        Ok(Scores {
            ensemble: self.combined.calibrate(surprisal),
            ensemble_surprisal: self.combined.surprisal(surprisal),
            surprisal,
            members,
        })
    }

    /// The `top` features that contributed most to the score of `x`.
    ///
    /// Each member's contributions are normalised to shares and weighted by the member's
    /// weight × surprisal (a member that finds `x` ordinary has little to say about why it is
    /// anomalous); the weighted shares are summed and ranked.
    pub fn explain(&self, x: &[f64], top: usize) -> Result<Vec<Contribution>> {
        check_vector(x, self.n_features())?;
        let mut acc = vec![0.0; x.len()];
        for m in &self.members {
            let raw = m.detector.score(x)?;
            let w = m.weight * m.calibrator.surprisal(raw);
            for (a, s) in acc.iter_mut().zip(normalise(&m.detector.contributions(x)?)) {
                *a += w * s;
            }
        }
        Ok(rank(&acc, &self.feature_names, top))
    }

    /// The ensemble as JSON bytes (all members, calibrators and names).
    pub fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Loads an ensemble saved by [`Ensemble::save`], checking its format and invariants.
    pub fn load(bytes: &[u8]) -> Result<Self> {
        let e: Self = serde_json::from_slice(bytes)?;
        if e.format != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                found: e.format,
                supported: FORMAT_VERSION,
            });
        }
        let d = e.members.first().map(|m| m.detector.n_features());
        for m in &e.members {
            m.detector.validate()?;
            m.calibrator.validate()?;
            if Some(m.detector.n_features()) != d || !crate::error::positive(m.weight) {
                return Err(Error::CorruptModel("ensemble members disagree".into()));
            }
        }
        e.combined.validate()?;
        if d.is_none() || (!e.feature_names.is_empty() && Some(e.feature_names.len()) != d) {
            return Err(Error::CorruptModel(
                "ensemble without members or names".into(),
            ));
        }
        Ok(e)
    }
}
