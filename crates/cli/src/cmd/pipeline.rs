//! `colzero pipeline`: runs a whole recipe (see `crate::pipeline` and `recipes/README.md`).
//!
//! Contract: `RECIPE.toml --out DIR [--strict] [--rerun-changed] [--stop-after STAGE]`
//! (`--check`: print the plan and the state of DIR, run nothing)
//! prepares data, trains every stage in order into DIR/<stage>/ (resuming where it
//! stopped), evaluates each stage's checkpoint, prints the report table and writes
//! DIR/report.{md,json,png}. Exit status 1 on any error, before training when the recipe,
//! an input path or (with --strict) the prompt/length alignment is wrong.

use super::Ctx;
use crate::pipeline::{self, PipelineOptions};
use anyhow::Result;
use std::path::PathBuf;

/// Options of `colzero pipeline`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe TOML (see recipes/README.md).
    pub recipe: PathBuf,
    /// Output directory (one folder per stage, data/, report.*).
    #[arg(long)]
    pub out: PathBuf,
    /// Refuse to train when prompts or lengths differ between stages (default: warn).
    #[arg(long)]
    pub strict: bool,
    /// Retrain finished stages (and rebuild prepared data) whose configuration changed
    /// (default: stop with an error naming the stage).
    #[arg(long)]
    pub rerun_changed: bool,
    /// Stop after this stage is trained and evaluated (the rest runs on the next call).
    #[arg(long)]
    pub stop_after: Option<String>,
    /// Only check the recipe and print what a run would do (prepare commands, stage
    /// hashes, settings, and what is done, resumable or changed in --out); runs nothing.
    #[arg(long)]
    pub check: bool,
}

/// Runs `colzero pipeline`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let opts = PipelineOptions {
        strict: args.strict,
        rerun_changed: args.rerun_changed,
        stop_after: args.stop_after,
        shared_dir: None,
        quiet: ctx.quiet,
    };
    if args.check {
        let recipe = colzero_train::Recipe::load(&args.recipe)?;
        print!("{}", pipeline::status::describe(&recipe, &args.out, &opts)?);
        return Ok(());
    }
    let rep = pipeline::run(&args.recipe, &args.out, &opts)?;
    for st in &rep.stages {
        eprintln!(
            "stage `{}` [{}]: {} (train {:.1}s, eval {:.1}s)",
            st.name,
            st.hash,
            if st.skipped {
                "already done"
            } else {
                "trained"
            },
            st.train_seconds,
            st.eval_seconds
        );
    }
    println!("{}", rep.table.to_markdown());
    println!("{}", pipeline::report::timing_markdown(&rep.timing));
    eprintln!(
        "{}: wrote {}",
        if rep.complete {
            "complete"
        } else {
            "incomplete"
        },
        args.out.join("report.md").display()
    );
    Ok(())
}
