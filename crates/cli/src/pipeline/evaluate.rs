//! Evaluation of one checkpoint on BEIR sets, cached on disk, for `colzero pipeline`.
//!
//! Contract: [`evaluate_cached`] evaluates a model (ColBERT with MaxSim, or dense with the
//! dot product, exactly as `colzero eval` does: documents `f"{title} {text}".strip()`, the
//! whole split's queries, exact search, top 100, trec_eval semantics) on each dataset and
//! writes `CACHE_DIR/eval-<dataset>.json` ([`EvalRecord`]) atomically. A record whose
//! `key` (the stage hash), model, dataset path and split all match is reused without
//! loading the model; the model is loaded at most once per call.

use crate::cmd::{load_encoder, AnyEncoder, Ctx, EncoderArgs, Mode};
use anyhow::{Context, Result};
use colzero_core::{fsutil, Run};
use colzero_eval::{evaluate, BeirDataset, EvalOptions, Metric};
use colzero_index::ExactIndex;
use colzero_model::InputKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Metrics computed for every dataset (nDCG@10 is the report's).
pub const METRICS: &str = "ndcg@10,recall@100,mrr@10";

/// One cached evaluation (`eval-<dataset>.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Column name (dataset folder name).
    pub dataset: String,
    /// BEIR directory evaluated.
    pub dataset_path: PathBuf,
    /// Split evaluated.
    pub split: String,
    /// Model directory evaluated.
    pub model: PathBuf,
    /// `"colbert"` or `"dense"`.
    pub mode: String,
    /// Cache key (stage hash).
    pub key: String,
    /// nDCG@10 (0..1).
    pub ndcg_at_10: f64,
    /// All computed metrics by name.
    pub metrics: BTreeMap<String, f64>,
    /// Queries and documents evaluated.
    pub queries: usize,
    pub documents: usize,
    /// Wall time of this evaluation (encoding + search + metrics), seconds.
    pub seconds: f64,
}

/// The cache file of `dataset` in `dir`.
pub fn record_path(dir: &Path, dataset: &str) -> PathBuf {
    dir.join(format!("eval-{dataset}.json"))
}

fn read_cached(path: &Path, model: &Path, ds: &Path, split: &str, key: &str) -> Option<EvalRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    let r: EvalRecord = serde_json::from_str(&text).ok()?;
    (r.key == key && r.model == model && r.dataset_path == ds && r.split == split).then_some(r)
}

/// What to evaluate on.
pub struct EvalSpec<'a> {
    /// BEIR directories.
    pub datasets: &'a [PathBuf],
    /// Split.
    pub split: &'a str,
    /// Encoding batch size.
    pub batch_size: usize,
}

/// Evaluates `model` on each dataset of `spec` (cached in `cache_dir` under `key`, see
/// module docs).
pub fn evaluate_cached(
    model: &Path,
    mode: Mode,
    spec: &EvalSpec,
    cache_dir: &Path,
    key: &str,
    ctx: &Ctx,
) -> Result<Vec<EvalRecord>> {
    let (datasets, split, batch_size) = (spec.datasets, spec.split, spec.batch_size);
    let mut out = Vec::new();
    let mut encoder: Option<AnyEncoder> = None;
    let args = EncoderArgs {
        batch_size: batch_size.max(1),
        ..Default::default()
    };
    let metrics = Metric::parse_list(METRICS)?;
    for ds_path in datasets {
        let name = colzero_train::recipe::dataset_name(ds_path);
        let cache = record_path(cache_dir, &name);
        if let Some(r) = read_cached(&cache, model, ds_path, split, key) {
            out.push(r);
            continue;
        }
        let t0 = Instant::now();
        if encoder.is_none() {
            encoder = Some(load_encoder(model, mode, &args)?);
        }
        let enc = encoder.as_ref().expect("loaded above");
        let ds = BeirDataset::load(ds_path, split)
            .with_context(|| format!("loading {}", ds_path.display()))?;
        eprintln!(
            "evaluating {} on {name} ({} documents, {} queries)",
            model.display(),
            ds.corpus.len(),
            ds.queries.len()
        );
        let texts: Vec<String> = ds.corpus.iter().map(|d| d.full_text()).collect();
        let docs = enc.encode(&texts, InputKind::Document, &args.encode_options(ctx))?;
        let ids = ds.corpus.iter().map(|d| d.id.clone());
        let index = ExactIndex::from_embeddings(ids.zip(docs).collect())?;
        let qtexts: Vec<String> = ds.queries.iter().map(|q| q.text.clone()).collect();
        let q = enc.encode(&qtexts, InputKind::Query, &args.encode_options(ctx))?;
        let hits = index.search_batch(&q, 100)?;
        let run: Run = ds.queries.iter().map(|q| q.id.clone()).zip(hits).collect();
        let report = evaluate(&ds.qrels, &run, &metrics, &EvalOptions::default())?;
        let values: BTreeMap<String, f64> = metrics
            .iter()
            .filter_map(|m| report.get(m).map(|v| (m.name(), v)))
            .collect();
        let ndcg = values
            .get("ndcg@10")
            .copied()
            .context("nDCG@10 missing from the evaluation report")?;
        let rec = EvalRecord {
            dataset: name.clone(),
            dataset_path: ds_path.clone(),
            split: split.to_string(),
            model: model.to_path_buf(),
            mode: enc.mode_name().into(),
            key: key.to_string(),
            ndcg_at_10: ndcg,
            metrics: values,
            queries: ds.queries.len(),
            documents: ds.corpus.len(),
            seconds: t0.elapsed().as_secs_f64(),
        };
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("creating {}", cache_dir.display()))?;
        fsutil::atomic_write_bytes(&cache, serde_json::to_string_pretty(&rec)?.as_bytes())?;
        eprintln!(
            "  {name}: nDCG@10 = {:.4} ({:.1}s)",
            rec.ndcg_at_10, rec.seconds
        );
        out.push(rec);
    }
    Ok(out)
}
