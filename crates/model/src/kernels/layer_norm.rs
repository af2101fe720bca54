//! Fused layer normalisation over the last dimension, with a fused backward pass.
//!
//! Contract: `layer_norm(x, w, b, eps) = (x - mean) / sqrt(var + eps) * w (+ b)` with the
//! biased variance over the last dim, exactly as `nn::layer_norm` (and PyTorch) define it.
//! Forward: per row, shifted two-pass moments on the L1-resident row (the row is read from
//! memory once), then one write. Backward recomputes mean/rstd and produces `dx`, `dw`, `db`
//! in one sweep:
//! `dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))`, `dw = sum_rows g*xhat`,
//! `db = sum_rows g` (per-block partial sums in f32, combined in f64).
//! A row of length 1 normalises to 0 (output = bias).

use super::{last_dim, map_row_blocks, math, prep, simd_fn, with_f32};
use crate::{ModelError, Result};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

/// Fused, differentiable layer norm over the last dim. `weight` and `bias` hold `d` values.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let d = last_dim(x);
    for (name, t) in [("weight", Some(weight)), ("bias", bias)] {
        if let Some(t) = t {
            if t.elem_count() != d {
                return Err(ModelError::Invalid(format!(
                    "layer_norm: {name} has shape {:?}, expected {d} values for input {:?}",
                    t.dims(),
                    x.dims()
                )));
            }
        }
    }
    let dtype = x.dtype();
    let xf = prep(x, "layer_norm")?;
    let wf = prep(weight, "layer_norm")?;
    let op = LayerNormOp { eps: eps as f32 };
    let y = match bias {
        Some(b) => xf.apply_op3(&wf, &prep(b, "layer_norm")?, op)?,
        None => xf.apply_op2(&wf, op)?,
    };
    Ok(y.to_dtype(dtype)?)
}

struct LayerNormOp {
    eps: f32,
}

simd_fn! {
    fn fwd_block(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32, out: &mut [f32]) {
        let d = w.len();
        let inv_d = 1.0 / d as f32;
        for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let (c, delta, rstd) = moments(xr, inv_d, eps);
            // Iterator zips (not index loops): no bounds/overflow checks, so LLVM vectorises.
            match b {
                Some(b) => {
                    for (((y, &xv), &wv), &bv) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                        *y = ((xv - c) - delta) * rstd * wv + bv;
                    }
                }
                None => {
                    for ((y, &xv), &wv) in yr.iter_mut().zip(xr).zip(w) {
                        *y = ((xv - c) - delta) * rstd * wv;
                    }
                }
            }
        }
    }
}

/// `(c, delta, rstd)` of one row: the mean is `c + delta` (kept split so that
/// `(x - c) - delta` stays exact for large offsets) and `rstd = 1/sqrt(var + eps)`
/// (shifted two-pass moments).
#[inline(always)]
fn moments(xr: &[f32], inv_d: f32, eps: f32) -> (f32, f32, f32) {
    let c = math::sum(xr) * inv_d;
    let (s1, s2) = math::sum_dev(xr, c);
    let var = ((s2 - s1 * s1 * inv_d) * inv_d).max(0.0);
    (c, s1 * inv_d, 1.0 / (var + eps).sqrt())
}

simd_fn! {
    fn bwd_block(x: &[f32], g: &[f32], w: &[f32], eps: f32, dx: &mut [f32]) -> (Vec<f32>, Vec<f32>) {
        let d = w.len();
        let inv_d = 1.0 / d as f32;
        let mut dw = vec![0f32; d];
        let mut db = vec![0f32; d];
        for ((xr, gr), dr) in x.chunks_exact(d).zip(g.chunks_exact(d)).zip(dx.chunks_exact_mut(d)) {
            let (c, delta, rstd) = moments(xr, inv_d, eps);
            // dr <- xhat; accumulate the parameter gradients.
            for ((((dv, &xv), &gv), dwv), dbv) in
                dr.iter_mut().zip(xr).zip(gr).zip(dw.iter_mut()).zip(db.iter_mut())
            {
                let xh = ((xv - c) - delta) * rstd;
                *dv = xh;
                *dwv += gv * xh;
                *dbv += gv;
            }
            let m1 = dot3(gr, w, None) * inv_d;
            let m2 = dot3(gr, w, Some(dr)) * inv_d;
            for ((dv, &gv), &wv) in dr.iter_mut().zip(gr).zip(w) {
                *dv = rstd * (gv * wv - m1 - *dv * m2);
            }
        }
        (dw, db)
    }
}

/// `sum(a * b * c)` (or `sum(a * b)` without `c`) with 8 independent lanes.
#[inline(always)]
fn dot3(a: &[f32], b: &[f32], c: Option<&[f32]>) -> f32 {
    let mut acc = [0f32; 8];
    let mut rest = 0f32;
    let n = a.len().min(b.len());
    match c {
        Some(c) => {
            let n = n.min(c.len());
            let (ca, cb, cc) = (
                a[..n].chunks_exact(8),
                b[..n].chunks_exact(8),
                c[..n].chunks_exact(8),
            );
            for ((&x, &y), &z) in ca
                .remainder()
                .iter()
                .zip(cb.remainder())
                .zip(cc.remainder())
            {
                rest += x * y * z;
            }
            for ((x, y), z) in ca.zip(cb).zip(cc) {
                for k in 0..8 {
                    acc[k] += x[k] * y[k] * z[k];
                }
            }
        }
        None => return math::dot(a, b),
    }
    rest + acc.iter().sum::<f32>()
}

impl LayerNormOp {
    fn fwd(
        &self,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        shape: &Shape,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        if d > 0 {
            map_row_blocks(&mut out, d, |r0, blk| {
                fwd_block(&x[r0 * d..r0 * d + blk.len()], w, b, self.eps, blk)
            });
        }
        Ok((CpuStorage::F32(out), shape.clone()))
    }

    /// `(dx, dw, db)` for upstream gradient `g`.
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let d = w.elem_count();
        let (dx, dw, db) = with_f32(x, "layer_norm bwd x", |xs| {
            with_f32(w, "layer_norm bwd weight", |ws| {
                with_f32(g, "layer_norm bwd grad", |gs| {
                    let mut dx = vec![0f32; xs.len()];
                    let mut dw = vec![0f64; d];
                    let mut db = vec![0f64; d];
                    if d > 0 {
                        let parts = map_row_blocks(&mut dx, d, |r0, blk| {
                            let rng = r0 * d..r0 * d + blk.len();
                            bwd_block(&xs[rng.clone()], &gs[rng], ws, self.eps, blk)
                        });
                        for (pw, pb) in parts {
                            for j in 0..d {
                                dw[j] += pw[j] as f64;
                                db[j] += pb[j] as f64;
                            }
                        }
                    }
                    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
                    Ok((dx, f(dw), f(db)))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Tensor::from_vec(dx, x.shape(), dev)?,
            Tensor::from_vec(dw, w.shape(), dev)?,
            Tensor::from_vec(db, w.shape(), dev)?,
        ))
    }
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "colzero-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::cpu_f32(s1, l1, "layer_norm x")?;
        let w = super::cpu_f32(s2, l2, "layer_norm weight")?;
        let b = super::cpu_f32(s3, l3, "layer_norm bias")?;
        self.fwd(x, w, Some(b), l1.shape())
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.grads(x, w, g)?;
        Ok((Some(dx), Some(dw), Some(db.reshape(b.shape())?)))
    }
}

impl CustomOp2 for LayerNormOp {
    fn name(&self) -> &'static str {
        "colzero-layer-norm-nobias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::cpu_f32(s1, l1, "layer_norm x")?;
        let w = super::cpu_f32(s2, l2, "layer_norm weight")?;
        self.fwd(x, w, None, l1.shape())
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, g)?;
        Ok((Some(dx), Some(dw)))
    }
}
