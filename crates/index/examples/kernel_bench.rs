//! Throughput of the dense kernels (single thread), in GFMA per CPU second, so that the
//! figure stays meaningful on a loaded machine:
//!     cargo run --release -p colzero-index --example kernel_bench

#[path = "common/mod.rs"]
mod common;

use colzero_index::kernel::{argmax_packed, maxsim_packed, pack_panels, scores_packed};
use rand::{Rng, SeedableRng};

/// CPU seconds used by this thread (utime + stime from /proc/thread-self/stat).
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    t / 100.0
}

fn main() {
    let dim = 128;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut rand_vec =
        |n: usize| -> Vec<f32> { (0..n * dim).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let k = 8192;
    let cents = rand_vec(k);
    let mut cp = Vec::new();
    pack_panels(&cents, dim, &mut cp);
    let rows = rand_vec(4096);
    let mut out = vec![(0u32, 0.0f32); 128];
    let (t0, c0) = (std::time::Instant::now(), cpu_s());
    for chunk in rows.chunks(128 * dim) {
        argmax_packed(chunk, dim, &cp, k, &mut out);
    }
    let fma = 4096.0 * k as f64 * dim as f64;
    let (w, c) = (t0.elapsed().as_secs_f64(), cpu_s() - c0);
    println!(
        "argmax  4096 x 8192 x 128: {:.1} GFMA/s wall, {:.1} GFMA/CPU-s",
        fma / w / 1e9,
        fma / c.max(1e-3) / 1e9
    );

    let q = rand_vec(32);
    let docs: Vec<Vec<f32>> = (0..2000).map(|_| rand_vec(180)).collect();
    let packed: Vec<Vec<f32>> = docs
        .iter()
        .map(|d| {
            let mut p = Vec::new();
            pack_panels(d, dim, &mut p);
            p
        })
        .collect();
    let (t0, c0) = (std::time::Instant::now(), cpu_s());
    let mut s = 0.0;
    for p in &packed {
        s += maxsim_packed(&q, dim, p, 180);
    }
    let fma = 2000.0 * 180.0 * 32.0 * dim as f64;
    let (w, c) = (t0.elapsed().as_secs_f64(), cpu_s() - c0);
    println!(
        "maxsim  2000 docs x 180 x 32 x 128: {:.1} GFMA/s wall, {:.1} GFMA/CPU-s ({s:.1})",
        fma / w / 1e9,
        fma / c.max(1e-3) / 1e9
    );

    let mut qp = Vec::new();
    pack_panels(&q, dim, &mut qp);
    let mut st = vec![0.0f32; k * 32];
    let (t0, c0) = (std::time::Instant::now(), cpu_s());
    for _ in 0..20 {
        scores_packed(&cents, dim, &qp, 32, &mut st);
    }
    let fma = 20.0 * k as f64 * 32.0 * dim as f64;
    let (w, c) = (t0.elapsed().as_secs_f64(), cpu_s() - c0);
    println!(
        "scores  8192 x 32 x 128 (x20): {:.1} GFMA/s wall, {:.1} GFMA/CPU-s",
        fma / w / 1e9,
        fma / c.max(1e-3) / 1e9
    );
}
