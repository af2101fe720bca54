//! Measurement: peak RSS of one GradCache (CachedContrastive) step on MiniLM ColBERT.
//!
//! Usage: `cargo run -p colzero-train --example cached_rss -- <batch> <mini> [score_mini] [q_len] [d_len]`
//! (default q 32 / d 180, one hard negative, dropout on). Prints the loss, the time and VmHWM
//! (peak resident set) from /proc/self/status, and VmHWM measured right after loading the
//! model (the fixed part). Each configuration must run in its own process.

use colzero_model::{ColBERT, ForwardCtx, LoadOptions};
use colzero_train::cached::CachedOptions;
use colzero_train::data::PairDataset;
use colzero_train::optim::Params;
use colzero_train::step::{micro_step, Batch, StageLoss};
use colzero_train::Contrastive;
use std::time::Instant;

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

// The allocator of the `colzero` binary (colzero_core::alloc): the peak RSS users see.
#[global_allocator]
static GLOBAL: colzero_core::alloc::MiMalloc = colzero_core::alloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    colzero_core::alloc::retain_freed_memory();
    colzero_core::cpu::init(None);
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).map_or(Ok(16), |s| s.parse())?;
    let mini: usize = args.get(2).map_or(Ok(16), |s| s.parse())?;
    let score_mini: usize = args.get(3).map_or(Ok(mini), |s| s.parse())?;
    let q_len: usize = args.get(4).map_or(Ok(32), |s| s.parse())?;
    let d_len: usize = args.get(5).map_or(Ok(180), |s| s.parse())?;
    let shared = std::path::PathBuf::from(
        std::env::var("COLZERO_SHARED").unwrap_or_else(|_| "../shared".into()),
    );
    let opts = LoadOptions {
        trainable: true,
        query_length: Some(q_len),
        document_length: Some(d_len),
        ..Default::default()
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
    let rows: Vec<usize> = (0..batch).map(|i| i % ds.sizes()[0]).collect();
    let b = Batch::Pairs(
        rows.iter()
            .map(|&r| ds.example(0, r))
            .collect::<Result<_, _>>()?,
    );
    let base = vm_hwm_mb();
    let loss = StageLoss::Cached(
        Contrastive::new(0.02),
        CachedOptions {
            mini_batch_size: mini,
            score_mini_batch_size: score_mini,
            pylate_grad_scale: false,
        },
    );
    let t = Instant::now();
    let (l, g) = micro_step(&model, &loss, &b, &params, &mut ForwardCtx::train(1))?;
    let norm = g.global_norm()?;
    println!(
        "RESULT batch {batch} mini {mini} score_mini {score_mini} q {q_len} d {d_len}: loss {l:.4} grad_norm {norm:.4} time {:.1}s peak_rss_mb {:.0} (after load {base:.0})",
        t.elapsed().as_secs_f64(),
        vm_hwm_mb()
    );
    Ok(())
}
