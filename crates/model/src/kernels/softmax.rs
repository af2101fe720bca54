//! Fused softmax over the last dimension, plain and "masked scaled" (attention scores).
//!
//! Contract: `softmax_last(x) = softmax(x, -1)`; `masked_softmax(x, mask, scale) =
//! softmax(x * scale + mask, -1)` where `mask` is additive and broadcastable to `x`
//! (typically `[b,1,1,t]` or `[b,1,t,t]` for `x: [b,h,t,t]`); it is read in place through
//! its broadcast strides, never materialised. Gradients flow to `x` only (the mask is
//! treated as a constant). Backward: `dx = scale * y * (g - sum(g * y))`.
//! A row whose logits are all `-inf` (fully masked) gives all zeros and zero gradient.

use super::{last_dim, map_row_blocks, math, prep, simd_fn, with_f32};
use crate::Result;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};

/// Fused, differentiable softmax over the last dimension.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let y = prep(x, "softmax_last")?.apply_op1(SoftmaxOp { scale: 1.0 })?;
    Ok(y.to_dtype(dtype)?)
}

/// Fused, differentiable `softmax(x * scale + mask)` over the last dim (gradient to `x`).
pub fn masked_softmax(x: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = prep(x, "masked_softmax")?;
    let op = SoftmaxOp {
        scale: scale as f32,
    };
    let y = match mask {
        None => xf.apply_op1(op)?,
        Some(m) => {
            let m = if m.dtype() == DType::F32 {
                m.clone()
            } else {
                m.to_dtype(DType::F32)?
            };
            let m = m.broadcast_as(xf.shape())?;
            xf.apply_op2(&m, op)?
        }
    };
    Ok(y.to_dtype(dtype)?)
}

struct SoftmaxOp {
    scale: f32,
}

/// Softmax in place over a row that already holds the logits.
#[inline(always)]
pub(crate) fn softmax_row(yr: &mut [f32]) {
    let m = math::max(yr);
    if m == f32::NEG_INFINITY {
        yr.fill(0.0);
        return;
    }
    let mut acc = [0f32; 8];
    let mut chunks = yr.chunks_exact_mut(8);
    for c in &mut chunks {
        for k in 0..8 {
            c[k] = math::exp(c[k] - m);
            acc[k] += c[k];
        }
    }
    let mut s = 0f32;
    for v in chunks.into_remainder() {
        *v = math::exp(*v - m);
        s += *v;
    }
    let inv = 1.0 / (s + acc.iter().sum::<f32>());
    for v in yr.iter_mut() {
        *v *= inv;
    }
}

simd_fn! {
    fn fwd_block(x: &[f32], d: usize, scale: f32, out: &mut [f32]) {
        for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            if scale == 1.0 {
                yr.copy_from_slice(xr);
            } else {
                for (y, &v) in yr.iter_mut().zip(xr) {
                    *y = v * scale;
                }
            }
            softmax_row(yr);
        }
    }
}

simd_fn! {
    /// `mask` is the whole storage; `moffs[r]` the offset of row r, `ms` its last stride.
    fn fwd_masked_block(x: &[f32], d: usize, scale: f32, mask: &[f32], moffs: &[usize], ms: usize, out: &mut [f32]) {
        for ((xr, yr), &mo) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).zip(moffs) {
            match ms {
                1 => {
                    for ((y, &v), &m) in yr.iter_mut().zip(xr).zip(&mask[mo..mo + d]) {
                        *y = v * scale + m;
                    }
                }
                0 => {
                    let mv = mask[mo];
                    for (y, &v) in yr.iter_mut().zip(xr) {
                        *y = v * scale + mv;
                    }
                }
                _ => {
                    for (i, (y, &v)) in yr.iter_mut().zip(xr).enumerate() {
                        *y = v * scale + mask[mo + i * ms];
                    }
                }
            }
            softmax_row(yr);
        }
    }
}

simd_fn! {
    fn bwd_block(y: &[f32], g: &[f32], d: usize, scale: f32, dx: &mut [f32]) {
        for ((yr, gr), dr) in y.chunks_exact(d).zip(g.chunks_exact(d)).zip(dx.chunks_exact_mut(d)) {
            let s = math::dot(gr, yr);
            for ((dv, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                *dv = scale * yv * (gv - s);
            }
        }
    }
}

/// Offsets of the first element of every row of a (broadcast) layout.
fn row_offsets(l: &Layout) -> Vec<usize> {
    let dims = l.dims();
    let strides = l.stride();
    let lead = dims.len().saturating_sub(1);
    let rows: usize = dims[..lead].iter().product();
    let mut offs = Vec::with_capacity(rows);
    let mut idx = vec![0usize; lead];
    for _ in 0..rows {
        offs.push(l.start_offset() + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>());
        for k in (0..lead).rev() {
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    offs
}

impl SoftmaxOp {
    fn grad(&self, res: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let d = last_dim(res);
        let dx = with_f32(res, "softmax bwd y", |ys| {
            with_f32(g, "softmax bwd grad", |gs| {
                let mut dx = vec![0f32; ys.len()];
                if d > 0 {
                    map_row_blocks(&mut dx, d, |r0, blk| {
                        let rng = r0 * d..r0 * d + blk.len();
                        bwd_block(&ys[rng.clone()], &gs[rng], d, self.scale, blk)
                    });
                }
                Ok(dx)
            })
        })?;
        Tensor::from_vec(dx, res.shape(), res.device())
    }
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "colzero-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::cpu_f32(s, l, "softmax x")?;
        let d = l.dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; x.len()];
        if d > 0 {
            map_row_blocks(&mut out, d, |r0, blk| {
                fwd_block(&x[r0 * d..r0 * d + blk.len()], d, self.scale, blk)
            });
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.grad(res, g)?))
    }
}

impl CustomOp2 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "colzero-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::cpu_f32(s1, l1, "masked_softmax x")?;
        let mask = match s2 {
            CpuStorage::F32(v) => v.as_slice(),
            other => candle_core::bail!(
                "masked_softmax mask: expected f32, found {:?}",
                other.dtype()
            ),
        };
        if l2.dims() != l1.dims() {
            candle_core::bail!(
                "masked_softmax: mask layout {:?} vs x {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let d = l1.dims().last().copied().unwrap_or(1);
        let ms = l2.stride().last().copied().unwrap_or(0);
        let moffs = row_offsets(l2);
        let mut out = vec![0f32; x.len()];
        if d > 0 {
            map_row_blocks(&mut out, d, |r0, blk| {
                let rows = blk.len() / d;
                let xs = &x[r0 * d..r0 * d + blk.len()];
                fwd_masked_block(xs, d, self.scale, mask, &moffs[r0..r0 + rows], ms, blk)
            });
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(self.grad(res, g)?), None))
    }
}
