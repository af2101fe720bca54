//! BEIR datasets: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`.
//!
//! Contract (BEIR's `GenericDataLoader` + PyLate's `load_beir`):
//! - corpus lines are `{"_id", "title", "text", ...}`; the corpus keeps file order; a
//!   document's encoded text is [`Document::full_text`] = `f"{title} {text}".strip()`
//!   with Python's whitespace set. A missing or null title counts as empty. Duplicate
//!   document ids are an error.
//! - the split's qrels are BEIR TSV or TREC, recognised explicitly ([`Qrels::read`]); a
//!   UTF-8 byte-order mark at the start of any file is ignored.
//! - only the queries that appear in the split's qrels are loaded, in qrels order (BEIR
//!   filters `queries` by `qrels`); query text is kept verbatim. A qrels query missing
//!   from `queries.jsonl` is an error naming the qrels file and line.
//! - ids may be JSON strings or integers (integers are written in decimal).
//! - every malformed line is reported as `file:line: reason` (JSON, UTF-8, missing field).

use crate::error::{EvalError, Result};
use crate::qrels::Qrels;
use crate::text::document_text;
use colzero_core::jsonl::{read_jsonl, Lines};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One corpus document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub text: String,
}

impl Document {
    /// The text PyLate encodes: `f"{title} {text}".strip()`.
    pub fn full_text(&self) -> String {
        document_text(&self.title, &self.text)
    }
}

/// One query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub id: String,
    pub text: String,
}

/// A BEIR dataset split, loaded in memory.
#[derive(Debug, Clone)]
pub struct BeirDataset {
    /// The dataset directory.
    pub dir: PathBuf,
    /// The split name (`test`, `dev`, `train`, ...).
    pub split: String,
    /// All documents, in file order.
    pub corpus: Vec<Document>,
    /// The split's queries, in qrels order.
    pub queries: Vec<Query>,
    /// The split's judgments.
    pub qrels: Qrels,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Str(String),
    Int(i64),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Str(s) => s,
            Id::Int(i) => i.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct RawDoc {
    #[serde(rename = "_id")]
    id: Id,
    #[serde(default)]
    title: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct RawQuery {
    #[serde(rename = "_id")]
    id: Id,
    text: String,
}

impl BeirDataset {
    /// Loads `dir/corpus.jsonl`, `dir/queries.jsonl` and `dir/qrels/{split}.tsv`.
    pub fn load(dir: &Path, split: &str) -> Result<Self> {
        let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
        if !qrels_path.is_file() {
            return Err(EvalError::BadFile {
                path: qrels_path,
                reason: format!("no qrels for split `{split}` (expected qrels/{split}.tsv)"),
            });
        }
        let qrels = Qrels::read(&qrels_path)?;
        let queries = load_split_queries(&dir.join("queries.jsonl"), &qrels, &qrels_path)?;
        let corpus = load_corpus(&dir.join("corpus.jsonl"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            split: split.to_string(),
            corpus,
            queries,
            qrels,
        })
    }

    /// `(id, full_text)` of every document, in corpus order.
    pub fn documents(&self) -> impl Iterator<Item = (&str, String)> {
        self.corpus.iter().map(|d| (d.id.as_str(), d.full_text()))
    }
}

/// Reads a BEIR `corpus.jsonl`, keeping file order.
pub fn load_corpus(path: &Path) -> Result<Vec<Document>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in read_jsonl::<RawDoc>(path)? {
        let (n, d) = r?;
        let id = d.id.into_string();
        if !seen.insert(id.clone()) {
            return Err(EvalError::line(
                path,
                n,
                format!("duplicate document id `{id}`"),
            ));
        }
        out.push(Document {
            id,
            title: d.title.unwrap_or_default(),
            text: d.text,
        });
    }
    Ok(out)
}

/// Reads every query of a BEIR `queries.jsonl`, keeping file order.
pub fn load_queries(path: &Path) -> Result<Vec<Query>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in read_jsonl::<RawQuery>(path)? {
        let (n, q) = r?;
        let id = q.id.into_string();
        if !seen.insert(id.clone()) {
            return Err(EvalError::line(
                path,
                n,
                format!("duplicate query id `{id}`"),
            ));
        }
        out.push(Query { id, text: q.text });
    }
    Ok(out)
}

/// The queries of `queries.jsonl` that appear in `qrels`, in qrels order.
fn load_split_queries(path: &Path, qrels: &Qrels, qrels_path: &Path) -> Result<Vec<Query>> {
    let mut all: HashMap<String, String> = load_queries(path)?
        .into_iter()
        .map(|q| (q.id, q.text))
        .collect();
    qrels
        .query_ids()
        .iter()
        .map(|id| match all.remove(id) {
            Some(text) => Ok(Query {
                id: id.clone(),
                text,
            }),
            None => {
                let reason = format!("query id `{id}` is not in {}", path.display());
                Err(match first_line_of_query(qrels_path, id) {
                    Some(line) => EvalError::line(qrels_path, line, reason),
                    None => EvalError::BadFile {
                        path: qrels_path.to_path_buf(),
                        reason,
                    },
                })
            }
        })
        .collect()
}

/// The first line of a qrels file (BEIR or TREC) that judges `query` (for error messages).
fn first_line_of_query(qrels_path: &Path, query: &str) -> Option<usize> {
    let first_field = |l: &str| -> Option<String> {
        if l.contains('\t') {
            l.split('\t').next().map(|f| f.trim().to_string())
        } else {
            l.split_whitespace().next().map(str::to_string)
        }
    };
    Lines::open(qrels_path)
        .ok()?
        .filter_map(|r| r.ok())
        .find(|(_, l)| first_field(l).as_deref() == Some(query))
        .map(|(n, _)| n)
}

/// Streams a BEIR `corpus.jsonl` document by document (constant memory, for corpora too
/// large to hold), with the same validation as [`load_corpus`] except the duplicate-id
/// check.
pub fn stream_corpus(path: &Path) -> Result<impl Iterator<Item = Result<Document>>> {
    Ok(read_jsonl::<RawDoc>(path)?.map(|r| {
        let (_, d) = r?;
        Ok(Document {
            id: d.id.into_string(),
            title: d.title.unwrap_or_default(),
            text: d.text,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, bytes: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn tiny(dir: &Path) {
        write(
            dir,
            "corpus.jsonl",
            b"{\"_id\":\"d2\",\"title\":\"T\",\"text\":\" body \",\"metadata\":{}}\n{\"_id\":7,\"text\":\"no title\"}\n{\"_id\":\"d1\",\"title\":null,\"text\":\"x\"}\n",
        );
        write(
            dir,
            "queries.jsonl",
            b"{\"_id\":\"a\",\"text\":\"qa\"}\n{\"_id\":\"b\",\"text\":\" qb \"}\n{\"_id\":\"c\",\"text\":\"qc\"}\n",
        );
        write(
            dir,
            "qrels/test.tsv",
            b"query-id\tcorpus-id\tscore\nc\td1\t1\na\t7\t2\nc\td2\t0\n",
        );
        write(
            dir,
            "qrels/dev.tsv",
            b"query-id\tcorpus-id\tscore\nb\td1\t1\n",
        );
    }

    #[test]
    fn loads_split_queries_in_qrels_order_and_corpus_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        let ds = BeirDataset::load(dir.path(), "test").unwrap();
        let ids: Vec<_> = ds.corpus.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["d2", "7", "d1"]);
        let texts: Vec<_> = ds.documents().map(|(_, t)| t).collect();
        assert_eq!(texts, ["T  body", "no title", "x"]);
        let streamed: Vec<Document> = stream_corpus(&dir.path().join("corpus.jsonl"))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(streamed, ds.corpus);
        let q: Vec<_> = ds.queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(q, ["c", "a"]);
        assert_eq!(ds.qrels.relevance("a", "7"), Some(2));
        let dev = BeirDataset::load(dir.path(), "dev").unwrap();
        assert_eq!(
            dev.queries,
            vec![Query {
                id: "b".into(),
                text: " qb ".into()
            }]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        let msg = BeirDataset::load(dir.path(), "train")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("qrels/train.tsv") && msg.contains("split `train`"),
            "{msg}"
        );

        write(
            dir.path(),
            "corpus.jsonl",
            b"{\"_id\":\"d1\",\"text\":\"x\"}\n{\"_id\":\"d2\",\"text\":\n",
        );
        let msg = BeirDataset::load(dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("corpus.jsonl:2: invalid JSON"), "{msg}");

        write(
            dir.path(),
            "corpus.jsonl",
            b"{\"_id\":\"d1\",\"text\":\"x\"}\n{\"_id\":\"d2\",\"text\":\"\xc3\x28\"}\n",
        );
        let msg = BeirDataset::load(dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("corpus.jsonl:2: invalid UTF-8"), "{msg}");

        write(
            dir.path(),
            "corpus.jsonl",
            b"{\"_id\":\"d1\",\"text\":\"x\"}\n{\"_id\":\"d1\",\"text\":\"y\"}\n",
        );
        let msg = BeirDataset::load(dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("corpus.jsonl:2: duplicate document id `d1`"),
            "{msg}"
        );

        write(
            dir.path(),
            "corpus.jsonl",
            b"{\"_id\":\"d1\",\"title\":\"x\"}\n",
        );
        let msg = BeirDataset::load(dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("corpus.jsonl:1:") && msg.contains("text"),
            "{msg}"
        );

        tiny(dir.path());
        write(
            dir.path(),
            "qrels/test.tsv",
            b"query-id\tcorpus-id\tscore\nzz\td1\t1\n",
        );
        let msg = BeirDataset::load(dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("test.tsv:2: query id `zz` is not in"), "{msg}");

        write(dir.path(), "qrels/test.tsv", b"c 0 d1 1\nzz 0 d1 1\n");
        let msg = BeirDataset::load(dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("test.tsv:2: query id `zz` is not in"), "{msg}");
    }

    #[test]
    fn trec_qrels_with_header_and_byte_order_marks_load() {
        // Regression (issue 16): a 4-column TREC qrels with a header was read as BEIR TSV
        // (document = iter column, score = document column): all-zero metrics.
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        write(
            dir.path(),
            "qrels/test.tsv",
            b"\xEF\xBB\xBFquery-id\t0\tcorpus-id\tscore\nc\t0\td1\t1\na\t0\t7\t2\n",
        );
        let mut corpus = b"\xEF\xBB\xBF".to_vec();
        corpus.extend_from_slice(&std::fs::read(dir.path().join("corpus.jsonl")).unwrap());
        write(dir.path(), "corpus.jsonl", &corpus);
        let mut queries = b"\xEF\xBB\xBF".to_vec();
        queries.extend_from_slice(&std::fs::read(dir.path().join("queries.jsonl")).unwrap());
        write(dir.path(), "queries.jsonl", &queries);
        let ds = BeirDataset::load(dir.path(), "test").unwrap();
        assert_eq!(ds.qrels.relevance("a", "7"), Some(2));
        assert_eq!(ds.qrels.relevance("c", "d1"), Some(1));
        assert_eq!(ds.qrels.num_pairs(), 2);
        assert_eq!(ds.corpus[0].id, "d2");
        assert_eq!(ds.queries[0].id, "c");
        assert_eq!(ds.queries[1].text, "qa");
    }
}
