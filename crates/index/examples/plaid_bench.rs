//! Benchmark of the PLAID index against exact search on embedding stores (figures are
//! printed, nothing is asserted). Two phases, run as separate processes so that the
//! build's peak RSS is measured alone:
//!
//!     # streaming build: sample -> train -> chunks; prints time, peak RSS, bytes/token
//!     cargo run --release -p colzero-index --example plaid_bench -- build \
//!         --docs DOCS.safetensors --index DIR [--nbits 2] [--chunk-docs 2000] \
//!         [--format-version 2]
//!     # search: QPS of exact vs PLAID (batch and one query at a time), recall vs exact
//!     cargo run --release -p colzero-index --example plaid_bench -- search \
//!         --docs DOCS.safetensors --queries QUERIES.safetensors --index DIR [--k 10,100] \
//!         [--n-probe 8] [--threshold 0.4] [--n-candidates N] [--n-full N] [--f32-rerank] \
//!         [--runs-out runs.json] [--max-queries N] [--rounds R] [--single] [--plaid-only] \
//!         [--qrels QRELS.tsv [--exhaustive] [--fidelity-out per-query.json]]
//!
//! `search` prints `RESULT <key> <value>` lines that `bench/index/run.sh` collects into
//! its table; with `--qrels` it adds nDCG@10 of exact and PLAID (k = 10) and the
//! per-query fidelity evidence of `bench/index/FIDELITY.md`.
//!
//! Threads: RAYON_NUM_THREADS (default: all cores).

#[path = "common/mod.rs"]
mod common;

use colzero_core::{Hit, MultiVector};
use colzero_eval::{evaluate, EvalOptions, Metric, Qrels};
use colzero_index::kmeans::{sample_docs, sample_positions};
use colzero_index::{BuildConfig, ExactIndex, IndexBuilder, PlaidIndex, SearchParams};
use common::{cpu_seconds, mib, status_kb, Args, StreamStore};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

fn build(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = StreamStore::open(&PathBuf::from(a.str("docs", "docs.safetensors")))?;
    let dir = PathBuf::from(a.str("index", "/tmp/colzero-bench/index"));
    let cfg = BuildConfig {
        nbits: a.num("nbits", 2),
        seed: a.num("seed", 42),
        format_version: a.num("format-version", colzero_index::FORMAT_VERSION),
        expected_documents: Some(store.len()),
        ..Default::default()
    };
    let chunk_docs: usize = a.num("chunk-docs", 2000);
    let n = store.len();
    let t0 = Instant::now();
    let idx = sample_positions(n, cfg.seed);
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
    for p in &info.breakdown {
        println!("  {:<18} {:.3} B/token", p.part, p.bytes_per_token);
    }
    println!("peak RSS VmHWM (MiB) {:.1}", mib(status_kb("VmHWM")));
    println!(
        "peak anon RSS (MiB)  {:.1} (after training: {:.1})",
        mib(peak_anon),
        mib(after_train_anon)
    );
    Ok(())
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn recall(got: &[Hit], want: &[Hit]) -> f64 {
    let w: HashSet<&str> = want.iter().map(|h| h.id.as_str()).collect();
    got.iter().filter(|h| w.contains(h.id.as_str())).count() as f64 / want.len().max(1) as f64
}

fn run_json(qids: &[String], hits: &[Vec<Hit>]) -> BTreeMap<String, Vec<Hit>> {
    qids.iter().cloned().zip(hits.iter().cloned()).collect()
}

/// Per-query nDCG@10 (pytrec_eval semantics, `colzero_eval::evaluate`) of a run.
fn ndcg10(qrels: &Qrels, qids: &[String], hits: &[Vec<Hit>]) -> BTreeMap<String, f64> {
    let metric = Metric::parse("ndcg@10").expect("metric");
    let run: colzero_core::Run = qids.iter().cloned().zip(hits.iter().cloned()).collect();
    let report = evaluate(
        qrels,
        &run,
        std::slice::from_ref(&metric),
        &EvalOptions::default(),
    )
    .expect("evaluation");
    qids.iter()
        .filter_map(|q| report.query(q, &metric).map(|v| (q.clone(), v)))
        .collect()
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}

/// The k-list of the search phase: `--k 10` or `--k 10,100`.
fn k_list(a: &Args) -> Vec<usize> {
    a.str("k", "10")
        .split(',')
        .map(|k| k.trim().parse().expect("--k: comma-separated integers"))
        .collect()
}

fn search(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let docs = StreamStore::open(&PathBuf::from(a.str("docs", "docs.safetensors")))?;
    let qstore = StreamStore::open(&PathBuf::from(a.str("queries", "queries.safetensors")))?;
    let nq_max = a.num("max-queries", qstore.len()).min(qstore.len());
    let (qids, qs): (Vec<String>, Vec<MultiVector>) = (0..nq_max).map(|i| qstore.read(i)).unzip();
    let ks = k_list(a);
    let kmax = *ks.iter().max().expect("--k");
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
        f32_rerank: a.flag("f32-rerank"),
    };
    let p = SearchParams {
        centroid_score_threshold: p.centroid_score_threshold.filter(|t| *t >= 0.0),
        ..p
    };
    let t = Instant::now();
    let index = PlaidIndex::open(&PathBuf::from(a.str("index", "/tmp/colzero-bench/index")))?;
    let t_open = t.elapsed().as_secs_f64();
    let plaid_only = a.flag("plaid-only");
    let exact = if plaid_only {
        ExactIndex::from_embeddings(Vec::new())?
    } else {
        ExactIndex::from_embeddings((0..docs.len()).map(|i| docs.read(i)).collect())?
    };
    let nq = qs.len() as f64;
    println!(
        "queries {} docs {} k {ks:?} threads {} params {p:?}",
        qs.len(),
        docs.len(),
        rayon::current_num_threads()
    );
    println!("index open (s, incl. checksums) {t_open:.3}");
    println!("{}", index.info());
    let info = index.info();
    println!("RESULT colzero_bytes_per_token {:.2}", info.bytes_per_token);

    // Exact search at the largest k (its cost does not depend on k; smaller k are
    // prefixes of the same ranking), then PLAID at each k, back to back; `--rounds R`
    // repeats that cycle R times (ratios are per round, so load changes between rounds
    // do not skew them). QPS are wall-clock and per CPU-second (user + system of all
    // threads: robust to other processes taking the cores).
    let rounds: usize = a.num("rounds", 1);
    let qrels = if a.flag("qrels") {
        Some(Qrels::read(&PathBuf::from(a.str("qrels", "")))?)
    } else {
        None
    };
    let mut runs = serde_json::Map::new();
    let mut want_max: Vec<Vec<Hit>> = Vec::new();
    let mut plaid_k10: Option<Vec<Vec<Hit>>> = None;
    let mut sum_ratio = vec![(0.0f64, 0.0f64); ks.len()];
    for round in 0..rounds {
        let (mut exact_qps, mut exact_cqps) = (f64::NAN, f64::NAN);
        if !plaid_only {
            let (t, c) = (Instant::now(), cpu_seconds());
            want_max = exact.search_batch(&qs, kmax)?;
            exact_qps = nq / t.elapsed().as_secs_f64();
            exact_cqps = nq / (cpu_seconds() - c).max(0.01);
            println!(
                "[round {round}] exact  batch QPS {exact_qps:.2} (k {kmax}), per CPU-second \
                 {exact_cqps:.2}, load {}",
                loadavg()
            );
            println!("RESULT exact_qps {exact_qps:.2}");
            println!("RESULT exact_cpu_qps {exact_cqps:.2}");
            runs.insert(
                "exact".into(),
                serde_json::to_value(run_json(&qids, &want_max))?,
            );
        }
        for (ki, &k) in ks.iter().enumerate() {
            let _ = index.search_batch(&qs[..qs.len().min(8)], k, &p, None)?; // warm the page cache
            let (t, c) = (Instant::now(), cpu_seconds());
            let got = index.search_batch(&qs, k, &p, None)?;
            let plaid_qps = nq / t.elapsed().as_secs_f64();
            let plaid_cqps = nq / (cpu_seconds() - c).max(0.01);
            let single = if a.flag("single") {
                let t = Instant::now();
                for q in &qs {
                    std::hint::black_box(index.search_with(q, k, &p, None)?);
                }
                format!(
                    ", one-at-a-time {:.2} ms/query",
                    t.elapsed().as_secs_f64() * 1000.0 / nq
                )
            } else {
                String::new()
            };
            let (nc, nf) = p.resolved(k);
            let r = if plaid_only {
                f64::NAN
            } else {
                let want: Vec<Vec<Hit>> = want_max
                    .iter()
                    .map(|h| h[..h.len().min(k)].to_vec())
                    .collect();
                mean(got.iter().zip(&want).map(|(g, w)| recall(g, w)))
            };
            sum_ratio[ki].0 += plaid_qps / exact_qps;
            sum_ratio[ki].1 += plaid_cqps / exact_cqps;
            println!(
                "[round {round}] PLAID  k {k:3} (n_candidates {nc}, n_full {nf}): batch QPS \
                 {plaid_qps:.1} ({:.1}x exact), per CPU-second {plaid_cqps:.1} ({:.1}x exact){single}, \
                 recall@{k} vs exact {r:.4}, load {}",
                plaid_qps / exact_qps,
                plaid_cqps / exact_cqps,
                loadavg()
            );
            println!("RESULT colzero_qps_k{k} {plaid_qps:.2}");
            println!("RESULT colzero_cpu_qps_k{k} {plaid_cqps:.2}");
            println!("RESULT colzero_recall_k{k} {r:.4}");
            runs.insert(
                format!("plaid_k{k}"),
                serde_json::to_value(run_json(&qids, &got))?,
            );
            if k == 10 {
                plaid_k10 = Some(got);
            }
        }
    }
    for (ki, &k) in ks.iter().enumerate() {
        let (w, c) = sum_ratio[ki];
        println!(
            "PLAID/exact k {k}: mean over {rounds} rounds {:.2}x wall, {:.2}x CPU",
            w / rounds as f64,
            c / rounds as f64
        );
    }
    if plaid_only {
        return Ok(());
    }
    if let (Some(qrels), Some(got)) = (&qrels, &plaid_k10) {
        let want: Vec<Vec<Hit>> = want_max
            .iter()
            .map(|h| h[..h.len().min(10)].to_vec())
            .collect();
        let e = ndcg10(qrels, &qids, &want);
        let g = ndcg10(qrels, &qids, got);
        let me = mean(e.values().copied());
        let mg = mean(g.values().copied());
        println!("RESULT exact_ndcg10 {me:.4}");
        println!("RESULT colzero_ndcg10 {mg:.4}");
        fidelity(a, &index, &qids, &qs, &want, got, (&e, &g), qrels)?;
    }
    println!("peak RSS VmHWM (MiB) {:.1}", mib(status_kb("VmHWM")));
    if a.flag("runs-out") {
        let mut out = serde_json::Map::new();
        out.insert("k".into(), serde_json::json!(kmax));
        out.extend(runs);
        // `plaid` = the run at the first k (fast_plaid_bench.py reads `exact`).
        let first = out[&format!("plaid_k{}", ks[0])].clone();
        out.insert("plaid".into(), first);
        std::fs::write(a.str("runs-out", "runs.json"), serde_json::to_vec(&out)?)?;
    }
    Ok(())
}

/// Per-query evidence of PLAID vs exact at k = 10 (see bench/index/FIDELITY.md): how many
/// queries gain or lose nDCG@10, top-10 overlap, and for every exact top-10 document that
/// PLAID misses whether it was lost before the rerank (its MaxSim over the reconstructed
/// vectors would have placed it in PLAID's top 10) or by the rerank itself (reconstruction
/// error). With `--exhaustive`, also nDCG@10 of ranking every document by MaxSim over its
/// reconstructed vectors (compression alone, no candidate generation or pruning).
#[allow(clippy::too_many_arguments)]
fn fidelity(
    a: &Args,
    index: &PlaidIndex,
    qids: &[String],
    qs: &[MultiVector],
    want: &[Vec<Hit>],
    got: &[Vec<Hit>],
    (e, g): (&BTreeMap<String, f64>, &BTreeMap<String, f64>),
    qrels: &Qrels,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut up, mut down, mut same) = (0, 0, 0);
    let (mut gain, mut loss) = (0.0, 0.0);
    for (q, ev) in e {
        let d = g[q] - ev;
        if d > 1e-9 {
            up += 1;
            gain += d;
        } else if d < -1e-9 {
            down += 1;
            loss += d;
        } else {
            same += 1;
        }
    }
    let n = e.len().max(1) as f64;
    let overlap = mean(got.iter().zip(want).map(|(g, w)| recall(g, w)));
    let identical = got
        .iter()
        .zip(want)
        .filter(|(g, w)| g.iter().map(|h| &h.id).eq(w.iter().map(|h| &h.id)))
        .count();
    let (mut lost_before, mut lost_rerank, mut lost_rel) = (0usize, 0usize, 0usize);
    for ((q, g), w) in qs.iter().zip(got).zip(want) {
        let ids: HashSet<&str> = g.iter().map(|h| h.id.as_str()).collect();
        let tenth = g.last().map(|h| h.score).unwrap_or(f32::NEG_INFINITY);
        for h in w.iter().filter(|h| !ids.contains(h.id.as_str())) {
            let rec = index.reconstruct(&h.id).expect("document in index");
            if colzero_core::maxsim(q, &rec) >= tenth {
                lost_before += 1;
            } else {
                lost_rerank += 1;
            }
        }
    }
    for ((qid, g), w) in qids.iter().zip(got).zip(want) {
        let ids: HashSet<&str> = g.iter().map(|h| h.id.as_str()).collect();
        lost_rel += w
            .iter()
            .filter(|h| !ids.contains(h.id.as_str()))
            .filter(|h| qrels.relevance(qid, &h.id).unwrap_or(0) > 0)
            .count();
    }
    println!("fidelity (k 10, {} judged queries):", e.len());
    println!(
        "  nDCG@10 exact {:.4}  PLAID {:.4}  (delta {:+.4})",
        mean(e.values().copied()),
        mean(g.values().copied()),
        mean(g.values().copied()) - mean(e.values().copied())
    );
    println!(
        "  queries up {up} (sum {gain:+.3}), down {down} (sum {loss:+.3}), unchanged {same}; \
         mean |delta| {:.4}",
        (gain - loss) / n
    );
    println!(
        "  top-10 overlap with exact {overlap:.4}; identical top-10 lists {identical}/{}",
        got.len()
    );
    println!(
        "  exact top-10 docs missing from PLAID top-10: {} (lost before the rerank {lost_before}, \
         by the rerank {lost_rerank}; judged relevant {lost_rel})",
        lost_before + lost_rerank
    );
    println!("RESULT fidelity_up {up}");
    println!("RESULT fidelity_down {down}");
    println!("RESULT fidelity_overlap {overlap:.4}");
    if a.flag("exhaustive") {
        let all = SearchParams {
            n_probe: index.info().num_centroids,
            centroid_score_threshold: None,
            n_candidates: Some(index.len()),
            n_full: Some(index.len()),
            f32_rerank: a.flag("f32-rerank"),
        };
        let t = Instant::now();
        let ex = index.search_batch(qs, 10, &all, None)?;
        let r = ndcg10(qrels, qids, &ex);
        let ov = mean(ex.iter().zip(want).map(|(g, w)| recall(g, w)));
        println!(
            "  exhaustive rerank over reconstructed vectors: nDCG@10 {:.4}, top-10 overlap \
             with exact {ov:.4}, with PLAID {:.4} ({:.0} s)",
            mean(r.values().copied()),
            mean(ex.iter().zip(got).map(|(x, g)| recall(g, x))),
            t.elapsed().as_secs_f64()
        );
        println!(
            "RESULT reconstructed_ndcg10 {:.4}",
            mean(r.values().copied())
        );
    }
    if a.flag("fidelity-out") {
        let rows: Vec<serde_json::Value> = qids
            .iter()
            .zip(got.iter().zip(want))
            .filter(|(q, _)| e.contains_key(*q))
            .map(|(q, (gh, w))| {
                serde_json::json!({"query": q, "exact_ndcg10": e[q], "plaid_ndcg10": g[q],
                    "top10_overlap": recall(gh, w)})
            })
            .collect();
        let path = a.str("fidelity-out", "fidelity.json");
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)?;
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
