//! Robustness of the service: every malformed request class gets its 4xx JSON error
//! naming the field and the next good request still succeeds; a full queue is 503 with
//! Retry-After and clears; a writer lock held elsewhere is 503 INDEX_BUSY; searches
//! during writes see the old or the new index, never a mix; a graceful shutdown lets an
//! in-flight request finish.

mod common;

use colzero_serve::Limits;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

/// method, path, body, status, code, a part of the message.
type Case<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a str, &'a str);

#[test]
fn malformed_requests_get_their_4xx_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 20);
    let limits = Limits {
        max_body_bytes: 16 * 1024,
        ..Limits::default()
    };
    let srv = start(&config(&[("sci", &dir)], None, limits));
    let a = srv.addr;
    let good = json!({"queries": ["stem cells"], "params": {"top_k": 3}});
    let big = format!("{{\"queries\": [\"{}\"]}}", "x".repeat(40 * 1024));
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/indices/sci/search",
            b"{\"queries\": [\"a\"".to_vec(),
            400,
            "BAD_REQUEST",
            "malformed JSON",
        ),
        (
            "POST",
            "/indices/sci/search",
            b"".to_vec(),
            400,
            "BAD_REQUEST",
            "malformed JSON",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": "stem"}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`queries`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["a", 3]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`queries[1]`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": []}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`queries`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["  "]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`queries[0]`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`queries`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["a"], "query_embeddings": [[[1.0]]]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "not both",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["a"], "params": {"top_k": 0}}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`params.top_k`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["a"], "params": {"top_k": -2}}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`params.top_k`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["a"], "params": {"n_probe": 0}}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`params.n_probe`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"queries": ["a"], "filter": {"x": 1}}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "field `filter`: must have `field`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"query_embeddings": [[[1.0, 2.0, 3.0]]]}"#.to_vec(),
            400,
            "DIMENSION_MISMATCH",
            "`query_embeddings[0][0]`",
        ),
        (
            "POST",
            "/indices/sci/search",
            br#"{"query_embeddings": [[]]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`query_embeddings[0]`",
        ),
        (
            "POST",
            "/indices/nope/search",
            br#"{"queries": ["a"]}"#.to_vec(),
            404,
            "INDEX_NOT_FOUND",
            "`nope`",
        ),
        (
            "GET",
            "/indices/nope",
            b"".to_vec(),
            404,
            "INDEX_NOT_FOUND",
            "`nope`",
        ),
        (
            "POST",
            "/indices/sci/documents",
            br#"{"documents": [{"id": "d1", "text": "dup"}]}"#.to_vec(),
            409,
            "DOCUMENT_EXISTS",
            "`d1`",
        ),
        (
            "POST",
            "/indices/sci/documents",
            br#"{"documents": [{"id": "n", "text": "a"}, {"id": "n", "text": "b"}]}"#.to_vec(),
            409,
            "DOCUMENT_EXISTS",
            "`n`",
        ),
        (
            "POST",
            "/indices/sci/documents",
            br#"{"documents": [{"id": "n"}]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`documents[0]`",
        ),
        (
            "POST",
            "/indices/sci/documents",
            br#"{"documents": [{"id": "n", "embeddings": [[1.0]]}]}"#.to_vec(),
            400,
            "DIMENSION_MISMATCH",
            "`documents[0].embeddings[0]`",
        ),
        (
            "POST",
            "/indices/sci/documents",
            br#"{"documents": [{"id": "n", "text": "a"}], "pool_factor": 0}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`pool_factor`",
        ),
        (
            "DELETE",
            "/indices/sci/documents",
            br#"{"ids": []}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`ids`",
        ),
        (
            "POST",
            "/encode",
            br#"{"texts": ["a"], "input_type": "image"}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`input_type`",
        ),
        (
            "POST",
            "/encode",
            br#"{"texts": ["a"], "input_type": "query", "pool_factor": 2}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`pool_factor`",
        ),
        (
            "POST",
            "/rerank",
            br#"{"query": "", "documents": ["a"]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "`query`",
        ),
        (
            "POST",
            "/indices",
            br#"{"name": "x", "documents": [{"id": "a", "text": "b"}]}"#.to_vec(),
            400,
            "BAD_REQUEST",
            "--data-dir",
        ),
        (
            "DELETE",
            "/indices/sci",
            b"".to_vec(),
            409,
            "INDEX_NOT_MANAGED",
            "--index",
        ),
        (
            "PUT",
            "/indices/sci/search",
            b"{}".to_vec(),
            405,
            "METHOD_NOT_ALLOWED",
            "PUT",
        ),
        (
            "GET",
            "/no/such/route",
            b"".to_vec(),
            404,
            "NOT_FOUND",
            "/no/such/route",
        ),
        (
            "POST",
            "/indices/sci/search",
            big.into_bytes(),
            413,
            "PAYLOAD_TOO_LARGE",
            "16384",
        ),
    ];
    for (method, path, body, status, code, needle) in cases {
        let r = raw(a, method, path, &body);
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        assert_eq!(r.status, status, "{method} {path} {shown}: {:?}", r.body);
        assert_eq!(
            r.body["code"], code,
            "{method} {path} {shown}: {:?}",
            r.body
        );
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {path} {shown}: {msg}");
        let g = ok(a, "POST", "/indices/sci/search", &good);
        assert_eq!(hits(&g)[0].0.len(), 3);
    }
    // Nothing was written by the refused writes.
    let info = ok(a, "GET", "/indices/sci", &Value::Null);
    assert_eq!(
        (info["num_documents"].as_u64(), info["generation"].as_u64()),
        (Some(20), Some(1))
    );
}

#[test]
fn a_full_queue_is_503_with_retry_after_and_clears() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 12);
    let limits = Limits {
        max_queue: 2,
        ..Limits::default()
    };
    let srv = start(&config(&[("sci", &dir)], None, limits));
    let good = json!({"queries": ["stem"]});
    let held: Vec<_> = (0..2).map(|_| srv.state.admit().ok().unwrap()).collect();
    let r = call(srv.addr, "POST", "/indices/sci/search", &good);
    assert_eq!(r.status, 503);
    assert_eq!(r.body["code"], "QUEUE_FULL");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = call(
        srv.addr,
        "POST",
        "/encode",
        &json!({"texts": ["a"], "input_type": "query"}),
    );
    assert_eq!(r.status, 503);
    // Requests without CPU work still answer.
    ok(srv.addr, "GET", "/health", &Value::Null);
    drop(held);
    ok(srv.addr, "POST", "/indices/sci/search", &good);
    assert_eq!(srv.state.queue_free(), 2);
}

#[test]
fn searches_during_writes_see_the_old_or_the_new_index_never_a_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 16);
    let srv = start(&config(&[("sci", &dir)], None, Limits::default()));
    let a = srv.addr;
    let batches = 4;
    let all: Vec<String> = (0..16)
        .map(|i| format!("d{i}"))
        .chain((0..batches * 3).map(|i| format!("w{i}")))
        .collect();
    // States: after b committed batches, the live ids are d0..d15 plus w0..w(3b-1).
    let states: Vec<BTreeSet<String>> = (0..=batches)
        .map(|b| all[..16 + 3 * b].iter().cloned().collect())
        .collect();
    let query =
        json!({"queries": ["stem cells"], "subset": all, "params": {"top_k": 100, "n_full": 100}});
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for b in 0..batches {
                let docs: Vec<Value> = (0..3)
                    .map(|j| json!({"id": format!("w{}", 3 * b + j), "text": doc_text(100 + 3 * b + j)}))
                    .collect();
                ok(a, "POST", "/indices/sci/documents", &json!({"documents": docs}));
            }
        });
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let ids: BTreeSet<String> = hits(&ok(a, "POST", "/indices/sci/search", &query))[0]
                .0
                .iter()
                .cloned()
                .collect();
            let n = states.iter().position(|st| *st == ids);
            assert!(n.is_some(), "a search saw a mixed state: {} ids", ids.len());
            seen.insert(n.unwrap());
            if writer.is_finished() && seen.contains(&batches) {
                break;
            }
        }
        writer.join().unwrap();
    });
    let final_ids = hits(&ok(a, "POST", "/indices/sci/search", &query))[0]
        .0
        .len();
    assert_eq!(final_ids, 16 + 3 * batches);
}

#[test]
fn a_writer_in_another_process_is_503_busy_and_then_the_add_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 12);
    let srv = start(&config(&[("sci", &dir)], None, Limits::default()));
    let add = json!({"documents": [{"id": "late", "text": "stem"}]});
    let lock = colzero_core::lock::FileLock::exclusive(
        &dir.join(colzero_index::writer::WRITER_LOCK),
        colzero_core::lock::Wait::No,
    )
    .unwrap();
    let r = call(srv.addr, "POST", "/indices/sci/documents", &add);
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (503, Some("INDEX_BUSY")),
        "{:?}",
        r.body
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(lock);
    assert_eq!(
        ok(srv.addr, "POST", "/indices/sci/documents", &add)["num_documents"],
        13
    );
}

#[test]
fn shutdown_lets_an_in_flight_request_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 12);
    let mut srv = start(&config(&[("sci", &dir)], None, Limits::default()));
    let body = br#"{"queries": ["stem cells"], "params": {"top_k": 2}}"#;
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /indices/sci/search HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..10]).unwrap();
    // The request is being read when the shutdown starts; it still gets its answer.
    std::thread::sleep(Duration::from_millis(200));
    srv.shutdown();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(&body[10..]).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"document_ids\""), "{out}");
    let addr = srv.addr;
    drop(srv);
    // After the shutdown nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
