//! # mantis-ml
//!
//! Anomaly detection for MANTIS, trained per asset on the asset's own normal operation: four
//! detectors, a calibrated ensemble, alert hysteresis, explanations and drift — as plain types
//! with no I/O (models are saved to and loaded from bytes; storing them is the caller's job).
//!
//! Layout:
//!
//! * [`Matrix`]: the training set (rows = feature vectors), validated once.
//! * [`Detector`]: `score` / `contributions` / `save`, implemented by
//!   * [`RobustZ`]: median/MAD z-scores, the service's baseline method;
//!   * [`IsolationForest`]: Liu et al., optionally extended (hyperplane cuts);
//!   * [`OneClassSvm`]: RBF one-class SVM by SMO on standardised features;
//!   * [`Autoencoder`]: a dense autoencoder trained here (backpropagation + Adam).
//! * [`Calibrator`]: raw score → [0, 1] by the baseline's empirical CDF with an exponential tail.
//! * [`Ensemble`]: members + calibrators + the combination rule → `ensemble_score` and
//!   [`Contribution`]s; the unit the service stores per asset.
//! * [`Hysteresis`]: opens an alert at a threshold, closes it below threshold − margin.
//! * [`DriftReference`]: PSI per feature between the baseline and recent feature vectors.
//! * [`RollingFeatures`]: causal rolling mean/std features over a reading stream.
//! * [`skab`]: the SKAB benchmark protocol (used by `examples/skab.rs` and a smoke test).
//!
//! ```
//! use mantis_ml::{Ensemble, EnsembleConfig, Matrix, Hysteresis, HysteresisConfig};
//!
//! // A baseline of normal windows: two correlated features.
//! let rows: Vec<Vec<f64>> = (0..200)
//!     .map(|i| { let t = i as f64 * 0.1; vec![t.sin(), t.sin() * 2.0 + 0.01 * t.cos()] })
//!     .collect();
//! let baseline = Matrix::from_rows(&rows)?;
//! let names = vec!["vibration_rms".to_string(), "current".to_string()];
//! let mut config = EnsembleConfig::default();
//! config.members.truncate(3); // robust z, isolation forest, one-class SVM: quick for a doc test
//! let model = Ensemble::fit(&baseline, names, &config)?;
//!
//! let normal = model.score(&[0.5, 1.0])?;
//! let odd = model.score(&[0.5, -1.0])?;          // breaks the correlation
//! assert!(odd.ensemble > normal.ensemble);
//! let why = model.explain(&[3.0, 2.0], 1)?;        // vibration far out of range
//! assert_eq!(why[0].name, "vibration_rms");
//!
//! let mut alert = Hysteresis::new(HysteresisConfig { threshold: 0.99, margin: 0.05, ..Default::default() })?;
//! alert.update(odd.ensemble);
//! assert!(alert.is_open());
//!
//! let restored = Ensemble::load(&model.save()?)?;
//! assert_eq!(restored.score(&[0.5, -1.0])?, odd);
//! # Ok::<(), mantis_ml::Error>(())
//! ```

pub mod autoencoder;
pub mod calibration;
pub mod detector;
pub mod drift;
pub mod ensemble;
mod error;
pub mod explain;
pub mod features;
pub mod hysteresis;
pub mod iforest;
pub mod matrix;
pub mod ocsvm;
pub mod rng;
pub mod scaler;
pub mod skab;
pub mod zscore;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
pub use calibration::Calibrator;
pub use detector::{AnyDetector, Detector, DetectorKind};
pub use drift::{DriftReference, PSI_DRIFTED};
pub use ensemble::{
    CalibrationMode, DetectorConfig, Ensemble, EnsembleConfig, MemberConfig, MemberScore, Scores,
};
pub use error::{Error, Result};
pub use explain::Contribution;
pub use features::RollingFeatures;
pub use hysteresis::{Hysteresis, HysteresisConfig, Transition};
pub use iforest::{IsolationForest, IsolationForestConfig};
pub use matrix::Matrix;
pub use ocsvm::{OneClassSvm, OneClassSvmConfig};
pub use scaler::Standardizer;
pub use zscore::RobustZ;
