//! Helpers shared by the `colzero data` CLI tests (`data.rs`, `teacher.rs`), on top of
//! `support` (running the built binary): a failure with exit code 1, writing files, and an 8-document BEIR directory with train/test qrels.
#![allow(dead_code)]

pub use crate::support::{colzero, ok, s};
use std::path::{Path, PathBuf};

pub fn fails(args: &[&str]) -> String {
    let o = colzero(args);
    assert!(!o.status.success(), "colzero {args:?} should fail");
    assert_eq!(o.status.code(), Some(1));
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The arguments of `colzero data mine --dataset DS --out OUT`, then `extra`.
pub fn mine<'a>(ds: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["data", "mine", "--dataset", s(ds), "--out", s(out)];
    a.extend_from_slice(extra);
    a
}

/// The arguments of `colzero data teacher --model M --triplets T --out OUT`, then `extra`.
pub fn teacher<'a>(
    model: &'a Path,
    triplets: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "data",
        "teacher",
        "--model",
        s(model),
        "--triplets",
        s(triplets),
    ];
    a.extend_from_slice(&["--out", s(out)]);
    a.extend_from_slice(extra);
    a
}

pub fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// A BEIR directory: 8 documents about distinct topics, train and test qrels.
pub fn beir(dir: &Path) {
    let docs = [
        (
            "d1",
            "Cats",
            "Cats are small domestic felines that purr and sleep a lot.",
        ),
        (
            "d2",
            "Dogs",
            "Dogs are loyal domestic animals that bark and fetch balls.",
        ),
        (
            "d3",
            "Vaccines",
            "Vaccines train the immune system to fight viral infections.",
        ),
        (
            "d4",
            "Volcanoes",
            "Volcanoes erupt lava and ash when magma reaches the surface.",
        ),
        (
            "d5",
            "",
            "An untitled note about domestic cats and dogs living together.",
        ),
        (
            "d6",
            "Cats",
            "Cats are small domestic felines that purr and sleep a lot.",
        ),
        ("d7", "Pianos", "x"),
        (
            "d8",
            "Rivers",
            "Rivers carry fresh water from mountains to the sea.",
        ),
    ];
    let corpus: String = docs
        .iter()
        .map(|(id, t, x)| {
            format!(
                "{}\n",
                serde_json::json!({"_id": id, "title": t, "text": x, "metadata": {}})
            )
        })
        .collect();
    write(dir, "corpus.jsonl", &corpus);
    // queries.jsonl and the test qrels are poisoned: `pairs` must never open them
    write(
        dir,
        "queries.jsonl",
        "{\"_id\":\"q1\",\"text\":\"which domestic animals purr\"}\n\
         {\"_id\":\"q2\",\"text\":\"how do vaccines protect the body against viral infections\"}\n\
         {\"_id\":\"q3\",\"text\":\"SECRET TEST QUERY about domestic felines\"}\n",
    );
    write(
        dir,
        "qrels/train.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td6\t2\nq1\td2\t0\nq2\td3\t1\n",
    );
    write(
        dir,
        "qrels/test.tsv",
        "query-id\tcorpus-id\tscore\nq3\td1\t1\n",
    );
}
