//! `colzero index build|add|delete|info`: PLAID indexes from the command line.
//!
//! Contract: `build` streams the corpus twice in bounded memory: the first pass counts the
//! documents and keeps an evenly spaced sample (PLAID's sample size
//! `1 + 16·sqrt(120·N)`), which is encoded to train centroids and codec; the second
//! pass encodes and compresses `--chunk-docs` documents at a time. Documents can come
//! from a model + corpus or from pre-computed embeddings (`--embeddings`, a safetensors
//! store from `colzero encode`; a query-kind store is refused). `add` and `delete` keep
//! external ids stable. Every index write is crash-safe (the index crate commits a new
//! manifest atomically).

use super::{corpus, AnyEncoder, Ctx, EncoderArgs, Mode};
use anyhow::{bail, Context, Result};
use colzero_core::MultiVector;
use colzero_index::{kmeans::sample_docs, BuildConfig, IndexBuilder, PlaidIndex};
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
            let mut idx = PlaidIndex::open(&index)?;
            let before = idx.len();
            for_each_chunk(&source, ctx, |ids, embs| Ok(idx.add(ids, embs)?))?;
            eprintln!("added {} documents", idx.len() - before);
            println!("{}", idx.info());
        }
        Action::Delete {
            index,
            mut ids,
            ids_file,
        } => {
            if let Some(f) = ids_file {
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                ids.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            if ids.is_empty() {
                bail!("give the ids to delete with --ids or --ids-file");
            }
            let mut idx = PlaidIndex::open(&index)?;
            let n = idx.delete(&ids)?;
            eprintln!("deleted {n} of {} ids", ids.len());
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
        Some(m) => Ok(Some(AnyEncoder::load(m, Mode::Colbert, &source.encoder)?)),
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
            let picks = spaced(n, sample_docs(n));
            let s = picks
                .iter()
                .map(|&i| store.get(&store.ids()[i]))
                .collect::<colzero_core::Result<Vec<_>>>()?;
            (n, s)
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
            let picks = spaced(n, sample_docs(n));
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
                m.encode(&texts, InputKind::Document, &source.encoder, ctx)?,
            )
        }
        (None, None) => bail!("give --model and --corpus, or --embeddings"),
    };
    if n == 0 {
        bail!("the corpus is empty");
    }
    let mut cfg = cfg.clone();
    cfg.expected_documents = Some(n);
    let mut builder = IndexBuilder::train(out, &sample, &cfg)
        .with_context(|| format!("training the index codec in {}", out.display()))?;
    drop(sample);
    for_each_chunk_with(source, model.as_ref(), ctx, |ids, embs| {
        Ok(builder.add_chunk(ids, embs)?)
    })?;
    Ok(builder.finish()?)
}

/// `k` indices evenly spaced over `0..n`, ascending.
fn spaced(n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    (0..k).map(|j| j * n / k.max(1)).collect()
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
            f(ids.to_vec(), &embs)?;
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
        let embs = model.encode(texts, InputKind::Document, &source.encoder, ctx)?;
        f(std::mem::take(ids), &embs)?;
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
