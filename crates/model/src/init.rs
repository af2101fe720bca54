//! Fresh, untrained BERT weights drawn from a seed (a model "from scratch").
//!
//! Contract: [`bert_scratch_tensors`] returns every tensor [`crate::bert::Bert::load`]
//! reads, under its canonical (prefix-free) name, initialised as Hugging Face's
//! `BertPreTrainedModel._init_weights`: Linear and Embedding weights ~ N(0,
//! `initializer_range`), Linear biases 0, the `pad_token_id` row of the word embeddings 0,
//! LayerNorm weight 1 and bias 0. Draws come from `ChaCha8Rng::seed_from_u64(seed)`
//! (Box–Muller normals) in the sorted order of the tensor names, so the same config and
//! seed give bitwise-identical weights on every machine. [`write_scratch_bert`] reads
//! `dir/config.json` (BERT only; `initializer_range` defaults to 0.02) and writes
//! `dir/model.safetensors` atomically, after which the directory loads like any HF BERT
//! checkpoint (`ColBERT::from_dense`, `DenseEncoder::load`).

use crate::bert::BertConfig;
use crate::config::{opt_f64, read_json};
use crate::weights::write_safetensors;
use crate::{ModelError, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a tensor is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Init {
    Normal,
    Zeros,
    Ones,
}

/// `(name, shape, init)` of every BERT tensor the encoder reads.
fn bert_layout(cfg: &BertConfig) -> Vec<(String, Vec<usize>, Init)> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let mut v = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![cfg.vocab_size, h],
            Init::Normal,
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![cfg.max_position_embeddings, h],
            Init::Normal,
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![cfg.type_vocab_size, h],
            Init::Normal,
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h], Init::Ones),
        ("embeddings.LayerNorm.bias".into(), vec![h], Init::Zeros),
    ];
    let lin = |v: &mut Vec<(String, Vec<usize>, Init)>, name: String, out: usize, inp: usize| {
        v.push((format!("{name}.weight"), vec![out, inp], Init::Normal));
        v.push((format!("{name}.bias"), vec![out], Init::Zeros));
    };
    let norm = |v: &mut Vec<(String, Vec<usize>, Init)>, name: String| {
        v.push((format!("{name}.weight"), vec![h], Init::Ones));
        v.push((format!("{name}.bias"), vec![h], Init::Zeros));
    };
    for l in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for s in ["query", "key", "value"] {
            lin(&mut v, format!("{p}.attention.self.{s}"), h, h);
        }
        lin(&mut v, format!("{p}.attention.output.dense"), h, h);
        norm(&mut v, format!("{p}.attention.output.LayerNorm"));
        lin(&mut v, format!("{p}.intermediate.dense"), i, h);
        lin(&mut v, format!("{p}.output.dense"), h, i);
        norm(&mut v, format!("{p}.output.LayerNorm"));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// One standard normal draw (Box–Muller, cosine branch).
fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    // u1 in (0, 1] so ln(u1) is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Freshly initialised BERT tensors (see the module docs).
pub fn bert_scratch_tensors(
    cfg: &BertConfig,
    initializer_range: f64,
    seed: u64,
) -> Result<BTreeMap<String, Tensor>> {
    if !(initializer_range.is_finite() && initializer_range > 0.0) {
        return Err(ModelError::Invalid(format!(
            "initializer_range {initializer_range}: must be a positive number"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = BTreeMap::new();
    for (name, shape, init) in bert_layout(cfg) {
        let n: usize = shape.iter().product();
        let mut data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal => (0..n)
                .map(|_| (std_normal(&mut rng) * initializer_range) as f32)
                .collect(),
        };
        if name == "embeddings.word_embeddings.weight" {
            if let Some(pad) = cfg.pad_token_id.map(|p| p as usize) {
                if pad < cfg.vocab_size {
                    let h = cfg.hidden_size;
                    data[pad * h..(pad + 1) * h].fill(0.0);
                }
            }
        }
        out.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// Writes `dir/model.safetensors` with fresh weights for the BERT in `dir/config.json`;
/// returns the path written.
pub fn write_scratch_bert(dir: &Path, seed: u64) -> Result<PathBuf> {
    let cfg_path = dir.join("config.json");
    let v = read_json(
        &cfg_path,
        "a BERT config (model_type \"bert\", hidden_size, ...)",
    )?;
    let model_type = v.get("model_type").and_then(|m| m.as_str()).unwrap_or("");
    if model_type != "bert" {
        return Err(ModelError::Unsupported(format!(
            "{}: model_type `{model_type}`: only `bert` can be initialised from scratch",
            cfg_path.display()
        )));
    }
    let cfg = BertConfig::from_json(&v, &cfg_path)?;
    let range = opt_f64(&v, "initializer_range", &cfg_path)?.unwrap_or(0.02);
    let tensors = bert_scratch_tensors(&cfg, range, seed)?;
    let path = dir.join("model.safetensors");
    write_safetensors(&path, &tensors)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ColBERT, InputKind, LoadOptions};

    fn tiny_config() -> serde_json::Value {
        serde_json::json!({
            "model_type": "bert", "vocab_size": 40, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 24, "pad_token_id": 0, "initializer_range": 0.02
        })
    }

    #[test]
    fn statistics_and_determinism() {
        let cfg = BertConfig::from_json(&tiny_config(), Path::new("config.json")).unwrap();
        let a = bert_scratch_tensors(&cfg, 0.02, 7).unwrap();
        let b = bert_scratch_tensors(&cfg, 0.02, 7).unwrap();
        let c = bert_scratch_tensors(&cfg, 0.02, 8).unwrap();
        // 5 embedding tensors + 16 per layer.
        assert_eq!(a.len(), 5 + 2 * 16);
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w = "encoder.layer.0.intermediate.dense.weight";
        assert_eq!(flat(&a[w]), flat(&b[w]));
        assert_ne!(flat(&a[w]), flat(&c[w]));
        let mut all = Vec::new();
        for (k, t) in &a {
            let v = flat(t);
            if k.ends_with("LayerNorm.weight") {
                assert!(v.iter().all(|x| *x == 1.0), "{k}");
            } else if k.ends_with(".bias") {
                assert!(v.iter().all(|x| *x == 0.0), "{k}");
            } else {
                all.extend(v);
            }
        }
        let word = flat(&a["embeddings.word_embeddings.weight"]);
        assert!(word[..16].iter().all(|x| *x == 0.0), "pad row is zero");
        let n = all.len() as f64;
        let mean = all.iter().map(|x| *x as f64).sum::<f64>() / n;
        let sd = (all.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 2e-3, "mean {mean}");
        assert!((sd - 0.02).abs() < 1.5e-3, "sd {sd}");
    }

    #[test]
    fn written_checkpoint_loads_as_colbert() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            serde_json::to_vec(&tiny_config()).unwrap(),
        )
        .unwrap();
        let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let tok = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "pair": [], "special_tokens": {
                    "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                    "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": vocab.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
                    .collect::<serde_json::Map<String, serde_json::Value>>()}
        });
        std::fs::write(
            dir.path().join("tokenizer.json"),
            serde_json::to_vec(&tok).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("special_tokens_map.json"),
            r#"{"mask_token": "[MASK]", "unk_token": "[UNK]", "pad_token": "[PAD]"}"#,
        )
        .unwrap();
        write_scratch_bert(dir.path(), 3).unwrap();
        let m = ColBERT::from_dense(dir.path(), 8, 1, &LoadOptions::default()).unwrap();
        let v = m
            .encode(
                &["a b a".to_string()],
                InputKind::Document,
                &Default::default(),
            )
            .unwrap();
        assert_eq!(v[0].dim(), 8);
        assert!(v[0].n_tokens() >= 3);
        // A non-BERT config is refused with the file named.
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
        let e = write_scratch_bert(dir.path(), 3).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("gpt2"), "{e}");
    }
}
