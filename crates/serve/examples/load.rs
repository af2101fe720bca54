//! Bounded loopback load generator for `colzero serve` (bench/serve/run.sh drives it).
//!
//! Contract: N client threads, each with one keep-alive HTTP/1.1 connection to a server on
//! this machine, send `POST /indices/{index}/search` requests for T seconds and then stop;
//! every request is timed from write to the end of its response. Queries come from a BEIR
//! `queries.jsonl` (`"queries": [text]`, encoding included) or, with `--embeddings STORE`,
//! from an embedding store written by `colzero encode --kind query`
//! (`"query_embeddings"`). `--malformed-pct P` makes P% of requests malformed (4 kinds:
//! bad JSON, wrong type, unknown index, top_k 0) and checks each gets a 4xx;
//! `--add-every-ms M` adds one document every M ms from a separate thread and checks at the
//! end that every acknowledged one is searchable by id (`subset`). Prints one JSON object:
//! QPS, p50/p95/p99 latency, counts of good answers, wrong statuses and transport errors,
//! and the server's peak RSS (`VmHWM` of `--pid`). The target address must be loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Conn {
    addr: SocketAddr,
    r: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn request(&mut self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        if self.r.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.r = Some(BufReader::new(s));
        }
        let r = self.r.as_mut().expect("connected");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let res = (|| {
            r.get_mut().write_all(req.as_bytes())?;
            let mut line = String::new();
            r.read_line(&mut line)?;
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h)?;
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut buf = vec![0u8; len];
            r.read_exact(&mut buf)?;
            Ok((status, String::from_utf8_lossy(&buf).into_owned()))
        })();
        if res.is_err() {
            self.r = None;
        }
        res
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn queries(args: &[String]) -> Vec<String> {
    if let Some(store) = arg(args, "--embeddings") {
        let st = colzero_core::EmbeddingStore::open(std::path::Path::new(&store)).expect("store");
        return st
            .ids()
            .iter()
            .map(|id| {
                let mv = st.get(id).expect("vector");
                let rows: Vec<Vec<f32>> = (0..mv.n_tokens()).map(|t| mv.row(t).to_vec()).collect();
                serde_json::json!({ "query_embeddings": [rows] }).to_string()
            })
            .collect();
    }
    let path = arg(args, "--queries").expect("--queries FILE.jsonl or --embeddings STORE");
    std::fs::read_to_string(path)
        .expect("queries file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSONL query");
            let text = v["text"].as_str().unwrap_or_default().to_string();
            serde_json::json!({ "queries": [text], "params": {"top_k": 10} }).to_string()
        })
        .collect()
}

fn peak_rss_mib(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

const MALFORMED: [(&str, &str); 4] = [
    ("/indices/{i}/search", "{\"queries\": [\"unterminated"),
    ("/indices/{i}/search", "{\"queries\": 7}"),
    ("/indices/no-such-index/search", "{\"queries\": [\"x\"]}"),
    (
        "/indices/{i}/search",
        "{\"queries\": [\"x\"], \"params\": {\"top_k\": 0}}",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = arg(&args, "--addr")
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .expect("--addr HOST:PORT");
    assert!(
        addr.ip().is_loopback(),
        "the load generator only targets loopback"
    );
    let index = arg(&args, "--index").expect("--index NAME");
    let clients: usize = arg(&args, "--clients").map_or(1, |v| v.parse().expect("--clients"));
    let secs: f64 = arg(&args, "--seconds").map_or(10.0, |v| v.parse().expect("--seconds"));
    let bad_pct: u64 = arg(&args, "--malformed-pct").map_or(0, |v| v.parse().expect("pct"));
    let add_ms: Option<u64> = arg(&args, "--add-every-ms").map(|v| v.parse().expect("ms"));
    let bodies = Arc::new(queries(&args));
    let path = format!("/indices/{index}/search");
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
    let counts = Arc::new(Mutex::new([0u64; 4])); // good, bad-rejected, wrong status, io errors
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for c in 0..clients {
        let (bodies, path, lat, counts, index) = (
            bodies.clone(),
            path.clone(),
            lat.clone(),
            counts.clone(),
            index.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut conn = Conn { addr, r: None };
            let mut i = c * 7919;
            let mut mine = Vec::new();
            let mut n = [0u64; 4];
            while Instant::now() < deadline {
                i += 1;
                let bad = bad_pct > 0 && (i as u64 * 2654435761) % 100 < bad_pct;
                let t = Instant::now();
                let (p, b, want) = if bad {
                    let (p, b) = MALFORMED[i % MALFORMED.len()];
                    (p.replace("{i}", &index), b.to_string(), 400..500)
                } else {
                    (path.clone(), bodies[i % bodies.len()].clone(), 200..201)
                };
                match conn.request("POST", &p, &b) {
                    Ok((s, _)) if want.contains(&s) => {
                        if bad {
                            n[1] += 1;
                        } else {
                            n[0] += 1;
                            mine.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    Ok((s, body)) => {
                        n[2] += 1;
                        if n[2] <= 3 {
                            eprintln!("unexpected {s} for {p}: {body}");
                        }
                    }
                    Err(e) => {
                        n[3] += 1;
                        if n[3] <= 3 {
                            eprintln!("transport error: {e}");
                        }
                    }
                }
            }
            lat.lock().unwrap().extend(mine);
            let mut all = counts.lock().unwrap();
            for k in 0..4 {
                all[k] += n[k];
            }
        }));
    }
    // Concurrent adds: every acknowledged id must be searchable afterwards.
    let adder = add_ms.map(|ms| {
        let (stop, index) = (stop.clone(), index.clone());
        std::thread::spawn(move || {
            let mut conn = Conn { addr, r: None };
            let mut acked = Vec::new();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("load-add-{}-{k}", std::process::id());
                k += 1;
                let body = serde_json::json!({"documents": [{"id": id, "text": format!("added document number {k} about stem cells")}]});
                if let Ok((200, _)) = conn.request("POST", &format!("/indices/{index}/documents"), &body.to_string()) {
                    acked.push(id);
                }
                std::thread::sleep(Duration::from_millis(ms));
            }
            acked
        })
    });
    for h in handles {
        h.join().expect("client");
    }
    stop.store(true, Ordering::Relaxed);
    let mut lost = 0;
    let mut added = 0;
    if let Some(a) = adder {
        let acked = a.join().expect("adder");
        added = acked.len();
        let mut conn = Conn { addr, r: None };
        for id in &acked {
            let body = serde_json::json!({"queries": ["stem cells"], "subset": [id], "params": {"top_k": 1}});
            match conn.request("POST", &path, &body.to_string()) {
                Ok((200, b)) if b.contains(id.as_str()) => {}
                _ => lost += 1,
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let mut l = lat.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
    };
    let c = counts.lock().unwrap();
    let out = serde_json::json!({
        "clients": clients,
        "seconds": wall,
        "mode": if arg(&args, "--embeddings").is_some() { "embeddings" } else { "text" },
        "ok": c[0],
        "qps": c[0] as f64 / wall,
        "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
        "malformed_rejected_4xx": c[1],
        "wrong_status": c[2],
        "transport_errors": c[3],
        "adds_acknowledged": added,
        "adds_lost": lost,
        "server_peak_rss_mib": arg(&args, "--pid").and_then(|p| peak_rss_mib(&p)),
    });
    println!("{out}");
    if c[2] + c[3] + lost as u64 > 0 {
        std::process::exit(1);
    }
}
