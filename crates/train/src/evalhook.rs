//! The periodic evaluation hook: nDCG@10 of the current weights on a BEIR split.
//!
//! Contract: documents (`title + " " + text`, stripped) and queries are encoded with the
//! model in inference mode (no dropout), every query is scored against every document
//! with exact MaxSim (`colzero_core::maxsim`), the top 100 form a run, and
//! `colzero_eval::evaluate` gives nDCG@10 with pytrec_eval semantics. Documents are
//! encoded once per call (the weights change between calls).

use crate::{Result, TrainError};
use colzero_core::{maxsim_scores, top_k, Hit, Run};
use colzero_eval::{evaluate, BeirDataset, EvalOptions, Metric};
use colzero_model::{ColBERT, EncodeOptions, InputKind};
use rayon::prelude::*;
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
        let run: Run = queries
            .par_iter()
            .zip(qvec.par_iter())
            .map(|(q, qv)| {
                let scores = maxsim_scores(qv, &dvec);
                let hits = top_k(&scores, 100)
                    .into_iter()
                    .map(|(i, s)| Hit {
                        id: docs[i].0.to_string(),
                        score: s,
                    })
                    .collect();
                (q.id.clone(), hits)
            })
            .collect();
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
