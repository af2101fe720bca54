//! Reference late-interaction scoring (MaxSim), the ground truth other scorers are
//! tested against.
//!
//! Contract: `maxsim(q, d) = Σ_i max_j q_i · d_j` over the token vectors actually present.
//! No padding exists here, so padding can never win the max (unlike PyLate's zero-padded
//! `colbert_scores`, where a query token whose best similarity is negative scores 0).
//! A document with zero tokens scores 0.

use crate::embedding::MultiVector;

/// Dot product of two equal-length slices (auto-vectorised).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for k in 0..8 {
            acc[k] += a[c * 8 + k] * b[c * 8 + k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// MaxSim of a query against a document. Panics in debug builds if dims differ.
pub fn maxsim(query: &MultiVector, doc: &MultiVector) -> f32 {
    debug_assert_eq!(query.dim(), doc.dim());
    if doc.is_empty() {
        return 0.0;
    }
    query
        .rows()
        .map(|q| {
            doc.rows()
                .map(|d| dot(q, d))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum()
}

/// MaxSim of one query against many documents.
pub fn maxsim_scores(query: &MultiVector, docs: &[MultiVector]) -> Vec<f32> {
    docs.iter().map(|d| maxsim(query, d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxsim_sums_best_matches() {
        let q = MultiVector::new(2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        let d = MultiVector::new(2, vec![0.5, 0.5, 0.9, -0.1, -1.0, 0.0]).unwrap();
        // token 0: max(0.5, 0.9, -1.0) = 0.9; token 1: max(0.5, -0.1, 0.0) = 0.5
        assert!((maxsim(&q, &d) - 1.4).abs() < 1e-6);
    }

    #[test]
    fn negative_best_similarity_is_kept_not_clamped() {
        let q = MultiVector::new(2, vec![1.0, 0.0]).unwrap();
        let d = MultiVector::new(2, vec![-0.5, 0.0, -0.2, 0.0]).unwrap();
        assert!((maxsim(&q, &d) + 0.2).abs() < 1e-6);
    }

    #[test]
    fn empty_document_scores_zero() {
        let q = MultiVector::new(2, vec![1.0, 0.0]).unwrap();
        assert_eq!(maxsim(&q, &MultiVector::empty(2)), 0.0);
    }

    #[test]
    fn dot_handles_tails() {
        let a: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let b = vec![1.0f32; 13];
        assert_eq!(dot(&a, &b), 78.0);
    }
}
