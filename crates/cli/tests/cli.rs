//! End-to-end tests of the `colzero` binary: the commands chain (encode -> search,
//! index build -> search), and bad input fails with a located message, a non-zero exit,
//! no panic and no output file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colzero"));
    c.arg("--quiet").arg("--threads").arg("2");
    c
}

fn tiny_model() -> PathBuf {
    colzero_core::testing::repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

fn run(c: &mut Command) -> Output {
    c.output().expect("colzero runs")
}

/// Runs `colzero encode` on `input` with `model`, writing `out`.
fn encode(model: impl AsRef<Path>, input: &Path, kind: &str, out: &Path) -> Output {
    run(bin()
        .args(["encode", "--model"])
        .arg(model.as_ref())
        .arg("--input")
        .arg(input)
        .args(["--kind", kind, "--output"])
        .arg(out))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, must_contain: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for m in must_contain {
        assert!(err.contains(m), "stderr lacks {m:?}: {err}");
    }
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

const DOCS: &str = r#"{"id": "d1", "text": "Stem cells can become many kinds of cells."}
{"id": "d2", "text": "The stock market fell sharply on Monday."}
{"id": "d3", "text": "Vitamin D deficiency is linked to bone loss."}
"#;

#[test]
fn encode_then_search_ranks_documents_by_maxsim() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    write(&docs, DOCS);
    let emb = dir.path().join("docs.safetensors");
    let o = encode(tiny_model(), &docs, "document", &emb);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = colzero_core::EmbeddingStore::open(&emb).unwrap();
    assert_eq!(store.ids(), ["d1", "d2", "d3"]);
    assert_eq!(store.metadata()["colzero.kind"], "document");

    // The search output must be the exact MaxSim ranking of the stored vectors.
    let queries = dir.path().join("q.jsonl");
    write(&queries, "{\"id\": \"q1\", \"text\": \"stem cells\"}\n");
    let qemb = dir.path().join("q.safetensors");
    let o = encode(tiny_model(), &queries, "query", &qemb);
    assert!(o.status.success(), "{}", stderr(&o));
    let q = colzero_core::EmbeddingStore::open(&qemb)
        .unwrap()
        .get("q1")
        .unwrap();
    let mut want: Vec<(String, f32)> = store
        .load_all()
        .unwrap()
        .into_iter()
        .map(|(id, d)| (id, colzero_core::maxsim(&q, &d)))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));

    let run_file = dir.path().join("run.trec");
    let o = run(bin()
        .args(["search", "--model"])
        .arg(tiny_model())
        .arg("--embeddings")
        .arg(&emb)
        .arg("--queries")
        .arg(&queries)
        .args(["-k", "3", "--output"])
        .arg(&run_file));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&run_file).unwrap();
    let got: Vec<(String, f32)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_string(), f[4].parse().unwrap())
        })
        .collect();
    assert_eq!(got.len(), 3);
    for ((gid, gs), (wid, ws)) in got.iter().zip(&want) {
        assert_eq!(gid, wid);
        assert!((gs - ws).abs() < 1e-4, "{gs} vs {ws}");
    }
}

#[test]
fn malformed_jsonl_names_file_and_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    write(
        &docs,
        "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"txt\": \"oops\"}\n",
    );
    let out = dir.path().join("out.safetensors");
    let o = encode(tiny_model(), &docs, "document", &out);
    assert_clean_failure(&o, &[&format!("{}:2:", docs.display()), "text"]);
    assert!(!out.exists());
    // No temp file left behind either.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn non_utf8_input_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(
        &docs,
        b"{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \"\xff\"}\n",
    )
    .unwrap();
    let out = dir.path().join("out.safetensors");
    let o = encode(tiny_model(), &docs, "document", &out);
    assert_clean_failure(&o, &[":2: invalid UTF-8"]);
    assert!(!out.exists());
}

#[test]
fn missing_model_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "config_sentence_transformers.json",
    ] {
        std::fs::copy(tiny_model().join(f), model.join(f)).unwrap();
    }
    let docs = dir.path().join("docs.jsonl");
    write(&docs, DOCS);
    let out = dir.path().join("out.safetensors");
    let o = encode(&model, &docs, "document", &out);
    assert_clean_failure(&o, &["model.safetensors"]);
    assert!(!out.exists());
}

#[test]
fn wrong_tensor_shape_is_named_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(model.join("1_Dense")).unwrap();
    for f in std::fs::read_dir(tiny_model()).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, model.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(
        tiny_model().join("1_Dense/config.json"),
        model.join("1_Dense/config.json"),
    )
    .unwrap();
    // A projection of the wrong input width.
    let w = vec![0u8; 4 * 7 * 5];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![7, 5], &w).unwrap();
    let bytes = safetensors::tensor::serialize([("linear.weight", view)], None).unwrap();
    std::fs::write(model.join("1_Dense/model.safetensors"), bytes).unwrap();
    let docs = dir.path().join("docs.jsonl");
    write(&docs, DOCS);
    let out = dir.path().join("out.safetensors");
    let o = encode(&model, &docs, "document", &out);
    assert_clean_failure(&o, &["linear.weight", "[7, 5]"]);
    assert!(!out.exists());
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn metrics_command_matches_pytrec_eval_fixture() {
    let fx = colzero_core::testing::repo_path("crates/eval/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let o = run(bin()
        .args(["metrics", "--qrels"])
        .arg(colzero_core::testing::shared_path(
            "data/beir/scifact/qrels/test.tsv",
        ))
        .arg("--run")
        .arg(fx.join("scifact_bm25.trec"))
        .args(["--metrics", "ndcg@10", "--output"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("scifact_expected.json")).unwrap()).unwrap();
    let w = want["mean"]["ndcg@10"]
        .as_f64()
        .expect("fixture has ndcg@10");
    let g = got["ndcg@10"].as_f64().unwrap();
    assert!((g - w).abs() < 1e-6, "{g} vs {w}");
}

#[test]
fn plaid_index_build_delete_and_search_keep_ids() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    write(&docs, DOCS);
    let idx = dir.path().join("idx");
    let o = run(bin()
        .args(["index", "build", "--model"])
        .arg(tiny_model())
        .arg("--corpus")
        .arg(&docs)
        .arg("--out")
        .arg(&idx)
        .args(["--nbits", "4"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin()
        .args(["index", "delete", "--index"])
        .arg(&idx)
        .args(["--ids", "d1"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin()
        .args(["search", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(&idx)
        .args(["--query", "stem cells", "-k", "5"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["d2", "d3"], "{out}");
    // the f32 rerank: same documents, scores within the 8-bit rounding
    let o = run(bin()
        .args(["search", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(&idx)
        .args(["--query", "stem cells", "-k", "5", "--f32-rerank"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out32 = String::from_utf8_lossy(&o.stdout);
    let hits = |s: &str| -> Vec<(String, f32)> {
        s.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.get(2)?.to_string(), f.get(1)?.parse().ok()?))
            })
            .collect()
    };
    let (h8, h32) = (hits(&out), hits(&out32));
    assert_eq!(h8.len(), 2, "{out}");
    for ((id8, s8), (id32, s32)) in h8.iter().zip(&h32) {
        assert_eq!(id8, id32, "{out} vs {out32}");
        assert!((s8 - s32).abs() < 1e-2, "{out} vs {out32}");
    }
    let o = run(bin().args(["index", "info", "--json", "--index"]).arg(&idx));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["num_documents"], 2);
    assert_eq!(info["num_deleted"], 1);
}

/// A three-document BEIR directory with two judged test queries.
fn tiny_beir(dir: &Path) -> PathBuf {
    let ds = dir.join("beir");
    std::fs::create_dir_all(ds.join("qrels")).unwrap();
    write(
        &ds.join("corpus.jsonl"),
        r#"{"_id": "d1", "title": "Stem cells", "text": "Stem cells can become many kinds of cells."}
{"_id": "d2", "title": "", "text": "The stock market fell sharply on Monday."}
{"_id": "d3", "title": "Vitamin D", "text": "Vitamin D deficiency is linked to bone loss."}
"#,
    );
    write(
        &ds.join("queries.jsonl"),
        r#"{"_id": "q1", "text": "what can stem cells become"}
{"_id": "q2", "text": "vitamin d and bones"}
"#,
    );
    write(
        &ds.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n",
    );
    ds
}

#[test]
fn eval_saved_embeddings_reproduce_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let ds = tiny_beir(dir.path());
    let first = dir.path().join("first");
    let o = run(bin()
        .args(["eval", "--model"])
        .arg(tiny_model())
        .arg("--dataset")
        .arg(&ds)
        .arg("--output")
        .arg(&first)
        .arg("--save-embeddings"));
    assert!(o.status.success(), "{}", stderr(&o));
    let docs = colzero_core::EmbeddingStore::open(&first.join("documents.safetensors")).unwrap();
    let mut ids = docs.ids().to_vec();
    ids.sort();
    assert_eq!(ids, ["d1", "d2", "d3"]);
    let queries = colzero_core::EmbeddingStore::open(&first.join("queries.safetensors")).unwrap();
    assert_eq!(queries.len(), 2);

    // Re-evaluating from the stored documents gives the identical run and metrics.
    let second = dir.path().join("second");
    let o = run(bin()
        .args(["eval", "--model"])
        .arg(tiny_model())
        .arg("--dataset")
        .arg(&ds)
        .arg("--output")
        .arg(&second)
        .arg("--embeddings")
        .arg(first.join("documents.safetensors")));
    assert!(o.status.success(), "{}", stderr(&o));
    let a = std::fs::read_to_string(first.join("run.trec")).unwrap();
    let b = std::fs::read_to_string(second.join("run.trec")).unwrap();
    assert_eq!(a.lines().count(), 6, "{a}");
    assert_eq!(a, b);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(second.join("metrics.json")).unwrap()).unwrap();
    let ndcg = m["ndcg@10"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ndcg) && ndcg > 0.0, "{m}");

    // A store that lacks a corpus document is refused, naming the store and the id.
    let partial = dir.path().join("partial.jsonl");
    write(
        &partial,
        r#"{"id": "d1", "text": "Stem cells can become many kinds of cells."}"#,
    );
    let store = dir.path().join("partial.safetensors");
    assert!(encode(tiny_model(), &partial, "document", &store)
        .status
        .success());
    let o = run(bin()
        .args(["eval", "--model"])
        .arg(tiny_model())
        .arg("--dataset")
        .arg(&ds)
        .arg("--output")
        .arg(dir.path().join("third"))
        .arg("--embeddings")
        .arg(&store));
    assert_clean_failure(&o, &["partial.safetensors", "\"d2\""]);
}
