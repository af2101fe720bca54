//! Benchmark: the ModernBERT backbone at ModernBERT-base size (hidden 768, 22 layers, 12
//! heads, GeGLU 1152, window 128; random weights from a fresh VarMap), forward (eval) and
//! forward+backward, for a few batch x sequence shapes. Prints a markdown table of the
//! best-of-N wall time and tokens/s.
//!
//! Run: `RAYON_NUM_THREADS=2 cargo run -p colzero-model --example bench_modernbert [reps]`
//! (the dev profile already optimises colzero-model at opt-level 3).

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use colzero_model::modernbert::{ModernBert, ModernBertConfig};
use colzero_model::{Backbone, ForwardCtx};
use std::time::Instant;

fn best_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> colzero_model::Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let dev = Device::Cpu;
    let cfg = ModernBertConfig::from_json(&serde_json::json!({"model_type": "modernbert"}))?;
    let varmap = VarMap::new();
    let model = ModernBert::load(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg)?;
    println!("| batch x seq | forward ms | tokens/s | fwd+bwd ms |");
    println!("|---|---|---|---|");
    for (b, t) in [(8usize, 64usize), (8, 256), (4, 512)] {
        let ids: Vec<u32> = (0..b * t).map(|i| (i * 7919 % 50000) as u32).collect();
        let ids = Tensor::from_vec(ids, (b, t), &dev)?;
        // last sequence half padded, as in a length-sorted batch
        let mask: Vec<u32> = (0..b * t)
            .map(|i| u32::from(i / t + 1 < b || i % t < t / 2))
            .collect();
        let mask = Tensor::from_vec(mask, (b, t), &dev)?;
        let fwd = best_ms(reps, || {
            model
                .forward_t(&ids, &mask, &mut ForwardCtx::eval())
                .unwrap();
        });
        let bwd = best_ms(reps.min(1), || {
            let h = model
                .forward_t(&ids, &mask, &mut ForwardCtx::eval())
                .unwrap();
            h.sum_all().unwrap().backward().unwrap();
        });
        let tps = (b * t) as f64 / (fwd / 1e3);
        println!("| {b} x {t} | {fwd:.0} | {tps:.0} | {bwd:.0} |");
    }
    Ok(())
}
