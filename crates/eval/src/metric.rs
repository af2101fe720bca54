//! Metric names: [`Metric`] = a [`MetricKind`] and a rank cutoff `k`.
//!
//! Contract: the canonical name is `kind@k` in lower case (`ndcg@10`, `recall@100`,
//! `mrr@10`, `map@100`, `p@5`); it is the key used in reports and JSON. [`Metric::parse`]
//! is case-insensitive and also accepts trec_eval spellings (`ndcg_cut_10`,
//! `ndcg_cut.10`, `P_5`, `recall_100`, `map_cut_100`, `recip_rank@10`) and the aliases
//! `precision`, `rr`. A cutoff is required and must be >= 1. The semantics of each kind
//! are documented on [`MetricKind`] and implemented in `evaluate.rs`.

use crate::error::{EvalError, Result};
use std::fmt;
use std::str::FromStr;

/// The measure, with trec_eval's exact semantics (relevance level `L`, 1 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// trec_eval `ndcg_cut.k`: DCG = sum over ranks i <= k of `rel_i / log2(i + 1)` for
    /// `rel_i > 0` (linear gain = the graded relevance), divided by the DCG of the ideal
    /// ranking of all positive judgments of the query; 0 when the query has none.
    Ndcg,
    /// trec_eval `recall.k`: relevant (`rel >= L`) in the top k / relevant judged; 0 when
    /// the query has no relevant document.
    Recall,
    /// Reciprocal rank of the first relevant (`rel >= L`) document within the top k, else
    /// 0 (trec_eval `recip_rank` on the run truncated to k).
    Mrr,
    /// trec_eval `map_cut.k`: sum of precision at each relevant document in the top k,
    /// divided by the number of relevant judged; 0 when there is none.
    Map,
    /// trec_eval `P.k`: relevant in the top k divided by k (even when fewer than k
    /// documents were retrieved).
    Precision,
}

impl MetricKind {
    /// The canonical lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Ndcg => "ndcg",
            MetricKind::Recall => "recall",
            MetricKind::Mrr => "mrr",
            MetricKind::Map => "map",
            MetricKind::Precision => "p",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "ndcg" | "ndcg_cut" => MetricKind::Ndcg,
            "recall" | "r" => MetricKind::Recall,
            "mrr" | "rr" | "recip_rank" => MetricKind::Mrr,
            "map" | "map_cut" | "ap" => MetricKind::Map,
            "p" | "precision" => MetricKind::Precision,
            _ => return None,
        })
    }
}

/// A metric at a cutoff, e.g. `ndcg@10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metric {
    pub kind: MetricKind,
    pub k: usize,
}

impl Metric {
    /// A metric at cutoff `k` (must be >= 1 to be evaluated).
    pub fn new(kind: MetricKind, k: usize) -> Self {
        Self { kind, k }
    }

    /// Parses `ndcg@10`, `recall@100`, `mrr@10`, `map@100`, `p@5` and trec_eval spellings.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || EvalError::UnknownMetric(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        let pos = t.rfind(['@', '_', '.']).ok_or_else(bad)?;
        let (name, k) = (&t[..pos], &t[pos + 1..]);
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let k: usize = k.parse().map_err(|_| bad())?;
        let kind = MetricKind::from_name(name).ok_or_else(bad)?;
        if k == 0 {
            return Err(bad());
        }
        Ok(Self { kind, k })
    }

    /// Parses a comma-separated list such as `ndcg@10,recall@100`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    /// The canonical name, `kind@k`.
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// The pytrec_eval result key of the same measure (`ndcg_cut_10`, `recall_100`,
    /// `map_cut_100`, `P_5`; `recip_rank` for MRR, which pytrec_eval has without cutoff).
    pub fn trec_name(&self) -> String {
        match self.kind {
            MetricKind::Ndcg => format!("ndcg_cut_{}", self.k),
            MetricKind::Recall => format!("recall_{}", self.k),
            MetricKind::Mrr => "recip_rank".to_string(),
            MetricKind::Map => format!("map_cut_{}", self.k),
            MetricKind::Precision => format!("P_{}", self.k),
        }
    }

    /// The metrics colzero reports by default: nDCG@10, Recall@100, MRR@10, MAP@100.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::new(MetricKind::Ndcg, 10),
            Self::new(MetricKind::Recall, 100),
            Self::new(MetricKind::Mrr, 10),
            Self::new(MetricKind::Map, 100),
        ]
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind.name(), self.k)
    }
}

impl FromStr for Metric {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_and_trec_spellings() {
        for (s, kind, k) in [
            ("ndcg@10", MetricKind::Ndcg, 10),
            ("NDCG@10", MetricKind::Ndcg, 10),
            ("ndcg_cut_10", MetricKind::Ndcg, 10),
            ("ndcg_cut.5", MetricKind::Ndcg, 5),
            ("recall@100", MetricKind::Recall, 100),
            ("mrr@10", MetricKind::Mrr, 10),
            ("recip_rank@3", MetricKind::Mrr, 3),
            ("map@100", MetricKind::Map, 100),
            ("map_cut_1", MetricKind::Map, 1),
            ("p@5", MetricKind::Precision, 5),
            ("P_5", MetricKind::Precision, 5),
            (" precision@20 ", MetricKind::Precision, 20),
        ] {
            assert_eq!(Metric::parse(s).unwrap(), Metric::new(kind, k), "{s}");
        }
        for s in [
            "ndcg", "ndcg@", "ndcg@0", "ndcg@-1", "foo@10", "ndcg@1x", "@10", "",
        ] {
            assert!(Metric::parse(s).is_err(), "{s}");
        }
        assert_eq!(Metric::parse("P_5").unwrap().to_string(), "p@5");
        assert_eq!(
            Metric::parse("ndcg_cut_10").unwrap().trec_name(),
            "ndcg_cut_10"
        );
        let l = Metric::parse_list("ndcg@10, recall@100,").unwrap();
        assert_eq!(l.len(), 2);
        assert!(Metric::parse_list("ndcg@10,bad").is_err());
    }
}
