//! `colzero data {pairs,mine}` end to end: the built binary runs on tiny temp data and its
//! outputs are read back with colzero-train's own readers (`PairDataset`). `teacher` is in
//! `teacher.rs`. The model-ranked miner uses the real all-MiniLM-L6-v2 (../shared via
//! colzero_core::testing; missing data panics).

mod data_common;
mod support;

use colzero_core::testing::minilm_dir;
use colzero_index::bm25::{Analyzer, Bm25Index, Bm25Params};
use colzero_train::data::PairDataset;
use data_common::{beir, fails, mine, ok, s, write};
use std::collections::HashSet;

#[test]
fn pairs_from_beir_use_only_corpus_text_and_load_in_the_trainer() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    beir(&ds);
    // make the non-corpus files unreadable as JSON: any read of them would fail
    let poison = "{ this is not json\n";
    let q = std::fs::read_to_string(ds.join("queries.jsonl")).unwrap();
    write(&ds, "queries.jsonl", &format!("{poison}{q}"));
    let out = tmp.path().join("pairs.jsonl");
    let err = ok(&[
        "data",
        "pairs",
        "--corpus",
        s(&ds),
        "--out",
        s(&out),
        "--source",
        "toy",
        "--min-chars",
        "5",
    ]);
    assert!(err.contains("wrote 5 pairs"), "{err}");
    assert!(
        err.contains("1 without `title`") && err.contains("1 duplicates"),
        "{err}"
    );
    let data = PairDataset::open(&out, 0).unwrap();
    assert_eq!(data.sources.len(), 1);
    assert_eq!(data.sources[0].name, "toy");
    assert_eq!(data.sizes(), [5]);
    let corpus = std::fs::read_to_string(ds.join("corpus.jsonl")).unwrap();
    let mut titles = Vec::new();
    for i in 0..5 {
        let ex = data.example(0, i).unwrap();
        assert!(
            corpus.contains(&format!("\"title\":\"{}\"", ex.query)),
            "{ex:?}"
        );
        assert!(
            corpus.contains(&format!("\"text\":\"{}\"", ex.positive)),
            "{ex:?}"
        );
        assert!(ex.negatives.is_empty());
        titles.push(ex.query);
    }
    assert_eq!(titles, ["Cats", "Dogs", "Vaccines", "Volcanoes", "Rivers"]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("SECRET") && !text.contains("which domestic"));

    // seeded shuffle: reproducible, a permutation of the same rows
    let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    for p in [&a, &b] {
        ok(&[
            "data",
            "pairs",
            "--corpus",
            s(&ds),
            "--out",
            s(p),
            "--seed",
            "7",
        ]);
    }
    let (ta, tb) = (
        std::fs::read_to_string(&a).unwrap(),
        std::fs::read_to_string(&b).unwrap(),
    );
    assert_eq!(ta, tb);
    let set = |t: &str| t.lines().map(str::to_string).collect::<HashSet<_>>();
    let plain = tmp.path().join("plain.jsonl");
    ok(&["data", "pairs", "--corpus", s(&ds), "--out", s(&plain)]);
    let tp = std::fs::read_to_string(&plain).unwrap();
    assert_eq!(set(&ta), set(&tp));
    assert_eq!(tp.lines().count(), 6, "--min-chars 1 keeps the Pianos row");
    assert_ne!(ta, tp);
}

#[test]
fn pairs_from_jsonl_fields_and_errors_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let src = write(
        tmp.path(),
        "qa.jsonl",
        "{\"question\":\"What is BM25?\",\"answer\":\"A bag-of-words ranking function.\"}\n\
         {\"question\":\"  \",\"answer\":\"no question\"}\n\
         {\"question\":\"What is ColBERT?\",\"answer\":\"A late-interaction retriever.\"}\n",
    );
    let out = tmp.path().join("out/pairs.jsonl");
    let args = [
        "data",
        "pairs",
        "--corpus",
        s(&src),
        "--out",
        s(&out),
        "--query-field",
        "question",
        "--positive-field",
        "answer",
    ];
    ok(&args);
    let data = PairDataset::open(&out, 0).unwrap();
    assert_eq!(data.sizes(), [2]);
    assert_eq!(data.sources[0].name, "default");
    let ex = data.example(0, 1).unwrap();
    assert_eq!(ex.query, "What is ColBERT?");
    assert_eq!(ex.positive, "A late-interaction retriever.");

    std::fs::remove_file(&out).unwrap();
    write(
        tmp.path(),
        "qa.jsonl",
        "{\"question\":\"a\",\"answer\":\"b\"}\n{\"question\":\"a\",\n",
    );
    let err = fails(&args);
    assert!(err.contains("qa.jsonl:2: invalid JSON"), "{err}");
    assert!(!out.exists());
    write(
        tmp.path(),
        "qa.jsonl",
        "{\"question\":\"a\",\"answer\":3}\n",
    );
    let err = fails(&args);
    assert!(
        err.contains("qa.jsonl:1: field `answer` must be a string"),
        "{err}"
    );
    assert!(!out.exists());
    std::fs::write(&src, "{\"title\":\"a\",\"text\":\"b\"}\n").unwrap();
    let err = fails(&args);
    assert!(err.contains("no pairs"), "{err}");
    assert!(!out.exists());
}

#[test]
fn mine_bm25_excludes_every_relevant_doc_and_skips_top() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    beir(&ds);
    let out = tmp.path().join("triplets.jsonl");
    let err = ok(&mine(
        &ds,
        &out,
        &["--split", "train", "--negatives", "2", "--source", "toy"],
    ));
    assert!(err.contains("wrote 3 triplets"), "{err}");
    let data = PairDataset::open(&out, 2).unwrap();
    assert_eq!(data.sources[0].name, "toy");
    assert_eq!(data.sizes(), [3]);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // q1 has two relevant docs (d1: 1, d6: 2; d2 judged 0 is a valid negative), q2 has d3
    let pos: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["query_id"].as_str().unwrap(),
                r["positive_id"].as_str().unwrap(),
            )
        })
        .collect();
    // rows: per query, positives by relevance desc then id
    assert_eq!(pos, [("q1", "d6"), ("q1", "d1"), ("q2", "d3")]);
    // the expected ranking, straight from the (golden-tested) BM25 index
    let corpus = colzero_eval::BeirDataset::load(&ds, "train").unwrap();
    let bm25 = Bm25Index::build(
        corpus.documents(),
        Analyzer::default(),
        Bm25Params::default(),
    )
    .unwrap();
    for (i, r) in rows.iter().enumerate() {
        let negs: Vec<&str> = r["negative_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let qtext = r["query"].as_str().unwrap();
        let relevant: &[&str] = if r["query_id"] == "q1" {
            &["d1", "d6"]
        } else {
            &["d3"]
        };
        let want: Vec<String> = bm25
            .search(qtext, 10)
            .into_iter()
            .map(|h| h.id)
            .filter(|d| !relevant.contains(&d.as_str()))
            .take(2)
            .collect();
        assert_eq!(negs, want, "row {i}");
        let ex = data.example(0, i).unwrap();
        assert_eq!(ex.negatives.len(), 2);
        if r["query_id"] == "q1" {
            // "which domestic animals purr": d2 matches two terms, d5 one, nothing else
            assert_eq!(negs, ["d2", "d5"]);
            assert!(
                ex.negatives[0].starts_with("Dogs Dogs are loyal"),
                "{:?}",
                ex.negatives
            );
        }
    }
    let skipped = tmp.path().join("skip.jsonl");
    ok(&mine(
        &ds,
        &skipped,
        &["--negatives", "1", "--skip-top", "1"],
    ));
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&skipped)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        first["negative_ids"],
        serde_json::json!(["d5"]),
        "skip-top 1 drops d2"
    );
    assert!(first.get("source").is_none());

    let capped = tmp.path().join("capped.jsonl");
    let err = ok(&mine(
        &ds,
        &capped,
        &["--negatives", "2", "--max-positives", "1"],
    ));
    assert!(err.contains("wrote 2 triplets"), "{err}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&capped)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["positive_id"], "d6");
    // the uncapped relevant d1 is still never a negative
    assert_eq!(rows[0]["negative_ids"], serde_json::json!(["d2", "d5"]));

    let err = fails(&mine(&ds, &skipped, &["--split", "test"]));
    assert!(err.contains("refusing to mine the `test` split"), "{err}");
    // only two BM25 candidates exist per query: three negatives drop every pair
    let err = fails(&mine(&ds, &skipped, &["--negatives", "3"]));
    assert!(err.contains("no triplets: 3 judged pairs"), "{err}");
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn mine_with_a_model_ranks_by_the_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    beir(&ds);
    let out = tmp.path().join("m.jsonl");
    let minilm = minilm_dir();
    ok(&mine(
        &ds,
        &out,
        &[
            "--negatives",
            "2",
            "--method",
            "model",
            "--model",
            s(&minilm),
        ],
    ));
    let data = PairDataset::open(&out, 2).unwrap();
    assert_eq!(data.sizes(), [3]);
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let negs = first["negative_ids"].as_array().unwrap();
    assert!(!negs.contains(&"d1".into()) && !negs.contains(&"d6".into()));
    // MiniLM puts the other domestic-animal documents first
    let top: HashSet<&str> = negs.iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(top, HashSet::from(["d2", "d5"]), "{negs:?}");
    let err = fails(&mine(&ds, &out, &["--method", "model"]));
    assert!(err.contains("--method model needs --model"), "{err}");
}
