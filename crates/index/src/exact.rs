//! [`ExactIndex`]: multi-threaded brute-force MaxSim search over documents in memory.
//!
//! Contract:
//! - Scores are the true MaxSim `Σ_i max_j q_i · d_j` over each document's kept tokens
//!   (padding never competes for the max; a zero-token document scores 0), equal to
//!   `colzero_core::maxsim` up to float summation order.
//! - Hits are ordered by score descending, ties by external id ascending (documents are
//!   held sorted by id, so index order is id order), NaN last: `colzero_core::ranking`.
//! - A single query is parallelised over documents; a batch with at least two queries per
//!   worker thread is parallelised over queries (each scanned sequentially), smaller
//!   batches query by query over documents. Results do not depend on the thread count.
//! - Memory: all document tokens in one contiguous f32 buffer in panel layout
//!   ([`crate::kernel`]), about `4 * dim` bytes per token plus < 8 padding tokens per doc.
//! - Errors: duplicate ids, mixed dimensions and a query whose dimension differs from the
//!   index's are reported as [`IndexError`], never panics.

use crate::error::{IndexError, Result};
use crate::filter::IdFilter;
use crate::kernel::{maxsim_packed, n_panels, pack_panels, LANES};
use colzero_core::{top_k, EmbeddingStore, Hit, MultiVector};
use rayon::prelude::*;
use std::collections::HashMap;

/// Brute-force MaxSim index over documents held in memory.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dim: usize,
    ids: Vec<String>,
    lookup: HashMap<String, u32>,
    ntok: Vec<u32>,
    /// Float offset of each document's first panel; `len() == ids.len() + 1`.
    offsets: Vec<usize>,
    panels: Vec<f32>,
}

impl ExactIndex {
    /// Builds an index from `(id, embedding)` pairs (any order). Fails on duplicate ids
    /// or on embeddings of different dimensions.
    pub fn from_embeddings(mut docs: Vec<(String, MultiVector)>) -> Result<Self> {
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        for w in docs.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(IndexError::DuplicateId(w[0].0.clone()));
            }
        }
        let dim = docs.first().map(|d| d.1.dim()).unwrap_or(0);
        let total_panels: usize = docs.iter().map(|d| n_panels(d.1.n_tokens())).sum();
        let mut panels = Vec::with_capacity(total_panels * dim * LANES);
        let mut offsets = Vec::with_capacity(docs.len() + 1);
        let mut ntok = Vec::with_capacity(docs.len());
        let mut ids = Vec::with_capacity(docs.len());
        for (id, mv) in docs {
            if mv.dim() != dim {
                return Err(IndexError::Dim {
                    what: format!("document `{id}`"),
                    expected: dim,
                    found: mv.dim(),
                });
            }
            offsets.push(panels.len());
            ntok.push(u32::try_from(mv.n_tokens()).map_err(|_| {
                IndexError::Invalid(format!("document `{id}` has more than 2^32 tokens"))
            })?);
            pack_panels(mv.as_slice(), dim, &mut panels);
            ids.push(id);
        }
        offsets.push(panels.len());
        let lookup = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        Ok(Self {
            dim,
            ids,
            lookup,
            ntok,
            offsets,
            panels,
        })
    }

    /// Builds an index from every embedding of a store (memory: the store's embeddings
    /// are copied once into the index; each is freed as soon as it is packed).
    pub fn from_store(store: &EmbeddingStore) -> Result<Self> {
        Self::from_embeddings(store.load_all()?)
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the index holds no documents.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Embedding dimension (0 for an empty index).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Document ids, sorted ascending.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// True when the index holds `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.lookup.contains_key(id)
    }

    /// Total number of document tokens.
    pub fn total_tokens(&self) -> usize {
        self.ntok.iter().map(|&n| n as usize).sum()
    }

    /// Exact MaxSim of `query` against the document with internal number `i`.
    fn score_doc(&self, query: &[f32], i: usize) -> f32 {
        let panels = &self.panels[self.offsets[i]..self.offsets[i + 1]];
        maxsim_packed(query, self.dim, panels, self.ntok[i] as usize)
    }

    /// MaxSim of `query` against document `id` (None when the id is unknown).
    pub fn score(&self, query: &MultiVector, id: &str) -> Result<Option<f32>> {
        self.check_query(query, 0)?;
        Ok(self
            .lookup
            .get(id)
            .map(|&i| self.score_doc(query.as_slice(), i as usize)))
    }

    fn check_query(&self, q: &MultiVector, n: usize) -> Result<()> {
        if !self.is_empty() && q.dim() != self.dim {
            return Err(IndexError::Dim {
                what: format!("query {n}"),
                expected: self.dim,
                found: q.dim(),
            });
        }
        Ok(())
    }

    /// Internal numbers of the documents a filter allows, ascending (= id order).
    fn candidates(&self, filter: Option<&IdFilter>) -> Option<Vec<u32>> {
        filter.map(|f| {
            let mut c: Vec<u32> = f
                .iter()
                .filter_map(|id| self.lookup.get(id).copied())
                .collect();
            c.sort_unstable();
            c
        })
    }

    fn rank(&self, scores: &[f32], cands: Option<&[u32]>, k: usize) -> Vec<Hit> {
        top_k(scores, k)
            .into_iter()
            .map(|(j, score)| {
                let i = cands.map_or(j, |c| c[j] as usize);
                Hit {
                    id: self.ids[i].clone(),
                    score,
                }
            })
            .collect()
    }

    fn search_one(&self, q: &[f32], k: usize, cands: Option<&[u32]>, parallel: bool) -> Vec<Hit> {
        let n = cands.map_or(self.len(), <[u32]>::len);
        let doc = |j: usize| cands.map_or(j, |c| c[j] as usize);
        let scores: Vec<f32> = if parallel {
            (0..n)
                .into_par_iter()
                .with_min_len(32)
                .map(|j| self.score_doc(q, doc(j)))
                .collect()
        } else {
            (0..n).map(|j| self.score_doc(q, doc(j))).collect()
        };
        self.rank(&scores, cands, k)
    }

    /// The `k` best documents for one query.
    pub fn search(&self, query: &MultiVector, k: usize) -> Result<Vec<Hit>> {
        self.search_filtered(query, k, None)
    }

    /// The `k` best documents for one query among those `filter` allows (all when None).
    pub fn search_filtered(
        &self,
        query: &MultiVector,
        k: usize,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        self.check_query(query, 0)?;
        let cands = self.candidates(filter);
        Ok(self.search_one(query.as_slice(), k, cands.as_deref(), true))
    }

    /// The `k` best documents for each query of a batch.
    pub fn search_batch(&self, queries: &[MultiVector], k: usize) -> Result<Vec<Vec<Hit>>> {
        self.search_batch_filtered(queries, k, None)
    }

    /// The `k` best documents for each query of a batch, restricted by `filter`.
    pub fn search_batch_filtered(
        &self,
        queries: &[MultiVector],
        k: usize,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Vec<Hit>>> {
        for (n, q) in queries.iter().enumerate() {
            self.check_query(q, n)?;
        }
        let cands = self.candidates(filter);
        let cands = cands.as_deref();
        if queries.len() >= 2 * rayon::current_num_threads() {
            Ok(queries
                .par_iter()
                .map(|q| self.search_one(q.as_slice(), k, cands, false))
                .collect())
        } else {
            Ok(queries
                .iter()
                .map(|q| self.search_one(q.as_slice(), k, cands, true))
                .collect())
        }
    }
}
