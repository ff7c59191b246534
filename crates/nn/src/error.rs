//! The error type of the nn crate.

use std::path::PathBuf;

/// Everything that can go wrong in `backprop-nn`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NnError {
    /// A configuration value is outside its valid range.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The name of the setting, as the user spells it (`batch_size`).
        field: &'static str,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// The model and the data disagree on a dimension.
    #[error("the model expects {expected} {what}, but the data has {found}")]
    DataMismatch {
        /// What disagrees (`input features`, `classes`).
        what: &'static str,
        /// The model's value.
        expected: usize,
        /// The data's value.
        found: usize,
    },
    /// Parameters given to [`crate::Mlp::from_layers`] do not form a network.
    #[error("layer {layer}: {reason}")]
    BadParameters {
        /// The index of the offending layer.
        layer: usize,
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`NnError`].
pub type Result<T> = std::result::Result<T, NnError>;
