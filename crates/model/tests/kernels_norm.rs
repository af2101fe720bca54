//! Fused layer norm (`kernels::layer_norm`) against an f64 composed reference: forward and
//! gradients w.r.t. x, weight and bias, with/without bias, non-contiguous input, large
//! offsets, bf16 input, rows of length 1, and shape errors.

mod kernels_common;
use candle_core::{DType, Tensor};
use colzero_model::kernels;
use kernels_common::*;

const TOL: f64 = 1e-5;

/// Runs fused (f32) and reference (f64) on the same values, compares y and all gradients.
fn check(label: &str, x: &Tensor, w: &Tensor, b: Option<&Tensor>, eps: f64, transpose: bool) {
    let r = {
        let shape = x.dims().to_vec();
        let mut shape = shape;
        if transpose {
            let n = shape.len();
            shape.swap(n - 1, n - 2);
        }
        randt(99, &shape, 1.0, 0.0)
    };
    let run = |dt: DType, fused: bool| {
        let (xv, wv) = (var(x, dt), var(w, dt));
        let bv = b.map(|b| var(b, dt));
        let xin = if transpose {
            xv.as_tensor().t().unwrap()
        } else {
            xv.as_tensor().clone()
        };
        let y = if fused {
            kernels::layer_norm(
                &xin,
                wv.as_tensor(),
                bv.as_ref().map(|v| v.as_tensor()),
                eps,
            )
            .unwrap()
        } else {
            ref_layer_norm(
                &xin,
                wv.as_tensor(),
                bv.as_ref().map(|v| v.as_tensor()),
                eps,
            )
        };
        let grads = probe_loss(&y, &r).backward().unwrap();
        let gx = grads.get(xv.as_tensor()).unwrap().clone();
        let gw = grads.get(wv.as_tensor()).unwrap().clone();
        let gb = bv
            .as_ref()
            .map(|v| grads.get(v.as_tensor()).unwrap().clone());
        (y, gx, gw, gb)
    };
    let (y, gx, gw, gb) = run(DType::F32, true);
    let (y0, gx0, gw0, gb0) = run(DType::F64, false);
    assert_close(&format!("{label} y"), &y, &y0, TOL);
    assert_close(&format!("{label} dx"), &gx, &gx0, TOL);
    assert_close(&format!("{label} dw"), &gw, &gw0, TOL);
    if let (Some(a), Some(b)) = (gb, gb0) {
        assert_close(&format!("{label} db"), &a, &b, TOL);
    }
}

#[test]
fn layer_norm_with_bias_matches_reference_on_minilm_shape() {
    let x = randt(1, &[8, 180, 384], 2.0, 0.3);
    let w = randt(2, &[384], 0.5, 1.0);
    let b = randt(3, &[384], 0.5, 0.0);
    check("ln bias", &x, &w, Some(&b), 1e-12, false);
}

#[test]
fn layer_norm_without_bias_matches_reference() {
    let x = randt(4, &[3, 61, 768], 1.0, -0.5);
    let w = randt(5, &[768], 0.5, 1.0);
    check("ln nobias", &x, &w, None, 1e-5, false);
}

#[test]
fn layer_norm_non_contiguous_and_odd_width() {
    // x is [5, 37, 45] viewed transposed as [5, 45, 37]: last dim 37 (not a multiple of 8).
    let x = randt(6, &[5, 37, 45], 1.0, 0.0);
    let w = randt(7, &[37], 0.5, 1.0);
    let b = randt(8, &[37], 0.5, 0.0);
    check("ln transposed", &x, &w, Some(&b), 1e-5, true);
}

#[test]
fn layer_norm_large_offset_stays_accurate() {
    // Offset 1e4 with unit spread: the mean is split so (x - mean) stays exact.
    let x = randt(9, &[64, 384], 1.0, 1.0e4);
    let w = randt(10, &[384], 0.5, 1.0);
    let b = randt(11, &[384], 0.5, 0.0);
    check("ln offset 1e4", &x, &w, Some(&b), 1e-12, false);
    // Large spread too.
    let x = randt(12, &[64, 384], 1.0e3, 0.0);
    check("ln scale 1e3", &x, &w, Some(&b), 1e-5, false);
}

#[test]
fn layer_norm_row_of_length_one_gives_bias() {
    let x = randt(13, &[6, 1], 3.0, 0.0);
    let w = Tensor::new(&[2.0f32], &candle_core::Device::Cpu).unwrap();
    let b = Tensor::new(&[0.25f32], &candle_core::Device::Cpu).unwrap();
    let y = kernels::layer_norm(&x, &w, Some(&b), 1e-5).unwrap();
    assert!(flat(&y).iter().all(|v| *v == 0.25), "{:?}", flat(&y));
    check("ln d=1", &x, &w, Some(&b), 1e-5, false);
}

#[test]
fn layer_norm_bf16_input_computes_in_f32() {
    let x = randt(14, &[4, 33, 384], 1.0, 0.0)
        .to_dtype(DType::BF16)
        .unwrap();
    let w = randt(15, &[384], 0.5, 1.0);
    let y = kernels::layer_norm(&x, &w, None, 1e-5).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let want = ref_layer_norm(
        &x.to_dtype(DType::F64).unwrap(),
        &w.to_dtype(DType::F64).unwrap(),
        None,
        1e-5,
    );
    // bf16 output rounding: 2^-8 relative.
    assert_close("ln bf16 y", &y, &want, 8e-3);
}

#[test]
fn layer_norm_rejects_wrong_weight_shape() {
    let x = randt(16, &[2, 8], 1.0, 0.0);
    let w = randt(17, &[7], 1.0, 0.0);
    let err = kernels::layer_norm(&x, &w, None, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weight") && err.contains("[7]") && err.contains("8"),
        "{err}"
    );
}
