//! Dense bi-encoder mode (sentence-transformers semantics): one normalised vector per text.
//!
//! Contract: [`DenseEncoder::load`] reads the backbone, `tokenizer.json` (its own
//! padding/truncation replaced by truncation at `sentence_bert_config.json`
//! `max_seq_length` unless `LoadOptions::document_length` overrides it, default 512),
//! and the pooling mode from the `Pooling` module's
//! `config.json` listed in `modules.json` (`pooling_mode_cls_token` → CLS, otherwise mean
//! over attended tokens; no Pooling module → mean). Texts are stripped (and lower-cased
//! with `do_lower_case`) like sentence-transformers does; outputs are L2-normalised.
//! `encode_as` prepends the query/document prompt (LoadOptions, else the checkpoint's
//! `config_sentence_transformers.json` prompts), as `encode(prompt_name=...)` does.

use crate::checkpoint::{build_backbone, read_backbone, read_tokenizer, special_token};
use crate::config::{opt_bool, opt_usize, read_json, read_json_opt};
use crate::head::l2_normalize;
use crate::nn::ForwardCtx;
use crate::tokenize::{py_strip, with_truncation, InputKind};
use crate::weights::WeightStore;
use crate::{Backbone, LoadOptions, ModelError, Result};
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use std::sync::Arc;
use tokenizers::Tokenizer;

/// Sentence pooling over token states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over attended tokens.
    Mean,
    /// The first ([CLS]) token.
    Cls,
}

/// A dense sentence encoder.
pub struct DenseEncoder {
    backbone: Box<dyn Backbone>,
    tokenizer: Tokenizer,
    pooling: Pooling,
    pad_id: u32,
    do_lower_case: bool,
    device: Device,
    store: Arc<WeightStore>,
    query_prompt: Option<String>,
    document_prompt: Option<String>,
    /// Texts per forward pass in `encode`.
    pub batch_size: usize,
}

impl std::fmt::Debug for DenseEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseEncoder")
            .field("pooling", &self.pooling)
            .finish()
    }
}

fn read_pooling(dir: &Path) -> Result<Pooling> {
    let Some(mods) = read_json_opt(&dir.join("modules.json"))? else {
        return Ok(Pooling::Mean);
    };
    let Some(list) = mods.as_array() else {
        return Ok(Pooling::Mean);
    };
    for m in list {
        if m.get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.ends_with("Pooling"))
        {
            let rel = m
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or("1_Pooling");
            let p = dir.join(rel).join("config.json");
            let v = read_json(&p, "the Pooling module config (pooling_mode_*)")?;
            if opt_bool(&v, "pooling_mode_cls_token", &p)? == Some(true) {
                return Ok(Pooling::Cls);
            }
            if opt_bool(&v, "pooling_mode_mean_tokens", &p)? == Some(true) {
                return Ok(Pooling::Mean);
            }
            return Err(ModelError::Unsupported(format!(
                "{}: only mean or CLS pooling is supported",
                p.display()
            )));
        }
    }
    Ok(Pooling::Mean)
}

impl DenseEncoder {
    /// Loads a HF / sentence-transformers checkpoint directory.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let src = read_backbone(dir)?;
        let pooling = read_pooling(dir)?;
        let sb = dir.join("sentence_bert_config.json");
        let sbv = read_json_opt(&sb)?.unwrap_or(serde_json::Value::Null);
        // An explicit override (`--document-length`) beats the checkpoint's setting.
        let max_len = match opts.document_length {
            Some(n) => n,
            None => opt_usize(&sbv, "max_seq_length", &sb)?.unwrap_or(512),
        };
        let do_lower_case = opt_bool(&sbv, "do_lower_case", &sb)?.unwrap_or(false);
        let tokenizer = with_truncation(&read_tokenizer(dir)?, max_len)?;
        let pad_id = special_token(dir, "pad_token")?
            .and_then(|p| tokenizer.token_to_id(&p))
            .unwrap_or(0);
        let st = read_json_opt(&dir.join("config_sentence_transformers.json"))?;
        let prompt = |key: &str, over: &Option<String>| -> Option<String> {
            over.clone()
                .or_else(|| {
                    st.as_ref()
                        .and_then(|v| v.get("prompts"))
                        .and_then(|p| p.get(key))
                        .and_then(|p| p.as_str())
                        .map(str::to_string)
                })
                .filter(|p| !p.is_empty())
        };
        let query_prompt = prompt("query", &opts.query_prompt);
        let document_prompt = prompt("document", &opts.document_prompt);
        let store = Arc::new(WeightStore::new(
            src.tensors,
            opts.trainable,
            src.weights_path.clone(),
        ));
        let backbone = build_backbone(
            src.arch,
            &src.config_json,
            &dir.join("config.json"),
            &store,
            &opts.device,
        )?;
        Ok(Self {
            backbone,
            tokenizer,
            pooling,
            pad_id,
            do_lower_case,
            device: opts.device.clone(),
            store,
            query_prompt,
            document_prompt,
            batch_size: 32,
        })
    }

    /// The pooling mode in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The `VarMap` in trainable mode.
    pub fn var_map(&self) -> Option<&candle_nn::VarMap> {
        self.store.var_map()
    }

    /// Token ids and attention mask (`[b, t]` u32, padded to the batch's longest).
    pub fn tokenize(&self, texts: &[&str]) -> Result<(Tensor, Tensor)> {
        let prepared: Vec<String> = texts
            .iter()
            .map(|t| {
                let s = py_strip(t);
                if self.do_lower_case {
                    s.to_lowercase()
                } else {
                    s.to_string()
                }
            })
            .collect();
        let encs = self
            .tokenizer
            .encode_batch(prepared, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let t = encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(encs.len() * t);
        let mut att = Vec::with_capacity(encs.len() * t);
        for e in &encs {
            let n = e.get_ids().len();
            ids.extend_from_slice(e.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, t - n));
            att.extend(std::iter::repeat_n(1u32, n));
            att.extend(std::iter::repeat_n(0u32, t - n));
        }
        let b = encs.len();
        Ok((
            Tensor::from_vec(ids, (b, t), &self.device)?,
            Tensor::from_vec(att, (b, t), &self.device)?,
        ))
    }

    /// Last hidden states `[b, t, hidden]` of a batch.
    pub fn hidden_states(&self, texts: &[&str], ctx: &mut ForwardCtx) -> Result<(Tensor, Tensor)> {
        let (ids, att) = self.tokenize(texts)?;
        Ok((self.backbone.forward_t(&ids, &att, ctx)?, att))
    }

    /// Pooled, normalised embeddings `[b, hidden]` (differentiable).
    pub fn embed(&self, texts: &[&str], ctx: &mut ForwardCtx) -> Result<Tensor> {
        let (h, att) = self.hidden_states(texts, ctx)?;
        let pooled = match self.pooling {
            Pooling::Cls => h.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let m = att.to_dtype(DType::F32)?.unsqueeze(2)?;
                let s = h.broadcast_mul(&m)?.sum(1)?;
                let n = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                s.broadcast_div(&n)?
            }
        };
        l2_normalize(&pooled)
    }

    /// The prompt prepended to texts of `kind` by [`DenseEncoder::encode_as`]
    /// (LoadOptions override, else the checkpoint's `prompts["query"|"document"]`).
    pub fn prompt(&self, kind: InputKind) -> Option<&str> {
        match kind {
            InputKind::Query => self.query_prompt.as_deref(),
            InputKind::Document => self.document_prompt.as_deref(),
        }
    }

    /// Like [`DenseEncoder::encode`], with the prompt of `kind` prepended to every text.
    pub fn encode_as(&self, texts: &[String], kind: InputKind) -> Result<Vec<Vec<f32>>> {
        match self.prompt(kind) {
            None => self.encode(texts),
            Some(p) => self.encode(&texts.iter().map(|t| format!("{p}{t}")).collect::<Vec<_>>()),
        }
    }

    /// Encodes texts (no prompt) to normalised vectors, in input order (length-sorted
    /// batches).
    pub fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].chars().count()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            let e = self.embed(&batch, &mut ForwardCtx::eval())?.detach();
            let rows: Vec<Vec<f32>> = e.to_device(&Device::Cpu)?.to_vec2()?;
            for (&i, r) in chunk.iter().zip(rows) {
                out[i] = r;
            }
        }
        Ok(out)
    }
}
