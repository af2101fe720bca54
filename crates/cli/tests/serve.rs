//! `colzero serve` through the binary: it binds 127.0.0.1 on the port asked (0: a free
//! one) and says where; its search answers what `colzero search --index` prints for the
//! same index and query; an add acknowledged with 200 survives `kill -9` of the server
//! (the commit is durable: after a restart the document is there and the index opens);
//! SIGTERM stops it cleanly (exit status 0).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn tiny_model() -> PathBuf {
    colzero_core::testing::repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

fn build(dir: &Path) -> PathBuf {
    let docs = dir.join("docs.jsonl");
    let lines: String = (0..12)
        .map(|i| format!("{{\"id\": \"d{i}\", \"text\": \"river forest engine {i} orbit\"}}\n"))
        .collect();
    std::fs::write(&docs, lines).unwrap();
    let idx = dir.join("idx");
    let o = Command::new(env!("CARGO_BIN_EXE_colzero"))
        .args(["--quiet", "--threads", "1", "index", "build", "--model"])
        .arg(tiny_model())
        .arg("--corpus")
        .arg(&docs)
        .arg("--out")
        .arg(&idx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    idx
}

/// Starts `colzero serve` on port 0 and returns it with the address it printed.
fn serve(idx: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_colzero"))
        .args(["--threads", "1", "serve", "--port", "0", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(format!("sci={}", idx.display()))
        .env_remove("COLZERO_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn call(addr: SocketAddr, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, rest) = buf.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

/// `(id, score)` lines printed by `colzero search --index IDX --query Q -k K`.
fn cli_search(idx: &Path, query: &str, k: usize) -> Vec<(String, f32)> {
    let o = Command::new(env!("CARGO_BIN_EXE_colzero"))
        .args(["--quiet", "--threads", "1", "search", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(idx)
        .args(["--query", query, "-k", &k.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_string(), f[1].parse().unwrap())
        })
        .collect()
}

#[test]
fn server_search_equals_colzero_search() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = build(tmp.path());
    let (mut child, addr) = serve(&idx);
    for query in ["river forest", "engine 7 orbit"] {
        let want = cli_search(&idx, query, 5);
        assert_eq!(want.len(), 5);
        let (st, r) = call(
            addr,
            "POST",
            "/indices/sci/search",
            &json!({"queries": [query], "params": {"top_k": 5}}),
        );
        assert_eq!(st, 200, "{r}");
        let ids = r["results"][0]["document_ids"].as_array().unwrap();
        let scores = r["results"][0]["scores"].as_array().unwrap();
        for (i, (id, score)) in want.iter().enumerate() {
            assert_eq!(ids[i].as_str().unwrap(), id, "{query}: rank {i}");
            // The CLI prints 4 decimals.
            let got = scores[i].as_f64().unwrap() as f32;
            assert!((got - score).abs() <= 1e-4, "{query}: {got} vs {score}");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_acknowledged_add_survives_kill_9_and_sigterm_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = build(tmp.path());
    let (mut child, addr) = serve(&idx);
    assert!(addr.ip().is_loopback());
    let (st, r) = call(
        addr,
        "POST",
        "/indices/sci/documents",
        &json!({"documents": [{"id": "fresh", "text": "volcano lava"}]}),
    );
    assert_eq!((st, r["num_documents"].as_u64()), (200, Some(13)), "{r}");
    child.kill().unwrap(); // SIGKILL, right after the acknowledgement
    child.wait().unwrap();

    let (child, addr) = serve(&idx);
    let (st, r) = call(addr, "GET", "/indices/sci", &Value::Null);
    assert_eq!((st, r["num_documents"].as_u64()), (200, Some(13)), "{r}");
    let (st, r) = call(
        addr,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["volcano"], "subset": ["fresh", "d3"]}),
    );
    assert_eq!(st, 200, "{r}");
    let ids: Vec<&str> = r["results"][0]["document_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"fresh"));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("colzero serve: stopped"));
}
