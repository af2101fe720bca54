//! Shared helpers of the pipeline and ablate CLI tests: running the built binary, a tiny
//! generated BEIR set, the tiny BERT fixture as a dense sentence-transformers model, and
//! report.json accessors.
#![allow(dead_code)]

pub use colzero_core::testing::repo_path;
use std::path::Path;
use std::process::{Command, Output};

pub fn colzero(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_colzero"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run colzero")
}

pub fn ok(args: &[&str]) -> String {
    let o = colzero(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "colzero {args:?} failed:\n{err}");
    if std::env::var_os("COLZERO_TEST_VERBOSE").is_some() {
        eprintln!(
            "$ colzero {}\n{err}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout)
        );
    }
    err
}

pub fn fails(args: &[&str]) -> String {
    let o = colzero(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "colzero {args:?} should fail:\n{err}");
    err
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub const TOPICS: [(&str, &str, &str); 12] = [
    (
        "cats",
        "Cats",
        "Cats are small domestic felines that purr and sleep most of the day.",
    ),
    (
        "dogs",
        "Dogs",
        "Dogs are loyal domestic animals that bark, fetch balls and guard homes.",
    ),
    (
        "vaccine",
        "Vaccines",
        "Vaccines train the immune system to recognise and fight viral infections.",
    ),
    (
        "volcano",
        "Volcanoes",
        "Volcanoes erupt lava and ash when magma reaches the surface of the earth.",
    ),
    (
        "piano",
        "Pianos",
        "A piano is a keyboard instrument whose hammers strike tuned strings.",
    ),
    (
        "rain",
        "Rain",
        "Rain forms when water vapour condenses into droplets heavy enough to fall.",
    ),
    (
        "bread",
        "Bread",
        "Bread is baked from flour, water and yeast, which makes the dough rise.",
    ),
    (
        "moon",
        "The Moon",
        "The moon orbits the earth and its gravity causes the ocean tides.",
    ),
    (
        "coffee",
        "Coffee",
        "Coffee is brewed from roasted beans and contains caffeine, a stimulant.",
    ),
    (
        "chess",
        "Chess",
        "Chess is a board game in which two players move pieces to checkmate a king.",
    ),
    (
        "bees",
        "Bees",
        "Bees collect nectar and pollen from flowers and make honey in hives.",
    ),
    (
        "glacier",
        "Glaciers",
        "Glaciers are slow rivers of ice that carve valleys in mountains.",
    ),
];

pub const QUERIES: [(&str, &str, &str); 8] = [
    ("q1", "which pet purrs and sleeps a lot", "cats"),
    ("q2", "animal that barks and fetches", "dogs"),
    ("q3", "how does the immune system fight viruses", "vaccine"),
    ("q4", "what makes lava and ash erupt", "volcano"),
    ("q5", "instrument with hammers and strings", "piano"),
    ("q6", "why do ocean tides happen", "moon"),
    ("q7", "drink that contains caffeine", "coffee"),
    ("q8", "insects that make honey", "bees"),
];

/// A BEIR directory: 12 documents, 8 queries; train qrels on q1-q5, test on q6-q8 + q1.
pub fn beir(dir: &Path) {
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    let corpus: String = TOPICS
        .iter()
        .map(|(id, t, x)| serde_json::json!({"_id": id, "title": t, "text": x}).to_string() + "\n")
        .collect();
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    let queries: String = QUERIES
        .iter()
        .map(|(id, t, _)| serde_json::json!({"_id": id, "text": t}).to_string() + "\n")
        .collect();
    std::fs::write(dir.join("queries.jsonl"), queries).unwrap();
    let qrels = |ids: &[usize]| {
        let mut t = String::from("query-id\tcorpus-id\tscore\n");
        for &i in ids {
            t.push_str(&format!("{}\t{}\t1\n", QUERIES[i].0, QUERIES[i].2));
        }
        t
    };
    std::fs::write(dir.join("qrels/train.tsv"), qrels(&[0, 1, 2, 3, 4])).unwrap();
    std::fs::write(dir.join("qrels/test.tsv"), qrels(&[5, 6, 7, 0])).unwrap();
}

/// The tiny BERT fixture as a dense sentence-transformers model (mean pooling).
pub fn dense_model(dir: &Path) {
    let src = repo_path("crates/model/tests/fixtures/tiny-bert-colbert");
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let hidden = cfg["hidden_size"].as_u64().unwrap();
    std::fs::write(
        dir.join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        format!(r#"{{"word_embedding_dimension": {hidden}, "pooling_mode_mean_tokens": true}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        r#"{"max_seq_length": 32, "do_lower_case": false}"#,
    )
    .unwrap();
}

pub fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

pub fn row<'a>(
    rep: &'a serde_json::Value,
    variant: &str,
    stage: &str,
) -> Option<&'a serde_json::Value> {
    rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["variant"] == variant && r["stage"] == stage)
}
