//! `colzero pipeline --check`: what a run would do, without running anything.
//!
//! Contract: [`describe`] preflights the recipe (validation, input paths, prepare-step
//! options, alignment — so `--check --strict` fails exactly when a run would) and returns
//! a text listing every prepare step (its `colzero data` command lines and whether its
//! output is done, changed or missing) and every stage (hash, starting checkpoint, data,
//! loss, steps, effective prompts/lengths, evaluation sets, and its state in OUT: done,
//! resumable at step N, changed, or new). Nothing is written.

use super::{align, preflight, stage_hashes, Marker, PipelineOptions};
use anyhow::Result;
use colzero_train::recipe::{dataset_name, Recipe};
use std::fmt::Write;
use std::path::Path;

fn state(marker: Option<Marker>, hash: &str, done_path: &Path) -> String {
    match marker {
        None => "new".into(),
        Some(m) if m.hash != hash => format!("CHANGED (was {})", m.hash),
        Some(m) if m.status == "done" && done_path.exists() => "done (skipped)".into(),
        Some(_) => "interrupted (resumes)".into(),
    }
}

/// The plan of `recipe` run into `out` (see module docs).
pub fn describe(recipe: &Recipe, out: &Path, opts: &PipelineOptions) -> Result<String> {
    let shared = opts.shared_dir.clone().unwrap_or_else(|| out.to_path_buf());
    let data_dir = shared.join("data");
    let planned = preflight(recipe, &data_dir, opts.strict)?;
    let hashes = stage_hashes(recipe, &planned);
    let (eff, _) = align::check(recipe);
    let mut t = String::new();
    writeln!(t, "recipe `{}` ({})", recipe.name, recipe.path.display())?;
    for p in &planned {
        let marker = Marker::read(&data_dir.join(format!("{}.done.json", p.name)));
        let st = state(marker, &p.hash, &data_dir.join(&p.name));
        writeln!(
            t,
            "prepare `{}` [{}] -> {}: {st}",
            p.name,
            p.hash,
            data_dir.join(&p.name).display()
        )?;
        for inv in &p.invocations {
            writeln!(
                t,
                "    colzero data {} --out .../{}",
                inv.argv.join(" "),
                inv.out
            )?;
        }
    }
    for (i, s) in recipe.stage.iter().enumerate() {
        let dir = Recipe::stage_dir(out, &s.name);
        let cfg = recipe.stage_config(i, out, &data_dir);
        let mut st = state(
            Marker::read(&dir.join("pipeline-stage.json")),
            &hashes[i],
            &dir.join("final/modules.json"),
        );
        if st.starts_with("interrupted") {
            if let Ok(Some(c)) = colzero_train::checkpoint::latest(&dir) {
                st = format!("interrupted (resumes from {})", c.display());
            }
        }
        let e = &eff[i];
        let evals: Vec<String> = recipe
            .eval_datasets(i)
            .iter()
            .map(|d| dataset_name(d))
            .collect();
        writeln!(
            t,
            "stage `{}` [{}] -> {}: {st}",
            s.name,
            hashes[i],
            dir.display()
        )?;
        writeln!(
            t,
            "    init {} {}; data {}; loss {}; {} steps x batch {} x accum {}; lr {}",
            cfg.model.init,
            cfg.model.path.display(),
            cfg.data.path.display(),
            cfg.loss.kind,
            cfg.train.steps,
            cfg.train.batch_size,
            cfg.train.grad_accum,
            cfg.optim.lr
        )?;
        writeln!(
            t,
            "    prompts {:?} / {:?}; lengths {} / {}; eval on [{}]",
            e.query_prompt,
            e.document_prompt,
            e.query_length,
            e.document_length,
            evals.join(", ")
        )?;
    }
    Ok(t)
}
