//! colzero-index: exact and PLAID-compressed late-interaction (MaxSim) search.
//!
//! Contract: this crate never depends on a tensor framework or on the model; embeddings
//! arrive as `colzero_core::MultiVector` (or an `EmbeddingStore`) and results leave as
//! `colzero_core::Hit` lists, best first, ties broken by external id ascending.
//! - [`ExactIndex`]: multi-threaded brute-force MaxSim (the ground truth).
//! - [`PlaidIndex`]: compressed on-disk index (centroids + quantized residuals + IVF),
//!   built in bounded memory with [`IndexBuilder`] (or [`build_index`]), searched in four
//!   stages ([`SearchParams`]), updated with `add`/`delete` without renumbering through
//!   the one [`IndexWriter`] per directory (readers keep their snapshot).
//! - [`IdFilter`]: restricts any search to a subset of external ids.
//! - [`Searcher`]: the one retrieval interface over both (what the CLI and the service
//!   search through).

// Public: the API (re-exported below) and what tools outside the crate use (BM25,
// kernels for benchmarks, the on-disk format for tests and tools, k-means sampling,
// synthetic corpora, the writer protocol). Everything else is internal.
pub mod bm25;
mod build;
mod chunk;
mod codec;
pub mod error;
mod exact;
mod filter;
pub mod format;
mod interaction;
mod ivf;
pub mod kernel;
pub mod kmeans;
mod locks;
mod panel;
mod plaid;
mod rerank8;
mod search;
mod searcher;
mod simd;
pub mod synthetic;
mod update;
pub mod writer;

pub use build::{build_index, BuildConfig, IndexBuilder};
pub use error::{IndexError, Result};
pub use exact::ExactIndex;
pub use filter::IdFilter;
pub use format::FORMAT_VERSION;
pub use plaid::{IndexInfo, PartBytes, PlaidIndex};
pub use search::SearchParams;
pub use searcher::Searcher;
pub use writer::IndexWriter;
