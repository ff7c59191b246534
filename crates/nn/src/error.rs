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
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// A file given as a checkpoint is something else (wrong magic tag, empty).
    #[error("{}: not a backprop checkpoint ({reason})", path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What was found instead of the magic tag.
        reason: String,
    },
    /// A checkpoint written in a format version this build does not read.
    #[error(
        "{}: checkpoint format version {found}, but this build of backprop reads versions 1 to {supported}",
        path.display()
    )]
    CheckpointVersion {
        /// The file.
        path: PathBuf,
        /// The version the file declares.
        found: u32,
        /// The newest version this build reads (and the one it writes).
        supported: u32,
    },
    /// A checkpoint whose bytes are damaged: truncated, a length or checksum
    /// mismatch, a payload that does not decode.
    #[error("{}: corrupt or truncated checkpoint: {reason}", path.display())]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What did not match, with the expected and found values.
        reason: String,
    },
    /// A checkpoint that decodes but does not describe a valid run: shapes
    /// that disagree with the architecture, non-finite parameters,
    /// inconsistent fields.
    #[error("{}: invalid checkpoint: {field}: {reason}", path.display())]
    InvalidCheckpoint {
        /// The file.
        path: PathBuf,
        /// The offending field (`parameters[1].weight`).
        field: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// Training diverged: a loss or a parameter stopped being a finite
    /// number.
    #[error(
        "training diverged in epoch {epoch} at step {step}: {what} is not a finite number; \
         lower the learning rate (it is {learning_rate})"
    )]
    Diverged {
        /// The epoch in progress, from 1.
        epoch: usize,
        /// The optimiser step reached, from 1.
        step: u64,
        /// What went non-finite (`the batch loss`, `a parameter`).
        what: &'static str,
        /// The learning rate in use.
        learning_rate: f32,
    },
    /// A model's outputs overflowed to infinity or NaN on finite inputs (its
    /// weights are too large for `f32`).
    #[error(
        "the model's outputs for example {example} are not finite numbers: its weights are too large for f32 arithmetic"
    )]
    NonFiniteOutput {
        /// The first example whose outputs are not finite.
        example: usize,
    },
    /// Examples handed to the library do not form a valid dataset.
    #[error("invalid data: {reason}")]
    InvalidData {
        /// What was wrong and what was expected.
        reason: String,
    },
}

/// `Result` with [`NnError`].
pub type Result<T> = std::result::Result<T, NnError>;
