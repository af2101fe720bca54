//! colzero-train: one ColBERT training stage, numerically faithful to PyLate.
//!
//! Contract: [`scores`] and [`loss`] reproduce PyLate's MaxSim scores and its
//! Contrastive / Distillation losses on padded, masked embeddings (golden-tested against
//! PyTorch); [`cached`] is GradCache (same loss and gradients as Contrastive, memory
//! bounded by the mini-batch).

pub mod cached;
pub mod data;
pub mod error;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod scores;

pub use error::{Result, TrainError};
pub use loss::{Contrastive, Distillation, Temperature};
pub use scores::MaskMode;
