//! Benchmark data: writes seeded synthetic clustered embeddings (see
//! `colzero_index::synthetic`) as two embedding stores, `docs.safetensors` and
//! `queries.safetensors`, in `--out DIR`.
//!
//!     cargo run --release -p colzero-index --example gen_synthetic -- \
//!         --out /tmp/colzero-bench --docs 5000 --queries 300 --dim 128 \
//!         --min-len 60 --max-len 300 --query-len 32 --concepts 4096 --seed 1

#[path = "common/mod.rs"]
mod common;

use colzero_core::StoreWriter;
use colzero_index::synthetic::{clustered, SyntheticConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = common::Args::parse();
    let out = std::path::PathBuf::from(a.str("out", "/tmp/colzero-bench"));
    let cfg = SyntheticConfig {
        dim: a.num("dim", 128),
        n_docs: a.num("docs", 5000),
        n_queries: a.num("queries", 300),
        n_concepts: a.num("concepts", 4096),
        concepts_per_doc: a.num("concepts-per-doc", 8),
        min_doc_len: a.num("min-len", 60),
        max_doc_len: a.num("max-len", 300),
        query_len: a.num("query-len", 32),
        noise: a.num("noise", 0.6),
        seed: a.num("seed", 1),
    };
    let (docs, queries) = clustered(&cfg);
    for (name, items, kind) in [("docs", docs, "document"), ("queries", queries, "query")] {
        let mut w = StoreWriter::new();
        w.metadata("colzero.kind", kind);
        let n = items.len();
        let t: usize = items.iter().map(|d| d.1.n_tokens()).sum();
        for (id, mv) in items {
            w.push(id, mv)?;
        }
        let p = out.join(format!("{name}.safetensors"));
        w.write(&p)?;
        println!("{}: {n} texts, {t} tokens", p.display());
    }
    Ok(())
}
