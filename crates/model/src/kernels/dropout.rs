//! Fused, seeded dropout whose mask is a pure function of `(seed, element index)`.
//!
//! Contract: `dropout(x, p, seed)` keeps element `e` (row-major index into `x`) iff
//! [`keep`]`(seed, e, threshold(p))`, and then multiplies it by `1/(1-p)`; dropped elements
//! are 0. The backward pass regenerates the same mask from the seed (nothing is stored),
//! so `dx = g * mask / (1-p)`. The mask depends only on the seed and the index, never on
//! the thread count or block split, so a forward pass is reproducible bit for bit from
//! the seed (callers draw the seed from their `ForwardCtx`, which GradCache replays).
//! [`keep_mask`] materialises the scaled mask (tests, composed references, non-CPU
//! devices). The generator is a counter-based SplitMix64 finaliser over `seed` and the
//! pair index `e / 2`; element `e` uses the low (even `e`) or high (odd `e`) 32 bits,
//! compared with `threshold(p) = floor(p * 2^32)` (keep probability `1 - p` up to 2^-32).

use super::{map_row_blocks, prep, simd_fn, with_f32};
use crate::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// The 32-bit threshold below which an element is dropped (`p` clamped to `[0, 1)`).
pub fn threshold(p: f32) -> u32 {
    let p = p.clamp(0.0, 1.0) as f64;
    ((p * 4_294_967_296.0) as u64).min(u32::MAX as u64) as u32
}

/// SplitMix64 finaliser (a bijection on u64 with full avalanche).
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64 random bits shared by elements `2k` and `2k + 1`.
#[inline(always)]
pub(crate) fn pair_bits(seed: u64, k: u64) -> u64 {
    mix(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Whether element `e` survives dropout with threshold `thr` (see the module docs).
#[inline(always)]
pub fn keep(seed: u64, e: u64, thr: u32) -> bool {
    let bits = pair_bits(seed, e >> 1);
    let u = if e & 1 == 0 {
        bits as u32
    } else {
        (bits >> 32) as u32
    };
    u >= thr
}

simd_fn! {
    /// `out[i] = x[i] * (keep(e0 + i) ? scale : 0)`; `e0` is even (blocks start on pairs).
    pub(crate) fn apply_block(x: &[f32], seed: u64, e0: u64, thr: u32, scale: f32, out: &mut [f32]) {
        let mut xs = x.chunks_exact(2);
        let mut os = out.chunks_exact_mut(2);
        let mut k = e0 >> 1;
        for (xc, oc) in (&mut xs).zip(&mut os) {
            let bits = pair_bits(seed, k);
            let lo = if (bits as u32) >= thr { scale } else { 0.0 };
            let hi = if ((bits >> 32) as u32) >= thr { scale } else { 0.0 };
            oc[0] = xc[0] * lo;
            oc[1] = xc[1] * hi;
            k += 1;
        }
        if let (Some(&xv), Some(ov)) = (xs.remainder().first(), os.into_remainder().first_mut()) {
            let lo = if (pair_bits(seed, k) as u32) >= thr { scale } else { 0.0 };
            *ov = xv * lo;
        }
    }
}

/// Elements per block for the parallel loops (even, so every block starts on a pair).
const CHUNK: usize = 4096;

/// `x * mask` where `mask` is this module's scaled keep-mask of `(seed, p)`, in parallel.
fn apply(x: &[f32], seed: u64, p: f32) -> Vec<f32> {
    let thr = threshold(p);
    let scale = 1.0 / (1.0 - p);
    let mut out = vec![0f32; x.len()];
    map_row_blocks(&mut out, CHUNK, |r0, blk| {
        let e0 = r0 * CHUNK;
        apply_block(&x[e0..e0 + blk.len()], seed, e0 as u64, thr, scale, blk)
    });
    out
}

/// The scaled keep-mask (`1/(1-p)` or 0) of `n` elements for `(seed, p)`.
pub fn keep_mask(n: usize, seed: u64, p: f32) -> Vec<f32> {
    apply(&vec![1f32; n], seed, p)
}

/// Fused, differentiable dropout with rate `p` in `[0, 1)`, mask drawn from `seed`
/// (module docs). `p == 0` returns `x` unchanged.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let dtype = x.dtype();
    let y = prep(x, "dropout")?.apply_op1(DropoutOp { p, seed })?;
    Ok(y.to_dtype(dtype)?)
}

struct DropoutOp {
    p: f32,
    seed: u64,
}

impl CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "colzero-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = super::cpu_f32(s, l, "dropout x")?;
        Ok((
            CpuStorage::F32(apply(x, self.seed, self.p)),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dx = with_f32(g, "dropout bwd grad", |gs| Ok(apply(gs, self.seed, self.p)))?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
