//! The one error enum of colzero-core. Every variant names the file (and line, where
//! there is one) or the value that was wrong, so the CLI can print it as is.

use std::path::PathBuf;

/// Errors raised by colzero-core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a text input could not be used; `line` is 1-based.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A file as a whole is not what was expected.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A multi-vector whose data does not fit its declared shape.
    #[error("bad embedding shape: {0}")]
    Shape(String),
    /// A lock (index writer, training run, output directory) is held by someone else.
    #[error("{path}: {holder}; try again when it is done (or wait with --wait SECONDS)")]
    Locked { path: PathBuf, holder: String },
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

impl CoreError {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for colzero-core.
pub type Result<T> = std::result::Result<T, CoreError>;
