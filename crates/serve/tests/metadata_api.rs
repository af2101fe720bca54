//! Metadata and filters over HTTP: documents added with metadata come back per hit in
//! search, a filter (and filter ∩ subset) restricts hits to the hand-computed set,
//! delete by filter removes exactly the matching documents, and metadata survives a
//! restart of the service on the same directory.

mod common;

use colzero_serve::Limits;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn set(v: &Value, q: usize) -> BTreeSet<String> {
    hits(v)[q].0.iter().cloned().collect()
}

fn s(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

#[test]
fn metadata_round_trips_filters_restrict_and_delete_by_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    build(&dir, 10);
    let cfg = config(&[("sci", &dir)], None, Limits::default());
    let mut srv = start(&cfg);
    let a = srv.addr;
    ok(
        a,
        "POST",
        "/indices/sci/documents",
        &json!({"documents": [
            {"id": "m1", "text": "volcano lava", "metadata": {"year": 1999, "lang": "en"}},
            {"id": "m2", "text": "volcano ash", "metadata": {"year": 2005, "lang": "fr"}},
            {"id": "m3", "text": "lava flow", "metadata": {"year": 2008, "lang": "en"}},
            {"id": "m4", "text": "magma chamber"}
        ]}),
    );
    let all = json!({"queries": ["volcano lava"], "params": {"top_k": 20}});
    let r = ok(a, "POST", "/indices/sci/search", &all);
    let res = &r["results"][0];
    let ids = res["document_ids"].as_array().unwrap();
    let metas = res["metadata"].as_array().unwrap();
    assert_eq!(ids.len(), metas.len());
    for (id, m) in ids.iter().zip(metas) {
        let want = match id.as_str().unwrap() {
            "m1" => json!({"year": 1999, "lang": "en"}),
            "m2" => json!({"year": 2005, "lang": "fr"}),
            "m3" => json!({"year": 2008, "lang": "en"}),
            _ => Value::Null,
        };
        assert_eq!(m, &want, "{id}");
    }
    let q = |f: Value, subset: Option<Value>| {
        let mut b = json!({"queries": ["volcano lava"], "params": {"top_k": 20}, "filter": f});
        if let Some(sub) = subset {
            b["subset"] = sub;
        }
        set(&ok(a, "POST", "/indices/sci/search", &b), 0)
    };
    assert_eq!(
        q(json!({"field": "lang", "eq": "en"}), None),
        s(&["m1", "m3"])
    );
    assert_eq!(
        q(json!({"field": "year", "gte": 2000, "lt": 2010}), None),
        s(&["m2", "m3"])
    );
    assert_eq!(
        q(
            json!({"field": "lang", "eq": "en"}),
            Some(json!(["m3", "m2", "d1"]))
        ),
        s(&["m3"])
    );
    let bad = call(
        a,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["x"], "filter": {"and": [{"field": "a", "eq": 1}, {"field": "b", "in": 1}]}}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"]
        .as_str()
        .unwrap()
        .contains("filter.and[1].in"));
    // Delete by filter.
    let d = ok(
        a,
        "DELETE",
        "/indices/sci/documents",
        &json!({"filter": {"field": "lang", "eq": "en"}}),
    );
    assert_eq!(d["deleted"], 2);
    assert_eq!(d["num_documents"], 12);
    let after = set(&ok(a, "POST", "/indices/sci/search", &all), 0);
    assert!(!after.contains("m1") && !after.contains("m3") && after.contains("m2"));
    srv.shutdown();
    drop(srv);
    // Restart on the same directory: metadata is still there.
    let srv = start(&cfg);
    let r = ok(
        srv.addr,
        "POST",
        "/indices/sci/search",
        &json!({"queries": ["volcano ash"], "filter": {"field": "lang", "in": ["fr"]}}),
    );
    assert_eq!(r["results"][0]["document_ids"], json!(["m2"]));
    assert_eq!(
        r["results"][0]["metadata"],
        json!([{"year": 2005, "lang": "fr"}])
    );
}
