//! Fused softmax (`kernels::softmax_last`) and masked scaled softmax
//! (`kernels::masked_softmax`) against f64 composed references: values and gradients on
//! attention-score shapes, non-contiguous input, large logits, rows of length 1, broadcast
//! masks `[b,1,1,t]` / `[b,1,t,t]`, `-inf` and `f32::MIN` masks, fully masked rows (zeros,
//! no NaN) and bf16 input.

mod kernels_common;
use candle_core::{DType, Device, Tensor};
use colzero_model::kernels;
use kernels_common::*;

const TOL: f64 = 1e-5;

/// (y, dx) of `f` at `x` (a leaf of dtype `dt`, optionally transposed), upstream grad `r`.
fn run(
    x: &Tensor,
    dt: DType,
    transpose: bool,
    r: &Tensor,
    f: &dyn Fn(&Tensor) -> Tensor,
) -> (Tensor, Tensor) {
    let xv = var(x, dt);
    let xin = if transpose {
        xv.as_tensor().t().unwrap()
    } else {
        xv.as_tensor().clone()
    };
    let y = f(&xin);
    let g = probe_loss(&y, r).backward().unwrap();
    (y, g.get(xv.as_tensor()).unwrap().clone())
}

fn check(
    label: &str,
    x: &Tensor,
    transpose: bool,
    fused: &dyn Fn(&Tensor) -> Tensor,
    reference: &dyn Fn(&Tensor) -> Tensor,
) {
    let mut shape = x.dims().to_vec();
    if transpose {
        let n = shape.len();
        shape.swap(n - 1, n - 2);
    }
    let r = randt(77, &shape, 1.0, 0.0);
    let (y, gx) = run(x, DType::F32, transpose, &r, fused);
    let (y0, gx0) = run(x, DType::F64, transpose, &r, reference);
    assert_close(&format!("{label} y"), &y, &y0, TOL);
    assert_close(&format!("{label} dx"), &gx, &gx0, TOL);
}

#[test]
fn softmax_matches_reference_on_attention_shape() {
    let x = randt(1, &[2, 12, 60, 180], 3.0, 0.0);
    check(
        "softmax",
        &x,
        false,
        &|x| kernels::softmax_last(x).unwrap(),
        &|x| ref_softmax(x),
    );
}

#[test]
fn softmax_non_contiguous_large_logits_and_width_one() {
    let x = randt(2, &[3, 45, 37], 2.0, 0.0);
    check(
        "softmax transposed",
        &x,
        true,
        &|x| kernels::softmax_last(x).unwrap(),
        &|x| ref_softmax(x),
    );
    let x = randt(3, &[16, 100], 1.0e3, 5.0e3);
    check(
        "softmax 1e3",
        &x,
        false,
        &|x| kernels::softmax_last(x).unwrap(),
        &|x| ref_softmax(x),
    );
    let x = randt(4, &[7, 1], 10.0, 0.0);
    let y = kernels::softmax_last(&x).unwrap();
    assert!(flat(&y).iter().all(|v| *v == 1.0));
    check(
        "softmax d=1",
        &x,
        false,
        &|x| kernels::softmax_last(x).unwrap(),
        &|x| ref_softmax(x),
    );
}

/// A `[b,1,1,t]` padding mask (0 = keep, `neg` = masked) with `lens[i]` valid tokens.
fn pad_mask(lens: &[usize], t: usize, neg: f32) -> Tensor {
    let data: Vec<f32> = lens
        .iter()
        .flat_map(|&l| (0..t).map(move |j| if j < l { 0.0 } else { neg }))
        .collect();
    Tensor::from_vec(data, (lens.len(), 1, 1, t), &Device::Cpu).unwrap()
}

#[test]
fn masked_softmax_padding_mask_matches_reference() {
    let (b, h, t) = (4, 12, 57);
    let x = randt(5, &[b, h, t, t], 4.0, 0.0);
    let scale = 1.0 / 8.0;
    for neg in [f32::NEG_INFINITY, f32::MIN, -1.0e4] {
        let m = pad_mask(&[57, 30, 1, 12], t, neg);
        check(
            &format!("masked pad {neg:e}"),
            &x,
            false,
            &|x| kernels::masked_softmax(x, Some(&m), scale).unwrap(),
            &|x| ref_masked_softmax(x, &m, scale),
        );
    }
}

#[test]
fn masked_softmax_full_square_mask_and_no_mask() {
    let (b, h, t) = (2, 3, 40);
    let x = randt(6, &[b, h, t, t], 2.0, 0.0);
    // Causal-style [b,1,t,t] mask plus random finite additive bias.
    let bias = randt(7, &[b, 1, t, t], 1.0, 0.0);
    let data: Vec<f32> = flat(&bias)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (i % t) > (i / t) % t {
                f32::NEG_INFINITY
            } else {
                *v as f32
            }
        })
        .collect();
    let m = Tensor::from_vec(data, (b, 1, t, t), &Device::Cpu).unwrap();
    check(
        "masked causal",
        &x,
        false,
        &|x| kernels::masked_softmax(x, Some(&m), 0.3).unwrap(),
        &|x| ref_masked_softmax(x, &m, 0.3),
    );
    check(
        "masked transposed",
        &x,
        true,
        &|x| kernels::masked_softmax(x, Some(&m), 0.3).unwrap(),
        &|x| ref_masked_softmax(x, &m, 0.3),
    );
    check(
        "scaled no mask",
        &x,
        false,
        &|x| kernels::masked_softmax(x, None, 0.125).unwrap(),
        &|x| ref_softmax(&(x * 0.125).unwrap()),
    );
}

#[test]
fn fully_masked_rows_give_zeros_and_zero_gradient() {
    let (b, h, t) = (3, 2, 9);
    let x = randt(8, &[b, h, t, t], 1.0, 0.0);
    // Batch item 1 is fully masked with -inf: defined output 0, gradient 0.
    let m = pad_mask(&[9, 0, 4], t, f32::NEG_INFINITY);
    let xv = var(&x, DType::F32);
    let y = kernels::masked_softmax(xv.as_tensor(), Some(&m), 0.5).unwrap();
    let r = randt(9, &[b, h, t, t], 1.0, 0.0);
    let g = probe_loss(&y, &r).backward().unwrap();
    let gx = g.get(xv.as_tensor()).unwrap();
    assert!(
        flat(&y)
            .iter()
            .chain(flat(gx).iter())
            .all(|v| v.is_finite()),
        "NaN/inf produced"
    );
    assert!(flat(&y.get(1).unwrap()).iter().all(|v| *v == 0.0));
    assert!(flat(&gx.get(1).unwrap()).iter().all(|v| *v == 0.0));
    // The other items still sum to one per row.
    for i in [0, 2] {
        let s = flat(&y.get(i).unwrap().sum(2).unwrap());
        assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-6), "{s:?}");
    }
    // Plain softmax of an all -inf row: zeros too.
    let z = Tensor::full(f32::NEG_INFINITY, (2, 5), &Device::Cpu).unwrap();
    assert!(flat(&kernels::softmax_last(&z).unwrap())
        .iter()
        .all(|v| *v == 0.0));
    // With a finite f32::MIN mask the fully masked row is uniform, as in the reference.
    let m = pad_mask(&[9, 0, 4], t, f32::MIN);
    let y = kernels::masked_softmax(&x, Some(&m), 0.5).unwrap();
    let want = ref_masked_softmax(&x.to_dtype(DType::F64).unwrap(), &m, 0.5);
    assert_close("fully masked f32::MIN", &y, &want, TOL);
}

#[test]
fn masked_softmax_bf16_computes_in_f32() {
    let x = randt(10, &[2, 4, 20, 20], 2.0, 0.0);
    let m = pad_mask(&[20, 11], 20, f32::NEG_INFINITY)
        .to_dtype(DType::BF16)
        .unwrap();
    let y = kernels::masked_softmax(&x.to_dtype(DType::BF16).unwrap(), Some(&m), 0.5).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let want = ref_masked_softmax(
        &x.to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap(),
        &m,
        0.5,
    );
    assert_close("masked bf16", &y, &want, 8e-3);
}
