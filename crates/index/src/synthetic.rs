//! Seeded synthetic multi-vector corpora for tests and benchmarks.
//!
//! Contract: [`clustered`] draws `n_concepts` random unit directions; each document picks
//! `concepts_per_doc` of them and each of its tokens is `normalize(concept + noise · g)`
//! with `g` a random vector of unit expected norm; query `i` targets document
//! `i · n_docs / n_queries` and draws its tokens the same way from that document's
//! concepts. Document ids are `d<number>`, query ids `q<number>`. Same config ⇒ same
//! data, bit for bit.

use colzero_core::MultiVector;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shape of a synthetic corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    pub dim: usize,
    pub n_docs: usize,
    pub n_queries: usize,
    pub n_concepts: usize,
    pub concepts_per_doc: usize,
    pub min_doc_len: usize,
    pub max_doc_len: usize,
    pub query_len: usize,
    pub noise: f32,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            dim: 128,
            n_docs: 1000,
            n_queries: 100,
            n_concepts: 256,
            concepts_per_doc: 6,
            min_doc_len: 20,
            max_doc_len: 120,
            query_len: 32,
            noise: 0.6,
            seed: 1,
        }
    }
}

fn noisy(rng: &mut ChaCha8Rng, base: &[f32], noise: f32) -> Vec<f32> {
    let s = noise * (3.0 / base.len() as f32).sqrt();
    let mut v: Vec<f32> = base
        .iter()
        .map(|b| b + s * rng.random_range(-1.0f32..1.0))
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// A clustered corpus: `(documents, queries)` (see module docs).
#[allow(clippy::type_complexity)]
pub fn clustered(
    cfg: &SyntheticConfig,
) -> (Vec<(String, MultiVector)>, Vec<(String, MultiVector)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let dim = cfg.dim;
    let zero = vec![0.0f32; dim];
    let concepts: Vec<Vec<f32>> = (0..cfg.n_concepts.max(1))
        .map(|_| noisy(&mut rng, &zero, 1.0))
        .collect();
    let mut doc_concepts = Vec::with_capacity(cfg.n_docs);
    let docs: Vec<(String, MultiVector)> = (0..cfg.n_docs)
        .map(|i| {
            let mine: Vec<usize> = (0..cfg.concepts_per_doc.max(1))
                .map(|_| rng.random_range(0..concepts.len()))
                .collect();
            let len = rng.random_range(cfg.min_doc_len..=cfg.max_doc_len.max(cfg.min_doc_len));
            let mut data = Vec::with_capacity(len * dim);
            for _ in 0..len {
                let c = mine[rng.random_range(0..mine.len())];
                data.extend(noisy(&mut rng, &concepts[c], cfg.noise));
            }
            doc_concepts.push(mine);
            (
                format!("d{i}"),
                MultiVector::new(dim, data).expect("whole rows"),
            )
        })
        .collect();
    let queries = (0..cfg.n_queries)
        .map(|i| {
            let target = i * cfg.n_docs.max(1) / cfg.n_queries.max(1);
            let mine = &doc_concepts[target.min(doc_concepts.len().saturating_sub(1))];
            let mut data = Vec::with_capacity(cfg.query_len * dim);
            for _ in 0..cfg.query_len {
                let c = mine[rng.random_range(0..mine.len())];
                data.extend(noisy(&mut rng, &concepts[c], cfg.noise));
            }
            (
                format!("q{i}"),
                MultiVector::new(dim, data).expect("whole rows"),
            )
        })
        .collect();
    (docs, queries)
}
