//! The backbone contract shared by BERT and ModernBERT.
//!
//! Contract: `forward_t(input_ids [b,t] u32, attention_mask [b,t] u32, ctx)` returns the
//! last hidden states `[b, t, hidden]` in f32. Attention never looks at positions whose
//! mask is 0; their own output rows are whatever the model computes for them (eager
//! semantics: non-zero), exactly like PyTorch eager/SDPA attention. Dropout is applied
//! only when `ctx.train` is true, drawing from `ctx`'s seeded RNG.

use crate::nn::ForwardCtx;
use crate::Result;
use candle_core::Tensor;

/// A transformer encoder that maps token ids to contextual hidden states.
pub trait Backbone: Send + Sync {
    /// Runs the encoder; see the module docs for shapes and semantics.
    fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor>;

    /// Width of the hidden states.
    fn hidden_size(&self) -> usize;
}
