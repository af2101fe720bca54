//! ColBERT settings and the small JSON readers shared by the checkpoint loaders.
//!
//! Contract: [`ColbertConfig`] holds everything that shapes tokenization and output
//! selection, resolved in PyLate's order: explicit [`crate::LoadOptions`] value >
//! `config_sentence_transformers.json` > Stanford `artifact.metadata` > PyLate default
//! (`"[Q] "`/`"[D] "`, query 32, document 180, expansion on, no attention to expansion
//! tokens, the 32 ASCII punctuation characters as skiplist). `do_query_expansion = false`
//! forces `attend_to_expansion_tokens = false`, as in PyLate. JSON readers report the file
//! and the field at fault.

use crate::{ModelError, Result};
use serde_json::Value;
use std::path::Path;

/// PyLate's default document skiplist: Python's `string.punctuation`, one entry per char.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Resolved ColBERT settings of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ColbertConfig {
    /// Total query length in tokens (including CLS, prefix and SEP).
    pub query_length: usize,
    /// Maximum document length in tokens (including CLS, prefix and SEP).
    pub document_length: usize,
    /// Query marker token text (e.g. `"[Q] "`); empty = no marker.
    pub query_prefix: String,
    /// Document marker token text (e.g. `"[D] "`); empty = no marker.
    pub document_prefix: String,
    /// Token id of the query marker (None when the prefix is empty).
    pub query_prefix_id: Option<u32>,
    /// Token id of the document marker (None when the prefix is empty).
    pub document_prefix_id: Option<u32>,
    /// Text prepended to every query before tokenization (e.g. `"search_query: "`).
    pub query_prompt: Option<String>,
    /// Text prepended to every document before tokenization.
    pub document_prompt: Option<String>,
    /// Pad queries to `query_length` with the mask token and keep those vectors.
    pub do_query_expansion: bool,
    /// Let the query expansion tokens take part in attention.
    pub attend_to_expansion_tokens: bool,
    /// Skiplist words (each is mapped with `convert_tokens_to_ids`).
    pub skiplist_words: Vec<String>,
    /// Skiplist token ids (unknown words map to the UNK id, as in HF).
    pub skiplist_ids: Vec<u32>,
    /// Padding token id (PyLate: the mask token id for MLM models).
    pub pad_token_id: u32,
    /// Lower-case texts before tokenization (`sentence_bert_config.json` `do_lower_case`).
    pub do_lower_case: bool,
    /// Output dimension of the projection head.
    pub embedding_dim: usize,
    /// Width of the backbone's hidden states.
    pub hidden_size: usize,
    /// Zero the vectors at attention-masked positions (flash-attention semantics).
    pub flash_attention: bool,
    /// The source `config_sentence_transformers.json` (other keys are kept on save).
    pub st_config: serde_json::Map<String, Value>,
}

/// Reads and parses a JSON file; a missing file is reported with `expected`.
pub fn read_json(path: &Path, expected: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
                expected: expected.to_string(),
            }
        } else {
            ModelError::BadFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadFile {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

/// Reads a JSON file if it exists.
pub fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if path.exists() {
        read_json(path, "").map(Some)
    } else {
        Ok(None)
    }
}

fn bad(path: &Path, reason: String) -> ModelError {
    ModelError::BadFile {
        path: path.to_path_buf(),
        reason,
    }
}

/// A required unsigned integer field.
pub fn req_usize(v: &Value, key: &str, path: &Path) -> Result<usize> {
    match v.get(key) {
        Some(x) => x.as_u64().map(|x| x as usize).ok_or_else(|| {
            bad(
                path,
                format!("field `{key}` must be a non-negative integer, got {x}"),
            )
        }),
        None => Err(bad(path, format!("missing field `{key}`"))),
    }
}

/// An optional unsigned integer field.
pub fn opt_usize(v: &Value, key: &str, path: &Path) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => req_usize(v, key, path).map(Some),
    }
}

/// An optional float field.
pub fn opt_f64(v: &Value, key: &str, path: &Path) -> Result<Option<f64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(path, format!("field `{key}` must be a number, got {x}"))),
    }
}

/// An optional boolean field.
pub fn opt_bool(v: &Value, key: &str, path: &Path) -> Result<Option<bool>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_bool()
            .map(Some)
            .ok_or_else(|| bad(path, format!("field `{key}` must be a boolean, got {x}"))),
    }
}

/// An optional string field.
pub fn opt_str(v: &Value, key: &str, path: &Path) -> Result<Option<String>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| bad(path, format!("field `{key}` must be a string, got {x}"))),
    }
}

/// A Stanford `artifact.metadata` prefix entry: a token string, or (rarely) an id.
pub fn prefix_from_metadata(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The default skiplist words (one string per punctuation char).
pub fn default_skiplist() -> Vec<String> {
    PUNCTUATION.chars().map(|c| c.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_matches_python_string_punctuation() {
        assert_eq!(PUNCTUATION.chars().count(), 32);
        assert_eq!(default_skiplist()[0], "!");
        assert_eq!(default_skiplist()[31], "~");
    }

    #[test]
    fn field_errors_name_the_field() {
        let v: Value = serde_json::json!({"a": "x"});
        let e = req_usize(&v, "a", Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.json") && e.contains("`a`"), "{e}");
        let e = req_usize(&v, "b", Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `b`"), "{e}");
    }
}
