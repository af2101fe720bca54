//! Benchmark of the PLAID index against exact search on embedding stores (figures are
//! printed, nothing is asserted). Two phases, run as separate processes so that the
//! build's peak RSS is measured alone:
//!
//!     # streaming build: sample -> train -> chunks; prints time, peak RSS, bytes/token
//!     cargo run --release -p colzero-index --example plaid_bench -- build \
//!         --docs DOCS.safetensors --index DIR [--nbits 2] [--chunk-docs 2000]
//!     # search: QPS of exact vs PLAID (batch and one query at a time), recall vs exact
//!     cargo run --release -p colzero-index --example plaid_bench -- search \
//!         --docs DOCS.safetensors --queries QUERIES.safetensors --index DIR [--k 10] \
//!         [--n-probe 8] [--threshold 0.4] [--n-candidates N] [--n-full N] \
//!         [--runs-out runs.json] [--max-queries N]
//!
//! Threads: RAYON_NUM_THREADS (default: all cores).

#[path = "common/mod.rs"]
mod common;

use colzero_core::{Hit, MultiVector};
use colzero_index::kmeans::sample_docs;
use colzero_index::{BuildConfig, ExactIndex, IndexBuilder, PlaidIndex, SearchParams};
use common::{mib, status_kb, Args, StreamStore};
use rand::SeedableRng;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

fn build(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = StreamStore::open(&PathBuf::from(a.str("docs", "docs.safetensors")))?;
    let dir = PathBuf::from(a.str("index", "/tmp/colzero-bench/index"));
    let cfg = BuildConfig {
        nbits: a.num("nbits", 2),
        seed: a.num("seed", 42),
        expected_documents: Some(store.len()),
        ..Default::default()
    };
    let chunk_docs: usize = a.num("chunk-docs", 2000);
    let n = store.len();
    let t0 = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut idx = rand::seq::index::sample(&mut rng, n, sample_docs(n)).into_vec();
    idx.sort_unstable();
    let sample: Vec<MultiVector> = idx.iter().map(|&i| store.read(i).1).collect();
    let mut peak_anon = status_kb("RssAnon");
    let mut b = IndexBuilder::train(&dir, &sample, &cfg)?;
    drop(sample);
    let t_train = t0.elapsed().as_secs_f64();
    peak_anon = peak_anon.max(status_kb("RssAnon"));
    let after_train_anon = status_kb("RssAnon");
    let mut i = 0;
    while i < n {
        let end = (i + chunk_docs).min(n);
        let (ids, embs): (Vec<String>, Vec<MultiVector>) = (i..end).map(|j| store.read(j)).unzip();
        b.add_chunk(ids, &embs)?;
        drop(embs);
        peak_anon = peak_anon.max(status_kb("RssAnon"));
        i = end;
    }
    let index = b.finish()?;
    let total = t0.elapsed().as_secs_f64();
    let info = index.info();
    println!("docs                 {n}");
    println!("tokens               {}", info.num_tokens);
    println!("sample docs          {}", sample_docs(n));
    println!("centroids            {}", info.num_centroids);
    println!("nbits                {}", info.nbits);
    println!("threads              {}", rayon::current_num_threads());
    println!("train time (s)       {t_train:.2}");
    println!("build time (s)       {total:.2}");
    println!("bytes on disk        {}", info.bytes_on_disk);
    println!("bytes per token      {:.2}", info.bytes_per_token);
    println!("peak RSS VmHWM (MiB) {:.1}", mib(status_kb("VmHWM")));
    println!(
        "peak anon RSS (MiB)  {:.1} (after training: {:.1})",
        mib(peak_anon),
        mib(after_train_anon)
    );
    Ok(())
}

fn recall(got: &[Hit], want: &[Hit]) -> f64 {
    let w: HashSet<&str> = want.iter().map(|h| h.id.as_str()).collect();
    got.iter().filter(|h| w.contains(h.id.as_str())).count() as f64 / want.len().max(1) as f64
}

fn run_json(qids: &[String], hits: &[Vec<Hit>]) -> BTreeMap<String, Vec<Hit>> {
    qids.iter().cloned().zip(hits.iter().cloned()).collect()
}

fn search(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let docs = StreamStore::open(&PathBuf::from(a.str("docs", "docs.safetensors")))?;
    let qstore = StreamStore::open(&PathBuf::from(a.str("queries", "queries.safetensors")))?;
    let nq_max = a.num("max-queries", qstore.len()).min(qstore.len());
    let (qids, qs): (Vec<String>, Vec<MultiVector>) = (0..nq_max).map(|i| qstore.read(i)).unzip();
    let k: usize = a.num("k", 10);
    let d = SearchParams::default();
    let p = SearchParams {
        n_probe: a.num("n-probe", d.n_probe),
        centroid_score_threshold: a
            .num("threshold", d.centroid_score_threshold.unwrap_or(-1.0))
            .into(),
        n_candidates: a
            .flag("n-candidates")
            .then(|| a.num("n-candidates", 0))
            .or(d.n_candidates),
        n_full: a.flag("n-full").then(|| a.num("n-full", 0)).or(d.n_full),
    };
    let p = SearchParams {
        centroid_score_threshold: p.centroid_score_threshold.filter(|t| *t >= 0.0),
        ..p
    };
    let t = Instant::now();
    let index = PlaidIndex::open(&PathBuf::from(a.str("index", "/tmp/colzero-bench/index")))?;
    let t_open = t.elapsed().as_secs_f64();
    let exact = ExactIndex::from_embeddings((0..docs.len()).map(|i| docs.read(i)).collect())?;
    let nq = qs.len() as f64;
    println!(
        "queries {} docs {} k {k} threads {} params {p:?}",
        qs.len(),
        docs.len(),
        rayon::current_num_threads()
    );
    println!("index open (s, incl. checksums) {t_open:.3}");

    let t = Instant::now();
    let want = exact.search_batch(&qs, k)?;
    let exact_qps = nq / t.elapsed().as_secs_f64();
    let _ = index.search_batch(&qs[..qs.len().min(8)], k, &p, None)?; // warm the page cache
    let t = Instant::now();
    let got = index.search_batch(&qs, k, &p, None)?;
    let plaid_qps = nq / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for q in &qs {
        std::hint::black_box(index.search_with(q, k, &p, None)?);
    }
    let plaid_single_ms = t.elapsed().as_secs_f64() * 1000.0 / nq;
    let r = got
        .iter()
        .zip(&want)
        .map(|(g, w)| recall(g, w))
        .sum::<f64>()
        / nq;
    println!("exact  batch QPS     {exact_qps:.1}");
    println!(
        "PLAID  batch QPS     {plaid_qps:.1}  ({:.1}x exact)",
        plaid_qps / exact_qps
    );
    println!(
        "PLAID  one-at-a-time {plaid_single_ms:.2} ms/query ({:.1} QPS)",
        1000.0 / plaid_single_ms
    );
    println!("PLAID  recall@{k} vs exact {r:.4}");
    println!("peak RSS VmHWM (MiB) {:.1}", mib(status_kb("VmHWM")));
    if a.flag("runs-out") {
        let out = serde_json::json!({"k": k, "exact": run_json(&qids, &want), "plaid": run_json(&qids, &got)});
        std::fs::write(a.str("runs-out", "runs.json"), serde_json::to_vec(&out)?)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let phase = std::env::args().nth(1).unwrap_or_default();
    let a = Args::parse();
    match phase.as_str() {
        "build" => build(&a),
        "search" => search(&a),
        _ => Err("usage: plaid_bench build|search [--options] (see the file header)".into()),
    }
}
