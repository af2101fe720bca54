//! Relevance judgments ([`Qrels`]) and their two file formats.
//!
//! Contract: a qrels maps a query id to `document id -> integer relevance`. Relevance
//! `>= relevance_level` (1 by default) is relevant; 0 is judged non-relevant; a negative
//! value is a judged-but-unusable document (trec_eval's "unjudged in pool"): never
//! relevant, never part of the ideal ranking. Query ids keep the order of their first
//! appearance (BEIR's dict order). Readers report `file:line: reason` for malformed
//! lines, invalid UTF-8 and non-integer scores. A pair repeated with the same relevance
//! is ignored; repeated with a different relevance it is an error.
//!
//! Formats: BEIR TSV (`query-id\tcorpus-id\tscore`, the header line is optional, extra
//! columns are ignored as BEIR does) and TREC (`qid iter docid rel`, whitespace separated).

use crate::error::{EvalError, Result};
use colzero_core::jsonl::Lines;
use std::collections::HashMap;
use std::path::Path;

/// Relevance judgments for a set of queries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Qrels {
    order: Vec<String>,
    judgments: HashMap<String, HashMap<String, i32>>,
}

/// Which qrels file format a reader expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrelsFormat {
    /// BEIR `query-id\tcorpus-id\tscore`, tab separated, optional header.
    BeirTsv,
    /// TREC `qid iter docid rel`, whitespace separated.
    Trec,
}

impl Qrels {
    /// An empty qrels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a judgment; returns the previous relevance of the pair, if any (which is then
    /// replaced).
    pub fn insert(&mut self, query: &str, doc: &str, rel: i32) -> Option<i32> {
        if !self.judgments.contains_key(query) {
            self.order.push(query.to_string());
            self.judgments.insert(query.to_string(), HashMap::new());
        }
        self.judgments
            .get_mut(query)
            .expect("inserted above")
            .insert(doc.to_string(), rel)
    }

    /// Query ids, in order of first appearance.
    pub fn query_ids(&self) -> &[String] {
        &self.order
    }

    /// The judgments of one query.
    pub fn get(&self, query: &str) -> Option<&HashMap<String, i32>> {
        self.judgments.get(query)
    }

    /// The relevance of one pair, if judged.
    pub fn relevance(&self, query: &str, doc: &str) -> Option<i32> {
        self.judgments.get(query)?.get(doc).copied()
    }

    /// True if the query has judgments.
    pub fn contains_query(&self, query: &str) -> bool {
        self.judgments.contains_key(query)
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when there are no judgments.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of (query, document) judgments, whatever their relevance.
    pub fn num_pairs(&self) -> usize {
        self.judgments.values().map(|m| m.len()).sum()
    }

    /// Number of documents of `query` with relevance `>= level`.
    pub fn num_relevant(&self, query: &str, level: i32) -> usize {
        self.get(query)
            .map(|m| m.values().filter(|&&r| r >= level).count())
            .unwrap_or(0)
    }

    /// Reads a qrels file, detecting its format from the first non-blank line: the BEIR
    /// header or exactly 3 tab-separated fields mean BEIR TSV, 4 whitespace-separated
    /// fields mean TREC.
    pub fn read(path: &Path) -> Result<Self> {
        let mut lines = Lines::open(path)?;
        let format = match lines.next() {
            None => QrelsFormat::BeirTsv,
            Some(r) => {
                let (n, line) = r?;
                if is_beir_header(&line) || line.split('\t').count() == 3 {
                    QrelsFormat::BeirTsv
                } else if line.split_whitespace().count() == 4 {
                    QrelsFormat::Trec
                } else {
                    return Err(EvalError::line(
                        path,
                        n,
                        "cannot tell the qrels format: expected `query-id<TAB>corpus-id<TAB>score` (BEIR) or `qid iter docid rel` (TREC)",
                    ));
                }
            }
        };
        Self::read_format(path, format)
    }

    /// Reads a BEIR qrels TSV file.
    pub fn read_beir_tsv(path: &Path) -> Result<Self> {
        Self::read_format(path, QrelsFormat::BeirTsv)
    }

    /// Reads a TREC qrels file.
    pub fn read_trec(path: &Path) -> Result<Self> {
        Self::read_format(path, QrelsFormat::Trec)
    }

    /// Reads a qrels file of the given format.
    pub fn read_format(path: &Path, format: QrelsFormat) -> Result<Self> {
        let mut qrels = Qrels::new();
        let mut first = true;
        for r in Lines::open(path)? {
            let (n, line) = r?;
            let is_first = std::mem::replace(&mut first, false);
            let (q, d, score) = match format {
                QrelsFormat::BeirTsv => {
                    if is_first && is_beir_header(&line) {
                        continue;
                    }
                    let f: Vec<&str> = line.split('\t').collect();
                    if f.len() < 3 {
                        return Err(EvalError::line(
                            path,
                            n,
                            format!(
                                "expected 3 tab-separated fields `query-id corpus-id score`, found {}",
                                f.len()
                            ),
                        ));
                    }
                    (f[0].trim(), f[1].trim(), f[2].trim())
                }
                QrelsFormat::Trec => {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.len() != 4 {
                        return Err(EvalError::line(
                            path,
                            n,
                            format!("expected 4 fields `qid iter docid rel`, found {}", f.len()),
                        ));
                    }
                    (f[0], f[2], f[3])
                }
            };
            if q.is_empty() || d.is_empty() {
                return Err(EvalError::line(path, n, "empty query or document id"));
            }
            let rel: i32 = score.parse().map_err(|_| {
                EvalError::line(
                    path,
                    n,
                    format!("relevance score `{score}` is not an integer"),
                )
            })?;
            if let Some(prev) = qrels.insert(q, d, rel) {
                if prev != rel {
                    return Err(EvalError::line(
                        path,
                        n,
                        format!(
                            "query `{q}` document `{d}` judged again with relevance {rel} (was {prev})"
                        ),
                    ));
                }
            }
        }
        Ok(qrels)
    }
}

fn is_beir_header(line: &str) -> bool {
    let f: Vec<&str> = line.split('\t').map(str::trim).collect();
    f.len() >= 3 && f[0] == "query-id" && f[1] == "corpus-id" && f[2] == "score"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn beir_and_trec_formats_read_the_same_judgments() {
        let beir = file(b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\r\nq0\td9\t2\n");
        let trec = file(b"q1 0 d1 1\nq1 0 d2 0\n\nq0 Q0 d9 2\n");
        let a = Qrels::read(beir.path()).unwrap();
        let b = Qrels::read(trec.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.query_ids(), ["q1", "q0"]);
        assert_eq!(a.relevance("q0", "d9"), Some(2));
        assert_eq!(a.num_pairs(), 3);
        assert_eq!(a.num_relevant("q1", 1), 1);
        // header is optional
        let nohdr = file(b"q1\td1\t1\n");
        assert_eq!(Qrels::read(nohdr.path()).unwrap().num_pairs(), 1);
    }

    #[test]
    fn bad_score_names_file_and_line() {
        let f = file(b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n");
        let msg = Qrels::read_beir_tsv(f.path()).unwrap_err().to_string();
        assert!(msg.contains(&format!("{}:3:", f.path().display())), "{msg}");
        assert!(msg.contains("`high` is not an integer"), "{msg}");
    }

    #[test]
    fn short_lines_non_utf8_and_conflicts_are_errors() {
        let f = file(b"q1\td1\t1\nq1\td2\n");
        let msg = Qrels::read_beir_tsv(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":2: expected 3"), "{msg}");
        let f = file(b"q1 0 d1 1\nq1 0 d\xff 1\n");
        let msg = Qrels::read_trec(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":2: invalid UTF-8"), "{msg}");
        let f = file(b"q1 0 d1 1\nq1 0 d1 1\nq1 0 d1 2\n");
        let msg = Qrels::read_trec(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":3: query `q1` document `d1`"), "{msg}");
        let f = file(b"q1 d1\n");
        assert!(Qrels::read(f.path())
            .unwrap_err()
            .to_string()
            .contains(":1:"));
    }
}
