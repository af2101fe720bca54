//! colzero-index: exact and PLAID-compressed late-interaction (MaxSim) search.
//!
//! Contract: this crate never depends on a tensor framework or on the model; embeddings
//! arrive as `colzero_core::MultiVector` (or an `EmbeddingStore`) and results leave as
//! `colzero_core::Hit` lists, best first, ties broken by external id ascending.
//! - [`ExactIndex`]: multi-threaded brute-force MaxSim (the ground truth).
//! - [`IdFilter`]: restricts any search to a subset of external ids.

pub mod error;
pub mod exact;
pub mod filter;
pub mod kernel;

pub use error::{IndexError, Result};
pub use exact::ExactIndex;
pub use filter::IdFilter;
