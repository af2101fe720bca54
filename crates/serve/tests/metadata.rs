//! Metadata store and filters (`colzero_serve::metadata`): round trip, each operator and
//! and/or/not against hand-computed sets, generation visibility (uncommitted rows are
//! invisible, a re-added id carries its new metadata), reopen, malformed filters naming
//! the bad part, and a filter that would be SQL injection if concatenated.

use colzero_serve::metadata::{rows, Filter, MetaStore};
use serde_json::{json, Value};
use std::collections::HashSet;

fn store() -> (tempfile::TempDir, MetaStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = MetaStore::open(dir.path()).unwrap();
    let docs = vec![
        (
            "a".to_string(),
            Some(json!({"year": 1999, "lang": "en", "doi": "10.1/a"})),
        ),
        ("b".to_string(), Some(json!({"year": 2005, "lang": "fr"}))),
        (
            "c".to_string(),
            Some(json!({"year": 2009.5, "lang": "de", "doi": null})),
        ),
        (
            "d".to_string(),
            Some(json!({"year": "2020", "lang": "en", "open": true})),
        ),
        ("e".to_string(), Some(json!({"year": 2020, "x": "1"}))),
        ("f".to_string(), None),
    ];
    s.put(1, &rows(docs)).unwrap();
    (dir, s)
}

fn ids(s: &MetaStore, gen: u64, f: Value) -> Vec<String> {
    let f = Filter::parse(&f, "filter").unwrap();
    let mut v: Vec<String> = s.matching(gen, &f).unwrap().into_iter().collect();
    v.sort();
    v
}

#[test]
fn each_operator_matches_the_hand_computed_set() {
    let (_d, s) = store();
    assert_eq!(ids(&s, 1, json!({"field": "year", "eq": 2020})), ["e"]);
    assert_eq!(ids(&s, 1, json!({"field": "year", "eq": "2020"})), ["d"]);
    assert_eq!(ids(&s, 1, json!({"field": "open", "eq": true})), ["d"]);
    assert_eq!(
        ids(&s, 1, json!({"field": "lang", "in": ["en", "fr"]})),
        ["a", "b", "d"]
    );
    assert_eq!(
        ids(&s, 1, json!({"field": "year", "gte": 2000, "lt": 2010})),
        ["b", "c"]
    );
    assert_eq!(ids(&s, 1, json!({"field": "year", "gt": 2005})), ["c", "e"]);
    assert_eq!(
        ids(&s, 1, json!({"field": "year", "lte": 2005})),
        ["a", "b"]
    );
    assert_eq!(ids(&s, 1, json!({"field": "doi", "exists": true})), ["a"]);
    assert_eq!(
        ids(&s, 1, json!({"field": "doi", "exists": false})),
        ["b", "c", "d", "e"]
    );
    assert_eq!(
        ids(
            &s,
            1,
            json!({"and": [{"field": "lang", "eq": "en"}, {"field": "year", "lt": 2000}]})
        ),
        ["a"]
    );
    assert_eq!(
        ids(
            &s,
            1,
            json!({"or": [{"field": "lang", "eq": "de"}, {"field": "x", "exists": true}]})
        ),
        ["c", "e"]
    );
    assert_eq!(
        ids(&s, 1, json!({"not": {"field": "lang", "eq": "en"}})),
        ["b", "c", "e"]
    );
}

#[test]
fn metadata_round_trips_and_missing_is_none() {
    let (_d, s) = store();
    let got = s.get(1, &["b".into(), "f".into(), "zz".into()]).unwrap();
    assert_eq!(
        got,
        vec![Some(json!({"year": 2005, "lang": "fr"})), None, None]
    );
}

#[test]
fn rows_of_an_uncommitted_write_are_invisible_and_pruned() {
    let (_d, mut s) = store();
    // A write at generation 2 whose index commit never happened.
    s.put(
        2,
        &rows(vec![("g".to_string(), Some(json!({"lang": "en"})))]),
    )
    .unwrap();
    assert_eq!(ids(&s, 1, json!({"field": "lang", "eq": "en"})), ["a", "d"]);
    assert_eq!(s.get(1, &["g".into()]).unwrap(), vec![None]);
    assert_eq!(s.prune(1).unwrap(), 1);
    assert_eq!(ids(&s, 2, json!({"field": "lang", "eq": "en"})), ["a", "d"]);
}

#[test]
fn a_re_added_id_carries_its_new_metadata_and_survives_reopen() {
    let (dir, mut s) = store();
    s.put(
        3,
        &rows(vec![("a".to_string(), Some(json!({"lang": "it"})))]),
    )
    .unwrap();
    assert_eq!(
        s.get(3, &["a".into()]).unwrap(),
        vec![Some(json!({"lang": "it"}))]
    );
    assert_eq!(ids(&s, 3, json!({"field": "lang", "eq": "en"})), ["d"]);
    // The older snapshot still sees the old row.
    assert_eq!(ids(&s, 1, json!({"field": "lang", "eq": "en"})), ["a", "d"]);
    drop(s);
    let s = MetaStore::open(dir.path()).unwrap();
    assert_eq!(
        s.get(3, &["a".into()]).unwrap(),
        vec![Some(json!({"lang": "it"}))]
    );
}

#[test]
fn injection_attempts_are_harmless() {
    let (_d, mut s) = store();
    assert!(ids(
        &s,
        1,
        json!({"field": "x'); DROP TABLE meta; --", "eq": "1"})
    )
    .is_empty());
    assert!(ids(&s, 1, json!({"field": "lang", "eq": "' OR 1=1 --"})).is_empty());
    assert!(ids(&s, 1, json!({"field": "x", "in": ["1') OR 1=1 --", "1"]})) == ["e"]);
    // The table is still there and answers correctly.
    assert_eq!(ids(&s, 1, json!({"field": "x", "eq": "1"})), ["e"]);
    s.put(4, &rows(vec![("h".to_string(), Some(json!({"x": "1"})))]))
        .unwrap();
    let all: HashSet<String> = ["e", "h"].iter().map(|x| x.to_string()).collect();
    let f = Filter::parse(&json!({"field": "x", "eq": "1"}), "filter").unwrap();
    assert_eq!(s.matching(4, &f).unwrap(), all);
}

#[test]
fn malformed_filters_name_the_bad_part() {
    let bad = [
        (
            json!({"and": [{"field": "a", "eq": 1}, {"field": "b", "in": 3}]}),
            "filter.and[1].in",
        ),
        (json!({"or": []}), "filter.or"),
        (json!({"not": {"field": 1, "eq": 2}}), "filter.not.field"),
        (json!({"field": "a", "like": "x"}), "filter.like"),
        (json!({"field": "a", "eq": [1]}), "filter.eq"),
        (json!({"field": "a", "gt": true}), "filter.gt"),
        (json!({"field": "a", "exists": 1}), "filter.exists"),
        (json!([1]), "filter"),
    ];
    for (f, part) in bad {
        let e = Filter::parse(&f, "filter").unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{f}");
        assert!(e.message.contains(part), "{f}: {}", e.message);
    }
}
