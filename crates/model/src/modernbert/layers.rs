//! ModernBERT building blocks: RoPE tables, attention masks, attention and GeGLU MLP.
//!
//! Contract: numerics follow transformers' eager ModernBERT (`modeling_modernbert.py`,
//! transformers 5.3): RoPE on q and k with `rotate_half`, scores `q k^T / sqrt(head_dim)`
//! plus an additive mask holding `f32::MIN` at disallowed keys (so a query row with no
//! allowed key gets uniform weights over all keys, exactly as eager does; for SDPA semantics
//! the caller asks for those rows' weights to be zeroed), softmax in f32, dropout on the probabilities and after `Wo`,
//! GeGLU `Wo(drop(act(input) * gate))` with `input, gate = Wi(x).chunk(2)`. Every op has a
//! backward pass; RoPE tables and masks are constants.

use super::config::Activation;
use crate::nn::{dropout, gelu, layer_norm, linear, masked_softmax, ForwardCtx};
use crate::Result;
use candle_core::{DType, Device, Tensor, D};

/// A LayerNorm with an optional bias.
#[derive(Clone, Debug)]
pub(crate) struct Norm {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl Norm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.weight, self.bias.as_ref(), self.eps)
    }
}

/// A linear layer `x W^T (+ b)`.
#[derive(Clone, Debug)]
pub(crate) struct Lin {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Lin {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, self.bias.as_ref())
    }
}

/// `cos` and `sin` tables `[t, head_dim]` for positions `0..t`, computed in f32 as
/// transformers does: `inv_freq = 1 / theta^(2k/d)`, angle `= inv_freq * pos`,
/// `emb = cat(angles, angles)`.
pub(crate) fn rope_tables(
    theta: f64,
    head_dim: usize,
    t: usize,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|k| {
            let exponent = (2 * k) as f32 / head_dim as f32;
            1.0f32 / (theta as f32).powf(exponent)
        })
        .collect();
    let mut cos = Vec::with_capacity(t * head_dim);
    let mut sin = Vec::with_capacity(t * head_dim);
    for pos in 0..t {
        for _ in 0..2 {
            for f in &inv {
                let angle = f * pos as f32;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    Ok((
        Tensor::from_vec(cos, (t, head_dim), dev)?,
        Tensor::from_vec(sin, (t, head_dim), dev)?,
    ))
}

/// `cat(-x2, x1)` over the last dimension, with `x1, x2` its two halves.
fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

/// `x * cos + rotate_half(x) * sin` for `x` `[b, heads, t, d]` and tables `[t, d]`.
pub(crate) fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let y = xf
        .broadcast_mul(cos)?
        .add(&rotate_half(&xf)?.broadcast_mul(sin)?)?;
    Ok(y.to_dtype(dtype)?)
}

/// Additive attention bias `[b, 1, t, t]` (0 = allowed, `f32::MIN` = masked) and row mask
/// `[b, 1, t, 1]` (1 = the query row has at least one allowed key) of one layer type.
#[derive(Clone, Debug)]
pub(crate) struct AttnMask {
    pub bias: Tensor,
    pub rows: Tensor,
}

/// The masks of full and sliding layers, from the `[b, t]` u32 padding mask.
pub(crate) fn attention_masks(mask: &Tensor, window: usize) -> Result<(AttnMask, AttnMask)> {
    let (b, t) = mask.dims2()?;
    let dev = mask.device();
    let keys = mask.ne(0u32)?.to_dtype(DType::F32)?.reshape((b, 1, 1, t))?;
    let band: Vec<f32> = (0..t * t)
        .map(|idx| {
            let (i, j) = (idx / t, idx % t);
            if i.abs_diff(j) <= window {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let band = Tensor::from_vec(band, (1, 1, t, t), dev)?;
    let min = f32::MIN as f64;
    let build = |allowed: Tensor| -> Result<AttnMask> {
        let rows = allowed
            .max_keepdim(D::Minus1)?
            .gt(0f64)?
            .to_dtype(DType::F32)?;
        let bias = allowed.affine(-1.0, 1.0)?.affine(min, 0.0)?;
        Ok(AttnMask { bias, rows })
    };
    let full = build(keys.broadcast_as((b, 1, t, t))?.contiguous()?)?;
    let sliding = build(keys.broadcast_mul(&band)?)?;
    Ok((full, sliding))
}

/// One attention block (without its pre-norm).
#[derive(Clone, Debug)]
pub(crate) struct Attention {
    pub wqkv: Lin,
    pub wo: Lin,
    pub heads: usize,
    pub head_dim: usize,
    pub dropout: f32,
}

impl Attention {
    /// `x` `[b, t, h]`, tables `[t, head_dim]`, `mask` of this layer type; `zero_empty_rows`
    /// gives rows without any allowed key a zero output (SDPA) instead of uniform weights.
    pub fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &AttnMask,
        zero_empty_rows: bool,
        ctx: &mut ForwardCtx,
    ) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let qkv = self
            .wqkv
            .forward(x)?
            .reshape((b, t, 3, self.heads, self.head_dim))?;
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let q = apply_rope(&q, cos, sin)?;
        let k = apply_rope(&k, cos, sin)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = q
            .to_dtype(DType::F32)?
            .matmul(&k.to_dtype(DType::F32)?.t()?.contiguous()?)?;
        let mut probs = masked_softmax(&scores, Some(&mask.bias), scale)?;
        if zero_empty_rows {
            probs = probs.broadcast_mul(&mask.rows)?;
        }
        let probs = probs.to_dtype(v.dtype())?;
        let probs = dropout(&probs, self.dropout, ctx)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, h))?;
        dropout(&self.wo.forward(&out)?, self.dropout, ctx)
    }
}

/// GeGLU feed-forward block (without its pre-norm).
#[derive(Clone, Debug)]
pub(crate) struct Mlp {
    pub wi: Lin,
    pub wo: Lin,
    pub act: Activation,
    pub intermediate: usize,
    pub dropout: f32,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let wi = self.wi.forward(x)?;
        let input = wi.narrow(D::Minus1, 0, self.intermediate)?;
        let gate = wi.narrow(D::Minus1, self.intermediate, self.intermediate)?;
        let act = match self.act {
            Activation::GeluErf => gelu(&input)?,
            Activation::GeluTanh => input.gelu()?,
            Activation::Relu => input.relu()?,
            Activation::Silu => input.silu()?,
        };
        let y = dropout(&act.mul(&gate)?, self.dropout, ctx)?;
        self.wo.forward(&y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_pairs_by_position_angle() {
        let dev = Device::Cpu;
        let (cos, sin) = rope_tables(10_000.0, 4, 3, &dev).unwrap();
        // position 0 is the identity
        assert_eq!(cos.get(0).unwrap().to_vec1::<f32>().unwrap(), vec![1.0; 4]);
        let x = Tensor::from_vec(vec![1f32, 2.0, 3.0, 4.0], (1, 1, 1, 4), &dev).unwrap();
        let x3 = x.broadcast_as((1, 1, 3, 4)).unwrap().contiguous().unwrap();
        let y = apply_rope(&x3, &cos, &sin).unwrap();
        let row: Vec<f32> = y
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(2)
            .unwrap()
            .to_vec1()
            .unwrap();
        // dims (0, 2) rotate by angle 2 * 1, dims (1, 3) by 2 * 10000^-0.5
        let (a, b) = (2.0f32, 2.0f32 * 0.01);
        let want = [
            1.0 * a.cos() - 3.0 * a.sin(),
            2.0 * b.cos() - 4.0 * b.sin(),
            3.0 * a.cos() + 1.0 * a.sin(),
            4.0 * b.cos() + 2.0 * b.sin(),
        ];
        for (g, w) in row.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{row:?} vs {want:?}");
        }
    }

    #[test]
    fn sliding_bias_is_a_band_over_valid_keys() {
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 0]], &Device::Cpu).unwrap();
        let (full, sliding) = attention_masks(&mask, 1).unwrap();
        let sq = |t: &Tensor| t.squeeze(0).unwrap().squeeze(0).unwrap();
        let f: Vec<Vec<f32>> = sq(&full.bias).to_vec2().unwrap();
        let s: Vec<Vec<f32>> = sq(&sliding.bias).to_vec2().unwrap();
        // row 4 is padding whose only in-window key (3) is real: no empty row here
        let rows: Vec<f32> = sq(&sliding.rows).flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rows, vec![1.0; 5]);
        for i in 0..5 {
            for j in 0..5 {
                let valid = j < 4;
                assert_eq!(f[i][j] == 0.0, valid);
                assert_eq!(s[i][j] == 0.0, valid && i.abs_diff(j) <= 1, "({i},{j})");
            }
        }
        assert_eq!(s[4][0], f32::MIN);
        let mask = Tensor::new(&[[1u32, 0, 0, 0, 0]], &Device::Cpu).unwrap();
        let (full, sliding) = attention_masks(&mask, 1).unwrap();
        let rows: Vec<f32> = sq(&sliding.rows).flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rows, vec![1.0, 1.0, 0.0, 0.0, 0.0]);
        let rows: Vec<f32> = sq(&full.rows).flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(rows, vec![1.0; 5]);
    }
}
