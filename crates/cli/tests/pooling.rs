//! `--pool-factor` on `index build` / `index add`: the stored token count shrinks as
//! PyLate's pooling says (first token kept, `max((n-1)/f, 1)` pooled vectors per
//! document), the same for text and for precomputed embeddings, and search still works.

use colzero_core::pool::pool_tokens;
use colzero_core::EmbeddingStore;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colzero"));
    c.arg("--quiet").arg("--threads").arg("1");
    c
}

fn tiny_model() -> PathBuf {
    colzero_core::testing::repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

fn run(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tokens(idx: &Path) -> u64 {
    let out = run(bin().args(["index", "info", "--json", "--index"]).arg(idx));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["num_tokens"].as_u64().unwrap()
}

#[test]
fn pool_factor_shrinks_documents_like_pylate() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    let mut s = String::new();
    for i in 0..12 {
        s.push_str(&format!(
            "{{\"id\": \"d{i}\", \"text\": \"stem cells and bone marrow {i} grow into many kinds of tissue over weeks\"}}\n"
        ));
    }
    std::fs::write(&docs, s).unwrap();
    let store = dir.path().join("docs.safetensors");
    run(bin()
        .args(["encode", "--model"])
        .arg(tiny_model())
        .arg("--input")
        .arg(&docs)
        .args(["--kind", "document", "--output"])
        .arg(&store));
    let embs = EmbeddingStore::open(&store).unwrap().load_all().unwrap();
    let full: u64 = embs.iter().map(|(_, e)| e.n_tokens() as u64).sum();
    let want: u64 = embs
        .iter()
        .map(|(_, e)| pool_tokens(e, 2, 1).n_tokens() as u64)
        .sum();
    assert!(want < full * 2 / 3, "{want} vs {full}");
    for (name, src) in [("text", None), ("store", Some(&store))] {
        let idx = dir.path().join(name);
        let mut c = bin();
        c.args(["index", "build", "--out"])
            .arg(&idx)
            .args(["--pool-factor", "2"]);
        match src {
            Some(st) => c.arg("--embeddings").arg(st),
            None => c
                .arg("--model")
                .arg(tiny_model())
                .arg("--corpus")
                .arg(&docs),
        };
        run(&mut c);
        assert_eq!(tokens(&idx), want, "{name}");
        let out = run(bin()
            .args(["search", "--model"])
            .arg(tiny_model())
            .arg("--index")
            .arg(&idx)
            .args(["--query", "bone marrow", "-k", "3"]));
        assert_eq!(out.lines().count(), 3, "{out}");
    }
    let o = bin()
        .args(["index", "build", "--embeddings"])
        .arg(&store)
        .arg("--out")
        .arg(dir.path().join("zero"))
        .args(["--pool-factor", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "clap rejects 0");
}
