//! Format compatibility: the committed fixture index of every released format version
//! (written once by `examples/make_fixture.rs`) must keep opening and answering exactly
//! as it did when it was written, and an old-version index stays updatable in place
//! (updates keep its version).

use colzero_core::{Hit, MultiVector};
use colzero_index::synthetic::{clustered, SyntheticConfig};
use colzero_index::{PlaidIndex, SearchParams, FORMAT_VERSION};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected(version: u32) -> serde_json::Value {
    let p = fixtures().join(format!("plaid-v{version}.expected.json"));
    serde_json::from_slice(&std::fs::read(p).expect("fixture expected.json")).unwrap()
}

/// Opens `dir` and checks info fields and the hits of the three stored queries.
fn check_fixture(dir: &Path, expected: &serde_json::Value) -> PlaidIndex {
    let index = PlaidIndex::open(dir).unwrap();
    let info = serde_json::to_value(index.info()).unwrap();
    for key in [
        "format_version",
        "generation",
        "dim",
        "nbits",
        "num_documents",
        "num_deleted",
        "num_tokens",
        "num_centroids",
        "num_chunks",
    ] {
        assert_eq!(info[key], expected["info"][key], "info field {key}");
    }
    assert!(!index.contains("d3") && !index.contains("d41") && index.contains("d44"));
    let queries = expected["queries"].as_object().unwrap();
    assert_eq!(queries.len(), 3);
    for (qid, rows) in queries {
        let q = query(rows);
        let want: Vec<Hit> = serde_json::from_value(expected["hits"][qid].clone()).unwrap();
        // the stored hits come from the f32 rerank: identical up to float rounding
        let f32_rerank = SearchParams {
            f32_rerank: true,
            ..SearchParams::default()
        };
        let got = index.search_with(&q, 5, &f32_rerank, None).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.id, w.id, "{qid}");
            assert!((g.score - w.score).abs() < 1e-5, "{qid}: {g:?} vs {w:?}");
        }
        // the default (8-bit rerank where the CPU has AVX-512 VNNI): same documents,
        // scores within 2e-3 per query token (16 dimensions and synthetic residuals
        // near 0.3: 8-bit rounding costs more here than on 128-dim ColBERT vectors)
        let got = index
            .search_with(&q, 5, &SearchParams::default(), None)
            .unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.id, w.id, "{qid}");
            let tol = 2e-3 * q.n_tokens() as f32;
            assert!((g.score - w.score).abs() < tol, "{qid}: {g:?} vs {w:?}");
        }
    }
    index
}

fn query(rows: &serde_json::Value) -> MultiVector {
    let rows: Vec<Vec<f32>> = serde_json::from_value(rows.clone()).unwrap();
    MultiVector::from_rows(16, &rows).unwrap()
}

#[test]
fn committed_v1_fixture_reopens_with_identical_results() {
    assert_eq!(
        FORMAT_VERSION, 2,
        "new format: add a test for the new fixture"
    );
    let e = expected(1);
    let index = check_fixture(&fixtures().join("plaid-v1"), &e);
    assert_eq!(index.info().format_version, 1);
    // version 1 layout: f32 centroids, u32 codes
    let parts = index.info().breakdown;
    let get = |p: &str| parts.iter().find(|x| x.part == p).unwrap().bytes;
    assert_eq!(get("centroids"), 16 * 16 * 4);
    assert_eq!(get("codes"), 4 * index.info().num_tokens);
}

#[test]
fn committed_v2_fixture_reopens_with_identical_results() {
    let e = expected(2);
    let index = check_fixture(&fixtures().join("plaid-v2"), &e);
    let info = index.info();
    assert_eq!(info.format_version, 2);
    let get = |p: &str| info.breakdown.iter().find(|x| x.part == p).unwrap().bytes;
    assert_eq!(get("centroids"), 16 * 16 * 2);
    assert_eq!(get("codes"), 2 * info.num_tokens);
    assert_eq!(get("residuals"), 4 * info.num_tokens);
    assert_eq!(
        info.breakdown.iter().map(|p| p.bytes).sum::<u64>(),
        info.bytes_on_disk
    );
    // Same data, same build as v1: the rankings agree with the v1 fixture's.
    let v1 = expected(1);
    for qid in ["q0", "q1", "q2"] {
        let ids = |v: &serde_json::Value| -> Vec<String> {
            v["hits"][qid]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&e), ids(&v1), "{qid}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_v1_index_takes_adds_and_deletes_and_stays_v1() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("plaid-v1"), dir.path());
    let mut index = PlaidIndex::open(dir.path()).unwrap();
    let (docs, _) = clustered(&SyntheticConfig {
        dim: 16,
        n_docs: 300,
        n_queries: 1,
        n_concepts: 12,
        concepts_per_doc: 2,
        min_doc_len: 3,
        max_doc_len: 10,
        query_len: 4,
        noise: 0.5,
        seed: 77,
    });
    // Far more documents than the fixture had: enough outliers to add centroids too.
    let ids: Vec<String> = docs.iter().map(|d| format!("new-{}", d.0)).collect();
    let embs: Vec<MultiVector> = docs.iter().map(|d| d.1.clone()).collect();
    index.add(ids, &embs).unwrap();
    assert_eq!(index.delete(&["d0", "new-d5"]).unwrap(), 2);
    let reopened = PlaidIndex::open(dir.path()).unwrap();
    let info = reopened.info();
    assert_eq!(info.format_version, 1);
    assert_eq!(info.num_documents, 43 + 300 - 2);
    let get = |p: &str| info.breakdown.iter().find(|x| x.part == p).unwrap().bytes;
    assert_eq!(get("codes"), 4 * info.num_tokens);
    assert_eq!(get("centroids"), (info.num_centroids * 16 * 4) as u64);
    let target = &embs[17];
    assert_eq!(reopened.search(target, 1).unwrap()[0].id, "new-d17");
    assert!(!reopened.contains("d0") && reopened.contains("d1"));
    // The old documents still answer as before for the fixture queries, minus d0.
    let e = expected(1);
    let q = query(&e["queries"]["q1"]);
    let old: Vec<String> = reopened
        .search(&q, 50)
        .unwrap()
        .into_iter()
        .filter(|h| !h.id.starts_with("new-"))
        .map(|h| h.id)
        .take(5)
        .collect();
    let want: Vec<String> = e["hits"]["q1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .filter(|id| id != "d0")
        .collect();
    assert_eq!(&old[..want.len()], &want[..]);
}
