//! Real BEIR data from ../shared (found through colzero_core::testing: a missing directory
//! panics, never skips): SciFact and NFCorpus loader counts, PyLate document texts, and a
//! golden end-to-end check — a BM25 run made in Python (tools/make_eval_fixtures.py)
//! evaluated here and by pytrec_eval on the real SciFact test qrels agrees to 1e-6.

use colzero_core::testing::{repo_path, shared_path};
use colzero_eval::{evaluate, read_run, BeirDataset, EvalOptions, Metric};
use serde_json::Value;

fn expected() -> Value {
    let p = repo_path("crates/eval/tests/fixtures/scifact_expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn scifact_test_split_loads_like_beir_and_pylate() {
    let exp = expected();
    let ds = BeirDataset::load(&shared_path("data/beir/scifact"), "test").unwrap();
    // official BEIR counts
    assert_eq!(ds.corpus.len(), 5183);
    assert_eq!(ds.queries.len(), 300);
    assert_eq!(ds.qrels.len(), 300);
    assert_eq!(ds.qrels.num_pairs(), 339);
    // same as the Python loader
    assert_eq!(ds.corpus.len() as u64, exp["num_docs"].as_u64().unwrap());
    assert_eq!(
        ds.qrels.num_pairs() as u64,
        exp["num_pairs"].as_u64().unwrap()
    );
    assert_eq!(
        ds.corpus.last().unwrap().id,
        exp["last_doc_id"].as_str().unwrap()
    );
    let total: usize = ds.documents().map(|(_, t)| t.len()).sum();
    assert_eq!(total as u64, exp["total_text_bytes"].as_u64().unwrap());
    for (id, text) in exp["doc_texts"].as_object().unwrap() {
        let d = ds.corpus.iter().find(|d| &d.id == id).unwrap();
        assert_eq!(&d.full_text(), text.as_str().unwrap(), "document {id}");
    }
    for (q, pair) in ds
        .queries
        .iter()
        .zip(exp["first_queries"].as_array().unwrap())
    {
        assert_eq!(q.id, pair[0].as_str().unwrap());
        assert_eq!(q.text, pair[1].as_str().unwrap());
    }
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn scifact_bm25_run_matches_pytrec_eval_end_to_end() {
    let exp = expected();
    let ds = BeirDataset::load(&shared_path("data/beir/scifact"), "test").unwrap();
    let run = read_run(&repo_path("crates/eval/tests/fixtures/scifact_bm25.trec")).unwrap();
    let metrics = Metric::parse_list("ndcg@10,recall@100,map@100,p@5,mrr@10").unwrap();
    let report = evaluate(&ds.qrels, &run, &metrics, &EvalOptions::default()).unwrap();
    assert_eq!(report.num_queries(), 300);
    let mut max_diff = 0.0f64;
    for (q, values) in exp["per_query"].as_object().unwrap() {
        for m in &metrics {
            let (e, g) = (
                values[m.name()].as_f64().unwrap(),
                report.query(q, m).unwrap(),
            );
            max_diff = max_diff.max((e - g).abs());
            assert!(
                (e - g).abs() <= 1e-6,
                "query {q} {m}: rust {g} pytrec_eval {e}"
            );
        }
    }
    for m in &metrics {
        let (e, g) = (
            exp["mean"][m.name()].as_f64().unwrap(),
            report.get(m).unwrap(),
        );
        max_diff = max_diff.max((e - g).abs());
        assert!((e - g).abs() <= 1e-6, "mean {m}: rust {g} pytrec_eval {e}");
    }
    println!(
        "scifact BM25 nDCG@10 rust {:.6} pytrec_eval {:.6}; max abs diff {max_diff:e}",
        report.get_name("ndcg@10").unwrap(),
        exp["mean"]["ndcg@10"].as_f64().unwrap()
    );
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn nfcorpus_test_split_has_graded_qrels() {
    let exp = &expected()["nfcorpus"];
    let ds = BeirDataset::load(&shared_path("data/beir/nfcorpus"), "test").unwrap();
    assert_eq!(ds.queries.len(), 323);
    assert_eq!(ds.corpus.len() as u64, exp["num_docs"].as_u64().unwrap());
    let mut per_grade = std::collections::BTreeMap::new();
    for q in ds.qrels.query_ids() {
        for &r in ds.qrels.get(q).unwrap().values() {
            *per_grade.entry(r.to_string()).or_insert(0u64) += 1;
        }
    }
    let want: std::collections::BTreeMap<String, u64> = exp["pairs_per_grade"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(per_grade, want);
    assert!(
        per_grade.contains_key("2"),
        "nfcorpus test qrels are graded"
    );
}
