//! ModernBERT configuration, read from a Hugging Face `config.json` value.
//!
//! Contract: [`ModernBertConfig::from_json`] accepts both config schemas and resolves them to
//! the same struct, with transformers' defaults (those of ModernBERT-base) for absent fields:
//! - original: `global_attn_every_n_layers` (layer `i` is global iff `i % n == 0`),
//!   `global_rope_theta`, `local_rope_theta`;
//! - transformers 5.x: `layer_types` (`"full_attention"` / `"sliding_attention"` per layer)
//!   and `rope_parameters` keyed by layer type, each `{rope_type: "default", rope_theta}`.
//!
//! `layer_types` wins over `global_attn_every_n_layers` and `rope_parameters.<type>.rope_theta`
//! over the flat thetas, exactly as `transformers.ModernBertConfig` resolves them. RoPE
//! scaling (`rope_type` other than `"default"`, or `rope_scaling`) is rejected as
//! unsupported. Every error names the offending field and what was expected.

use crate::{ModelError, Result};
use serde_json::Value;

/// Attention pattern of one encoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    /// Every token attends to every (unmasked) token; RoPE with the global theta.
    Full,
    /// Token `i` attends to tokens `j` with `|i - j| <= local_attention / 2`; local theta.
    Sliding,
}

/// Activation applied to the GeGLU input half of the MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `"gelu"`: exact erf GELU (transformers' `GELUActivation`), ModernBERT's default.
    GeluErf,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`: tanh approximation.
    GeluTanh,
    /// `"relu"`.
    Relu,
    /// `"silu"` / `"swish"`.
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Self::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            other => {
                return Err(ModelError::Unsupported(format!(
                    "ModernBERT config: field `hidden_activation`: activation {other:?} \
                     (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, swish)"
                )))
            }
        })
    }
}

/// Which PyTorch attention implementation to reproduce. They agree everywhere except in a
/// query row that has no allowed key (a padded position farther than the half window from
/// every real token, or any row of an all-padding sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionImpl {
    /// transformers' eager attention (and every implementation of transformers 4.x): such a
    /// row gets uniform weights over all keys.
    Eager,
    /// torch SDPA with transformers 5.x boolean masks (what PyLate loads by default on CPU):
    /// such a row gets a zero attention output.
    #[default]
    Sdpa,
}

/// Resolved ModernBERT hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ModernBertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub hidden_activation: Activation,
    pub max_position_embeddings: usize,
    pub norm_eps: f64,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub embedding_dropout: f32,
    pub attention_dropout: f32,
    pub mlp_dropout: f32,
    /// Total sliding window; layers of type [`LayerType::Sliding`] use half of it each side.
    pub local_attention: usize,
    /// One entry per layer.
    pub layer_types: Vec<LayerType>,
    /// RoPE base of full-attention layers.
    pub global_rope_theta: f64,
    /// RoPE base of sliding-attention layers.
    pub local_rope_theta: f64,
    /// Row of the token embedding that never receives gradient (`nn.Embedding(padding_idx)`).
    pub pad_token_id: Option<u32>,
    pub cls_token_id: Option<u32>,
    pub sep_token_id: Option<u32>,
    /// Attention semantics for rows without any allowed key; from the optional
    /// `_attn_implementation` / `attn_implementation` key, else [`AttentionImpl::Sdpa`].
    pub attn_implementation: AttentionImpl,
}

fn field_err(key: &str, expected: &str, found: &Value) -> ModelError {
    ModelError::Invalid(format!(
        "ModernBERT config: field `{key}`: expected {expected}, found {found}"
    ))
}

fn get_usize(v: &Value, key: &str, default: usize) -> Result<usize> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| field_err(key, "a non-negative integer", x)),
    }
}

fn get_f64(v: &Value, key: &str, default: f64) -> Result<f64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_f64().ok_or_else(|| field_err(key, "a number", x)),
    }
}

fn get_bool(v: &Value, key: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_bool()
            .ok_or_else(|| field_err(key, "true or false", x)),
    }
}

fn get_dropout(v: &Value, key: &str) -> Result<f32> {
    let p = get_f64(v, key, 0.0)?;
    if !(0.0..1.0).contains(&p) {
        return Err(field_err(key, "a probability in [0, 1)", &v[key]));
    }
    Ok(p as f32)
}

fn get_token_id(v: &Value, key: &str, default: u32) -> Result<Option<u32>> {
    match v.get(key) {
        None => Ok(Some(default)),
        Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| field_err(key, "a token id or null", x)),
    }
}

fn parse_attn_impl(v: &Value) -> Result<AttentionImpl> {
    for key in ["attn_implementation", "_attn_implementation"] {
        match v.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => {
                return match s.as_str() {
                    "eager" => Ok(AttentionImpl::Eager),
                    "sdpa" | "flash_attention_2" | "flash_attention_3" | "flex_attention" => {
                        Ok(AttentionImpl::Sdpa)
                    }
                    _ => Err(field_err(
                        key,
                        "eager, sdpa, flash_attention_2/3 or flex_attention",
                        &v[key],
                    )),
                }
            }
            Some(x) => return Err(field_err(key, "an attention implementation name", x)),
        }
    }
    Ok(AttentionImpl::default())
}

fn parse_layer_types(v: &Value, n_layers: usize) -> Result<Vec<LayerType>> {
    if let Some(lt) = v.get("layer_types").filter(|x| !x.is_null()) {
        let arr = lt
            .as_array()
            .ok_or_else(|| field_err("layer_types", "a list of attention types", lt))?;
        if arr.len() != n_layers {
            return Err(field_err(
                "layer_types",
                &format!("{n_layers} entries (num_hidden_layers)"),
                &Value::from(arr.len()),
            ));
        }
        return arr
            .iter()
            .map(|t| match t.as_str() {
                Some("full_attention") => Ok(LayerType::Full),
                Some("sliding_attention") => Ok(LayerType::Sliding),
                _ => Err(field_err(
                    "layer_types",
                    "\"full_attention\" or \"sliding_attention\" entries",
                    t,
                )),
            })
            .collect();
    }
    let every = get_usize(v, "global_attn_every_n_layers", 3)?;
    if every == 0 {
        return Err(field_err(
            "global_attn_every_n_layers",
            "a positive integer",
            &v["global_attn_every_n_layers"],
        ));
    }
    Ok((0..n_layers)
        .map(|i| {
            if i % every == 0 {
                LayerType::Full
            } else {
                LayerType::Sliding
            }
        })
        .collect())
}

/// RoPE theta of one layer type: `rope_parameters[type].rope_theta`, else the flat key.
fn parse_theta(v: &Value, layer_type: &str, flat_key: &str, default: f64) -> Result<f64> {
    let flat = get_f64(v, flat_key, default)?;
    let Some(rp) = v.get("rope_parameters").filter(|x| !x.is_null()) else {
        return Ok(flat);
    };
    if !rp.is_object() {
        return Err(field_err(
            "rope_parameters",
            "an object keyed by layer type",
            rp,
        ));
    }
    let Some(p) = rp.get(layer_type).filter(|x| !x.is_null()) else {
        return Ok(flat);
    };
    let key = format!("rope_parameters.{layer_type}");
    if !p.is_object() {
        return Err(field_err(
            &key,
            "an object with rope_type and rope_theta",
            p,
        ));
    }
    match p.get("rope_type").and_then(Value::as_str) {
        None | Some("default") => {}
        Some(other) => {
            return Err(ModelError::Unsupported(format!(
                "ModernBERT config: field `{key}.rope_type`: {other:?} (only \"default\" RoPE is supported)"
            )))
        }
    }
    get_f64(p, "rope_theta", flat)
        .map_err(|_| field_err(&format!("{key}.rope_theta"), "a number", &p["rope_theta"]))
}

impl ModernBertConfig {
    /// Parses a `config.json` value in either schema (see the module docs).
    pub fn from_json(v: &Value) -> Result<Self> {
        if !v.is_object() {
            return Err(ModelError::Invalid(format!(
                "ModernBERT config: expected a JSON object, found {v}"
            )));
        }
        if let Some(mt) = v.get("model_type").and_then(Value::as_str) {
            if mt != "modernbert" {
                return Err(field_err("model_type", "\"modernbert\"", &v["model_type"]));
            }
        }
        if v.get("rope_scaling").is_some_and(|x| !x.is_null()) {
            return Err(ModelError::Unsupported(
                "ModernBERT config: field `rope_scaling`: RoPE scaling is not supported".into(),
            ));
        }
        let hidden_size = get_usize(v, "hidden_size", 768)?;
        let num_attention_heads = get_usize(v, "num_attention_heads", 12)?;
        if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
            return Err(field_err(
                "num_attention_heads",
                &format!("a positive divisor of hidden_size {hidden_size}"),
                &Value::from(num_attention_heads),
            ));
        }
        if (hidden_size / num_attention_heads) % 2 != 0 {
            return Err(field_err(
                "num_attention_heads",
                "an even head dimension (hidden_size / num_attention_heads) for RoPE",
                &Value::from(num_attention_heads),
            ));
        }
        let num_hidden_layers = get_usize(v, "num_hidden_layers", 22)?;
        let activation = match v.get("hidden_activation") {
            None | Some(Value::Null) => Activation::GeluErf,
            Some(Value::String(s)) => Activation::parse(s)?,
            Some(x) => return Err(field_err("hidden_activation", "an activation name", x)),
        };
        Ok(Self {
            vocab_size: get_usize(v, "vocab_size", 50368)?,
            hidden_size,
            intermediate_size: get_usize(v, "intermediate_size", 1152)?,
            num_hidden_layers,
            num_attention_heads,
            hidden_activation: activation,
            max_position_embeddings: get_usize(v, "max_position_embeddings", 8192)?,
            norm_eps: get_f64(v, "norm_eps", 1e-5)?,
            norm_bias: get_bool(v, "norm_bias", false)?,
            attention_bias: get_bool(v, "attention_bias", false)?,
            mlp_bias: get_bool(v, "mlp_bias", false)?,
            embedding_dropout: get_dropout(v, "embedding_dropout")?,
            attention_dropout: get_dropout(v, "attention_dropout")?,
            mlp_dropout: get_dropout(v, "mlp_dropout")?,
            local_attention: get_usize(v, "local_attention", 128)?,
            layer_types: parse_layer_types(v, num_hidden_layers)?,
            global_rope_theta: parse_theta(v, "full_attention", "global_rope_theta", 160_000.0)?,
            local_rope_theta: parse_theta(v, "sliding_attention", "local_rope_theta", 10_000.0)?,
            pad_token_id: get_token_id(v, "pad_token_id", 50283)?,
            cls_token_id: get_token_id(v, "cls_token_id", 50281)?,
            sep_token_id: get_token_id(v, "sep_token_id", 50282)?,
            attn_implementation: parse_attn_impl(v)?,
        })
    }

    /// Reads and parses a `config.json` file; errors name the file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::BadFile {
            path: path.to_path_buf(),
            reason: format!("cannot read ModernBERT config: {e}"),
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| ModelError::BadFile {
            path: path.to_path_buf(),
            reason: format!("invalid JSON at line {}: {e}", e.line()),
        })?;
        Self::from_json(&v).map_err(|e| ModelError::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Half window of sliding layers: token `i` sees `j` iff `|i - j| <= sliding_window()`.
    pub fn sliding_window(&self) -> usize {
        self.local_attention / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_schemas_resolve_identically() {
        let old = json!({"model_type": "modernbert", "num_hidden_layers": 4, "hidden_size": 8,
            "num_attention_heads": 2, "global_attn_every_n_layers": 2,
            "global_rope_theta": 500.0, "local_rope_theta": 20.0});
        let new = json!({"model_type": "modernbert", "num_hidden_layers": 4, "hidden_size": 8,
            "num_attention_heads": 2,
            "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 500.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 20.0}}});
        let a = ModernBertConfig::from_json(&old).unwrap();
        let b = ModernBertConfig::from_json(&new).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.layer_types[1], LayerType::Sliding);
        assert_eq!((a.global_rope_theta, a.local_rope_theta), (500.0, 20.0));
        assert_eq!(a.sliding_window(), 64);
        assert_eq!(a.hidden_activation, Activation::GeluErf);
    }

    #[test]
    fn defaults_are_modernbert_base() {
        let c = ModernBertConfig::from_json(&json!({})).unwrap();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.intermediate_size),
            (768, 22, 1152)
        );
        assert_eq!(
            (c.global_rope_theta, c.local_rope_theta),
            (160_000.0, 10_000.0)
        );
        let globals: Vec<usize> = (0..22)
            .filter(|&i| c.layer_types[i] == LayerType::Full)
            .collect();
        assert_eq!(globals, vec![0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!(c.pad_token_id, Some(50283));
        assert_eq!(c.attn_implementation, AttentionImpl::Sdpa);
        let e = ModernBertConfig::from_json(&json!({"_attn_implementation": "eager"})).unwrap();
        assert_eq!(e.attn_implementation, AttentionImpl::Eager);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = ModernBertConfig::from_json(&json!({"hidden_size": "big"})).unwrap_err();
        assert!(e.to_string().contains("`hidden_size`"), "{e}");
        let e = ModernBertConfig::from_json(
            &json!({"num_hidden_layers": 2, "layer_types": ["full_attention"]}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`layer_types`"), "{e}");
        let e = ModernBertConfig::from_json(&json!({"rope_parameters": {"full_attention":
            {"rope_type": "yarn", "rope_theta": 1.0}}}))
        .unwrap_err();
        assert!(e.to_string().contains("rope_type"), "{e}");
        let e = ModernBertConfig::from_json(&json!({"hidden_activation": "mish"})).unwrap_err();
        assert!(e.to_string().contains("hidden_activation"), "{e}");
        let e = ModernBertConfig::from_json(&json!({"hidden_size": 10, "num_attention_heads": 3}))
            .unwrap_err();
        assert!(e.to_string().contains("num_attention_heads"), "{e}");
    }
}
