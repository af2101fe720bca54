//! The `colzero` binary: one command line over the whole ColBERT life cycle.
//!
//! Contract: every subcommand lives in `cmd/<name>.rs` and returns `anyhow::Result`; an
//! error is printed as `error: <message>` followed by its causes, and the process exits
//! with status 1 (2 for usage errors, from clap). Nothing here computes anything itself:
//! the work is done by the library crates.

mod cmd;
mod pipeline;

use clap::{Parser, Subcommand};

/// Train, index, serve and evaluate ColBERT (late-interaction) retrieval models.
#[derive(Parser)]
#[command(name = "colzero", version, about, long_about = None)]
struct Cli {
    /// Number of worker threads (default: all cores; more than the machine's CPUs is
    /// lowered to the CPU count, with a note on stderr).
    #[arg(long, global = true, value_parser = cmd::positive)]
    threads: Option<usize>,
    /// Hide progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start here: train a tiny ColBERT-Zero (3 stages) on embedded data and print the table.
    Quickstart(cmd::quickstart::Args),
    /// Turn a dense Hugging Face / sentence-transformers model into a ColBERT checkpoint.
    Convert(cmd::convert::Args),
    /// Encode a JSONL file of texts into a safetensors file of multi-vectors.
    Encode(cmd::encode::Args),
    /// Search documents for queries (exact MaxSim over an embedding store, or an index).
    Search(cmd::search::Args),
    /// Evaluate a model (or an index) on a BEIR dataset directory.
    Eval(cmd::eval::Args),
    /// Compute metrics of any TREC run against qrels.
    Metrics(cmd::metrics::Args),
    /// Run one training stage from a TOML config.
    Train(cmd::train::Args),
    /// Build, update and inspect PLAID indexes.
    Index(cmd::index::Args),
    /// Prepare training data: unsupervised pairs, mined hard negatives, KD teacher scores.
    Data(cmd::data::Args),
    /// Run a whole recipe: data preparation, training stages, evaluation, report.
    Pipeline(cmd::pipeline::Args),
    /// Run several recipes and write one paper-style comparison table.
    Ablate(cmd::ablate::Args),
    /// Serve indexes over HTTP/JSON (search, add/delete documents, encode, rerank).
    Serve(cmd::serve::Args),
}

// mimalloc keeping freed pages: activation buffers are reused instead of being
// page-faulted and zeroed afresh by the kernel on every batch (colzero_core::alloc).
#[global_allocator]
static GLOBAL: colzero_core::alloc::MiMalloc = colzero_core::alloc::MiMalloc;

fn main() {
    colzero_core::alloc::retain_freed_memory();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COLZERO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let threads = cli.threads.map(|requested| {
        let (n, note) =
            colzero_core::cpu::bound_threads(requested, colzero_core::cpu::available_cpus());
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        n
    });
    if let Some(n) = threads {
        // Both rayon (our loops) and candle's matmul thread pool read this setting.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // Subnormals flushed to zero on every compute thread (3x faster training on Intel).
    colzero_core::cpu::init(threads);
    let ctx = cmd::Ctx { quiet: cli.quiet };
    let result = match cli.command {
        Command::Convert(a) => cmd::convert::run(a, &ctx),
        Command::Encode(a) => cmd::encode::run(a, &ctx),
        Command::Search(a) => cmd::search::run(a, &ctx),
        Command::Eval(a) => cmd::eval::run(a, &ctx),
        Command::Metrics(a) => cmd::metrics::run(a, &ctx),
        Command::Train(a) => cmd::train::run(a, &ctx),
        Command::Index(a) => cmd::index::run(a, &ctx),
        Command::Data(a) => cmd::data::run(a, &ctx),
        Command::Quickstart(a) => cmd::quickstart::run(a, &ctx),
        Command::Pipeline(a) => cmd::pipeline::run(a, &ctx),
        Command::Ablate(a) => cmd::ablate::run(a, &ctx),
        Command::Serve(a) => cmd::serve::run(a, &ctx),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}
