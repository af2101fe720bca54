//! `colzero data {pairs,mine,teacher}` end to end: the built binary runs on tiny temp data
//! and its outputs are read back with colzero-train's own readers (`PairDataset`,
//! `KdDataset`). Teacher scores are checked against `colzero encode` + MaxSim on the real
//! all-MiniLM-L6-v2 (../shared via colzero_core::testing; missing data panics).

use colzero_core::testing::minilm_dir;
use colzero_core::{maxsim, EmbeddingStore};
use colzero_index::bm25::{Analyzer, Bm25Index, Bm25Params};
use colzero_train::data::{KdDataset, PairDataset};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn colzero(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colzero"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run colzero")
}

fn ok(args: &[&str]) -> String {
    let o = colzero(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "colzero {args:?} failed:\n{err}");
    err
}

fn fails(args: &[&str]) -> String {
    let o = colzero(args);
    assert!(!o.status.success(), "colzero {args:?} should fail");
    assert_eq!(o.status.code(), Some(1));
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A BEIR directory: 8 documents about distinct topics, train and test qrels.
fn beir(dir: &Path) {
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
    let err = ok(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--split",
        "train",
        "--out",
        s(&out),
        "--negatives",
        "2",
        "--source",
        "toy",
    ]);
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
    ok(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--out",
        s(&skipped),
        "--negatives",
        "1",
        "--skip-top",
        "1",
    ]);
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
    let err = ok(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--out",
        s(&capped),
        "--negatives",
        "2",
        "--max-positives",
        "1",
    ]);
    assert!(err.contains("wrote 2 triplets"), "{err}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&capped)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["positive_id"], "d6");
    // the uncapped relevant d1 is still never a negative
    assert_eq!(rows[0]["negative_ids"], serde_json::json!(["d2", "d5"]));

    let err = fails(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--split",
        "test",
        "--out",
        s(&skipped),
    ]);
    assert!(err.contains("refusing to mine the `test` split"), "{err}");
    // only two BM25 candidates exist per query: three negatives drop every pair
    let err = fails(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--out",
        s(&skipped),
        "--negatives",
        "3",
    ]);
    assert!(err.contains("no triplets: 3 judged pairs"), "{err}");
}

fn store(path: &Path) -> Vec<(String, colzero_core::MultiVector)> {
    EmbeddingStore::open(path).unwrap().load_all().unwrap()
}

#[test]
fn teacher_scores_equal_encode_plus_maxsim_and_load_as_kd_data() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    beir(&ds);
    let model = minilm_dir();
    let triplets = tmp.path().join("t.jsonl");
    ok(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--out",
        s(&triplets),
        "--negatives",
        "2",
    ]);
    // dense teacher from the triplet file
    let kd = tmp.path().join("kd");
    ok(&[
        "data",
        "teacher",
        "--model",
        s(&model),
        "--triplets",
        s(&triplets),
        "--out",
        s(&kd),
        "--n-ways",
        "3",
    ]);
    let data = KdDataset::open(&kd, 3).unwrap();
    assert_eq!(data.sizes(), [3]);
    let ex = data.example(0).unwrap();
    assert_eq!(ex.query, "which domestic animals purr");
    assert!(
        ex.documents[0].starts_with("Cats Cats are small"),
        "positive first"
    );
    assert_eq!(ex.documents.len(), 3);

    // the same scores from `colzero encode` + MaxSim (dense: dot of normalised vectors)
    let queries = write(
        tmp.path(),
        "q.jsonl",
        "{\"id\":\"q\",\"text\":\"which domestic animals purr\"}\n",
    );
    let docs: String = ex
        .documents
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "{}\n",
                serde_json::json!({"id": format!("d{i}"), "text": t})
            )
        })
        .collect();
    let docs = write(tmp.path(), "d.jsonl", &docs);
    let (qe, de) = (
        tmp.path().join("q.safetensors"),
        tmp.path().join("d.safetensors"),
    );
    ok(&[
        "encode",
        "--model",
        s(&model),
        "--input",
        s(&queries),
        "--kind",
        "query",
        "--output",
        s(&qe),
    ]);
    ok(&[
        "encode",
        "--model",
        s(&model),
        "--input",
        s(&docs),
        "--kind",
        "document",
        "--output",
        s(&de),
    ]);
    let q = &store(&qe)[0].1;
    let d = store(&de);
    assert_eq!(q.n_tokens(), 1, "dense model: one vector");
    for (i, score) in ex.scores.iter().enumerate() {
        let want = maxsim(
            q,
            &d.iter().find(|(id, _)| id == &format!("d{i}")).unwrap().1,
        );
        assert!(
            (score - want).abs() < 1e-5,
            "doc {i}: teacher {score} encode {want}"
        );
    }
    // cosine similarities of distinct texts (MiniLM ranks the cats-and-dogs note d5 above
    // the positive here: a teacher is scored, not assumed right)
    assert!(
        ex.scores[0] != ex.scores[1] && ex.scores[0] != ex.scores[2],
        "{:?}",
        ex.scores
    );
    assert!(ex.scores.iter().all(|s| s.abs() <= 1.0 + 1e-5));

    // fused with BM25 and sharpened: (cosine + W * BM25 / the row's best BM25) / T, with
    // BM25 statistics over the KD folder's distinct documents
    let fused = tmp.path().join("kd-fused");
    let err = ok(&[
        "data",
        "teacher",
        "--model",
        s(&model),
        "--triplets",
        s(&triplets),
        "--out",
        s(&fused),
        "--n-ways",
        "3",
        "--bm25-weight",
        "0.5",
        "--temperature",
        "0.25",
    ]);
    assert!(err.contains("ranks the positive first in"), "{err}");
    assert!(err.contains("by the model alone"), "{err}");
    let docs: Vec<(String, String)> = std::fs::read_to_string(fused.join("documents.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["document_id"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let bm25 = Bm25Index::build(docs.clone(), Analyzer::default(), Bm25Params::default()).unwrap();
    let fdata = KdDataset::open(&fused, 3).unwrap();
    let fex = fdata.example(0).unwrap();
    assert_eq!(fex.documents, ex.documents);
    let b: Vec<f32> = fex
        .documents
        .iter()
        .map(|t| {
            let id = &docs.iter().find(|(_, x)| x == t).unwrap().0;
            bm25.score(&fex.query, id).unwrap()
        })
        .collect();
    let best = b.iter().copied().fold(0.0f32, f32::max);
    assert!(best > 0.0, "the positive shares words with the query");
    for (i, ((&raw, &bm), &got)) in ex.scores.iter().zip(&b).zip(&fex.scores).enumerate() {
        let want = (raw + 0.5 * bm / best) / 0.25;
        assert!(
            (got - want).abs() < 1e-4,
            "doc {i}: fused {got} want {want}"
        );
    }
    let bad = colzero(&[
        "data",
        "teacher",
        "--model",
        s(&model),
        "--triplets",
        s(&triplets),
        "--out",
        s(&tmp.path().join("kd-bad")),
        "--temperature",
        "0",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--temperature must be > 0"));
    assert!(!tmp.path().join("kd-bad").exists(), "nothing written");

    // ColBERT teacher mined from the dataset directly; MaxSim <= query length
    let colbert = tmp.path().join("colbert");
    ok(&[
        "convert",
        "--from",
        s(&model),
        "--out",
        s(&colbert),
        "--dim",
        "64",
        "--query-length",
        "16",
    ]);
    let kd2 = tmp.path().join("kd2");
    ok(&[
        "data",
        "teacher",
        "--model",
        s(&colbert),
        "--dataset",
        s(&ds),
        "--out",
        s(&kd2),
        "--n-ways",
        "3",
    ]);
    let data = KdDataset::open(&kd2, 3).unwrap();
    assert_eq!(data.sizes(), [3]);
    for i in 0..3 {
        let ex = data.example(i).unwrap();
        assert_eq!(ex.documents.len(), 3);
        assert!(
            ex.scores.iter().all(|&s| s > 0.0 && s <= 16.0 + 1e-3),
            "{:?}",
            ex.scores
        );
    }
    let ids: Vec<String> = std::fs::read_to_string(kd2.join("queries.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["query_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["q0", "q1"]);

    // bad triplet line: file:line error, the old KD directory is untouched
    write(
        tmp.path(),
        "bad.jsonl",
        "{\"query\":\"a\",\"positive\":\"b\",\"negatives\":[\"c\"]}\n{\"query\":\"a\"}\n",
    );
    let before = std::fs::read_to_string(kd.join("train.jsonl")).unwrap();
    let err = fails(&[
        "data",
        "teacher",
        "--model",
        s(&model),
        "--triplets",
        s(&tmp.path().join("bad.jsonl")),
        "--out",
        s(&kd),
    ]);
    assert!(err.contains("bad.jsonl:2:"), "{err}");
    assert_eq!(
        std::fs::read_to_string(kd.join("train.jsonl")).unwrap(),
        before
    );
}

#[test]
fn mine_with_a_model_ranks_by_the_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    beir(&ds);
    let out = tmp.path().join("m.jsonl");
    ok(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--out",
        s(&out),
        "--negatives",
        "2",
        "--method",
        "model",
        "--model",
        s(&minilm_dir()),
    ]);
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
    let err = fails(&[
        "data",
        "mine",
        "--dataset",
        s(&ds),
        "--out",
        s(&out),
        "--method",
        "model",
    ]);
    assert!(err.contains("--method model needs --model"), "{err}");
}
