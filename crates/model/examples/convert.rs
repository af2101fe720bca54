//! Dense -> ColBERT conversion with colzero (dev helper for tools/check_pylate_loads.py;
//! the product command is `colzero convert`).
//!
//! `cargo run -p colzero-model --example convert -- --from DENSE_DIR --out DIR [--dim 128]
//! [--seed 0] [--texts TEXTS.json --embeddings OUT.json]`
//!
//! Writes the converted model to DIR in PyLate's layout. With `--texts` (a JSON object
//! `{"queries": [...], "documents": [...]}`), reloads DIR and writes the colzero
//! embeddings of those texts to `--embeddings` as `{"queries": [[[f32; dim]; n]...],
//! "documents": ...}`.

use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let from = PathBuf::from(get("--from").ok_or("--from DENSE_DIR is required")?);
    let out = PathBuf::from(get("--out").ok_or("--out DIR is required")?);
    let dim: usize = get("--dim").map_or(Ok(128), |s| s.parse())?;
    let seed: u64 = get("--seed").map_or(Ok(0), |s| s.parse())?;
    let opts = LoadOptions::default();
    let model = ColBERT::from_dense(&from, dim, seed, &opts)?;
    model.save(&out)?;
    eprintln!("wrote {} (dim {dim}, seed {seed})", out.display());
    if let (Some(texts), Some(emb)) = (get("--texts"), get("--embeddings")) {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&texts)?)?;
        let reloaded = ColBERT::load(&out, &opts)?;
        let mut res = serde_json::Map::new();
        for (key, kind) in [
            ("queries", InputKind::Query),
            ("documents", InputKind::Document),
        ] {
            let list: Vec<String> = v[key]
                .as_array()
                .ok_or(format!("{texts}: `{key}` must be a list of strings"))?
                .iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect();
            let enc = reloaded.encode(&list, kind, &EncodeOptions::default())?;
            let rows: Vec<Vec<Vec<f32>>> = enc
                .iter()
                .map(|m| m.rows().map(|r| r.to_vec()).collect())
                .collect();
            res.insert(key.to_string(), serde_json::to_value(rows)?);
        }
        std::fs::write(&emb, serde_json::Value::Object(res).to_string())?;
        eprintln!("wrote {emb}");
    }
    Ok(())
}
