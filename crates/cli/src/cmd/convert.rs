//! `colzero convert`: a dense HF / sentence-transformers model becomes a ColBERT
//! checkpoint in PyLate's layout, with a fresh seeded projection head.
//!
//! Contract: `--out DIR` is replaced as a whole (atomically). It must be missing, empty
//! or a ColBERT checkpoint ([`is_colbert_checkpoint`]); any other folder is refused
//! unless `--force`, and DIR may never be `--from` nor contain it, nor be the current
//! directory. A failed conversion leaves DIR and its parent as they were.

use super::{Ctx, EncoderArgs};
use anyhow::{Context, Result};
use colzero_core::fsutil;
use std::path::{Path, PathBuf};

/// Whether `dir` is a ColBERT checkpoint as colzero and PyLate write it: `config.json`,
/// `model.safetensors` and a `modules.json` naming a `pylate.models.Dense` module.
pub fn is_colbert_checkpoint(dir: &Path) -> bool {
    dir.join("config.json").is_file()
        && dir.join("model.safetensors").is_file()
        && std::fs::read_to_string(dir.join("modules.json"))
            .is_ok_and(|m| m.contains("pylate.models.Dense"))
}

/// Options of `colzero convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dense model directory (config.json, model.safetensors, tokenizer files).
    #[arg(long)]
    pub from: PathBuf,
    /// Output directory (written atomically; must be new, empty or a ColBERT checkpoint).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out even if it is a non-empty folder that is not a ColBERT checkpoint
    /// (everything in it is deleted).
    #[arg(long)]
    pub force: bool,
    /// Output embedding dimension of the projection.
    #[arg(long, default_value_t = 128, value_parser = super::positive)]
    pub dim: usize,
    /// Seed of the projection's initialisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Runs `colzero convert`.
pub fn run(args: Args, _ctx: &Ctx) -> Result<()> {
    fsutil::ensure_dir_output_not_input("--out", &args.out, &[("--from", &args.from)])?;
    fsutil::check_replaceable_dir(
        "--out",
        &args.out,
        is_colbert_checkpoint,
        "a ColBERT checkpoint (config.json, model.safetensors and a modules.json with a \
         pylate Dense module)",
        args.force,
    )?;
    let model = colzero_model::ColBERT::from_dense(
        &args.from,
        args.dim,
        args.seed,
        &args.encoder.load_options(),
    )
    .with_context(|| format!("converting {}", args.from.display()))?;
    model
        .save(&args.out)
        .with_context(|| format!("saving to {}", args.out.display()))?;
    let c = model.config();
    eprintln!(
        "wrote ColBERT checkpoint {} (dim {}, query length {}, document length {})",
        args.out.display(),
        c.embedding_dim,
        c.query_length,
        c.document_length
    );
    Ok(())
}
