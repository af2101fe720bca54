//! colzero-model: PyLate-exact ColBERT (and dense) encoders on candle.
//!
//! Contract: every op used in a forward pass has a backward pass (no candle fused ops
//! without `bwd`), so any model built here trains all of its weights. Public surface:
//! backbones (BERT, ModernBERT) behind [`backbone::Backbone`], the differentiable
//! building blocks in [`nn`], and the ColBERT/dense encoders that turn text into
//! `colzero_core::MultiVector`s.

pub mod backbone;
pub mod error;
pub mod kernels;
pub mod nn;

pub use backbone::Backbone;
pub use error::{ModelError, Result};
pub use nn::ForwardCtx;
