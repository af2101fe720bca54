//! colzero-eval: BEIR loading, TREC run files and retrieval metrics with the exact
//! semantics of trec_eval / pytrec_eval.
//!
//! Contract: framework-free (never depends on candle or colzero-model). Runs are
//! [`colzero_core::Run`]s (query id -> [`colzero_core::Hit`]s). Every reader reports
//! `file:line: reason` on bad input, every writer is atomic.
//!
//! ```no_run
//! use colzero_eval::{BeirDataset, EvalOptions, Metric, Policy, evaluate, read_run, write_run,
//!                    apply_policies, format_table};
//! # fn main() -> colzero_eval::Result<()> {
//! let ds = BeirDataset::load("shared/data/beir/scifact".as_ref(), "test")?;
//! // ds.corpus: Vec<Document> in file order (doc.full_text() = f"{title} {text}".strip())
//! // ds.queries: the split's queries, in qrels order; ds.qrels: Qrels
//! let mut run = read_run("run.trec".as_ref())?;
//! apply_policies(&mut run, &Policy::parse_list("remove-self-hits")?);
//! let metrics = Metric::parse_list("ndcg@10,recall@100,mrr@10,map@100")?;
//! let report = evaluate(&ds.qrels, &run, &metrics, &EvalOptions::default())?;
//! println!("{}", format_table(&[("my-model", &report)], &metrics));
//! report.write_json("out/metrics.json".as_ref(), /* per_query */ false)?;
//! write_run("out/run.trec".as_ref(), &run, "colzero")?;
//! # Ok(()) }
//! ```
//!
//! Modules: [`beir`] (dataset loader), [`qrels`] (BEIR TSV and TREC qrels), [`run`]
//! (TREC run files), [`metric`] (metric names), [`evaluate`] (semantics: ranking ties,
//! relevance levels, query selection — read its docs), [`policy`] (named run
//! transformations), [`report`] (per-query values, means, JSON), [`table`] (CLI table),
//! [`text`] (Python `str.strip` semantics), [`ablation`] (variant x stage by dataset
//! table: Markdown, JSON), [`plot`] (PNG bar chart of that table, loss/lr curves).

pub mod ablation;
pub mod beir;
pub mod coverage;
pub mod error;
pub mod evaluate;
pub mod metric;
pub mod plot;
pub mod policy;
pub mod qrels;
pub mod report;
pub mod run;
pub mod table;
pub mod text;

pub use ablation::{AblationRow, AblationTable};
pub use beir::{load_corpus, load_queries, stream_corpus, BeirDataset, Document, Query};
pub use coverage::check_same_documents;
pub use error::{EvalError, Result};
pub use evaluate::{evaluate, evaluate_query, trec_order, EvalOptions, MissingQueries};
pub use metric::{Metric, MetricKind};
pub use policy::{apply_policies, Policy};
pub use qrels::{Qrels, QrelsFormat};
pub use report::Report;
pub use run::{read_run, write_run};
pub use table::{format_table, format_table_titled};
pub use text::{document_text, py_strip};
