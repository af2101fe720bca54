//! BM25 on the real SciFact and NFCorpus test splits (../shared via
//! colzero_core::testing: a missing directory panics). Documents are PyLate's
//! `f"{title} {text}".strip()`. nDCG@10 must be in the range of published BM25 (SciFact:
//! Anserini flat with Porter stemming 0.665, the unstemmed Python run of
//! tools/make_eval_fixtures.py 0.660; NFCorpus: Anserini flat 0.322); the measured values
//! are printed.

use colzero_core::testing::shared_path;
use colzero_core::Run;
use colzero_eval::{evaluate, BeirDataset, EvalOptions, Metric};
use colzero_index::bm25::{Analyzer, Bm25Index, Bm25Params};

fn ndcg(ds: &BeirDataset, analyzer: Analyzer) -> (f64, f64) {
    let idx = Bm25Index::build(ds.documents(), analyzer, Bm25Params::default()).unwrap();
    assert_eq!(idx.len(), ds.corpus.len());
    let texts: Vec<&str> = ds.queries.iter().map(|q| q.text.as_str()).collect();
    let hits = idx.search_batch(&texts, 100);
    let run: Run = ds.queries.iter().map(|q| q.id.clone()).zip(hits).collect();
    let metrics = Metric::parse_list("ndcg@10,recall@100").unwrap();
    let r = evaluate(&ds.qrels, &run, &metrics, &EvalOptions::default()).unwrap();
    assert_eq!(r.num_queries(), ds.queries.len());
    (
        r.get_name("ndcg@10").unwrap(),
        r.get_name("recall@100").unwrap(),
    )
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn scifact_test_ndcg_is_in_published_bm25_range() {
    let ds = BeirDataset::load(&shared_path("data/beir/scifact"), "test").unwrap();
    assert_eq!((ds.corpus.len(), ds.queries.len()), (5183, 300));
    let (plain, plain_r) = ndcg(&ds, Analyzer::default());
    let (english, english_r) = ndcg(&ds, Analyzer::english());
    println!(
        "scifact test BM25 (k1 0.9, b 0.4): plain nDCG@10 {plain:.4} R@100 {plain_r:.4}; \
         stopwords+Porter2 nDCG@10 {english:.4} R@100 {english_r:.4}"
    );
    assert!((0.62..=0.71).contains(&plain), "plain nDCG@10 {plain}");
    assert!(
        (0.63..=0.72).contains(&english),
        "english nDCG@10 {english}"
    );
    assert!(plain_r > 0.85 && english_r > 0.85, "{plain_r} {english_r}");
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn nfcorpus_test_ndcg_is_in_published_bm25_range() {
    let ds = BeirDataset::load(&shared_path("data/beir/nfcorpus"), "test").unwrap();
    let (plain, _) = ndcg(&ds, Analyzer::default());
    let (english, _) = ndcg(&ds, Analyzer::english());
    println!("nfcorpus test BM25 nDCG@10: plain {plain:.4}; stopwords+Porter2 {english:.4}");
    assert!((0.28..=0.36).contains(&plain), "plain nDCG@10 {plain}");
    assert!(
        (0.29..=0.37).contains(&english),
        "english nDCG@10 {english}"
    );
}
