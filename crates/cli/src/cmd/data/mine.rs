//! `colzero data mine`: hard-negative triplets for the judged pairs of a BEIR split (see
//! the contract in `cmd/data.rs`). Also the candidate miner `colzero data teacher` uses.

use super::{write_jsonl, Ctx};
use crate::cmd::{load_encoder, progress, EncoderArgs, Mode};
use anyhow::{bail, Context, Result};
use colzero_eval::BeirDataset;
use colzero_index::bm25::{Analyzer, Bm25Index, Bm25Params};
use colzero_index::ExactIndex;
use colzero_model::InputKind;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

/// Where negatives are ranked from.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Okapi BM25 (colzero-index, k1/b below).
    Bm25,
    /// A colzero model (ColBERT MaxSim or dense dot product), exact search.
    Model,
}

/// BM25 settings shared by `mine` and `teacher`.
#[derive(clap::Args, Debug, Clone)]
pub struct Bm25Args {
    /// BM25 k1.
    #[arg(long, default_value_t = 0.9)]
    pub k1: f64,
    /// BM25 b.
    #[arg(long, default_value_t = 0.4)]
    pub b: f64,
    /// Remove English stopwords before BM25.
    #[arg(long)]
    pub stopwords: bool,
    /// Stem with Snowball English (Porter2) before BM25.
    #[arg(long)]
    pub stem: bool,
}

impl Bm25Args {
    /// A BM25 index of `(id, text)` pairs with these settings.
    pub fn index<I, S, T>(&self, docs: I) -> Result<Bm25Index>
    where
        I: IntoIterator<Item = (S, T)>,
        S: Into<String>,
        T: AsRef<str> + Send + Sync,
    {
        let params = Bm25Params {
            k1: self.k1,
            b: self.b,
        };
        let analyzer = Analyzer {
            stopwords: self.stopwords,
            stem: self.stem,
        };
        Ok(Bm25Index::build(docs, analyzer, params)?)
    }
}

/// Options of `colzero data mine`.
#[derive(clap::Args, Debug)]
pub struct MineArgs {
    /// BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Split whose judged pairs become triplets.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Output JSONL triplet file.
    #[arg(long)]
    pub out: PathBuf,
    /// Hard negatives per row.
    #[arg(long, default_value_t = 8, value_parser = crate::cmd::positive)]
    pub negatives: usize,
    /// Ranker of the negatives.
    #[arg(long, value_enum, default_value_t = Method::Bm25)]
    pub method: Method,
    /// Model directory for `--method model`.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// How to run the model.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Skip this many best-ranked non-relevant documents (likely false negatives).
    #[arg(long, default_value_t = 0)]
    pub skip_top: usize,
    /// Tag every row with `"source": NAME`.
    #[arg(long)]
    pub source: Option<String>,
    /// Keep at most this many positives per query (highest relevance first, then id).
    #[arg(long, value_parser = crate::cmd::positive)]
    pub max_positives: Option<usize>,
    /// Allow mining the `test` split (its judgments would leak into training).
    #[arg(long)]
    pub allow_test_split: bool,
    #[command(flatten)]
    pub bm25: Bm25Args,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// One mined row: ids and texts.
#[derive(Debug, Clone, Serialize)]
pub struct Triplet {
    pub query: String,
    pub positive: String,
    pub negatives: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub query_id: String,
    pub positive_id: String,
    pub negative_ids: Vec<String>,
}

/// How to rank candidates for mining.
pub struct Ranker<'a> {
    pub method: Method,
    pub bm25: &'a Bm25Args,
    pub model: Option<&'a PathBuf>,
    pub mode: Mode,
    pub encoder: &'a EncoderArgs,
}

/// Loads a split, refusing `test` unless allowed.
pub fn load_split(dir: &std::path::Path, split: &str, allow_test: bool) -> Result<BeirDataset> {
    if split == "test" && !allow_test {
        bail!(
            "refusing to mine the `test` split of {}: its judgments would leak into training \
             (pass --allow-test-split to override)",
            dir.display()
        );
    }
    BeirDataset::load(dir, split).with_context(|| format!("loading {}", dir.display()))
}

/// Ranks `depth` documents for every query of `ds` (in `ds.queries` order).
fn rank(ds: &BeirDataset, r: &Ranker, depth: usize, ctx: &Ctx) -> Result<Vec<Vec<String>>> {
    let queries: Vec<String> = ds.queries.iter().map(|q| q.text.clone()).collect();
    match r.method {
        Method::Bm25 => {
            let idx = r.bm25.index(ds.documents())?;
            let pb = progress(queries.len() as u64, ctx, "bm25 search");
            let mut out = Vec::with_capacity(queries.len());
            for chunk in queries.chunks(256) {
                for hits in idx.search_batch(chunk, depth) {
                    out.push(hits.into_iter().map(|h| h.id).collect());
                }
                pb.inc(chunk.len() as u64);
            }
            pb.finish_and_clear();
            Ok(out)
        }
        Method::Model => {
            let Some(model) = r.model else {
                bail!("--method model needs --model DIR");
            };
            let enc = load_encoder(model, r.mode, r.encoder)?;
            let (ids, texts): (Vec<String>, Vec<String>) =
                ds.documents().map(|(i, t)| (i.to_string(), t)).unzip();
            let docs = enc.encode(&texts, InputKind::Document, &r.encoder.encode_options(ctx))?;
            let index = ExactIndex::from_embeddings(ids.into_iter().zip(docs).collect())?;
            let q = enc.encode(&queries, InputKind::Query, &r.encoder.encode_options(ctx))?;
            let pb = progress(q.len() as u64, ctx, "exact search");
            let mut out = Vec::with_capacity(q.len());
            for chunk in q.chunks(256) {
                for hits in index.search_batch(chunk, depth)? {
                    out.push(hits.into_iter().map(|h| h.id).collect());
                }
                pb.inc(chunk.len() as u64);
            }
            pb.finish_and_clear();
            Ok(out)
        }
    }
}

/// What to mine per query.
pub struct MineSpec<'a> {
    /// Hard negatives per row.
    pub negatives: usize,
    /// Best non-relevant documents skipped.
    pub skip_top: usize,
    /// Rows per query at most (positives by relevance desc, then id).
    pub max_positives: Option<usize>,
    /// `source` tag of every row.
    pub source: Option<&'a str>,
}

/// Mines hard negatives per judged-relevant pair; returns the rows and the number of
/// (query, positive) pairs dropped for lack of candidates.
pub fn mine(
    ds: &BeirDataset,
    ranker: &Ranker,
    spec: &MineSpec,
    ctx: &Ctx,
) -> Result<(Vec<Triplet>, usize)> {
    let (negatives, skip_top, source) = (spec.negatives, spec.skip_top, spec.source);
    if negatives == 0 {
        bail!("--negatives must be at least 1");
    }
    // every judged-relevant document (all are excluded from the negatives) ...
    let relevant: Vec<Vec<(i32, String)>> = ds
        .queries
        .iter()
        .map(|q| {
            let mut v: Vec<(i32, String)> = ds
                .qrels
                .get(&q.id)
                .map(|m| {
                    m.iter()
                        .filter(|(_, &r)| r > 0)
                        .map(|(d, &r)| (r, d.clone()))
                        .collect()
                })
                .unwrap_or_default();
            v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            v
        })
        .collect();
    let max_rel = relevant.iter().map(Vec::len).max().unwrap_or(0);
    let depth = (skip_top + negatives + max_rel).min(ds.corpus.len());
    let ranked = rank(ds, ranker, depth, ctx)?;
    let text: HashMap<&str, String> = ds
        .corpus
        .iter()
        .map(|d| (d.id.as_str(), d.full_text()))
        .collect();
    let mut rows = Vec::new();
    let mut dropped = 0;
    for ((q, rel), ranked) in ds.queries.iter().zip(&relevant).zip(&ranked) {
        let judged: HashSet<&str> = rel.iter().map(|(_, d)| d.as_str()).collect();
        let negs: Vec<&String> = ranked
            .iter()
            .filter(|d| !judged.contains(d.as_str()))
            .skip(skip_top)
            .take(negatives)
            .collect();
        // ... but only the first `max_positives` become rows
        for (_, pos) in rel.iter().take(spec.max_positives.unwrap_or(usize::MAX)) {
            let Some(pos_text) = text.get(pos.as_str()) else {
                bail!(
                    "{}: qrels judge document `{pos}` for query `{}` but it is not in corpus.jsonl",
                    ds.dir
                        .join("qrels")
                        .join(format!("{}.tsv", ds.split))
                        .display(),
                    q.id
                );
            };
            if negs.len() < negatives {
                dropped += 1;
                continue;
            }
            rows.push(Triplet {
                query: q.text.clone(),
                positive: pos_text.clone(),
                negatives: negs.iter().map(|d| text[d.as_str()].clone()).collect(),
                source: source.map(str::to_string),
                query_id: q.id.clone(),
                positive_id: pos.clone(),
                negative_ids: negs.iter().map(|d| (*d).clone()).collect(),
            });
        }
    }
    Ok((rows, dropped))
}

/// Runs `colzero data mine`.
pub fn run(args: MineArgs, ctx: &Ctx) -> Result<()> {
    let d = &args.dataset;
    let split_file = d.join("qrels").join(format!("{}.tsv", args.split));
    let none = std::path::Path::new("");
    let inputs = [
        ("--model", args.model.as_deref().unwrap_or(none)),
        ("--dataset", d.as_path()),
        ("--dataset", &d.join("corpus.jsonl")),
        ("--dataset", &d.join("queries.jsonl")),
        ("--split", &split_file),
    ];
    colzero_core::fsutil::ensure_output_not_input("--out", &args.out, &inputs)?;
    colzero_core::fsutil::ensure_not_part_of("--out", &args.out, &inputs[..1])?;
    let ds = load_split(&args.dataset, &args.split, args.allow_test_split)?;
    let ranker = Ranker {
        method: args.method,
        bm25: &args.bm25,
        model: args.model.as_ref(),
        mode: args.mode,
        encoder: &args.encoder,
    };
    let spec = MineSpec {
        negatives: args.negatives,
        skip_top: args.skip_top,
        max_positives: args.max_positives,
        source: args.source.as_deref(),
    };
    let (rows, dropped) = mine(&ds, &ranker, &spec, ctx)?;
    if rows.is_empty() {
        bail!(
            "no triplets: {dropped} judged pairs of {} split `{}` lack {} negatives after \
             skipping {}",
            args.dataset.display(),
            args.split,
            args.negatives,
            args.skip_top
        );
    }
    write_jsonl(&args.out, &rows)?;
    eprintln!(
        "wrote {} triplets ({} negatives each, {:?}) to {}; {dropped} pairs dropped for lack of \
         candidates",
        rows.len(),
        args.negatives,
        args.method,
        args.out.display()
    );
    Ok(())
}
