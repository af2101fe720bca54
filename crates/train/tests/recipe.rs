//! Recipe parsing and validation: every shipped recipe (`recipes/*.toml`,
//! `recipes/cpu/*.toml`) loads, and malformed recipes fail naming the file and the key.

use colzero_core::testing::repo_path;
use colzero_train::recipe::Recipe;
use colzero_train::TrainError;
use std::path::{Path, PathBuf};

fn shipped() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["recipes", "recipes/cpu"] {
        for e in std::fs::read_dir(repo_path(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().and_then(|e| e.to_str()) == Some("toml") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

#[test]
fn every_shipped_recipe_parses_and_validates() {
    let all = shipped();
    let names: Vec<String> = all
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in [
        "colbert-zero.toml",
        "colbert-zero-noprompts.toml",
        "supervised-kd.toml",
        "supervised-kd-noprompts.toml",
        "kd-only.toml",
        "kd-only-noprompts.toml",
    ] {
        assert_eq!(
            names.iter().filter(|x| *x == n).count(),
            2,
            "{n} at paper and CPU scale"
        );
    }
    let mut recipe_names = Vec::new();
    for p in &all {
        let r = Recipe::load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!r.stage.is_empty());
        let last = r.stage.last().unwrap();
        assert_eq!(last.loss.kind, "distillation", "{}", p.display());
        for i in 0..r.stage.len() {
            r.stage_config(i, Path::new("/o"), Path::new("/d"))
                .validate(p)
                .unwrap();
        }
        assert!(
            !recipe_names.contains(&r.name),
            "duplicate recipe name {}",
            r.name
        );
        recipe_names.push(r.name.clone());
    }
}

#[test]
fn paper_scale_values_match_the_reference() {
    let r = Recipe::load(&repo_path("recipes/colbert-zero.toml")).unwrap();
    let names: Vec<&str> = r.stage.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["unsupervised", "supervised", "distillation"]);
    let (u, s, k) = (&r.stage[0], &r.stage[1], &r.stage[2]);
    assert_eq!(u.train.batch_size, 16384);
    assert_eq!(u.loss.kind, "cached_contrastive");
    assert_eq!(u.loss.mini_batch_size, 512);
    assert_eq!((u.optim.lr, u.loss.temperature), (3e-4, 0.02));
    assert_eq!((u.model.query_length, u.model.document_length), (39, 187));
    assert_eq!(u.model.query_prompt.as_deref(), Some("search_query: "));
    assert_eq!(
        u.model.document_prompt.as_deref(),
        Some("search_document: ")
    );
    assert_eq!(
        (s.train.batch_size, s.optim.lr, s.loss.temperature),
        (64, 8e-6, 0.2)
    );
    assert_eq!(s.model.document_length, 519);
    assert_eq!(
        (k.train.batch_size * k.train.grad_accum, k.optim.lr),
        (128, 4e-6)
    );
    assert_eq!(k.data.n_ways, 32);
    // the CPU noprompts variant really has no prompts
    let np = Recipe::load(&repo_path("recipes/cpu/colbert-zero-noprompts.toml")).unwrap();
    assert_eq!(np.stage[0].model.query_prompt.as_deref(), Some(""));
}

#[test]
fn references_resolve_to_stage_and_data_folders() {
    let text = r#"
name = "t"
[eval]
datasets = ["beir/a"]
[[prepare]]
name = "pairs"
kind = "pairs"
corpus = ["beir/a", "/abs/b"]
[[stage]]
name = "one"
[stage.model]
init = "dense"
path = "models/m"
[stage.data]
path = "@pairs"
[[stage]]
name = "two"
eval_datasets = []
[stage.model]
init = "previous"
[stage.data]
path = "train.jsonl"
[[stage]]
name = "three"
[stage.model]
init = "colbert"
path = "@one"
[stage.data]
path = "train.jsonl"
"#;
    let r = Recipe::from_toml_str(text, Path::new("/r/x.toml")).unwrap();
    assert_eq!(r.eval.datasets, [PathBuf::from("/r/beir/a")]);
    let corpus = r.prepare[0].options["corpus"].as_array().unwrap();
    assert_eq!(corpus[0].as_str(), Some("/r/beir/a"));
    assert_eq!(corpus[1].as_str(), Some("/abs/b"));
    let c0 = r.stage_config(0, Path::new("/o"), Path::new("/d"));
    assert_eq!(c0.model.path, PathBuf::from("/r/models/m"));
    assert_eq!(c0.data.path, PathBuf::from("/d/pairs"));
    let c1 = r.stage_config(1, Path::new("/o"), Path::new("/d"));
    assert_eq!(
        (c1.model.init.as_str(), c1.model.path.clone()),
        ("colbert", PathBuf::from("/o/one/final"))
    );
    assert_eq!(c1.data.path, PathBuf::from("/r/train.jsonl"));
    let c2 = r.stage_config(2, Path::new("/o"), Path::new("/d"));
    assert_eq!(c2.model.path, PathBuf::from("/o/one/final"));
    assert_eq!(
        (r.source_stage(0), r.source_stage(1), r.source_stage(2)),
        (None, Some(0), Some(0))
    );
    assert!(r.eval_datasets(1).is_empty());
    assert_eq!(r.eval_datasets(2), r.eval.datasets.as_slice());
}

fn err(text: &str) -> (String, String) {
    match Recipe::from_toml_str(text, Path::new("/r/bad.toml")) {
        Err(TrainError::Config {
            path,
            field,
            reason,
        }) => {
            assert_eq!(path, PathBuf::from("/r/bad.toml"));
            (field, reason)
        }
        Err(TrainError::Toml {
            path,
            line,
            column,
            reason,
        }) => {
            assert_eq!(path, PathBuf::from("/r/bad.toml"));
            (format!("line {line}:{column}"), reason)
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

const STAGE: &str = "[[stage]]\nname = \"s\"\n[stage.model]\ninit = \"dense\"\npath = \"m\"\n[stage.data]\npath = \"d.jsonl\"\n";

#[test]
fn malformed_recipes_name_the_file_and_key() {
    let (f, r) = err(&format!("name = \"t\"\nbogus = 1\n{STAGE}"));
    assert_eq!(f, "line 2:1");
    assert!(r.contains("bogus"), "{r}");
    // printed as file:line:column, never as byte offsets
    let e = Recipe::from_toml_str(
        &format!("name = \"t\"\nbogus = 1\n{STAGE}"),
        Path::new("/r/bad.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("/r/bad.toml:2:1: unknown field `bogus`"),
        "{e}"
    );
    let (f, r) = err(&format!(
        "name = \"t\"\n{STAGE}[stage.loss]\ntemprature = 0.1\n"
    ));
    assert!(f.starts_with("line 10:"), "{f}");
    assert!(r.contains("temprature"), "{r}");
    let (f, _) = err(&format!(
        "name = \"t\"\n{STAGE}[stage.loss]\nkind = \"triplet\"\n"
    ));
    assert_eq!(f, "stage.s.loss.kind");
    let (f, _) = err(&format!(
        "name = \"t\"\n{}",
        STAGE.replace("\"dense\"", "\"previous\"")
    ));
    assert_eq!(f, "stage.s.model.init");
    let (f, r) = err(&format!(
        "name = \"t\"\n{}",
        STAGE.replace("d.jsonl", "@nothing")
    ));
    assert_eq!(f, "stage.s.data.path");
    assert!(r.contains("@nothing"));
    let (f, _) = err(&format!("name = \"t\"\n{STAGE}{}", STAGE));
    assert_eq!(f, "stage.s");
    let (f, _) = err(&format!("name = \"a b\"\n{STAGE}"));
    assert_eq!(f, "name");
    let (f, _) = err("name = \"t\"\n");
    assert_eq!(f, "stage");
    let (f, _) = err(&format!(
        "name = \"t\"\n[[prepare]]\nname = \"p\"\nkind = \"scrape\"\n{STAGE}"
    ));
    assert_eq!(f, "prepare.p.kind");
    let (f, _) = err(&format!(
        "name = \"t\"\n[[prepare]]\nname = \"p\"\nkind = \"pairs\"\nout = \"x\"\n{STAGE}"
    ));
    assert_eq!(f, "prepare.p.out");
    let (f, _) = err(&format!(
        "name = \"t\"\n{}",
        STAGE.replace(
            "[stage.model]",
            "allow_misaligned = [\"prompts\"]\n[stage.model]"
        )
    ));
    assert_eq!(f, "stage.s.allow_misaligned");
    let (f, _) = err(&format!(
        "name = \"t\"\n[eval]\ndense_baseline = true\n{}",
        STAGE.replace("\"dense\"", "\"colbert\"")
    ));
    assert_eq!(f, "eval.dense_baseline");
}
