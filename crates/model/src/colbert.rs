//! [`ColBERT`]: a loaded late-interaction encoder (backbone + Dense head + tokenizer).
//!
//! Contract: `load` reads PyLate/sentence-transformers ColBERT directories and Stanford
//! `HF_ColBERT` directories; `from_dense` wraps any supported HF/sentence-transformers
//! backbone with a fresh seeded projection (PyTorch-Linear-like init: every weight drawn
//! uniformly from `[-1/sqrt(in), 1/sqrt(in))` with `ChaCha8Rng::seed_from_u64(seed)`, row
//! by row, no bias). Both add missing `[Q] `/`[D] ` prefix tokens at PyLate's ids and
//! resize the embedding matrix. `forward` returns L2-normalised `[b, t, dim]` token
//! embeddings built from differentiable ops only; `encode` returns the kept vectors
//! (see `tokenize.rs`) per text, in input order. Prompts default to the checkpoint's
//! `prompts["query"]` / `prompts["document"]` (LoadOptions override; `Some("")` disables).

use crate::checkpoint::{
    add_prefix_tokens, build_backbone, build_head, hidden_size, read_backbone, read_dense_modules,
    read_tokenizer, resize_embeddings, special_token, tokenizer_len, Arch, BackboneSource,
};
use crate::config::{
    default_skiplist, opt_bool, opt_str, opt_usize, prefix_from_metadata, read_json_opt,
    ColbertConfig,
};
use crate::head::{l2_normalize, Activation, DenseConfig, Head};
use crate::nn::ForwardCtx;
use crate::tokenize::{ColbertTokenizer, InputKind, TokenBatch};
use crate::weights::WeightStore;
use crate::{Backbone, EncodeOptions, LoadOptions, ModelError, Result};
use candle_core::{DType, Device, Tensor};
use colzero_core::MultiVector;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::Tokenizer;

/// A ColBERT encoder; see the module docs.
pub struct ColBERT {
    pub(crate) backbone: Box<dyn Backbone>,
    pub(crate) head: Head,
    pub(crate) tokenizer: ColbertTokenizer,
    pub(crate) base_tokenizer: Tokenizer,
    pub(crate) config: ColbertConfig,
    pub(crate) store: Arc<WeightStore>,
    pub(crate) arch: Arch,
    pub(crate) backbone_json: Value,
    pub(crate) source_dir: PathBuf,
    pub(crate) device: Device,
}

impl std::fmt::Debug for ColBERT {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColBERT")
            .field("config", &self.config)
            .field("arch", &self.arch)
            .finish()
    }
}

fn st_object(dir: &Path) -> Result<Map<String, Value>> {
    Ok(
        match read_json_opt(&dir.join("config_sentence_transformers.json"))? {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        },
    )
}

fn prompt_of(st: &Map<String, Value>, key: &str) -> Option<String> {
    st.get("prompts")
        .and_then(|p| p.get(key))
        .and_then(|s| s.as_str())
        .map(str::to_string)
}

fn nonempty(p: Option<String>) -> Option<String> {
    p.filter(|s| !s.is_empty())
}

/// Settings read from the checkpoint before tokens are added.
struct Settings {
    query_prefix: String,
    document_prefix: String,
    query_length: usize,
    document_length: usize,
    do_query_expansion: bool,
    attend: bool,
    skiplist_words: Vec<String>,
    query_prompt: Option<String>,
    document_prompt: Option<String>,
    st: Map<String, Value>,
}

fn resolve_settings(
    src: &BackboneSource,
    opts: &LoadOptions,
    colbert_keys: bool,
) -> Result<Settings> {
    let dir = &src.dir;
    let st = st_object(dir)?;
    let stp = dir.join("config_sentence_transformers.json");
    let stv = Value::Object(if colbert_keys { st.clone() } else { Map::new() });
    let meta = if src.stanford {
        read_json_opt(&dir.join("artifact.metadata"))?
    } else {
        None
    };
    let meta = meta.unwrap_or(Value::Null);
    let mp = dir.join("artifact.metadata");
    let (dq, dd) = if src.stanford {
        ("[unused0]", "[unused1]")
    } else {
        ("[Q] ", "[D] ")
    };
    let query_prefix = opts
        .query_prefix
        .clone()
        .or(opt_str(&stv, "query_prefix", &stp)?)
        .or(prefix_from_metadata(&meta, "query_token_id"))
        .unwrap_or_else(|| dq.to_string());
    let document_prefix = opts
        .document_prefix
        .clone()
        .or(opt_str(&stv, "document_prefix", &stp)?)
        .or(prefix_from_metadata(&meta, "doc_token_id"))
        .unwrap_or_else(|| dd.to_string());
    let query_length = opts
        .query_length
        .or(opt_usize(&stv, "query_length", &stp)?)
        .or(opt_usize(&meta, "query_maxlen", &mp)?)
        .unwrap_or(32);
    let document_length = opts
        .document_length
        .or(opt_usize(&stv, "document_length", &stp)?)
        .or(opt_usize(&meta, "doc_maxlen", &mp)?)
        .unwrap_or(180);
    if query_length < 3 || document_length < 3 {
        return Err(ModelError::Invalid(format!(
            "query_length {query_length} / document_length {document_length}: both must be >= 3"
        )));
    }
    let do_query_expansion = opts
        .do_query_expansion
        .or(opt_bool(&stv, "do_query_expansion", &stp)?)
        .unwrap_or(true);
    let attend = opts
        .attend_to_expansion_tokens
        .or(opt_bool(&stv, "attend_to_expansion_tokens", &stp)?)
        .or(opt_bool(&meta, "attend_to_mask_tokens", &mp)?)
        .unwrap_or(false)
        && do_query_expansion;
    let skiplist_words = match stv.get("skiplist_words") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect(),
        _ => default_skiplist(),
    };
    let query_prompt = nonempty(
        opts.query_prompt
            .clone()
            .or_else(|| prompt_of(&st, "query")),
    );
    let document_prompt = nonempty(
        opts.document_prompt
            .clone()
            .or_else(|| prompt_of(&st, "document")),
    );
    Ok(Settings {
        query_prefix,
        document_prefix,
        query_length,
        document_length,
        do_query_expansion,
        attend,
        skiplist_words,
        query_prompt,
        document_prompt,
        st,
    })
}

impl ColBERT {
    /// Loads a PyLate / sentence-transformers ColBERT or a Stanford `HF_ColBERT` directory.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let mut src = read_backbone(dir)?;
        let settings = resolve_settings(&src, opts, true)?;
        let modules = read_dense_modules(dir)?;
        let mut head_cfgs = Vec::new();
        let mut head_tensors = BTreeMap::new();
        if !modules.is_empty() {
            for (i, (_, cfg, tensors)) in modules.into_iter().enumerate() {
                head_cfgs.push(cfg);
                for (k, v) in tensors {
                    head_tensors.insert(format!("_head.{i}.{k}"), v);
                }
            }
        } else if let (true, Some(w)) = (src.stanford, src.stanford_linear.take()) {
            let (o, i) = w.dims2()?;
            head_cfgs.push(DenseConfig {
                in_features: i,
                out_features: o,
                bias: false,
                activation: Activation::Identity,
                use_residual: false,
            });
            head_tensors.insert("_head.0.linear.weight".to_string(), w);
        } else {
            return Err(ModelError::MissingFile {
                path: dir.join("modules.json"),
                expected: "a ColBERT projection head (modules.json listing a Dense module such as \
                           1_Dense/, or a Stanford linear.weight); to turn a dense model into a \
                           ColBERT use ColBERT::from_dense / `colzero convert`"
                    .into(),
            });
        }
        Self::assemble(src, settings, head_cfgs, head_tensors, opts)
    }

    /// Wraps a dense HF / sentence-transformers backbone with a fresh `dim`-wide
    /// projection seeded by `seed` (see the module docs for the init).
    pub fn from_dense(dir: &Path, dim: usize, seed: u64, opts: &LoadOptions) -> Result<Self> {
        if dim == 0 {
            return Err(ModelError::Invalid(
                "embedding dimension must be > 0".into(),
            ));
        }
        let mut src = read_backbone(dir)?;
        src.stanford = false;
        src.stanford_linear = None;
        let settings = resolve_settings(&src, opts, false)?;
        let hidden = hidden_size(&src.config_json, &dir.join("config.json"))?;
        let bound = 1.0 / (hidden as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let data: Vec<f32> = (0..dim * hidden)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let w = Tensor::from_vec(data, (dim, hidden), &Device::Cpu)?;
        let cfg = DenseConfig {
            in_features: hidden,
            out_features: dim,
            bias: false,
            activation: Activation::Identity,
            use_residual: false,
        };
        let mut head_tensors = BTreeMap::new();
        head_tensors.insert("_head.0.linear.weight".to_string(), w);
        Self::assemble(src, settings, vec![cfg], head_tensors, opts)
    }

    fn assemble(
        src: BackboneSource,
        s: Settings,
        head_cfgs: Vec<DenseConfig>,
        head_tensors: BTreeMap<String, Tensor>,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let dir = src.dir.clone();
        let mut tok = read_tokenizer(&dir)?;
        let mut tensors = src.tensors;
        let emb = src.arch.embedding_name();
        // PyLate: resize(len(tok)); add_tokens(prefixes); resize(len(tok)).
        resize_embeddings(&mut tensors, emb, tokenizer_len(&tok), &src.weights_path)?;
        let ids = add_prefix_tokens(&mut tok, &[&s.query_prefix, &s.document_prefix])?;
        let rows = tokenizer_len(&tok);
        resize_embeddings(&mut tensors, emb, rows, &src.weights_path)?;
        let mut backbone_json = src.config_json.clone();
        if let Some(o) = backbone_json.as_object_mut() {
            o.insert("vocab_size".into(), Value::from(rows));
        }
        let pad_text = match special_token(&dir, "mask_token")? {
            Some(m) => Some(m),
            None => match special_token(&dir, "eos_token")? {
                Some(e) => Some(e),
                None => special_token(&dir, "pad_token")?,
            },
        };
        let pad_token_id = pad_text
            .as_deref()
            .and_then(|t| tok.token_to_id(t))
            .or_else(|| tok.token_to_id("[MASK]"))
            .ok_or_else(|| ModelError::MissingFile {
                path: dir.join("special_tokens_map.json"),
                expected: "a mask_token (or eos_token / pad_token) known to the tokenizer, used for padding".into(),
            })?;
        let unk = special_token(&dir, "unk_token")?.and_then(|u| tok.token_to_id(&u));
        let skiplist_ids: Vec<u32> = s
            .skiplist_words
            .iter()
            .filter_map(|w| tok.token_to_id(w).or(unk))
            .collect();
        let do_lower_case = match read_json_opt(&dir.join("sentence_bert_config.json"))? {
            Some(v) => opt_bool(&v, "do_lower_case", &dir.join("sentence_bert_config.json"))?
                .unwrap_or(false),
            None => false,
        };
        let mut all = tensors;
        all.extend(head_tensors);
        let store = Arc::new(WeightStore::new(
            all,
            opts.trainable,
            src.weights_path.clone(),
        ));
        let backbone = build_backbone(
            src.arch,
            &backbone_json,
            &dir.join("config.json"),
            &store,
            &opts.device,
        )?;
        let head = build_head(&head_cfgs, &store, &opts.device)?;
        let hidden = backbone.hidden_size();
        if let Some(first) = head_cfgs.first() {
            if first.in_features != hidden {
                return Err(ModelError::TensorShape {
                    name: "_head.0.linear.weight (1_Dense in_features)".into(),
                    expected: vec![first.out_features, hidden],
                    actual: vec![first.out_features, first.in_features],
                });
            }
        }
        for w in head_cfgs.windows(2) {
            if w[0].out_features != w[1].in_features {
                return Err(ModelError::Invalid(format!(
                    "Dense chain mismatch: {} outputs feed a layer expecting {}",
                    w[0].out_features, w[1].in_features
                )));
            }
        }
        let config = ColbertConfig {
            query_length: s.query_length,
            document_length: s.document_length,
            query_prefix: s.query_prefix,
            document_prefix: s.document_prefix,
            query_prefix_id: ids[0],
            document_prefix_id: ids[1],
            query_prompt: s.query_prompt,
            document_prompt: s.document_prompt,
            do_query_expansion: s.do_query_expansion,
            attend_to_expansion_tokens: s.attend,
            skiplist_words: s.skiplist_words,
            skiplist_ids,
            pad_token_id,
            do_lower_case,
            embedding_dim: head.out_dim().unwrap_or(hidden),
            hidden_size: hidden,
            flash_attention: opts.flash_attention,
            st_config: s.st,
        };
        let tokenizer = ColbertTokenizer::new(&tok, &config)?;
        Ok(Self {
            backbone,
            head,
            tokenizer,
            base_tokenizer: tok,
            config,
            store,
            arch: src.arch,
            backbone_json,
            source_dir: dir,
            device: opts.device.clone(),
        })
    }

    /// The resolved ColBERT settings.
    pub fn config(&self) -> &ColbertConfig {
        &self.config
    }

    /// The `VarMap` of trainable weights (when loaded with `trainable: true`).
    pub fn var_map(&self) -> Option<&candle_nn::VarMap> {
        self.store.var_map()
    }

    /// The device tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The HF tokenizer (with prefix tokens added).
    pub fn hf_tokenizer(&self) -> &Tokenizer {
        &self.base_tokenizer
    }

    /// Tokenizes as PyLate's `encode` does (documents padded to the batch's longest).
    pub fn tokenize(&self, texts: &[&str], kind: InputKind) -> Result<TokenBatch> {
        self.tokenizer
            .tokenize(texts, kind, &self.config, false, &self.device)
    }

    /// Tokenizes as PyLate's training collator does (`pad=True`: documents padded to
    /// `document_length` too).
    pub fn tokenize_padded(&self, texts: &[&str], kind: InputKind) -> Result<TokenBatch> {
        self.tokenizer
            .tokenize(texts, kind, &self.config, true, &self.device)
    }

    /// Backbone hidden states `[b, t, hidden]` (flash-attention zeroing applied).
    pub fn hidden_states(&self, batch: &TokenBatch, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let h = self
            .backbone
            .forward_t(&batch.input_ids, &batch.attention_mask, ctx)?;
        if self.config.flash_attention {
            let m = batch
                .attention_mask
                .to_dtype(DType::F32)?
                .to_device(h.device())?
                .unsqueeze(2)?;
            return Ok(h.broadcast_mul(&m)?);
        }
        Ok(h)
    }

    /// Projected, L2-normalised token embeddings `[b, t, dim]` (differentiable).
    pub fn forward(&self, batch: &TokenBatch, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let h = self.hidden_states(batch, ctx)?;
        l2_normalize(&self.head.forward(&h)?)
    }

    /// Encodes texts into their kept token vectors, in input order.
    pub fn encode(
        &self,
        texts: &[String],
        kind: InputKind,
        opts: &EncodeOptions,
    ) -> Result<Vec<MultiVector>> {
        let n = texts.len();
        let bs = opts.batch_size.max(1);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].chars().count()));
        let chunks: Vec<&[usize]> = order.chunks(bs).collect();
        let pb = crate::progress_bar(
            n as u64,
            opts.show_progress,
            match kind {
                InputKind::Query => "encoding queries",
                InputKind::Document => "encoding documents",
            },
        );
        let run = |chunk: &&[usize]| -> Result<Vec<MultiVector>> {
            let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            let out = self.encode_batch(&batch_texts, kind);
            pb.inc(chunk.len() as u64);
            out
        };
        let results: Vec<Vec<MultiVector>> = if opts.parallel_batches {
            chunks.par_iter().map(run).collect::<Result<_>>()?
        } else {
            chunks.iter().map(run).collect::<Result<_>>()?
        };
        pb.finish_and_clear();
        let mut out: Vec<Option<MultiVector>> = vec![None; n];
        for (chunk, res) in chunks.iter().zip(results) {
            for (&i, mv) in chunk.iter().zip(res) {
                out[i] = Some(mv);
            }
        }
        Ok(out
            .into_iter()
            .map(|m| m.unwrap_or_else(|| MultiVector::empty(self.config.embedding_dim)))
            .collect())
    }

    /// Encodes one batch (no sorting), returning the kept vectors per text.
    pub fn encode_batch(&self, texts: &[&str], kind: InputKind) -> Result<Vec<MultiVector>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.tokenize(texts, kind)?;
        let emb = self.forward(&batch, &mut ForwardCtx::eval())?.detach();
        let rows: Vec<Vec<Vec<f32>>> = emb
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_vec3()?;
        let dim = self.config.embedding_dim;
        rows.into_iter()
            .zip(&batch.keep)
            .map(|(seq, keep)| {
                let data: Vec<f32> = seq
                    .into_iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .flat_map(|(v, _)| v)
                    .collect();
                Ok(MultiVector::new(dim, data)?)
            })
            .collect()
    }
}
