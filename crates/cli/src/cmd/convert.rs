//! `colzero convert`: a dense HF / sentence-transformers model becomes a ColBERT
//! checkpoint in PyLate's layout, with a fresh seeded projection head.

use super::{Ctx, EncoderArgs};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Options of `colzero convert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dense model directory (config.json, model.safetensors, tokenizer files).
    #[arg(long)]
    pub from: PathBuf,
    /// Output directory (written atomically).
    #[arg(long)]
    pub out: PathBuf,
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
