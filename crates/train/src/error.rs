//! The one error enum of colzero-train. Every variant names what was wrong: the TOML
//! field or `file:line:column`, the data file and line, the tensor and its shape, or the
//! training step at which a non-finite loss appeared, so the CLI can print it as is.

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
    /// A TOML file (stage config, recipe) does not parse or does not match the schema;
    /// `line` and `column` are 1-based (column in characters).
    #[error("{path}:{line}:{column}: {reason}")]
    Toml {
        path: PathBuf,
        line: usize,
        column: usize,
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
    /// A [`TrainError::Toml`] located from the parser's byte span in `text` (line 1,
    /// column 1 when the error has no span).
    pub fn toml(path: &std::path::Path, text: &str, e: &toml::de::Error) -> Self {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let at = (0..=at)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        TrainError::Toml {
            path: path.to_path_buf(),
            line,
            column,
            reason: e.message().trim().to_string(),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_are_located_by_line_and_column() {
        let text = "# stage\n[train]\nlr = 1e-5\nsteps = \"ten\"\n";
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            train: Train,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Train {
            lr: f64,
            steps: usize,
        }
        let e = toml::from_str::<T>(text).unwrap_err();
        let msg = TrainError::toml(std::path::Path::new("s.toml"), text, &e).to_string();
        assert!(msg.starts_with("s.toml:4:9: invalid type"), "{msg}");
        // columns count characters, not bytes
        let text = "é = [\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let msg = TrainError::toml(std::path::Path::new("r.toml"), text, &e).to_string();
        assert!(msg.starts_with("r.toml:"), "{msg}");
        assert!(!msg.contains("bytes"), "{msg}");
    }
}
