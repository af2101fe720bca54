//! Fused exact GELU (`x * Phi(x)`, erf-based: PyTorch `nn.GELU()` / HF "gelu") with backward.
//!
//! Contract: `gelu(x) = 0.5 * x * (1 + erf(x / sqrt 2))`, computed through an erfc
//! approximation with relative error < 1e-6 (so even the negative tail, where the value is
//! tiny, is accurate relatively). Backward: `dx = g * (Phi(x) + x * phi(x))`, with
//! `phi(x) = exp(-x^2/2) / sqrt(2 pi)`. One read and one write per pass.

use super::{map_row_blocks, math, prep, simd_fn, with_f32};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// Fused, differentiable exact (erf) GELU.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let y = prep(x, "gelu")?.apply_op1(GeluOp)?;
    Ok(y.to_dtype(dtype)?)
}

struct GeluOp;

/// Chunk length for the element-wise loops (any row length works; this only sets blocking).
const CHUNK: usize = 1024;

simd_fn! {
    fn fwd_block(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * math::normal_cdf(v);
        }
    }
}

simd_fn! {
    fn bwd_block(x: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &v), &gv) in out.iter_mut().zip(x).zip(g) {
            *o = gv * (math::normal_cdf(v) + v * math::normal_pdf(v));
        }
    }
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "colzero-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::cpu_f32(s, l, "gelu x")?;
        let mut out = vec![0f32; x.len()];
        map_row_blocks(&mut out, CHUNK, |r0, blk| {
            fwd_block(&x[r0 * CHUNK..r0 * CHUNK + blk.len()], blk)
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = with_f32(x, "gelu bwd x", |xs| {
            with_f32(g, "gelu bwd grad", |gs| {
                let mut dx = vec![0f32; xs.len()];
                map_row_blocks(&mut dx, CHUNK, |r0, blk| {
                    let rng = r0 * CHUNK..r0 * CHUNK + blk.len();
                    bwd_block(&xs[rng.clone()], &gs[rng], blk)
                });
                Ok(dx)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
