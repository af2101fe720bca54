//! BM25 against an independent Python reference (tools/make_bm25_fixtures.py): analysed
//! tokens under the default and English analyzers, and the score of every (query,
//! document) pair under five (analyzer, k1, b) settings, to 1e-5 relative; rankings follow
//! those scores with ties broken by id.

use colzero_core::testing::repo_path;
use colzero_index::bm25::{Analyzer, Bm25Index, Bm25Params};
use serde_json::Value;

fn golden() -> Value {
    let p = repo_path("crates/index/tests/fixtures/bm25_golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn corpus(g: &Value) -> Vec<(String, String)> {
    g["corpus"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn analyzer_tokens_match_python() {
    let g = golden();
    let texts: Vec<(String, String)> = corpus(&g)
        .into_iter()
        .chain(
            g["queries"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        )
        .collect();
    for (name, analyzer) in [
        ("default", Analyzer::default()),
        ("english", Analyzer::english()),
    ] {
        for (id, text) in &texts {
            let want: Vec<String> = g["tokens"][name][id]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                analyzer.tokens(text),
                want,
                "{name} analyzer on {id}: {text:?}"
            );
        }
    }
}

#[test]
fn scores_and_rankings_match_python_reference() {
    let g = golden();
    let docs = corpus(&g);
    let mut checked = 0;
    for s in g["settings"].as_array().unwrap() {
        let analyzer = Analyzer {
            stopwords: s["stopwords"].as_bool().unwrap(),
            stem: s["stem"].as_bool().unwrap(),
        };
        let params = Bm25Params {
            k1: s["k1"].as_f64().unwrap(),
            b: s["b"].as_f64().unwrap(),
        };
        let name = s["name"].as_str().unwrap();
        let idx = Bm25Index::build(docs.clone(), analyzer, params).unwrap();
        assert!(
            (idx.avgdl() - s["avgdl"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        for (q, row) in s["scores"].as_object().unwrap() {
            let text = g["queries"][q].as_str().unwrap();
            let all = idx.scores(text);
            for (id, want) in row.as_object().unwrap() {
                let want = want.as_f64().unwrap();
                let got = idx.score(text, id).unwrap() as f64;
                let pos = idx.ids().iter().position(|i| i == id).unwrap();
                assert_eq!(all[pos] as f64, got, "{name} {q} {id}");
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1e-3),
                    "{name} {q} {id}: rust {got} python {want}"
                );
                checked += 1;
            }
            // ranking = python scores sorted desc, ties by id asc, zero-score docs absent
            let mut want: Vec<(String, f64)> = row
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .filter(|(_, v)| *v > 0.0)
                .collect();
            want.sort_by(|a, b| {
                (b.1 as f32)
                    .total_cmp(&(a.1 as f32))
                    .then_with(|| a.0.cmp(&b.0))
            });
            let hits = idx.search(text, 100);
            let got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            let want_ids: Vec<&str> = want.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(got, want_ids, "{name} {q} ranking");
            let top3 = idx.search(text, 3);
            assert_eq!(
                top3.as_slice(),
                &hits[..hits.len().min(3)],
                "{name} {q} top-3"
            );
            let batch = idx.search_batch(&[text, text], 100);
            assert_eq!(batch, vec![hits.clone(), hits]);
        }
    }
    assert_eq!(checked, 5 * 9 * 12);
}

#[test]
fn repeated_query_terms_count_twice_and_idf_is_positive() {
    let g = golden();
    let idx = Bm25Index::build(corpus(&g), Analyzer::default(), Bm25Params::default()).unwrap();
    let once = idx.score("vaccine", "d12").unwrap();
    let twice = idx.score("vaccine vaccine", "d12").unwrap();
    assert!(once > 0.0);
    assert!((twice - 2.0 * once).abs() < 1e-6);
    // "the" occurs in most documents but Lucene's idf stays positive
    assert!(idx.score("the", "d08").unwrap() > 0.0);
    assert!(idx.search("unknownword", 10).is_empty());
}
