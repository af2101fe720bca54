//! `colzero pipeline` end to end on tiny data (the tiny BERT fixture, a generated BEIR
//! set): prepare steps (pairs, BM25 mining, teacher scores), three stages (unsupervised
//! GradCache contrastive, supervised contrastive, distillation), evaluation and report.
//! Shows that a run stopped between stages skips the finished stage when restarted (its
//! files are untouched), that a paused stage resumes from its checkpoint, that a changed
//! stage is refused unless --rerun-changed, that --strict refuses misaligned prompts
//! before training, that every stage checkpoint loads in the encoder, and that the
//! report's nDCG@10 values equal a direct `colzero eval` of each checkpoint.

use colzero_core::testing::repo_path;
use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

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
    if std::env::var_os("COLZERO_TEST_VERBOSE").is_some() {
        eprintln!(
            "$ colzero {}\n{err}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout)
        );
    }
    err
}

fn fails(args: &[&str]) -> String {
    let o = colzero(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "colzero {args:?} should fail:\n{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const TOPICS: [(&str, &str, &str); 12] = [
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

const QUERIES: [(&str, &str, &str); 8] = [
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
fn beir(dir: &Path) {
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
fn dense_model(dir: &Path) {
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

fn recipe(dense: &Path, sup_extra: &str, sup_prompt: &str) -> String {
    let teacher = repo_path("crates/model/tests/fixtures/tiny-bert-colbert");
    format!(
        r#"
name = "tiny"
[eval]
datasets = ["beir"]
batch_size = 8
dense_baseline = true

[[prepare]]
name = "pairs"
kind = "pairs"
corpus = ["beir"]
seed = 1

[[prepare]]
name = "triplets"
kind = "mine"
dataset = "beir"
split = "train"
negatives = 2

[[prepare]]
name = "kd"
kind = "teacher"
triplets = "@triplets"
model = "{teacher}"
n_ways = 3

[[stage]]
name = "unsup"
[stage.model]
init = "dense"
path = "{dense}"
embedding_dim = 16
query_length = 12
document_length = 24
query_prompt = "search_query: "
document_prompt = "search_document: "
[stage.data]
path = "@pairs"
negatives = 0
[stage.loss]
kind = "cached_contrastive"
temperature = 0.05
mini_batch_size = 2
[stage.optim]
lr = 1e-3
[stage.train]
batch_size = 4
steps = 3
progress = false
checkpoint_every = 1

[[stage]]
name = "sup"
[stage.model]
init = "previous"
{sup_prompt}
[stage.data]
path = "@triplets"
negatives = 2
[stage.loss]
kind = "contrastive"
temperature = 0.2
[stage.optim]
lr = 1e-3
[stage.train]
batch_size = 2
steps = 3
progress = false
checkpoint_every = 1
{sup_extra}

[[stage]]
name = "kd"
[stage.model]
init = "previous"
[stage.data]
path = "@kd"
n_ways = 3
[stage.loss]
kind = "distillation"
[stage.optim]
lr = 1e-3
[stage.train]
batch_size = 2
steps = 3
progress = false
"#,
        teacher = s(&teacher),
        dense = s(dense)
    )
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

fn row<'a>(
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

#[test]
fn three_stage_pipeline_resumes_skips_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    beir(&root.join("beir"));
    dense_model(&root.join("dense"));
    let rpath = root.join("recipe.toml");
    let out = root.join("out");
    let write = |extra: &str, prompt: &str| {
        std::fs::write(&rpath, recipe(&root.join("dense"), extra, prompt)).unwrap()
    };

    // --strict refuses a stage that drops the prompts, before anything is prepared or trained
    write("", "query_prompt = \"\"");
    let err = fails(&["pipeline", s(&rpath), "--out", s(&out), "--strict"]);
    assert!(
        err.contains("query_prompt") && err.contains("ColBERT-Zero"),
        "{err}"
    );
    assert!(!out.join("data").exists() && !out.join("unsup").exists());

    // 1. stop between stages
    write("", "");
    ok(&[
        "pipeline",
        s(&rpath),
        "--out",
        s(&out),
        "--stop-after",
        "unsup",
    ]);
    let unsup = out.join("unsup");
    assert!(unsup.join("final/model.safetensors").is_file());
    assert!(!out.join("sup").exists());
    let rep = report(&out);
    assert_eq!(rep["complete"], false);
    assert!(row(&rep, "tiny", "unsup").is_some() && row(&rep, "dense (dense)", "base").is_some());
    let stamps: Vec<(PathBuf, SystemTime)> = [
        "summary.json",
        "final/model.safetensors",
        "eval-beir.json",
        "metrics.jsonl",
    ]
    .iter()
    .map(|f| (unsup.join(f), mtime(&unsup.join(f))))
    .collect();
    let summary1 = std::fs::read_to_string(unsup.join("summary.json")).unwrap();

    // 2. the supervised stage pauses after 2 of its 3 steps (an interruption)
    write("stop_after_steps = 2", "");
    let err = ok(&["pipeline", s(&rpath), "--out", s(&out)]);
    assert!(err.contains("stage `unsup`: done"), "{err}");
    assert!(!out.join("sup/final").exists());
    assert!(out
        .join("sup/checkpoints/step-00000002/state.json")
        .is_file());
    assert_eq!(report(&out)["complete"], false);

    // 3. restart: unsup skipped (files untouched), sup resumes from step 2, kd trains
    write("", "");
    let err = ok(&["pipeline", s(&rpath), "--out", s(&out)]);
    assert!(err.contains("stage `unsup`: done"), "{err}");
    assert!(err.contains("stage `sup`: resuming"), "{err}");
    for (p, t) in &stamps {
        assert_eq!(mtime(p), *t, "{} was rewritten", p.display());
    }
    assert_eq!(
        std::fs::read_to_string(unsup.join("summary.json")).unwrap(),
        summary1
    );
    let sup_summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sup/summary.json")).unwrap())
            .unwrap();
    assert_eq!(sup_summary["resumed_from"], 2);
    assert_eq!(sup_summary["steps"], 3);

    let rep = report(&out);
    assert_eq!(rep["complete"], true);
    assert_eq!(rep["datasets"], serde_json::json!(["beir"]));
    let stages: Vec<String> = rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["variant"].as_str().unwrap(),
                r["stage"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        stages,
        ["dense (dense)/base", "tiny/unsup", "tiny/sup", "tiny/kd"]
    );
    assert_eq!(rep["timing"].as_array().unwrap().len(), 4);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| tiny") && md.contains("Wall time"), "{md}");
    assert!(out.join("report.png").is_file());

    // every checkpoint loads in the encoder with the stage's prompts and lengths, and the
    // report equals a direct evaluation
    for stage in ["unsup", "sup", "kd"] {
        let ckpt = out.join(stage).join("final");
        let m = ColBERT::load(&ckpt, &LoadOptions::default()).unwrap();
        assert_eq!(m.config().embedding_dim, 16);
        assert_eq!(m.config().query_length, 12);
        assert_eq!(m.config().document_length, 24);
        assert_eq!(m.config().query_prompt.as_deref(), Some("search_query: "));
        let v = m
            .encode(
                &["honey bees".to_string()],
                InputKind::Query,
                &EncodeOptions::default(),
            )
            .unwrap();
        assert_eq!(v[0].n_tokens(), 12);
        let direct = root.join(format!("direct-{stage}"));
        ok(&[
            "eval",
            "--model",
            s(&ckpt),
            "--dataset",
            s(&root.join("beir")),
            "--output",
            s(&direct),
        ]);
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(direct.join("metrics.json")).unwrap())
                .unwrap();
        let want = metrics["ndcg@10"].as_f64().unwrap();
        let r = row(&rep, "tiny", stage).unwrap();
        let got = r["scores"]["beir"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&got) && got > 0.0, "{stage}: {got}");
        assert!(
            (got - want).abs() < 1e-9,
            "{stage}: report {got} vs direct {want}"
        );
        assert_eq!(r["average"].as_f64().unwrap(), got);
        assert!(r["wall_seconds"].as_f64().unwrap() > 0.0);
    }
    let base = row(&rep, "dense (dense)", "base").unwrap()["scores"]["beir"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&base));

    // 4. a changed stage is refused, then retrained with --rerun-changed (unsup still skipped)
    write("", "");
    std::fs::write(
        &rpath,
        std::fs::read_to_string(&rpath).unwrap().replacen(
            "temperature = 0.2",
            "temperature = 0.3",
            1,
        ),
    )
    .unwrap();
    let err = fails(&["pipeline", s(&rpath), "--out", s(&out)]);
    assert!(
        err.contains("stage `sup`") && err.contains("--rerun-changed"),
        "{err}"
    );
    let err = ok(&["pipeline", s(&rpath), "--out", s(&out), "--rerun-changed"]);
    assert!(err.contains("stage `unsup`: done"), "{err}");
    assert!(err.contains("stage `sup`: configuration changed"), "{err}");
    assert!(err.contains("stage `kd`: configuration changed"), "{err}");
    for (p, t) in &stamps {
        assert_eq!(mtime(p), *t, "{} was rewritten", p.display());
    }
    assert_eq!(report(&out)["complete"], true);
}

const PREPARE: &str = r#"
[[prepare]]
name = "triplets"
kind = "mine"
dataset = "beir"
split = "train"
negatives = 2

[[prepare]]
name = "kd"
kind = "teacher"
triplets = "@triplets"
model = "TEACHER"
n_ways = 3
"#;

const DENSE_MODEL: &str = "init = \"dense\"\npath = \"dense\"\nembedding_dim = 16\nquery_length = 12\ndocument_length = 24\n";

fn stage(name: &str, model: &str, data: &str, loss: &str) -> String {
    format!(
        "[[stage]]\nname = \"{name}\"\n[stage.model]\n{model}[stage.data]\n{data}\n\
         [stage.loss]\n{loss}\n[stage.optim]\nlr = 1e-3\n[stage.train]\nbatch_size = 2\n\
         steps = 2\nprogress = false\n"
    )
}

#[test]
fn ablate_writes_one_row_per_recipe_and_stage_and_shares_data() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    beir(&root.join("beir"));
    dense_model(&root.join("dense"));
    let teacher = repo_path("crates/model/tests/fixtures/tiny-bert-colbert");
    let head = |name: &str| {
        format!(
            "name = \"{name}\"\n[eval]\ndatasets = [\"beir\"]\ndense_baseline = true\n{}",
            PREPARE.replace("TEACHER", s(&teacher))
        )
    };
    let kd_data = "path = \"@kd\"\nn_ways = 3";
    let sup_kd = format!(
        "{}{}{}",
        head("sup-kd"),
        stage(
            "sup",
            DENSE_MODEL,
            "path = \"@triplets\"\nnegatives = 2",
            "kind = \"contrastive\""
        ),
        stage(
            "kd",
            "init = \"previous\"\n",
            kd_data,
            "kind = \"distillation\""
        )
    );
    let kd_only = format!(
        "{}{}",
        head("kd-only"),
        stage("kd", DENSE_MODEL, kd_data, "kind = \"distillation\"")
    );
    std::fs::write(root.join("sup-kd.toml"), sup_kd).unwrap();
    std::fs::write(root.join("kd-only.toml"), kd_only).unwrap();
    let out = root.join("ablation");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "ablate",
            s(&root.join("sup-kd.toml")),
            s(&root.join("kd-only.toml")),
            "--out",
            s(&out),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let a = args(&[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    ok(&a);
    let rep = report(&out);
    assert_eq!(rep["complete"], true);
    let rows: Vec<String> = rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["variant"].as_str().unwrap(),
                r["stage"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "dense (dense)/base",
            "sup-kd/sup",
            "sup-kd/kd",
            "kd-only/kd"
        ]
    );
    for r in rep["rows"].as_array().unwrap() {
        let v = r["average"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v) && v > 0.0, "{r}");
    }
    // per-recipe reports and checkpoints; data and the dense baseline are shared
    for (recipe, stage) in [("sup-kd", "sup"), ("sup-kd", "kd"), ("kd-only", "kd")] {
        let stage_rep = report(&out.join(recipe));
        let want = row(&stage_rep, recipe, stage).unwrap()["scores"]["beir"].clone();
        assert_eq!(row(&rep, recipe, stage).unwrap()["scores"]["beir"], want);
        assert!(out
            .join(recipe)
            .join(stage)
            .join("final/modules.json")
            .is_file());
    }
    assert!(out.join("data/kd/train.jsonl").is_file());
    assert!(out.join("base/dense/eval-beir.json").is_file());
    assert!(!out.join("sup-kd/data").exists() && !out.join("kd-only/data").exists());
    assert!(out.join("report.png").is_file() && out.join("report.md").is_file());
    // a second call recomputes nothing
    let err = ok(&a);
    assert!(
        !err.contains("training") && !err.contains("evaluating"),
        "{err}"
    );
    assert_eq!(report(&out)["rows"], rep["rows"]);
}
