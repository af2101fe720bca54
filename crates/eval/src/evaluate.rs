//! Metric computation with trec_eval / pytrec_eval semantics.
//!
//! Contract (each point is checked against pytrec_eval on committed fixtures):
//! - Ranking: a run's hit order is ignored; hits are ranked by score descending, ties
//!   broken by document id in DESCENDING byte order ([`trec_order`], trec_eval's
//!   `comp_sim_docno`).
//! - Relevance: a document is relevant when its judged relevance is `>= relevance_level`
//!   (default 1). Unjudged documents and negative judgments are never relevant; nDCG
//!   gains are the judged relevance values `> 0` (linear gain), whatever the level; the
//!   ideal ranking is built from all positive judgments of the query, retrieved or not.
//! - Queries: a run query absent from the qrels is ignored. A qrels query with no
//!   relevant document (only 0 or negative judgments) is evaluated and scores 0 on every
//!   metric; it counts in the mean, as in pytrec_eval and BEIR. A qrels query absent
//!   from the run is, by default ([`MissingQueries::Skip`]), left out of the report and
//!   of the mean (pytrec_eval returns no entry for it and BEIR averages over what
//!   pytrec_eval returns); with [`MissingQueries::Zero`] it scores 0 on every metric and
//!   counts in the mean (trec_eval `-c`, ranx `make_comparable`, PyLate's evaluate).
//!   A run query with no hits is evaluated and scores 0.
//! - Duplicates: a document listed twice for one query is an error (trec_eval refuses the
//!   run); apply [`crate::Policy::Dedupe`] first to keep the best-scored occurrence.
//! - The mean is the arithmetic mean over the evaluated queries; evaluating no query at
//!   all is an error (wrong qrels for this run).

use crate::error::{EvalError, Result};
use crate::metric::{Metric, MetricKind};
use crate::qrels::Qrels;
use crate::report::Report;
use colzero_core::ranking::score_desc;
use colzero_core::{Hit, Run};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What to do with qrels queries that have no entry in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingQueries {
    /// Leave them out of the report and the mean (pytrec_eval, BEIR). The default.
    #[default]
    Skip,
    /// Score them 0 on every metric and count them in the mean (trec_eval -c, ranx,
    /// PyLate).
    Zero,
}

/// Evaluation options; the default reproduces pytrec_eval/BEIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Minimum judged relevance of a relevant document (trec_eval `-l`, >= 1).
    pub relevance_level: i32,
    /// Handling of qrels queries absent from the run.
    pub missing_queries: MissingQueries,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            relevance_level: 1,
            missing_queries: MissingQueries::Skip,
        }
    }
}

/// trec_eval's ranking order: score descending (NaN last), then document id descending.
pub fn trec_order(a: &Hit, b: &Hit) -> Ordering {
    score_desc(a.score, b.score).then_with(|| b.id.cmp(&a.id))
}

/// Evaluates `run` against `qrels` on `metrics`; see the module docs for the semantics.
pub fn evaluate(
    qrels: &Qrels,
    run: &Run,
    metrics: &[Metric],
    options: &EvalOptions,
) -> Result<Report> {
    if options.relevance_level < 1 {
        return Err(EvalError::Invalid(format!(
            "relevance level must be >= 1, got {}",
            options.relevance_level
        )));
    }
    if let Some(m) = metrics.iter().find(|m| m.k == 0) {
        return Err(EvalError::UnknownMetric(format!("{}@0", m.kind.name())));
    }
    let mut per_query = BTreeMap::new();
    for (q, hits) in run {
        if let Some(judgments) = qrels.get(q) {
            let values = evaluate_query(q, judgments, hits, metrics, options.relevance_level)?;
            per_query.insert(q.clone(), values);
        }
    }
    if options.missing_queries == MissingQueries::Zero {
        for q in qrels.query_ids() {
            if !run.contains_key(q) {
                per_query.insert(q.clone(), vec![0.0; metrics.len()]);
            }
        }
    }
    if per_query.is_empty() {
        return Err(EvalError::Invalid(format!(
            "no query of the run ({} queries) has judgments in the qrels ({} queries): wrong qrels or split?",
            run.len(),
            qrels.len()
        )));
    }
    Ok(Report::new(metrics.to_vec(), per_query))
}

/// Evaluates one query: `judgments` are its qrels, `hits` its run entries in any order.
pub fn evaluate_query(
    query: &str,
    judgments: &HashMap<String, i32>,
    hits: &[Hit],
    metrics: &[Metric],
    relevance_level: i32,
) -> Result<Vec<f64>> {
    let mut ranked: Vec<&Hit> = hits.iter().collect();
    ranked.sort_by(|a, b| trec_order(a, b));
    let mut seen = HashSet::with_capacity(ranked.len());
    for h in &ranked {
        if !seen.insert(h.id.as_str()) {
            return Err(EvalError::DuplicateHit {
                query: query.to_string(),
                doc: h.id.clone(),
            });
        }
    }
    // Judged relevance of each ranked document; None = unjudged (never relevant).
    let rels: Vec<Option<i32>> = ranked
        .iter()
        .map(|h| judgments.get(&h.id).copied())
        .collect();
    let is_rel = |r: &Option<i32>| matches!(r, Some(v) if *v >= relevance_level);
    let num_rel = judgments
        .values()
        .filter(|&&r| r >= relevance_level)
        .count();
    let ideal: Vec<i32> = if metrics.iter().any(|m| m.kind == MetricKind::Ndcg) {
        let mut g: Vec<i32> = judgments.values().copied().filter(|&r| r > 0).collect();
        g.sort_unstable_by(|a, b| b.cmp(a));
        g
    } else {
        Vec::new()
    };
    Ok(metrics
        .iter()
        .map(|m| {
            let top = &rels[..m.k.min(rels.len())];
            match m.kind {
                MetricKind::Ndcg => {
                    let dcg = dcg(top.iter().map(|r| r.unwrap_or(0)));
                    let idcg = dcg_of(&ideal[..m.k.min(ideal.len())]);
                    if idcg > 0.0 {
                        dcg / idcg
                    } else {
                        dcg
                    }
                }
                MetricKind::Recall => {
                    if num_rel == 0 {
                        0.0
                    } else {
                        top.iter().filter(|r| is_rel(r)).count() as f64 / num_rel as f64
                    }
                }
                MetricKind::Precision => {
                    top.iter().filter(|r| is_rel(r)).count() as f64 / m.k as f64
                }
                MetricKind::Mrr => top
                    .iter()
                    .position(is_rel)
                    .map_or(0.0, |i| 1.0 / (i + 1) as f64),
                MetricKind::Map => {
                    if num_rel == 0 {
                        0.0
                    } else {
                        let mut found = 0usize;
                        let mut sum = 0.0f64;
                        for (i, r) in top.iter().enumerate() {
                            if is_rel(r) {
                                found += 1;
                                sum += found as f64 / (i + 1) as f64;
                            }
                        }
                        sum / num_rel as f64
                    }
                }
            }
        })
        .collect())
}

/// Discounted cumulative gain of gains in rank order: `sum g_i / log2(i + 1)` over
/// ranks i = 1.. with `g_i > 0`, accumulated in rank order as trec_eval does.
fn dcg(gains: impl Iterator<Item = i32>) -> f64 {
    let mut sum = 0.0f64;
    for (i, g) in gains.enumerate() {
        if g > 0 {
            sum += g as f64 / ((i + 2) as f64).log2();
        }
    }
    sum
}

fn dcg_of(gains: &[i32]) -> f64 {
    dcg(gains.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            score,
        }
    }

    #[test]
    fn ties_rank_by_descending_doc_id() {
        let mut hits = [
            hit("a", 1.0),
            hit("c", 2.0),
            hit("b", 1.0),
            hit("z", f32::NAN),
        ];
        hits.sort_by(trec_order);
        let ids: Vec<_> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["c", "b", "a", "z"]);
    }

    #[test]
    fn hand_computed_graded_example() {
        // qrels: a=2, b=-1 (negative judgment), c=1; run: b > a > d(unjudged) > c
        let j: HashMap<String, i32> = [("a", 2), ("b", -1), ("c", 1)]
            .iter()
            .map(|(d, r)| (d.to_string(), *r))
            .collect();
        let hits = [hit("b", 3.0), hit("a", 2.0), hit("d", 1.5), hit("c", 1.0)];
        let ms = Metric::parse_list("ndcg@1,ndcg@3,recall@3,p@3,map@3,mrr@3,mrr@1").unwrap();
        let v = evaluate_query("q", &j, &hits, &ms, 1).unwrap();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        let expect = [
            0.0,
            (2.0 / 3f64.log2()) / idcg,
            0.5,
            1.0 / 3.0,
            0.25,
            0.5,
            0.0,
        ];
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-12, "{v:?}");
        }
        // pytrec_eval gives ndcg_cut_3 = 0.4796249331362629 on this example
        assert!((v[1] - 0.4796249331362629).abs() < 1e-12);
        let dup = [hit("a", 1.0), hit("a", 0.5)];
        let e = evaluate_query("q", &j, &dup, &ms, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`q` lists document `a` more than once"), "{e}");
    }

    #[test]
    fn query_selection_and_missing_query_options() {
        let mut qrels = Qrels::new();
        qrels.insert("q1", "a", 1);
        qrels.insert("q2", "b", 1);
        qrels.insert("q3", "c", 0);
        let mut run = Run::new();
        run.insert("q1".into(), vec![hit("a", 1.0)]);
        run.insert("q3".into(), vec![hit("c", 1.0)]);
        run.insert("qx".into(), vec![hit("a", 1.0)]);
        let ms = [Metric::new(MetricKind::Ndcg, 10)];
        let r = evaluate(&qrels, &run, &ms, &EvalOptions::default()).unwrap();
        assert_eq!(r.query_ids().collect::<Vec<_>>(), ["q1", "q3"]);
        assert_eq!(r.get(&ms[0]), Some(0.5));
        let opts = EvalOptions {
            missing_queries: MissingQueries::Zero,
            ..Default::default()
        };
        let r = evaluate(&qrels, &run, &ms, &opts).unwrap();
        assert_eq!(r.num_queries(), 3);
        assert!((r.get(&ms[0]).unwrap() - 1.0 / 3.0).abs() < 1e-15);
        // a run query left without hits (e.g. by remove-self-hits) still counts, as 0
        run.insert("q2".into(), vec![]);
        let r = evaluate(&qrels, &run, &ms, &EvalOptions::default()).unwrap();
        assert_eq!(r.query_ids().collect::<Vec<_>>(), ["q1", "q2", "q3"]);
        assert_eq!(r.query("q2", &ms[0]), Some(0.0));
        let mut other = Run::new();
        other.insert("zz".into(), vec![]);
        assert!(evaluate(&qrels, &other, &ms, &EvalOptions::default()).is_err());
        let bad = EvalOptions {
            relevance_level: 0,
            ..Default::default()
        };
        assert!(evaluate(&qrels, &run, &ms, &bad).is_err());
    }
}
