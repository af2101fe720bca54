//! Training run identity through `colzero train` (issue 16), on the tiny BERT ColBERT
//! fixture with generated pairs: a fresh run into a used `--out` is refused
//! (`--overwrite` starts over cleanly: metrics hold each step once), `--resume` with a
//! changed configuration is refused naming the field (config.toml untouched) unless
//! `--allow-config-change`, which records the change in run.json, a second process on
//! the same `--out` is refused naming the holder, an output over an input is refused,
//! and a run killed while saving a checkpoint resumes without tripping on its litter.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::{colzero, repo_path, s};

fn write_stage(dir: &Path, extra: &str) -> PathBuf {
    let pairs = dir.join("pairs.jsonl");
    if !pairs.exists() {
        let words = [
            "apple", "river", "stone", "music", "paper", "cloud", "green", "house",
        ];
        let mut t = String::new();
        for i in 0..12 {
            let w = |k: usize| words[(i * 3 + k) % words.len()];
            t.push_str(&format!(
                "{{\"query\":\"{} {}\",\"positive\":\"{} {} {}\",\"negatives\":[\"{} {}\"]}}\n",
                w(0),
                w(1),
                w(0),
                w(1),
                w(2),
                w(5),
                w(6)
            ));
        }
        std::fs::write(&pairs, t).unwrap();
    }
    let model = repo_path("crates/model/tests/fixtures/tiny-bert-colbert");
    let text = format!(
        "[model]\npath = \"{}\"\n[data]\npath = \"{}\"\nnegatives = 1\n[loss]\n\
         temperature = 0.05\n[optim]\nlr = 1e-3\n[train]\nbatch_size = 2\nsteps = 4\n\
         seed = 3\nprogress = false\ncheckpoint_every = 2\n{extra}",
        s(&model),
        s(&pairs)
    );
    let p = dir.join("stage.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn train(cfg: &Path, out: &Path, flags: &[&str]) -> Output {
    let mut a = vec!["train", "--config", s(cfg), "--out", s(out)];
    a.extend_from_slice(flags);
    colzero(&a)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_refused(o: &Output, want: &[&str]) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for w in want {
        assert!(e.contains(w), "stderr lacks {w:?}: {e}");
    }
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "{}", err(o));
}

fn steps(out: &Path) -> Vec<usize> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["step"].as_u64().unwrap() as usize)
        .collect()
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

#[test]
fn a_used_out_is_refused_and_overwrite_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_stage(tmp.path(), "");
    let out = tmp.path().join("run");
    assert_ok(&train(&cfg, &out, &[]));
    assert_eq!(steps(&out), vec![1, 2, 3, 4]);
    assert_eq!(run_json(&out)["format"], 1);
    let summary = std::fs::read(out.join("summary.json")).unwrap();
    // Fresh run into the used folder: refused, nothing touched.
    assert_refused(
        &train(&cfg, &out, &[]),
        &["already holds a training run", "--resume", "--overwrite"],
    );
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary);
    // --overwrite: the old run is gone, the new one logs each step once.
    assert_ok(&train(&cfg, &out, &["--overwrite"]));
    assert_eq!(steps(&out), vec![1, 2, 3, 4]);
    assert!(out.join("final/modules.json").is_file());
    // A folder with other files is refused even with --overwrite, and kept.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.md"), "mine").unwrap();
    assert_refused(
        &train(&cfg, &other, &["--overwrite"]),
        &["not from a training run", "notes.md"],
    );
    assert_eq!(
        std::fs::read_to_string(other.join("notes.md")).unwrap(),
        "mine"
    );
    assert!(!other.join("metrics.jsonl").exists());
    // --out whose config.toml would overwrite the --config given: refused, kept.
    let own = tmp.path().join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::copy(&cfg, own.join("config.toml")).unwrap();
    let o = train(&own.join("config.toml"), &own, &[]);
    assert_refused(&o, &["--out (its config.toml)", "--config"]);
    assert_eq!(
        std::fs::read(own.join("config.toml")).unwrap(),
        std::fs::read(&cfg).unwrap()
    );
}

#[test]
fn resume_under_a_changed_config_needs_allow_config_change() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let paused = write_stage(tmp.path(), "stop_after_steps = 2\n");
    assert_ok(&train(&paused, &out, &[]));
    assert_eq!(steps(&out), vec![1, 2]);
    let config_toml = std::fs::read(out.join("config.toml")).unwrap();
    // lr changed (and the pause removed, which does not count): refused, naming the field.
    let changed = write_stage(tmp.path(), "");
    let text = std::fs::read_to_string(&changed)
        .unwrap()
        .replace("lr = 1e-3", "lr = 2e-3");
    std::fs::write(&changed, text).unwrap();
    let o = train(&changed, &out, &["--resume"]);
    assert_refused(&o, &["optim.lr", "0.001 -> 0.002", "--allow-config-change"]);
    assert!(!err(&o).contains("stop_after_steps"), "{}", err(&o));
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), config_toml);
    assert_eq!(steps(&out), vec![1, 2]);
    // Allowed: the change is logged and recorded, the run finishes.
    let o = train(&changed, &out, &["--resume", "--allow-config-change"]);
    assert_ok(&o);
    assert!(err(&o).contains("optim.lr"), "{}", err(&o));
    let rec = run_json(&out);
    let changes = rec["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{rec}");
    assert_eq!(changes[0]["at_step"], 2);
    assert_eq!(changes[0]["fields"].as_array().unwrap().len(), 1, "{rec}");
    assert_eq!(steps(&out), vec![1, 2, 3, 4]);
    // Resuming again with the (now recorded) config is accepted.
    assert_ok(&train(&changed, &out, &["--resume"]));
}

#[test]
fn a_second_process_on_the_same_out_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_stage(tmp.path(), "");
    let out = tmp.path().join("run");
    std::fs::create_dir(&out).unwrap();
    // This test process plays the first trainer: it holds the run's lock.
    let held = colzero_core::lock::FileLock::exclusive(
        &out.join(".train.lock"),
        colzero_core::lock::Wait::No,
    )
    .unwrap();
    let o = train(&cfg, &out, &[]);
    assert_refused(
        &o,
        &["another training process", &std::process::id().to_string()],
    );
    assert!(!out.join("metrics.jsonl").exists() && !out.join("run.json").exists());
    drop(held);
    assert_ok(&train(&cfg, &out, &[]));
    assert_eq!(steps(&out), vec![1, 2, 3, 4]);
}

#[test]
fn a_run_killed_while_checkpointing_resumes_without_litter() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_stage(tmp.path(), "");
    let out = tmp.path().join("run");
    // The 2nd swap is the step-2 checkpoint folder (the 1st is its model/ inside it).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_colzero"))
        .args(["--quiet", "train", "--config", s(&cfg), "--out", s(&out)])
        .env("COLZERO_FAULT", "fsutil.swap.staged@2")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "{}", err(&o));
    let ck = out.join("checkpoints");
    let litter = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".colzero-"))
            .collect()
    };
    assert_eq!(litter(&ck).len(), 1, "the kill left the staged checkpoint");
    assert!(colzero_train_free_of_steps(&ck));
    assert_ok(&train(&cfg, &out, &["--resume"]));
    assert_eq!(litter(&ck), Vec::<String>::new());
    assert_eq!(litter(&out), Vec::<String>::new());
    assert_eq!(steps(&out), vec![1, 2, 3, 4]);
    assert!(out.join("final/modules.json").is_file());
}

/// No complete `step-*` checkpoint in `ck`.
fn colzero_train_free_of_steps(ck: &Path) -> bool {
    std::fs::read_dir(ck).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("step-")
    })
}

fn one_stage_recipe(root: &Path, data: &Path) -> PathBuf {
    support::beir(&root.join("beir"));
    let model = repo_path("crates/model/tests/fixtures/tiny-bert-colbert");
    let text = format!(
        "name = \"one\"\n[eval]\ndatasets = [\"beir\"]\nbatch_size = 8\n\n[[stage]]\n\
         name = \"s1\"\n[stage.model]\npath = \"{}\"\n[stage.data]\npath = \"{}\"\n\
         negatives = 1\n[stage.loss]\ntemperature = 0.05\n[stage.optim]\nlr = 1e-3\n\
         [stage.train]\nbatch_size = 2\nsteps = 2\nprogress = false\n",
        s(&model),
        s(data)
    );
    let p = root.join("recipe.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_pipeline_stage_killed_before_any_checkpoint_reruns_and_inputs_stay_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_stage(root, "");
    let out = root.join("out");
    // Training data inside the stage folder the pipeline trains into: refused first.
    std::fs::create_dir_all(out.join("s1")).unwrap();
    std::fs::copy(root.join("pairs.jsonl"), out.join("s1/pairs.jsonl")).unwrap();
    let recipe = one_stage_recipe(root, &out.join("s1/pairs.jsonl"));
    let e = support::fails(&["pipeline", s(&recipe), "--out", s(&out)]);
    assert!(
        e.contains("stage folder `s1`") && e.contains("stage.s1.data.path"),
        "{e}"
    );
    std::fs::remove_dir_all(&out).unwrap();
    // Killed while saving final/ (no checkpoint: checkpoint_every = 0): the rerun trains
    // the stage again from step 0 in the same folder instead of refusing it.
    let recipe = one_stage_recipe(root, &root.join("pairs.jsonl"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_colzero"))
        .args(["--quiet", "pipeline", s(&recipe), "--out", s(&out)])
        .env("COLZERO_FAULT", "fsutil.swap.staged")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(9), "{}", err(&o));
    let stage = out.join("s1");
    assert!(stage.join("run.json").is_file() && !stage.join("final").exists());
    support::ok(&["pipeline", s(&recipe), "--out", s(&out)]);
    assert_eq!(steps(&stage), vec![1, 2]);
    assert!(stage.join("final/modules.json").is_file());
    assert_eq!(support::report(&out)["complete"], true);
}
