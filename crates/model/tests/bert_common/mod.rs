//! Shared helpers for the BERT ColBERT tests: fixture paths, golden data, comparisons.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use colzero_model::{ColBERT, LoadOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A committed fixture of this crate (located from this test crate's own manifest dir, so
/// it does not depend on where colzero-core was compiled).
pub fn fixture(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assert!(
        p.exists(),
        "fixture missing: {} (run tools/make_bert_fixtures.py)",
        p.display()
    );
    p
}

pub fn golden() -> Value {
    let p = fixture("tiny-bert-golden/golden.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

pub fn golden_tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("tiny-bert-golden/golden.safetensors"), &Device::Cpu)
        .unwrap()
}

/// Recursively copies `src` into `dst`.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// The chain fixture, completed with the base backbone weights, in a temp dir.
pub fn chain_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("tiny-bert-chain");
    copy_dir(&fixture("tiny-bert-chain"), &d);
    std::fs::copy(
        fixture("tiny-bert-colbert/model.safetensors"),
        d.join("model.safetensors"),
    )
    .unwrap();
    d
}

/// Load options for a golden variant name.
pub fn variant_options(name: &str) -> LoadOptions {
    let mut o = LoadOptions::default();
    match name {
        "prompts" => {
            o.query_prompt = Some("search_query: ".into());
            o.document_prompt = Some("search_document: ".into());
        }
        "noexp" => o.do_query_expansion = Some(false),
        "attend" => o.attend_to_expansion_tokens = Some(true),
        _ => {}
    }
    o
}

pub fn load_variant(name: &str, tmp: &Path) -> ColBERT {
    let dir = if name == "chain" {
        chain_dir(tmp)
    } else {
        fixture("tiny-bert-colbert")
    };
    ColBERT::load(&dir, &variant_options(name)).unwrap()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

pub fn u32_rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// all-MiniLM-L6-v2 through `colzero_core::testing` (panics when ../shared is missing).
/// COLZERO_SHARED is pointed at the `shared/` beside this checkout first, because the
/// core helper otherwise searches from wherever colzero-core happened to be compiled.
pub fn minilm() -> PathBuf {
    if std::env::var_os("COLZERO_SHARED").is_none() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        if let Some(s) = here
            .ancestors()
            .map(|a| a.join("shared"))
            .find(|s| s.join("models").is_dir())
        {
            std::env::set_var("COLZERO_SHARED", s);
        }
    }
    colzero_core::testing::minilm_dir()
}
