//! Golden agreement with pytrec_eval (trec_eval) on the committed synthetic fixtures made by
//! tools/make_eval_fixtures.py: binary (BEIR TSV) and graded (TREC, negative judgments)
//! qrels, a run full of tied scores and unjudged documents, a query without relevant
//! documents, a qrels query missing from the run, a run query missing from the qrels,
//! self-hits and duplicated documents. Every per-query value and every mean must equal
//! pytrec_eval's to 1e-6, and the set of evaluated queries must be the same.

use colzero_core::testing::repo_path;
use colzero_core::{Hit, Run};
use colzero_eval::{
    apply_policies, evaluate, read_run, write_run, EvalError, EvalOptions, Metric, MetricKind,
    MissingQueries, Policy, Qrels,
};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    repo_path(&format!("crates/eval/tests/fixtures/{name}"))
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("expected.json");
    serde_json::from_str(&text).unwrap()
}

fn all_metrics(cutoffs: &[usize]) -> Vec<Metric> {
    let kinds = [
        MetricKind::Ndcg,
        MetricKind::Recall,
        MetricKind::Precision,
        MetricKind::Map,
        MetricKind::Mrr,
    ];
    kinds
        .iter()
        .flat_map(|&kind| cutoffs.iter().map(move |&k| Metric::new(kind, k)))
        .collect()
}

#[test]
fn every_case_matches_pytrec_eval_to_1e6() {
    let exp = expected();
    let cutoffs: Vec<usize> = exp["cutoffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(cutoffs, [1, 3, 5, 10, 100]);
    let metrics = all_metrics(&cutoffs);
    let cases = exp["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let mut max_diff = 0.0f64;
    let mut compared = 0usize;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let qrels = Qrels::read(&fixture(case["qrels"].as_str().unwrap())).unwrap();
        let mut run = read_run(&fixture(case["run"].as_str().unwrap())).unwrap();
        let policies: Vec<Policy> = case["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Policy::parse(p.as_str().unwrap()).unwrap())
            .collect();
        apply_policies(&mut run, &policies);
        let options = EvalOptions {
            relevance_level: case["relevance_level"].as_i64().unwrap() as i32,
            missing_queries: match case["missing_queries"].as_str().unwrap() {
                "skip" => MissingQueries::Skip,
                "zero" => MissingQueries::Zero,
                other => panic!("unknown option {other}"),
            },
        };
        let report = evaluate(&qrels, &run, &metrics, &options).unwrap();
        let per_query = case["per_query"].as_object().unwrap();
        let got: Vec<&str> = report.query_ids().collect();
        let mut want: Vec<&str> = per_query.keys().map(String::as_str).collect();
        want.sort();
        assert_eq!(got, want, "{name}: evaluated queries differ");
        assert_eq!(
            report.num_queries() as u64,
            case["num_queries"].as_u64().unwrap()
        );
        for (q, values) in per_query {
            for m in &metrics {
                let e = values[m.name()].as_f64().unwrap();
                let g = report.query(q, m).unwrap();
                let d = (e - g).abs();
                max_diff = max_diff.max(d);
                compared += 1;
                assert!(d <= 1e-6, "{name} query {q} {m}: rust {g} pytrec_eval {e}");
            }
        }
        for m in &metrics {
            let e = case["mean"][m.name()].as_f64().unwrap();
            let g = report.get(m).unwrap();
            let d = (e - g).abs();
            max_diff = max_diff.max(d);
            compared += 1;
            assert!(d <= 1e-6, "{name} mean {m}: rust {g} pytrec_eval {e}");
        }
    }
    println!("compared {compared} values with pytrec_eval, max abs diff {max_diff:e}");
    assert!(compared > 2000);
}

#[test]
fn fixtures_cover_the_tricky_cases() {
    // Guards against a regenerated fixture silently losing a behaviour under test.
    let qb = Qrels::read_beir_tsv(&fixture("qrels_binary.tsv")).unwrap();
    let qg = Qrels::read_trec(&fixture("qrels_graded.trec")).unwrap();
    let run = read_run(&fixture("run_ties.trec")).unwrap();
    assert_eq!(qb.num_relevant("qnorel", 1), 0);
    assert!(qb.get("qnorel").unwrap().len() > 1);
    assert!(qg.get("qnorel").unwrap().values().all(|&r| r <= 0));
    assert!(qg
        .get("q1")
        .into_iter()
        .chain(qg.get("q2"))
        .flat_map(|m| m.values())
        .any(|&r| r > 1));
    let negative = qg
        .query_ids()
        .iter()
        .flat_map(|q| qg.get(q).unwrap().values())
        .any(|&r| r < 0);
    assert!(negative, "graded qrels need negative judgments");
    assert!(qb.contains_query("qmissing") && !run.contains_key("qmissing"));
    assert!(run.contains_key("qextra") && !qb.contains_query("qextra"));
    assert!(run["q3"].iter().any(|h| h.id == "q3") && qg.relevance("q3", "q3") == Some(2));
    let ties_in_top10 = run.values().any(|hits| {
        let mut h = hits.clone();
        h.sort_by(colzero_eval::trec_order);
        h.len() > 10 && h[9].score == h[10].score
    });
    assert!(ties_in_top10, "a tie must straddle the cutoff 10");
    let unjudged = run
        .iter()
        .flat_map(|(q, hits)| hits.iter().map(move |h| (q, h)))
        .filter(|(q, h)| qb.contains_query(q) && qb.relevance(q, &h.id).is_none())
        .count();
    assert!(unjudged > 0);
    assert!(run.values().any(|h| h.len() > 100) && run.values().any(|h| h.len() < 5));
}

#[test]
fn tie_order_is_pytrec_evals() {
    // pytrec_eval ranks tied docs by id descending: for {a: 1.0, b: 1.0} it puts b first.
    let probe = &expected()["tie_probe"];
    let mut qrels = Qrels::new();
    qrels.insert("q", "a", 1);
    let mut run = Run::new();
    run.insert(
        "q".into(),
        vec![
            Hit {
                id: "a".into(),
                score: 1.0,
            },
            Hit {
                id: "b".into(),
                score: 1.0,
            },
        ],
    );
    let ms = Metric::parse_list("p@1,mrr@2").unwrap();
    let r = evaluate(&qrels, &run, &ms, &EvalOptions::default()).unwrap();
    assert_eq!(r.get(&ms[0]).unwrap(), probe["p@1"].as_f64().unwrap());
    assert_eq!(
        r.get(&ms[1]).unwrap(),
        probe["recip_rank"].as_f64().unwrap()
    );
    assert_eq!(r.get(&ms[1]).unwrap(), 0.5);
}

#[test]
fn duplicates_are_refused_like_trec_eval() {
    let qrels = Qrels::read(&fixture("qrels_binary.tsv")).unwrap();
    let run = read_run(&fixture("run_dupes.trec")).unwrap();
    let err = evaluate(&qrels, &run, &Metric::defaults(), &EvalOptions::default()).unwrap_err();
    assert!(matches!(err, EvalError::DuplicateHit { .. }), "{err}");
}

#[test]
fn fixture_run_round_trips_byte_for_byte() {
    let path = fixture("run_ties.trec");
    let run = read_run(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.trec");
    write_run(&out, &run, "ties").unwrap();
    assert_eq!(read_run(&out).unwrap(), run);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn python_whitespace_set_is_reproduced_over_all_of_unicode() {
    let text = std::fs::read_to_string(fixture("py_whitespace.json")).unwrap();
    let ws: Vec<u32> = serde_json::from_str(&text).unwrap();
    assert_eq!(ws.len(), 29);
    let got: Vec<u32> = (0..=0x10FFFFu32)
        .filter_map(char::from_u32)
        .filter(|&c| colzero_eval::text::is_py_whitespace(c))
        .map(u32::from)
        .collect();
    assert_eq!(got, ws);
}
