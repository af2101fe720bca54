//! [`Searcher`]: the one retrieval interface over the two kinds of document collections,
//! exact (brute-force MaxSim over uncompressed vectors) and PLAID (compressed, four-stage
//! search with its parameters). The CLI's `search` and `eval`, and the HTTP service, search
//! through it, so a precision switch or a new backend lands in one place.
//!
//! Contract: hits are best first, ties broken by external id ascending (both backends
//! document and test this); `filter` restricts the candidates to a set of external ids
//! (`None`: all live documents); a query whose dimension differs from the documents' is
//! [`crate::IndexError::Dim`] naming the query.

use crate::error::Result;
use crate::{ExactIndex, IdFilter, PlaidIndex, SearchParams};
use colzero_core::{Hit, MultiVector};

/// Documents to search: an exact in-memory index or an opened PLAID index snapshot.
pub enum Searcher {
    Exact(ExactIndex),
    Plaid(Box<PlaidIndex>, SearchParams),
}

impl Searcher {
    /// Embedding dimension of the documents.
    pub fn dim(&self) -> usize {
        match self {
            Searcher::Exact(i) => i.dim(),
            Searcher::Plaid(i, _) => i.dim(),
        }
    }

    /// Number of live documents.
    pub fn len(&self) -> usize {
        match self {
            Searcher::Exact(i) => i.len(),
            Searcher::Plaid(i, _) => i.len(),
        }
    }

    /// True when there is no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `id` is a live document.
    pub fn contains(&self, id: &str) -> bool {
        match self {
            Searcher::Exact(i) => i.contains(id),
            Searcher::Plaid(i, _) => i.contains(id),
        }
    }

    /// Stored document vectors (PLAID: tokens of live and deleted documents still stored).
    pub fn num_vectors(&self) -> usize {
        match self {
            Searcher::Exact(i) => i.total_tokens(),
            Searcher::Plaid(i, _) => i.info().num_tokens as usize,
        }
    }

    /// Top-`k` hits per query among the documents `filter` allows (all when `None`).
    pub fn search_batch(
        &self,
        queries: &[MultiVector],
        k: usize,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Vec<Hit>>> {
        match self {
            Searcher::Exact(i) => i.search_batch_filtered(queries, k, filter),
            Searcher::Plaid(i, p) => i.search_batch(queries, k, p, filter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{clustered, SyntheticConfig};
    use crate::{build_index, BuildConfig};

    #[test]
    fn both_backends_answer_through_one_interface() {
        let (docs, queries) = clustered(&SyntheticConfig {
            dim: 32,
            n_docs: 200,
            n_queries: 10,
            n_concepts: 32,
            min_doc_len: 5,
            max_doc_len: 20,
            query_len: 8,
            seed: 9,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let plaid = build_index(&dir.path().join("i"), &docs, &BuildConfig::default()).unwrap();
        let exact = Searcher::Exact(ExactIndex::from_embeddings(docs.clone()).unwrap());
        let plaid = Searcher::Plaid(Box::new(plaid), SearchParams::default());
        let qs: Vec<MultiVector> = queries.into_iter().map(|q| q.1).collect();
        let allow = IdFilter::new(docs.iter().step_by(3).map(|d| d.0.clone()));
        for s in [&exact, &plaid] {
            assert_eq!((s.len(), s.dim()), (200, 32));
            assert!(s.contains("d5") && !s.contains("nope"));
            let all = s.search_batch(&qs, 5, None).unwrap();
            let some = s.search_batch(&qs, 5, Some(&allow)).unwrap();
            assert_eq!(all.len(), 10);
            assert!(some.iter().flatten().all(|h| allow.contains(&h.id)));
        }
        // The two backends agree on the best document of most queries.
        let e = exact.search_batch(&qs, 1, None).unwrap();
        let p = plaid.search_batch(&qs, 1, None).unwrap();
        let same = e.iter().zip(&p).filter(|(a, b)| a[0].id == b[0].id).count();
        assert!(same >= 8, "{same} of 10");
    }
}
