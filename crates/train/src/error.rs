//! The one error enum of colzero-train. Every variant names what was wrong: the TOML
//! field, the data file and line, the tensor and its shape, or the training step at
//! which a non-finite loss appeared, so the CLI can print it as is.

use std::path::PathBuf;

/// Errors raised by colzero-train.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A core-crate error (I/O, JSONL `file:line`, atomic writes).
    #[error(transparent)]
    Core(#[from] colzero_core::CoreError),
    /// A model-crate error (checkpoint loading, tokenisation, forward).
    #[error(transparent)]
    Model(#[from] colzero_model::ModelError),
    /// An evaluation-crate error (BEIR loading, metrics).
    #[error("evaluation: {0}")]
    Eval(String),
    /// A stage configuration is invalid; `field` is the dotted TOML key.
    #[error("{path}: config field `{field}`: {reason}")]
    Config {
        path: PathBuf,
        field: String,
        reason: String,
    },
    /// Training data is unusable; `line` is 1-based (0 when the file as a whole is wrong).
    #[error("{path}:{line}: {reason}")]
    Data {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// Tensors passed to a loss or score function have incompatible shapes.
    #[error("shape mismatch in {what}: {detail}")]
    Shape { what: String, detail: String },
    /// The loss (or a gradient) became NaN/Inf and the run was configured to stop.
    #[error("non-finite loss {value} at step {step}: training stopped (no checkpoint written for this step); lower the learning rate or set on_nonfinite = \"skip\"")]
    NonFinite { step: usize, value: f32 },
    /// A checkpoint or optimiser state cannot be resumed from.
    #[error("{path}: cannot resume: {reason}")]
    Resume { path: PathBuf, reason: String },
    /// The output folder cannot be used as asked (another process holds it, it holds
    /// another run or foreign files, or the configuration changed on resume).
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

impl TrainError {
    /// Shorthand for a [`TrainError::Shape`].
    pub fn shape(what: &str, detail: impl Into<String>) -> Self {
        TrainError::Shape {
            what: what.to_string(),
            detail: detail.into(),
        }
    }
}

/// Result alias for colzero-train.
pub type Result<T> = std::result::Result<T, TrainError>;
