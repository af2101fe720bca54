//! all-MiniLM-L6-v2 (real pretrained BERT in ../shared) against its reference_outputs.json
//! (independent float64 forward): token ids, last_hidden_state and the mean-pooled,
//! normalised sentence embedding of `DenseEncoder`, all to 1e-4; batching with padding
//! must not change the results.

mod bert_common;

use bert_common::*;
use colzero_model::{DenseEncoder, ForwardCtx, LoadOptions, Pooling};
use serde_json::Value;

fn reference() -> Value {
    let p = minilm().join("reference_outputs.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().unwrap() as f32),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn minilm_forward_matches_reference_outputs() {
    let enc = DenseEncoder::load(&minilm(), &LoadOptions::default()).unwrap();
    assert_eq!(enc.pooling(), Pooling::Mean);
    let r = reference();
    let sents = r["sentences"].as_array().unwrap();
    let texts: Vec<String> = sents
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let mut worst_h = 0f32;
    for s in sents {
        let text = s["text"].as_str().unwrap();
        let (ids, _) = enc.tokenize(&[text]).unwrap();
        let want_ids: Vec<u32> = s["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            ids.to_vec2::<u32>().unwrap()[0],
            want_ids,
            "{text}: token ids"
        );
        let (h, _) = enc.hidden_states(&[text], &mut ForwardCtx::eval()).unwrap();
        let d = max_abs_diff(&flat(&h), &f32s(&s["last_hidden_state"]));
        worst_h = worst_h.max(d);
        assert!(d <= 1e-4, "{text}: last_hidden_state max abs diff {d}");
    }
    // Batched (padded) encoding gives the reference sentence embeddings.
    let embs = enc.encode(&texts).unwrap();
    let mut worst_e = 0f32;
    for (s, e) in sents.iter().zip(&embs) {
        let d = max_abs_diff(e, &f32s(&s["sentence_embedding"]));
        worst_e = worst_e.max(d);
        assert!(d <= 1e-4, "sentence embedding max abs diff {d}");
    }
    let cos = r["cosine_matrix"].as_array().unwrap();
    for i in 0..3 {
        for j in 0..3 {
            let c: f32 = embs[i].iter().zip(&embs[j]).map(|(a, b)| a * b).sum();
            let want = cos[i][j].as_f64().unwrap() as f32;
            assert!((c - want).abs() <= 1e-4, "cosine[{i}][{j}] {c} vs {want}");
        }
    }
    eprintln!("MiniLM: last_hidden_state max abs diff {worst_h:e}, sentence embedding {worst_e:e}");
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn dense_prompts_are_prepended_for_their_kind_only() {
    use colzero_model::InputKind;
    let opts = LoadOptions {
        query_prompt: Some("query: ".into()),
        ..Default::default()
    };
    let enc = DenseEncoder::load(&minilm(), &opts).unwrap();
    assert_eq!(enc.prompt(InputKind::Query), Some("query: "));
    assert_eq!(enc.prompt(InputKind::Document), None);
    let t = vec!["He drove to the stadium.".to_string()];
    let q = enc.encode_as(&t, InputKind::Query).unwrap();
    let d = enc.encode_as(&t, InputKind::Document).unwrap();
    assert_eq!(
        q,
        enc.encode(&["query: He drove to the stadium.".to_string()])
            .unwrap()
    );
    assert_eq!(d, enc.encode(&t).unwrap());
    assert!(max_abs_diff(&q[0], &d[0]) > 1e-3);
}
