//! `colzero quickstart` end to end, as a newcomer runs it: no ../shared, no network, only
//! the binary. The steps are scaled down (hidden `--steps-scale 0.05`: 10 + 5 + 3
//! optimiser steps) so the test stays short; the evaluations are the real ones (2,000
//! documents, 300 test queries). Checks: the printed table (base + three stages, in
//! order), nDCG@10 in [0, 1] and rising from the untrained base, every stage checkpoint
//! loads in the encoder, the pipeline report exists, and a second run skips every stage
//! and reports the same numbers.

use colzero_model::{ColBERT, InputKind, LoadOptions};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn quickstart(out: &Path) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_colzero"))
        .args(["--quiet", "quickstart", "--steps-scale", "0.05", "--out"])
        .arg(out)
        // A fresh clone: nothing beside the checkout is needed.
        .current_dir(out.parent().unwrap())
        .output()
        .expect("run colzero quickstart");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "quickstart failed:\n{stderr}");
    (stdout, stderr)
}

fn rows(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("quickstart.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["dataset"], "scifact-2k");
    v["rows"].as_array().unwrap().clone()
}

fn ndcg(r: &Value) -> f64 {
    r["ndcg_at_10"].as_f64().unwrap()
}

#[test]
fn quickstart_runs_three_stages_end_to_end_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("qs");
    let (stdout, stderr) = quickstart(&out);

    // The table: header, separator, base row, one row per stage, in pipeline order.
    let table: Vec<&str> = stdout.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 6, "{stdout}");
    assert!(table[0].contains("nDCG@10") && table[0].contains("Recall@100"));
    assert!(table[2].contains("untrained base"), "{}", table[2]);
    for (line, stage) in table[3..]
        .iter()
        .zip(["unsupervised", "supervised", "distillation"])
    {
        assert!(line.contains(stage), "{line}");
    }
    let rows = rows(&out);
    let names: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "tiny-bert (untrained base, dense)",
            "+ unsupervised",
            "+ supervised",
            "+ distillation"
        ]
    );
    for r in &rows {
        for key in ["ndcg_at_10", "recall_at_100", "mrr_at_10"] {
            let v = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{key} = {v} in {r}");
        }
    }
    // Even 10 steps of unsupervised pre-training beat the random base clearly, and the
    // later stages keep (at least) that level.
    assert!(ndcg(&rows[0]) < 0.25, "random base: {}", ndcg(&rows[0]));
    assert!(
        ndcg(&rows[1]) > ndcg(&rows[0]) + 0.1,
        "unsupervised {} vs base {}",
        ndcg(&rows[1]),
        ndcg(&rows[0])
    );
    assert!(ndcg(&rows[3]) > ndcg(&rows[0]) + 0.1);
    assert!(stderr.contains("report.md"), "{stderr}");
    for f in [
        "report.md",
        "report.json",
        "report.png",
        "quickstart.md",
        "recipe.toml",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // Every stage checkpoint loads in the encoder and encodes a query.
    for r in &rows[1..] {
        let ckpt = Path::new(r["checkpoint"].as_str().unwrap());
        assert!(ckpt.ends_with("final"), "{}", ckpt.display());
        let m = ColBERT::load(ckpt, &LoadOptions::default()).unwrap();
        assert_eq!(m.config().embedding_dim, 64);
        assert_eq!(m.config().query_prompt.as_deref(), Some("search_query: "));
        let v = m
            .encode(
                &["vitamin D and bone density".to_string()],
                InputKind::Query,
                &Default::default(),
            )
            .unwrap();
        assert_eq!((v[0].n_tokens(), v[0].dim()), (32, 64));
    }

    // A second run finds everything done: no stage is retrained, same numbers.
    let (_, stderr2) = quickstart(&out);
    for stage in ["unsupervised", "supervised", "distillation"] {
        assert!(
            stderr2.contains(&format!("stage `{stage}`: done")),
            "{stage} not skipped:\n{stderr2}"
        );
    }
    assert!(!stderr2.contains("extracted the bundle"), "{stderr2}");
    let again = crate::rows(&out);
    for (a, b) in rows.iter().zip(&again) {
        assert_eq!(ndcg(a), ndcg(b));
    }
}
