//! Ranked results: [`Hit`] (an id and a score), a [`Run`] (per-query hit lists) and a
//! deterministic [`top_k`].
//!
//! Contract: hits are ordered by score descending; equal scores are ordered by id
//! ascending so that rankings are reproducible; NaN scores sort last.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One retrieved document with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

/// Per-query ranked hits (query id -> hits, best first).
pub type Run = BTreeMap<String, Vec<Hit>>;

/// The ranking order: higher score first, NaN last, then id ascending.
pub fn hit_order(a: &Hit, b: &Hit) -> Ordering {
    score_desc(a.score, b.score).then_with(|| a.id.cmp(&b.id))
}

/// Descending score order with NaN last.
pub fn score_desc(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => b.total_cmp(&a),
    }
}

/// Keeps the `k` best of `(index, score)` pairs, best first (ties: lower index first).
/// Runs in O(n + k log k).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    let cmp = |a: &(usize, f32), b: &(usize, f32)| score_desc(a.1, b.1).then(a.0.cmp(&b.0));
    if k < idx.len() {
        if k == 0 {
            return Vec::new();
        }
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        let s = [0.5, 0.9, f32::NAN, 0.9, 0.1];
        assert_eq!(top_k(&s, 3), vec![(1, 0.9), (3, 0.9), (0, 0.5)]);
        let all = top_k(&s, 10);
        assert_eq!(all.len(), 5);
        assert!(all[4].1.is_nan());
        assert!(top_k(&s, 0).is_empty());
    }

    #[test]
    fn hit_order_breaks_ties_by_id() {
        let mut h = [
            Hit {
                id: "b".into(),
                score: 1.0,
            },
            Hit {
                id: "a".into(),
                score: 1.0,
            },
            Hit {
                id: "c".into(),
                score: 2.0,
            },
        ];
        h.sort_by(hit_order);
        let ids: Vec<_> = h.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }
}
