//! Reading checkpoint directories: backbone config + weights, tokenizer, Dense modules,
//! special tokens; building the backbone for the config's `model_type`.
//!
//! Contract: [`read_backbone`] returns prefix-free backbone tensors (BERT: `bert.` stripped,
//! `cls.*` MLM heads dropped; ModernBERT: `model.` stripped, `head.*`/`decoder.*` dropped)
//! and sets aside a Stanford `linear.weight`; legacy `LayerNorm.gamma`/`.beta` names become
//! `.weight`/`.bias`. [`resize_embeddings`] implements PyLate's
//! `resize_token_embeddings(len(tokenizer))`: rows are truncated, or new rows are filled
//! with the mean of the existing rows (transformers' mean-resizing without its 1e-9
//! covariance noise, so it is deterministic). Every missing file error names the file and
//! what it should hold. Checkpoint tensors the config leaves unused are an error naming
//! them ([`check_unused`]; only BERT's `pooler.*` is known to be unused and accepted).

use crate::bert::{Bert, BertConfig};
use crate::config::{read_json, read_json_opt};
use crate::head::{DenseConfig, DenseLayer, Head};
use crate::weights::{read_tensors, weights_file, WeightStore};
use crate::{Backbone, ModelError, Result};
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokenizers::{AddedToken, Tokenizer};

/// Backbone families colzero can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Bert,
    ModernBert,
}

impl Arch {
    /// Name of the token embedding matrix.
    pub fn embedding_name(self) -> &'static str {
        match self {
            Arch::Bert => "embeddings.word_embeddings.weight",
            Arch::ModernBert => "embeddings.tok_embeddings.weight",
        }
    }
    /// `architectures` entry written on save.
    pub fn hf_architecture(self) -> &'static str {
        match self {
            Arch::Bert => "BertModel",
            Arch::ModernBert => "ModernBertModel",
        }
    }
}

/// A backbone checkpoint as read from disk.
#[derive(Debug)]
pub struct BackboneSource {
    pub dir: PathBuf,
    pub config_json: Value,
    pub arch: Arch,
    /// `architectures[0] == "HF_ColBERT"` (Stanford ColBERT checkpoint).
    pub stanford: bool,
    pub weights_path: PathBuf,
    pub tensors: BTreeMap<String, Tensor>,
    /// Stanford projection `linear.weight`, if present in the main weights file.
    pub stanford_linear: Option<Tensor>,
}

/// Reads `config.json` and the weights of the backbone in `dir`.
pub fn read_backbone(dir: &Path) -> Result<BackboneSource> {
    let cfg_path = dir.join("config.json");
    let config_json = read_json(
        &cfg_path,
        "the Hugging Face model config (model_type, hidden_size, ...)",
    )?;
    let model_type = config_json
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let arch = match model_type {
        "bert" => Arch::Bert,
        "modernbert" => Arch::ModernBert,
        other => {
            return Err(ModelError::Unsupported(format!(
                "{}: model_type `{other}` (supported: bert, modernbert)",
                cfg_path.display()
            )))
        }
    };
    let stanford = config_json
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        == Some("HF_ColBERT");
    let weights_path = weights_file(dir)?;
    let raw = read_tensors(&weights_path, "the backbone weights")?;
    let (strip, drop): (&[&str], &[&str]) = match arch {
        Arch::Bert => (&["bert."], &["cls.", "linear."]),
        Arch::ModernBert => (
            &["model."],
            &["head.", "decoder.", "linear.", "classifier."],
        ),
    };
    let mut tensors = BTreeMap::new();
    let mut stanford_linear = None;
    for (name, t) in raw {
        if name == "linear.weight" {
            stanford_linear = Some(t);
            continue;
        }
        if name.ends_with("position_ids") || drop.iter().any(|d| name.starts_with(d)) {
            continue;
        }
        let mut canon = strip
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(&name)
            .to_string();
        // Legacy (TF-era, and transformers 5 BERT saves) LayerNorm names.
        if canon.contains("LayerNorm.") {
            if let Some(base) = canon.strip_suffix(".gamma") {
                canon = format!("{base}.weight");
            } else if let Some(base) = canon.strip_suffix(".beta") {
                canon = format!("{base}.bias");
            }
        }
        tensors.insert(canon, t);
    }
    Ok(BackboneSource {
        dir: dir.to_path_buf(),
        config_json,
        arch,
        stanford,
        weights_path,
        tensors,
        stanford_linear,
    })
}

/// Reads `tokenizer.json` from `dir`.
pub fn read_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let p = dir.join("tokenizer.json");
    if !p.exists() {
        return Err(ModelError::MissingFile {
            path: p,
            expected: "the Hugging Face fast tokenizer (tokenizer.json)".into(),
        });
    }
    Tokenizer::from_file(&p).map_err(|e| ModelError::BadFile {
        path: p,
        reason: format!("tokenizer: {e}"),
    })
}

/// A special token's text from `tokenizer_config.json` or `special_tokens_map.json`.
pub fn special_token(dir: &Path, key: &str) -> Result<Option<String>> {
    for f in ["tokenizer_config.json", "special_tokens_map.json"] {
        if let Some(v) = read_json_opt(&dir.join(f))? {
            match v.get(key) {
                Some(Value::String(s)) => return Ok(Some(s.clone())),
                Some(Value::Object(o)) => {
                    if let Some(Value::String(s)) = o.get("content") {
                        return Ok(Some(s.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

/// HF `len(tokenizer)`: vocabulary size including added tokens.
pub fn tokenizer_len(tok: &Tokenizer) -> usize {
    tok.get_vocab_size(true)
}

/// Adds the non-empty `prefixes` as (normalized, non-special) tokens, as HF
/// `tokenizer.add_tokens` does; already-known tokens keep their ids. Returns their ids.
pub fn add_prefix_tokens(tok: &mut Tokenizer, prefixes: &[&str]) -> Result<Vec<Option<u32>>> {
    let new: Vec<AddedToken> = prefixes
        .iter()
        .filter(|p| !p.is_empty() && tok.token_to_id(p).is_none())
        .map(|p| AddedToken::from(p.to_string(), false))
        .collect();
    if !new.is_empty() {
        tok.add_tokens(new)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    }
    prefixes
        .iter()
        .map(|p| {
            if p.is_empty() {
                Ok(None)
            } else {
                tok.token_to_id(p).map(Some).ok_or_else(|| {
                    ModelError::Tokenizer(format!("prefix token `{p}` could not be added"))
                })
            }
        })
        .collect()
}

/// Resizes the embedding matrix `name` to `rows` (see module docs). Returns true when
/// the matrix changed.
pub fn resize_embeddings(
    tensors: &mut BTreeMap<String, Tensor>,
    name: &str,
    rows: usize,
    src: &Path,
) -> Result<bool> {
    let t = tensors.get(name).ok_or_else(|| ModelError::MissingTensor {
        name: name.to_string(),
        path: src.to_path_buf(),
    })?;
    let (n, h) = t.dims2()?;
    if n == rows {
        return Ok(false);
    }
    let new = if rows < n {
        t.narrow(0, 0, rows)?
    } else {
        let mean = t.mean_keepdim(0)?;
        let extra = mean.broadcast_as((rows - n, h))?.contiguous()?;
        Tensor::cat(&[t, &extra], 0)?
    };
    tensors.insert(name.to_string(), new);
    Ok(true)
}

/// A Dense module read from disk: (module dir name, config, tensors).
pub type DenseModule = (String, DenseConfig, BTreeMap<String, Tensor>);

/// The Dense modules listed in `dir/modules.json`, in order: `(module dir name, config,
/// tensors)`. Returns an empty list when `modules.json` is absent.
pub fn read_dense_modules(dir: &Path) -> Result<Vec<DenseModule>> {
    let mpath = dir.join("modules.json");
    let Some(v) = read_json_opt(&mpath)? else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or_else(|| ModelError::BadFile {
        path: mpath.clone(),
        reason: "expected a JSON array of modules".into(),
    })?;
    let mut out = Vec::new();
    for m in list {
        let ty = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if !ty.ends_with("Dense") {
            continue;
        }
        let rel = m.get("path").and_then(|p| p.as_str()).unwrap_or("");
        let mdir = dir.join(rel);
        let cfg = DenseConfig::read(&mdir)?;
        let mut wpath = mdir.join("model.safetensors");
        if !wpath.exists() && mdir.join("pytorch_model.bin").exists() {
            wpath = mdir.join("pytorch_model.bin");
        }
        let tensors = read_tensors(&wpath, "the Dense module weights (linear.weight [out, in])")?;
        out.push((rel.to_string(), cfg, tensors));
    }
    Ok(out)
}

/// Builds the backbone named by `arch` from the store. Backbone tensors of the
/// checkpoint that the config does not use are an error naming them (see
/// [`check_unused`]).
pub fn build_backbone(
    arch: Arch,
    config_json: &Value,
    config_path: &Path,
    store: &Arc<WeightStore>,
    device: &Device,
) -> Result<Box<dyn Backbone>> {
    let vb = store.var_builder(device);
    let backbone: Box<dyn Backbone> = match arch {
        Arch::Bert => {
            let cfg = BertConfig::from_json(config_json, config_path)?;
            Box::new(Bert::load(vb, &cfg, store.source())?)
        }
        Arch::ModernBert => {
            let cfg = crate::modernbert::ModernBertConfig::from_json(config_json)?;
            Box::new(crate::modernbert::ModernBert::load_from(
                vb,
                &cfg,
                store.source().to_path_buf(),
            )?)
        }
    };
    check_unused(store, |n| !n.starts_with("_head."), config_path)?;
    Ok(backbone)
}

/// Backbone tensors real checkpoints carry that no encoder uses: BERT's pooler (HF
/// `BertModel` saves it; ColBERT never pools). MLM heads, `position_ids` buffers and
/// Stanford/ModernBERT heads are already dropped by [`read_backbone`].
const KNOWN_UNUSED: [&str; 1] = ["pooler."];

/// Refuses a checkpoint whose tensors (those `select` picks) were not all used by the
/// model built from `config_path` — transformers warns "Some weights of the model
/// checkpoint were not used"; colzero makes it an error, because it means the config does
/// not describe the checkpoint (e.g. `num_hidden_layers` lower than the checkpoint's
/// layers, which would silently drop layers and change every vector).
pub fn check_unused(
    store: &WeightStore,
    select: impl Fn(&str) -> bool,
    config_path: &Path,
) -> Result<()> {
    let unused: Vec<String> = store
        .unused()
        .into_iter()
        .filter(|n| select(n) && !KNOWN_UNUSED.iter().any(|k| n.starts_with(k)))
        .collect();
    if unused.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 8;
    let mut names = unused
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if unused.len() > SHOWN {
        names.push_str(&format!(" and {} more", unused.len() - SHOWN));
    }
    Err(ModelError::BadFile {
        path: store.source().to_path_buf(),
        reason: format!(
            "{} tensors of the checkpoint are not used by the model {} describes: {names}; \
             the config does not match the weights (e.g. num_hidden_layers lower than the \
             checkpoint's layers, or a bias the config turns off)",
            unused.len(),
            config_path.display()
        ),
    })
}

/// Builds the head from `_head.{i}.*` tensors in the store; a head tensor its Dense
/// config does not use (e.g. a bias with `"bias": false`) is an error naming it.
pub fn build_head(cfgs: &[DenseConfig], store: &Arc<WeightStore>, device: &Device) -> Result<Head> {
    let vb = store.var_builder(device);
    let mut layers = Vec::with_capacity(cfgs.len());
    for (i, c) in cfgs.iter().enumerate() {
        layers.push(DenseLayer::load(
            &vb.pp(format!("_head.{i}")),
            c,
            store.source(),
        )?);
    }
    check_unused(
        store,
        |n| n.starts_with("_head."),
        Path::new("the Dense module config.json"),
    )?;
    Ok(Head { layers })
}

/// The `hidden_size` of a backbone config.
pub fn hidden_size(config_json: &Value, config_path: &Path) -> Result<usize> {
    crate::config::req_usize(config_json, "hidden_size", config_path)
}
