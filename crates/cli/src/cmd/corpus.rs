//! Streaming corpus input for the indexing commands.
//!
//! Contract: a corpus is a BEIR directory (its `corpus.jsonl`) or a JSONL file whose lines
//! are `{"_id"|"id", "title"?, "text"}`; the text used is `f"{title} {text}".strip()`
//! (PyLate's BEIR convention). Reading streams: memory does not grow with the corpus.
//! Malformed lines fail with `file:line: reason`. A reader that needs two passes checks
//! [`require_rereadable`] first.

use anyhow::Result;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct RawDoc {
    #[serde(alias = "_id")]
    id: serde_json::Value,
    #[serde(default)]
    title: Option<String>,
    text: String,
}

/// The JSONL file behind a corpus argument.
pub fn corpus_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("corpus.jsonl")
    } else {
        path.to_path_buf()
    }
}

/// Refuses a corpus that cannot be read twice — a pipe, FIFO, `/dev/stdin` fed by a pipe,
/// a terminal — for `who`, which streams it twice (once to count and sample, once to
/// encode). Re-reading a pipe would find it empty ("training sample has no tokens").
pub fn require_rereadable(path: &Path, who: &str) -> Result<()> {
    let file = corpus_file(path);
    let meta = std::fs::metadata(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{}: not a regular file (a pipe, FIFO or device); {who} reads the corpus twice, \
             so write it to a file first and pass that file",
            file.display()
        );
    }
    Ok(())
}

/// Streams `(id, text)` pairs of a corpus (see module docs).
pub fn stream(path: &Path) -> Result<impl Iterator<Item = Result<(String, String)>>> {
    let file = corpus_file(path);
    let f2 = file.clone();
    Ok(
        colzero_core::jsonl::read_jsonl::<RawDoc>(&file)?.map(move |r| {
            let (line, d) = r?;
            let id = match d.id {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => anyhow::bail!(
                    "{}:{line}: id must be a string or number, found {other}",
                    f2.display()
                ),
            };
            let text = colzero_eval::document_text(d.title.as_deref().unwrap_or(""), &d.text);
            Ok((id, text))
        }),
    )
}
