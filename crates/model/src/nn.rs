//! Differentiable building blocks for our model files.
//!
//! Contract: every function here is composed of candle ops that have a backward pass
//! (or of custom ops that implement `bwd`: on the CPU, `layer_norm`, `softmax_last`,
//! `masked_softmax` and `gelu` run the fused kernels of [`crate::kernels`]). candle's fused
//! `layer_norm`, `rms_norm`, `softmax_last_dim`, `rope` and `sdpa` are never used: they
//! silently cut gradients. `dropout` and `attention` are fused on the CPU too (their
//! masks are recomputed from a per-call seed in the backward pass).
//! [`ForwardCtx`] carries the train/eval switch and the seeded RNG that dropout draws
//! from, so a forward pass can be replayed bit for bit (GradCache) by cloning the context.

use crate::Result;
use candle_core::{DType, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Per-forward state: training switch and the RNG used for dropout masks.
#[derive(Clone, Debug)]
pub struct ForwardCtx {
    /// Apply dropout (training) or not (inference).
    pub train: bool,
    rng: ChaCha8Rng,
    /// When set, every dropout layer uses this rate instead of the checkpoint's.
    rate_override: Option<f32>,
}

impl ForwardCtx {
    /// Inference context: no dropout, no randomness.
    pub fn eval() -> Self {
        Self {
            train: false,
            rng: ChaCha8Rng::seed_from_u64(0),
            rate_override: None,
        }
    }

    /// Training context with a seeded RNG.
    pub fn train(seed: u64) -> Self {
        Self {
            train: true,
            rng: ChaCha8Rng::seed_from_u64(seed),
            rate_override: None,
        }
    }

    /// Uses `rate` for every dropout layer (None: the rates from the model's config).
    pub fn with_dropout_rate(mut self, rate: Option<f32>) -> Self {
        self.rate_override = rate;
        self
    }

    /// Training context from an existing RNG state (for checkpoint resume).
    pub fn from_rng(train: bool, rng: ChaCha8Rng) -> Self {
        Self {
            train,
            rng,
            rate_override: None,
        }
    }

    /// The RNG state (cloneable, serialisable through its seed+word position).
    pub fn rng(&self) -> &ChaCha8Rng {
        &self.rng
    }

    /// A fresh seed for one dropout layer (advances the RNG by one `u64`).
    fn next_seed(&mut self) -> u64 {
        self.rng.random::<u64>()
    }

    /// The dropout rate a layer with configured rate `p` uses in this context (0 when not
    /// training).
    fn rate(&self, p: f32) -> f32 {
        let p = self.rate_override.unwrap_or(p);
        if self.train && p > 0.0 {
            p
        } else {
            0.0
        }
    }
}

/// Dropout with rate `p`, or the context's override (identity when `ctx.train` is false
/// or the rate is 0). Each call draws one seed from the context; the mask is
/// [`kernels::dropout`](crate::kernels::dropout)'s function of that seed (fused and
/// recomputed in the backward pass on the CPU, materialised elsewhere).
pub fn dropout(x: &Tensor, p: f32, ctx: &mut ForwardCtx) -> Result<Tensor> {
    let p = ctx.rate(p);
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let seed = ctx.next_seed();
    if x.device().is_cpu() {
        return crate::kernels::dropout(x, p, seed);
    }
    dropout_composed(x, p, seed)
}

/// `x` times the materialised keep-mask of `(seed, p)` (any device): the same values as
/// the fused CPU kernel.
fn dropout_composed(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let mask = crate::kernels::dropout::keep_mask(x.elem_count(), seed, p);
    let mask = Tensor::from_vec(mask, x.dims(), x.device())?;
    Ok(x.mul(&mask.to_dtype(x.dtype())?)?)
}

/// Multi-head attention core for projections `q`, `k`, `v` of shape `[b, t, h]` (heads
/// side by side in the last dim): `dropout(softmax(q k^T * scale + key_bias), p) v` per
/// head, merged back to `[b, t, h]`; `key_bias` is an additive `[b, t]` per-key bias (a
/// constant). Draws one dropout seed from `ctx` when dropout is active. On the CPU this is
/// the fused kernel [`kernels::attention`](crate::kernels::attention) (no `t x t`
/// tensors kept for the backward pass); elsewhere [`attention_composed`], which draws the
/// same mask.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_bias: Option<&Tensor>,
    heads: usize,
    p: f32,
    ctx: &mut ForwardCtx,
) -> Result<Tensor> {
    let p = ctx.rate(p);
    let seed = if p > 0.0 { ctx.next_seed() } else { 0 };
    let dh = q.dim(D::Minus1)? / heads.max(1);
    let scale = 1.0 / (dh as f64).sqrt();
    if q.device().is_cpu() {
        return crate::kernels::attention(q, k, v, key_bias, heads, scale, p, seed);
    }
    attention_composed(q, k, v, key_bias, heads, scale, p, seed)
}

/// [`attention`] composed of plain differentiable candle ops (any device; the reference
/// the fused kernel is tested against). `seed` is used only when `p > 0`.
#[allow(clippy::too_many_arguments)]
pub fn attention_composed(
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
    let dh = h / heads;
    let split = |y: &Tensor| -> Result<Tensor> {
        Ok(y.reshape((b, t, heads, dh))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = q.matmul(&k.t()?.contiguous()?)?;
    let bias = match key_bias {
        Some(m) => Some(m.reshape((b, 1, 1, t))?),
        None => None,
    };
    let probs = masked_softmax(&scores, bias.as_ref(), scale)?;
    let probs = if p > 0.0 {
        dropout_composed(&probs, p, seed)?
    } else {
        probs
    };
    Ok(probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, t, h))?)
}

/// Layer normalisation over the last dimension (differentiable). `bias` is optional
/// (ModernBERT's norms have none). On the CPU this is the fused kernel
/// [`kernels::layer_norm`](crate::kernels::layer_norm) (one pass, fused backward);
/// elsewhere the composed version [`layer_norm_composed`].
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() {
        return crate::kernels::layer_norm(x, weight, bias, eps);
    }
    layer_norm_composed(x, weight, bias, eps)
}

/// Layer normalisation composed of plain differentiable candle ops (any device).
pub fn layer_norm_composed(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    let y = y.broadcast_mul(weight)?;
    let y = match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    Ok(y.to_dtype(dtype)?)
}

/// Softmax over the last dimension (numerically stable, differentiable; fused kernel on
/// the CPU). A row of all `-inf` gives zeros on the CPU (NaN with the composed op).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        return crate::kernels::softmax_last(x);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// Attention probabilities `softmax(x * scale + mask)` over the last dim, `mask` additive
/// and broadcastable to `x` (e.g. `[b,1,1,t]` for scores `[b,h,t,t]`); differentiable
/// w.r.t. `x` (the mask is a constant). Fused on the CPU (the mask is never materialised;
/// fully `-inf` rows give zeros).
pub fn masked_softmax(x: &Tensor, mask: Option<&Tensor>, scale: f64) -> Result<Tensor> {
    if x.device().is_cpu() {
        return crate::kernels::masked_softmax(x, mask, scale);
    }
    let s = x.affine(scale, 0.0)?;
    let s = match mask {
        Some(m) => s.broadcast_add(&m.to_dtype(s.dtype())?)?,
        None => s,
    };
    Ok(candle_nn::ops::softmax(&s, D::Minus1)?)
}

/// `x @ w^T (+ b)` for `x` of any rank >= 2 and `w` of shape `[out, in]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.broadcast_matmul(&w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Exact (erf-based) GELU, HF's `"gelu"` activation; differentiable (fused kernel with a
/// fused backward on the CPU, candle's `gelu_erf` elsewhere).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        return crate::kernels::gelu(x);
    }
    Ok(x.gelu_erf()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn layer_norm_matches_definition_and_has_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_vec(vec![1f32, 2.0, 4.0, -1.0, 0.0, 1.0], (2, 3), &dev).unwrap();
        let w = Var::from_vec(vec![1f32, 2.0, 3.0], 3, &dev).unwrap();
        let b = Var::from_vec(vec![0.5f32, 0.0, -0.5], 3, &dev).unwrap();
        let y = layer_norm(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), 1e-5).unwrap();
        let row: Vec<f32> = y.get(1).unwrap().to_vec1().unwrap();
        let s = (2.0f32 / 3.0 + 1e-5).sqrt();
        let want = [-1.0 / s + 0.5, 0.0, 3.0 / s - 0.5];
        for (a, b) in row.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            let gv = g.get(v.as_tensor()).expect("gradient present");
            assert!(
                gv.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            );
        }
    }

    #[test]
    fn dropout_is_seeded_and_off_in_eval() {
        let x = Tensor::ones((4, 8), DType::F32, &Device::Cpu).unwrap();
        let a = dropout(&x, 0.5, &mut ForwardCtx::train(7)).unwrap();
        let b = dropout(&x, 0.5, &mut ForwardCtx::train(7)).unwrap();
        let va: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let vb: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, vb);
        assert!(va.iter().all(|v| *v == 0.0 || *v == 2.0));
        assert!(va.contains(&0.0) && va.contains(&2.0));
        let e = dropout(&x, 0.5, &mut ForwardCtx::eval()).unwrap();
        assert_eq!(e.sum_all().unwrap().to_scalar::<f32>().unwrap(), 32.0);
    }

    #[test]
    fn dropout_rate_override_replaces_the_config_rate() {
        let x = Tensor::ones((64, 64), DType::F32, &Device::Cpu).unwrap();
        // Override 0: no dropout at all even though the layer asks for 0.5.
        let mut off = ForwardCtx::train(7).with_dropout_rate(Some(0.0));
        let y = dropout(&x, 0.5, &mut off).unwrap();
        assert_eq!(y.sum_all().unwrap().to_scalar::<f32>().unwrap(), 4096.0);
        // Override 0.75: kept values are scaled by 4, about a quarter survive.
        let mut hi = ForwardCtx::train(7).with_dropout_rate(Some(0.75));
        let v: Vec<f32> = dropout(&x, 0.1, &mut hi)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(v.iter().all(|e| *e == 0.0 || *e == 4.0));
        let kept = v.iter().filter(|e| **e == 4.0).count() as f64 / 4096.0;
        assert!((kept - 0.25).abs() < 0.03, "kept fraction {kept}");
    }
}
