//! Fused multi-head attention core (scores, masked softmax, dropout, weighted sum) with a
//! recomputing backward pass.
//!
//! Contract: for `q`, `k`, `v` of shape `[b, t, h]` whose last dim holds `heads` heads of
//! `dh = h / heads` columns side by side (the layout of the Q/K/V projections),
//! `attention(q, k, v, key_bias, heads, scale, p, seed)` returns `[b, t, h]` with, for
//! every batch row `i` and head `j` (columns `j*dh..(j+1)*dh`):
//! `out_ij = dropout(softmax(q_ij k_ij^T * scale + key_bias_i), p) v_ij`, exactly the
//! split-heads / `masked_softmax` / `dropout` / merge-heads composition of `nn.rs`, with
//! `key_bias` an additive per-key bias `[b, t]` (a constant, e.g. `finfo.min` on padding).
//! The dropout mask of score element `((i*heads + j)*t + r)*t + s` is
//! [`dropout::keep`](super::dropout::keep) of `seed` (the same mask as
//! `kernels::dropout` on the `[b, heads, t, t]` probabilities). Gradients flow to `q`, `k`,
//! `v`. Nothing of size `t x t` is kept between forward and backward: the backward pass
//! recomputes the probabilities (and regenerates the mask) per `(i, j)`, so memory stays
//! `O(b t h)`. Every `(i, j)` pair is an independent rayon task with its own single-threaded
//! gemm calls; a fully `-inf` row gives zeros (as `masked_softmax`).

use super::dropout::{pair_bits, threshold};
use super::{math, prep, simd_fn, with_f32};
use crate::{ModelError, Result};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Fused attention; see the module docs. `key_bias` must hold `b * t` values.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_bias: Option<&Tensor>,
    heads: usize,
    scale: f64,
    p: f32,
    seed: u64,
) -> Result<Tensor> {
    let (b, t, h) = q.dims3()?;
    if k.dims() != q.dims() || v.dims() != q.dims() || heads == 0 || h % heads != 0 {
        return Err(ModelError::Invalid(format!(
            "attention: q {:?}, k {:?}, v {:?} with {heads} heads",
            q.dims(),
            k.dims(),
            v.dims()
        )));
    }
    let bias = match key_bias {
        Some(m) => {
            if m.elem_count() != b * t {
                return Err(ModelError::Invalid(format!(
                    "attention: key bias {:?} for q {:?}",
                    m.dims(),
                    q.dims()
                )));
            }
            Some(prep(m, "attention")?.flatten_all()?.to_vec1::<f32>()?)
        }
        None => None,
    };
    let dtype = q.dtype();
    let op = AttentionOp {
        b,
        t,
        heads,
        dh: h / heads,
        scale: scale as f32,
        p: if p > 0.0 { p } else { 0.0 },
        seed,
        bias,
    };
    let (q, k, v) = (
        prep(q, "attention")?,
        prep(k, "attention")?,
        prep(v, "attention")?,
    );
    Ok(q.apply_op3(&k, &v, op)?.to_dtype(dtype)?)
}

struct AttentionOp {
    b: usize,
    t: usize,
    heads: usize,
    dh: usize,
    scale: f32,
    /// Dropout rate on the probabilities (0: none).
    p: f32,
    seed: u64,
    /// Additive key bias, `b * t` values.
    bias: Option<Vec<f32>>,
}

/// A raw pointer that rayon tasks may share: every task writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: used only to write disjoint (row, head) column blocks from different tasks.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// `dst[m x n] = lhs[m x k] * rhs[k x n]` with explicit (row, column) strides, one thread.
///
/// # Safety
/// Every pointer must be valid for the strided extents given.
#[allow(clippy::too_many_arguments)]
unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    dst_cs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    )
}

simd_fn! {
    /// Rows of `s` (`t` wide) become `softmax(s * scale + bias)`.
    fn softmax_rows(s: &mut [f32], t: usize, scale: f32, bias: Option<&[f32]>) {
        for row in s.chunks_exact_mut(t) {
            match bias {
                Some(bias) => {
                    for (y, &m) in row.iter_mut().zip(bias) {
                        *y = *y * scale + m;
                    }
                }
                None => {
                    for y in row.iter_mut() {
                        *y *= scale;
                    }
                }
            }
            super::softmax::softmax_row(row);
        }
    }
}

simd_fn! {
    /// `out = src * keep-mask * keep_scale` for the block whose first element has the
    /// global index `e0` (any parity: every element draws its own half of its pair).
    fn dropout_block(src: &[f32], seed: u64, e0: u64, thr: u32, keep_scale: f32, out: &mut [f32]) {
        for (i, (o, &x)) in out.iter_mut().zip(src).enumerate() {
            let e = e0 + i as u64;
            let bits = pair_bits(seed, e >> 1);
            let u = if e & 1 == 0 { bits as u32 } else { (bits >> 32) as u32 };
            *o = if u >= thr { x * keep_scale } else { 0.0 };
        }
    }
}

simd_fn! {
    /// In place over `dd` (the gradient w.r.t. the dropped probabilities `d`):
    /// `ds = scale * (d * dd - p * rowsum(d * dd))` (the softmax backward through dropout).
    fn softmax_bwd_rows(p: &[f32], d: &[f32], dd: &mut [f32], t: usize, scale: f32) {
        for ((pr, dr), gr) in p.chunks_exact(t).zip(d.chunks_exact(t)).zip(dd.chunks_exact_mut(t)) {
            let s = math::dot(dr, gr);
            for ((g, &pv), &dv) in gr.iter_mut().zip(pr).zip(dr) {
                *g = scale * (dv * *g - pv * s);
            }
        }
    }
}

impl AttentionOp {
    fn h(&self) -> usize {
        self.heads * self.dh
    }

    /// Probabilities of pair `task = i * heads + j` into `probs` (`t x t`).
    fn probs(&self, task: usize, q: &[f32], k: &[f32], probs: &mut [f32]) {
        let (t, h, dh) = (self.t, self.h(), self.dh);
        let (i, j) = (task / self.heads, task % self.heads);
        let base = i * t * h + j * dh;
        // SAFETY: q/k hold b*t*h values; rows r < t of head j lie inside them.
        unsafe {
            mm(
                t,
                t,
                dh,
                probs.as_mut_ptr(),
                t,
                1,
                q.as_ptr().add(base),
                h,
                1,
                k.as_ptr().add(base),
                1,
                h,
            );
        }
        let bias = self.bias.as_ref().map(|b| &b[i * t..(i + 1) * t]);
        softmax_rows(probs, t, self.scale, bias);
    }

    /// Dropped-out copy of the probabilities of `task` (or None without dropout).
    fn drop_into(&self, task: usize, probs: &[f32], out: &mut [f32]) -> bool {
        if self.p <= 0.0 {
            return false;
        }
        let e0 = (task * self.t * self.t) as u64;
        let keep_scale = 1.0 / (1.0 - self.p);
        dropout_block(probs, self.seed, e0, threshold(self.p), keep_scale, out);
        true
    }

    fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        let (t, h, dh) = (self.t, self.h(), self.dh);
        let mut out = vec![0f32; self.b * t * h];
        let dst = Shared(out.as_mut_ptr());
        (0..self.b * self.heads).into_par_iter().for_each_init(
            || vec![0f32; 2 * t * t],
            |buf, task| {
                // Use the whole `Shared` (Send), not its raw-pointer field (edition-2021
                // closures capture disjoint fields).
                #[allow(clippy::redundant_locals)]
                let dst = dst;
                let (pbuf, dbuf) = buf.split_at_mut(t * t);
                self.probs(task, q, k, pbuf);
                let d: &[f32] = if self.drop_into(task, pbuf, dbuf) {
                    dbuf
                } else {
                    pbuf
                };
                let base = (task / self.heads) * t * h + (task % self.heads) * dh;
                // SAFETY: task (i, j) writes only rows of batch i, columns of head j.
                unsafe {
                    mm(
                        t,
                        dh,
                        t,
                        dst.0.add(base),
                        h,
                        1,
                        d.as_ptr(),
                        t,
                        1,
                        v.as_ptr().add(base),
                        h,
                        1,
                    );
                }
            },
        );
        out
    }

    /// `(dq, dk, dv)` for the upstream gradient `g` (`[b, t, h]`).
    fn backward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        g: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (t, h, dh) = (self.t, self.h(), self.dh);
        let n = self.b * t * h;
        let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        let (pq, pk, pv) = (
            Shared(dq.as_mut_ptr()),
            Shared(dk.as_mut_ptr()),
            Shared(dv.as_mut_ptr()),
        );
        (0..self.b * self.heads).into_par_iter().for_each_init(
            || vec![0f32; 3 * t * t],
            |buf, task| {
                let (pq, pk, pv) = (pq, pk, pv);
                let (pbuf, rest) = buf.split_at_mut(t * t);
                let (dbuf, gbuf) = rest.split_at_mut(t * t);
                self.probs(task, q, k, pbuf);
                let d: &[f32] = if self.drop_into(task, pbuf, dbuf) {
                    dbuf
                } else {
                    pbuf
                };
                let base = (task / self.heads) * t * h + (task % self.heads) * dh;
                // SAFETY: all strided extents stay inside the b*t*h buffers; task (i, j)
                // writes only rows of batch i, columns of head j of dq/dk/dv.
                unsafe {
                    let (qp, kp, vp, gp) = (
                        q.as_ptr().add(base),
                        k.as_ptr().add(base),
                        v.as_ptr().add(base),
                        g.as_ptr().add(base),
                    );
                    // dv = d^T g
                    mm(t, dh, t, pv.0.add(base), h, 1, d.as_ptr(), 1, t, gp, h, 1);
                    // dd = g v^T
                    mm(t, t, dh, gbuf.as_mut_ptr(), t, 1, gp, h, 1, vp, 1, h);
                    softmax_bwd_rows(pbuf, d, gbuf, t, self.scale);
                    // dq = ds k ; dk = ds^T q
                    mm(
                        t,
                        dh,
                        t,
                        pq.0.add(base),
                        h,
                        1,
                        gbuf.as_ptr(),
                        t,
                        1,
                        kp,
                        h,
                        1,
                    );
                    mm(
                        t,
                        dh,
                        t,
                        pk.0.add(base),
                        h,
                        1,
                        gbuf.as_ptr(),
                        1,
                        t,
                        qp,
                        h,
                        1,
                    );
                }
            },
        );
        (dq, dk, dv)
    }
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "colzero-attention"
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
        let q = super::cpu_f32(s1, l1, "attention q")?;
        let k = super::cpu_f32(s2, l2, "attention k")?;
        let v = super::cpu_f32(s3, l3, "attention v")?;
        let n = self.b * self.t * self.h();
        if q.len() != n || k.len() != n || v.len() != n {
            candle_core::bail!("attention: storage sizes do not match {:?}", l1.dims());
        }
        Ok((CpuStorage::F32(self.forward(q, k, v)), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dq, dk, dv) = with_f32(q, "attention bwd q", |qs| {
            with_f32(k, "attention bwd k", |ks| {
                with_f32(v, "attention bwd v", |vs| {
                    with_f32(g, "attention bwd grad", |gs| {
                        Ok(self.backward(qs, ks, vs, gs))
                    })
                })
            })
        })?;
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}
