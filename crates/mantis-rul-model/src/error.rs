//! Errors of the crate.

use std::path::PathBuf;

/// Everything that can go wrong loading a model, reading C-MAPSS files or predicting.
#[derive(Debug, thiserror::Error)]
pub enum RulError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The JSON sidecar is not valid JSON of the expected shape.
    #[error("invalid model sidecar {path}: {source}")]
    SidecarJson {
        /// The sidecar.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The sidecar parses but its contract is inconsistent.
    #[error("invalid model contract: {0}")]
    Contract(String),
    /// The ONNX file does not match the sidecar's checksum.
    #[error("ONNX file {file} has sha256 {actual}, the sidecar expects {expected}")]
    Checksum {
        /// The ONNX file (its path, or what it is when it has none).
        file: String,
        /// The checksum in the sidecar.
        expected: String,
        /// The checksum of the file.
        actual: String,
    },
    /// tract could not load, optimise or run the model.
    #[error("ONNX model {context}: {message}")]
    Onnx {
        /// What was being done.
        context: &'static str,
        /// tract's error, with its causes.
        message: String,
    },
    /// The model's output has an unexpected shape.
    #[error("unexpected model output: {0}")]
    Output(String),
    /// A prediction was asked for with no cycles.
    #[error("no cycles to predict from")]
    NoCycles,
    /// An input value is NaN or infinite.
    #[error("cycle {cycle} has a non-finite {what}")]
    NonFinite {
        /// Index of the cycle in the input slice.
        cycle: usize,
        /// Which value.
        what: &'static str,
    },
    /// A model cannot be trained on the data or settings given.
    #[error("cannot train: {0}")]
    Training(String),
    /// A C-MAPSS file has a malformed line.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The C-MAPSS data set is inconsistent (e.g. RUL lines vs test engines).
    #[error("C-MAPSS data: {0}")]
    Data(String),
}

/// Result of this crate.
pub type Result<T, E = RulError> = std::result::Result<T, E>;

impl RulError {
    pub(crate) fn onnx(context: &'static str, err: impl std::fmt::Display) -> Self {
        // tract's errors are anyhow errors: `{:#}` prints the chain of causes on one line.
        Self::Onnx {
            context,
            message: format!("{err:#}"),
        }
    }
}
