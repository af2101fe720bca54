//! The periodic evaluation hook: nDCG@10 of the current weights on a BEIR split.
//!
//! Contract: documents (`title + " " + text`, stripped) and queries are encoded with the
//! model in inference mode (no dropout), searched exactly through the same
//! `colzero_index::ExactIndex` that `colzero eval` and the pipeline's evaluation use
//! (MaxSim, top 100, ties by document id ascending), and `colzero_eval::evaluate` gives
//! nDCG@10 with pytrec_eval semantics. So the trainer's nDCG equals `colzero eval`'s on
//! the same weights and queries. Documents are encoded once per call (the weights change
//! between calls).

use crate::{Result, TrainError};
use colzero_core::Run;
use colzero_eval::{evaluate, BeirDataset, EvalOptions, Metric};
use colzero_index::ExactIndex;
use colzero_model::{ColBERT, EncodeOptions, InputKind};
use std::path::Path;

/// A loaded evaluation set.
pub struct EvalSet {
    /// The BEIR split.
    pub ds: BeirDataset,
    /// Number of queries evaluated.
    pub max_queries: usize,
    /// Encoding batch size.
    pub batch_size: usize,
}

impl EvalSet {
    /// Loads `dir` / `split`; `max_queries` 0 = all.
    pub fn load(dir: &Path, split: &str, max_queries: usize, batch_size: usize) -> Result<Self> {
        let ds = BeirDataset::load(dir, split).map_err(|e| TrainError::Eval(e.to_string()))?;
        let n = if max_queries == 0 {
            ds.queries.len()
        } else {
            max_queries.min(ds.queries.len())
        };
        Ok(Self {
            ds,
            max_queries: n,
            batch_size,
        })
    }

    /// nDCG@10 of `model` on this set.
    pub fn ndcg10(&self, model: &ColBERT) -> Result<f64> {
        let opts = EncodeOptions {
            batch_size: self.batch_size,
            show_progress: false,
            // Batches run concurrently, as `colzero eval` does: one batch at a time left
            // the second core idle in the small matmuls (60-70 s per quickstart
            // evaluation against 13 s for `colzero eval` on the same model).
            parallel_batches: true,
        };
        let docs: Vec<(&str, String)> = self.ds.documents().collect();
        let texts: Vec<String> = docs.iter().map(|(_, t)| t.clone()).collect();
        let dvec = model.encode(&texts, InputKind::Document, &opts)?;
        let queries = &self.ds.queries[..self.max_queries];
        let qtexts: Vec<String> = queries.iter().map(|q| q.text.clone()).collect();
        let qvec = model.encode(&qtexts, InputKind::Query, &opts)?;
        let ids = docs.iter().map(|(id, _)| id.to_string());
        let index = ExactIndex::from_embeddings(ids.zip(dvec).collect())
            .map_err(|e| TrainError::Eval(e.to_string()))?;
        let hits = index
            .search_batch(&qvec, 100)
            .map_err(|e| TrainError::Eval(e.to_string()))?;
        let run: Run = queries.iter().map(|q| q.id.clone()).zip(hits).collect();
        let metric = Metric::parse("ndcg@10").map_err(|e| TrainError::Eval(e.to_string()))?;
        let report = evaluate(
            &self.ds.qrels,
            &run,
            std::slice::from_ref(&metric),
            &EvalOptions::default(),
        )
        .map_err(|e| TrainError::Eval(e.to_string()))?;
        report
            .get(&metric)
            .ok_or_else(|| TrainError::Eval("nDCG@10 missing from the report".into()))
    }
}
