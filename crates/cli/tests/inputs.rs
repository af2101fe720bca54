//! Issue 16, "nothing lost, nothing mixed": inputs that used to give silently wrong
//! numbers (or hang) are recognised or refused with a clear error — TREC qrels with a
//! header, an index of another corpus, query stores used as documents, stores of another
//! model, zero counts, absurd thread counts, piped corpora read twice, TOML errors.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::{beir, colzero, s};

fn tiny_model() -> PathBuf {
    support::repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit status 1 (a refused input), no panic, the message holds every `needle`.
fn refused(o: &Output, needles: &[&str]) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks {n:?}: {e}");
    }
}

fn succeeded(o: &Output) -> String {
    let e = err(o);
    assert!(o.status.success(), "{e}");
    e
}

fn encode(model: &Path, input: &Path, kind: &str, out: &Path) {
    succeeded(&colzero(&[
        "encode",
        "--model",
        s(model),
        "--input",
        s(input),
        "--kind",
        kind,
        "--output",
        s(out),
    ]));
}

const DOCS: &str = r#"{"id": "d1", "text": "Stem cells can become many kinds of cells."}
{"id": "d2", "text": "The stock market fell sharply on Monday."}
{"id": "d3", "text": "Vitamin D deficiency is linked to bone loss."}
"#;

#[test]
fn metrics_read_trec_qrels_with_a_header_by_the_right_columns() {
    let dir = tempfile::tempdir().unwrap();
    // numeric document ids: read as BEIR, `0` became the document and `17` the score
    let qrels = dir.path().join("qrels.txt");
    std::fs::write(
        &qrels,
        "\u{feff}query-id 0 corpus-id score\nq1 0 17 1\nq2 0 4 1\n",
    )
    .unwrap();
    let run = dir.path().join("run.trec");
    std::fs::write(
        &run,
        "q1 Q0 17 1 2.0 t\nq1 Q0 4 2 1.0 t\nq2 Q0 17 1 2.0 t\nq2 Q0 4 2 1.0 t\n",
    )
    .unwrap();
    let out = dir.path().join("m.json");
    succeeded(&colzero(&[
        "metrics",
        "--qrels",
        s(&qrels),
        "--run",
        s(&run),
        "--metrics",
        "mrr@10,ndcg@10",
        "--output",
        s(&out),
    ]));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // q1: relevant at rank 1 (RR 1); q2: relevant at rank 2 (RR 0.5)
    assert_eq!(m["mrr@10"].as_f64(), Some(0.75), "{m}");
    let ndcg = (1.0 + 1.0 / 3f64.log2()) / 2.0;
    assert!((m["ndcg@10"].as_f64().unwrap() - ndcg).abs() < 1e-9, "{m}");

    // a 5-column file is neither format: refused, naming file and line
    std::fs::write(&qrels, "q1 0 17 1 x\n").unwrap();
    let o = colzero(&["metrics", "--qrels", s(&qrels), "--run", s(&run)]);
    refused(&o, &["qrels.txt:1: cannot tell the qrels format"]);
}

#[test]
fn eval_refuses_an_index_built_from_another_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("beir");
    beir(&ds);
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, DOCS).unwrap();
    let idx = dir.path().join("idx");
    succeeded(&colzero(&[
        "index",
        "build",
        "--model",
        s(&tiny_model()),
        "--corpus",
        s(&docs),
        "--out",
        s(&idx),
    ]));
    let o = colzero(&[
        "eval",
        "--model",
        s(&tiny_model()),
        "--dataset",
        s(&ds),
        "--index",
        s(&idx),
        "--output",
        s(&dir.path().join("out")),
    ]);
    refused(
        &o,
        &[
            "index",
            "holds 3 documents",
            "has 12",
            "12 corpus ids are not in it (e.g. `cats`, `dogs`, `vaccine`)",
            "3 of its ids are not in the corpus (e.g. `d1`, `d2`, `d3`)",
        ],
    );
    assert!(!dir.path().join("out/metrics.json").exists());

    // an index of the dataset's own corpus passes the check and evaluates
    let own = dir.path().join("own");
    succeeded(&colzero(&[
        "index",
        "build",
        "--model",
        s(&tiny_model()),
        "--corpus",
        s(&ds),
        "--out",
        s(&own),
    ]));
    succeeded(&colzero(&[
        "eval",
        "--model",
        s(&tiny_model()),
        "--dataset",
        s(&ds),
        "--index",
        s(&own),
        "--output",
        s(&dir.path().join("out")),
    ]));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/metrics.json")).unwrap())
            .unwrap();
    assert!(m["ndcg@10"].as_f64().unwrap() > 0.0, "{m}");
}

#[test]
fn a_query_store_is_refused_where_documents_are_expected() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, DOCS).unwrap();
    let q = dir.path().join("q.safetensors");
    encode(&tiny_model(), &docs, "query", &q);
    let store = colzero_core::EmbeddingStore::open(&q).unwrap();
    assert_eq!(store.kind(), Some("query"));
    assert_eq!(
        store.model_fingerprint(),
        Some(
            colzero_model::model_fingerprint(&tiny_model())
                .unwrap()
                .as_str()
        )
    );
    let needles = [
        "q.safetensors",
        "holds query embeddings",
        "needs document embeddings",
    ];
    let o = colzero(&[
        "search",
        "--model",
        s(&tiny_model()),
        "--embeddings",
        s(&q),
        "--query",
        "stem cells",
    ]);
    refused(&o, &needles);
    let o = colzero(&[
        "index",
        "build",
        "--embeddings",
        s(&q),
        "--out",
        s(&dir.path().join("idx")),
    ]);
    refused(&o, &needles);
    assert!(!dir.path().join("idx").exists());
    let ds = dir.path().join("beir");
    beir(&ds);
    let o = colzero(&[
        "eval",
        "--model",
        s(&tiny_model()),
        "--dataset",
        s(&ds),
        "--embeddings",
        s(&q),
        "--output",
        s(&dir.path().join("out")),
    ]);
    refused(&o, &needles);
}

/// A copy of the tiny model with one projection weight changed: another model.
fn other_model(dir: &Path) -> PathBuf {
    let m = dir.join("other-model");
    copy_dir(&tiny_model(), &m);
    let w = m.join("1_Dense/model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let at = bytes.len() - 8;
    let v = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + 0.25;
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    std::fs::write(&w, bytes).unwrap();
    m
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_store_of_another_model_is_refused_and_an_old_store_is_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, DOCS).unwrap();
    let other = other_model(dir.path());
    let d = dir.path().join("d.safetensors");
    encode(&other, &docs, "document", &d);
    let o = colzero(&[
        "search",
        "--model",
        s(&tiny_model()),
        "--embeddings",
        s(&d),
        "--query",
        "stem cells",
    ]);
    refused(
        &o,
        &[
            "d.safetensors",
            "was encoded by another model",
            "other-model",
            "tiny-bert-colbert",
        ],
    );
    // the same model that wrote it is fine
    succeeded(&colzero(&[
        "search",
        "--model",
        s(&other),
        "--embeddings",
        s(&d),
        "--query",
        "stem cells",
    ]));

    // a store written before the metadata existed: accepted, with a warning
    let store = colzero_core::EmbeddingStore::open(&d).unwrap();
    let mut w = colzero_core::StoreWriter::new();
    for (id, mv) in store.load_all().unwrap() {
        w.push(id, mv).unwrap();
    }
    let old = dir.path().join("old.safetensors");
    w.write(&old).unwrap();
    let o = colzero(&[
        "search",
        "--model",
        s(&tiny_model()),
        "--embeddings",
        s(&old),
        "--query",
        "stem cells",
        "-k",
        "2",
    ]);
    let e = succeeded(&o);
    assert!(
        e.contains("warning:") && e.contains("old.safetensors has no colzero.kind"),
        "{e}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
}

#[test]
fn zero_counts_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, DOCS).unwrap();
    let m = tiny_model();
    let e = dir.path().join("e.safetensors");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "search",
            "--model",
            s(&m),
            "--embeddings",
            s(&e),
            "--query",
            "x",
            "-k",
            "0",
        ],
        vec![
            "eval",
            "--model",
            s(&m),
            "--dataset",
            "d",
            "--output",
            "o",
            "--top-k",
            "0",
        ],
        vec![
            "encode",
            "--model",
            s(&m),
            "--input",
            s(&docs),
            "--kind",
            "query",
            "--output",
            "o",
            "--batch-size",
            "0",
        ],
        vec![
            "index",
            "build",
            "--embeddings",
            s(&e),
            "--out",
            "o",
            "--chunk-docs",
            "0",
        ],
        vec!["--threads", "0", "metrics", "--qrels", "q", "--run", "r"],
        vec![
            "search",
            "--model",
            s(&m),
            "--index",
            "i",
            "--query",
            "x",
            "--n-probe",
            "0",
        ],
        vec![
            "data",
            "mine",
            "--dataset",
            "d",
            "--out",
            "o",
            "--negatives",
            "0",
        ],
    ];
    for args in cases {
        let o = colzero(&args);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains("must be at least 1"), "{args:?}: {e}");
    }
    let o = colzero(&[
        "search",
        "--model",
        s(&m),
        "--embeddings",
        s(&e),
        "--query",
        "x",
        "-k",
        "-3",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

#[test]
fn thread_counts_above_the_cpus_are_lowered_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let qrels = dir.path().join("q.tsv");
    std::fs::write(&qrels, "q1\td1\t1\n").unwrap();
    let run = dir.path().join("r.trec");
    std::fs::write(&run, "q1 Q0 d1 1 1.0 t\n").unwrap();
    let o = colzero(&[
        "--threads",
        "20000",
        "metrics",
        "--qrels",
        s(&qrels),
        "--run",
        s(&run),
    ]);
    let e = succeeded(&o);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(
        e.contains(&format!(
            "note: --threads 20000: this machine has {cpus} CPUs; using {cpus} threads"
        )),
        "{e}"
    );
}

#[test]
fn a_piped_corpus_is_refused_by_index_build_which_reads_it_twice() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("corpus.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let o = colzero(&[
        "index",
        "build",
        "--model",
        s(&tiny_model()),
        "--corpus",
        s(&fifo),
        "--out",
        s(&dir.path().join("idx")),
    ]);
    refused(
        &o,
        &[
            "corpus.fifo",
            "not a regular file",
            "reads the corpus twice",
        ],
    );
}

#[test]
fn toml_errors_are_located_by_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stage.toml");
    std::fs::write(&cfg, "[model]\npath = \"m\"\n[train]\n  steps = \"ten\"\n").unwrap();
    let o = colzero(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&dir.path().join("run")),
    ]);
    refused(&o, &["stage.toml:4:11: invalid type"]);
    std::fs::write(&cfg, b"[model]\npath = \"m\xff\"\n").unwrap();
    let o = colzero(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&dir.path().join("run")),
    ]);
    refused(&o, &["stage.toml:2: invalid UTF-8"]);
}
