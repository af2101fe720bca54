//! Subcommands of the `colzero` binary, one file each, plus the option groups they share.
//!
//! Contract: `Args` structs are clap-derived and documented (their docs are the `--help`
//! text); `run(args, ctx)` does the work by calling library crates.

pub mod ablate;
pub mod convert;
pub mod corpus;
pub mod data;
pub mod encode;
pub mod eval;
pub mod index;
pub mod metrics;
pub mod pipeline;
pub mod quickstart;
pub mod search;
pub mod serve;
pub mod train;

use clap::Args as ClapArgs;

/// Process-wide settings from global flags.
pub struct Ctx {
    /// Suppress progress bars.
    pub quiet: bool,
}

/// Encoder settings that override a checkpoint's own, wherever they apply.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct EncoderArgs {
    /// Query length in tokens (default: the checkpoint's).
    #[arg(long)]
    pub query_length: Option<usize>,
    /// Document length in tokens (default: the checkpoint's).
    #[arg(long)]
    pub document_length: Option<usize>,
    /// Prompt prepended to every query, e.g. "search_query: " (default: the checkpoint's).
    #[arg(long)]
    pub query_prompt: Option<String>,
    /// Prompt prepended to every document, e.g. "search_document: ".
    #[arg(long)]
    pub document_prompt: Option<String>,
    /// Encoding batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Reproduce flash-attention semantics: vectors at attention-masked positions
    /// (query-expansion [MASK] tokens) are zero. Use for models trained with flash
    /// attention, such as GTE-ModernColBERT.
    #[arg(long)]
    pub flash_attention: bool,
}

impl EncoderArgs {
    /// The model-crate load options these flags describe.
    pub fn load_options(&self) -> colzero_model::LoadOptions {
        colzero_model::LoadOptions {
            query_length: self.query_length,
            document_length: self.document_length,
            query_prompt: self.query_prompt.clone(),
            document_prompt: self.document_prompt.clone(),
            flash_attention: self.flash_attention,
            ..Default::default()
        }
    }

    /// Encoding options (progress bar unless `quiet`).
    pub fn encode_options(&self, ctx: &Ctx) -> colzero_model::EncodeOptions {
        colzero_model::EncodeOptions {
            batch_size: self.batch_size.max(1),
            show_progress: !ctx.quiet,
            ..Default::default()
        }
    }
}

/// How a checkpoint directory should be run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// ColBERT if the checkpoint has a projection head, dense if it has a pooling module.
    #[default]
    Auto,
    /// Late interaction (multi-vector, MaxSim).
    Colbert,
    /// Dense bi-encoder (one pooled, normalised vector per text).
    Dense,
}

/// Resolves `Mode::Auto` by reading `modules.json`: a sentence-transformers Pooling
/// module means a dense model; anything else (Dense head, Stanford checkpoint) ColBERT.
pub fn resolve_mode(model: &std::path::Path, mode: Mode) -> Mode {
    if mode != Mode::Auto {
        return mode;
    }
    let modules = std::fs::read_to_string(model.join("modules.json")).unwrap_or_default();
    if modules.contains("models.Pooling") {
        Mode::Dense
    } else {
        Mode::Colbert
    }
}

/// A loaded encoder of either kind, producing multi-vectors (dense vectors become
/// one-token multi-vectors, so MaxSim reduces to the dot product).
pub enum AnyEncoder {
    Colbert(Box<colzero_model::ColBERT>),
    Dense(Box<colzero_model::DenseEncoder>),
}

impl AnyEncoder {
    /// Loads `model` in the given mode.
    pub fn load(model: &std::path::Path, mode: Mode, args: &EncoderArgs) -> anyhow::Result<Self> {
        use anyhow::Context;
        // A model folder whose replacement was cut short by a kill is put back first.
        colzero_core::fsutil::recover_dir(model)?;
        let opts = args.load_options();
        Ok(match resolve_mode(model, mode) {
            Mode::Dense => AnyEncoder::Dense(Box::new(
                colzero_model::DenseEncoder::load(model, &opts)
                    .with_context(|| format!("loading dense model {}", model.display()))?,
            )),
            _ => AnyEncoder::Colbert(Box::new(
                colzero_model::ColBERT::load(model, &opts)
                    .with_context(|| format!("loading ColBERT model {}", model.display()))?,
            )),
        })
    }

    /// Short description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            AnyEncoder::Colbert(m) => {
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
            AnyEncoder::Dense(m) => format!("dense ({:?} pooling)", m.pooling()),
        }
    }

    /// Encodes texts of one kind.
    pub fn encode(
        &self,
        texts: &[String],
        kind: colzero_model::InputKind,
        args: &EncoderArgs,
        ctx: &Ctx,
    ) -> anyhow::Result<Vec<colzero_core::MultiVector>> {
        match self {
            AnyEncoder::Colbert(m) => Ok(m.encode(texts, kind, &args.encode_options(ctx))?),
            AnyEncoder::Dense(m) => {
                let pb = progress(texts.len() as u64, ctx, "encoding");
                let mut out = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(args.batch_size.max(1) * 8) {
                    for v in m.encode(chunk)? {
                        let dim = v.len();
                        out.push(colzero_core::MultiVector::new(dim, v)?);
                    }
                    pb.inc(chunk.len() as u64);
                }
                pb.finish_and_clear();
                Ok(out)
            }
        }
    }
}

/// A progress bar on stderr (hidden with `--quiet`).
pub fn progress(len: u64, ctx: &Ctx, msg: &'static str) -> indicatif::ProgressBar {
    if ctx.quiet {
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

/// One `{"id", "text"}` line of an encode/search input file.
#[derive(serde::Deserialize)]
pub struct IdText {
    pub id: String,
    pub text: String,
}

/// Reads a JSONL file of `{"id","text"}` records (`file:line` errors, unique ids).
pub fn read_id_texts(path: &std::path::Path) -> anyhow::Result<Vec<IdText>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for rec in colzero_core::jsonl::read_jsonl::<IdText>(path)? {
        let (line, r) = rec?;
        if !seen.insert(r.id.clone()) {
            anyhow::bail!("{}:{line}: duplicate id `{}`", path.display(), r.id);
        }
        out.push(r);
    }
    Ok(out)
}

/// Writes `(id, multi-vector)` pairs as an embedding store (atomically), tagged with the
/// side (`"query"`/`"document"`) and the model path; returns the number of vectors.
pub fn write_store(
    path: &std::path::Path,
    items: impl IntoIterator<Item = (String, colzero_core::MultiVector)>,
    kind: &str,
    model: &std::path::Path,
) -> anyhow::Result<usize> {
    let mut w = colzero_core::StoreWriter::new();
    w.metadata("colzero.kind", kind);
    w.metadata("colzero.model", &model.display().to_string());
    let mut tokens = 0usize;
    for (id, mv) in items {
        tokens += mv.n_tokens();
        w.push(id, mv)?;
    }
    w.write(path)?;
    Ok(tokens)
}

/// PLAID search parameters (defaults documented in `colzero_index::SearchParams`).
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct PlaidArgs {
    /// Centroids probed per query token (default 8).
    #[arg(long)]
    pub n_probe: Option<usize>,
    /// Centroid-score pruning threshold (default 0.4; negative disables pruning).
    #[arg(long, allow_hyphen_values = true)]
    pub centroid_threshold: Option<f32>,
    /// Candidates kept after approximate scoring (default 4 x n-full).
    #[arg(long)]
    pub n_candidates: Option<usize>,
    /// Candidates decompressed and reranked exactly (default by k: 64 for k <= 10,
    /// 256 for k <= 100, else max(k, 2048)).
    #[arg(long)]
    pub n_full: Option<usize>,
    /// Rerank in f32 instead of 8-bit residual dot products (used on CPUs with
    /// AVX-512 VNNI; scores move by about 1e-4 per query token).
    #[arg(long)]
    pub f32_rerank: bool,
}

impl PlaidArgs {
    /// The index crate's parameters with these overrides.
    pub fn params(&self) -> colzero_index::SearchParams {
        let mut p = colzero_index::SearchParams::default();
        if let Some(v) = self.n_probe {
            p.n_probe = v;
        }
        if let Some(v) = self.centroid_threshold {
            p.centroid_score_threshold = (v >= 0.0).then_some(v);
        }
        if let Some(v) = self.n_candidates {
            p.n_candidates = Some(v);
        }
        if let Some(v) = self.n_full {
            p.n_full = Some(v);
        }
        p.f32_rerank = self.f32_rerank;
        p
    }
}

pub use colzero_index::Searcher;
