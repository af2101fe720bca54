//! Checkpoint behaviour of the BERT ColBERT: save -> reload round trips (frozen, chain
//! head, trained weights), dense -> ColBERT conversion, Stanford HF_ColBERT directories,
//! the flash-attention switch, batching invariance, and error messages on bad input.

mod bert_common;

use bert_common::*;
use candle_core::{Device, Tensor};
use colzero_model::{ColBERT, EncodeOptions, InputKind, LoadOptions};
use std::collections::HashMap;
use std::path::Path;

fn texts(kind: &str) -> Vec<String> {
    strings(&golden()["variants"]["default"][kind]["texts"])
}

fn encode_all(m: &ColBERT) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for (k, kind) in [
        ("query", InputKind::Query),
        ("document", InputKind::Document),
    ] {
        for mv in m
            .encode(&texts(k), kind, &EncodeOptions::default())
            .unwrap()
        {
            out.push(mv.into_vec());
        }
    }
    out
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn save_and_reload_gives_identical_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    for src in [fixture("tiny-bert-colbert"), chain_dir(tmp.path())] {
        let m = ColBERT::load(&src, &LoadOptions::default()).unwrap();
        let out = tmp.path().join("saved");
        m.save(&out).unwrap();
        let r = ColBERT::load(&out, &LoadOptions::default()).unwrap();
        assert_eq!(encode_all(&m), encode_all(&r), "{}", src.display());
        assert_eq!(m.config().query_prefix_id, r.config().query_prefix_id);
        // PyLate's layout and keys.
        let sb = read_json(&out.join("sentence_bert_config.json"));
        assert_eq!(sb["max_seq_length"], 23);
        let st = read_json(&out.join("config_sentence_transformers.json"));
        for (k, v) in [
            ("query_prefix", "[Q] "),
            ("document_prefix", "[D] "),
            ("similarity_fn_name", "MaxSim"),
            ("model_type", "ColBERT"),
        ] {
            assert_eq!(st[k], v, "{k}");
        }
        assert_eq!(st["query_length"], 16);
        assert_eq!(st["document_length"], 24);
        assert_eq!(st["do_query_expansion"], true);
        assert_eq!(st["skiplist_words"].as_array().unwrap().len(), 32);
        let mods = read_json(&out.join("modules.json"));
        assert_eq!(mods[1]["type"], "pylate.models.Dense.Dense");
        assert_eq!(mods[1]["path"], "1_Dense");
        assert_eq!(read_json(&out.join("config.json"))["vocab_size"], 30524);
        assert!(
            out.join("tokenizer.json").exists() && out.join("1_Dense/model.safetensors").exists()
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn trained_weights_are_what_save_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        trainable: true,
        ..Default::default()
    };
    let m = ColBERT::load(&fixture("tiny-bert-colbert"), &opts).unwrap();
    let before = encode_all(&m);
    {
        let vars = m.var_map().unwrap().data().lock().unwrap();
        for name in ["_head.0.linear.weight", "encoder.layer.1.output.dense.bias"] {
            let v = &vars[name];
            let t = v.as_tensor();
            let noise = Tensor::rand(-0.5f32, 0.5, t.dims(), &Device::Cpu).unwrap();
            v.set(&(t + noise).unwrap()).unwrap();
        }
    }
    let after = encode_all(&m);
    assert_ne!(before, after, "changing the Vars changes the model");
    m.save(&tmp.path().join("trained")).unwrap();
    let r = ColBERT::load(&tmp.path().join("trained"), &LoadOptions::default()).unwrap();
    assert_eq!(encode_all(&r), after);
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn dense_model_converts_to_a_loadable_seeded_colbert() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = LoadOptions::default();
    let a = ColBERT::from_dense(&minilm(), 128, 7, &opts).unwrap();
    let b = ColBERT::from_dense(&minilm(), 128, 7, &opts).unwrap();
    let c = ColBERT::from_dense(&minilm(), 128, 8, &opts).unwrap();
    let cfg = a.config();
    assert_eq!(
        (cfg.query_prefix_id, cfg.document_prefix_id),
        (Some(30522), Some(30523))
    );
    assert_eq!(
        (cfg.query_length, cfg.document_length, cfg.embedding_dim),
        (32, 180, 128)
    );
    assert_eq!(cfg.pad_token_id, 103, "queries are padded with [MASK]");
    let docs = vec![
        "The weather is lovely today.".to_string(),
        "He drove to the stadium, fast!".to_string(),
    ];
    let enc = |m: &ColBERT| {
        m.encode(&docs, InputKind::Document, &EncodeOptions::default())
            .unwrap()
    };
    let (ea, eb, ec) = (enc(&a), enc(&b), enc(&c));
    assert_eq!(ea, eb, "same seed, same projection");
    assert_ne!(ea, ec, "different seed, different projection");
    // [CLS] [D] the weather is lovely today [SEP]: '.' is skipped.
    assert_eq!(ea[0].n_tokens(), 8);
    for r in ea[0].rows() {
        let n: f32 = r.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
    }
    let out = tmp.path().join("minilm-colbert");
    a.save(&out).unwrap();
    let r = ColBERT::load(&out, &opts).unwrap();
    assert_eq!(enc(&r), ea);
    // The projection is PyTorch-Linear-like: uniform in [-1/sqrt(384), 1/sqrt(384)).
    let w: HashMap<String, Tensor> =
        candle_core::safetensors::load(out.join("1_Dense/model.safetensors"), &Device::Cpu)
            .unwrap();
    let w = flat(&w["linear.weight"]);
    let bound = 1.0 / 384f32.sqrt();
    assert_eq!(w.len(), 128 * 384);
    assert!(w.iter().all(|x| x.abs() <= bound));
    assert!(w.iter().fold(0f32, |m, x| m.max(x.abs())) > 0.99 * bound);
    // A dense checkpoint has no head: load() says how to convert it.
    let e = ColBERT::load(&minilm(), &opts).unwrap_err().to_string();
    assert!(
        e.contains("modules.json") && e.contains("from_dense"),
        "{e}"
    );
}

#[test]
fn stanford_hf_colbert_directory_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("tiny-bert-colbert");
    let dir = tmp.path().join("stanford");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = read_json(&src.join("config.json"));
    cfg["architectures"] = serde_json::json!(["HF_ColBERT"]);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let backbone =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let head = candle_core::safetensors::load(src.join("1_Dense/model.safetensors"), &Device::Cpu)
        .unwrap();
    let mut all: HashMap<String, Tensor> = backbone
        .into_iter()
        .map(|(k, v)| (format!("bert.{k}"), v))
        .collect();
    all.insert("linear.weight".into(), head["linear.weight"].clone());
    candle_core::safetensors::save(&all, dir.join("model.safetensors")).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let meta = serde_json::json!({"query_token_id": "[unused0]", "doc_token_id": "[unused1]",
        "query_maxlen": 16, "doc_maxlen": 24, "attend_to_mask_tokens": false});
    std::fs::write(dir.join("artifact.metadata"), meta.to_string()).unwrap();
    let s = ColBERT::load(&dir, &LoadOptions::default()).unwrap();
    let c = s.config();
    assert_eq!(
        (c.query_prefix_id, c.document_prefix_id),
        (Some(1), Some(2))
    );
    assert_eq!(
        (c.query_length, c.document_length, c.embedding_dim),
        (16, 24, 16)
    );
    let same = LoadOptions {
        query_prefix: Some("[unused0]".into()),
        document_prefix: Some("[unused1]".into()),
        ..Default::default()
    };
    let p = ColBERT::load(&src, &same).unwrap();
    assert_eq!(encode_all(&s), encode_all(&p));
}

#[test]
fn flash_attention_zeroes_masked_positions_only() {
    let base = ColBERT::load(&fixture("tiny-bert-colbert"), &LoadOptions::default()).unwrap();
    let fa = ColBERT::load(
        &fixture("tiny-bert-colbert"),
        &LoadOptions {
            flash_attention: true,
            ..Default::default()
        },
    )
    .unwrap();
    let q = texts("query");
    let b = base
        .tokenize(
            &q.iter().map(String::as_str).collect::<Vec<_>>(),
            InputKind::Query,
        )
        .unwrap();
    let eb = base
        .encode(&q, InputKind::Query, &EncodeOptions::default())
        .unwrap();
    let ef = fa
        .encode(&q, InputKind::Query, &EncodeOptions::default())
        .unwrap();
    let mut zeros = 0;
    for ((mb, mf), att) in eb.iter().zip(&ef).zip(&b.attention) {
        assert_eq!(mb.n_tokens(), 16);
        assert_eq!(mf.n_tokens(), 16, "expansion vectors are still returned");
        for (i, a) in att.iter().enumerate() {
            if *a == 1 {
                assert!(max_abs_diff(mb.row(i), mf.row(i)) < 1e-6);
            } else {
                assert!(mf.row(i).iter().all(|x| *x == 0.0));
                assert!(
                    mb.row(i).iter().any(|x| *x != 0.0),
                    "eager semantics: non-zero"
                );
                zeros += 1;
            }
        }
    }
    assert!(zeros > 10);
}

#[test]
fn batching_order_and_threads_do_not_change_results() {
    let m = ColBERT::load(&fixture("tiny-bert-colbert"), &LoadOptions::default()).unwrap();
    let d = texts("document");
    let one = m
        .encode(
            &d,
            InputKind::Document,
            &EncodeOptions {
                batch_size: 1,
                parallel_batches: false,
                ..Default::default()
            },
        )
        .unwrap();
    let many = m
        .encode(
            &d,
            InputKind::Document,
            &EncodeOptions {
                batch_size: 3,
                parallel_batches: true,
                ..Default::default()
            },
        )
        .unwrap();
    for (a, b) in one.iter().zip(&many) {
        assert_eq!(a.n_tokens(), b.n_tokens());
        assert!(max_abs_diff(a.as_slice(), b.as_slice()) < 1e-5);
    }
    assert!(m
        .encode(&[], InputKind::Query, &EncodeOptions::default())
        .unwrap()
        .is_empty());
}

fn broken_copy(tmp: &Path) -> std::path::PathBuf {
    let d = tmp.join("broken");
    copy_dir(&fixture("tiny-bert-colbert"), &d);
    d
}

#[test]
fn missing_files_are_named_with_what_they_should_hold() {
    let tmp = tempfile::tempdir().unwrap();
    for (file, expect) in [
        ("tokenizer.json", "tokenizer"),
        ("config.json", "model config"),
        ("model.safetensors", "backbone weights"),
        ("1_Dense/model.safetensors", "Dense module weights"),
        ("1_Dense/config.json", "Dense module config"),
    ] {
        let d = broken_copy(tmp.path());
        std::fs::remove_file(d.join(file)).unwrap();
        let e = ColBERT::load(&d, &LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(file) && e.contains("missing") && e.contains(expect),
            "{file}: {e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn wrong_tensor_shapes_name_tensor_and_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    // Head weight with the wrong input width.
    let d = broken_copy(tmp.path());
    let mut w = HashMap::new();
    w.insert(
        "linear.weight".to_string(),
        Tensor::zeros((16, 31), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, d.join("1_Dense/model.safetensors")).unwrap();
    let e = ColBERT::load(&d, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linear.weight") && e.contains("[16, 32]") && e.contains("[16, 31]"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).unwrap();
    // Backbone tensor disagreeing with config.json.
    let d = broken_copy(tmp.path());
    let mut cfg = read_json(&d.join("config.json"));
    cfg["intermediate_size"] = serde_json::json!(65);
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = ColBERT::load(&d, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("encoder.layer.0.intermediate.dense.weight")
            && e.contains("[65, 32]")
            && e.contains("[64, 32]"),
        "{e}"
    );
    // Malformed JSON names the file.
    std::fs::write(d.join("modules.json"), "[{").unwrap();
    let e = ColBERT::load(&d, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("modules.json") && e.contains("invalid JSON"),
        "{e}"
    );
}

#[test]
fn padding_idx_row_gets_no_gradient() {
    let opts = LoadOptions {
        trainable: true,
        ..Default::default()
    };
    let m = ColBERT::load(&fixture("tiny-bert-colbert"), &opts).unwrap();
    let b = m
        .tokenize(&["hello [PAD] world"], InputKind::Document)
        .unwrap();
    assert!(b.ids[0].contains(&0), "[PAD] is token 0: {:?}", b.ids[0]);
    let y = m
        .forward(&b, &mut colzero_model::ForwardCtx::eval())
        .unwrap();
    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let vars = m.var_map().unwrap().data().lock().unwrap();
    let w = &vars["embeddings.word_embeddings.weight"];
    let gw = g.get(w.as_tensor()).unwrap();
    let row = |i: usize| {
        flat(&gw.get(i).unwrap())
            .iter()
            .map(|x| x.abs())
            .sum::<f32>()
    };
    let hello = m.hf_tokenizer().token_to_id("hello").unwrap() as usize;
    assert_eq!(row(0), 0.0, "padding_idx row");
    assert!(row(hello) > 0.0);
}

#[test]
fn dropout_applies_only_in_training_and_is_seeded() {
    let m = ColBERT::load(&fixture("tiny-bert-colbert"), &LoadOptions::default()).unwrap();
    let b = m
        .tokenize(&["dropout is seeded"], InputKind::Document)
        .unwrap();
    let run = |ctx: &mut colzero_model::ForwardCtx| flat(&m.forward(&b, ctx).unwrap());
    use colzero_model::ForwardCtx;
    let e1 = run(&mut ForwardCtx::eval());
    let e2 = run(&mut ForwardCtx::eval());
    let t1 = run(&mut ForwardCtx::train(3));
    let t2 = run(&mut ForwardCtx::train(3));
    let t3 = run(&mut ForwardCtx::train(4));
    assert_eq!(e1, e2);
    assert_eq!(t1, t2, "same seed, same dropout masks");
    assert!(
        max_abs_diff(&t1, &t3) > 1e-3,
        "different seed, different masks"
    );
    assert!(
        max_abs_diff(&e1, &t1) > 1e-3,
        "config dropout (0.1) is active in training"
    );
}
