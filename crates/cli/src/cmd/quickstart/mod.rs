//! `colzero quickstart [--out DIR]`: the whole ColBERT-Zero pipeline, small, offline, with
//! nothing but the binary.
//!
//! Contract: extracts the embedded bundle ([`bundle`]: a SciFact subset, a tiny BERT
//! architecture + tokenizer whose weights are drawn from a seed, KD teacher scores) into
//! `DIR/assets/<fingerprint>/`, writes `DIR/recipe.toml` (the embedded `quickstart.toml`
//! with the asset folder filled in and every `steps` multiplied by `--steps-scale`), and
//! runs it with `crate::pipeline` (`rerun_changed`: a stage whose recipe or bundle
//! changed is retrained; finished stages are skipped, an interrupted one resumes). Then it
//! prints the quickstart table — one row for the untrained base model (dense mode) and one
//! per stage, columns nDCG@10, Recall@100, MRR@10 on the bundled test queries and each
//! stage's training time — writes it to `DIR/quickstart.md` and `DIR/quickstart.json`
//! (atomically), and names the pipeline's `DIR/report.{md,json,png}`. `DIR` defaults to
//! `./colzero-quickstart`. Never reads `../shared` nor the network.

pub mod bundle;

use super::Ctx;
use crate::pipeline::{self, evaluate::EvalRecord, PipelineOptions, PipelineReport};
use anyhow::{bail, Context, Result};
use colzero_core::fsutil::atomic_write_bytes;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The embedded recipe template.
pub const RECIPE_TEMPLATE: &str = include_str!("quickstart.toml");

/// Options of `colzero quickstart`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Working directory (bundle, data, one folder per stage, reports); rerunning with the
    /// same directory skips what is already done.
    #[arg(long, default_value = "colzero-quickstart")]
    pub out: PathBuf,
    /// Multiply every stage's steps by this factor (tests use a small value).
    #[arg(long, default_value_t = 1.0, hide = true)]
    pub steps_scale: f64,
}

/// One row of the quickstart table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    /// "base (untrained, dense)" or the stage name.
    pub model: String,
    /// The stage's loss (empty for the base row).
    pub training: String,
    pub ndcg_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
    /// Training wall time over all invocations, seconds (0 for the base row).
    pub train_seconds: f64,
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
}

/// The recipe text for assets at `assets` (relative to the recipe), steps scaled.
pub fn recipe_text(assets: &str, steps_scale: f64) -> Result<String> {
    if !(steps_scale.is_finite() && steps_scale > 0.0) {
        bail!("--steps-scale {steps_scale}: must be a positive number");
    }
    let text = RECIPE_TEMPLATE.replace("@ASSETS@", assets);
    if steps_scale == 1.0 {
        return Ok(text);
    }
    let mut doc: toml::Table = toml::from_str(&text).context("embedded quickstart.toml")?;
    let scale = |n: i64| ((n as f64 * steps_scale).round() as i64).max(1);
    if let Some(stages) = doc.get_mut("stage").and_then(|v| v.as_array_mut()) {
        for s in stages {
            let Some(t) = s.get_mut("train").and_then(|t| t.as_table_mut()) else {
                continue;
            };
            for key in ["steps", "checkpoint_every"] {
                if let Some(n) = t.get(key).and_then(|v| v.as_integer()) {
                    t.insert(key.into(), toml::Value::Integer(scale(n)));
                }
            }
        }
    }
    Ok(toml::to_string(&doc)?)
}

fn metric(r: &EvalRecord, name: &str) -> f64 {
    r.metrics.get(name).copied().unwrap_or(f64::NAN)
}

/// Builds the table rows from the pipeline's base evaluation and stage outcomes.
fn rows(out: &Path, rep: &PipelineReport, recipe: &colzero_train::Recipe) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let first = &recipe.stage[0];
    let base_name = colzero_train::recipe::dataset_name(&first.model.path);
    let ds = recipe
        .eval
        .datasets
        .first()
        .context("the quickstart recipe evaluates one dataset")?;
    let ds_name = colzero_train::recipe::dataset_name(ds);
    let base_rec = pipeline::evaluate::record_path(&out.join("base").join(&base_name), &ds_name);
    let text = std::fs::read_to_string(&base_rec)
        .with_context(|| format!("reading the base evaluation {}", base_rec.display()))?;
    let b: EvalRecord =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", base_rec.display()))?;
    rows.push(Row {
        model: format!("{base_name} (untrained base, dense)"),
        training: "random init".into(),
        ndcg_at_10: b.ndcg_at_10,
        recall_at_100: metric(&b, "recall@100"),
        mrr_at_10: metric(&b, "mrr@10"),
        train_seconds: 0.0,
        checkpoint: b.model.clone(),
    });
    for (st, s) in rep.stages.iter().zip(&recipe.stage) {
        let e = st
            .evals
            .first()
            .with_context(|| format!("stage `{}` has no evaluation", st.name))?;
        rows.push(Row {
            model: format!("+ {}", st.name),
            training: s.loss.kind.clone(),
            ndcg_at_10: e.ndcg_at_10,
            recall_at_100: metric(e, "recall@100"),
            mrr_at_10: metric(e, "mrr@10"),
            train_seconds: st.train_seconds,
            checkpoint: st.checkpoint.clone(),
        });
    }
    Ok(rows)
}

/// The table as Markdown.
pub fn markdown(rows: &[Row], dataset: &str) -> String {
    let mut s = format!(
        "| model ({dataset} test) | training | nDCG@10 | Recall@100 | MRR@10 | train s |\n\
         |---|---|---:|---:|---:|---:|\n"
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.0} |\n",
            r.model, r.training, r.ndcg_at_10, r.recall_at_100, r.mrr_at_10, r.train_seconds
        );
    }
    s
}

/// Runs `colzero quickstart`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let t0 = Instant::now();
    let out = &args.out;
    let stats = bundle::check().context("the embedded quickstart bundle is damaged")?;
    let fp = bundle::fingerprint();
    let assets_rel = format!("assets/{}", &fp[..8]);
    let assets = out.join(&assets_rel);
    eprintln!(
        "colzero quickstart: a tiny BERT trained from scratch into a ColBERT \
         (unsupervised -> supervised -> distillation)\n  data: SciFact subset, {} documents, \
         {} train / {} test queries (CC BY-NC 2.0, see {}/NOTICE.md)\n  working directory: {}",
        stats.documents,
        stats.train_queries,
        stats.test_queries,
        assets.display(),
        out.display()
    );
    if bundle::extract(&assets)? {
        eprintln!("extracted the bundle to {}", assets.display());
    }
    let recipe_path = out.join("recipe.toml");
    atomic_write_bytes(
        &recipe_path,
        recipe_text(&assets_rel, args.steps_scale)?.as_bytes(),
    )?;
    let opts = PipelineOptions {
        strict: true,
        rerun_changed: true,
        stop_after: None,
        shared_dir: None,
        quiet: ctx.quiet,
    };
    let rep = pipeline::run(&recipe_path, out, &opts)?;
    if !rep.complete {
        bail!("the pipeline stopped before its last stage; rerun to continue");
    }
    let recipe = colzero_train::Recipe::load(&recipe_path)?;
    let rows = rows(out, &rep, &recipe)?;
    let ds_name = colzero_train::recipe::dataset_name(&recipe.eval.datasets[0]);
    let md = markdown(&rows, &ds_name);
    atomic_write_bytes(&out.join("quickstart.md"), md.as_bytes())?;
    atomic_write_bytes(
        &out.join("quickstart.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "dataset": ds_name,
            "rows": rows,
            "wall_seconds": t0.elapsed().as_secs_f64(),
        }))?
        .as_bytes(),
    )?;
    println!("\n{md}");
    let wall = t0.elapsed().as_secs_f64();
    let last = rows
        .last()
        .map(|r| r.checkpoint.clone())
        .unwrap_or_default();
    eprintln!(
        "done in {wall:.0} s. This table: {}. Pipeline report: {} (and .json, .png); \
         recipe: {}.\nEvery stage's checkpoint is in {}/<stage>/final/ (PyLate layout). Next:\n  \
         colzero search --model {} --query \"...\" --embeddings <colzero encode output>\n  \
         colzero pipeline {} --out {}   (edit the recipe, rerun: changed stages retrain)",
        out.join("quickstart.md").display(),
        out.join("report.md").display(),
        recipe_path.display(),
        out.display(),
        last.display(),
        recipe_path.display(),
        out.display(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_has_three_stages_in_order_and_scales_steps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/scifact-2k")).unwrap();
        let full = recipe_text("a", 1.0).unwrap();
        let r =
            colzero_train::Recipe::from_toml_str(&full, &dir.path().join("recipe.toml")).unwrap();
        let names: Vec<&str> = r.stage.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["unsupervised", "supervised", "distillation"]);
        let kinds: Vec<&str> = r.stage.iter().map(|s| s.loss.kind.as_str()).collect();
        assert_eq!(kinds, ["contrastive", "contrastive", "distillation"]);
        assert_eq!(r.stage[0].model.init, "dense");
        assert!(r.stage[1..].iter().all(|s| s.model.init == "previous"));
        assert!(r.eval.dense_baseline);
        let steps: Vec<usize> = r.stage.iter().map(|s| s.train.steps).collect();
        let small = recipe_text("a", 0.05).unwrap();
        let r2 =
            colzero_train::Recipe::from_toml_str(&small, &dir.path().join("recipe.toml")).unwrap();
        for (s, full) in r2.stage.iter().zip(&steps) {
            let want = ((*full as f64 * 0.05).round() as usize).max(1);
            assert_eq!(s.train.steps, want, "{}", s.name);
            assert!(s.train.checkpoint_every >= 1);
        }
        assert!(recipe_text("a", 0.0).is_err());
        assert!(recipe_text("a", f64::NAN).is_err());
    }

    #[test]
    fn markdown_table_has_one_row_per_model() {
        let row = |m: &str, v: f64| Row {
            model: m.into(),
            training: "contrastive".into(),
            ndcg_at_10: v,
            recall_at_100: v,
            mrr_at_10: v,
            train_seconds: 12.4,
            checkpoint: PathBuf::from("x"),
        };
        let md = markdown(
            &[row("base", 0.1), row("+ unsupervised", 0.55)],
            "scifact-2k",
        );
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("nDCG@10") && lines[0].contains("scifact-2k"));
        assert_eq!(
            lines[3],
            "| + unsupervised | contrastive | 0.5500 | 0.5500 | 0.5500 | 12 |"
        );
    }
}
