//! API integration tests: the service on an ephemeral 127.0.0.1 port, in-process, over
//! a small index built through the library with the tiny committed model. Search equals
//! the library's search on the same index (text and vectors, default and explicit
//! params, subsets); add → found, delete → gone; ids stable after deletes and a restart;
//! encode/rerank equal the model and MaxSim; indexes are created and deleted under
//! --data-dir. Failure handling is in `robustness.rs`.

mod common;

use colzero_index::{PlaidIndex, SearchParams, Searcher};
use colzero_model::InputKind;
use colzero_serve::Limits;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn queries() -> Vec<String> {
    [
        "stem cells",
        "river forest climate",
        "music orbit 7",
        "protein market",
    ]
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
    let stored = PlaidIndex::open(&dir)
        .unwrap()
        .reconstruct("new-vec")
        .unwrap();
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
    assert_eq!(
        (d["deleted"].as_u64(), d["num_documents"].as_u64()),
        (Some(2), Some(30))
    );
    let s = ok(
        a,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["volcano"], "subset": ["new-text", "d4"]}),
    );
    assert!(hits(&s)[0].0.is_empty());
    // Every id ever added as the subset (so every live one is a candidate): the live
    // ones come back under their own ids, the deleted ones never.
    let mut expected: BTreeSet<String> = (0..30)
        .filter(|&i| i != 4)
        .map(|i| format!("d{i}"))
        .collect();
    expected.insert("new-vec".into());
    let mut subset: Vec<String> = expected.iter().cloned().collect();
    subset.extend(["d4".to_string(), "new-text".to_string()]);
    let everything =
        json!({"queries": queries(), "subset": subset, "params": {"top_k": 100, "n_full": 100}});
    let before = hits(&ok(a, "POST", "/indices/sci/search", &everything));
    for (ids, _) in &before {
        assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    }
    let info = ok(a, "GET", "/indices/sci", &Value::Null);
    assert_eq!(
        (info["num_documents"].as_u64(), info["num_deleted"].as_u64()),
        (Some(30), Some(2))
    );
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
fn indexes_are_created_and_deleted_under_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = config(&[], Some(&data), Limits::default());
    let srv = start(&cfg);
    let a = srv.addr;
    let docs: Vec<Value> = (0..8)
        .map(|i| json!({"id": format!("c{i}"), "text": doc_text(i)}))
        .collect();
    let r = ok(
        a,
        "POST",
        "/indices",
        &json!({"name": "fresh", "documents": docs, "config": {"nbits": 4}}),
    );
    assert_eq!(
        (r["num_documents"].as_u64(), r["nbits"].as_u64()),
        (Some(8), Some(4))
    );
    assert_eq!(r["managed"], true);
    assert!(data.join("fresh/manifest.json").is_file());
    let again = call(
        a,
        "POST",
        "/indices",
        &json!({"name": "fresh", "documents": [{"id": "x", "text": "y"}]}),
    );
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (409, Some("INDEX_ALREADY_EXISTS"))
    );
    let bad = call(
        a,
        "POST",
        "/indices",
        &json!({"name": "../up", "documents": [{"id": "x", "text": "y"}]}),
    );
    assert_eq!(bad.status, 400);
    let s = ok(
        a,
        "POST",
        "/indices/fresh/search",
        &json!({"queries": ["stem"], "params": {"top_k": 8}}),
    );
    assert_eq!(hits(&s)[0].0.len(), 8);
    // A restart serves what the data dir holds.
    drop(srv);
    let srv = start(&cfg);
    let list = ok(srv.addr, "GET", "/indices", &Value::Null);
    assert_eq!(list["indices"][0]["name"], "fresh");
    ok(srv.addr, "DELETE", "/indices/fresh", &Value::Null);
    assert!(!data.join("fresh").exists());
    assert_eq!(
        call(srv.addr, "GET", "/indices/fresh", &Value::Null).status,
        404
    );
}

/// JSON rows back as f32 (serde_json writes each f32 in its shortest exact form).
fn f32_rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn encode_and_rerank_match_the_model_and_maxsim() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 10);
    let srv = start(&config(&[("sci", &dir)], None, Limits::default()));
    let texts = vec![
        "river forest".to_string(),
        "stem cells and bone".to_string(),
    ];
    let want = encode(&texts, InputKind::Document);
    let r = ok(
        srv.addr,
        "POST",
        "/encode",
        &json!({"texts": texts, "input_type": "document"}),
    );
    assert_eq!(r["num_texts"], 2);
    for (got, w) in r["embeddings"].as_array().unwrap().iter().zip(&want) {
        assert_eq!(
            f32_rows(got),
            w.rows().map(<[f32]>::to_vec).collect::<Vec<_>>()
        );
    }
    let pooled = ok(
        srv.addr,
        "POST",
        "/encode",
        &json!({"texts": texts, "input_type": "document", "pool_factor": 2}),
    );
    let p = colzero_core::pool::pool_tokens(&want[1], 2, 1);
    assert!(p.n_tokens() < want[1].n_tokens());
    assert_eq!(
        f32_rows(&pooled["embeddings"][1]),
        p.rows().map(<[f32]>::to_vec).collect::<Vec<_>>()
    );
    let q = encode(&["bone".to_string()], InputKind::Query).remove(0);
    let scores = colzero_core::maxsim_scores(&q, &want);
    let r = ok(
        srv.addr,
        "POST",
        "/rerank",
        &json!({"query": "bone", "documents": texts}),
    );
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
