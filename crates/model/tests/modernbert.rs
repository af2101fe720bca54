//! ModernBERT backbone golden tests: last hidden states equal PyTorch `ModernBertModel`
//! (fixtures from tools/make_modernbert_fixtures.py) to 1e-4 for padded batches whose
//! sliding window (|i-j| <= 4) is shorter than the sequences, with SDPA (default) and eager
//! semantics, under all three config schemas, with every bias flag on, and with a `model.`
//! prefix; negative controls prove the window
//! and the two RoPE thetas matter; bad checkpoints give named errors; dropout is seeded.

mod modernbert_common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use colzero_model::modernbert::{AttentionImpl, LayerType, ModernBert, ModernBertConfig};
use colzero_model::{Backbone, ForwardCtx, ModelError};
use modernbert_common::*;
use std::collections::HashMap;

const COLBERT: &str = "tiny-modernbert-colbert";
const TOL: f32 = 1e-4;

/// Max abs diff over every golden batch of `golden_rel` for `model`, against the eager or
/// SDPA golden as the model's config says.
fn golden_diffs(model: &ModernBert, golden_rel: &str) -> Vec<f32> {
    let key = match model.config().attn_implementation {
        AttentionImpl::Eager => "hidden",
        AttentionImpl::Sdpa => "hidden_sdpa",
    };
    let g = load_st(golden_rel);
    let n = n_batches(&g);
    assert!(
        n >= 4,
        "{golden_rel}: expected at least 4 batches, found {n}"
    );
    (0..n)
        .map(|k| {
            let ids = &g[&format!("batch{k}.input_ids")];
            let mask = &g[&format!("batch{k}.attention_mask")];
            let h = model.forward_t(ids, mask, &mut ForwardCtx::eval()).unwrap();
            max_abs_diff(&h, &g[&format!("batch{k}.{key}")])
        })
        .collect()
}

#[test]
fn fixture_exercises_sliding_windows_and_padding() {
    let cfg = config(&format!("{COLBERT}/config.json"));
    assert_eq!(
        cfg.layer_types,
        vec![
            LayerType::Full,
            LayerType::Sliding,
            LayerType::Sliding,
            LayerType::Full
        ]
    );
    assert_eq!(
        (cfg.global_rope_theta, cfg.local_rope_theta),
        (80000.0, 1000.0)
    );
    assert_eq!(cfg.sliding_window(), 4);
    let g = load_st("tiny-modernbert-golden/backbone.safetensors");
    let mut padded = 0;
    for k in 0..n_batches(&g) {
        let m = &g[&format!("batch{k}.attention_mask")];
        assert!(
            m.dim(1).unwrap() > 2 * cfg.sliding_window() + 1,
            "batch{k} shorter than the window"
        );
        let ones = m
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        padded += usize::from(ones as usize != m.elem_count());
    }
    assert!(padded >= 2, "need padded batches");
}

#[test]
fn hidden_states_match_pytorch_for_every_config_schema() {
    let mut outputs: Vec<Vec<Tensor>> = Vec::new();
    for name in [
        "config.json",
        "config_original_schema.json",
        "config_new_schema_only.json",
    ] {
        let cfg = config(&format!("{COLBERT}/{name}"));
        assert_eq!(cfg.attn_implementation, AttentionImpl::Sdpa, "default");
        let model = model_from(&format!("{COLBERT}/model.safetensors"), &cfg);
        let diffs = golden_diffs(&model, "tiny-modernbert-golden/backbone.safetensors");
        println!("{name}: max abs diff per batch {diffs:?}");
        assert!(diffs.iter().all(|d| *d <= TOL), "{name}: {diffs:?}");
        let g = load_st("tiny-modernbert-golden/backbone.safetensors");
        outputs.push(
            (0..n_batches(&g))
                .map(|k| {
                    let ids = &g[&format!("batch{k}.input_ids")];
                    let mask = &g[&format!("batch{k}.attention_mask")];
                    model.forward_t(ids, mask, &mut ForwardCtx::eval()).unwrap()
                })
                .collect(),
        );
    }
    for other in &outputs[1..] {
        for (a, b) in outputs[0].iter().zip(other) {
            assert_eq!(
                max_abs_diff(a, b),
                0.0,
                "schemas must give identical outputs"
            );
        }
    }
}

#[test]
fn eager_semantics_match_pytorch_eager() {
    let g = load_st("tiny-modernbert-golden/backbone.safetensors");
    let eager_vs_sdpa = (0..n_batches(&g))
        .map(|k| {
            max_abs_diff(
                &g[&format!("batch{k}.hidden")],
                &g[&format!("batch{k}.hidden_sdpa")],
            )
        })
        .fold(0f32, f32::max);
    assert!(
        eager_vs_sdpa > 0.1,
        "fixture must contain rows without any allowed key"
    );
    for rel in [COLBERT, "tiny-modernbert-bias"] {
        let mut cfg = config(&format!("{rel}/config.json"));
        cfg.attn_implementation = AttentionImpl::Eager;
        let model = model_from(&format!("{rel}/model.safetensors"), &cfg);
        let golden = if rel == COLBERT {
            "tiny-modernbert-golden/backbone.safetensors".to_string()
        } else {
            format!("{rel}/golden.safetensors")
        };
        let diffs = golden_diffs(&model, &golden);
        println!(
            "{rel} eager: max abs diff per batch {diffs:?} (eager vs sdpa goldens {eager_vs_sdpa})"
        );
        assert!(diffs.iter().all(|d| *d <= TOL), "{rel}: {diffs:?}");
    }
}

#[test]
fn empty_batches_give_empty_outputs() {
    let model = model_from(
        &format!("{COLBERT}/model.safetensors"),
        &config(&format!("{COLBERT}/config.json")),
    );
    for (b, t) in [(0usize, 5usize), (2, 0)] {
        let ids = Tensor::zeros((b, t), DType::U32, &Device::Cpu).unwrap();
        let h = model
            .forward_t(&ids, &ids, &mut ForwardCtx::eval())
            .unwrap();
        assert_eq!(h.dims(), &[b, t, 48]);
    }
}

#[test]
fn window_and_both_rope_thetas_matter() {
    let base = read_json(&format!("{COLBERT}/config.json"));
    let weights = format!("{COLBERT}/model.safetensors");
    let variants = [
        ("no window", "/local_attention", serde_json::json!(1000)),
        (
            "global theta",
            "/rope_parameters/full_attention/rope_theta",
            serde_json::json!(10000.0),
        ),
        (
            "local theta",
            "/rope_parameters/sliding_attention/rope_theta",
            serde_json::json!(10000.0),
        ),
    ];
    for (what, pointer, value) in variants {
        let mut v = base.clone();
        *v.pointer_mut(pointer).expect(pointer) = value;
        let model = model_from(&weights, &ModernBertConfig::from_json(&v).unwrap());
        let worst = golden_diffs(&model, "tiny-modernbert-golden/backbone.safetensors")
            .into_iter()
            .fold(0f32, f32::max);
        println!("{what}: max abs diff {worst}");
        assert!(
            worst > 1e-2,
            "changing the {what} must change the output (diff {worst})"
        );
    }
}

#[test]
fn biased_layers_match_pytorch() {
    let cfg = config("tiny-modernbert-bias/config.json");
    assert!(cfg.attention_bias && cfg.mlp_bias && cfg.norm_bias);
    let model = model_from("tiny-modernbert-bias/model.safetensors", &cfg);
    let diffs = golden_diffs(&model, "tiny-modernbert-bias/golden.safetensors");
    println!("bias fixture: max abs diff per batch {diffs:?}");
    assert!(diffs.iter().all(|d| *d <= TOL), "{diffs:?}");
}

#[test]
fn masked_lm_prefix_is_accepted() {
    let cfg = config(&format!("{COLBERT}/config.json"));
    let mut ts: HashMap<String, Tensor> = load_st(&format!("{COLBERT}/model.safetensors"))
        .into_iter()
        .map(|(k, v)| (format!("model.{k}"), v))
        .collect();
    ts.insert(
        "head.dense.weight".into(),
        Tensor::zeros((48, 48), DType::F32, &Device::Cpu).unwrap(),
    );
    let model =
        ModernBert::load(VarBuilder::from_tensors(ts, DType::F32, &Device::Cpu), &cfg).unwrap();
    let diffs = golden_diffs(&model, "tiny-modernbert-golden/backbone.safetensors");
    assert!(diffs.iter().all(|d| *d <= TOL), "{diffs:?}");
}

#[test]
fn bad_checkpoints_give_named_errors() {
    let cfg = config(&format!("{COLBERT}/config.json"));
    let weights = load_st(&format!("{COLBERT}/model.safetensors"));
    assert!(
        !weights.contains_key("layers.0.attn_norm.weight"),
        "layer 0 has no attn_norm"
    );

    let mut missing = weights.clone();
    missing.remove("layers.2.attn_norm.weight");
    let err = ModernBert::load(
        VarBuilder::from_tensors(missing, DType::F32, &Device::Cpu),
        &cfg,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { name, .. } if name == "layers.2.attn_norm.weight"),
        "{err}"
    );

    let mut wrong = weights.clone();
    let w = wrong["layers.1.attn.Wqkv.weight"]
        .narrow(0, 0, 100)
        .unwrap();
    wrong.insert("layers.1.attn.Wqkv.weight".into(), w);
    let err = ModernBert::load(
        VarBuilder::from_tensors(wrong, DType::F32, &Device::Cpu),
        &cfg,
    )
    .unwrap_err();
    match &err {
        ModelError::TensorShape {
            name,
            expected,
            actual,
        } => {
            assert_eq!(name, "layers.1.attn.Wqkv.weight");
            assert_eq!(
                (expected.as_slice(), actual.as_slice()),
                (&[144, 48][..], &[100, 48][..])
            );
        }
        other => panic!("expected a shape error, got {other}"),
    }

    let model = ModernBert::load(
        VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
        &cfg,
    )
    .unwrap();
    let ids = Tensor::new(&[[1501u32, 5000]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1]], &Device::Cpu).unwrap();
    let err = model
        .forward_t(&ids, &mask, &mut ForwardCtx::eval())
        .unwrap_err();
    assert!(err.to_string().contains("5000"), "{err}");
    let short_mask = Tensor::new(&[[1u32]], &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[1501u32, 10]], &Device::Cpu).unwrap();
    assert!(model
        .forward_t(&ids, &short_mask, &mut ForwardCtx::eval())
        .is_err());
}

#[test]
fn dropout_is_seeded_and_only_in_training() {
    let cfg = config(&format!("{COLBERT}/config.json"));
    assert!(cfg.embedding_dropout > 0.0 && cfg.attention_dropout > 0.0 && cfg.mlp_dropout > 0.0);
    let model = model_from(&format!("{COLBERT}/model.safetensors"), &cfg);
    let g = load_st("tiny-modernbert-golden/backbone.safetensors");
    let (ids, mask) = (&g["batch0.input_ids"], &g["batch0.attention_mask"]);
    let eval = model.forward_t(ids, mask, &mut ForwardCtx::eval()).unwrap();
    let a = model
        .forward_t(ids, mask, &mut ForwardCtx::train(3))
        .unwrap();
    let b = model
        .forward_t(ids, mask, &mut ForwardCtx::train(3))
        .unwrap();
    let c = model
        .forward_t(ids, mask, &mut ForwardCtx::train(4))
        .unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0, "same seed, same output");
    assert!(max_abs_diff(&a, &c) > 1e-2, "different seeds differ");
    assert!(max_abs_diff(&a, &eval) > 1e-2, "training applies dropout");
    assert!(max_abs_diff(&eval, &g["batch0.hidden_sdpa"]) <= TOL);
}
