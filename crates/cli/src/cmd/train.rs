//! `colzero train`: one training stage from a TOML config.
//!
//! Contract: `--config stage.toml --out DIR [--resume]` writes DIR/final/ (a PyLate-layout
//! checkpoint), DIR/metrics.jsonl, a loss/lr plot and DIR/summary.json; `--print-config`
//! prints every key with its default and exits. Unknown TOML keys are rejected; relative
//! data paths resolve against the TOML's own folder.

use super::Ctx;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// Options of `colzero train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Stage configuration (TOML).
    #[arg(long, required_unless_present = "print_config")]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, required_unless_present = "print_config")]
    pub out: Option<PathBuf>,
    /// Resume from the latest checkpoint in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Print the full default configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Runs `colzero train`.
pub fn run(args: Args, _ctx: &Ctx) -> Result<()> {
    if args.print_config {
        print!("{}", colzero_train::print_config());
        return Ok(());
    }
    let (Some(config), Some(out)) = (&args.config, &args.out) else {
        bail!("--config and --out are required");
    };
    let cfg = colzero_train::StageConfig::load(config)?;
    let summary = colzero_train::run_stage(&cfg, out, args.resume)
        .with_context(|| format!("training stage {}", config.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
