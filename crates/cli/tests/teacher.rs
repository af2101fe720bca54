//! `colzero data teacher` end to end: KD folders are read back with colzero-train's
//! `KdDataset`, and teacher scores are checked against `colzero encode` + MaxSim on the
//! real all-MiniLM-L6-v2 (../shared via colzero_core::testing; missing data panics), raw,
//! fused with BM25 and sharpened.

mod data_common;
mod support;

use colzero_core::testing::minilm_dir;
use colzero_core::{maxsim, EmbeddingStore};
use colzero_index::bm25::{Analyzer, Bm25Index, Bm25Params};
use colzero_train::data::KdDataset;
use data_common::{beir, colzero, fails, mine, ok, s, teacher, write};
use std::path::Path;

fn store(path: &Path) -> Vec<(String, colzero_core::MultiVector)> {
    EmbeddingStore::open(path).unwrap().load_all().unwrap()
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn teacher_scores_equal_encode_plus_maxsim_and_load_as_kd_data() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    beir(&ds);
    let model = minilm_dir();
    let triplets = tmp.path().join("t.jsonl");
    ok(&mine(&ds, &triplets, &["--negatives", "2"]));
    // dense teacher from the triplet file
    let kd = tmp.path().join("kd");
    ok(&teacher(&model, &triplets, &kd, &["--n-ways", "3"]));
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
    let err = ok(&teacher(
        &model,
        &triplets,
        &fused,
        &[
            "--n-ways",
            "3",
            "--bm25-weight",
            "0.5",
            "--temperature",
            "0.25",
        ],
    ));
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
    let kd_bad = tmp.path().join("kd-bad");
    let bad = colzero(&teacher(
        &model,
        &triplets,
        &kd_bad,
        &["--temperature", "0"],
    ));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--temperature must be > 0"));
    assert!(!kd_bad.exists(), "nothing written");

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
    let bad_rows = tmp.path().join("bad.jsonl");
    let err = fails(&teacher(&model, &bad_rows, &kd, &[]));
    assert!(err.contains("bad.jsonl:2:"), "{err}");
    assert_eq!(
        std::fs::read_to_string(kd.join("train.jsonl")).unwrap(),
        before
    );
}
