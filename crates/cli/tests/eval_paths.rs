//! One retrieval path: the nDCG@10 that `colzero eval` reports and the one the trainer's
//! evaluation hook computes during training (`colzero_train::evalhook`) are the same number
//! on the same weights, dataset and queries — both encode with the model crate's encoder,
//! search with `colzero_index::ExactIndex` (ties by id) and score with `colzero_eval`.

mod support;

use colzero_model::{ColBERT, LoadOptions};
use support::{beir, ok, repo_path, s};

#[test]
fn colzero_eval_and_the_training_hook_agree() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("beir");
    beir(&ds);
    let model = repo_path("crates/model/tests/fixtures/tiny-bert-colbert");
    let out = dir.path().join("out");
    ok(&[
        "eval",
        "--model",
        s(&model),
        "--dataset",
        s(&ds),
        "--output",
        s(&out),
        "--metrics",
        "ndcg@10",
        "--batch-size",
        "8",
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let cli = m["ndcg@10"].as_f64().unwrap();
    let set = colzero_train::evalhook::EvalSet::load(&ds, "test", 0, 8).unwrap();
    let hook = set
        .ndcg10(&ColBERT::load(&model, &LoadOptions::default()).unwrap())
        .unwrap();
    assert!(cli > 0.0, "{cli}");
    assert!(
        (cli - hook).abs() < 1e-9,
        "colzero eval {cli} vs trainer hook {hook}"
    );
}
