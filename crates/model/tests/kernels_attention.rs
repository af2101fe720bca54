//! Fused attention (`kernels::attention`) and fused dropout (`kernels::dropout`) against
//! composed references: values and gradients of q, k, v in f64 (split heads, matmul,
//! scaled softmax with an additive key bias, the same seeded dropout mask, matmul, merge
//! heads), with padded keys (`f32::MIN` bias), odd lengths, with and without dropout; the
//! f32 composed path of `nn::attention_composed`; determinism in the seed and independence
//! from the rayon thread count.

mod kernels_common;
use candle_core::{DType, Device, Tensor, Var};
use colzero_model::kernels;
use colzero_model::nn::attention_composed;
use kernels_common::*;

/// Key bias `[b, t]`: batch row `i` has its last `i * 3` keys masked with `f32::MIN`.
fn key_bias(b: usize, t: usize) -> Tensor {
    let v: Vec<f32> = (0..b * t)
        .map(|e| {
            if e % t >= t - (e / t) * 3 {
                f32::MIN
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

/// f64 reference: composed ops, the same dropout mask materialised.
fn reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
    p: f32,
    seed: u64,
) -> Tensor {
    let (b, t, h) = q.dims3().unwrap();
    let dh = h / heads;
    let split = |y: &Tensor| {
        y.reshape((b, t, heads, dh))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let (qs, ks, vs) = (split(q), split(k), split(v));
    let scores = qs.matmul(&ks.t().unwrap().contiguous().unwrap()).unwrap();
    let mask = bias
        .to_dtype(DType::F64)
        .unwrap()
        .reshape((b, 1, 1, t))
        .unwrap();
    let mut probs = ref_masked_softmax(&scores, &mask, 1.0 / (dh as f64).sqrt());
    if p > 0.0 {
        let m = kernels::dropout::keep_mask(probs.elem_count(), seed, p);
        let m = Tensor::from_vec(m, probs.dims(), &Device::Cpu).unwrap();
        probs = probs.mul(&m.to_dtype(DType::F64).unwrap()).unwrap();
    }
    probs
        .matmul(&vs)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((b, t, h))
        .unwrap()
}

type Grads = (Tensor, Tensor, Tensor, Tensor);

/// (out, dq, dk, dv) of `f` at seeded q/k/v of dtype `dt` with upstream gradient `r`.
fn run(dims: (usize, usize, usize), dt: DType, f: &dyn Fn(&[Tensor; 3]) -> Tensor) -> Grads {
    let (b, t, h) = dims;
    let vars: Vec<Var> = (0..3)
        .map(|i| var(&randt(10 + i, &[b, t, h], 1.0, 0.0), dt))
        .collect();
    let ins = [
        vars[0].as_tensor().clone(),
        vars[1].as_tensor().clone(),
        vars[2].as_tensor().clone(),
    ];
    let y = f(&ins);
    let r = randt(99, &[b, t, h], 1.0, 0.0);
    let g = probe_loss(&y, &r).backward().unwrap();
    let gr = |i: usize| g.get(vars[i].as_tensor()).unwrap().clone();
    (y, gr(0), gr(1), gr(2))
}

fn check(dims: (usize, usize, usize), heads: usize, p: f32, seed: u64, tol: f64) {
    let (b, t, h) = dims;
    let scale = 1.0 / ((h / heads) as f64).sqrt();
    let bias = key_bias(b, t);
    let fused = run(dims, DType::F32, &|x| {
        kernels::attention(&x[0], &x[1], &x[2], Some(&bias), heads, scale, p, seed).unwrap()
    });
    let want = run(dims, DType::F64, &|x| {
        reference(&x[0], &x[1], &x[2], &bias, heads, p, seed)
    });
    let label = format!("attention {dims:?} heads {heads} p {p}");
    assert_close(&format!("{label} out"), &fused.0, &want.0, tol);
    assert_close(&format!("{label} dq"), &fused.1, &want.1, tol);
    assert_close(&format!("{label} dk"), &fused.2, &want.2, tol);
    assert_close(&format!("{label} dv"), &fused.3, &want.3, tol);
    // The f32 composed path of nn.rs (what non-CPU devices run) agrees too.
    let composed = run(dims, DType::F32, &|x| {
        attention_composed(&x[0], &x[1], &x[2], Some(&bias), heads, scale, p, seed).unwrap()
    });
    assert_close(&format!("{label} composed out"), &fused.0, &composed.0, tol);
    assert_close(&format!("{label} composed dq"), &fused.1, &composed.1, tol);
    assert_close(&format!("{label} composed dk"), &fused.2, &composed.2, tol);
    assert_close(&format!("{label} composed dv"), &fused.3, &composed.3, tol);
}

#[test]
fn attention_matches_reference_without_dropout() {
    check((3, 37, 48), 4, 0.0, 0, 1e-5);
}

#[test]
fn attention_matches_reference_with_dropout() {
    check((3, 37, 48), 4, 0.3, 1234, 1e-5);
}

#[test]
fn attention_matches_reference_on_minilm_document_shape() {
    check((2, 180, 384), 12, 0.1, 42, 1e-5);
}

#[test]
fn attention_without_bias_and_single_head() {
    let dims = (2, 9, 8);
    let fused = run(dims, DType::F32, &|x| {
        kernels::attention(&x[0], &x[1], &x[2], None, 1, 0.5, 0.0, 0).unwrap()
    });
    let zero = Tensor::zeros((2, 9), DType::F32, &Device::Cpu).unwrap();
    let want = run(dims, DType::F64, &|x| {
        let (b, t, h) = x[0].dims3().unwrap();
        let s = x[0].matmul(&x[1].t().unwrap()).unwrap();
        let z = zero
            .to_dtype(DType::F64)
            .unwrap()
            .reshape((b, 1, t))
            .unwrap();
        ref_masked_softmax(&s, &z, 0.5)
            .matmul(&x[2])
            .unwrap()
            .reshape((b, t, h))
            .unwrap()
    });
    assert_close("no-bias out", &fused.0, &want.0, 1e-5);
    assert_close("no-bias dq", &fused.1, &want.1, 1e-5);
    assert_close("no-bias dk", &fused.2, &want.2, 1e-5);
    assert_close("no-bias dv", &fused.3, &want.3, 1e-5);
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn attention_is_deterministic_in_seed_and_thread_count() {
    let dims = (4, 33, 64);
    let go = |seed: u64| {
        let bias = key_bias(4, 33);
        run(dims, DType::F32, &move |x| {
            kernels::attention(&x[0], &x[1], &x[2], Some(&bias), 4, 0.25, 0.2, seed).unwrap()
        })
    };
    let one = in_pool(1, || go(5));
    let three = in_pool(3, || go(5));
    for (a, b) in [
        (&one.0, &three.0),
        (&one.1, &three.1),
        (&one.2, &three.2),
        (&one.3, &three.3),
    ] {
        assert_eq!(flat(a), flat(b), "thread count changed the result");
    }
    let other = go(6);
    assert_ne!(flat(&one.0), flat(&other.0), "seed had no effect");
}

#[test]
fn dropout_matches_mask_and_regenerates_it_in_backward() {
    for (n, p, seed) in [(1usize, 0.5f32, 1u64), (4097, 0.1, 7), (100_003, 0.3, 9)] {
        let x = randt(3, &[n], 1.0, 0.5);
        let xv = Var::from_tensor(&x).unwrap();
        let y = kernels::dropout(xv.as_tensor(), p, seed).unwrap();
        let r = randt(4, &[n], 1.0, 0.0);
        let g = probe_loss(&y, &r).backward().unwrap();
        let gx = g.get(xv.as_tensor()).unwrap();
        let m = Tensor::from_vec(kernels::dropout::keep_mask(n, seed, p), n, &Device::Cpu).unwrap();
        assert_eq!(flat(&y), flat(&x.mul(&m).unwrap()), "n {n}");
        assert_eq!(flat(gx), flat(&r.mul(&m).unwrap()), "n {n}");
        let mv = flat(&m);
        let scale = 1.0 / (1.0 - p as f64);
        assert!(mv.iter().all(|&v| v == 0.0 || (v - scale).abs() < 1e-6));
        if n > 1000 {
            let kept = mv.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
            assert!(
                (kept - (1.0 - p as f64)).abs() < 0.02,
                "kept {kept} for p {p}"
            );
        }
    }
}

#[test]
fn dropout_mask_is_independent_of_thread_count() {
    let x = randt(8, &[3, 70_001], 1.0, 0.0);
    let one = in_pool(1, || flat(&kernels::dropout(&x, 0.1, 77).unwrap()));
    let three = in_pool(3, || flat(&kernels::dropout(&x, 0.1, 77).unwrap()));
    assert_eq!(one, three);
    let other = flat(&kernels::dropout(&x, 0.1, 78).unwrap());
    assert_ne!(one, other);
}
