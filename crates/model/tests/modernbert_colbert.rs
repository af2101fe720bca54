//! ColBERT-level golden test on the tiny ModernBERT ColBERT saved by PyLate
//! (tools/make_modernbert_fixtures.py): for queries and documents, with and without the
//! "search_query: " / "search_document: " prompts and with and without query expansion,
//! `ColBERT::tokenize` gives PyLate's token ids and attention masks exactly, and
//! `ColBERT::encode` gives PyLate's `encode()` vectors (same kept tokens) to 1e-4 max abs diff.

mod modernbert_common;

use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use modernbert_common::*;

#[test]
fn colbert_ids_and_embeddings_match_pylate() {
    let spec = read_json("tiny-modernbert-golden/encode.json");
    let golden = load_st("tiny-modernbert-golden/encode.safetensors");
    let dir = fixture("tiny-modernbert-colbert");
    let cases = spec["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    let mut worst = 0f32;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let is_query = case["kind"] == "query";
        let prompt = case["prompt"].as_str().unwrap_or("").to_string();
        let opts = LoadOptions {
            query_prompt: Some(prompt.clone()),
            document_prompt: Some(prompt.clone()),
            do_query_expansion: Some(case["do_query_expansion"].as_bool().unwrap()),
            ..LoadOptions::default()
        };
        let model = ColBERT::load(&dir, &opts).unwrap();
        let texts: Vec<String> = spec[if is_query { "queries" } else { "documents" }]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let kind = if is_query {
            InputKind::Query
        } else {
            InputKind::Document
        };

        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = model.tokenize(&refs, kind).unwrap();
        let want_ids: Vec<Vec<u32>> = golden[&format!("{name}.input_ids")].to_vec2().unwrap();
        let want_mask: Vec<Vec<u32>> = golden[&format!("{name}.attention_mask")].to_vec2().unwrap();
        assert_eq!(batch.ids, want_ids, "{name}: token ids");
        assert_eq!(batch.attention, want_mask, "{name}: attention mask");

        let opts = EncodeOptions {
            batch_size: 4,
            show_progress: false,
            parallel_batches: false,
        };
        let out = model.encode(&texts, kind, &opts).unwrap();
        let mut case_worst = 0f32;
        for (i, mv) in out.iter().enumerate() {
            let want = &golden[&format!("{name}.emb.{i}")];
            let (n, dim) = want.dims2().unwrap();
            assert_eq!(
                (mv.n_tokens(), mv.dim()),
                (n, dim),
                "{name}: text {i} kept tokens"
            );
            let want: Vec<Vec<f32>> = want.to_vec2().unwrap();
            for (r, row) in want.iter().enumerate() {
                for (a, b) in mv.row(r).iter().zip(row) {
                    case_worst = case_worst.max((a - b).abs());
                }
            }
        }
        println!("{name}: max abs diff {case_worst:.3e}");
        assert!(case_worst <= 1e-4, "{name}: {case_worst}");
        worst = worst.max(case_worst);
    }
    println!("worst max abs diff over all cases: {worst:.3e}");
}

/// The gradient test of modernbert_grad.rs, through the public trainable `ColBERT` API:
/// PyLate tokenization (queries expanded, documents padded to document_length), projected
/// and normalised embeddings, loss = sum of `colbert_scores` with the documents' attention
/// mask; every trainable tensor's gradient equals PyTorch's to 1e-4 relative.
#[test]
fn colbert_gradients_match_pytorch() {
    let g = load_st("tiny-modernbert-golden/grads.safetensors");
    let opts = LoadOptions {
        trainable: true,
        query_prompt: Some(String::new()),
        document_prompt: Some(String::new()),
        ..LoadOptions::default()
    };
    let model = ColBERT::load(&fixture("tiny-modernbert-colbert"), &opts).unwrap();
    let spec = read_json("tiny-modernbert-golden/encode.json");
    let queries: Vec<&str> = spec["queries"].as_array().unwrap()[..3]
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let docs = spec["documents"].as_array().unwrap();
    let pad_doc = "A note about [PAD] tokens inside text.";
    let docs: Vec<&str> = vec![
        docs[0].as_str().unwrap(),
        docs[1].as_str().unwrap(),
        pad_doc,
        docs[3].as_str().unwrap(),
    ];
    let qb = model.tokenize(&queries, InputKind::Query).unwrap();
    let db = model.tokenize_padded(&docs, InputKind::Document).unwrap();
    let want_q: Vec<Vec<u32>> = g["q.input_ids"].to_vec2().unwrap();
    let want_d: Vec<Vec<u32>> = g["d.input_ids"].to_vec2().unwrap();
    assert_eq!(qb.ids, want_q, "query ids");
    assert_eq!(db.ids, want_d, "document ids (with a literal [PAD])");

    let mut ctx = colzero_model::ForwardCtx::eval();
    let q = model.forward(&qb, &mut ctx).unwrap();
    let d = model.forward(&db, &mut ctx).unwrap();
    let loss = colbert_scores(&q, &d, &db.attention_mask)
        .sum_all()
        .unwrap();
    let want_loss: f32 = g["loss"].get(0).unwrap().to_scalar().unwrap();
    let got_loss: f32 = loss.to_scalar().unwrap();
    assert!(
        (got_loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
        "{got_loss} vs {want_loss}"
    );

    let grads = loss.backward().unwrap();
    let vars = model
        .var_map()
        .expect("trainable")
        .data()
        .lock()
        .unwrap()
        .clone();
    let mut worst = 0f32;
    for (ours, var) in &vars {
        let golden_name = match ours.strip_prefix("_head.0.") {
            Some(rest) => format!("grad.dense.{rest}"),
            None => format!("grad.{ours}"),
        };
        let want = g
            .get(&golden_name)
            .unwrap_or_else(|| panic!("{ours}: no PyTorch gradient {golden_name}"));
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{ours}: no gradient"));
        assert!(max_abs(got) > 0.0, "{ours}: zero gradient");
        let rel = max_abs_diff(got, want) / max_abs(want);
        assert!(rel <= 1e-4, "{ours}: relative gradient diff {rel}");
        worst = worst.max(rel);
    }
    let n_torch = g.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(
        vars.len(),
        n_torch,
        "every PyTorch parameter is a trainable tensor"
    );
    println!(
        "ColBERT-level gradients: {} tensors, worst relative diff {worst:.3e}",
        vars.len()
    );
}
