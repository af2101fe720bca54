//! The one error enum of colzero-model. Variants name the file, tensor or field at fault
//! and what was expected, so a user can fix a broken checkpoint without a debugger.

use std::path::PathBuf;

/// Errors raised by colzero-model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A core-crate error (I/O, JSONL, embedding shapes).
    #[error(transparent)]
    Core(#[from] colzero_core::CoreError),
    /// A checkpoint file is missing.
    #[error("{path}: missing ({expected})")]
    MissingFile { path: PathBuf, expected: String },
    /// A checkpoint file is present but unusable.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A tensor in a checkpoint has the wrong shape.
    #[error("tensor `{name}`: expected shape {expected:?}, found {actual:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("tensor `{name}` not found in {path}")]
    MissingTensor { name: String, path: PathBuf },
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An unsupported configuration (architecture, activation, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for colzero-model.
pub type Result<T> = std::result::Result<T, ModelError>;
