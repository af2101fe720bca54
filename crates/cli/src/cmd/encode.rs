//! `colzero encode`: JSONL `{"id","text"}` in, safetensors multi-vectors out.
//!
//! Contract: the output holds one F32 `[tokens, dim]` tensor per input line, named by its
//! id, plus metadata (`colzero.kind`, `colzero.model_fingerprint`, `colzero.model`; see
//! `colzero_core::store`). Written atomically; an output that is `--input` or `--model`
//! (or a file inside the model) is refused before any work.

use super::{load_encoder, read_id_texts, write_store, Ctx, EncoderArgs, Mode};
use anyhow::Result;
use colzero_core::fsutil;
use colzero_model::InputKind;
use std::path::PathBuf;

/// Which side of retrieval the texts are on.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Kind {
    Query,
    Document,
}

impl From<Kind> for InputKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Query => InputKind::Query,
            Kind::Document => InputKind::Document,
        }
    }
}

/// Options of `colzero encode`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (ColBERT or dense checkpoint).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL input, one `{"id": ..., "text": ...}` per line.
    #[arg(long)]
    pub input: PathBuf,
    /// Encode as queries or documents.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Output safetensors file.
    #[arg(long)]
    pub output: PathBuf,
    /// How to run the model.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Runs `colzero encode`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let inputs = [("--input", args.input.as_path()), ("--model", &args.model)];
    fsutil::ensure_output_not_input("--output", &args.output, &inputs)?;
    fsutil::ensure_not_part_of("--output", &args.output, &inputs[1..])?;
    let recs = read_id_texts(&args.input)?;
    let model = load_encoder(&args.model, args.mode, &args.encoder)?;
    let texts: Vec<String> = recs.iter().map(|r| r.text.clone()).collect();
    let embs = model.encode(&texts, args.kind.into(), &args.encoder.encode_options(ctx))?;
    let n = recs.len();
    let kind = match args.kind {
        Kind::Query => "query",
        Kind::Document => "document",
    };
    let items = recs.into_iter().map(|r| r.id).zip(embs);
    let tokens = write_store(&args.output, items, kind, &args.model)?;
    eprintln!(
        "wrote {n} embeddings ({tokens} vectors) to {}",
        args.output.display()
    );
    Ok(())
}
