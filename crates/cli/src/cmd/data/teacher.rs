//! `colzero data teacher`: knowledge-distillation data in PyLate's format, scored by any
//! model colzero runs (see the contract in `cmd/data.rs`).

use super::mine::{load_split, mine, Bm25Args, Method, MineSpec, Ranker};
use super::Ctx;
use crate::cmd::{load_encoder, progress, EncoderArgs, Mode};
use anyhow::{bail, Context, Result};
use colzero_core::fsutil::{self, atomic_dir, atomic_write};
use colzero_core::jsonl::Lines;
use colzero_model::InputKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `colzero data teacher`.
#[derive(clap::Args, Debug)]
pub struct TeacherArgs {
    /// Teacher model directory (ColBERT or dense checkpoint).
    #[arg(long)]
    pub model: PathBuf,
    /// How to run the teacher.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Triplet file (JSONL `{"query","positive","negatives":[..]}` or TSV
    /// `query\tpositive\tnegative...`), e.g. from `colzero data mine`.
    #[arg(long, conflicts_with = "dataset")]
    pub triplets: Option<PathBuf>,
    /// Or mine candidates with BM25 from this BEIR dataset directory.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Split of `--dataset` to mine.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Allow the `test` split with `--dataset`.
    #[arg(long)]
    pub allow_test_split: bool,
    /// Skip this many best BM25 non-relevant documents when mining (`--dataset`).
    #[arg(long, default_value_t = 0)]
    pub skip_top: usize,
    /// Keep at most this many positives per query when mining (`--dataset`).
    #[arg(long, value_parser = crate::cmd::positive)]
    pub max_positives: Option<usize>,
    /// Output KD directory (queries.jsonl, documents.jsonl, train.jsonl); replaced whole.
    /// Must be new, empty or a KD directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out even if it is a non-empty folder that is not a KD directory.
    #[arg(long)]
    pub force: bool,
    /// Documents per query: the positive and up to N-1 negatives.
    #[arg(long, default_value_t = 32, value_parser = crate::cmd::positive)]
    pub n_ways: usize,
    /// Divide every written score by T. KD turns a row's scores into a softmax
    /// distribution as they are, so raw cosines (all within a few tenths) make a nearly
    /// uniform target; 0.05 gives a cosine model the sharpness it was trained with
    /// (Sentence-Transformers' scale 20). Default 1: scores as the model gives them.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Fuse BM25 into the teacher: score = model score + W * BM25 / (the row's best
    /// BM25), then divided by the temperature. BM25 statistics come from the rows'
    /// distinct documents, with the k1/b/stopwords/stem settings below. Default 0: the
    /// model alone.
    #[arg(long, default_value_t = 0.0)]
    pub bm25_weight: f32,
    #[command(flatten)]
    pub bm25: Bm25Args,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

#[derive(Deserialize)]
struct InRow {
    query: String,
    #[serde(alias = "document")]
    positive: String,
    #[serde(default)]
    negatives: Option<Vec<String>>,
    #[serde(default)]
    negative: Option<String>,
}

/// Reads `(query, [positive, negatives...])` rows from a JSONL or TSV triplet file.
fn read_triplets(path: &Path, n_ways: usize) -> Result<Vec<(String, Vec<String>)>> {
    let tsv = path.extension().and_then(|e| e.to_str()) == Some("tsv");
    let mut rows = Vec::new();
    for rec in Lines::open(path)? {
        let (line, text) = rec?;
        let (q, mut docs) = if tsv {
            let mut cols = text.split('\t').map(str::to_string);
            let q = cols.next().unwrap_or_default();
            let docs: Vec<String> = cols.collect();
            if docs.is_empty() {
                bail!(
                    "{}:{line}: TSV row needs query\\tpositive[\\tnegative...]",
                    path.display()
                );
            }
            (q, docs)
        } else {
            let r: InRow = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{}:{line}: invalid triplet row: {e}", path.display())
            })?;
            let mut docs = vec![r.positive];
            docs.extend(r.negative);
            docs.extend(r.negatives.unwrap_or_default());
            (r.query, docs)
        };
        docs.truncate(n_ways);
        rows.push((q, docs));
    }
    if rows.is_empty() {
        bail!("{}: no triplet rows", path.display());
    }
    Ok(rows)
}

/// Assigns `prefix{n}` ids to distinct texts in first-appearance order.
struct Interner {
    prefix: &'static str,
    ids: HashMap<String, usize>,
    texts: Vec<String>,
}

impl Interner {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            ids: HashMap::new(),
            texts: Vec::new(),
        }
    }

    fn id(&mut self, text: &str) -> usize {
        if let Some(&i) = self.ids.get(text) {
            return i;
        }
        self.texts.push(text.to_string());
        self.ids.insert(text.to_string(), self.texts.len() - 1);
        self.texts.len() - 1
    }

    fn name(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }
}

#[derive(Serialize)]
struct QueryOut<'a> {
    query_id: String,
    text: &'a str,
}

#[derive(Serialize)]
struct DocOut<'a> {
    document_id: String,
    text: &'a str,
}

#[derive(Serialize)]
struct TrainOut {
    query_id: String,
    document_ids: Vec<String>,
    scores: Vec<f32>,
}

fn write_lines<T: Serialize>(path: &Path, rows: impl Iterator<Item = T>) -> Result<()> {
    atomic_write(path, |w| {
        for r in rows {
            serde_json::to_writer(&mut *w, &r)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Whether `dir` is a KD directory as `data teacher` writes it.
pub fn is_kd_dir(dir: &Path) -> bool {
    ["queries.jsonl", "documents.jsonl", "train.jsonl"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// Runs `colzero data teacher`.
pub fn run(args: TeacherArgs, ctx: &Ctx) -> Result<()> {
    if args.n_ways < 2 {
        bail!("--n-ways must be at least 2 (a positive and a negative)");
    }
    if !(args.temperature.is_finite() && args.temperature > 0.0) {
        bail!("--temperature must be > 0, got {}", args.temperature);
    }
    if !(args.bm25_weight.is_finite() && args.bm25_weight >= 0.0) {
        bail!("--bm25-weight must be >= 0, got {}", args.bm25_weight);
    }
    let none = Path::new("");
    let inputs = [
        ("--model", args.model.as_path()),
        ("--triplets", args.triplets.as_deref().unwrap_or(none)),
        ("--dataset", args.dataset.as_deref().unwrap_or(none)),
    ];
    fsutil::ensure_dir_output_not_input("--out", &args.out, &inputs)?;
    fsutil::ensure_not_part_of("--out", &args.out, &inputs[..1])?;
    fsutil::check_replaceable_dir(
        "--out",
        &args.out,
        is_kd_dir,
        "a KD directory (queries.jsonl, documents.jsonl, train.jsonl)",
        args.force,
    )?;
    let rows: Vec<(String, Vec<String>)> = match (&args.triplets, &args.dataset) {
        (Some(p), None) => read_triplets(p, args.n_ways)?,
        (None, Some(d)) => {
            let ds = load_split(d, &args.split, args.allow_test_split)?;
            let ranker = Ranker {
                method: Method::Bm25,
                bm25: &args.bm25,
                model: None,
                mode: args.mode,
                encoder: &args.encoder,
            };
            let spec = MineSpec {
                negatives: args.n_ways - 1,
                skip_top: args.skip_top,
                max_positives: args.max_positives,
                source: None,
            };
            let (t, dropped) = mine(&ds, &ranker, &spec, ctx)?;
            if dropped > 0 {
                eprintln!(
                    "{dropped} judged pairs dropped: fewer than {} BM25 candidates",
                    args.n_ways - 1
                );
            }
            t.into_iter()
                .map(|t| {
                    let mut docs = vec![t.positive];
                    docs.extend(t.negatives);
                    (t.query, docs)
                })
                .collect()
        }
        _ => bail!("give either --triplets FILE or --dataset BEIR_DIR"),
    };
    if rows.is_empty() {
        bail!("no rows to score");
    }
    let mut qs = Interner::new("q");
    let mut ds = Interner::new("d");
    let rows: Vec<(usize, Vec<usize>)> = rows
        .iter()
        .map(|(q, docs)| (qs.id(q), docs.iter().map(|d| ds.id(d)).collect()))
        .collect();
    let enc = load_encoder(&args.model, args.mode, &args.encoder)?;
    eprintln!(
        "teacher {}: {} rows, {} queries, {} documents",
        enc.describe(),
        rows.len(),
        qs.texts.len(),
        ds.texts.len()
    );
    let qv = enc.encode(
        &qs.texts,
        InputKind::Query,
        &args.encoder.encode_options(ctx),
    )?;
    let dv = enc.encode(
        &ds.texts,
        InputKind::Document,
        &args.encoder.encode_options(ctx),
    )?;
    if let (Some(a), Some(b)) = (qv.first(), dv.first()) {
        if a.dim() != b.dim() {
            bail!("teacher query dim {} != document dim {}", a.dim(), b.dim());
        }
    }
    let pb = progress(rows.len() as u64, ctx, "scoring");
    let mut scores: Vec<Vec<f32>> = rows
        .par_iter()
        .map(|(q, docs)| {
            let s = docs
                .iter()
                .map(|&d| colzero_core::maxsim(&qv[*q], &dv[d]))
                .collect();
            pb.inc(1);
            s
        })
        .collect();
    pb.finish_and_clear();
    let model_first = positive_first_share(&scores);
    if args.bm25_weight > 0.0 {
        let bm25 = args
            .bm25
            .index(ds.texts.iter().enumerate().map(|(i, t)| (ds.name(i), t)))?;
        for ((q, docs), s) in rows.iter().zip(scores.iter_mut()) {
            let b: Vec<f32> = docs
                .iter()
                .map(|&d| bm25.score(&qs.texts[*q], &ds.name(d)).unwrap_or(0.0))
                .collect();
            fuse_bm25(s, &b, args.bm25_weight);
        }
    }
    for s in scores.iter_mut().flatten() {
        *s /= args.temperature;
    }
    eprintln!(
        "teacher ranks the positive first in {:.1}% of rows{}",
        100.0 * positive_first_share(&scores),
        if args.bm25_weight > 0.0 {
            format!(" ({:.1}% by the model alone)", 100.0 * model_first)
        } else {
            String::new()
        }
    );
    if let Some((i, _)) = scores
        .iter()
        .enumerate()
        .find(|(_, s)| s.iter().any(|x| !x.is_finite()))
    {
        bail!(
            "teacher produced a non-finite score for row {} (query `{}`)",
            i + 1,
            qs.name(rows[i].0)
        );
    }
    let min_docs = rows.iter().map(|r| r.1.len()).min().unwrap_or(0);
    atomic_dir::<_, anyhow::Error>(&args.out, |dir| {
        write_lines(
            &dir.join("queries.jsonl"),
            qs.texts.iter().enumerate().map(|(i, t)| QueryOut {
                query_id: qs.name(i),
                text: t,
            }),
        )?;
        write_lines(
            &dir.join("documents.jsonl"),
            ds.texts.iter().enumerate().map(|(i, t)| DocOut {
                document_id: ds.name(i),
                text: t,
            }),
        )?;
        write_lines(
            &dir.join("train.jsonl"),
            rows.iter().zip(&scores).map(|((q, docs), s)| TrainOut {
                query_id: qs.name(*q),
                document_ids: docs.iter().map(|&d| ds.name(d)).collect(),
                scores: s.clone(),
            }),
        )?;
        Ok(())
    })
    .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote KD data to {} ({} rows; at least {min_docs} documents per row: train with \
         n_ways <= {min_docs})",
        args.out.display(),
        rows.len()
    );
    Ok(())
}

/// Adds `weight · bm25 / max(bm25)` to `scores` (nothing when the row's best BM25 is 0).
fn fuse_bm25(scores: &mut [f32], bm25: &[f32], weight: f32) {
    let best = bm25.iter().copied().fold(0.0f32, f32::max);
    if best > 0.0 {
        for (s, b) in scores.iter_mut().zip(bm25) {
            *s += weight * b / best;
        }
    }
}

/// Share of rows whose first document (the positive) has the strictly highest score.
fn positive_first_share(scores: &[Vec<f32>]) -> f64 {
    let first = scores
        .iter()
        .filter(|s| {
            s.split_first()
                .is_some_and(|(p, rest)| rest.iter().all(|x| x < p))
        })
        .count();
    first as f64 / scores.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_fusion_is_scaled_by_the_rows_best_bm25() {
        let mut s = vec![0.5, 0.6, 0.4];
        fuse_bm25(&mut s, &[10.0, 5.0, 0.0], 0.2);
        assert_eq!(s, vec![0.7, 0.6 + 0.1, 0.4]);
        let mut z = vec![0.5, 0.6];
        fuse_bm25(&mut z, &[0.0, 0.0], 1.0);
        assert_eq!(z, vec![0.5, 0.6], "no shared term: the model alone");
        assert_eq!(
            positive_first_share(&[vec![0.9, 0.1], vec![0.2, 0.3], vec![0.5, 0.5]]),
            1.0 / 3.0
        );
    }
}
