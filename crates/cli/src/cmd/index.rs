//! `colzero index build|add|delete|info`: PLAID indexes from the command line.
//!
//! Contract: `build` streams the corpus twice in bounded memory: the first pass counts the
//! documents and keeps the library's seeded sample (`kmeans::sample_positions`, PLAID's
//! size `1 + 16·sqrt(120·N)`), which is encoded to train centroids and codec; the second
//! pass encodes and compresses `--chunk-docs` documents at a time. Documents can come
//! from a model + corpus or from pre-computed embeddings (`--embeddings`, a safetensors
//! store from `colzero encode`; a query-kind store is refused). `add` and `delete` keep
//! external ids stable.
//! Every write is the index's one writer (`colzero_index::IndexWriter`): another writer
//! gets a clear "held by process N" error, or waits with `--wait SECONDS`. `add` and
//! `delete` are all or nothing per command: the whole input is read and checked (ids new,
//! lines well-formed) before anything is encoded, every chunk is staged, and one commit
//! at the end switches the index; a failure or a kill leaves the index as it was.
//! `check` verifies every file and removes what no manifest references.

use super::{corpus, load_encoder, AnyEncoder, Ctx, EncoderArgs, Mode};
use anyhow::{bail, Context, Result};
use colzero_core::lock::Wait;
use colzero_core::MultiVector;
use colzero_index::{kmeans::sample_positions, BuildConfig, IndexBuilder, IndexWriter, PlaidIndex};
use colzero_model::InputKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `colzero index`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// Where documents come from.
#[derive(clap::Args, Debug, Clone)]
pub struct Source {
    /// Model directory used to encode the corpus.
    #[arg(long, requires = "corpus")]
    pub model: Option<PathBuf>,
    /// Corpus: a BEIR directory or a JSONL file of `{"_id"|"id", "title"?, "text"}`.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Pre-computed document embeddings (instead of --model/--corpus).
    #[arg(long, conflicts_with_all = ["model", "corpus"])]
    pub embeddings: Option<PathBuf>,
    /// Documents encoded and compressed per chunk.
    #[arg(long, default_value_t = 2000, value_parser = super::positive)]
    pub chunk_docs: usize,
    /// When another process is writing the index, wait up to this many seconds for it
    /// (default: fail at once, naming the process).
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<f64>,
    /// Token pooling: cluster each document's vectors (Ward, as PyLate) into about
    /// 1/N as many, keeping the first; 1 = off. Applies to precomputed embeddings too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_factor: u32,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// `colzero index` actions.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Build a new index (replaces an existing one at --out only when complete).
    Build {
        #[command(flatten)]
        source: Source,
        /// Index directory.
        #[arg(long)]
        out: PathBuf,
        /// Residual bits per dimension (1, 2 or 4).
        #[arg(long, default_value_t = 2)]
        nbits: usize,
        /// Seed of k-means and sampling.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Fixed number of centroids (default: PLAID's formula).
        #[arg(long, value_parser = super::positive)]
        centroids: Option<usize>,
    },
    /// Add documents to an index (ids must be new).
    Add {
        #[command(flatten)]
        source: Source,
        /// Index directory.
        #[arg(long)]
        index: PathBuf,
    },
    /// Delete documents by external id (other ids are unchanged).
    Delete {
        /// Index directory.
        #[arg(long)]
        index: PathBuf,
        /// Comma-separated ids.
        #[arg(long, value_delimiter = ',')]
        ids: Vec<String>,
        /// File with one id per line.
        #[arg(long)]
        ids_file: Option<PathBuf>,
        /// When another process is writing the index, wait up to this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
    },
    /// Verify every file of an index and remove files no manifest references (litter of
    /// killed writers, files kept for readers).
    Check {
        /// Index directory.
        #[arg(long)]
        index: PathBuf,
        /// When another process is writing the index, wait up to this many seconds.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
    },
    /// Print a summary of an index.
    Info {
        /// Index directory.
        #[arg(long)]
        index: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `colzero index`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    match args.action {
        Action::Build {
            source,
            out,
            nbits,
            seed,
            centroids,
        } => {
            let cfg = BuildConfig {
                nbits,
                seed,
                num_centroids: centroids,
                ..BuildConfig::default()
            };
            let t0 = Instant::now();
            let index = build(&source, &out, &cfg, ctx)?;
            eprintln!(
                "built {} in {:.1}s",
                out.display(),
                t0.elapsed().as_secs_f64()
            );
            println!("{}", index.info());
        }
        Action::Add { source, index } => {
            let mut w = IndexWriter::open(&index, Wait::from_secs(source.wait))?;
            let before = w.len();
            let what = match &source.model {
                Some(m) => format!("--model {}", m.display()),
                None => "the --embeddings store".to_string(),
            };
            super::check_index_model(w.base(), source_fingerprint(&source)?.as_deref(), &what)?;
            check_new_ids(&source, &w)?;
            for_each_chunk(&source, ctx, |ids, embs| Ok(w.add(ids, embs)?))?;
            let idx = w.commit()?;
            eprintln!("added {} documents", idx.len() - before);
            println!("{}", idx.info());
        }
        Action::Delete {
            index,
            mut ids,
            ids_file,
            wait,
        } => {
            if let Some(f) = ids_file {
                ids.extend(read_ids_file(&f)?);
            }
            if ids.is_empty() {
                bail!("give the ids to delete with --ids or --ids-file");
            }
            let mut w = IndexWriter::open(&index, Wait::from_secs(wait))?;
            let n = w.delete(&ids)?;
            let idx = w.commit()?;
            eprintln!("deleted {n} of {} ids", ids.len());
            println!("{}", idx.info());
        }
        Action::Check { index, wait } => {
            let removed = colzero_index::writer::collect_garbage(&index, Wait::from_secs(wait))?;
            let idx = PlaidIndex::open(&index)?;
            eprintln!(
                "{}: every file checked; removed {removed} unreferenced files",
                index.display()
            );
            println!("{}", idx.info());
        }
        Action::Info { index, json } => {
            let info = PlaidIndex::open(&index)?.info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("{info}");
            }
        }
    }
    Ok(())
}

fn load_model(source: &Source) -> Result<Option<AnyEncoder>> {
    match &source.model {
        Some(m) => Ok(Some(load_encoder(m, Mode::Colbert, &source.encoder)?)),
        None => Ok(None),
    }
}

/// Builds an index from `source` into `out` (see module docs).
pub fn build(source: &Source, out: &Path, cfg: &BuildConfig, ctx: &Ctx) -> Result<PlaidIndex> {
    let model = load_model(source)?;
    let (n, sample) = match (&model, &source.embeddings) {
        (_, Some(e)) => {
            let store = super::open_document_store(e, "index --embeddings", None)?;
            let n = store.len();
            let picks = sample_positions(n, cfg.seed);
            let s = picks
                .iter()
                .map(|&i| store.get(&store.ids()[i]))
                .collect::<colzero_core::Result<Vec<_>>>()?;
            (n, pooled(source, s))
        }
        (Some(m), None) => {
            let corpus = source
                .corpus
                .as_ref()
                .expect("clap requires --corpus with --model");
            corpus::require_rereadable(corpus, "`index build`")?;
            let mut n = 0usize;
            for r in corpus::stream(corpus)? {
                r?;
                n += 1;
            }
            let picks = sample_positions(n, cfg.seed);
            let mut texts = Vec::with_capacity(picks.len());
            let mut next = picks.iter().peekable();
            for (i, r) in corpus::stream(corpus)?.enumerate() {
                if next.peek() == Some(&&i) {
                    texts.push(r?.1);
                    next.next();
                }
            }
            (
                n,
                pooled(
                    source,
                    m.encode(
                        &texts,
                        InputKind::Document,
                        &source.encoder.encode_options(ctx),
                    )?,
                ),
            )
        }
        (None, None) => bail!("give --model and --corpus, or --embeddings"),
    };
    if n == 0 {
        bail!("the corpus is empty");
    }
    let mut cfg = cfg.clone();
    cfg.expected_documents = Some(n);
    let mut builder = IndexBuilder::train_waiting(out, &sample, &cfg, Wait::from_secs(source.wait))
        .with_context(|| format!("training the index codec in {}", out.display()))?;
    drop(sample);
    builder.set_model_fingerprint(source_fingerprint(source)?);
    for_each_chunk_with(source, model.as_ref(), ctx, |ids, embs| {
        Ok(builder.add_chunk(ids, embs)?)
    })?;
    Ok(builder.finish()?)
}

/// The model fingerprint of the documents `source` gives: the `--model`'s, or the one a
/// `--embeddings` store records (none for stores written before fingerprints existed).
fn source_fingerprint(source: &Source) -> Result<Option<String>> {
    if let Some(m) = &source.model {
        return Ok(Some(colzero_model::model_fingerprint(m)?));
    }
    match &source.embeddings {
        Some(e) => Ok(colzero_core::EmbeddingStore::open(e)?
            .model_fingerprint()
            .map(String::from)),
        None => Ok(None),
    }
}

fn for_each_chunk(
    source: &Source,
    ctx: &Ctx,
    f: impl FnMut(Vec<String>, &[MultiVector]) -> Result<()>,
) -> Result<()> {
    let model = load_model(source)?;
    for_each_chunk_with(source, model.as_ref(), ctx, f)
}

/// Streams the source's documents as encoded chunks of `chunk_docs`.
fn for_each_chunk_with(
    source: &Source,
    model: Option<&AnyEncoder>,
    ctx: &Ctx,
    mut f: impl FnMut(Vec<String>, &[MultiVector]) -> Result<()>,
) -> Result<()> {
    let chunk = source.chunk_docs.max(1);
    if let Some(e) = &source.embeddings {
        let store = super::open_document_store(e, "index --embeddings", None)?;
        let pb = super::progress(store.len() as u64, ctx, "indexing");
        for ids in store.ids().chunks(chunk) {
            let embs = ids
                .iter()
                .map(|id| store.get(id))
                .collect::<colzero_core::Result<Vec<_>>>()?;
            f(ids.to_vec(), &pooled(source, embs))?;
            pb.inc(ids.len() as u64);
        }
        pb.finish_and_clear();
        return Ok(());
    }
    let (Some(model), Some(corpus)) = (model, &source.corpus) else {
        bail!("give --model and --corpus, or --embeddings");
    };
    let mut ids = Vec::with_capacity(chunk);
    let mut texts = Vec::with_capacity(chunk);
    let mut flush = |ids: &mut Vec<String>, texts: &mut Vec<String>| -> Result<()> {
        let embs = model.encode(
            texts,
            InputKind::Document,
            &source.encoder.encode_options(ctx),
        )?;
        f(std::mem::take(ids), &pooled(source, embs))?;
        texts.clear();
        Ok(())
    };
    for r in corpus::stream(corpus)? {
        let (id, text) = r?;
        ids.push(id);
        texts.push(text);
        if ids.len() == chunk {
            flush(&mut ids, &mut texts)?;
        }
    }
    if !ids.is_empty() {
        flush(&mut ids, &mut texts)?;
    }
    Ok(())
}

/// Documents after `--pool-factor` (PyLate's hierarchical pooling, first token kept).
fn pooled(source: &Source, embs: Vec<MultiVector>) -> Vec<MultiVector> {
    if source.pool_factor <= 1 {
        return embs;
    }
    embs.iter()
        .map(|e| colzero_core::pool::pool_tokens(e, source.pool_factor as usize, 1))
        .collect()
}

/// Ids of an `--ids-file`: one per line, blank lines skipped, surrounding spaces trimmed;
/// a line that is not UTF-8 is an error naming the file and line.
fn read_ids_file(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut ids = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}: not UTF-8 (byte {} of the line)",
                path.display(),
                i + 1,
                e.valid_up_to() + 1
            )
        })?;
        let id = line.trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// Reads the whole input of an `add` once, before anything is encoded or written: every
/// line must parse and every id must be new to the index and unique in the input.
fn check_new_ids(source: &Source, w: &IndexWriter) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut check = |id: &str| -> Result<()> {
        if w.contains(id) {
            bail!(
                "document id `{id}` is already in the index (delete it first); nothing was added"
            );
        }
        if !seen.insert(id.to_string()) {
            bail!("document id `{id}` appears twice in the input; nothing was added");
        }
        Ok(())
    };
    if let Some(e) = &source.embeddings {
        for id in super::open_document_store(e, "index add --embeddings", None)?.ids() {
            check(id)?;
        }
    } else if let Some(c) = &source.corpus {
        corpus::require_rereadable(c, "`index add`")?;
        for r in corpus::stream(c)? {
            let (id, _) = r.map_err(|e| anyhow::anyhow!("{e:#}; nothing was added"))?;
            check(&id)?;
        }
    }
    Ok(())
}
