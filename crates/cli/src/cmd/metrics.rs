//! `colzero metrics`: trec_eval-exact metrics of any TREC run against qrels.
//!
//! Contract: reads qrels (BEIR TSV `query-id corpus-id score` or TREC `qid iter docid rel`,
//! header optional, recognised explicitly by `Qrels::read`) and a TREC run,
//! applies the named policies, prints a table and optionally writes the JSON report
//! (aggregate keys such as "ndcg@10"; per-query values with `--per-query`), which may not
//! be `--qrels` or `--run`.

use super::Ctx;
use anyhow::{Context, Result};
use colzero_eval::{
    apply_policies, evaluate, format_table, read_run, EvalOptions, Metric, MissingQueries, Policy,
    Qrels,
};
use std::path::PathBuf;

/// Options of `colzero metrics`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Qrels file: BEIR TSV (`query-id<TAB>corpus-id<TAB>score`) or TREC
    /// (`qid iter docid rel`), with or without a header line.
    #[arg(long)]
    pub qrels: PathBuf,
    /// TREC run file (`qid Q0 docid rank score tag`).
    #[arg(long)]
    pub run: PathBuf,
    /// Metrics to compute, comma-separated.
    #[arg(long, default_value = "ndcg@10,recall@100,mrr@10,map@100")]
    pub metrics: String,
    /// Run policies applied first, comma-separated (remove-self-hits, dedupe, top-N).
    #[arg(long, default_value = "")]
    pub policy: String,
    /// Score qrels queries missing from the run as 0 (trec_eval -c) instead of skipping
    /// them (pytrec_eval / BEIR).
    #[arg(long)]
    pub missing_as_zero: bool,
    /// Also write per-query values into the JSON report.
    #[arg(long)]
    pub per_query: bool,
    /// Where to write the JSON report.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `colzero metrics`.
pub fn run(args: Args, _ctx: &Ctx) -> Result<()> {
    if let Some(out) = &args.output {
        colzero_core::fsutil::ensure_output_not_input(
            "--output",
            out,
            &[("--qrels", &args.qrels), ("--run", &args.run)],
        )?;
    }
    let qrels = Qrels::read(&args.qrels)?;
    let mut run = read_run(&args.run)?;
    apply_policies(&mut run, &Policy::parse_list(&args.policy)?);
    let metrics = Metric::parse_list(&args.metrics)?;
    let opts = EvalOptions {
        missing_queries: if args.missing_as_zero {
            MissingQueries::Zero
        } else {
            MissingQueries::Skip
        },
        ..EvalOptions::default()
    };
    let report = evaluate(&qrels, &run, &metrics, &opts)
        .with_context(|| format!("evaluating {}", args.run.display()))?;
    let name = args
        .run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    println!("{}", format_table(&[(name, &report)], &metrics));
    if let Some(out) = &args.output {
        report.write_json(out, args.per_query)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
