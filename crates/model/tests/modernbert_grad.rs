//! ModernBERT gradient test: with a VarMap holding the tiny ColBERT fixture's weights and its
//! Dense projection (1_Dense/model.safetensors), loss = sum of PyLate `colbert_scores(Q, D,
//! documents_mask)` over L2-normalised token embeddings (dropout off) gives every trainable
//! tensor a non-zero gradient equal to PyTorch's to 1e-4 relative (max|a-b| / max|b|).
//! The `[PAD]` embedding row (padding_idx) must get exactly zero gradient, as in PyTorch.

mod modernbert_common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use colzero_model::modernbert::ModernBert;
use colzero_model::{Backbone, ForwardCtx};
use modernbert_common::*;

const COLBERT: &str = "tiny-modernbert-colbert";

#[test]
fn gradients_match_pytorch() {
    let dev = Device::Cpu;
    let cfg = config(&format!("{COLBERT}/config.json"));
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().unwrap();
        for (k, v) in load_st(&format!("{COLBERT}/model.safetensors")) {
            data.insert(k, Var::from_tensor(&v).unwrap());
        }
    }
    let model = ModernBert::load(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
    let dense = Var::from_tensor(
        &load_st(&format!("{COLBERT}/1_Dense/model.safetensors"))["linear.weight"],
    )
    .unwrap();
    let n_backbone_vars = varmap.all_vars().len();
    assert_eq!(
        n_backbone_vars, 26,
        "every backbone tensor is a trainable variable"
    );

    let g = load_st("tiny-modernbert-golden/grads.safetensors");
    let encode = |ids: &Tensor, mask: &Tensor| -> Tensor {
        let h = model.forward_t(ids, mask, &mut ForwardCtx::eval()).unwrap();
        normalize(&h.broadcast_matmul(&dense.as_tensor().t().unwrap()).unwrap())
    };
    let q = encode(&g["q.input_ids"], &g["q.attention_mask"]);
    let d = encode(&g["d.input_ids"], &g["d.attention_mask"]);
    let loss = colbert_scores(&q, &d, &g["d.attention_mask"])
        .sum_all()
        .unwrap();
    let want_loss: f32 = g["loss"].get(0).unwrap().to_scalar().unwrap();
    let got_loss: f32 = loss.to_scalar().unwrap();
    println!("loss: ours {got_loss}, pytorch {want_loss}");
    assert!(
        (got_loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
        "{got_loss} vs {want_loss}"
    );

    let grads = loss.backward().unwrap();
    let mut checked = 0;
    let mut worst = (String::new(), 0f32);
    let data = varmap.data().lock().unwrap();
    let mut named: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    named.push(("dense.linear.weight".into(), dense.clone()));
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in &named {
        let want = g
            .get(&format!("grad.{name}"))
            .unwrap_or_else(|| panic!("no PyTorch gradient for {name}"));
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient reached {name}"));
        let scale = max_abs(want);
        assert!(max_abs(got) > 0.0 && scale > 0.0, "{name}: zero gradient");
        let rel = max_abs_diff(got, want) / scale;
        println!("{name}: max|grad| {scale:.4e}, relative diff {rel:.3e}");
        if rel > worst.1 {
            worst = (name.clone(), rel);
        }
        assert!(rel <= 1e-4, "{name}: relative gradient diff {rel}");
        checked += 1;
    }
    println!("worst relative gradient diff: {} {:.3e}", worst.0, worst.1);
    let n_torch = g.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        checked, n_torch,
        "every PyTorch parameter has a counterpart"
    );

    // padding_idx: the [PAD] row gets no gradient although [PAD] occurs in the batch.
    let pad = cfg.pad_token_id.unwrap();
    let d_ids: Vec<Vec<u32>> = g["d.input_ids"].to_vec2().unwrap();
    assert!(
        d_ids.iter().flatten().any(|&i| i == pad),
        "fixture must contain [PAD]"
    );
    let tok = &data["embeddings.tok_embeddings.weight"];
    let row = grads
        .get(tok.as_tensor())
        .unwrap()
        .get(pad as usize)
        .unwrap();
    assert_eq!(
        max_abs(&row),
        0.0,
        "[PAD] embedding row must not receive gradient"
    );
}

#[test]
fn fresh_varmap_creates_every_tensor_and_trains_it() {
    let dev = Device::Cpu;
    let mut cfg = config(&format!("{COLBERT}/config.json"));
    cfg.attention_bias = true;
    cfg.mlp_bias = true;
    cfg.norm_bias = true;
    let varmap = VarMap::new();
    let model = ModernBert::load(VarBuilder::from_varmap(&varmap, DType::F32, &dev), &cfg).unwrap();
    let data = varmap.data().lock().unwrap();
    // embeddings + (weight, bias) per linear (4 per layer) and per norm (embedding, final,
    // mlp_norm per layer, attn_norm per layer but layer 0)
    let n_lin = 4 * cfg.num_hidden_layers;
    let n_norm = 2 + 2 * cfg.num_hidden_layers - 1;
    assert_eq!(data.len(), 1 + 2 * n_lin + 2 * n_norm, "{:?}", data.keys());
    assert!(
        data.contains_key("layers.1.attn.Wqkv.bias")
            && !data.contains_key("layers.0.attn_norm.weight")
    );
    let g = load_st("tiny-modernbert-golden/backbone.safetensors");
    let h = model
        .forward_t(
            &g["batch0.input_ids"],
            &g["batch0.attention_mask"],
            &mut ForwardCtx::train(1),
        )
        .unwrap();
    let grads = h.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    for (name, var) in data.iter() {
        let gr = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(max_abs(gr) > 0.0, "{name}: zero gradient");
    }
}
