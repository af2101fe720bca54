//! Concurrency stress test of one index: 2 writer loops (each runs every add or delete as
//! a separate process, some of them killed with SIGKILL at a random moment or at a named
//! write step) and 4 reader threads (fresh snapshots and long-lived ones) searching all
//! the while.
//!
//! Checked: every acknowledged operation is applied, in order; every killed one is
//! applied wholly or not at all; every search returns hits or a clear "busy" (lock) error,
//! never a missing file; at the end the index opens, its live ids are exactly the expected
//! set, each document's reconstruction matches its own vectors (nothing mixed), and after
//! one final collection no file outside the manifest is left.
//!
//! `COLZERO_STRESS_SECS` sets the duration (default 6 s in the test suite;
//! `bench/index/stress.sh` runs 300 s). Writers own disjoint ids (writer `w` adds
//! `w<w>-<n>` and deletes only its own), so a killed operation's outcome can be read off
//! the index while the other writer goes on.

use colzero_core::lock::Wait;
use colzero_core::{CoreError, MultiVector};
use colzero_index::synthetic::{clustered, SyntheticConfig};
use colzero_index::{build_index, BuildConfig, IndexError, IndexWriter, PlaidIndex, SearchParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const POOL: usize = 3000;
const FAULTS: [&str; 6] = [
    "index.add.chunk",
    "index.commit.begin",
    "index.commit.ivf",
    "index.commit.docs",
    "index.commit.manifest",
    "index.commit.gc",
];

type Docs = Vec<(String, MultiVector)>;

fn pool() -> (Docs, Docs) {
    clustered(&SyntheticConfig {
        dim: 32,
        n_docs: POOL,
        n_queries: 16,
        n_concepts: 64,
        min_doc_len: 4,
        max_doc_len: 24,
        query_len: 8,
        seed: 7,
        ..Default::default()
    })
}

/// The vectors of a stress document id: `base-<j>` and `w<w>-<n>` map onto the pool.
fn vectors_of(pool: &[(String, MultiVector)], id: &str) -> MultiVector {
    let j = if let Some(j) = id.strip_prefix("base-") {
        j.parse::<usize>().unwrap()
    } else {
        let (w, n) = id[1..].split_once('-').unwrap();
        300 + (n.parse::<usize>().unwrap() * 2 + w.parse::<usize>().unwrap()) % (POOL - 300)
    };
    pool[j].1.clone()
}

/// The child side: one operation on the index, as its own process.
#[test]
fn stress_child() {
    let Ok(dir) = std::env::var("STRESS_DIR") else {
        return;
    };
    let op = std::env::var("STRESS_OP").unwrap();
    let ids: Vec<String> = std::env::var("STRESS_IDS")
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let mut w = IndexWriter::open(Path::new(&dir), Wait::Up(Duration::from_secs(120))).unwrap();
    if op == "add" {
        let (pool, _) = pool();
        // Two chunks, so that a kill can fall between them.
        let half = ids.len().div_ceil(2);
        for part in ids.chunks(half) {
            let embs: Vec<MultiVector> = part.iter().map(|i| vectors_of(&pool, i)).collect();
            w.add(part.to_vec(), &embs).unwrap();
        }
    } else {
        w.delete(&ids).unwrap();
    }
    w.commit().unwrap();
}

#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    killed_applied: AtomicU64,
    killed_not_applied: AtomicU64,
    searches: AtomicU64,
    busy: AtomicU64,
}

fn spawn_child(dir: &Path, op: &str, ids: &[String], fault: Option<&str>) -> std::process::Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "stress_child", "--nocapture", "--test-threads=1"])
        .env("STRESS_DIR", dir)
        .env("STRESS_OP", op)
        .env("STRESS_IDS", ids.join(","))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    match fault {
        Some(f) => c.env("COLZERO_FAULT", f),
        None => c.env_remove("COLZERO_FAULT"),
    };
    c.spawn().unwrap()
}

/// One writer loop: returns the ids it expects live at the end.
fn writer_loop(
    w: usize,
    dir: PathBuf,
    mut live: BTreeSet<String>,
    deadline: Instant,
    counts: Arc<Counts>,
) -> BTreeSet<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(100 + w as u64);
    let mut next = 0usize;
    while Instant::now() < deadline {
        let add = live.len() < 20 || rng.random_bool(0.6);
        let ids: Vec<String> = if add {
            let n = rng.random_range(1..=24);
            (0..n)
                .map(|_| {
                    next += 1;
                    format!("w{w}-{next}")
                })
                .collect()
        } else {
            let v: Vec<&String> = live.iter().collect();
            let n = rng.random_range(1..=8.min(v.len()));
            (0..n)
                .map(|_| v[rng.random_range(0..v.len())].clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let roll: f64 = rng.random();
        let fault = (roll < 0.15).then(|| FAULTS[rng.random_range(0..FAULTS.len())]);
        let timed_kill = (0.15..0.3).contains(&roll);
        let mut child = spawn_child(&dir, if add { "add" } else { "delete" }, &ids, fault);
        if timed_kill {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            counts.acked.fetch_add(1, Ordering::Relaxed);
            for id in ids {
                if add {
                    live.insert(id);
                } else {
                    live.remove(&id);
                }
            }
            continue;
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "writer {w} failed without being killed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Killed: all or nothing, read off the index (the other writer never touches
        // these ids).
        let idx = PlaidIndex::open(&dir).unwrap();
        let present = ids.iter().filter(|i| idx.contains(i)).count();
        let applied = if add {
            present == ids.len()
        } else {
            present == 0
        };
        assert!(
            present == 0 || present == ids.len(),
            "writer {w}: a killed {} left {present} of {} ids applied",
            if add { "add" } else { "delete" },
            ids.len()
        );
        if applied {
            counts.killed_applied.fetch_add(1, Ordering::Relaxed);
            for id in ids {
                if add {
                    live.insert(id);
                } else {
                    live.remove(&id);
                }
            }
        } else {
            counts.killed_not_applied.fetch_add(1, Ordering::Relaxed);
        }
    }
    live
}

fn reader_loop(
    r: usize,
    dir: PathBuf,
    queries: Vec<MultiVector>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(200 + r as u64);
    let params = SearchParams::default();
    let mut held: Option<PlaidIndex> = None;
    while !stop.load(Ordering::Relaxed) {
        // Readers 0 and 1 open a fresh snapshot per search; 2 and 3 keep one for a while.
        if r < 2 || held.is_none() || rng.random_bool(0.05) {
            match PlaidIndex::open(&dir) {
                Ok(i) => held = Some(i),
                Err(IndexError::Core(CoreError::Locked { .. })) => {
                    counts.busy.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    errors.lock().unwrap().push(format!("open: {e}"));
                    continue;
                }
            }
        }
        let idx = held.as_ref().unwrap();
        let q = &queries[rng.random_range(0..queries.len())];
        match idx.search_with(q, 10, &params, None) {
            Ok(h) if !h.is_empty() || idx.is_empty() => {
                counts.searches.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => errors.lock().unwrap().push("no hits".into()),
            Err(e) => errors.lock().unwrap().push(format!("search: {e}")),
        }
    }
}

#[test]
fn two_writers_four_readers_and_kills() {
    let secs: f64 = std::env::var("COLZERO_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let (pool, queries) = pool();
    let base: Vec<(String, MultiVector)> = (0..300)
        .map(|j| (format!("base-{j}"), pool[j].1.clone()))
        .collect();
    build_index(
        &dir,
        &base,
        &BuildConfig {
            chunk_docs: 100,
            ..Default::default()
        },
    )
    .unwrap();
    let counts = Arc::new(Counts::default());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let qs: Vec<MultiVector> = queries.into_iter().map(|q| q.1).collect();
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (d, q, s, c, e) = (
                dir.clone(),
                qs.clone(),
                stop.clone(),
                counts.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || reader_loop(r, d, q, s, c, e))
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            // Each writer owns half of the base documents.
            let live: BTreeSet<String> = (0..300)
                .filter(|j| j % 2 == w)
                .map(|j| format!("base-{j}"))
                .collect();
            let (d, c) = (dir.clone(), counts.clone());
            std::thread::spawn(move || writer_loop(w, d, live, deadline, c))
        })
        .collect();
    let mut expected = BTreeSet::new();
    for w in writers {
        expected.extend(w.join().expect("writer loop"));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} search errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );

    // The final state: exactly the expected ids, each with its own vectors.
    let litter_before = colzero_index::writer::collect_garbage(&dir, Wait::No).unwrap();
    let idx = PlaidIndex::open(&dir).unwrap();
    let got: BTreeSet<String> = idx.ids().map(String::from).collect();
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "live ids differ from the acknowledged operations"
    );
    for id in got.iter().step_by(7) {
        let rec = idx.reconstruct(id).unwrap();
        let want = vectors_of(&pool, id);
        assert_eq!(rec.n_tokens(), want.n_tokens(), "{id}");
        let mean_cos: f32 = (0..want.n_tokens())
            .map(|t| {
                let (a, b) = (rec.row(t), want.row(t));
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let n: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
                dot / n
            })
            .sum::<f32>()
            / want.n_tokens() as f32;
        assert!(mean_cos > 0.9, "{id}: reconstruction cosine {mean_cos}");
    }
    let m = colzero_index::format::read_manifest(&dir).unwrap();
    let left = colzero_index::format::unreferenced_files(&dir, &m);
    assert!(left.is_empty(), "left behind: {left:?}");
    let c = &counts;
    eprintln!(
        "stress {:.0}s: {} operations acknowledged, {} killed (applied {}, not applied {}), \
         {} searches, {} busy, {} documents live, {} unreferenced files removed at the end",
        t0.elapsed().as_secs_f64(),
        c.acked.load(Ordering::Relaxed),
        c.killed_applied.load(Ordering::Relaxed) + c.killed_not_applied.load(Ordering::Relaxed),
        c.killed_applied.load(Ordering::Relaxed),
        c.killed_not_applied.load(Ordering::Relaxed),
        c.searches.load(Ordering::Relaxed),
        c.busy.load(Ordering::Relaxed),
        got.len(),
        litter_before,
    );
    assert!(c.acked.load(Ordering::Relaxed) > 0);
    assert!(c.searches.load(Ordering::Relaxed) > 0);
}
