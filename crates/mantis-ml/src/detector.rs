//! The interface every detector implements, and a tagged union for storing any of them.

use crate::autoencoder::Autoencoder;
use crate::error::Result;
use crate::iforest::IsolationForest;
use crate::ocsvm::OneClassSvm;
use crate::zscore::RobustZ;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which detector a model is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// [`RobustZ`].
    RobustZ,
    /// [`IsolationForest`].
    IsolationForest,
    /// [`OneClassSvm`].
    OneClassSvm,
    /// [`Autoencoder`].
    Autoencoder,
}

impl DetectorKind {
    /// Stable name, as stored with scores (`robust_z`, `isolation_forest`, `one_class_svm`,
    /// `autoencoder`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RobustZ => "robust_z",
            Self::IsolationForest => "isolation_forest",
            Self::OneClassSvm => "one_class_svm",
            Self::Autoencoder => "autoencoder",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fitted anomaly detector over feature vectors of a fixed length.
///
/// Fitting is an associated function of each type (`RobustZ::fit(&Matrix)`,
/// `IsolationForest::fit(&Matrix, &IsolationForestConfig)`, …) and so is loading
/// (`T::load(&[u8])`). Nothing here does I/O: `save` returns bytes for the caller to store.
pub trait Detector {
    /// Which detector this is.
    fn kind(&self) -> DetectorKind;

    /// Length of the feature vectors it scores.
    fn n_features(&self) -> usize;

    /// Raw anomaly score of one feature vector: higher is more anomalous. The scale is the
    /// detector's own; [`crate::Calibrator`] maps it to [0, 1].
    fn score(&self, x: &[f64]) -> Result<f64>;

    /// Non-negative contribution of each feature to the score (same length as `x`), in the
    /// detector's own units; [`crate::explain`] turns it into ranked shares.
    fn contributions(&self, x: &[f64]) -> Result<Vec<f64>>;

    /// The model as JSON bytes.
    fn save(&self) -> Result<Vec<u8>>;

    /// Scores every row of a matrix.
    fn score_batch(&self, x: &crate::Matrix) -> Result<Vec<f64>> {
        x.iter_rows().map(|r| self.score(r)).collect()
    }
}

/// Any of the detectors, tagged by `kind` in its JSON form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "model", rename_all = "snake_case")]
pub enum AnyDetector {
    /// A robust z-score model.
    RobustZ(RobustZ),
    /// An Isolation Forest.
    IsolationForest(IsolationForest),
    /// A One-Class SVM.
    OneClassSvm(OneClassSvm),
    /// An autoencoder.
    Autoencoder(Autoencoder),
}

impl AnyDetector {
    fn inner(&self) -> &dyn Detector {
        match self {
            Self::RobustZ(d) => d,
            Self::IsolationForest(d) => d,
            Self::OneClassSvm(d) => d,
            Self::Autoencoder(d) => d,
        }
    }

    /// Checks the invariants that scoring relies on (after deserialising).
    pub(crate) fn validate(&self) -> Result<()> {
        match self {
            Self::RobustZ(d) => d.validate(),
            Self::IsolationForest(d) => d.validate(),
            Self::OneClassSvm(d) => d.validate(),
            Self::Autoencoder(d) => d.validate(),
        }
    }
}

impl Detector for AnyDetector {
    fn kind(&self) -> DetectorKind {
        self.inner().kind()
    }
    fn n_features(&self) -> usize {
        self.inner().n_features()
    }
    fn score(&self, x: &[f64]) -> Result<f64> {
        self.inner().score(x)
    }
    fn contributions(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.inner().contributions(x)
    }
    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }
}
