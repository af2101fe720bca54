//! Dev-only: writes the committed format fixture `tests/fixtures/plaid-v<FORMAT_VERSION>/`
//! (a tiny PLAID index that went through a build, an add and a delete) and its
//! `expected.json` (queries, expected hits, info), reopened by `tests/fixture.rs`.
//!
//! Run from the workspace root, only when introducing a new format version (never
//! overwrite the fixture of an existing version):
//!     cargo run -p colzero-index --example make_fixture

use colzero_index::synthetic::{clustered, SyntheticConfig};
use colzero_index::{build_index, BuildConfig, SearchParams, FORMAT_VERSION};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = root.join(format!("plaid-v{FORMAT_VERSION}"));
    if dir.exists() {
        return Err(format!(
            "{} exists; fixtures of a released format are never rewritten",
            dir.display()
        )
        .into());
    }
    let (docs, queries) = clustered(&SyntheticConfig {
        dim: 16,
        n_docs: 45,
        n_queries: 3,
        n_concepts: 12,
        concepts_per_doc: 2,
        min_doc_len: 3,
        max_doc_len: 10,
        query_len: 4,
        noise: 0.5,
        seed: 2024,
    });
    let cfg = BuildConfig {
        nbits: 2,
        num_centroids: Some(16),
        chunk_docs: 20,
        ..Default::default()
    };
    let mut index = build_index(&dir, &docs[..40], &cfg)?;
    let ids: Vec<String> = docs[40..].iter().map(|d| d.0.clone()).collect();
    let embs: Vec<_> = docs[40..].iter().map(|d| d.1.clone()).collect();
    index.add(ids, &embs)?;
    index.delete(&["d3", "d41"])?;
    let p = SearchParams::default();
    let mut hits = serde_json::Map::new();
    let mut qs = serde_json::Map::new();
    for (qid, q) in &queries {
        let rows: Vec<Vec<f32>> = q.rows().map(|r| r.to_vec()).collect();
        qs.insert(qid.clone(), serde_json::to_value(rows)?);
        hits.insert(
            qid.clone(),
            serde_json::to_value(index.search_with(q, 5, &p, None)?)?,
        );
    }
    let expected = serde_json::json!({
        "format_version": FORMAT_VERSION,
        "info": index.info(),
        "queries": qs,
        "hits": hits,
    });
    std::fs::write(
        root.join(format!("plaid-v{FORMAT_VERSION}.expected.json")),
        serde_json::to_string_pretty(&expected)?,
    )?;
    println!("wrote {}", dir.display());
    Ok(())
}
