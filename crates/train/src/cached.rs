//! CachedContrastive (GradCache): the Contrastive loss with memory bounded by the
//! mini-batch instead of the batch.
//!
//! Contract (mirrors `pylate/losses/cached_contrastive.py`): with an encoder
//! `encode(column, rows, ctx) -> [rows, T, H]` (normalised embeddings of rows of column
//! 0 = queries, 1 = positives, 2.. = hard negatives):
//! 1. every column is embedded in chunks of `mini_batch_size`; the [`ForwardCtx`] is
//!    cloned before each chunk (so dropout can be replayed bit for bit) and the result is
//!    detached, so only one chunk's activations are alive at a time;
//! 2. the loss is computed on the cached embeddings in query chunks of
//!    `score_mini_batch_size` (summed CE per chunk, backward per chunk, total / B), which
//!    yields d loss / d embeddings;
//! 3. each chunk is re-embedded with its saved context and the surrogate
//!    `Σ reps ⊙ cached_grad` is back-propagated; parameter gradients are accumulated
//!    across chunks (only the gradients of `params` are kept).
//!
//! The loss and the gradients equal those of [`Contrastive::loss`] on the same
//! embeddings (tested against PyLate's Contrastive). Note: PyLate 1.6.0's own
//! CachedContrastive returns gradients B times larger (see
//! [`CachedOptions::pylate_grad_scale`], which reproduces it). A learnable temperature receives its gradient in
//! step 2. `ctx` ends in the state after step 1, like a single forward of every chunk.

use crate::loss::{Contrastive, Temperature};
use crate::{Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use colzero_model::ForwardCtx;
use std::ops::Range;

/// Chunk sizes of GradCache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedOptions {
    /// Rows per encoder forward (memory knob).
    pub mini_batch_size: usize,
    /// Queries per scoring chunk (bounds the `[m, B·N, s, t]` similarity tensor).
    pub score_mini_batch_size: usize,
    /// Reproduce PyLate 1.6.0 exactly: its per-chunk backward runs on the *summed* CE
    /// before the division by B, so its gradients are B x those of Contrastive (the loss
    /// value is the mean). Off by default: gradients then equal Contrastive's.
    pub pylate_grad_scale: bool,
}

impl CachedOptions {
    /// Chunks of `mini_batch_size` for both the encoder and the scoring (PyLate default).
    pub fn new(mini_batch_size: usize) -> Self {
        Self {
            mini_batch_size,
            score_mini_batch_size: mini_batch_size,
            pylate_grad_scale: false,
        }
    }
}

/// Result of one GradCache step.
#[derive(Debug)]
pub struct CachedOutput {
    /// The loss value (same as Contrastive's).
    pub loss: f32,
    /// Gradients of `params` (and of a learnable temperature), nothing else.
    pub grads: GradStore,
}

fn add_grad(store: &mut GradStore, t: &Tensor, g: &Tensor) -> Result<()> {
    let new = match store.get(t) {
        Some(old) => old.add(g)?,
        None => g.clone(),
    };
    store.insert(t, new);
    Ok(())
}

fn chunks(n: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    let size = size.max(1);
    (0..n).step_by(size).map(move |b| b..(b + size).min(n))
}

/// Runs GradCache for a batch of `batch` rows and `n_columns` columns (query + N docs).
/// `masks[c]` is column c's `[B, T_c]` mask; the query mask is used only when
/// `use_query_mask` (PyLate: `do_query_expansion == false`).
#[allow(clippy::too_many_arguments)]
pub fn cached_contrastive<F>(
    loss: &Contrastive,
    opts: &CachedOptions,
    n_columns: usize,
    batch: usize,
    encode: &F,
    masks: &[Tensor],
    use_query_mask: bool,
    params: &[Var],
    ctx: &mut ForwardCtx,
) -> Result<CachedOutput>
where
    F: Fn(usize, Range<usize>, &mut ForwardCtx) -> Result<Tensor>,
{
    if n_columns < 2 || masks.len() != n_columns || batch == 0 {
        return Err(TrainError::Invalid(format!(
            "cached contrastive needs a query column and >= 1 document column with one mask each \
             (columns {n_columns}, masks {}, batch {batch})",
            masks.len()
        )));
    }
    // Step 1: chunked forward without keeping graphs; remember each chunk's RNG state.
    let mut cached: Vec<Var> = Vec::with_capacity(n_columns);
    let mut states: Vec<Vec<(Range<usize>, ForwardCtx)>> = Vec::with_capacity(n_columns);
    for col in 0..n_columns {
        let mut parts = Vec::new();
        let mut col_states = Vec::new();
        for rows in chunks(batch, opts.mini_batch_size) {
            col_states.push((rows.clone(), ctx.clone()));
            let reps = encode(col, rows.clone(), ctx)?;
            if reps.dim(0)? != rows.len() {
                return Err(TrainError::shape(
                    "cached contrastive encoder",
                    format!("column {col} rows {rows:?} gave {:?}", reps.dims()),
                ));
            }
            parts.push(reps.detach());
        }
        cached.push(Var::from_tensor(&Tensor::cat(&parts, 0)?)?);
        states.push(col_states);
    }

    // Step 2: loss and d loss / d reps on the cached embeddings, in query chunks.
    let doc_tensors: Vec<Tensor> = cached[1..].iter().map(|v| v.as_tensor().clone()).collect();
    let docs = Tensor::stack(&doc_tensors, 1)?;
    let dmask = Tensor::stack(&masks[1..], 1)?;
    let scale = if loss.size_average {
        1.0 / batch as f64
    } else {
        1.0
    };
    let mut rep_grads = GradStore::default();
    let mut out_grads = GradStore::default();
    let mut total = 0f64;
    for rows in chunks(batch, opts.score_mini_batch_size) {
        let q = cached[0].as_tensor().narrow(0, rows.start, rows.len())?;
        let qm = if use_query_mask {
            Some(masks[0].narrow(0, rows.start, rows.len())?)
        } else {
            None
        };
        let l = loss.chunk_loss_sum(&q, qm.as_ref(), rows.start, &docs, Some(&dmask))?;
        total += l.to_scalar::<f32>()? as f64;
        let g = if opts.pylate_grad_scale {
            l.backward()?
        } else {
            (l * scale)?.backward()?
        };
        for v in &cached {
            if let Some(gv) = g.get(v.as_tensor()) {
                add_grad(&mut rep_grads, v.as_tensor(), gv)?;
            }
        }
        if let Temperature::Learnable(t) = &loss.temperature {
            if let Some(gt) = g.get(t.as_tensor()) {
                add_grad(&mut out_grads, t.as_tensor(), gt)?;
            }
        }
    }
    let loss_value = (total * scale) as f32;

    // Step 3: replay each chunk with its RNG state and back-propagate the cached grads.
    for (col, col_states) in states.into_iter().enumerate() {
        let Some(full_grad) = rep_grads.get(cached[col].as_tensor()) else {
            continue;
        };
        for (rows, state) in col_states {
            let mut replay = state;
            let reps = encode(col, rows.clone(), &mut replay)?;
            let gchunk = full_grad.narrow(0, rows.start, rows.len())?;
            let surrogate = reps.mul(&gchunk)?.sum_all()?;
            let g = surrogate.backward()?;
            for p in params {
                if let Some(gp) = g.get(p.as_tensor()) {
                    add_grad(&mut out_grads, p.as_tensor(), gp)?;
                }
            }
        }
    }
    Ok(CachedOutput {
        loss: loss_value,
        grads: out_grads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::l2_normalize;
    use candle_core::{Device, D};
    use colzero_model::nn::dropout;

    /// With dropout on, GradCache's replayed RNG gives exactly the gradients of a
    /// graph-keeping forward of the same chunks with the same RNG sequence.
    #[test]
    fn dropout_replay_gives_same_gradients_as_direct_chunked_forward() {
        let dev = Device::Cpu;
        let (b, t, hin, h) = (5usize, 4usize, 6usize, 8usize);
        let w = Var::from_tensor(&Tensor::randn(0f32, 1., (hin, h), &dev).unwrap()).unwrap();
        let inputs: Vec<Tensor> = (0..3)
            .map(|_| Tensor::randn(0f32, 1., (b, t, hin), &dev).unwrap())
            .collect();
        let masks: Vec<Tensor> = (0..3)
            .map(|_| Tensor::ones((b, t), candle_core::DType::F32, &dev).unwrap())
            .collect();
        let encode = |col: usize, rows: Range<usize>, ctx: &mut ForwardCtx| -> Result<Tensor> {
            let x = inputs[col].narrow(0, rows.start, rows.len())?;
            let x = dropout(&x, 0.3, ctx)?;
            l2_normalize(&x.broadcast_matmul(w.as_tensor())?)
        };
        let loss = Contrastive::new(0.1);
        let opts = CachedOptions::new(2);
        let mut ctx = ForwardCtx::train(42);
        let out = cached_contrastive(
            &loss,
            &opts,
            3,
            b,
            &encode,
            &masks,
            false,
            std::slice::from_ref(&w),
            &mut ctx,
        )
        .unwrap();

        // Reference: the same chunks, same RNG order, with the graph kept.
        let mut ref_ctx = ForwardCtx::train(42);
        let mut cols = Vec::new();
        for col in 0..3 {
            let parts: Vec<Tensor> = chunks(b, 2)
                .map(|r| encode(col, r, &mut ref_ctx).unwrap())
                .collect();
            cols.push(Tensor::cat(&parts, 0).unwrap());
        }
        let docs = Tensor::stack(&cols[1..], 1).unwrap();
        let l = loss.loss(&cols[0], None, &docs, None).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - out.loss).abs() < 1e-5);
        let g_ref = l.backward().unwrap();
        let a = g_ref.get(w.as_tensor()).unwrap();
        let c = out.grads.get(w.as_tensor()).unwrap();
        let diff = (a - c)
            .unwrap()
            .abs()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .max(0)
            .unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "max abs grad diff {diff}");
        // and the RNG really mattered: a different seed gives a different loss
        let mut other = ForwardCtx::train(43);
        let out2 = cached_contrastive(
            &loss,
            &opts,
            3,
            b,
            &encode,
            &masks,
            false,
            std::slice::from_ref(&w),
            &mut other,
        )
        .unwrap();
        assert!((out2.loss - out.loss).abs() > 1e-4);
    }
}
