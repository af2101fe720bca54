//! One micro-batch: tokenize like PyLate's collator, forward, loss, gradients.
//!
//! Contract: [`micro_step`] returns the loss value and the gradients of `params` for one
//! batch. Texts are tokenized with `pad=True` (queries and documents padded to their
//! lengths, as PyLate's `ColBERTCollator`), columns are embedded in PyLate's order
//! (queries, positives, negative 1, ...) with the given [`ForwardCtx`] (so dropout draws
//! are deterministic), document masks are the model's output masks (attention AND NOT
//! skiplist) and the query mask is passed only without query expansion — all exactly
//! as PyLate's losses do. Cached contrastive runs GradCache on the same columns.

use crate::cached::{cached_contrastive, CachedOptions};
use crate::data::{Example, KdExample};
use crate::loss::{Contrastive, Distillation};
use crate::optim::{Grads, Params};
use crate::{Result, TrainError};
use candle_core::{DType, Tensor};
use colzero_model::{ColBERT, ForwardCtx, InputKind, TokenBatch};
use std::ops::Range;

/// A batch of training examples.
#[derive(Clone, Debug)]
pub enum Batch {
    /// Contrastive pairs/triplets.
    Pairs(Vec<Example>),
    /// Distillation rows.
    Kd(Vec<KdExample>),
}

impl Batch {
    /// Examples in the batch.
    pub fn len(&self) -> usize {
        match self {
            Batch::Pairs(v) => v.len(),
            Batch::Kd(v) => v.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The loss of a stage.
#[derive(Clone, Debug)]
pub enum StageLoss {
    /// In-batch + hard negatives contrastive loss.
    Contrastive(Contrastive),
    /// The same loss through GradCache.
    Cached(Contrastive, CachedOptions),
    /// KL distillation from teacher scores.
    Distillation(Distillation),
}

/// Rows `rows` of a tokenized batch.
pub fn slice_batch(b: &TokenBatch, rows: Range<usize>) -> Result<TokenBatch> {
    let n = rows.len();
    Ok(TokenBatch {
        input_ids: b.input_ids.narrow(0, rows.start, n)?,
        attention_mask: b.attention_mask.narrow(0, rows.start, n)?,
        output_mask: b.output_mask.narrow(0, rows.start, n)?,
        ids: b.ids[rows.clone()].to_vec(),
        attention: b.attention[rows.clone()].to_vec(),
        keep: b.keep[rows].to_vec(),
        kind: b.kind,
    })
}

fn mask_of(b: &TokenBatch, device: &candle_core::Device) -> Result<Tensor> {
    Ok(b.output_mask.to_dtype(DType::F32)?.to_device(device)?)
}

fn columns(batch: &[Example]) -> Vec<Vec<&str>> {
    let n_neg = batch.first().map_or(0, |e| e.negatives.len());
    let mut cols = vec![
        batch.iter().map(|e| e.query.as_str()).collect::<Vec<_>>(),
        batch.iter().map(|e| e.positive.as_str()).collect(),
    ];
    for k in 0..n_neg {
        cols.push(batch.iter().map(|e| e.negatives[k].as_str()).collect());
    }
    cols
}

/// Loss value and parameter gradients of one micro-batch (see module docs).
pub fn micro_step(
    model: &ColBERT,
    loss: &StageLoss,
    batch: &Batch,
    params: &Params,
    ctx: &mut ForwardCtx,
) -> Result<(f32, Grads)> {
    let use_q_mask = !model.config().do_query_expansion;
    match (loss, batch) {
        (StageLoss::Contrastive(c), Batch::Pairs(ex)) => {
            let cols = columns(ex);
            let mut embs = Vec::with_capacity(cols.len());
            let mut masks = Vec::with_capacity(cols.len());
            for (i, texts) in cols.iter().enumerate() {
                let kind = if i == 0 { InputKind::Query } else { InputKind::Document };
                let tb = model.tokenize_padded(texts, kind)?;
                embs.push(model.forward(&tb, ctx)?);
                masks.push(mask_of(&tb, model.device())?);
            }
            let docs = Tensor::stack(&embs[1..], 1)?;
            let dmask = Tensor::stack(&masks[1..], 1)?;
            let qm = use_q_mask.then(|| masks[0].clone());
            let l = c.loss(&embs[0], qm.as_ref(), &docs, Some(&dmask))?;
            let value = l.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            let g = l.backward()?;
            Ok((value, Grads::from_store(params, &g)))
        }
        (StageLoss::Cached(c, opts), Batch::Pairs(ex)) => {
            let cols = columns(ex);
            let mut toks = Vec::with_capacity(cols.len());
            let mut masks = Vec::with_capacity(cols.len());
            for (i, texts) in cols.iter().enumerate() {
                let kind = if i == 0 { InputKind::Query } else { InputKind::Document };
                let tb = model.tokenize_padded(texts, kind)?;
                masks.push(mask_of(&tb, model.device())?);
                toks.push(tb);
            }
            let encode = |col: usize, rows: Range<usize>, ctx: &mut ForwardCtx| -> Result<Tensor> {
                let sub = slice_batch(&toks[col], rows)?;
                Ok(model.forward(&sub, ctx)?)
            };
            let out = cached_contrastive(
                c,
                opts,
                cols.len(),
                ex.len(),
                &encode,
                &masks,
                use_q_mask,
                params.vars(),
                ctx,
            )?;
            Ok((out.loss, Grads::from_store(params, &out.grads)))
        }
        (StageLoss::Distillation(d), Batch::Kd(ex)) => {
            let b = ex.len();
            let n = ex.first().map_or(0, |e| e.documents.len());
            let queries: Vec<&str> = ex.iter().map(|e| e.query.as_str()).collect();
            let docs: Vec<&str> = ex.iter().flat_map(|e| e.documents.iter().map(String::as_str)).collect();
            let qb = model.tokenize_padded(&queries, InputKind::Query)?;
            let q = model.forward(&qb, ctx)?;
            let db = model.tokenize_padded(&docs, InputKind::Document)?;
            let de = model.forward(&db, ctx)?;
            let (_, t, h) = de.dims3()?;
            let de = de.reshape((b, n, t, h))?;
            let dm = mask_of(&db, model.device())?.reshape((b, n, t))?;
            let teacher: Vec<f32> = ex.iter().flat_map(|e| e.scores.iter().copied()).collect();
            let teacher = Tensor::from_vec(teacher, (b, n), model.device())?;
            let qm = if use_q_mask { Some(mask_of(&qb, model.device())?) } else { None };
            let l = d.loss(&q, qm.as_ref(), &de, Some(&dm), &teacher)?;
            let value = l.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            let g = l.backward()?;
            Ok((value, Grads::from_store(params, &g)))
        }
        _ => Err(TrainError::Invalid(
            "loss and data do not match: contrastive losses need pairs/triplets, distillation needs KD data".into(),
        )),
    }
}
