//! `colzero ablate`: several recipes, one paper-style table.
//!
//! Contract: `RECIPE.toml... --out DIR` loads and preflights every recipe first (names
//! must be distinct; any error stops before training), then runs each recipe's pipeline
//! into DIR/<recipe name>/ with prepared data and dense-baseline evaluations shared in
//! DIR/data and DIR/base (a prepare step of the same name must have the same options in
//! every recipe). DIR/report.{md,json,png}: one row per recipe and stage, plus the dense
//! base row(s) (one per base model), columns = every dataset and the average nDCG@10;
//! rewritten after each recipe. A failing recipe does not stop the others; the command
//! then exits with status 1 naming the failures.

use super::Ctx;
use crate::pipeline::{self, report::Timing, PipelineOptions};
use anyhow::{bail, Result};
use colzero_eval::AblationTable;
use colzero_train::Recipe;
use std::path::PathBuf;

/// Options of `colzero ablate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe TOML files (one row group each).
    #[arg(required = true)]
    pub recipes: Vec<PathBuf>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Refuse misaligned prompts/lengths (default: warn).
    #[arg(long)]
    pub strict: bool,
    /// Retrain finished stages whose configuration changed.
    #[arg(long)]
    pub rerun_changed: bool,
}

fn merge(
    into: &mut AblationTable,
    timing: &mut Vec<Timing>,
    rep: &pipeline::PipelineReport,
) -> Result<()> {
    for d in &rep.table.datasets {
        if !into.datasets.contains(d) {
            into.datasets.push(d.clone());
        }
    }
    for (row, t) in rep.table.rows.iter().zip(&rep.timing) {
        if into
            .rows
            .iter()
            .any(|r| r.variant == row.variant && r.stage == row.stage)
        {
            continue; // the same dense base row from another recipe
        }
        into.push(
            &row.variant,
            &row.stage,
            row.scores.iter().map(|(k, v)| (k.as_str(), *v)),
        )?;
        if let Some(w) = row.wall_seconds {
            into.set_wall_seconds(&row.variant, &row.stage, w);
        }
        timing.push(t.clone());
    }
    Ok(())
}

/// Runs `colzero ablate`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let mut recipes = Vec::new();
    for p in &args.recipes {
        let r = Recipe::load(p)?;
        if recipes.iter().any(|q: &Recipe| q.name == r.name) {
            bail!("{}: recipe name `{}` is used twice", p.display(), r.name);
        }
        pipeline::preflight(&r, &args.out.join("data"), args.strict)?;
        recipes.push(r);
    }
    let opts = PipelineOptions {
        strict: args.strict,
        rerun_changed: args.rerun_changed,
        stop_after: None,
        shared_dir: Some(args.out.clone()),
        quiet: ctx.quiet,
    };
    let mut table = AblationTable::new("ndcg@10", Vec::<String>::new());
    let mut timing = Vec::new();
    let mut failures = Vec::new();
    let mut complete = true;
    for r in &recipes {
        eprintln!("== recipe `{}` ({})", r.name, r.path.display());
        match pipeline::run_recipe(r, &args.out.join(&r.name), &opts) {
            Ok(rep) => {
                complete &= rep.complete;
                merge(&mut table, &mut timing, &rep)?;
                pipeline::report::write_report(&table, &timing, complete, &args.out, "report")?;
            }
            Err(e) => {
                eprintln!("error: recipe `{}`: {e:#}", r.name);
                failures.push(format!("{}: {e:#}", r.name));
                complete = false;
            }
        }
    }
    pipeline::report::write_report(&table, &timing, complete, &args.out, "report")?;
    println!("{}", table.to_markdown());
    println!("{}", pipeline::report::timing_markdown(&timing));
    if !failures.is_empty() {
        bail!(
            "{} recipe(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    eprintln!("wrote {}", args.out.join("report.md").display());
    Ok(())
}
