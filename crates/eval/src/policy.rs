//! Named run policies, applied to a [`Run`] before metrics, composable by name.
//!
//! Contract: [`Policy::parse`] and [`Policy::parse_list`] read the names below;
//! [`apply_policies`] applies them in the given order, in place.
//! - `remove-self-hits`: drop hits whose document id equals the query id (ArguAna,
//!   Quora, CQADupStack; BEIR's `ignore_identical_ids`). A query left with no hits stays
//!   in the run and scores 0.
//! - `dedupe`: keep, per query and document, only the best-scored occurrence (the first
//!   one on equal scores); the kept hits keep their order. trec_eval refuses runs with
//!   duplicates and so does [`crate::evaluate`] unless this policy ran first.
//! - `top-N` (N >= 1): keep each query's N best hits in trec_eval's ranking order (score
//!   descending, then document id descending), sorted in that order.

use crate::error::{EvalError, Result};
use crate::evaluate::trec_order;
use colzero_core::{Hit, Run};
use std::collections::HashMap;
use std::fmt;

/// A named transformation of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Drop hits where document id == query id.
    RemoveSelfHits,
    /// Keep the best-scored occurrence of each document per query.
    Dedupe,
    /// Keep the N best hits per query (trec_eval order).
    Top(usize),
}

impl Policy {
    /// Parses one policy name.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "remove-self-hits" => Ok(Policy::RemoveSelfHits),
            "dedupe" => Ok(Policy::Dedupe),
            _ => match t.strip_prefix("top-").map(str::parse::<usize>) {
                Some(Ok(n)) if n >= 1 => Ok(Policy::Top(n)),
                _ => Err(EvalError::UnknownPolicy(s.to_string())),
            },
        }
    }

    /// Parses a comma-separated list, e.g. `remove-self-hits,top-100`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    /// Applies the policy to `run` in place.
    pub fn apply(&self, run: &mut Run) {
        match *self {
            Policy::RemoveSelfHits => {
                for (q, hits) in run.iter_mut() {
                    hits.retain(|h| &h.id != q);
                }
            }
            Policy::Dedupe => {
                for hits in run.values_mut() {
                    dedupe(hits);
                }
            }
            Policy::Top(n) => {
                for hits in run.values_mut() {
                    hits.sort_by(trec_order);
                    hits.truncate(n);
                }
            }
        }
    }
}

fn dedupe(hits: &mut Vec<Hit>) {
    let mut best: HashMap<&str, usize> = HashMap::new();
    for (i, h) in hits.iter().enumerate() {
        best.entry(h.id.as_str())
            .and_modify(|b| {
                if h.score > hits[*b].score {
                    *b = i;
                }
            })
            .or_insert(i);
    }
    if best.len() == hits.len() {
        return;
    }
    let mut keep = vec![false; hits.len()];
    for &i in best.values() {
        keep[i] = true;
    }
    let mut i = 0;
    hits.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::RemoveSelfHits => write!(f, "remove-self-hits"),
            Policy::Dedupe => write!(f, "dedupe"),
            Policy::Top(n) => write!(f, "top-{n}"),
        }
    }
}

/// Applies `policies` to `run`, in order.
pub fn apply_policies(run: &mut Run, policies: &[Policy]) {
    for p in policies {
        p.apply(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        let h = |id: &str, score: f32| Hit {
            id: id.into(),
            score,
        };
        let mut r = Run::new();
        r.insert(
            "q1".into(),
            vec![
                h("a", 1.0),
                h("q1", 5.0),
                h("b", 2.0),
                h("a", 3.0),
                h("c", 2.0),
                h("a", 3.0),
            ],
        );
        r.insert("q2".into(), vec![h("q2", 1.0)]);
        r
    }

    fn ids(r: &Run, q: &str) -> Vec<String> {
        r[q].iter()
            .map(|h| format!("{}:{}", h.id, h.score))
            .collect()
    }

    #[test]
    fn policies_parse_display_and_compose() {
        let ps = Policy::parse_list("remove-self-hits, dedupe,TOP-2").unwrap();
        assert_eq!(ps, [Policy::RemoveSelfHits, Policy::Dedupe, Policy::Top(2)]);
        assert_eq!(
            ps.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["remove-self-hits", "dedupe", "top-2"]
        );
        for bad in ["top-0", "top-", "self", "top-x"] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        let mut r = run();
        apply_policies(&mut r, &ps);
        // self hit gone, best `a` (3.0, first of the two) kept, then top-2 by score and
        // id descending among the tie b/c at 2.0
        assert_eq!(ids(&r, "q1"), ["a:3", "c:2"]);
        assert!(r["q2"].is_empty());
    }

    #[test]
    fn dedupe_keeps_best_occurrence_in_place() {
        let mut r = run();
        Policy::Dedupe.apply(&mut r);
        assert_eq!(ids(&r, "q1"), ["q1:5", "b:2", "a:3", "c:2"]);
    }
}
