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
//! `loss` is `contrastive` (default) or `cached:<mini_batch>`. Each step line also gives the
//! process CPU time (user + sys) and minor page faults of that step (Linux `/proc/self/stat`),
//! which stay meaningful when the machine is loaded and wall times do not.

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
    colzero_core::cpu::init(None);
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
    let mut cpus = Vec::new();
    for s in 0..=steps {
        let rows: Vec<usize> = (0..bs).map(|i| (s * bs + i) % ds.sizes()[0]).collect();
        let batch = Batch::Pairs(
            rows.iter()
                .map(|&r| ds.example(0, r))
                .collect::<Result<_, _>>()?,
        );
        let t = Instant::now();
        let c0 = cpu_counters();
        let (l, mut g) = micro_step(&model, &loss, &batch, &params, &mut ctx)?;
        g.clip_global_norm(1.0)?;
        opt.step(&params, &g, 3e-6)?;
        let dt = t.elapsed().as_secs_f64();
        let c1 = cpu_counters();
        let (user, sys, faults) = (c1.0 - c0.0, c1.1 - c0.1, c1.2 - c0.2);
        let cpu = format!("cpu {user:.2}+{sys:.2}s faults {faults}");
        if s == 0 {
            println!("warmup step: {dt:.2}s loss {l:.4} {cpu}");
        } else {
            println!(
                "step {s}: {dt:.2}s loss {l:.4} -> {:.2} samples/s {cpu}",
                bs as f64 / dt
            );
            times.push(dt);
            cpus.push((user, sys, faults));
        }
    }
    let n = times.len() as f64;
    let mean = times.iter().sum::<f64>() / n;
    let mu = cpus.iter().map(|c| c.0).sum::<f64>() / n;
    let ms = cpus.iter().map(|c| c.1).sum::<f64>() / n;
    let mf = cpus.iter().map(|c| c.2).sum::<u64>() as f64 / n;
    println!(
        "RESULT colzero {loss_arg}: {:.2} samples/s (mean step {mean:.2}s over {} steps; \
         cpu/step user {mu:.2}s sys {ms:.2}s, {mf:.0} minor faults/step)",
        bs as f64 / mean,
        times.len()
    );
    Ok(())
}

/// (user s, sys s, minor faults) of this process so far, from `/proc/self/stat` (zeros
/// where that file does not exist).
fn cpu_counters() -> (f64, f64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0, 0);
    };
    // Fields after the parenthesised command name: state is field 3; minflt 10, utime 14,
    // stime 15 (1-based, clock ticks of 1/100 s on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (num(14) as f64 / 100.0, num(15) as f64 / 100.0, num(10))
}
