//! # mantis-rul-model
//!
//! Serves MANTIS's deep remaining-useful-life models: a network trained offline by
//! `models/training/train_rul.py` on NASA C-MAPSS, exported to ONNX, run here with tract.
//! Each model comes with a JSON sidecar, its input contract: the sensors used, the window
//! length, the operating-regime centroids and per-regime normalisation statistics, the label
//! cap and the split-conformal half-width of the 90 % interval. [`RulModel::predict`] applies
//! that contract exactly like the pipeline, so a served prediction equals the pipeline's.
//!
//! ```no_run
//! use mantis_rul_model::{RulModel, cmapss};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = RulModel::load("models/rul-cmapss-fd001.json".as_ref())?;
//! let engines = cmapss::read_engines("../shared/data/cmapss/test_FD001.txt".as_ref())?;
//! let p = model.predict(&engines[0].cycles)?;
//! println!("RUL {:.0} cycles, 90 % interval [{:.0}, {:.0}]", p.rul, p.lower, p.upper);
//! # Ok(()) }
//! ```
//!
//! Also: the C-MAPSS reader ([`cmapss`]), the benchmark metrics ([`metrics`]) and the
//! evaluation used by the `cmapss_eval` example ([`eval`]).

pub mod cmapss;
pub mod contract;
pub mod error;
pub mod eval;
pub mod metrics;
mod model;
pub mod tree;

pub use contract::{Normaliser, Sidecar};
pub use error::{Result, RulError};
pub use model::{CHUNK, RulModel, RulPrediction, sha256_hex};

/// Operating settings per cycle.
pub const N_SETTINGS: usize = 3;
/// Sensors per cycle (C-MAPSS layout: `s1..s21`).
pub const N_SENSORS: usize = 21;

/// One operating cycle of an engine: its 3 operating settings and 21 sensor values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cycle {
    /// Operating settings (altitude, Mach number, throttle resolver angle in C-MAPSS).
    pub settings: [f64; N_SETTINGS],
    /// Sensor values `s1..s21`.
    pub sensors: [f64; N_SENSORS],
}
