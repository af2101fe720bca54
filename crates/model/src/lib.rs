//! colzero-model: PyLate-exact ColBERT (and dense) encoders on candle.
//!
//! Contract: every op used in a forward pass has a backward pass (no candle fused ops
//! without `bwd`), so any model built here trains all of its weights. Public surface:
//!
//! - [`ColBERT`]: `load(dir, &LoadOptions)` (PyLate / sentence-transformers / Stanford
//!   `HF_ColBERT` directories), `from_dense(dir, dim, seed, &LoadOptions)` (fresh seeded
//!   projection over a dense model), `save(dir)` (PyLate layout, atomic), `tokenize(texts,
//!   InputKind)` → [`TokenBatch`], `forward(&TokenBatch, &mut ForwardCtx)` → L2-normalised
//!   `[b, t, dim]` (differentiable), `encode(texts, kind, &EncodeOptions)` →
//!   `Vec<colzero_core::MultiVector>` in input order, `config()` → [`ColbertConfig`],
//!   `var_map()` (trainable mode).
//! - [`DenseEncoder`]: mean / CLS pooled, normalised sentence embeddings (bi-encoder
//!   baseline) as the checkpoint's `1_Pooling/config.json` says.
//! - [`model_fingerprint`]: a content hash of a checkpoint directory, recorded in
//!   embedding stores so stores of different models are never mixed.
//! - backbones behind [`Backbone`]: [`bert::Bert`], [`modernbert::ModernBert`], the
//!   differentiable building blocks in [`nn`], the Dense head in [`head`].
//!
//! Flash-attention semantics ([`LoadOptions::flash_attention`]): vectors at positions
//! whose attention mask is 0 are zero (as FA2/unpadded ModernBERT produces them), so
//! query-expansion `[MASK]` tokens stop contributing to MaxSim. Use it only for models
//! trained with flash attention (e.g. GTE-ModernColBERT); it is off by default.

pub mod backbone;
pub mod bert;
pub mod checkpoint;
pub mod colbert;
pub mod config;
pub mod dense;
pub mod encoder;
pub mod error;
pub mod fingerprint;
pub mod head;
pub mod init;
pub mod kernels;
pub mod modernbert;
pub mod nn;
mod save;
pub mod tokenize;
pub mod weights;

pub use backbone::Backbone;
pub use colbert::ColBERT;
pub use config::ColbertConfig;
pub use dense::{DenseEncoder, Pooling};
pub use encoder::{resolve_mode, Encoder, Mode};
pub use error::{ModelError, Result};
pub use fingerprint::model_fingerprint;
pub use nn::ForwardCtx;
pub use tokenize::{InputKind, TokenBatch};

use candle_core::Device;

/// How to load a checkpoint. `None` fields fall back to the checkpoint, then to PyLate's
/// defaults.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device for weights and activations.
    pub device: Device,
    /// Register every weight the forward pass uses as a trainable `Var`.
    pub trainable: bool,
    /// Override the query length (tokens, including CLS/prefix/SEP).
    pub query_length: Option<usize>,
    /// Override the document length.
    pub document_length: Option<usize>,
    /// Override the query prompt (`Some("")` disables the checkpoint's prompt).
    pub query_prompt: Option<String>,
    /// Override the document prompt (`Some("")` disables the checkpoint's prompt).
    pub document_prompt: Option<String>,
    /// Zero vectors at attention-masked positions (flash-attention semantics).
    pub flash_attention: bool,
    /// Override `do_query_expansion`.
    pub do_query_expansion: Option<bool>,
    /// Override `attend_to_expansion_tokens`.
    pub attend_to_expansion_tokens: Option<bool>,
    /// Override the query marker text (`Some("")` = no marker).
    pub query_prefix: Option<String>,
    /// Override the document marker text (`Some("")` = no marker).
    pub document_prefix: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            trainable: false,
            query_length: None,
            document_length: None,
            query_prompt: None,
            document_prompt: None,
            flash_attention: false,
            do_query_expansion: None,
            attend_to_expansion_tokens: None,
            query_prefix: None,
            document_prefix: None,
        }
    }
}

/// How to run `encode`.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Texts per forward pass (texts are sorted by length first).
    pub batch_size: usize,
    /// Show an indicatif progress bar on stderr.
    pub show_progress: bool,
    /// Run batches concurrently on the rayon pool (candle ops are threaded as well).
    pub parallel_batches: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            show_progress: false,
            parallel_batches: true,
        }
    }
}

pub(crate) fn progress_bar(len: u64, show: bool, msg: &'static str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style);
    }
    pb.set_message(msg);
    pb
}
