//! The one error enum of colzero-index.
//!
//! Contract: every variant names what was wrong — the file (for on-disk problems), the
//! field or the shapes (for bad input) — so that the CLI can print it as is. Library code
//! never panics on bad input; it returns one of these.

use colzero_core::CoreError;
use std::path::PathBuf;

/// Errors raised by colzero-index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// An error from colzero-core (embedding store, atomic write...).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A query or document whose dimension differs from the index's.
    #[error("dimension mismatch: {what} has dim {found}, index has dim {expected}")]
    Dim {
        what: String,
        expected: usize,
        found: usize,
    },
    /// The same external id given twice.
    #[error("duplicate document id `{0}`")]
    DuplicateId(String),
    /// An index directory whose format version this build cannot read.
    #[error(
        "{path}: index format version {found} is not supported (this build reads versions \
         {oldest} to {newest}); rebuild the index with this version of colzero"
    )]
    Version {
        path: PathBuf,
        found: u32,
        oldest: u32,
        newest: u32,
    },
    /// A file of an index is damaged (checksum, size or content mismatch).
    #[error("{path}: corrupt index: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// An invalid argument or configuration value (names the field).
    #[error("{0}")]
    Invalid(String),
}

impl IndexError {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption error on `path`.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for colzero-index.
pub type Result<T> = std::result::Result<T, IndexError>;
