//! A model directory's fingerprint: which model encoded an embedding store.
//!
//! Contract: [`model_fingerprint`] is `fnv1a64:` + 16 hex digits, computed from the
//! *content* of the files that decide what a checkpoint encodes — never from paths, sizes
//! alone or modification times, so copying or re-downloading a model keeps its
//! fingerprint and two different checkpoints (another training stage, another seed) get
//! different ones. Fed in order: a version tag; for each of `config.json`,
//! `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`,
//! `config_sentence_transformers.json`, `sentence_bert_config.json`, `modules.json` and
//! `artifact.metadata` its name and bytes (or an "absent" marker); the backbone weights
//! file; then for each module directory listed in `modules.json` (e.g. `1_Dense`) its
//! `config.json` and weights. A weights file is digested cheaply: its length, its whole
//! safetensors header (tensor names, dtypes, shapes, offsets; the first 64 KiB of a
//! PyTorch `.bin`), and 64 evenly spaced 4 KiB windows of the data, the last one ending at
//! the end of the file (files under 256 KiB are read whole). Any retrained checkpoint
//! changes values in every window. Encoding overrides given at load time
//! (`--query-length`, prompts) are not part of it.

use crate::weights::weights_file;
use crate::{ModelError, Result};
use colzero_core::hash::Fnv1a;
use colzero_core::CoreError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const TEXT_FILES: [&str; 8] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    "modules.json",
    "artifact.metadata",
];
const WINDOWS: u64 = 64;
const WINDOW: u64 = 4096;
const BIN_HEAD: u64 = 64 * 1024;

/// The fingerprint of the model in `dir` (see the module docs).
pub fn model_fingerprint(dir: &Path) -> Result<String> {
    let mut h = Fnv1a::default();
    h.feed(b"colzero-model-fingerprint-v1\0");
    for name in TEXT_FILES {
        feed_file(&mut h, &dir.join(name), name)?;
    }
    let weights = weights_file(dir)?;
    feed_weights(&mut h, &weights)?;
    if let Ok(text) = std::fs::read_to_string(dir.join("modules.json")) {
        let modules: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::BadFile {
                path: dir.join("modules.json"),
                reason: format!("invalid JSON: {e}"),
            })?;
        for m in modules.as_array().into_iter().flatten() {
            let rel = m.get("path").and_then(|p| p.as_str()).unwrap_or("");
            if rel.is_empty() {
                continue;
            }
            let mdir = dir.join(rel);
            h.feed(rel.as_bytes()).feed(b"\0");
            feed_file(&mut h, &mdir.join("config.json"), "config.json")?;
            for w in ["model.safetensors", "pytorch_model.bin"] {
                let p = mdir.join(w);
                if p.is_file() {
                    feed_weights(&mut h, &p)?;
                }
            }
        }
    }
    Ok(format!("fnv1a64:{:016x}", h.finish()))
}

fn io(path: &Path, e: std::io::Error) -> ModelError {
    ModelError::Core(CoreError::io(path, e))
}

fn feed_file(h: &mut Fnv1a, path: &Path, name: &str) -> Result<()> {
    h.feed(name.as_bytes()).feed(b"\0");
    match std::fs::read(path) {
        Ok(bytes) => {
            h.feed(&(bytes.len() as u64).to_le_bytes()).feed(&bytes);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            h.feed(b"absent");
        }
        Err(e) => return Err(io(path, e)),
    }
    Ok(())
}

fn feed_weights(h: &mut Fnv1a, path: &Path) -> Result<()> {
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let len = f.metadata().map_err(|e| io(path, e))?.len();
    h.feed(b"weights\0").feed(&len.to_le_bytes());
    if len <= WINDOWS * WINDOW {
        let mut all = Vec::with_capacity(len as usize);
        f.read_to_end(&mut all).map_err(|e| io(path, e))?;
        h.feed(&all);
        return Ok(());
    }
    let is_bin = path.extension().is_some_and(|e| e == "bin");
    let head = if is_bin {
        BIN_HEAD
    } else {
        let mut n = [0u8; 8];
        f.read_exact(&mut n).map_err(|e| io(path, e))?;
        8 + u64::from_le_bytes(n)
    }
    .min(len);
    let mut buf = vec![0u8; head as usize];
    f.seek(SeekFrom::Start(0)).map_err(|e| io(path, e))?;
    f.read_exact(&mut buf).map_err(|e| io(path, e))?;
    h.feed(&buf);
    let data = len - head;
    let window = WINDOW.min(data);
    buf.resize(window as usize, 0);
    for i in 0..WINDOWS {
        let start = head + (data - window) * i / (WINDOWS - 1);
        f.seek(SeekFrom::Start(start)).map_err(|e| io(path, e))?;
        f.read_exact(&mut buf).map_err(|e| io(path, e))?;
        h.feed(&buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                copy_dir(&p, &to.join(e.file_name()));
            } else {
                std::fs::copy(&p, to.join(e.file_name())).unwrap();
            }
        }
    }

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert-colbert")
    }

    /// Overwrites 4 bytes at `from_end` bytes before the end of `path`.
    fn poke(path: &Path, from_end: u64) {
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() - from_end as usize;
        let old = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        bytes[at..at + 4].copy_from_slice(&(old + 0.5).to_le_bytes());
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn content_decides_the_fingerprint_not_the_location() {
        let a = model_fingerprint(&fixture()).unwrap();
        assert!(a.starts_with("fnv1a64:") && a.len() == 8 + 16, "{a}");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy");
        copy_dir(&fixture(), &copy);
        assert_eq!(
            model_fingerprint(&copy).unwrap(),
            a,
            "a copy is the same model"
        );

        // one weight of the (large, sampled) backbone file: the last window ends at EOF
        poke(&copy.join("model.safetensors"), 4);
        let b = model_fingerprint(&copy).unwrap();
        assert_ne!(b, a);
        // one weight of the projection head
        copy_dir(&fixture(), &copy);
        poke(&copy.join("1_Dense/model.safetensors"), 40);
        let c = model_fingerprint(&copy).unwrap();
        assert_ne!(c, a);
        assert_ne!(c, b);
        // a setting that changes the encoding
        copy_dir(&fixture(), &copy);
        let st = copy.join("config_sentence_transformers.json");
        let text = std::fs::read_to_string(&st).unwrap();
        std::fs::write(&st, text.replacen('{', "{\"x\": 1, ", 1)).unwrap();
        assert_ne!(model_fingerprint(&copy).unwrap(), a);
    }

    #[test]
    fn a_directory_without_weights_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let msg = model_fingerprint(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("model.safetensors"), "{msg}");
    }
}
