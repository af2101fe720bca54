//! Shared helpers for the ModernBERT golden tests: fixture paths, safetensors loading and
//! comparison metrics. Fixtures come from `tools/make_modernbert_fixtures.py`.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use colzero_model::modernbert::{ModernBert, ModernBertConfig};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// All tensors of a safetensors fixture; integer tensors converted to u32.
pub fn load_st(rel: &str) -> HashMap<String, Tensor> {
    let path = fixture(rel);
    let map = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    map.into_iter()
        .map(|(k, v)| {
            let v = if v.dtype() == DType::I64 {
                v.to_dtype(DType::U32).unwrap()
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

pub fn read_json(rel: &str) -> serde_json::Value {
    let path = fixture(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn config(rel: &str) -> ModernBertConfig {
    ModernBertConfig::from_json(&read_json(rel)).unwrap()
}

/// A model over the raw tensors of `weights_rel` with the config JSON value `cfg`.
pub fn model_from(weights_rel: &str, cfg: &ModernBertConfig) -> ModernBert {
    let vb = VarBuilder::from_tensors(load_st(weights_rel), DType::F32, &Device::Cpu);
    ModernBert::load(vb, cfg).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Number of `batch{k}.*` entries in a golden backbone file.
pub fn n_batches(g: &HashMap<String, Tensor>) -> usize {
    (0..)
        .take_while(|k| g.contains_key(&format!("batch{k}.hidden")))
        .count()
}

/// `x / max(||x||_2, 1e-12)` over the last dimension (torch.nn.functional.normalize).
pub fn normalize(x: &Tensor) -> Tensor {
    let n = x
        .sqr()
        .unwrap()
        .sum_keepdim(D::Minus1)
        .unwrap()
        .sqrt()
        .unwrap();
    x.broadcast_div(&n.maximum(1e-12).unwrap()).unwrap()
}

/// PyLate `colbert_scores(Q [a,s,h], D [b,t,h], documents_mask [b,t])` -> `[a, b]`:
/// einsum, multiply by the doc mask (masked similarities become 0), max over t, sum over s.
pub fn colbert_scores(q: &Tensor, d: &Tensor, d_mask: &Tensor) -> Tensor {
    let (a, s, h) = q.dims3().unwrap();
    let (b, t, _) = d.dims3().unwrap();
    let sim = q
        .reshape((a * s, h))
        .unwrap()
        .matmul(&d.reshape((b * t, h)).unwrap().t().unwrap())
        .unwrap()
        .reshape((a, s, b, t))
        .unwrap();
    let m = d_mask
        .to_dtype(DType::F32)
        .unwrap()
        .reshape((1, 1, b, t))
        .unwrap();
    sim.broadcast_mul(&m)
        .unwrap()
        .max(D::Minus1)
        .unwrap()
        .sum(1)
        .unwrap()
}
