//! Saving a [`ColBERT`] in PyLate's directory layout.
//!
//! Contract: `ColBERT::save(dir)` builds the whole directory in a temp dir and swaps it
//! in atomically (`colzero_core::fsutil::atomic_dir`). It writes the backbone
//! `config.json` (`vocab_size` = current embedding rows, `architectures` = the base
//! HF class), `model.safetensors` (current, possibly trained, prefix-free backbone
//! weights), `tokenizer.json` (with the added prefix tokens, no padding/truncation),
//! copies of `tokenizer_config.json` / `special_tokens_map.json` / `vocab.txt`,
//! `modules.json` (Transformer + one `pylate.models.Dense.Dense` per head layer),
//! `{i}_Dense/{config.json, model.safetensors}`, `sentence_bert_config.json`
//! (`max_seq_length` = document_length - 1 with a document prefix) and
//! `config_sentence_transformers.json` with PyLate's ColBERT keys.

use crate::colbert::ColBERT;
use crate::weights::write_safetensors;
use crate::{ModelError, Result};
use candle_core::Tensor;
use colzero_core::fsutil::atomic_write_bytes;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| ModelError::Invalid(e.to_string()))?;
    atomic_write_bytes(path, s.as_bytes())?;
    Ok(())
}

impl ColBERT {
    /// Writes the model (current weights) to `dir` in PyLate's layout; see module docs.
    pub fn save(&self, dir: &Path) -> Result<()> {
        colzero_core::fsutil::atomic_dir(dir, |tmp| self.write_into(tmp))
    }

    fn write_into(&self, tmp: &Path) -> Result<()> {
        let cfg = &self.config;
        // Backbone.
        let mut backbone: BTreeMap<String, Tensor> = BTreeMap::new();
        for name in self.store.names().filter(|n| !n.starts_with("_head.")) {
            if let Some(t) = self.store.current(name) {
                backbone.insert(name.clone(), t.detach());
            }
        }
        let rows = backbone
            .get(self.arch.embedding_name())
            .map(|t| t.dims()[0])
            .unwrap_or(cfg.hidden_size);
        let mut bj = self.backbone_json.clone();
        if let Some(o) = bj.as_object_mut() {
            o.insert("vocab_size".into(), Value::from(rows));
            o.insert("architectures".into(), json!([self.arch.hf_architecture()]));
        }
        write_json(&tmp.join("config.json"), &bj)?;
        write_safetensors(&tmp.join("model.safetensors"), &backbone)?;
        // Tokenizer.
        let mut tok = self.base_tokenizer.clone();
        tok.with_padding(None);
        tok.with_truncation(None)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        tok.save(tmp.join("tokenizer.json"), true)
            .map_err(|e| ModelError::Tokenizer(format!("saving tokenizer.json: {e}")))?;
        for f in [
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
        ] {
            let src = self.source_dir.join(f);
            if src.exists() {
                let bytes = std::fs::read(&src).map_err(|e| ModelError::BadFile {
                    path: src.clone(),
                    reason: e.to_string(),
                })?;
                atomic_write_bytes(&tmp.join(f), &bytes)?;
            }
        }
        // Head.
        let mut modules = vec![json!({
            "idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"
        })];
        for (i, layer) in self.head.layers.iter().enumerate() {
            let sub = format!("{}_Dense", i + 1);
            let prefix = format!("_head.{i}.");
            let mut ts = BTreeMap::new();
            for name in self.store.names().filter(|n| n.starts_with(&prefix)) {
                if let Some(t) = self.store.current(name) {
                    ts.insert(name[prefix.len()..].to_string(), t.detach());
                }
            }
            write_json(&tmp.join(&sub).join("config.json"), &layer.cfg.to_json())?;
            write_safetensors(&tmp.join(&sub).join("model.safetensors"), &ts)?;
            modules.push(json!({
                "idx": i + 1, "name": (i + 1).to_string(), "path": sub, "type": "pylate.models.Dense.Dense"
            }));
        }
        write_json(&tmp.join("modules.json"), &Value::Array(modules))?;
        let msl = cfg.document_length - usize::from(cfg.document_prefix_id.is_some());
        write_json(
            &tmp.join("sentence_bert_config.json"),
            &json!({"max_seq_length": msl, "do_lower_case": cfg.do_lower_case}),
        )?;
        write_json(
            &tmp.join("config_sentence_transformers.json"),
            &Value::Object(self.st_json()),
        )?;
        Ok(())
    }

    fn st_json(&self) -> Map<String, Value> {
        let cfg = &self.config;
        let mut m = cfg.st_config.clone();
        m.entry("__version__").or_insert_with(|| {
            json!({"sentence_transformers": "5.3.0", "transformers": "5.3.0", "pytorch": "2.11.0", "colzero": env!("CARGO_PKG_VERSION")})
        });
        m.insert("model_type".into(), json!("ColBERT"));
        let mut prompts = match m.get("prompts") {
            Some(Value::Object(p)) => p.clone(),
            _ => Map::new(),
        };
        prompts.insert(
            "query".into(),
            json!(cfg.query_prompt.clone().unwrap_or_default()),
        );
        prompts.insert(
            "document".into(),
            json!(cfg.document_prompt.clone().unwrap_or_default()),
        );
        m.insert("prompts".into(), Value::Object(prompts));
        m.entry("default_prompt_name").or_insert(Value::Null);
        m.insert("similarity_fn_name".into(), json!("MaxSim"));
        m.insert("query_prefix".into(), json!(cfg.query_prefix));
        m.insert("document_prefix".into(), json!(cfg.document_prefix));
        m.insert("query_length".into(), json!(cfg.query_length));
        m.insert("document_length".into(), json!(cfg.document_length));
        m.insert(
            "attend_to_expansion_tokens".into(),
            json!(cfg.attend_to_expansion_tokens),
        );
        m.insert("skiplist_words".into(), json!(cfg.skiplist_words));
        m.insert("do_query_expansion".into(), json!(cfg.do_query_expansion));
        m
    }
}
