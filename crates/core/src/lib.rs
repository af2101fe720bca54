//! colzero-core: the framework-free vocabulary every colzero crate speaks.
//!
//! Contract: nothing here depends on a tensor framework. Embeddings travel between the
//! model, the index and the evaluator as [`MultiVector`] (a ragged `tokens x dim` f32
//! matrix, one per text); rankings travel as [`Hit`] lists; files are written atomically
//! through [`fsutil::atomic_write`]; JSONL input is read through [`jsonl`] so that every
//! malformed line is reported as `file:line: reason`.

#[cfg(feature = "mimalloc")]
pub mod alloc;
pub mod cpu;
pub mod embedding;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod hash;
pub mod jsonl;
pub mod lock;
pub mod maxsim;
pub mod pool;
pub mod ranking;
pub mod store;
pub mod testing;

pub use embedding::MultiVector;
pub use error::{CoreError, Result};
pub use maxsim::{maxsim, maxsim_scores};
pub use ranking::{top_k, Hit, Run};
pub use store::{EmbeddingStore, StoreWriter};

/// External identifier of a document, exactly as the user's data spells it.
pub type DocId = String;
/// External identifier of a query, exactly as the user's data spells it.
pub type QueryId = String;
