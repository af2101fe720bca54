//! Fused exact GELU (`kernels::gelu`) against an f64 reference: values and gradient on a
//! MiniLM FFN shape, elementwise relative accuracy over [-10, 10] (including the tiny
//! negative tail), non-contiguous and bf16 inputs, and agreement with candle's f32
//! `gelu_erf` (the composed op it replaces).

mod kernels_common;
use candle_core::{DType, Device, Tensor};
use colzero_model::kernels;
use kernels_common::*;

fn grads(x: &Tensor, dt: DType, transpose: bool, r: &Tensor, fused: bool) -> (Tensor, Tensor) {
    let xv = var(x, dt);
    let xin = if transpose {
        xv.as_tensor().t().unwrap()
    } else {
        xv.as_tensor().clone()
    };
    let y = if fused {
        kernels::gelu(&xin).unwrap()
    } else {
        xin.gelu_erf().unwrap()
    };
    let g = probe_loss(&y, r).backward().unwrap();
    (y, g.get(xv.as_tensor()).unwrap().clone())
}

#[test]
fn gelu_matches_reference_on_ffn_shape() {
    let x = randt(1, &[4, 180, 1536], 2.0, 0.0);
    let r = randt(2, &[4, 180, 1536], 1.0, 0.0);
    let (y, gx) = grads(&x, DType::F32, false, &r, true);
    let (y0, gx0) = grads(&x, DType::F64, false, &r, false);
    assert_close("gelu y vs f64", &y, &y0, 1e-6);
    // candle's f64 gelu_erf backward uses 0.398942 for 1/sqrt(2 pi): 7e-7 relative.
    assert_close("gelu dx vs f64", &gx, &gx0, 2e-6);
    let (y1, gx1) = grads(&x, DType::F32, false, &r, false);
    assert_close("gelu y vs candle f32", &y, &y1, 1e-5);
    assert_close("gelu dx vs candle f32", &gx, &gx1, 1e-5);
}

#[test]
fn gelu_is_relatively_accurate_everywhere() {
    let n = 20001;
    let xs: Vec<f32> = (0..n)
        .map(|i| -10.0 + 20.0 * i as f32 / (n - 1) as f32)
        .collect();
    let x = Tensor::from_vec(xs.clone(), n, &Device::Cpu).unwrap();
    let y = flat(&kernels::gelu(&x).unwrap());
    let mut worst = 0f64;
    let mut worst_d = 0f64;
    let r = Tensor::ones(n, DType::F32, &Device::Cpu).unwrap();
    let (_, gx) = grads(&x, DType::F32, false, &r, true);
    let gx = flat(&gx);
    for (i, &v) in xs.iter().enumerate() {
        let v = v as f64;
        let cdf = 0.5 * candle_core::cpu::erf::erfc_f64(-v / std::f64::consts::SQRT_2);
        let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let want = v * cdf;
        let want_d = cdf + v * pdf;
        if want != 0.0 && want.abs() > 1e-30 {
            worst = worst.max(((y[i] - want) / want).abs());
        }
        worst_d = worst_d.max((gx[i] - want_d).abs());
    }
    eprintln!("gelu elementwise rel err {worst:.3e}, derivative abs err {worst_d:.3e}");
    // f32 rounding of x*Phi(x) alone is 6e-8; the tail (x < -5) is where erf-based
    // 1 + erf(x) implementations lose everything.
    assert!(worst < 2e-6, "gelu relative error {worst:.3e}");
    // gelu\' lies in [-0.17, 1.13]: absolute error (it crosses 0 near x = -0.75).
    assert!(worst_d < 1e-6, "gelu\' error {worst_d:.3e}");
    assert_eq!(y[n / 2], 0.0);
}

#[test]
fn gelu_non_contiguous_and_bf16() {
    let x = randt(3, &[33, 65], 3.0, 0.0);
    let r = randt(4, &[65, 33], 1.0, 0.0);
    let (y, gx) = grads(&x, DType::F32, true, &r, true);
    let (y0, gx0) = grads(&x, DType::F64, true, &r, false);
    assert_close("gelu transposed y", &y, &y0, 1e-6);
    assert_close("gelu transposed dx", &gx, &gx0, 2e-6);
    let xb = x.to_dtype(DType::BF16).unwrap();
    let yb = kernels::gelu(&xb).unwrap();
    assert_eq!(yb.dtype(), DType::BF16);
    assert_close(
        "gelu bf16",
        &yb,
        &xb.to_dtype(DType::F64).unwrap().gelu_erf().unwrap(),
        8e-3,
    );
}
