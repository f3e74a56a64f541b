//! The crate's error type.

/// What can go wrong when fitting, scoring, saving or loading a model, or reading SKAB data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Training was asked of too few rows.
    #[error("training needs at least {needed} rows, got {got}")]
    TooFewRows {
        /// Rows the method needs.
        needed: usize,
        /// Rows given.
        got: usize,
    },
    /// A feature vector of the wrong length.
    #[error("expected {expected} features, got {got}")]
    Dimension {
        /// Features the model was trained on.
        expected: usize,
        /// Features given.
        got: usize,
    },
    /// Rows of a training set that are not all the same length.
    #[error("row {row} has {got} features where the first row has {expected}")]
    RaggedRows {
        /// Index of the offending row.
        row: usize,
        /// Length of the first row.
        expected: usize,
        /// Length of the offending row.
        got: usize,
    },
    /// A NaN or infinite value where a number is needed.
    #[error("feature {feature} of row {row} is not a finite number")]
    NonFinite {
        /// Row index (0 for a single feature vector).
        row: usize,
        /// Feature index.
        feature: usize,
    },
    /// A configuration value out of its range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A saved model that is not valid JSON of the expected shape.
    #[error("the model could not be encoded or decoded: {0}")]
    Encoding(#[from] serde_json::Error),
    /// A saved model whose format version this build does not read.
    #[error("model format {found} is not supported (this build reads format {supported})")]
    UnsupportedFormat {
        /// Version found in the bytes.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A saved model whose parameters are inconsistent (a corrupted or hand-edited file).
    #[error("the model is inconsistent: {0}")]
    CorruptModel(String),
    /// A SKAB CSV file that does not follow the dataset's format.
    #[error("SKAB data, line {line}: {reason}")]
    Skab {
        /// 1-based line number (1 is the header).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `x` is a finite number above zero.
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        name,
        reason: reason.into(),
    }
}
