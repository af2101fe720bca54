//! Golden tests of the BERT ColBERT against PyLate 1.6.0 (fixtures from
//! tools/make_bert_fixtures.py): token ids/masks, encode() embeddings, and the gradients
//! of a MaxSim loss w.r.t. every parameter.

mod bert_common;

use bert_common::*;
use candle_core::{DType, Tensor, D};
use colzero_model::{EncodeOptions, ForwardCtx, InputKind, LoadOptions};

const VARIANTS: [&str; 5] = ["default", "prompts", "noexp", "attend", "chain"];

fn kinds() -> [(&'static str, InputKind); 2] {
    [
        ("query", InputKind::Query),
        ("document", InputKind::Document),
    ]
}

#[test]
fn token_ids_and_masks_match_pylate() {
    let g = golden();
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(g["prefix_ids"], serde_json::json!([30522, 30523]));
    for v in VARIANTS {
        let model = load_variant(v, tmp.path());
        let cfg = model.config();
        assert_eq!(cfg.query_prefix_id, Some(30522));
        assert_eq!(cfg.document_prefix_id, Some(30523));
        assert_eq!(cfg.pad_token_id as u64, g["pad_token_id"].as_u64().unwrap());
        let want_skip: Vec<u32> = g["skiplist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(cfg.skiplist_ids, want_skip);
        for (k, kind) in kinds() {
            let gv = &g["variants"][v][k];
            let texts = strings(&gv["texts"]);
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let b = model.tokenize(&refs, kind).unwrap();
            assert_eq!(b.ids, u32_rows(&gv["input_ids"]), "{v} {k} input_ids");
            assert_eq!(
                b.attention,
                u32_rows(&gv["attention_mask"]),
                "{v} {k} attention_mask"
            );
            let keep: Vec<Vec<bool>> = u32_rows(&gv["keep"])
                .into_iter()
                .map(|r| r.into_iter().map(|x| x == 1).collect())
                .collect();
            assert_eq!(b.keep, keep, "{v} {k} kept vectors");
        }
    }
    // Truncation really happened: the long query/document fill their budgets exactly.
    let d = &g["variants"]["default"];
    assert_eq!(d["document"]["input_ids"][4].as_array().unwrap().len(), 24);
    assert_eq!(
        d["query"]["attention_mask"][4]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x.as_u64() == Some(1))
            .count(),
        16
    );
}

#[test]
fn encode_matches_pylate_embeddings() {
    let g = golden();
    let gt = golden_tensors();
    let tmp = tempfile::tempdir().unwrap();
    let mut worst = 0f32;
    for v in VARIANTS {
        let model = load_variant(v, tmp.path());
        for (k, kind) in kinds() {
            let texts = strings(&g["variants"][v][k]["texts"]);
            let opts = EncodeOptions {
                batch_size: 2,
                ..Default::default()
            };
            let out = model.encode(&texts, kind, &opts).unwrap();
            for (i, mv) in out.iter().enumerate() {
                let want = &gt[&format!("{v}.{k}.{i}")];
                assert_eq!(
                    mv.n_tokens(),
                    want.dims()[0],
                    "{v} {k} {i}: number of kept vectors"
                );
                assert_eq!(mv.dim(), 16);
                let d = max_abs_diff(mv.as_slice(), &flat(want));
                worst = worst.max(d);
                assert!(d <= 1e-4, "{v} {k} {i}: max abs diff {d}");
            }
        }
    }
    eprintln!("tiny BERT encode: max abs diff vs PyLate = {worst:e}");
}

/// loss = sum_{a,b} sum_s max_t (q_as . d_bt * mask_bt), as pylate.scores.colbert_scores.
fn maxsim_loss(q: &Tensor, d: &Tensor, dmask: &Tensor) -> Tensor {
    let s = q
        .unsqueeze(1)
        .unwrap()
        .broadcast_matmul(&d.unsqueeze(0).unwrap().transpose(2, 3).unwrap())
        .unwrap();
    let s = s
        .broadcast_mul(&dmask.unsqueeze(0).unwrap().unsqueeze(2).unwrap())
        .unwrap();
    s.max(D::Minus1).unwrap().sum_all().unwrap()
}

#[test]
fn gradients_match_pytorch_for_every_parameter() {
    let g = golden();
    let gt = golden_tensors();
    let gm = &g["gradients"];
    let opts = LoadOptions {
        trainable: true,
        ..Default::default()
    };
    let model = colzero_model::ColBERT::load(&fixture("tiny-bert-colbert"), &opts).unwrap();
    let qs = strings(&gm["queries"]);
    let ds = strings(&gm["documents"]);
    let qb = model
        .tokenize_padded(
            &qs.iter().map(String::as_str).collect::<Vec<_>>(),
            InputKind::Query,
        )
        .unwrap();
    let db = model
        .tokenize_padded(
            &ds.iter().map(String::as_str).collect::<Vec<_>>(),
            InputKind::Document,
        )
        .unwrap();
    let mut ctx = ForwardCtx::eval();
    let q = model.forward(&qb, &mut ctx).unwrap();
    let d = model.forward(&db, &mut ctx).unwrap();
    let loss = maxsim_loss(&q, &d, &db.output_mask);
    let lv = loss.to_scalar::<f32>().unwrap();
    let want_loss = gm["loss"].as_f64().unwrap() as f32;
    assert!(
        (lv - want_loss).abs() <= 1e-4 * want_loss.abs().max(1.0),
        "loss {lv} vs {want_loss}"
    );
    let grads = loss.backward().unwrap();
    let vars = model.var_map().unwrap().data().lock().unwrap().clone();
    let mut checked = 0;
    let mut worst = 0f32;
    for p in gm["params"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if p.get("grad").is_some_and(|x| x.is_null()) {
            // PyTorch's unused pooler: not a colzero trainable tensor either.
            let ours = name.trim_start_matches("0.auto_model.");
            assert!(!vars.contains_key(ours), "{ours} should not be trainable");
            continue;
        }
        let ours = match name.strip_prefix("0.auto_model.") {
            Some(n) => n.to_string(),
            None => name.replacen("1.", "_head.0.", 1),
        };
        let var = vars
            .get(&ours)
            .unwrap_or_else(|| panic!("no trainable tensor {ours}"));
        let gr = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {ours}"));
        let total: f32 = gr.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(total > 0.0, "zero gradient for {ours}");
        let want = &gt[&format!("grad.{name}")];
        let got = if let Some(rows) = gt.get(&format!("grad_rows.{name}")) {
            let rows = rows.to_dtype(DType::U32).unwrap();
            // Rows PyTorch reports as zero must be zero here too.
            let n_nonzero = gr
                .abs()
                .unwrap()
                .sum(1)
                .unwrap()
                .gt(0f32)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(
                n_nonzero as usize,
                rows.dims()[0],
                "{ours}: rows with gradient"
            );
            gr.index_select(&rows, 0).unwrap()
        } else {
            gr.clone()
        };
        let (a, b) = (flat(&got), flat(want));
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        if ours.ends_with("attention.self.key.bias") {
            // The key bias adds the same q.b_k to every score of a softmax row, so its
            // exact gradient is 0; both frameworks return float round-off (~1e-7). Check
            // it is round-off relative to the gradients of the other weights.
            let ours_scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(
                scale < 1e-5 && ours_scale < 1e-5,
                "{ours}: {ours_scale} / {scale}"
            );
            checked += 1;
            continue;
        }
        let rel = max_abs_diff(&a, &b) / scale;
        worst = worst.max(rel);
        assert!(
            rel <= 1e-4,
            "{ours}: relative gradient error {rel} (max |grad| {scale})"
        );
        checked += 1;
    }
    assert_eq!(checked, vars.len(), "every trainable tensor is compared");
    assert_eq!(
        checked,
        5 + 2 * 16 + 1,
        "embeddings (5) + 2 layers x 16 + head weight"
    );
    eprintln!("tiny BERT gradients: {checked} tensors, max relative error {worst:e}");
}
