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

/// Clap value parser for counts that must be at least 1 (`-k`, `--top-k`,
/// `--batch-size`, `--chunk-docs`, `--threads`, ...): a zero count would silently give
/// empty output or zero metrics, so it is a usage error instead.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number >= 1")),
    }
}

/// Process-wide settings from global flags.
pub struct Ctx {
    /// Suppress progress bars.
    pub quiet: bool,
}

/// Encoder settings that override a checkpoint's own, wherever they apply.
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct EncoderArgs {
    /// Query length in tokens (default: the checkpoint's).
    #[arg(long, value_parser = positive)]
    pub query_length: Option<usize>,
    /// Document length in tokens (default: the checkpoint's).
    #[arg(long, value_parser = positive)]
    pub document_length: Option<usize>,
    /// Prompt prepended to every query, e.g. "search_query: " (default: the checkpoint's).
    #[arg(long)]
    pub query_prompt: Option<String>,
    /// Prompt prepended to every document, e.g. "search_document: ".
    #[arg(long)]
    pub document_prompt: Option<String>,
    /// Encoding batch size.
    #[arg(long, default_value_t = 32, value_parser = positive)]
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

impl From<Mode> for colzero_model::Mode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Auto => colzero_model::Mode::Auto,
            Mode::Colbert => colzero_model::Mode::Colbert,
            Mode::Dense => colzero_model::Mode::Dense,
        }
    }
}

/// The model crate's encoder (ColBERT or dense, chosen there); the CLI only turns its
/// flags into load and encode options.
pub use colzero_model::Encoder as AnyEncoder;

/// Loads `model` with the encoder flags.
pub fn load_encoder(
    model: &std::path::Path,
    mode: Mode,
    args: &EncoderArgs,
) -> anyhow::Result<AnyEncoder> {
    Ok(AnyEncoder::load(model, mode.into(), &args.load_options())?)
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

/// One `{"id", "text"}` line of an encode/search input file (`"_id"` as in BEIR's
/// `queries.jsonl` is accepted too).
#[derive(serde::Deserialize)]
pub struct IdText {
    #[serde(alias = "_id")]
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
/// side (`"query"`/`"document"`), the model's fingerprint and its path; returns the
/// number of vectors.
pub fn write_store(
    path: &std::path::Path,
    items: impl IntoIterator<Item = (String, colzero_core::MultiVector)>,
    kind: &str,
    model: &std::path::Path,
) -> anyhow::Result<usize> {
    use colzero_core::store::{KIND_KEY, MODEL_FINGERPRINT_KEY, MODEL_KEY};
    let mut w = colzero_core::StoreWriter::new();
    w.metadata(KIND_KEY, kind);
    w.metadata(
        MODEL_FINGERPRINT_KEY,
        &colzero_model::model_fingerprint(model)?,
    );
    w.metadata(MODEL_KEY, &model.display().to_string());
    let mut tokens = 0usize;
    for (id, mv) in items {
        tokens += mv.n_tokens();
        w.push(id, mv)?;
    }
    w.write(path)?;
    Ok(tokens)
}

/// Opens an embedding store used as the documents side (`role` names the flag in
/// errors): a query store is refused, and so is a store of another model than `model`
/// (when given). A store without provenance metadata is accepted with a note on stderr.
pub fn open_document_store(
    path: &std::path::Path,
    role: &str,
    model: Option<&std::path::Path>,
) -> anyhow::Result<colzero_core::EmbeddingStore> {
    let store = colzero_core::EmbeddingStore::open(path)?;
    store.require_kind("document", role)?;
    if let Some(m) = model {
        let fp = colzero_model::model_fingerprint(m)?;
        store.require_model(&fp, &format!("--model {}", m.display()))?;
    }
    if let Some(note) = store.unchecked_note() {
        static NOTED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
        let mut noted = NOTED.lock().unwrap_or_else(|e| e.into_inner());
        if !noted.iter().any(|p| p == path) {
            noted.push(path.to_path_buf());
            eprintln!("warning: {note}");
        }
    }
    Ok(store)
}

/// Refuses vectors of one model meeting an index built from another: `fingerprint` is
/// the model fingerprint of the queries or new documents (`source` names where they come
/// from). Indexes or stores without a recorded fingerprint are not checked.
pub fn check_index_model(
    index: &colzero_index::PlaidIndex,
    fingerprint: Option<&str>,
    source: &str,
) -> anyhow::Result<()> {
    if let (Some(have), Some(got)) = (index.model_fingerprint(), fingerprint) {
        if have != got {
            anyhow::bail!(
                "{}: the index holds documents encoded by another model (fingerprint {have}) \
                 than {source} (fingerprint {got}); use the model that built the index, or \
                 rebuild it",
                index.dir().display()
            );
        }
    }
    Ok(())
}

/// PLAID search parameters (defaults documented in `colzero_index::SearchParams`).
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct PlaidArgs {
    /// Centroids probed per query token (default 8).
    #[arg(long, value_parser = positive)]
    pub n_probe: Option<usize>,
    /// Centroid-score pruning threshold (default 0.4; negative disables pruning).
    #[arg(long, allow_hyphen_values = true)]
    pub centroid_threshold: Option<f32>,
    /// Candidates kept after approximate scoring (default 4 x n-full).
    #[arg(long, value_parser = positive)]
    pub n_candidates: Option<usize>,
    /// Candidates decompressed and reranked exactly (default by k: 64 for k <= 10,
    /// 256 for k <= 100, else max(k, 2048)).
    #[arg(long, value_parser = positive)]
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
