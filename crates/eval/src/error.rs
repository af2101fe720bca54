//! The one error enum of colzero-eval. Every variant names the file and line, the query and
//! document, or the value that was wrong, so the CLI can print it as is.

use std::path::PathBuf;

/// Errors raised by colzero-eval.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// I/O, `file:line` and whole-file errors from colzero-core (JSONL and line readers).
    #[error(transparent)]
    Core(#[from] colzero_core::CoreError),
    /// A line of a qrels, run or dataset file could not be used; `line` is 1-based.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A file as a whole is not what was expected.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A metric name that does not parse.
    #[error("unknown metric `{0}`: expected NAME@K with NAME one of ndcg, recall, mrr, map, p and K >= 1 (e.g. ndcg@10)")]
    UnknownMetric(String),
    /// A run policy name that does not parse.
    #[error("unknown run policy `{0}`: expected remove-self-hits, dedupe or top-N")]
    UnknownPolicy(String),
    /// A run lists the same document twice for one query (trec_eval refuses such runs).
    #[error("run query `{query}` lists document `{doc}` more than once (trec_eval refuses duplicate docs; apply the `dedupe` policy to keep the best-scored one)")]
    DuplicateHit { query: String, doc: String },
    /// Any other invalid argument or value.
    #[error("{0}")]
    Invalid(String),
}

impl EvalError {
    /// A `file:line: reason` error.
    pub fn line(path: impl Into<PathBuf>, line: usize, reason: impl Into<String>) -> Self {
        EvalError::BadLine {
            path: path.into(),
            line,
            reason: reason.into(),
        }
    }
}

/// Result alias for colzero-eval.
pub type Result<T> = std::result::Result<T, EvalError>;
