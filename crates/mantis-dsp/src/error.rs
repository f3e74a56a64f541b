//! The crate's error type.

/// Everything that can go wrong in `mantis-dsp`. Each variant is an expected case (bad input or
/// bad configuration); nothing here is an internal failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The signal has no samples.
    #[error("the signal is empty")]
    Empty,
    /// The signal is shorter than the operation needs.
    #[error("the signal has {len} samples, fewer than the {min} this operation needs")]
    TooShort {
        /// Samples given.
        len: usize,
        /// Samples needed.
        min: usize,
    },
    /// Timestamps and values have different lengths.
    #[error("{timestamps} timestamps were given for {values} values")]
    LengthMismatch {
        /// Number of timestamps.
        timestamps: usize,
        /// Number of values.
        values: usize,
    },
    /// A sample (or timestamp) is NaN or infinite where only finite numbers are accepted.
    #[error("sample {index} is not a finite number")]
    NonFinite {
        /// Position of the offending sample.
        index: usize,
    },
    /// Timestamps go backwards.
    #[error("timestamp {index} is earlier than the one before it")]
    Unsorted {
        /// Position of the first out-of-order timestamp.
        index: usize,
    },
    /// The zero-phase filter needs a signal longer than its padding (as `scipy.signal.sosfiltfilt`).
    #[error("the signal has {len} samples; zero-phase filtering needs more than padlen = {padlen}")]
    ShorterThanPadding {
        /// Samples given.
        len: usize,
        /// Padding on each side.
        padlen: usize,
    },
    /// A parameter or configuration is invalid; the message names it and says why.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The parameter.
        what: &'static str,
        /// Why it is refused.
        why: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            why: why.into(),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
