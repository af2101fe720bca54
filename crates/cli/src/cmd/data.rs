//! `colzero data {pairs,mine,teacher}`: training data preparation in the formats
//! colzero-train reads (`colzero_train::data`).
//!
//! Contract:
//! - `pairs`: unsupervised `(query = title, positive = text)` pairs from a corpus: a BEIR
//!   directory (only its `corpus.jsonl` is opened — never `queries.jsonl` nor `qrels/`, so
//!   test queries and judgments cannot leak into pre-training data) or a JSONL file with
//!   configurable fields. Rows with an empty (whitespace-only) query, a positive shorter
//!   than `--min-chars` characters, or query == positive are skipped; exact duplicate
//!   (query, positive) pairs are written once (first occurrence). Output: JSONL
//!   `{"query", "positive"[, "source"]}`, corpus order or a seeded shuffle.
//! - `mine`: one triplet row per (query, judged-relevant document) of a BEIR split (qrels
//!   relevance > 0), negatives = the best-ranked documents (BM25 or a colzero model)
//!   after removing *every* document judged relevant for that query and skipping the
//!   first `--skip-top` remaining ones (false-negative guard). A query's rows follow its
//!   positives by relevance descending, then id; `--max-positives N` keeps the first N
//!   (the others are still excluded from the negatives). Output: JSONL
//!   `{"query", "positive", "negatives": [..][, "source"], "query_id", "positive_id",
//!   "negative_ids"}` (the trainer ignores the id fields). Documents are PyLate's
//!   `f"{title} {text}".strip()`. A query with fewer than `--negatives` candidates is
//!   dropped and counted. The `test` split is refused unless `--allow-test-split`.
//! - `teacher`: PyLate KD data (`queries.jsonl {query_id,text}`, `documents.jsonl
//!   {document_id,text}`, `train.jsonl {query_id, document_ids, scores}`, the positive
//!   first) scored by any model colzero runs: MaxSim for ColBERT, the dot product of the
//!   normalised vectors for a dense model. Rows come from a triplet file (`pairs`/`mine`
//!   output or TSV) or are mined from a BEIR split with BM25. Ids are assigned per distinct
//!   text (`q0..`, `d0..`, first-appearance order). Optionally BM25 is fused in
//!   (`--bm25-weight W`: + W · BM25 / the row's best BM25, statistics over the rows'
//!   distinct documents) and every score divided by `--temperature`; the share of rows
//!   whose positive the teacher ranks first is printed.
//! - Every output is written atomically (a file, or the whole KD directory); bad input
//!   fails with `file:line` and a non-zero exit, leaving no output. An output that is
//!   one of the command's inputs is refused before any work; `teacher --out` must be new,
//!   empty or a KD directory (`--force` replaces any other folder).

mod mine;
mod teacher;

use super::Ctx;
use anyhow::{bail, Context, Result};
use colzero_core::fsutil::atomic_write;
use colzero_eval::py_strip;
use serde::Serialize;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use mine::MineArgs;
pub use teacher::TeacherArgs;

/// Options of `colzero data`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The data preparation steps.
#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// Unsupervised (title, text) pairs from a BEIR or JSONL corpus (never reads queries
    /// or qrels).
    Pairs(PairsArgs),
    /// Hard-negative triplets for a BEIR split's judged pairs (BM25 or a model).
    Mine(MineArgs),
    /// Knowledge-distillation teacher scores in PyLate's format from any colzero model.
    Teacher(TeacherArgs),
}

/// Runs `colzero data`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    match args.command {
        DataCommand::Pairs(a) => run_pairs(a, ctx),
        DataCommand::Mine(a) => mine::run(a, ctx),
        DataCommand::Teacher(a) => teacher::run(a, ctx),
    }
}

/// Options of `colzero data pairs`.
#[derive(clap::Args, Debug)]
pub struct PairsArgs {
    /// A BEIR dataset directory (only DIR/corpus.jsonl is read) or a JSONL corpus file.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Output JSONL file of `{"query","positive"}` rows.
    #[arg(long)]
    pub out: PathBuf,
    /// Tag every row with `"source": NAME` (the trainer samples one source per batch).
    #[arg(long)]
    pub source: Option<String>,
    /// Skip rows whose positive has fewer characters than this (after stripping).
    #[arg(long, default_value_t = 1)]
    pub min_chars: usize,
    /// JSON field holding the query (BEIR: title).
    #[arg(long, default_value = "title")]
    pub query_field: String,
    /// JSON field holding the positive (BEIR: text).
    #[arg(long, default_value = "text")]
    pub positive_field: String,
    /// Shuffle the output with this seed (default: corpus order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep at most this many pairs (after deduplication and shuffling).
    #[arg(long, value_parser = crate::cmd::positive)]
    pub max_pairs: Option<usize>,
}

#[derive(Serialize)]
struct PairRow<'a> {
    query: &'a str,
    positive: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

/// A string field of a JSON record: missing or null is `None`; any other non-string is
/// an error naming the line.
fn str_field<'a>(
    v: &'a serde_json::Value,
    field: &str,
    path: &Path,
    line: usize,
) -> Result<Option<&'a str>> {
    match v.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(other) => bail!(
            "{}:{line}: field `{field}` must be a string, found {}",
            path.display(),
            json_kind(other)
        ),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Deterministic 64-bit key of a (query, positive) pair for deduplication.
fn pair_key(q: &str, p: &str) -> (u64, u64) {
    let mut a = std::hash::DefaultHasher::new();
    (q, p).hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    (p, q, 0x5eed_u32).hash(&mut b);
    (a.finish(), b.finish())
}

/// SplitMix64: a tiny seeded generator for reproducible shuffles.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<T>(seed: u64, v: &mut [T]) {
        let mut r = SplitMix(seed);
        for i in (1..v.len()).rev() {
            let j = (r.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// A progress bar of unknown length (counts items), hidden with `--quiet`.
pub(crate) fn counter(ctx: &Ctx, msg: &'static str) -> indicatif::ProgressBar {
    if ctx.quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{elapsed_precise}] {pos} ({per_sec})",
    ) {
        pb.set_style(style);
    }
    pb.set_message(msg);
    pb
}

/// Writes serialisable rows as JSONL, atomically.
pub(crate) fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    atomic_write(path, |w| {
        for r in rows {
            serde_json::to_writer(&mut *w, r)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

fn run_pairs(args: PairsArgs, ctx: &Ctx) -> Result<()> {
    let path = if args.corpus.is_dir() {
        args.corpus.join("corpus.jsonl")
    } else {
        args.corpus.clone()
    };
    colzero_core::fsutil::ensure_output_not_input(
        "--out",
        &args.out,
        &[("--corpus", &args.corpus), ("--corpus", &path)],
    )?;
    let pb = counter(ctx, "reading corpus");
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let (mut lines, mut no_query, mut short, mut same, mut dupes) = (0usize, 0, 0, 0, 0);
    for rec in colzero_core::jsonl::read_jsonl::<serde_json::Value>(&path)? {
        let (line, v) = rec?;
        lines += 1;
        pb.inc(1);
        if !v.is_object() {
            bail!("{}:{line}: expected a JSON object", path.display());
        }
        let q = py_strip(str_field(&v, &args.query_field, &path, line)?.unwrap_or(""));
        let p = py_strip(str_field(&v, &args.positive_field, &path, line)?.unwrap_or(""));
        if q.is_empty() {
            no_query += 1;
        } else if p.is_empty() || p.chars().count() < args.min_chars {
            short += 1;
        } else if q == p {
            same += 1;
        } else if !seen.insert(pair_key(q, p)) {
            dupes += 1;
        } else {
            rows.push((q.to_string(), p.to_string()));
        }
    }
    pb.finish_and_clear();
    if rows.is_empty() {
        bail!(
            "{}: no pairs from {lines} records (fields `{}` -> `{}`; {no_query} without a query, \
             {short} with a positive shorter than {} chars)",
            path.display(),
            args.query_field,
            args.positive_field,
            args.min_chars
        );
    }
    if let Some(seed) = args.seed {
        SplitMix::shuffle(seed, &mut rows);
    }
    if let Some(m) = args.max_pairs {
        rows.truncate(m);
    }
    let out: Vec<PairRow> = rows
        .iter()
        .map(|(q, p)| PairRow {
            query: q,
            positive: p,
            source: args.source.as_deref(),
        })
        .collect();
    write_jsonl(&args.out, &out)?;
    eprintln!(
        "wrote {} pairs to {} from {lines} records ({no_query} without `{}`, {short} short, \
         {same} query == positive, {dupes} duplicates skipped)",
        out.len(),
        args.out.display(),
        args.query_field
    );
    Ok(())
}
