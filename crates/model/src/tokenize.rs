//! PyLate-exact ColBERT tokenization.
//!
//! Contract (pylate 1.6.0 `ColBERT.tokenize` + sentence-transformers `Transformer.tokenize`):
//! 1. text = prompt + raw text, then Python `str.strip()` ([`py_strip`]), then lower-cased if `do_lower_case`;
//! 2. the HF tokenizer adds CLS/SEP and truncates (longest-first) to `length - 1` when a
//!    prefix token is used (else `length`); the tokenizer file's own padding/truncation
//!    settings are ignored;
//! 3. queries with expansion are padded to that length, everything else to the batch's
//!    longest (or to the maximum with `pad_to_max`), with the pad id (the MASK id for
//!    MLM models) and attention 0;
//! 4. the prefix id is inserted at position 1 with attention 1;
//! 5. queries with `attend_to_expansion_tokens` get an all-ones attention mask.
//!
//! The output mask (vectors kept by `encode`): documents keep attended, non-skiplist
//! tokens; expanded queries keep every position; other queries keep attended positions.

use crate::config::ColbertConfig;
use crate::{ModelError, Result};
use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Which side of retrieval a text is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    Query,
    Document,
}

/// A tokenized batch, on the model's device plus host copies.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// `[b, t]` u32 token ids.
    pub input_ids: Tensor,
    /// `[b, t]` u32 attention mask (1 = attended).
    pub attention_mask: Tensor,
    /// `[b, t]` f32, 1.0 where `encode` keeps the vector (see module docs).
    pub output_mask: Tensor,
    /// Host copy of the ids.
    pub ids: Vec<Vec<u32>>,
    /// Host copy of the attention mask.
    pub attention: Vec<Vec<u32>>,
    /// Host copy of the output mask.
    pub keep: Vec<Vec<bool>>,
    /// What was tokenized.
    pub kind: InputKind,
}

impl TokenBatch {
    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Sequence length (padded).
    pub fn seq_len(&self) -> usize {
        self.ids.first().map_or(0, |r| r.len())
    }
}

/// The model's HF tokenizer with per-kind truncation.
#[derive(Debug, Clone)]
pub struct ColbertTokenizer {
    query: Tokenizer,
    document: Tokenizer,
}

/// Python's `str.strip()`: Rust's `trim` plus the information separators U+001C..U+001F,
/// which Python also counts as whitespace.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// A copy of `base` without padding and with longest-first truncation at `max_length`.
pub fn with_truncation(base: &Tokenizer, max_length: usize) -> Result<Tokenizer> {
    let mut t = base.clone();
    t.with_padding(None);
    t.with_truncation(Some(TruncationParams {
        direction: TruncationDirection::Right,
        max_length,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
    }))
    .map_err(tok_err)?;
    Ok(t)
}

impl ColbertTokenizer {
    /// Prepares the query/document tokenizers for `cfg`'s lengths.
    pub fn new(base: &Tokenizer, cfg: &ColbertConfig) -> Result<Self> {
        let ql = cfg.query_length - usize::from(cfg.query_prefix_id.is_some());
        let dl = cfg.document_length - usize::from(cfg.document_prefix_id.is_some());
        Ok(Self {
            query: with_truncation(base, ql)?,
            document: with_truncation(base, dl)?,
        })
    }

    /// The underlying tokenizer (query side; both share vocabulary).
    pub fn inner(&self) -> &Tokenizer {
        &self.query
    }

    /// Tokenizes `texts` as PyLate does; `pad_to_max` pads documents to
    /// `document_length` as PyLate's training collator (`pad=True`) does.
    pub fn tokenize(
        &self,
        texts: &[&str],
        kind: InputKind,
        cfg: &ColbertConfig,
        pad_to_max: bool,
        device: &Device,
    ) -> Result<TokenBatch> {
        let is_query = kind == InputKind::Query;
        let (tok, prompt, prefix_id, length) = match kind {
            InputKind::Query => (
                &self.query,
                &cfg.query_prompt,
                cfg.query_prefix_id,
                cfg.query_length,
            ),
            InputKind::Document => (
                &self.document,
                &cfg.document_prompt,
                cfg.document_prefix_id,
                cfg.document_length,
            ),
        };
        let prepared: Vec<String> = texts
            .iter()
            .map(|t| {
                let s = match prompt {
                    Some(p) => format!("{p}{t}"),
                    None => t.to_string(),
                };
                let s = py_strip(&s).to_string();
                if cfg.do_lower_case {
                    s.to_lowercase()
                } else {
                    s
                }
            })
            .collect();
        let encs = tok.encode_batch(prepared, true).map_err(tok_err)?;
        let max_len = length - usize::from(prefix_id.is_some());
        let fixed = pad_to_max || (is_query && cfg.do_query_expansion);
        let target = if fixed {
            max_len
        } else {
            encs.iter().map(|e| e.get_ids().len()).max().unwrap_or(0)
        };
        let mut ids = Vec::with_capacity(encs.len());
        let mut attention = Vec::with_capacity(encs.len());
        let mut keep = Vec::with_capacity(encs.len());
        for e in &encs {
            let mut row: Vec<u32> = e.get_ids().to_vec();
            let mut att: Vec<u32> = vec![1; row.len()];
            row.resize(target.max(row.len()), cfg.pad_token_id);
            att.resize(row.len(), 0);
            if let Some(p) = prefix_id {
                let at = 1.min(row.len());
                row.insert(at, p);
                att.insert(at, 1);
            }
            if is_query && cfg.attend_to_expansion_tokens {
                att.iter_mut().for_each(|a| *a = 1);
            }
            let k: Vec<bool> = match kind {
                InputKind::Document => row
                    .iter()
                    .zip(&att)
                    .map(|(id, a)| *a == 1 && !cfg.skiplist_ids.contains(id))
                    .collect(),
                InputKind::Query if cfg.do_query_expansion => vec![true; row.len()],
                InputKind::Query => att.iter().map(|a| *a == 1).collect(),
            };
            ids.push(row);
            attention.push(att);
            keep.push(k);
        }
        let b = ids.len();
        let t = ids.first().map_or(0, |r| r.len());
        let flat_ids: Vec<u32> = ids.iter().flatten().copied().collect();
        let flat_att: Vec<u32> = attention.iter().flatten().copied().collect();
        let flat_keep: Vec<f32> = keep
            .iter()
            .flatten()
            .map(|k| if *k { 1.0 } else { 0.0 })
            .collect();
        Ok(TokenBatch {
            input_ids: Tensor::from_vec(flat_ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(flat_att, (b, t), device)?,
            output_mask: Tensor::from_vec(flat_keep, (b, t), device)?,
            ids,
            attention,
            keep,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::py_strip;

    #[test]
    fn strip_matches_python() {
        // Python: "\x1c\u00a0 a b\u3000\n\x1f".strip() == "a b"
        assert_eq!(py_strip("\u{1c}\u{a0} a b\u{3000}\n\u{1f}"), "a b");
        assert_eq!(py_strip("  "), "");
        assert_eq!(
            py_strip("x\u{200b}"),
            "x\u{200b}",
            "zero-width space is not whitespace"
        );
    }
}
