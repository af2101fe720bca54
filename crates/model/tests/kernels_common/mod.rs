//! Shared helpers for the fused-kernel tests (`tests/kernels_*.rs`): seeded random tensors,
//! f64 composed references built from plain candle ops, and a relative max-difference
//! metric. References run in f64 so they measure the fused kernels' true error.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seeded values ~ `offset + scale * N(0,1)`-ish (sum of uniforms), as a Vec.
pub fn randv(seed: u64, n: usize, scale: f32, offset: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f32 = (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0;
            offset + scale * u * 1.732
        })
        .collect()
}

/// Seeded f32 tensor of `shape`.
pub fn randt(seed: u64, shape: &[usize], scale: f32, offset: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(randv(seed, n, scale, offset), shape, &Device::Cpu).unwrap()
}

/// A leaf variable of the given dtype holding `t`'s values.
pub fn var(t: &Tensor, dtype: DType) -> Var {
    Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
}

pub fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `max |a - b| / max(1, max |b|)`: relative to the reference's scale, absolute below 1.
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let (a, b) = (flat(a), flat(b));
    let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(&b).fold(0f64, |m, (x, y)| {
        assert!(
            x.is_finite() == y.is_finite(),
            "finiteness differs: {x} vs {y}"
        );
        if x.is_finite() {
            m.max((x - y).abs())
        } else {
            m
        }
    });
    worst / scale
}

/// Asserts `rel_diff <= tol`, printing the measured value (visible with --nocapture).
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> f64 {
    let d = rel_diff(a, b);
    eprintln!("{what}: rel max diff {d:.3e}");
    assert!(d <= tol, "{what}: rel max diff {d:.3e} > {tol:.1e}");
    d
}

/// `sum(y * r)`: its gradient w.r.t. `y` is `r` (a random upstream gradient).
pub fn probe_loss(y: &Tensor, r: &Tensor) -> Tensor {
    y.mul(&r.to_dtype(y.dtype()).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
}

/// Composed layer norm (same composition as nn.rs had), in whatever dtype `x` has.
pub fn ref_layer_norm(x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f64) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let xc = x.broadcast_sub(&mean).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let y = xc
        .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
        .unwrap();
    let y = y.broadcast_mul(w).unwrap();
    match b {
        Some(b) => y.broadcast_add(b).unwrap(),
        None => y,
    }
}

/// Composed softmax over the last dim.
pub fn ref_softmax(x: &Tensor) -> Tensor {
    candle_nn::ops::softmax(x, D::Minus1).unwrap()
}

/// Composed `softmax(x * scale + mask)`.
pub fn ref_masked_softmax(x: &Tensor, mask: &Tensor, scale: f64) -> Tensor {
    ref_softmax(
        &(x * scale)
            .unwrap()
            .broadcast_add(&mask.to_dtype(x.dtype()).unwrap())
            .unwrap(),
    )
}
