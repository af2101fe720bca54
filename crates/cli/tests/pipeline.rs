//! `colzero pipeline` end to end on tiny data (the tiny BERT fixture, a generated BEIR
//! set): prepare steps (pairs, BM25 mining, teacher scores), three stages (unsupervised
//! GradCache contrastive, supervised contrastive, distillation), evaluation and report.
//! Shows that a run stopped between stages skips the finished stage when restarted (its
//! files are untouched), that a paused stage resumes from its checkpoint, that a changed
//! stage is refused unless --rerun-changed, that --strict refuses misaligned prompts
//! before training, that every stage checkpoint loads in the encoder, and that the
//! report's nDCG@10 values equal a direct `colzero eval` of each checkpoint.

mod support;

use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use support::{beir, dense_model, fails, ok, repo_path, report, row, s};

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

    // --check reports the state of every stage and runs nothing
    let o = support::colzero(&["pipeline", s(&rpath), "--out", s(&out), "--check"]);
    assert!(o.status.success());
    let plan = String::from_utf8_lossy(&o.stdout).to_string();
    let line = |name: &str| {
        plan.lines()
            .find(|l| l.starts_with(&format!("stage `{name}`")))
            .unwrap_or_else(|| panic!("{plan}"))
            .to_string()
    };
    assert!(line("unsup").ends_with("done (skipped)"), "{plan}");
    assert!(
        line("sup").contains("interrupted (resumes from") && line("sup").contains("step-00000002"),
        "{plan}"
    );
    assert!(line("kd").ends_with("new"), "{plan}");
    assert!(
        plan.contains("prepare `kd`") && plan.contains("colzero data teacher"),
        "{plan}"
    );
    assert!(!out.join("kd").exists() && !out.join("data/kd").exists());

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
