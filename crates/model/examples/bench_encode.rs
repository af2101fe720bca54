//! Benchmark: ColBERT document/query encoding throughput (all-MiniLM-L6-v2 converted to a
//! 128-dim ColBERT, documents of ../shared SciFact). Prints texts/s and tokens/s for a few
//! batch sizes, sequential vs rayon-parallel batches. Figures only, no assertions.
//!
//! Run: `cargo run -p colzero-model --example bench_encode -- [N_DOCS] [SHARED_DIR]`

use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

// The allocator of the `colzero` binary (see colzero_core::alloc), so the benchmark
// measures what users run.
#[global_allocator]
static GLOBAL: colzero_core::alloc::MiMalloc = colzero_core::alloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    colzero_core::alloc::retain_freed_memory();
    colzero_core::cpu::init(None);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(256), |s| s.parse())?;
    let shared = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "../shared".into()));
    let model_dir = shared.join("models/sentence-transformers/all-MiniLM-L6-v2");
    let model = ColBERT::from_dense(&model_dir, 128, 0, &LoadOptions::default())?;
    let corpus = std::fs::File::open(shared.join("data/beir/scifact/corpus.jsonl"))?;
    let docs: Vec<String> = std::io::BufReader::new(corpus)
        .lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            format!(
                "{} {}",
                v["title"].as_str().unwrap_or(""),
                v["text"].as_str().unwrap_or("")
            )
            .trim()
            .to_string()
        })
        .collect();
    println!("| texts | batch | parallel batches | s | texts/s | kept tokens/s |");
    println!("|---|---|---|---|---|---|");
    for (bs, par) in [(32, false), (32, true), (64, true), (16, true)] {
        let opts = EncodeOptions {
            batch_size: bs,
            parallel_batches: par,
            show_progress: false,
        };
        let t = Instant::now();
        let out = model.encode(&docs, InputKind::Document, &opts)?;
        let s = t.elapsed().as_secs_f64();
        let toks: usize = out.iter().map(|m| m.n_tokens()).sum();
        println!(
            "| {} | {bs} | {par} | {s:.2} | {:.1} | {:.0} |",
            docs.len(),
            docs.len() as f64 / s,
            toks as f64 / s
        );
    }
    Ok(())
}
