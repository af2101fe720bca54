//! Exact search against the reference `colzero_core::maxsim` on seeded random data:
//! scores, ranking order (ties by id), batches, filters, stores and bad input.

use colzero_core::ranking::hit_order;
use colzero_core::{maxsim, Hit, MultiVector, StoreWriter};
use colzero_index::{ExactIndex, IdFilter, IndexError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_mv(rng: &mut ChaCha8Rng, n: usize, dim: usize) -> MultiVector {
    let data: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut mv = MultiVector::new(dim, data).unwrap();
    mv.normalize_rows();
    mv
}

fn corpus(seed: u64, n: usize, dim: usize) -> Vec<(String, MultiVector)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let len = rng.random_range(0..40);
            (
                format!("doc{:04}", (i * 7919) % n),
                random_mv(&mut rng, len, dim),
            )
        })
        .collect()
}

/// Reference ranking: score every document with core::maxsim, sort with hit_order.
fn reference(docs: &[(String, MultiVector)], q: &MultiVector, k: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = docs
        .iter()
        .map(|(id, d)| Hit {
            id: id.clone(),
            score: maxsim(q, d),
        })
        .collect();
    hits.sort_by(hit_order);
    hits.truncate(k);
    hits
}

fn assert_same(got: &[Hit], want: &[Hit]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g.score - w.score).abs() < 1e-4, "{g:?} vs {w:?}");
    }
    // Identical ids unless two reference scores are closer than float noise.
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.id != w.id {
            let close = want
                .iter()
                .any(|o| o.id == g.id && (o.score - w.score).abs() < 1e-4);
            assert!(close, "rank {i}: got {g:?}, want {w:?}");
        }
    }
}

#[test]
fn search_matches_reference_maxsim() {
    let docs = corpus(1, 300, 48);
    let index = ExactIndex::from_embeddings(docs.clone()).unwrap();
    assert_eq!(index.len(), 300);
    assert_eq!(index.dim(), 48);
    let tokens: usize = docs.iter().map(|d| d.1.n_tokens()).sum();
    assert_eq!(index.total_tokens(), tokens);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for qn in [1usize, 3, 32] {
        let q = random_mv(&mut rng, qn, 48);
        let got = index.search(&q, 10).unwrap();
        assert_same(&got, &reference(&docs, &q, 10));
        // every score is the reference MaxSim of that document
        for h in &got {
            let d = &docs.iter().find(|d| d.0 == h.id).unwrap().1;
            assert!((h.score - maxsim(&q, d)).abs() < 1e-4);
        }
    }
}

#[test]
fn zero_token_documents_score_zero_and_k_larger_than_corpus() {
    let docs = vec![
        ("a".to_string(), MultiVector::empty(4)),
        (
            "b".to_string(),
            MultiVector::new(4, vec![-1.0, 0.0, 0.0, 0.0]).unwrap(),
        ),
    ];
    let index = ExactIndex::from_embeddings(docs).unwrap();
    let q = MultiVector::new(4, vec![1.0, 0.0, 0.0, 0.0]).unwrap();
    let hits = index.search(&q, 10).unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!((hits[0].id.as_str(), hits[0].score), ("a", 0.0));
    assert_eq!((hits[1].id.as_str(), hits[1].score), ("b", -1.0));
}

#[test]
fn ties_are_broken_by_id_ascending() {
    let v = MultiVector::new(2, vec![0.6, 0.8]).unwrap();
    let docs: Vec<(String, MultiVector)> = ["z", "m", "a", "q"]
        .iter()
        .map(|id| (id.to_string(), v.clone()))
        .collect();
    let index = ExactIndex::from_embeddings(docs).unwrap();
    let hits = index.search(&v, 3).unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["a", "m", "q"]);
}

#[test]
fn batch_equals_single_queries_in_both_parallel_modes() {
    let docs = corpus(3, 200, 32);
    let index = ExactIndex::from_embeddings(docs).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for nq in [1usize, 2, 17] {
        let qs: Vec<MultiVector> = (0..nq).map(|_| random_mv(&mut rng, 8, 32)).collect();
        let batch = index.search_batch(&qs, 7).unwrap();
        assert_eq!(batch.len(), nq);
        for (q, b) in qs.iter().zip(&batch) {
            assert_eq!(&index.search(q, 7).unwrap(), b);
        }
    }
}

#[test]
fn filter_restricts_results_and_matches_reference_on_subset() {
    let docs = corpus(5, 150, 16);
    let index = ExactIndex::from_embeddings(docs.clone()).unwrap();
    let allowed: Vec<String> = docs.iter().step_by(3).map(|d| d.0.clone()).collect();
    let filter = IdFilter::new(allowed.iter().cloned().chain(["not-there".to_string()]));
    let subset: Vec<(String, MultiVector)> = docs
        .iter()
        .filter(|d| allowed.contains(&d.0))
        .cloned()
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let q = random_mv(&mut rng, 5, 16);
    let got = index.search_filtered(&q, 10, Some(&filter)).unwrap();
    assert!(got.iter().all(|h| allowed.contains(&h.id)));
    assert_same(&got, &reference(&subset, &q, 10));
    let batch = index
        .search_batch_filtered(std::slice::from_ref(&q), 10, Some(&filter))
        .unwrap();
    assert_eq!(batch[0], got);
    let none = index
        .search_filtered(&q, 10, Some(&IdFilter::default()))
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn from_store_equals_from_embeddings() {
    let docs = corpus(8, 60, 12);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.safetensors");
    let mut w = StoreWriter::new();
    for (id, mv) in &docs {
        w.push(id.clone(), mv.clone()).unwrap();
    }
    w.write(&path).unwrap();
    let store = colzero_core::EmbeddingStore::open(&path).unwrap();
    let a = ExactIndex::from_store(&store).unwrap();
    let b = ExactIndex::from_embeddings(docs).unwrap();
    assert_eq!(a.ids(), b.ids());
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let q = random_mv(&mut rng, 4, 12);
    assert_eq!(a.search(&q, 20).unwrap(), b.search(&q, 20).unwrap());
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let docs = vec![
        (
            "x".to_string(),
            MultiVector::new(2, vec![1.0, 0.0]).unwrap(),
        ),
        (
            "x".to_string(),
            MultiVector::new(2, vec![0.0, 1.0]).unwrap(),
        ),
    ];
    assert!(matches!(
        ExactIndex::from_embeddings(docs),
        Err(IndexError::DuplicateId(id)) if id == "x"
    ));
    let mixed = vec![
        (
            "x".to_string(),
            MultiVector::new(2, vec![1.0, 0.0]).unwrap(),
        ),
        (
            "y".to_string(),
            MultiVector::new(3, vec![0.0, 1.0, 0.0]).unwrap(),
        ),
    ];
    let err = ExactIndex::from_embeddings(mixed).unwrap_err().to_string();
    assert!(err.contains("`y`") && err.contains("dim 3"), "{err}");
    let index = ExactIndex::from_embeddings(corpus(1, 5, 8)).unwrap();
    let q = MultiVector::new(4, vec![1.0; 4]).unwrap();
    let err = index.search(&q, 3).unwrap_err().to_string();
    assert!(err.contains("dim 4") && err.contains("dim 8"), "{err}");
    assert!(index.search_batch(&[q], 3).is_err());
}
