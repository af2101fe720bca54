//! Benchmark: samples/s of one ColBERT contrastive training step on CPU.
//!
//! MiniLM-L6 (../shared) converted to ColBERT (fresh 128-d projection, as PyLate does),
//! batch 32 of (query, positive, 1 hard negative) real MS MARCO triples, query length 32,
//! document length 180 (padded, as PyLate's collator), dropout on, Contrastive loss,
//! clip 1.0, AdamW. Prints one line per timed step and the mean. Run via
//! bench/train/run.sh (which pins 2 threads and runs PyLate on the same configuration):
//!
//!     RAYON_NUM_THREADS=2 cargo run -p colzero-train --example bench_step -- [steps] [loss]
//!
//! `loss` is `contrastive` (default) or `cached:<mini_batch>`.

use colzero_model::{ColBERT, ForwardCtx, LoadOptions};
use colzero_train::cached::CachedOptions;
use colzero_train::data::PairDataset;
use colzero_train::optim::{AdamW, AdamWConfig, Params};
use colzero_train::step::{micro_step, Batch, StageLoss};
use colzero_train::Contrastive;
use std::time::Instant;

// The allocator of the `colzero` binary (see colzero_core::alloc), so the benchmark
// measures what users run.
#[global_allocator]
static GLOBAL: colzero_core::alloc::MiMalloc = colzero_core::alloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    colzero_core::alloc::retain_freed_memory();
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let loss_arg = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "contrastive".into());
    let shared = std::env::var("COLZERO_SHARED").unwrap_or_else(|_| "../shared".into());
    let shared = std::path::PathBuf::from(shared);
    let opts = LoadOptions {
        trainable: true,
        query_length: Some(32),
        document_length: Some(180),
        ..LoadOptions::default()
    };
    let model = ColBERT::from_dense(
        &shared.join("models/sentence-transformers/all-MiniLM-L6-v2"),
        128,
        42,
        &opts,
    )?;
    let params = Params::from_var_map(model.var_map().ok_or("not trainable")?)?;
    let ds = PairDataset::open(
        &shared.join("data/train/msmarco-triples-splade-toy/triples.tsv"),
        1,
    )?;
    let loss = match loss_arg.strip_prefix("cached:") {
        Some(mb) => StageLoss::Cached(Contrastive::new(0.02), CachedOptions::new(mb.parse()?)),
        None => StageLoss::Contrastive(Contrastive::new(0.02)),
    };
    let mut opt = AdamW::new(&params, AdamWConfig::default());
    let mut ctx = ForwardCtx::train(42);
    let bs = 32;
    let mut times = Vec::new();
    for s in 0..=steps {
        let rows: Vec<usize> = (0..bs).map(|i| (s * bs + i) % ds.sizes()[0]).collect();
        let batch = Batch::Pairs(
            rows.iter()
                .map(|&r| ds.example(0, r))
                .collect::<Result<_, _>>()?,
        );
        let t = Instant::now();
        let (l, mut g) = micro_step(&model, &loss, &batch, &params, &mut ctx)?;
        g.clip_global_norm(1.0)?;
        opt.step(&params, &g, 3e-6)?;
        let dt = t.elapsed().as_secs_f64();
        if s == 0 {
            println!("warmup step: {dt:.2}s loss {l:.4}");
        } else {
            println!(
                "step {s}: {dt:.2}s loss {l:.4} -> {:.2} samples/s",
                bs as f64 / dt
            );
            times.push(dt);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "RESULT colzero {loss_arg}: {:.2} samples/s (mean step {mean:.2}s over {} steps)",
        bs as f64 / mean,
        times.len()
    );
    Ok(())
}
