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
        let kind = if is_query { InputKind::Query } else { InputKind::Document };

        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batch = model.tokenize(&refs, kind).unwrap();
        let want_ids: Vec<Vec<u32>> = golden[&format!("{name}.input_ids")].to_vec2().unwrap();
        let want_mask: Vec<Vec<u32>> = golden[&format!("{name}.attention_mask")].to_vec2().unwrap();
        assert_eq!(batch.ids, want_ids, "{name}: token ids");
        assert_eq!(batch.attention, want_mask, "{name}: attention mask");

        let opts = EncodeOptions { batch_size: 4, show_progress: false, parallel_batches: false };
        let out = model.encode(&texts, kind, &opts).unwrap();
        let mut case_worst = 0f32;
        for (i, mv) in out.iter().enumerate() {
            let want = &golden[&format!("{name}.emb.{i}")];
            let (n, dim) = want.dims2().unwrap();
            assert_eq!((mv.n_tokens(), mv.dim()), (n, dim), "{name}: text {i} kept tokens");
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
