//! The quickstart bundle: small files embedded in the binary, and their extraction.
//!
//! Contract: [`ENTRIES`] lists every file of `crates/cli/assets/quickstart/` (written by
//! `tools/make_quickstart.py`; provenance and licences in its `NOTICE.md`) with the bytes
//! `include_bytes!` embeds. [`extract`] writes them under `dir` (the extracted layout is
//! the asset tree; `*.gz` entries are gunzipped and lose the suffix), then derives:
//! `tiny-bert/model.safetensors` (fresh BERT weights from [`INIT_SEED`], see
//! `colzero_model::init`) and `kd/` (PyLate KD data: `queries.jsonl`, `documents.jsonl`
//! built from the bundled SciFact subset and `train.jsonl` = the teacher scores). The
//! whole `dir` is built atomically; a `bundle.json` marker records [`fingerprint`], and
//! an existing `dir` with the same fingerprint is left untouched ([`extract`] returns
//! false). [`check`] validates the embedded files without writing anything.

use anyhow::{bail, Context, Result};
use colzero_core::fsutil::{atomic_dir, atomic_write_bytes};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// One embedded file: its path in the asset tree and its bytes.
pub struct Entry {
    pub path: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! entry {
    ($p:literal) => {
        Entry {
            path: $p,
            bytes: include_bytes!(concat!("../../../assets/quickstart/", $p)),
        }
    };
}

/// Every embedded file.
pub const ENTRIES: &[Entry] = &[
    entry!("NOTICE.md"),
    entry!("scifact-2k/corpus.jsonl.gz"),
    entry!("scifact-2k/queries.jsonl.gz"),
    entry!("scifact-2k/qrels/train.tsv"),
    entry!("scifact-2k/qrels/test.tsv"),
    entry!("tiny-bert/config.json"),
    entry!("tiny-bert/tokenizer.json.gz"),
    entry!("tiny-bert/tokenizer_config.json"),
    entry!("tiny-bert/special_tokens_map.json"),
    entry!("tiny-bert/modules.json"),
    entry!("tiny-bert/sentence_bert_config.json"),
    entry!("tiny-bert/1_Pooling/config.json"),
    entry!("kd/scores.jsonl.gz"),
];

/// Seed of the base model's fresh weights.
pub const INIT_SEED: u64 = 42;

/// FNV-1a over the entries' paths and bytes and the init seed: changes whenever the
/// embedded files do.
pub fn fingerprint() -> String {
    let mut h = colzero_core::hash::Fnv1a::default();
    for e in ENTRIES {
        h.feed(e.path.as_bytes())
            .feed(&(e.bytes.len() as u64).to_le_bytes())
            .feed(e.bytes);
    }
    h.feed(&INIT_SEED.to_le_bytes());
    format!("{:016x}", h.finish())
}

/// The contents of an entry, gunzipped when its name ends in `.gz`.
pub fn contents(e: &Entry) -> Result<Vec<u8>> {
    if !e.path.ends_with(".gz") {
        return Ok(e.bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(e.bytes)
        .read_to_end(&mut out)
        .with_context(|| format!("embedded {}: not valid gzip", e.path))?;
    Ok(out)
}

/// An embedded file's text, by its extracted path (without `.gz`).
pub fn text(path: &str) -> Result<String> {
    let e = ENTRIES
        .iter()
        .find(|e| e.path.strip_suffix(".gz").unwrap_or(e.path) == path)
        .with_context(|| format!("no embedded file {path}"))?;
    String::from_utf8(contents(e)?).with_context(|| format!("embedded {path}: not UTF-8"))
}

#[derive(Deserialize)]
struct KdRow {
    query_id: String,
    document_ids: Vec<String>,
    scores: Vec<f64>,
}

#[derive(Deserialize)]
struct BeirText {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    fingerprint: String,
}

/// Sizes found by [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct BundleStats {
    pub documents: usize,
    pub queries: usize,
    pub train_queries: usize,
    pub test_queries: usize,
    pub kd_rows: usize,
    /// Embedded (compressed) bytes.
    pub bytes: usize,
}

fn parse_jsonl<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<Vec<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("embedded {name}:{}", i + 1)))
        .collect()
}

fn qrels_queries(name: &str) -> Result<(HashSet<String>, HashSet<String>)> {
    let t = text(name)?;
    let (mut q, mut d) = (HashSet::new(), HashSet::new());
    for (i, line) in t.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 3 {
            bail!("embedded {name}:{}: expected 3 columns", i + 1);
        }
        q.insert(cols[0].to_string());
        d.insert(cols[1].to_string());
    }
    Ok((q, d))
}

/// Validates the embedded files: every file decodes, every judged document and query
/// exists, KD rows name train queries only (never a test-only query) and known
/// documents with one score per document.
pub fn check() -> Result<BundleStats> {
    let docs: Vec<BeirText> = parse_jsonl("corpus.jsonl", &text("scifact-2k/corpus.jsonl")?)?;
    let queries: Vec<BeirText> = parse_jsonl("queries.jsonl", &text("scifact-2k/queries.jsonl")?)?;
    let doc_ids: HashSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
    let query_ids: HashSet<&str> = queries.iter().map(|q| q.id.as_str()).collect();
    let (train_q, train_d) = qrels_queries("scifact-2k/qrels/train.tsv")?;
    let (test_q, test_d) = qrels_queries("scifact-2k/qrels/test.tsv")?;
    for d in train_d.iter().chain(&test_d) {
        if !doc_ids.contains(d.as_str()) {
            bail!("embedded qrels name document {d}, absent from corpus.jsonl");
        }
    }
    for q in train_q.iter().chain(&test_q) {
        if !query_ids.contains(q.as_str()) {
            bail!("embedded qrels name query {q}, absent from queries.jsonl");
        }
    }
    let kd: Vec<KdRow> = parse_jsonl("kd/scores.jsonl", &text("kd/scores.jsonl")?)?;
    for (i, r) in kd.iter().enumerate() {
        if !train_q.contains(&r.query_id) {
            bail!(
                "embedded kd/scores.jsonl:{}: query {} is not a train query",
                i + 1,
                r.query_id
            );
        }
        if r.document_ids.len() != r.scores.len() || r.document_ids.is_empty() {
            bail!("embedded kd/scores.jsonl:{}: ids and scores differ", i + 1);
        }
        if let Some(d) = r
            .document_ids
            .iter()
            .find(|d| !doc_ids.contains(d.as_str()))
        {
            bail!("embedded kd/scores.jsonl:{}: unknown document {d}", i + 1);
        }
    }
    for e in ENTRIES {
        if e.path.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(e.bytes)
                .with_context(|| format!("embedded {}: invalid JSON", e.path))?;
        }
    }
    serde_json::from_str::<serde_json::Value>(&text("tiny-bert/tokenizer.json")?)
        .context("embedded tiny-bert/tokenizer.json: invalid JSON")?;
    Ok(BundleStats {
        documents: docs.len(),
        queries: queries.len(),
        train_queries: train_q.len(),
        test_queries: test_q.len(),
        kd_rows: kd.len(),
        bytes: ENTRIES.iter().map(|e| e.bytes.len()).sum(),
    })
}

/// The KD directory files: `(queries.jsonl, documents.jsonl, train.jsonl)` texts.
fn kd_files() -> Result<(String, String, String)> {
    let rows: Vec<KdRow> = parse_jsonl("kd/scores.jsonl", &text("kd/scores.jsonl")?)?;
    let queries: Vec<BeirText> = parse_jsonl("queries.jsonl", &text("scifact-2k/queries.jsonl")?)?;
    let qtext: HashMap<&str, &str> = queries
        .iter()
        .map(|q| (q.id.as_str(), q.text.as_str()))
        .collect();
    let docs: Vec<BeirText> = parse_jsonl("corpus.jsonl", &text("scifact-2k/corpus.jsonl")?)?;
    let mut q_out = String::new();
    let mut seen = HashSet::new();
    for r in &rows {
        if seen.insert(r.query_id.as_str()) {
            let t = qtext
                .get(r.query_id.as_str())
                .with_context(|| format!("KD query {} not in queries.jsonl", r.query_id))?;
            q_out += &serde_json::json!({"query_id": r.query_id, "text": t}).to_string();
            q_out.push('\n');
        }
    }
    let mut d_out = String::new();
    for d in &docs {
        // PyLate / BEIR: f"{title} {text}".strip()
        let t = colzero_eval::py_strip(&format!("{} {}", d.title, d.text)).to_string();
        d_out += &serde_json::json!({"document_id": d.id, "text": t}).to_string();
        d_out.push('\n');
    }
    Ok((q_out, d_out, text("kd/scores.jsonl")?))
}

/// Extracts the bundle into `dir` (see the module docs). Returns false when `dir`
/// already holds this exact bundle.
pub fn extract(dir: &Path) -> Result<bool> {
    let marker = dir.join("bundle.json");
    let fp = fingerprint();
    if let Ok(t) = std::fs::read_to_string(&marker) {
        if serde_json::from_str::<Marker>(&t).is_ok_and(|m| m.fingerprint == fp) {
            return Ok(false);
        }
    }
    atomic_dir(dir, |tmp: &Path| -> Result<()> {
        for e in ENTRIES {
            let rel = e.path.strip_suffix(".gz").unwrap_or(e.path);
            let p = tmp.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            atomic_write_bytes(&p, &contents(e)?)?;
        }
        std::fs::remove_file(tmp.join("kd/scores.jsonl")).context("removing kd/scores.jsonl")?;
        let (q, d, t) = kd_files()?;
        atomic_write_bytes(&tmp.join("kd/queries.jsonl"), q.as_bytes())?;
        atomic_write_bytes(&tmp.join("kd/documents.jsonl"), d.as_bytes())?;
        atomic_write_bytes(&tmp.join("kd/train.jsonl"), t.as_bytes())?;
        colzero_model::init::write_scratch_bert(&tmp.join("tiny-bert"), INIT_SEED)
            .context("drawing the base model's weights")?;
        let m = serde_json::to_vec_pretty(&Marker { fingerprint: fp })?;
        atomic_write_bytes(&tmp.join("bundle.json"), &m)?;
        Ok(())
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_is_well_formed() {
        let s = check().unwrap();
        // The counts NOTICE.md states.
        assert_eq!(s.documents, 2000);
        assert_eq!(s.queries, 1109);
        assert_eq!(s.train_queries, 809);
        assert_eq!(s.test_queries, 300);
        assert_eq!(s.kd_rows, 919);
        assert!(s.bytes < 2_000_000, "bundle is {} bytes", s.bytes);
        let notice = text("NOTICE.md").unwrap();
        assert!(notice.contains("CC BY-NC 2.0"), "{notice}");
        let fp = fingerprint();
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, fingerprint());
    }

    #[test]
    fn extract_builds_loadable_model_and_data_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("assets");
        assert!(extract(&dir).unwrap());
        assert!(!extract(&dir).unwrap(), "same bundle: left untouched");
        for rel in [
            "NOTICE.md",
            "scifact-2k/corpus.jsonl",
            "tiny-bert/tokenizer.json",
            "tiny-bert/model.safetensors",
            "kd/train.jsonl",
        ] {
            assert!(dir.join(rel).is_file(), "{rel} missing");
        }
        assert!(!dir.join("kd/scores.jsonl").exists());
        let test = colzero_eval::BeirDataset::load(&dir.join("scifact-2k"), "test").unwrap();
        assert_eq!((test.corpus.len(), test.queries.len()), (2000, 300));
        let kd = colzero_train::data::KdDataset::open(&dir.join("kd"), 8).unwrap();
        assert_eq!(kd.sizes(), vec![919]);
        // The base model: untrained weights drawn from INIT_SEED, loadable both ways.
        let base = dir.join("tiny-bert");
        let opts = colzero_model::LoadOptions::default();
        let m = colzero_model::ColBERT::from_dense(&base, 64, 1, &opts).unwrap();
        let v = m
            .encode(
                &["Vitamin D deficiency and bone density".to_string()],
                colzero_model::InputKind::Document,
                &Default::default(),
            )
            .unwrap();
        assert_eq!(v[0].dim(), 64);
        assert!(v[0].n_tokens() >= 6, "{} tokens", v[0].n_tokens());
        let d = colzero_model::DenseEncoder::load(&base, &opts).unwrap();
        let e = d.encode(&["stem cells".to_string()]).unwrap();
        assert_eq!(e[0].len(), 128);
        let norm: f32 = e[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}
