//! Benchmark: fused CPU kernels (`colzero_model::kernels`) vs the composed candle ops they
//! replace, forward and forward+backward, on MiniLM-like shapes (batch 32 x seq 180 x
//! hidden 384, 12 heads, FFN 1536). Prints a markdown table of the best-of-N wall time in ms.
//! fwd+bwd = `y.backward()` (upstream gradient = ones, as `y.backward(torch.ones_like(y))`
//! in bench/kernels/bench_torch.py, which prints PyTorch's numbers for the same shapes);
//! a scalar probe loss would add candle's slow broadcast-mul to both columns.
//!
//! Run: `RAYON_NUM_THREADS=2 cargo run -p colzero-model --example bench_kernels [reps]`
//! (the dev profile already optimises colzero-model at opt-level 3).

use candle_core::{Device, Tensor, Var, D};
use colzero_model::kernels;
use std::time::Instant;

type Op = Box<dyn Fn(&Tensor) -> Tensor>;

fn composed_layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let mean = x.mean_keepdim(D::Minus1).unwrap();
    let xc = x.broadcast_sub(&mean).unwrap();
    let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    let y = xc
        .broadcast_div(&(var + 1e-12).unwrap().sqrt().unwrap())
        .unwrap();
    y.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
}

fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up (allocations, page faults)
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn time_op(x: &Tensor, op: &Op, reps: usize) -> (f64, f64) {
    let fwd = best_ms(reps, || {
        let y = op(x);
        std::hint::black_box(y);
    });
    let v = Var::from_tensor(x).unwrap();
    let both = best_ms(reps, || {
        let y = op(v.as_tensor());
        let g = y.backward().unwrap();
        std::hint::black_box(g.get(v.as_tensor()).unwrap());
    });
    (fwd, both)
}

/// Deterministic pseudo-random values in [-1.7, 1.7] (LCG; benchmark data only).
fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.4
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    let (b, t, h, nh, ff) = (32, 180, 384, 12, 1536);
    let w = randn(&[h], 1).affine(0.1, 1.0).unwrap();
    let bias = randn(&[h], 2).affine(0.1, 0.0).unwrap();
    let lens: Vec<f32> = (0..b)
        .flat_map(|i| {
            let l = 40 + (i * 37) % (t - 40);
            (0..t).map(move |j| if j < l { 0.0 } else { f32::NEG_INFINITY })
        })
        .collect();
    let mask = Tensor::from_vec(lens, (b, 1, 1, t), &dev).unwrap();
    let scale = 1.0 / (32f64).sqrt();

    let cases: Vec<(&str, Vec<usize>, Op, Op)> = vec![
        (
            "layer_norm [32,180,384]",
            vec![b, t, h],
            {
                let (w, bias) = (w.clone(), bias.clone());
                Box::new(move |x| composed_layer_norm(x, &w, &bias))
            },
            {
                let (w, bias) = (w.clone(), bias.clone());
                Box::new(move |x| kernels::layer_norm(x, &w, Some(&bias), 1e-12).unwrap())
            },
        ),
        (
            "softmax [32,12,180,180]",
            vec![b, nh, t, t],
            Box::new(|x| candle_nn::ops::softmax(x, D::Minus1).unwrap()),
            Box::new(|x| kernels::softmax_last(x).unwrap()),
        ),
        (
            "masked_softmax [32,12,180,180]",
            vec![b, nh, t, t],
            {
                let mask = mask.clone();
                Box::new(move |x| {
                    let s = (x * scale).unwrap().broadcast_add(&mask).unwrap();
                    candle_nn::ops::softmax(&s, D::Minus1).unwrap()
                })
            },
            {
                let mask = mask.clone();
                Box::new(move |x| kernels::masked_softmax(x, Some(&mask), scale).unwrap())
            },
        ),
        (
            "gelu [32,180,1536]",
            vec![b, t, ff],
            Box::new(|x| x.gelu_erf().unwrap()),
            Box::new(|x| kernels::gelu(x).unwrap()),
        ),
    ];
    println!(
        "threads: {} (RAYON_NUM_THREADS), best of {reps}",
        rayon::current_num_threads()
    );
    println!("| op | composed fwd ms | fused fwd ms | composed fwd+bwd ms | fused fwd+bwd ms | speed-up fwd / fwd+bwd |");
    println!("|---|---|---|---|---|---|");
    for (name, shape, composed, fused) in &cases {
        let x = randn(shape, 3);
        let (cf, cb) = time_op(&x, composed, reps);
        let (ff_, fb) = time_op(&x, fused, reps);
        println!(
            "| {name} | {cf:.1} | {ff_:.1} | {cb:.1} | {fb:.1} | {:.1}x / {:.1}x |",
            cf / ff_,
            cb / fb
        );
    }
}
