//! [`Encoder`]: the one place that decides how a checkpoint directory is run (ColBERT or
//! dense) and turns texts into multi-vectors either way. Every encoding path — `encode`,
//! `eval`, `search`, `index build/add`, `data mine/teacher`, the pipeline's evaluation and
//! the HTTP service — loads its model here, so a precision or device switch lands once.
//!
//! Contract:
//! - [`resolve_mode`]: [`Mode::Auto`] reads `modules.json`: a sentence-transformers
//!   `Pooling` module means a dense model; anything else (a Dense projection head, a
//!   Stanford `HF_ColBERT` checkpoint) is ColBERT.
//! - [`Encoder::load`] first puts back a model folder whose replacement was cut short by a
//!   kill (`colzero_core::fsutil::recover_dir`), then loads it; errors name the folder.
//! - [`Encoder::encode`] returns one [`MultiVector`] per text, in input order. A dense
//!   model's vector becomes a one-token multi-vector, so MaxSim reduces to its dot
//!   product and exact search, PLAID and evaluation treat both kinds alike.

use crate::{ColBERT, DenseEncoder, EncodeOptions, InputKind, LoadOptions, ModelError, Result};
use colzero_core::MultiVector;
use std::path::Path;

/// How a checkpoint directory should be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// ColBERT if the checkpoint has no pooling module, dense if it has one.
    #[default]
    Auto,
    /// Late interaction (multi-vector, MaxSim).
    Colbert,
    /// Dense bi-encoder (one pooled, normalised vector per text).
    Dense,
}

/// Resolves [`Mode::Auto`] for the checkpoint in `dir` (see module docs).
pub fn resolve_mode(dir: &Path, mode: Mode) -> Mode {
    if mode != Mode::Auto {
        return mode;
    }
    let modules = std::fs::read_to_string(dir.join("modules.json")).unwrap_or_default();
    if modules.contains("models.Pooling") {
        Mode::Dense
    } else {
        Mode::Colbert
    }
}

/// A loaded encoder of either kind.
pub enum Encoder {
    Colbert(Box<ColBERT>),
    Dense(Box<DenseEncoder>),
}

fn in_folder(dir: &Path, what: &str, e: ModelError) -> ModelError {
    ModelError::Invalid(format!("loading {what} model {}: {e}", dir.display()))
}

impl Encoder {
    /// Loads the checkpoint in `dir` in `mode` (see module docs).
    pub fn load(dir: &Path, mode: Mode, opts: &LoadOptions) -> Result<Self> {
        colzero_core::fsutil::recover_dir(dir)?;
        Ok(match resolve_mode(dir, mode) {
            Mode::Dense => Encoder::Dense(Box::new(
                DenseEncoder::load(dir, opts).map_err(|e| in_folder(dir, "dense", e))?,
            )),
            _ => Encoder::Colbert(Box::new(
                ColBERT::load(dir, opts).map_err(|e| in_folder(dir, "ColBERT", e))?,
            )),
        })
    }

    /// The resolved mode (never [`Mode::Auto`]).
    pub fn mode(&self) -> Mode {
        match self {
            Encoder::Colbert(_) => Mode::Colbert,
            Encoder::Dense(_) => Mode::Dense,
        }
    }

    /// `"colbert"` or `"dense"`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Encoder::Colbert(_) => "colbert",
            Encoder::Dense(_) => "dense",
        }
    }

    /// Short description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Encoder::Colbert(m) => {
                let c = m.config();
                format!(
                    "ColBERT dim {} q_len {} d_len {} q_prompt {:?} d_prompt {:?}",
                    c.embedding_dim,
                    c.query_length,
                    c.document_length,
                    c.query_prompt.clone().unwrap_or_default(),
                    c.document_prompt.clone().unwrap_or_default()
                )
            }
            Encoder::Dense(m) => format!("dense ({:?} pooling)", m.pooling()),
        }
    }

    /// Encodes texts of one kind (see module docs).
    pub fn encode(
        &self,
        texts: &[String],
        kind: InputKind,
        opts: &EncodeOptions,
    ) -> Result<Vec<MultiVector>> {
        match self {
            Encoder::Colbert(m) => m.encode(texts, kind, opts),
            Encoder::Dense(m) => {
                let pb = crate::progress_bar(texts.len() as u64, opts.show_progress, "encoding");
                let mut out = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(opts.batch_size.max(1) * 8) {
                    // As before this module existed: no prompt for dense models (their
                    // baseline numbers were measured so).
                    let _ = kind;
                    for v in m.encode(chunk)? {
                        let dim = v.len();
                        out.push(MultiVector::new(dim, v)?);
                    }
                    pb.inc(chunk.len() as u64);
                }
                pb.finish_and_clear();
                Ok(out)
            }
        }
    }
}
