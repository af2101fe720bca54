//! `colzero train`: one training stage from a TOML config.
//!
//! Contract: `--config stage.toml --out DIR [--resume]` writes DIR/final/ (a PyLate-layout
//! checkpoint), DIR/metrics.jsonl, a loss/lr plot and DIR/summary.json; `--print-config`
//! prints every key with its default and exits. Unknown TOML keys are rejected; relative
//! data paths resolve against the TOML's own folder. DIR is one run
//! (`colzero_train::run`): a DIR holding a previous run is refused without `--resume`
//! (`--overwrite` deletes it first), `--resume` refuses a changed configuration unless
//! `--allow-config-change`, and a second process on DIR is refused. DIR may not be, or
//! put its outputs over, any input (the TOML, model, data or evaluation paths).

use super::Ctx;
use anyhow::{bail, Context, Result};
use colzero_core::fsutil;
use std::path::{Path, PathBuf};

/// Options of `colzero train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Stage configuration (TOML).
    #[arg(long, required_unless_present = "print_config")]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, required_unless_present = "print_config")]
    pub out: Option<PathBuf>,
    /// Resume from the latest checkpoint in the output directory (the configuration must
    /// be the run's, see --allow-config-change).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete a previous run in the output directory (its checkpoints, final/, metrics,
    /// summary, plot, config.toml, run.json) and start over. Other files are never
    /// deleted: a folder holding any is refused.
    #[arg(long)]
    pub overwrite: bool,
    /// With --resume: continue even if the configuration differs from the one the run
    /// started with (the differing fields are logged and recorded in run.json).
    #[arg(long, requires = "resume")]
    pub allow_config_change: bool,
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
    let inputs: [(&str, &Path); 4] = [
        ("--config", config),
        ("model.path", &cfg.model.path),
        ("data.path", &cfg.data.path),
        ("eval.beir_dir", &cfg.eval.beir_dir),
    ];
    fsutil::ensure_output_not_input("--out", out, &inputs)?;
    for name in colzero_train::run::OUTPUTS {
        let flag = format!("--out (its {name})");
        fsutil::ensure_dir_output_not_input(&flag, &out.join(name), &inputs)?;
    }
    let opts = colzero_train::RunOptions {
        resume: args.resume,
        overwrite: args.overwrite,
        allow_config_change: args.allow_config_change,
        keep: Vec::new(),
    };
    let summary = colzero_train::run_stage_with(&cfg, out, &opts)
        .with_context(|| format!("training stage {}", config.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
