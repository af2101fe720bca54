//! Test harness shared by the API tests: the tiny model (loaded once), a small index built
//! through the library, the service on an ephemeral 127.0.0.1 port in its own runtime,
//! and a minimal blocking HTTP/1.1 client over `std::net::TcpStream` (one request per
//! connection, `Connection: close`, bounded by socket timeouts).

#![allow(dead_code)]

use colzero_core::MultiVector;
use colzero_index::{build_index, BuildConfig};
use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use colzero_serve::{AppState, Limits, ServeConfig};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub fn model_dir() -> PathBuf {
    colzero_core::testing::repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

pub fn model() -> Arc<ColBERT> {
    static M: OnceLock<Arc<ColBERT>> = OnceLock::new();
    M.get_or_init(|| Arc::new(ColBERT::load(&model_dir(), &LoadOptions::default()).unwrap()))
        .clone()
}

pub fn encode(texts: &[String], kind: InputKind) -> Vec<MultiVector> {
    model()
        .encode(texts, kind, &EncodeOptions::default())
        .unwrap()
}

const WORDS: [&str; 12] = [
    "stem", "cells", "market", "vitamin", "bone", "river", "engine", "protein", "climate", "music",
    "orbit", "forest",
];

/// Text of corpus document `i`.
pub fn doc_text(i: usize) -> String {
    let w: Vec<&str> = (0..6)
        .map(|j| WORDS[(i * 5 + j * 7) % WORDS.len()])
        .collect();
    format!("{} {i}", w.join(" "))
}

/// Builds an index of `n` documents `d0..` in `dir` through the library.
pub fn build(dir: &Path, n: usize) {
    let texts: Vec<String> = (0..n).map(doc_text).collect();
    let embs = encode(&texts, InputKind::Document);
    let docs: Vec<(String, MultiVector)> = (0..n).map(|i| format!("d{i}")).zip(embs).collect();
    build_index(dir, &docs, &BuildConfig::default()).unwrap();
}

/// A running service; shut down (gracefully) when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a graceful shutdown (in-flight requests finish); `drop` waits for the end.
    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn config(indexes: &[(&str, &Path)], data_dir: Option<&Path>, limits: Limits) -> ServeConfig {
    let mut cfg = ServeConfig::new(model_dir());
    cfg.indexes = indexes
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_path_buf()))
        .collect();
    cfg.data_dir = data_dir.map(Path::to_path_buf);
    cfg.limits = limits;
    cfg
}

/// Starts the service for `cfg` on 127.0.0.1:0.
pub fn start(cfg: &ServeConfig) -> Server {
    let state = AppState::with_model(cfg, model()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            colzero_serve::run(st, l, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
    });
    Server {
        addr,
        state,
        stop: Some(tx),
        thread: Some(thread),
    }
}

/// A response: status, headers (lower-case names), body parsed as JSON (Null if not).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with a raw body.
pub fn raw(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body: a failed write is fine.
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no response to {method} {path}: {:?}",
                String::from_utf8_lossy(&buf)
            )
        });
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = serde_json::from_slice(&buf[split + 4..]).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

/// Sends one request with a JSON body (`Value::Null`: no body).
pub fn call(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Resp {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    raw(addr, method, path, &bytes)
}

/// `call`, asserting 200.
pub fn ok(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Value {
    let r = call(addr, method, path, body);
    assert_eq!(r.status, 200, "{method} {path}: {:?}", r.body);
    r.body
}

/// `(ids, scores)` of each query of a search response.
pub fn hits(v: &Value) -> Vec<(Vec<String>, Vec<f32>)> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let ids = r["document_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            let scores = r["scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (ids, scores)
        })
        .collect()
}

/// A multi-vector as JSON rows.
pub fn rows(mv: &MultiVector) -> Value {
    Value::from(mv.rows().map(|r| r.to_vec()).collect::<Vec<_>>())
}
