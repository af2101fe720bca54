//! `colzero search`: rank documents for queries by exact MaxSim over an embedding store
//! (written by `colzero encode --kind document`), or through a PLAID index (`--index`).
//!
//! Contract: queries come from `--query TEXT` (printed as a ranked list) or from
//! `--queries FILE.jsonl` (`{"id","text"}`; written as a TREC run to `--output`, or
//! printed). Ids are the store's tensor names. The store must hold document embeddings of
//! the same `--model` (checked from its metadata; stores without it are accepted with a
//! warning). An `--output` that is one of the inputs (or a file inside the model or index)
//! is refused before any work.

use super::{
    load_encoder, open_document_store, read_id_texts, Ctx, EncoderArgs, Mode, PlaidArgs, Searcher,
};
use anyhow::{bail, Result};
use colzero_core::{fsutil, Run};
use colzero_index::{ExactIndex, PlaidIndex};
use colzero_model::InputKind;
use std::path::PathBuf;

/// Options of `colzero search`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory used to encode the queries (must match the documents' model).
    #[arg(long)]
    pub model: PathBuf,
    /// Document embeddings (safetensors from `colzero encode --kind document`).
    #[arg(long, required_unless_present = "index", conflicts_with = "index")]
    pub embeddings: Option<PathBuf>,
    /// PLAID index directory (from `colzero index build`).
    #[arg(long)]
    pub index: Option<PathBuf>,
    #[command(flatten)]
    pub plaid: PlaidArgs,
    /// One query text.
    #[arg(long, conflicts_with = "queries")]
    pub query: Option<String>,
    /// JSONL file of queries, one `{"id","text"}` per line.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Number of results per query.
    #[arg(short = 'k', long, default_value_t = 10, value_parser = super::positive)]
    pub k: usize,
    /// Write a TREC run here instead of printing.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// How to run the model.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Runs `colzero search`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    if let Some(out) = &args.output {
        let none = std::path::Path::new("");
        let inputs = [
            ("--model", args.model.as_path()),
            ("--index", args.index.as_deref().unwrap_or(none)),
            ("--queries", args.queries.as_deref().unwrap_or(none)),
            ("--embeddings", args.embeddings.as_deref().unwrap_or(none)),
        ];
        fsutil::ensure_output_not_input("--output", out, &inputs)?;
        fsutil::ensure_not_part_of("--output", out, &inputs[..2])?;
    }
    let (ids, texts): (Vec<String>, Vec<String>) = match (&args.query, &args.queries) {
        (Some(q), None) => (vec!["query".to_string()], vec![q.clone()]),
        (None, Some(p)) => read_id_texts(p)?
            .into_iter()
            .map(|r| (r.id, r.text))
            .unzip(),
        _ => bail!("give either --query TEXT or --queries FILE.jsonl"),
    };
    let (index, source) = match (&args.index, &args.embeddings) {
        (Some(dir), _) => {
            let idx = PlaidIndex::open(dir)?;
            // A model whose files cannot be fingerprinted is not checked here (loading
            // it below reports what is wrong with it).
            let fp = colzero_model::model_fingerprint(&args.model).ok();
            let what = format!("--model {}", args.model.display());
            super::check_index_model(&idx, fp.as_deref(), &what)?;
            (
                Searcher::Plaid(Box::new(idx), args.plaid.params()),
                dir.clone(),
            )
        }
        (None, Some(e)) => {
            let store = open_document_store(e, "search --embeddings", Some(&args.model))?;
            (Searcher::Exact(ExactIndex::from_store(&store)?), e.clone())
        }
        (None, None) => bail!("give --embeddings FILE or --index DIR"),
    };
    let model = load_encoder(&args.model, args.mode, &args.encoder)?;
    let q = model.encode(&texts, InputKind::Query, &args.encoder.encode_options(ctx))?;
    if let Some(first) = q.first() {
        if first.dim() != index.dim() && index.dim() != 0 {
            bail!(
                "query embeddings have dim {} but {} holds dim {}: encode documents and queries with the same model",
                first.dim(),
                source.display(),
                index.dim()
            );
        }
    }
    let hits = index.search_batch(&q, args.k, None)?;
    let run: Run = ids.into_iter().zip(hits).collect();
    match &args.output {
        Some(out) => {
            colzero_eval::write_run(out, &run, "colzero")?;
            eprintln!("wrote {}", out.display());
        }
        None => {
            for (qid, hits) in &run {
                if args.queries.is_some() {
                    println!("# {qid}");
                }
                for (rank, h) in hits.iter().enumerate() {
                    println!("{:>3}  {:>9.4}  {}", rank + 1, h.score, h.id);
                }
            }
        }
    }
    Ok(())
}
