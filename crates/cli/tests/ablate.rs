//! `colzero ablate` end to end on tiny data: two recipes (sup+KD, KD-only) give one row
//! per recipe and stage plus one deduplicated dense base row; prepared data and the dense
//! baseline are shared; a second call recomputes nothing.

mod support;

use support::{beir, dense_model, ok, repo_path, report, row, s};

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
