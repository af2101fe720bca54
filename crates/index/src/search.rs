//! PLAID staged search over a [`PlaidIndex`].
//!
//! Contract (defaults in [`SearchParams::default`]):
//! 1. Candidate generation: the query-centroid score matrix `S = C · qᵀ` is computed; the
//!    `n_probe` best centroids of each query token are probed and the live, allowed
//!    documents of their inverted lists are the candidates. With a filter allowing at
//!    most `n_candidates` documents, the allowed documents are the candidates (no
//!    probing, so small filters never lose recall); with a larger filter `n_probe` is
//!    scaled by `live / allowed` (capped by K).
//! 2. Centroid pruning + approximate interaction: when there are more than
//!    `n_candidates` candidates, each is scored by `Σ_r max_t S'[code_t][r]` where `S'`
//!    zeroes the centroids whose best query-token score is below
//!    `centroid_score_threshold`; the best `n_candidates` are kept.
//! 3. Full centroid interaction (no pruning) keeps the best `n_full` (≥ k).
//! 4. Those are decompressed and reranked with exact MaxSim over their (reconstructed)
//!    tokens; the `k` best are returned, ties by external id ascending. The rerank
//!    reuses `S` for the centroid part of each dot product; on CPUs with AVX-512 VNNI
//!    the residual part runs in 8 bits ([`crate::rerank8`]) unless `f32_rerank`.
//!    Intermediate cuts break ties by internal id, so results are deterministic and do not
//!    depend on the thread count. A single query is parallelised over candidates; a batch
//!    of at least two queries per thread is parallelised over queries.

use crate::error::{IndexError, Result};
use crate::filter::IdFilter;
use crate::interaction::{interaction, PrunedRows};
use crate::kernel::{centroid_scores, maxsim_rows, n_panels, pack_panels, rows_scores, LANES};
use crate::plaid::PlaidIndex;
use crate::rerank8;
use colzero_core::ranking::hit_order;
use colzero_core::{top_k, Hit, MultiVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Longest query whose centroid scores come from [`centroid_scores`] (two passes over
/// the centroids at most); longer ones use [`rows_scores`] (one pass).
const CENTROID_SCORES_MAX_NQ: usize = 12;

/// Search-time parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchParams {
    /// Centroids probed per query token (default 8, as fast-plaid / next-plaid).
    pub n_probe: usize,
    /// Centroids whose best query-token score is below this are ignored in stage 2
    /// (default Some(0.4), as next-plaid; None disables pruning).
    pub centroid_score_threshold: Option<f32>,
    /// Candidates kept after stage 2 (default None: `4 · n_full`).
    pub n_candidates: Option<usize>,
    /// Documents decompressed and reranked exactly, at least k (default None: by k, as
    /// Stanford PLAID's searcher: 64 for k ≤ 10, 256 for k ≤ 100, else max(k, 2048)).
    pub n_full: Option<usize>,
    /// Rerank in f32 over the decompressed vectors (default false: on CPUs with AVX-512
    /// VNNI the rerank uses 8-bit residual dot products, see `rerank8`, and scores move
    /// by about 1e-4 per query token; elsewhere it is always f32).
    pub f32_rerank: bool,
}

impl SearchParams {
    /// `(n_candidates, n_full)` in effect for a search of the `k` best.
    pub fn resolved(&self, k: usize) -> (usize, usize) {
        let auto = if k <= 10 {
            64
        } else if k <= 100 {
            256
        } else {
            k.max(2048)
        };
        let n_full = self.n_full.unwrap_or(auto).max(k);
        (self.n_candidates.unwrap_or(4 * n_full).max(n_full), n_full)
    }
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            n_probe: 8,
            centroid_score_threshold: Some(0.4),
            n_candidates: None,
            n_full: None,
            f32_rerank: false,
        }
    }
}

/// The allowed documents of a filtered search: mask by internal id and sorted list.
struct Allowed {
    mask: Vec<bool>,
    list: Vec<u32>,
}

fn map_maybe_par<T, F>(
    items: &[u32],
    parallel: bool,
    init: impl Fn() -> T + Sync + Send,
    f: F,
) -> Vec<f32>
where
    F: Fn(&mut T, u32) -> f32 + Sync + Send,
{
    if parallel {
        items
            .par_iter()
            .with_min_len(16)
            .map_init(&init, |s, &d| f(s, d))
            .collect()
    } else {
        let mut s = init();
        items.iter().map(|&d| f(&mut s, d)).collect()
    }
}

/// For each of the first `nq` columns of the row-major `st` (`stride` columns), marks in
/// the returned mask the rows holding its `n` best values (ties to the lower row).
/// One pass over the rows with a sorted top-`n` list per column: after the first rows
/// almost every value fails the single comparison with its column's current n-th best.
fn best_rows_per_column(st: &[f32], nq: usize, stride: usize, n: usize) -> Vec<bool> {
    let rows = st.len() / stride;
    let mut mask = vec![false; rows];
    if n >= rows {
        mask.iter_mut().for_each(|m| *m = true);
        return mask;
    }
    let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(n + 1); nq];
    // the n-th best so far per column (+inf for the padding columns, never entered)
    let mut floor = vec![f32::INFINITY; stride];
    floor[..nq].iter_mut().for_each(|f| *f = f32::NEG_INFINITY);
    for (c, row) in st.chunks_exact(stride).enumerate() {
        // branch-free test (vectorises): does any value beat its column's floor?
        let any = row.iter().zip(&floor).fold(false, |a, (v, f)| a | (v > f));
        if !any && c >= n {
            continue;
        }
        for (r, &v) in row[..nq].iter().enumerate() {
            let list = &mut best[r];
            if v.is_nan() || (list.len() == n && v <= floor[r]) {
                continue;
            }
            // after every entry >= v: equal scores keep the lower (earlier) row first
            let at = list.partition_point(|&(s, _)| s >= v);
            list.insert(at, (v, c as u32));
            list.truncate(n);
            if list.len() == n {
                floor[r] = list[n - 1].0;
            }
        }
    }
    for list in &best {
        list.iter().for_each(|&(_, c)| mask[c as usize] = true);
    }
    mask
}

impl PlaidIndex {
    fn check_query(&self, q: &MultiVector, n: usize) -> Result<()> {
        if q.dim() != self.dim() {
            return Err(IndexError::Dim {
                what: format!("query {n}"),
                expected: self.dim(),
                found: q.dim(),
            });
        }
        Ok(())
    }

    fn allowed(&self, filter: Option<&IdFilter>) -> Option<Allowed> {
        filter.map(|f| {
            let mut mask = vec![false; self.ids.len()];
            let mut list: Vec<u32> = f
                .iter()
                .filter_map(|id| self.lookup.get(id).copied())
                .collect();
            list.sort_unstable();
            list.iter().for_each(|&d| mask[d as usize] = true);
            Allowed { mask, list }
        })
    }

    /// The `k` best documents for `query` with default parameters.
    pub fn search(&self, query: &MultiVector, k: usize) -> Result<Vec<Hit>> {
        self.search_with(query, k, &SearchParams::default(), None)
    }

    /// The `k` best documents for `query` among those `filter` allows (all when None).
    pub fn search_with(
        &self,
        query: &MultiVector,
        k: usize,
        params: &SearchParams,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Hit>> {
        self.check_query(query, 0)?;
        let allowed = self.allowed(filter);
        Ok(self.search_one(query.as_slice(), k, params, allowed.as_ref(), true))
    }

    /// The `k` best documents for each query of a batch.
    pub fn search_batch(
        &self,
        queries: &[MultiVector],
        k: usize,
        params: &SearchParams,
        filter: Option<&IdFilter>,
    ) -> Result<Vec<Vec<Hit>>> {
        for (n, q) in queries.iter().enumerate() {
            self.check_query(q, n)?;
        }
        let allowed = self.allowed(filter);
        let a = allowed.as_ref();
        if queries.len() >= 2 * rayon::current_num_threads() {
            Ok(queries
                .par_iter()
                .map(|q| self.search_one(q.as_slice(), k, params, a, false))
                .collect())
        } else {
            Ok(queries
                .iter()
                .map(|q| self.search_one(q.as_slice(), k, params, a, true))
                .collect())
        }
    }

    fn search_one(
        &self,
        q: &[f32],
        k: usize,
        p: &SearchParams,
        allowed: Option<&Allowed>,
        parallel: bool,
    ) -> Vec<Hit> {
        let dim = self.dim();
        let nq = q.len() / dim;
        let kc = self.manifest.num_centroids;
        let (n_candidates, n_full) = p.resolved(k);
        if nq == 0 || k == 0 || self.is_empty() {
            return Vec::new();
        }
        let rerank_8bit = !p.f32_rerank && rerank8::available() && dim.is_multiple_of(4);
        // the query in panel layout, for the kernels that take it
        let mut q_panels = Vec::new();
        if nq > CENTROID_SCORES_MAX_NQ || !rerank_8bit {
            pack_panels(q, dim, &mut q_panels);
        }
        // st[c * stride + r] = centroid c · query token r (0 for the padding r >= nq)
        let stride = n_panels(nq) * LANES;
        // plus one zero row, the target of pruned centroids in stage 2
        let mut st = vec![0.0f32; (kc + 1) * stride];
        if nq <= CENTROID_SCORES_MAX_NQ {
            centroid_scores(q, dim, &self.centroid_panels, kc, &mut st[..kc * stride]);
        } else {
            rows_scores(&q_panels, nq, dim, &self.centroids, &mut st[..kc * stride]);
        }
        // 1. candidate generation
        let mut cands: Vec<u32> = match allowed {
            Some(a) if a.list.len() <= n_candidates => a.list.clone(),
            _ => {
                let mut n_probe = p.n_probe.max(1);
                if let Some(a) = allowed {
                    let scale = self.len() as f64 / a.list.len().max(1) as f64;
                    n_probe = ((n_probe as f64 * scale).ceil() as usize).min(kc);
                }
                self.probe(&st[..kc * stride], (nq, stride), n_probe.min(kc), allowed)
            }
        };
        let keep = |cands: &[u32], scores: &[f32], n: usize| -> Vec<u32> {
            let mut kept: Vec<u32> = top_k(scores, n)
                .into_iter()
                .map(|(j, _)| cands[j])
                .collect();
            kept.sort_unstable();
            kept
        };
        let acc_init = || vec![0.0f32; 4 * stride];
        // 2. pruned centroid interaction
        if cands.len() > n_candidates {
            let pruned = p
                .centroid_score_threshold
                .map(|t| PrunedRows::new(&st, nq, stride, kc, t));
            let s = map_maybe_par(&cands, parallel, acc_init, |acc, d| {
                let codes = self.doc_codes(d as usize);
                interaction(&st, nq, stride, codes, pruned.as_ref(), acc)
            });
            cands = keep(&cands, &s, n_candidates);
        }
        // 3. full centroid interaction
        if cands.len() > n_full {
            let s = map_maybe_par(&cands, parallel, acc_init, |acc, d| {
                interaction(&st, nq, stride, self.doc_codes(d as usize), None, acc)
            });
            cands = keep(&cands, &s, n_full);
        }
        // 4. decompression and exact MaxSim
        let s = if rerank_8bit {
            let q8 = rerank8::QueryI8::new(q, &self.codec);
            map_maybe_par(&cands, parallel, rerank8::Scratch::default, |scratch, d| {
                let d = d as usize;
                let doc = rerank8::Doc {
                    codes: self.doc_codes(d),
                    res: self.doc_residuals(d),
                    inv: self.doc_inv_norms(d),
                };
                rerank8::score(&q8, (&st, stride), &self.codec, &doc, scratch)
            })
        } else {
            map_maybe_par(
                &cands,
                parallel,
                || (Vec::new(), Vec::new()),
                |(rows, scales), d| {
                    self.codec.decode_rows(
                        &self.centroids,
                        self.doc_codes(d as usize),
                        self.doc_residuals(d as usize),
                        rows,
                        scales,
                    );
                    maxsim_rows(&q_panels, nq, dim, rows, scales)
                },
            )
        };
        let mut hits: Vec<Hit> = cands
            .iter()
            .zip(s)
            .map(|(&d, score)| Hit {
                id: self.ids[d as usize].clone(),
                score,
            })
            .collect();
        hits.sort_by(hit_order);
        hits.truncate(k);
        hits
    }

    /// Live, allowed documents of the `n_probe` best centroids of each query token
    /// (`st` has `nq` meaningful columns out of `stride`).
    fn probe(
        &self,
        st: &[f32],
        (nq, stride): (usize, usize),
        n_probe: usize,
        allowed: Option<&Allowed>,
    ) -> Vec<u32> {
        let probed = best_rows_per_column(st, nq, stride, n_probe);
        let mut out = Vec::new();
        for (c, _) in probed.iter().enumerate().filter(|(_, &p)| p) {
            out.extend(self.ivf.list(c).iter().copied().filter(|&d| {
                let d = d as usize;
                !self.deleted[d] && allowed.is_none_or(|a| a.mask[d])
            }));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_st(rng: &mut rand_chacha::ChaCha8Rng, rows: usize, stride: usize) -> Vec<f32> {
        // few distinct values, so that ties are frequent
        (0..rows * stride)
            .map(|_| rng.random_range(-4i32..5) as f32 / 4.0)
            .collect()
    }

    #[test]
    fn best_rows_per_column_is_the_top_n_with_ties_to_the_lower_row() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        for &(rows, nq, n) in &[
            (50usize, 5usize, 3usize),
            (200, 36, 8),
            (7, 3, 7),
            (7, 2, 9),
        ] {
            let stride = nq.div_ceil(8) * 8;
            let st = random_st(&mut rng, rows, stride);
            let mut want = vec![false; rows];
            for r in 0..nq {
                let mut col: Vec<(f32, usize)> =
                    (0..rows).map(|c| (st[c * stride + r], c)).collect();
                col.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                col.iter().take(n).for_each(|&(_, c)| want[c] = true);
            }
            assert_eq!(
                best_rows_per_column(&st, nq, stride, n),
                want,
                "{rows}x{nq} n {n}"
            );
        }
    }
}
