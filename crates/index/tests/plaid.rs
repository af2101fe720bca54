//! PLAID acceptance tests on seeded synthetic clustered data: recall against exact
//! search, save/load round trip, crash safety, add/delete/filter semantics and corrupt
//! or foreign-version indexes.

use colzero_core::{Hit, MultiVector};
use colzero_index::synthetic::{clustered, SyntheticConfig};
use colzero_index::{
    build_index, BuildConfig, ExactIndex, IdFilter, IndexBuilder, IndexError, PlaidIndex,
    SearchParams,
};
use std::collections::HashSet;

type Corpus = Vec<(String, MultiVector)>;

fn data(n_docs: usize, seed: u64) -> (Corpus, Corpus) {
    clustered(&SyntheticConfig {
        dim: 64,
        n_docs,
        n_queries: 40,
        n_concepts: 128,
        min_doc_len: 10,
        max_doc_len: 60,
        query_len: 16,
        seed,
        ..Default::default()
    })
}

fn small_cfg() -> BuildConfig {
    BuildConfig {
        chunk_docs: 150,
        ..Default::default()
    }
}

fn recall(got: &[Hit], want: &[Hit]) -> f64 {
    let w: HashSet<&str> = want.iter().map(|h| h.id.as_str()).collect();
    got.iter().filter(|h| w.contains(h.id.as_str())).count() as f64 / want.len().max(1) as f64
}

fn mean_recall(
    index: &PlaidIndex,
    exact: &ExactIndex,
    qs: &[MultiVector],
    k: usize,
    p: &SearchParams,
) -> f64 {
    let got = index.search_batch(qs, k, p, None).unwrap();
    let want = exact.search_batch(qs, k).unwrap();
    got.iter()
        .zip(&want)
        .map(|(g, w)| recall(g, w))
        .sum::<f64>()
        / qs.len() as f64
}

#[test]
fn recall_against_exact_search_at_every_nbits() {
    let (docs, queries) = data(800, 1);
    let qs: Vec<MultiVector> = queries.into_iter().map(|q| q.1).collect();
    let exact = ExactIndex::from_embeddings(docs.clone()).unwrap();
    let p = SearchParams::default();
    for nbits in [1usize, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BuildConfig {
            nbits,
            ..small_cfg()
        };
        let index = build_index(dir.path(), &docs, &cfg).unwrap();
        let info = index.info();
        assert_eq!(info.num_documents, 800);
        assert_eq!(info.nbits, nbits);
        let tokens: usize = docs.iter().map(|d| d.1.n_tokens()).sum();
        assert_eq!(info.num_tokens as usize, tokens);
        let r10 = mean_recall(&index, &exact, &qs, 10, &p);
        println!(
            "nbits {nbits}: recall@10 {r10:.4} K {} B/tok {:.2}",
            info.num_centroids, info.bytes_per_token
        );
        // 1-bit residuals blur the exact rerank itself (measured 0.93 here, whatever
        // n_full); 2 and 4 bits meet the 0.95 goal (measured 0.965 and 0.995).
        let goal = if nbits == 1 { 0.90 } else { 0.95 };
        assert!(r10 >= goal, "nbits {nbits}: recall@10 = {r10}");
        // exact rerank: scores of PLAID hits are MaxSim over the reconstructed tokens
        let f32_rerank = SearchParams {
            f32_rerank: true,
            ..SearchParams::default()
        };
        let h = index.search_with(&qs[0], 3, &f32_rerank, None).unwrap();
        let rec = index.reconstruct(&h[0].id).unwrap();
        let want = colzero_core::maxsim(&qs[0], &rec);
        assert!((want - h[0].score).abs() < 1e-4, "{want} vs {:?}", h[0]);
        // the default rerank (8 bits on AVX-512 VNNI) stays close per query token
        let h8 = index.search(&qs[0], 3).unwrap();
        let rec = index.reconstruct(&h8[0].id).unwrap();
        let want = colzero_core::maxsim(&qs[0], &rec);
        let per_token = (want - h8[0].score).abs() / qs[0].n_tokens() as f32;
        println!("nbits {nbits}: 8-bit rerank error {per_token:.2e} per query token");
        assert!(per_token < 1e-3, "nbits {nbits}: {want} vs {:?}", h8[0]);
    }
}

#[test]
fn build_is_deterministic_and_streaming_equals_one_shot() {
    let (docs, queries) = data(300, 2);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ia = build_index(a.path(), &docs, &small_cfg()).unwrap();
    // Same thing through the streaming API, by hand.
    let sample: Vec<MultiVector> = docs.iter().map(|d| d.1.clone()).collect();
    let cfg = BuildConfig {
        expected_documents: Some(300),
        ..small_cfg()
    };
    let mut builder = IndexBuilder::train(b.path(), &sample, &cfg).unwrap();
    for chunk in docs.chunks(150) {
        let ids = chunk.iter().map(|d| d.0.clone()).collect();
        let e: Vec<MultiVector> = chunk.iter().map(|d| d.1.clone()).collect();
        builder.add_chunk(ids, &e).unwrap();
    }
    let ib = builder.finish().unwrap();
    for f in [
        "centroids-g1.bin",
        "ivf-g1.bin",
        "chunk-g1-0.bin",
        "chunk-g1-1.bin",
        "docs-g1.json",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs"
        );
    }
    let q = &queries[0].1;
    assert_eq!(ia.search(q, 10).unwrap(), ib.search(q, 10).unwrap());
}

#[test]
fn save_load_round_trip() {
    let (docs, queries) = data(300, 3);
    let dir = tempfile::tempdir().unwrap();
    let built = build_index(dir.path(), &docs, &small_cfg()).unwrap();
    let opened = PlaidIndex::open(dir.path()).unwrap();
    assert_eq!(built.info(), opened.info());
    assert_eq!(built.manifest(), opened.manifest());
    for (_, q) in &queries {
        assert_eq!(built.search(q, 10).unwrap(), opened.search(q, 10).unwrap());
    }
    assert_eq!(opened.ids().count(), 300);
}

#[test]
fn interrupted_writes_leave_the_previous_version_readable() {
    let (docs, queries) = data(300, 4);
    let dir = tempfile::tempdir().unwrap();
    let v1 = build_index(dir.path(), &docs[..200], &small_cfg()).unwrap();
    let q = &queries[0].1;
    let before = v1.search(q, 10).unwrap();
    drop(v1);
    // A rebuild that "crashes" after writing chunks but before committing.
    let sample: Vec<MultiVector> = docs.iter().map(|d| d.1.clone()).collect();
    let mut b = IndexBuilder::train(dir.path(), &sample, &small_cfg()).unwrap();
    let ids: Vec<String> = docs.iter().map(|d| d.0.clone()).collect();
    b.add_chunk(ids, &sample).unwrap();
    drop(b);
    // ... and debris of a half-written temp file and a truncated future chunk.
    std::fs::write(dir.path().join(".colzero-abc.tmp"), b"partial").unwrap();
    std::fs::write(dir.path().join("chunk-g9-0.bin"), b"trunc").unwrap();
    let reopened = PlaidIndex::open(dir.path()).unwrap();
    assert_eq!(reopened.len(), 200);
    assert_eq!(reopened.search(q, 10).unwrap(), before);
    // The next successful commit removes the debris.
    let mut idx = reopened;
    idx.delete(&["d0"]).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".tmp") || n == "chunk-g9-0.bin"),
        "{names:?}"
    );
    assert_eq!(PlaidIndex::open(dir.path()).unwrap().len(), 199);
}

#[test]
fn add_delete_and_filter_semantics() {
    let (docs, queries) = data(400, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut index = build_index(dir.path(), &docs[..300], &small_cfg()).unwrap();
    let k0 = index.info().num_centroids;
    // add the remaining 100 documents; they are searchable and reopen identically
    let ids: Vec<String> = docs[300..].iter().map(|d| d.0.clone()).collect();
    let embs: Vec<MultiVector> = docs[300..].iter().map(|d| d.1.clone()).collect();
    index.add(ids.clone(), &embs).unwrap();
    assert_eq!(index.len(), 400);
    assert!(index.info().num_centroids >= k0);
    let target = &docs[350];
    let hits = index.search(&target.1, 1).unwrap();
    assert_eq!(hits[0].id, target.0, "a document is its own best match");
    assert!(matches!(
        index.add(vec![ids[0].clone()], &embs[..1]),
        Err(IndexError::DuplicateId(_))
    ));
    // delete: gone from results, others keep their ids and scores
    let q = &queries[10].1;
    let before = index.search(q, 10).unwrap();
    let victim = before[0].id.clone();
    assert_eq!(index.delete(&[victim.as_str(), "no-such-id"]).unwrap(), 1);
    assert_eq!(index.delete(&[victim.as_str()]).unwrap(), 0);
    let after = index.search(q, 10).unwrap();
    assert!(after.iter().all(|h| h.id != victim));
    assert_eq!(&after[..9], &before[1..10]);
    let reopened = PlaidIndex::open(dir.path()).unwrap();
    assert_eq!(reopened.search(q, 10).unwrap(), after);
    assert!(!reopened.contains(&victim));
    assert_eq!(reopened.info().num_deleted, 1);
    // a deleted id can come back
    let v = docs.iter().find(|d| d.0 == victim).unwrap().1.clone();
    index
        .add(vec![victim.clone()], std::slice::from_ref(&v))
        .unwrap();
    assert_eq!(index.search(q, 10).unwrap(), before);
    // filter: only allowed ids, and a small filter gives the exact ranking over it
    let allowed: Vec<String> = docs
        .iter()
        .skip(1)
        .step_by(7)
        .map(|d| d.0.clone())
        .collect();
    let f = IdFilter::new(allowed.iter().cloned());
    let got = index
        .search_with(q, 5, &SearchParams::default(), Some(&f))
        .unwrap();
    let subset: Vec<(String, MultiVector)> = docs
        .iter()
        .filter(|d| allowed.contains(&d.0))
        .cloned()
        .collect();
    let want = ExactIndex::from_embeddings(subset)
        .unwrap()
        .search(q, 5)
        .unwrap();
    assert!(got.iter().all(|h| allowed.contains(&h.id)));
    assert!(recall(&got, &want) >= 0.8, "{got:?} vs {want:?}");
    let batch = index
        .search_batch(
            std::slice::from_ref(q),
            5,
            &SearchParams::default(),
            Some(&f),
        )
        .unwrap();
    assert_eq!(batch[0], got);
}

#[test]
fn corrupt_and_foreign_version_indexes_are_clear_errors() {
    let (docs, _) = data(120, 6);
    let dir = tempfile::tempdir().unwrap();
    build_index(dir.path(), &docs, &small_cfg()).unwrap();
    let manifest = dir.path().join("manifest.json");
    let good = std::fs::read_to_string(&manifest).unwrap();
    // flipped byte in the manifest body
    std::fs::write(&manifest, good.replacen("\"dim\": 64", "\"dim\": 65", 1)).unwrap();
    let e = PlaidIndex::open(dir.path()).err().unwrap();
    assert!(matches!(e, IndexError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // another format version
    std::fs::write(
        &manifest,
        good.replacen("colzero-index 2 ", "colzero-index 3 ", 1),
    )
    .unwrap();
    let e = PlaidIndex::open(dir.path()).err().unwrap();
    assert!(
        matches!(
            e,
            IndexError::Version {
                found: 3,
                oldest: 1,
                newest: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("reads versions 1 to 2"), "{e}");
    // a damaged data file
    std::fs::write(&manifest, &good).unwrap();
    let chunk = dir.path().join("chunk-g1-0.bin");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&chunk, &bytes).unwrap();
    let e = PlaidIndex::open(dir.path()).err().unwrap().to_string();
    assert!(
        e.contains("chunk-g1-0.bin") && e.contains("checksum"),
        "{e}"
    );
    // not an index at all
    std::fs::write(&manifest, "hello\n{}").unwrap();
    let e = PlaidIndex::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("not a colzero index"), "{e}");
}

#[test]
fn format_v2_is_smaller_and_ranks_like_v1() {
    // Same data and seed written in both formats: v2 stores f16 centroids, u16 codes
    // and a varint-gap inverted file; its rankings must match v1's (recall against
    // exact search at least as good, up to one document in 400 ranks).
    let (docs, queries) = data(600, 8);
    let qs: Vec<MultiVector> = queries.into_iter().map(|q| q.1).collect();
    let exact = ExactIndex::from_embeddings(docs.clone()).unwrap();
    let p = SearchParams::default();
    let mut results = Vec::new();
    for version in [1u32, 2] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BuildConfig {
            format_version: version,
            ..small_cfg()
        };
        let index = build_index(dir.path(), &docs, &cfg).unwrap();
        let info = index.info();
        assert_eq!(info.format_version, version);
        let part = |name: &str| {
            info.breakdown
                .iter()
                .find(|b| b.part == name)
                .unwrap()
                .bytes
        };
        let (k, t) = (info.num_centroids as u64, info.num_tokens);
        let (cb, fb) = if version == 1 { (4, 4) } else { (2, 2) };
        assert_eq!(part("codes"), cb * t);
        assert_eq!(part("centroids"), fb * k * 64);
        assert_eq!(part("residuals"), 16 * t);
        println!("v{version}: {info}");
        let r = mean_recall(&index, &exact, &qs, 10, &p);
        let hits = index.search_batch(&qs, 10, &p, None).unwrap();
        // Scoring error of the rerank: |MaxSim(q, reconstructed d) - MaxSim(q, d)|.
        let mut err = 0.0f64;
        for q in &qs {
            for (id, d) in docs.iter().step_by(10) {
                let rec = index.reconstruct(id).unwrap();
                err += (colzero_core::maxsim(q, &rec) - colzero_core::maxsim(q, d)).abs() as f64;
            }
        }
        err /= (qs.len() * docs.len().div_ceil(10)) as f64;
        println!("v{version}: recall@10 {r:.4}, mean |MaxSim error| {err:.5}");
        results.push((info, r, hits, err));
    }
    let (v1, r1, h1, e1) = &results[0];
    let (v2, r2, h2, e2) = &results[1];
    assert!(v2.bytes_per_token < v1.bytes_per_token - 3.0, "{v1}\n{v2}");
    // f16 centroids add ~1e-4 relative error to a 2-bit residual code whose own error is
    // ~1e-2: the rerank's scoring error must stay the same to within 1%.
    assert!(*e2 <= e1 * 1.01, "MaxSim error v1 {e1} v2 {e2}");
    assert!(*r2 >= r1 - 0.0025, "recall v1 {r1} v2 {r2}");
    let same: f64 = h1.iter().zip(h2).map(|(a, b)| recall(b, a)).sum::<f64>() / qs.len() as f64;
    assert!(same >= 0.97, "top-10 overlap v1/v2 {same}");
}
