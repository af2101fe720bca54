//! Token pooling against PyLate: `tools/make_pooling_fixture.py` ran PyLate 1.6's own
//! `ColBERT.pool_embeddings_hierarchical` (torch + scipy Ward + fcluster maxclust) on seeded
//! random unit vectors, including repeated tokens whose merges tie. Our pooled documents
//! must have the same protected rows in order, and the same pooled rows as a set (scipy
//! numbers clusters in tree order, we by first member; MaxSim ignores the order).

use colzero_core::pool::pool_tokens;
use colzero_core::testing::repo_path;
use colzero_core::MultiVector;
use serde_json::Value;

fn matrix(v: &Value) -> (usize, Vec<f32>) {
    let rows = v.as_array().unwrap();
    let dim = rows[0].as_array().unwrap().len();
    let data = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    (dim, data)
}

#[test]
fn pooling_equals_pylate() {
    let text =
        std::fs::read_to_string(repo_path("crates/core/tests/fixtures/pooling.json")).unwrap();
    let fx: Value = serde_json::from_str(&text).unwrap();
    let docs: Vec<MultiVector> = fx["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let (dim, data) = matrix(d);
            MultiVector::new(dim, data).unwrap()
        })
        .collect();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let f = case["pool_factor"].as_u64().unwrap() as usize;
        let p = case["protected_tokens"].as_u64().unwrap() as usize;
        for (doc, want) in docs.iter().zip(case["pooled"].as_array().unwrap()) {
            let (dim, want) = matrix(want);
            let got = pool_tokens(doc, f, p);
            let n_want = want.len() / dim;
            assert_eq!(got.n_tokens(), n_want, "f {f} p {p} n {}", doc.n_tokens());
            let prot = p.min(doc.n_tokens());
            let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
            for t in 0..prot {
                assert!(
                    close(got.row(t), &want[t * dim..(t + 1) * dim]),
                    "protected row {t}"
                );
            }
            let mut used = vec![false; n_want];
            for t in prot..n_want {
                let w = &want[t * dim..(t + 1) * dim];
                let hit = (prot..n_want).find(|&g| !used[g] && close(got.row(g), w));
                let g = hit.unwrap_or_else(|| {
                    panic!(
                        "f {f} p {p} n {}: PyLate row {t} not produced",
                        doc.n_tokens()
                    )
                });
                used[g] = true;
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked}");
}
