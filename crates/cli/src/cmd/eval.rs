//! `colzero eval`: a model (ColBERT or dense) on a BEIR dataset directory.
//!
//! Contract: encodes the corpus (`f"{title} {text}".strip()`) and the split's queries,
//! ranks every document by exact MaxSim (dense: dot product) keeping the top `--top-k`,
//! applies the policies, prints a metrics table. With `--index`, documents are not
//! encoded: queries are searched through the PLAID index instead, whose live documents
//! must be exactly the corpus (same ids, same count; a mismatch is an error saying how
//! many ids differ, with examples). With `--embeddings
//! FILE`, documents are not encoded either: their multi-vectors come from a store written
//! earlier (`--save-embeddings` or `colzero encode`), which must hold every corpus id as
//! document embeddings of the same `--model` (a query store or another model's store is
//! refused).
//! It then writes OUT_DIR/metrics.json (keys such as "ndcg@10"), OUT_DIR/run.trec and
//! OUT_DIR/eval.json (settings and wall times); with `--save-embeddings`, also
//! OUT_DIR/documents.safetensors and OUT_DIR/queries.safetensors (reusable by
//! `colzero index build --embeddings`). An output file that would replace an input (the
//! embeddings, a dataset file, anything in the model or index folder) is refused first.

use super::{
    load_encoder, open_document_store, write_store, Ctx, EncoderArgs, Mode, PlaidArgs, Searcher,
};
use anyhow::{Context, Result};
use colzero_core::{fsutil, MultiVector, Run};
use colzero_eval::{
    apply_policies, check_same_documents, evaluate, format_table, write_run, BeirDataset,
    EvalOptions, Metric, Policy,
};
use colzero_index::{ExactIndex, PlaidIndex};
use colzero_model::InputKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `colzero eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (ColBERT or dense checkpoint).
    #[arg(long)]
    pub model: PathBuf,
    /// BEIR dataset directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Qrels split.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Output directory for metrics.json, run.trec and eval.json.
    #[arg(long)]
    pub output: PathBuf,
    /// Documents kept per query in the run.
    #[arg(long, default_value_t = 100, value_parser = super::positive)]
    pub top_k: usize,
    /// Metrics, comma-separated.
    #[arg(long, default_value = "ndcg@10,recall@100,mrr@10,map@100")]
    pub metrics: String,
    /// Run policies, comma-separated (e.g. remove-self-hits for ArguAna/Quora).
    #[arg(long, default_value = "")]
    pub policy: String,
    /// How to run the model.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Search this PLAID index (built from the dataset's corpus with the same model)
    /// instead of encoding the corpus and searching exactly.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// Take document multi-vectors from this store instead of encoding the corpus.
    #[arg(long, conflicts_with = "index")]
    pub embeddings: Option<PathBuf>,
    /// Also write the document and query multi-vectors to OUT_DIR/{documents,queries}.safetensors.
    #[arg(long)]
    pub save_embeddings: bool,
    #[command(flatten)]
    pub plaid: PlaidArgs,
    #[command(flatten)]
    pub encoder: EncoderArgs,
}

/// Runs `colzero eval`.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    check_outputs(&args)?;
    let metrics = Metric::parse_list(&args.metrics)?;
    let policies = Policy::parse_list(&args.policy)?;
    let t0 = Instant::now();
    let ds = BeirDataset::load(&args.dataset, &args.split)?;
    let model = load_encoder(&args.model, args.mode, &args.encoder)?;
    let t_load = t0.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} documents, {} queries; model: {}",
        args.dataset.display(),
        ds.corpus.len(),
        ds.queries.len(),
        model.describe()
    );

    if args.save_embeddings {
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
    }
    let t1 = Instant::now();
    let (searcher, n_vectors) = match &args.index {
        Some(dir) => {
            let idx = PlaidIndex::open(dir)?;
            // A model whose files cannot be fingerprinted is not checked here (loading
            // it below reports what is wrong with it).
            let fp = colzero_model::model_fingerprint(&args.model).ok();
            let what = format!("--model {}", args.model.display());
            super::check_index_model(&idx, fp.as_deref(), &what)?;
            check_same_documents(
                &format!("{}", ds.dir.join("corpus.jsonl").display()),
                ds.corpus.iter().map(|d| d.id.as_str()),
                &format!("index {}", dir.display()),
                idx.ids(),
            )?;
            let n = idx.info().num_tokens as usize;
            (Searcher::Plaid(Box::new(idx), args.plaid.params()), n)
        }
        None => {
            let doc_embs = match &args.embeddings {
                Some(path) => load_documents(path, &ds, &args.model)?,
                None => {
                    let texts: Vec<String> = ds.corpus.iter().map(|d| d.full_text()).collect();
                    model.encode(
                        &texts,
                        InputKind::Document,
                        &args.encoder.encode_options(ctx),
                    )?
                }
            };
            let n: usize = doc_embs.iter().map(|e| e.n_tokens()).sum();
            let ids = ds.corpus.iter().map(|d| d.id.clone());
            let docs: Vec<(String, MultiVector)> = ids.zip(doc_embs).collect();
            if args.save_embeddings && args.embeddings.is_none() {
                let path = args.output.join("documents.safetensors");
                write_store(&path, docs.iter().cloned(), "document", &args.model)?;
            }
            let idx = ExactIndex::from_embeddings(docs)?;
            (Searcher::Exact(idx), n)
        }
    };
    let t_docs = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let q_texts: Vec<String> = ds.queries.iter().map(|q| q.text.clone()).collect();
    let q_embs = model.encode(
        &q_texts,
        InputKind::Query,
        &args.encoder.encode_options(ctx),
    )?;
    let t_queries = t2.elapsed().as_secs_f64();
    if args.save_embeddings {
        let ids = ds.queries.iter().map(|q| q.id.clone());
        let path = args.output.join("queries.safetensors");
        write_store(&path, ids.zip(q_embs.iter().cloned()), "query", &args.model)?;
    }

    let t3 = Instant::now();
    let hits = searcher.search_batch(&q_embs, args.top_k, None)?;
    let qps = q_embs.len() as f64 / t3.elapsed().as_secs_f64().max(1e-9);
    let t_search = t3.elapsed().as_secs_f64();
    let mut run: Run = ds.queries.iter().map(|q| q.id.clone()).zip(hits).collect();
    apply_policies(&mut run, &policies);
    let report = evaluate(&ds.qrels, &run, &metrics, &EvalOptions::default())?;

    let name = format!(
        "{} / {}",
        args.model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        args.dataset
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    println!("{}", format_table(&[(name, &report)], &metrics));
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    report.write_json(&args.output.join("metrics.json"), true)?;
    write_run(&args.output.join("run.trec"), &run, "colzero")?;
    let info = serde_json::json!({
        "model": args.model,
        "model_settings": model.describe(),
        "dataset": args.dataset,
        "split": args.split,
        "documents": ds.corpus.len(),
        "document_vectors": n_vectors,
        "queries": ds.queries.len(),
        "top_k": args.top_k,
        "index": args.index,
        "queries_per_second": qps,
        "policies": args.policy,
        "threads": rayon::current_num_threads(),
        "seconds": {
            "load": t_load,
            "encode_documents": t_docs,
            "encode_queries": t_queries,
            "search": t_search,
            "total": t0.elapsed().as_secs_f64(),
        },
        "metrics": report.to_json(false),
    });
    fsutil::atomic_write_bytes(
        &args.output.join("eval.json"),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    eprintln!(
        "documents {t_docs:.1}s, encode queries {t_queries:.1}s, search {t_search:.2}s ({qps:.1} queries/s); wrote {}",
        args.output.display()
    );
    Ok(())
}

/// The corpus's document multi-vectors, in corpus order, from a store written earlier.
/// Refuses an output file of OUT_DIR that is one of the inputs or part of the model or
/// index folder, before any work.
fn check_outputs(args: &Args) -> Result<()> {
    let none = Path::new("");
    let inputs = [
        ("--model", args.model.as_path()),
        ("--index", args.index.as_deref().unwrap_or(none)),
        ("--dataset", args.dataset.as_path()),
        ("--embeddings", args.embeddings.as_deref().unwrap_or(none)),
    ];
    let mut files = vec!["metrics.json", "run.trec", "eval.json"];
    if args.save_embeddings {
        files.push("queries.safetensors");
        if args.embeddings.is_none() {
            files.push("documents.safetensors");
        }
    }
    for f in files {
        let out = args.output.join(f);
        let flag = format!("--output (its {f})");
        fsutil::ensure_output_not_input(&flag, &out, &inputs)?;
        fsutil::ensure_not_part_of(&flag, &out, &inputs[..2])?;
    }
    fsutil::ensure_output_not_input("--output", &args.output, &inputs[..2])?;
    Ok(())
}

/// The corpus's document multi-vectors, in corpus order; the store must hold document
/// embeddings of `model` (see `open_document_store`).
fn load_documents(path: &Path, ds: &BeirDataset, model: &Path) -> Result<Vec<MultiVector>> {
    let store = open_document_store(path, "eval --embeddings", Some(model))?;
    let mut by_id: std::collections::HashMap<String, MultiVector> =
        store.load_all()?.into_iter().collect();
    ds.corpus
        .iter()
        .map(|d| {
            by_id.remove(&d.id).with_context(|| {
                format!(
                    "{}: no embedding for corpus document {:?}",
                    path.display(),
                    d.id
                )
            })
        })
        .collect()
}
