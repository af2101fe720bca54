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
    let o = run(bin().args(["index", "info", "--json", "--index"]).arg(&idx));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["num_documents"], 2);
    assert_eq!(info["num_deleted"], 1);
}
