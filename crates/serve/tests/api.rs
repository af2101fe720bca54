//! API integration tests: the service on an ephemeral 127.0.0.1 port, in-process, over
//! a small index built through the library with the tiny committed model. Search equals
//! the library's search on the same index; add → found, delete → gone; ids stable after
//! deletes and a restart; every malformed request class gets its 4xx and the next good
//! request still succeeds; a full queue is 503 with Retry-After; searches during writes
//! see whole snapshots; indexes are created and deleted under --data-dir.

mod common;

use colzero_index::{PlaidIndex, SearchParams, Searcher};
use colzero_model::InputKind;
use colzero_serve::Limits;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

fn queries() -> Vec<String> {
    ["stem cells", "river forest climate", "music orbit 7", "protein market"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn search_by_text_and_by_vectors_equals_the_library_search() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 40);
    let srv = start(&config(&[("sci", &dir)], None, Limits::default()));
    let qs = queries();
    let encoded = encode(&qs, InputKind::Query);
    for (params_json, k, params) in [
        (json!({}), 10, SearchParams::default()),
        (
            json!({"top_k": 5, "n_probe": 2, "n_full": 8, "centroid_threshold": null}),
            5,
            SearchParams {
                n_probe: 2,
                n_full: Some(8),
                centroid_score_threshold: None,
                ..Default::default()
            },
        ),
    ] {
        let lib = Searcher::Plaid(Box::new(PlaidIndex::open(&dir).unwrap()), params);
        let want = lib.search_batch(&encoded, k, None).unwrap();
        let by_text = ok(
            srv.addr,
            "POST",
            "/indices/sci/search",
            &json!({"queries": qs, "params": params_json}),
        );
        let q_vecs: Vec<Value> = encoded.iter().map(rows).collect();
        let by_vecs = ok(
            srv.addr,
            "POST",
            "/indices/sci/search",
            &json!({"query_embeddings": q_vecs, "params": params_json}),
        );
        assert_eq!(by_text["num_queries"], 4);
        for got in [hits(&by_text), hits(&by_vecs)] {
            assert_eq!(got.len(), want.len());
            for ((ids, scores), w) in got.iter().zip(&want) {
                assert_eq!(ids.len(), k);
                let wid: Vec<&str> = w.iter().map(|h| h.id.as_str()).collect();
                assert_eq!(ids, &wid);
                for (s, h) in scores.iter().zip(w) {
                    assert!((s - h.score).abs() <= 1e-5, "{s} vs {}", h.score);
                }
            }
        }
    }
    // A subset restricts the search to those ids (unknown ones ignored).
    let sub = ok(
        srv.addr,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["stem cells"], "subset": ["d3", "d17", "nope"]}),
    );
    let got: BTreeSet<String> = hits(&sub)[0].0.iter().cloned().collect();
    assert_eq!(got, BTreeSet::from(["d3".to_string(), "d17".to_string()]));
}

#[test]
fn add_finds_delete_removes_and_ids_survive_deletes_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 30);
    let cfg = config(&[("sci", &dir)], None, Limits::default());
    let srv = start(&cfg);
    let a = srv.addr;
    // Add one document as text and one as vectors (a copy of a query's vectors).
    let q = encode(&["orbit music".to_string()], InputKind::Query).remove(0);
    let r = ok(
        a,
        "POST",
        "/indices/sci/documents",
        &json!({"documents": [
            {"id": "new-text", "text": "volcano lava magma eruption"},
            {"id": "new-vec", "embeddings": rows(&q)}
        ]}),
    );
    assert_eq!(r["added"], 2);
    assert_eq!(r["num_documents"], 32);
    assert_eq!(r["document_ids"], json!(["new-text", "new-vec"]));
    // The vectors' own query finds their document first, with MaxSim = its own score.
    let s = ok(
        a,
        "POST",
        "/indices/sci/search",
        &json!({"query_embeddings": [rows(&q)], "params": {"top_k": 3}}),
    );
    let (ids, scores) = &hits(&s)[0];
    assert_eq!(ids[0], "new-vec");
    // Its score is MaxSim over the stored (2-bit compressed) vectors of the document.
    let stored = PlaidIndex::open(&dir).unwrap().reconstruct("new-vec").unwrap();
    let want = colzero_core::maxsim(&q, &stored);
    assert!((scores[0] - want).abs() < 1e-2, "{} vs {want}", scores[0]);
    // The text document is searchable, with the score MaxSim gives its encoding.
    let s = ok(
        a,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["volcano"], "subset": ["new-text"]}),
    );
    assert_eq!(hits(&s)[0].0, ["new-text"]);
    // Delete it and one original document: gone; nothing else renumbered.
    let d = ok(
        a,
        "DELETE",
        "/indices/sci/documents",
        &json!({"ids": ["new-text", "d4", "never-there"]}),
    );
    assert_eq!((d["deleted"].as_u64(), d["num_documents"].as_u64()), (Some(2), Some(30)));
    let s = ok(
        a,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["volcano"], "subset": ["new-text", "d4"]}),
    );
    assert!(hits(&s)[0].0.is_empty());
    // Every id ever added as the subset (so every live one is a candidate): the live
    // ones come back under their own ids, the deleted ones never.
    let mut expected: BTreeSet<String> = (0..30).filter(|&i| i != 4).map(|i| format!("d{i}")).collect();
    expected.insert("new-vec".into());
    let mut subset: Vec<String> = expected.iter().cloned().collect();
    subset.extend(["d4".to_string(), "new-text".to_string()]);
    let everything = json!({"queries": queries(), "subset": subset, "params": {"top_k": 100, "n_full": 100}});
    let before = hits(&ok(a, "POST", "/indices/sci/search", &everything));
    for (ids, _) in &before {
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
    let info = ok(a, "GET", "/indices/sci", &Value::Null);
    assert_eq!((info["num_documents"].as_u64(), info["num_deleted"].as_u64()), (Some(30), Some(2)));
    // Restart on the same directory: same ids, same scores.
    drop(srv);
    let srv = start(&cfg);
    let after = hits(&ok(srv.addr, "POST", "/indices/sci/search", &everything));
    assert_eq!(after, before);
    // A deleted id may be added again.
    ok(
        srv.addr,
        "POST",
        "/indices/sci/documents",
        &json!({"documents": [{"id": "d4", "text": "stem cells again"}]}),
    );
    let h = ok(srv.addr, "GET", "/health", &Value::Null);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["indices"][0]["num_documents"], 31);
    assert!(h["indices"][0]["num_tokens"].as_u64().unwrap() > 0);
    assert_eq!(h["model"]["embedding_dim"], 16);
}

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
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str, &str)> = vec![
        ("POST", "/indices/sci/search", b"{\"queries\": [\"a\"".to_vec(), 400, "BAD_REQUEST", "malformed JSON"),
        ("POST", "/indices/sci/search", b"".to_vec(), 400, "BAD_REQUEST", "malformed JSON"),
        ("POST", "/indices/sci/search", br#"{"queries": "stem"}"#.to_vec(), 400, "BAD_REQUEST", "`queries`"),
        ("POST", "/indices/sci/search", br#"{"queries": ["a", 3]}"#.to_vec(), 400, "BAD_REQUEST", "`queries[1]`"),
        ("POST", "/indices/sci/search", br#"{"queries": []}"#.to_vec(), 400, "BAD_REQUEST", "`queries`"),
        ("POST", "/indices/sci/search", br#"{"queries": ["  "]}"#.to_vec(), 400, "BAD_REQUEST", "`queries[0]`"),
        ("POST", "/indices/sci/search", br#"{}"#.to_vec(), 400, "BAD_REQUEST", "`queries`"),
        ("POST", "/indices/sci/search", br#"{"queries": ["a"], "query_embeddings": [[[1.0]]]}"#.to_vec(), 400, "BAD_REQUEST", "not both"),
        ("POST", "/indices/sci/search", br#"{"queries": ["a"], "params": {"top_k": 0}}"#.to_vec(), 400, "BAD_REQUEST", "`params.top_k`"),
        ("POST", "/indices/sci/search", br#"{"queries": ["a"], "params": {"top_k": -2}}"#.to_vec(), 400, "BAD_REQUEST", "`params.top_k`"),
        ("POST", "/indices/sci/search", br#"{"queries": ["a"], "params": {"n_probe": 0}}"#.to_vec(), 400, "BAD_REQUEST", "`params.n_probe`"),
        ("POST", "/indices/sci/search", br#"{"queries": ["a"], "filter": {"x": 1}}"#.to_vec(), 400, "BAD_REQUEST", "unknown field `filter`"),
        ("POST", "/indices/sci/search", br#"{"query_embeddings": [[[1.0, 2.0, 3.0]]]}"#.to_vec(), 400, "DIMENSION_MISMATCH", "`query_embeddings[0][0]`"),
        ("POST", "/indices/sci/search", br#"{"query_embeddings": [[]]}"#.to_vec(), 400, "BAD_REQUEST", "`query_embeddings[0]`"),
        ("POST", "/indices/nope/search", br#"{"queries": ["a"]}"#.to_vec(), 404, "INDEX_NOT_FOUND", "`nope`"),
        ("GET", "/indices/nope", b"".to_vec(), 404, "INDEX_NOT_FOUND", "`nope`"),
        ("POST", "/indices/sci/documents", br#"{"documents": [{"id": "d1", "text": "dup"}]}"#.to_vec(), 409, "DOCUMENT_EXISTS", "`d1`"),
        ("POST", "/indices/sci/documents", br#"{"documents": [{"id": "n", "text": "a"}, {"id": "n", "text": "b"}]}"#.to_vec(), 409, "DOCUMENT_EXISTS", "`n`"),
        ("POST", "/indices/sci/documents", br#"{"documents": [{"id": "n"}]}"#.to_vec(), 400, "BAD_REQUEST", "`documents[0]`"),
        ("POST", "/indices/sci/documents", br#"{"documents": [{"id": "n", "embeddings": [[1.0]]}]}"#.to_vec(), 400, "DIMENSION_MISMATCH", "`documents[0].embeddings[0]`"),
        ("POST", "/indices/sci/documents", br#"{"documents": [{"id": "n", "text": "a"}], "pool_factor": 0}"#.to_vec(), 400, "BAD_REQUEST", "`pool_factor`"),
        ("DELETE", "/indices/sci/documents", br#"{"ids": []}"#.to_vec(), 400, "BAD_REQUEST", "`ids`"),
        ("POST", "/encode", br#"{"texts": ["a"], "input_type": "image"}"#.to_vec(), 400, "BAD_REQUEST", "`input_type`"),
        ("POST", "/encode", br#"{"texts": ["a"], "input_type": "query", "pool_factor": 2}"#.to_vec(), 400, "BAD_REQUEST", "`pool_factor`"),
        ("POST", "/rerank", br#"{"query": "", "documents": ["a"]}"#.to_vec(), 400, "BAD_REQUEST", "`query`"),
        ("POST", "/indices", br#"{"name": "x", "documents": [{"id": "a", "text": "b"}]}"#.to_vec(), 400, "BAD_REQUEST", "--data-dir"),
        ("DELETE", "/indices/sci", b"".to_vec(), 409, "INDEX_NOT_MANAGED", "--index"),
        ("GET", "/no/such/route", b"".to_vec(), 404, "NOT_FOUND", "/no/such/route"),
        ("POST", "/indices/sci/search", big.into_bytes(), 413, "PAYLOAD_TOO_LARGE", "16384"),
    ];
    for (method, path, body, status, code, needle) in cases {
        let r = raw(a, method, path, &body);
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        assert_eq!(r.status, status, "{method} {path} {shown}: {:?}", r.body);
        assert_eq!(r.body["code"], code, "{method} {path} {shown}: {:?}", r.body);
        let msg = r.body["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {path} {shown}: {msg}");
        let g = ok(a, "POST", "/indices/sci/search", &good);
        assert_eq!(hits(&g)[0].0.len(), 3);
    }
    // Nothing was written by the refused writes.
    let info = ok(a, "GET", "/indices/sci", &Value::Null);
    assert_eq!((info["num_documents"].as_u64(), info["generation"].as_u64()), (Some(20), Some(1)));
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
    let r = call(srv.addr, "POST", "/encode", &json!({"texts": ["a"], "input_type": "query"}));
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
    let query = json!({"queries": ["stem cells"], "subset": all, "params": {"top_k": 100, "n_full": 100}});
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
    let final_ids = hits(&ok(a, "POST", "/indices/sci/search", &query))[0].0.len();
    assert_eq!(final_ids, 16 + 3 * batches);
}

#[test]
fn indexes_are_created_and_deleted_under_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = config(&[], Some(&data), Limits::default());
    let srv = start(&cfg);
    let a = srv.addr;
    let docs: Vec<Value> = (0..8).map(|i| json!({"id": format!("c{i}"), "text": doc_text(i)})).collect();
    let r = ok(a, "POST", "/indices", &json!({"name": "fresh", "documents": docs, "config": {"nbits": 4}}));
    assert_eq!((r["num_documents"].as_u64(), r["nbits"].as_u64()), (Some(8), Some(4)));
    assert_eq!(r["managed"], true);
    assert!(data.join("fresh/manifest.json").is_file());
    let again = call(a, "POST", "/indices", &json!({"name": "fresh", "documents": [{"id": "x", "text": "y"}]}));
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("INDEX_ALREADY_EXISTS")));
    let bad = call(a, "POST", "/indices", &json!({"name": "../up", "documents": [{"id": "x", "text": "y"}]}));
    assert_eq!(bad.status, 400);
    let s = ok(a, "POST", "/indices/fresh/search", &json!({"queries": ["stem"], "params": {"top_k": 8}}));
    assert_eq!(hits(&s)[0].0.len(), 8);
    // A restart serves what the data dir holds.
    drop(srv);
    let srv = start(&cfg);
    let list = ok(srv.addr, "GET", "/indices", &Value::Null);
    assert_eq!(list["indices"][0]["name"], "fresh");
    ok(srv.addr, "DELETE", "/indices/fresh", &Value::Null);
    assert!(!data.join("fresh").exists());
    assert_eq!(call(srv.addr, "GET", "/indices/fresh", &Value::Null).status, 404);
}

/// JSON rows back as f32 (serde_json writes each f32 in its shortest exact form).
fn f32_rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

#[test]
fn encode_and_rerank_match_the_model_and_maxsim() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 10);
    let srv = start(&config(&[("sci", &dir)], None, Limits::default()));
    let texts = vec!["river forest".to_string(), "stem cells and bone".to_string()];
    let want = encode(&texts, InputKind::Document);
    let r = ok(srv.addr, "POST", "/encode", &json!({"texts": texts, "input_type": "document"}));
    assert_eq!(r["num_texts"], 2);
    for (got, w) in r["embeddings"].as_array().unwrap().iter().zip(&want) {
        assert_eq!(f32_rows(got), w.rows().map(<[f32]>::to_vec).collect::<Vec<_>>());
    }
    let pooled = ok(srv.addr, "POST", "/encode", &json!({"texts": texts, "input_type": "document", "pool_factor": 2}));
    let p = colzero_core::pool::pool_tokens(&want[1], 2, 1);
    assert!(p.n_tokens() < want[1].n_tokens());
    assert_eq!(f32_rows(&pooled["embeddings"][1]), p.rows().map(<[f32]>::to_vec).collect::<Vec<_>>());
    let q = encode(&["bone".to_string()], InputKind::Query).remove(0);
    let scores = colzero_core::maxsim_scores(&q, &want);
    let r = ok(srv.addr, "POST", "/rerank", &json!({"query": "bone", "documents": texts}));
    let res = r["results"].as_array().unwrap();
    let best = if scores[1] > scores[0] { 1 } else { 0 };
    assert_eq!(res[0]["index"], best);
    for x in res {
        let i = x["index"].as_u64().unwrap() as usize;
        assert!((x["score"].as_f64().unwrap() as f32 - scores[i]).abs() < 1e-5);
    }
    let doc = ok(srv.addr, "GET", "/api-docs/openapi.json", &Value::Null);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/indices/{name}/search"]["post"].is_object());
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
    assert_eq!((r.status, r.body["code"].as_str()), (503, Some("INDEX_BUSY")), "{:?}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(lock);
    assert_eq!(ok(srv.addr, "POST", "/indices/sci/documents", &add)["num_documents"], 13);
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
