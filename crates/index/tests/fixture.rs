//! Format compatibility: the committed fixture index of every released format version
//! (written once by `examples/make_fixture.rs`) must keep opening and answering exactly
//! as it did when it was written.

use colzero_core::{Hit, MultiVector};
use colzero_index::{PlaidIndex, SearchParams, FORMAT_VERSION};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn committed_v1_fixture_reopens_with_identical_results() {
    let dir = fixtures().join("plaid-v1");
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("plaid-v1.expected.json")).expect("fixture expected.json"),
    )
    .unwrap();
    assert_eq!(
        FORMAT_VERSION, 1,
        "new format: keep this test and add one for the new fixture"
    );
    let index = PlaidIndex::open(&dir).unwrap();
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
        let rows: Vec<Vec<f32>> = serde_json::from_value(rows.clone()).unwrap();
        let q = MultiVector::from_rows(16, &rows).unwrap();
        let want: Vec<Hit> = serde_json::from_value(expected["hits"][qid].clone()).unwrap();
        let got = index
            .search_with(&q, 5, &SearchParams::default(), None)
            .unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.id, w.id, "{qid}");
            assert!((g.score - w.score).abs() < 1e-5, "{qid}: {g:?} vs {w:?}");
        }
    }
}
