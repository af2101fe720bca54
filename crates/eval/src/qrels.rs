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
//! Formats, recognised explicitly (never by guessing columns): BEIR TSV
//! (`query-id\tcorpus-id\tscore`, exactly 3 tab-separated fields) and TREC
//! (`qid iter docid rel`, exactly 4 whitespace-separated fields). Either may start with a
//! header line (e.g. `query-id corpus-id score`, `qid iter docid rel`,
//! `query-id 0 corpus-id score`), recognised by its relevance column being a name such as
//! `score`/`rel`. A line with another number of fields is an error naming `file:line`, so
//! a 4-column file is never read with the wrong columns. A UTF-8 byte-order mark is
//! ignored ([`colzero_core::jsonl::Lines`]).

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

    /// Reads a qrels file, recognising its format from the first non-blank line: exactly
    /// 3 tab-separated fields mean BEIR TSV, exactly 4 whitespace-separated fields mean
    /// TREC; either may start with a header line. Anything else is an error naming the
    /// line. An empty file is an empty qrels.
    pub fn read(path: &Path) -> Result<Self> {
        let mut lines = Lines::open(path)?;
        let format = match lines.next() {
            None => QrelsFormat::BeirTsv,
            Some(r) => {
                let (n, line) = r?;
                detect_format(&line).ok_or_else(|| {
                    EvalError::line(
                        path,
                        n,
                        format!(
                            "cannot tell the qrels format of `{}`: expected 3 tab-separated fields \
                             `query-id corpus-id score` (BEIR) or 4 whitespace-separated fields \
                             `qid iter docid rel` (TREC)",
                            line.trim()
                        ),
                    )
                })?
            }
        };
        Self::read_format(path, format)
    }

    /// Reads a BEIR qrels TSV file (exactly 3 tab-separated fields per line).
    pub fn read_beir_tsv(path: &Path) -> Result<Self> {
        Self::read_format(path, QrelsFormat::BeirTsv)
    }

    /// Reads a TREC qrels file (exactly 4 whitespace-separated fields per line).
    pub fn read_trec(path: &Path) -> Result<Self> {
        Self::read_format(path, QrelsFormat::Trec)
    }

    /// Reads a qrels file of the given format. The first line may be a header: its
    /// relevance field is one of `score`, `rel`, `relevance`, `label`, `judgment`.
    pub fn read_format(path: &Path, format: QrelsFormat) -> Result<Self> {
        let mut qrels = Qrels::new();
        let mut first = true;
        for r in Lines::open(path)? {
            let (n, line) = r?;
            let is_first = std::mem::replace(&mut first, false);
            let fields = split_fields(&line, format);
            let want = format.columns();
            if fields.len() != want {
                return Err(EvalError::line(
                    path,
                    n,
                    format!(
                        "expected {want} {}, found {}{}",
                        format.describe(),
                        fields.len(),
                        format.hint(fields.len(), &line)
                    ),
                ));
            }
            let (q, d, score) = match format {
                QrelsFormat::BeirTsv => (fields[0], fields[1], fields[2]),
                QrelsFormat::Trec => (fields[0], fields[2], fields[3]),
            };
            if is_first && is_header_word(score) {
                continue;
            }
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

impl QrelsFormat {
    fn columns(self) -> usize {
        match self {
            QrelsFormat::BeirTsv => 3,
            QrelsFormat::Trec => 4,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            QrelsFormat::BeirTsv => "tab-separated fields `query-id corpus-id score` (BEIR)",
            QrelsFormat::Trec => "whitespace-separated fields `qid iter docid rel` (TREC)",
        }
    }

    /// A hint when a line looks like the other format.
    fn hint(self, found: usize, line: &str) -> &'static str {
        match self {
            QrelsFormat::BeirTsv if line.split_whitespace().count() == 4 => {
                "; this line looks like TREC `qid iter docid rel`: one file must use one format"
            }
            QrelsFormat::Trec if found == 3 && line.split('\t').count() == 3 => {
                "; this line looks like BEIR `query-id corpus-id score`: one file must use one format"
            }
            _ => "",
        }
    }
}

/// The fields of one qrels line (trailing whitespace ignored, BEIR fields trimmed).
fn split_fields(line: &str, format: QrelsFormat) -> Vec<&str> {
    let line = line.trim_end();
    match format {
        QrelsFormat::BeirTsv => line.split('\t').map(str::trim).collect(),
        QrelsFormat::Trec => line.split_whitespace().collect(),
    }
}

/// The format a first line (header or data) belongs to, if any.
fn detect_format(line: &str) -> Option<QrelsFormat> {
    if split_fields(line, QrelsFormat::BeirTsv).len() == 3 {
        Some(QrelsFormat::BeirTsv)
    } else if split_fields(line, QrelsFormat::Trec).len() == 4 {
        Some(QrelsFormat::Trec)
    } else {
        None
    }
}

/// True for the relevance-column names of qrels headers (`score`, `rel`, ...).
fn is_header_word(field: &str) -> bool {
    ["score", "rel", "relevance", "label", "judgment"]
        .iter()
        .any(|w| field.eq_ignore_ascii_case(w))
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

    #[test]
    fn trec_with_header_and_numeric_ids_reads_the_right_columns() {
        // Regression (issue 16): a TREC file with a header, read as BEIR, took the iter
        // column as the document and the document as the score: all-zero metrics.
        let want = {
            let mut q = Qrels::new();
            q.insert("q1", "17", 1);
            q.insert("q1", "4", 0);
            q.insert("q2", "9", 2);
            q
        };
        for bytes in [
            &b"query-id\t0\tcorpus-id\tscore\nq1\t0\t17\t1\nq1\t0\t4\t0\nq2\t0\t9\t2\n"[..],
            b"qid iter docid rel\nq1 0 17 1\nq1 0 4 0\nq2 Q0 9 2\n",
            b"\xEF\xBB\xBFq1 0 17 1\nq1 0 4 0\nq2 0 9 2\n",
            b"\xEF\xBB\xBFquery-id\tcorpus-id\tscore\nq1\t17\t1\nq1\t4\t0\nq2\t9\t2\n",
            b"q1\t17\t1\nq1\t4\t0\nq2\t9\t2",
        ] {
            let f = file(bytes);
            assert_eq!(Qrels::read(f.path()).unwrap(), want, "{bytes:?}");
        }
    }

    #[test]
    fn a_file_mixing_or_missing_formats_is_an_error_naming_the_line() {
        // BEIR header then TREC rows: the old reader took columns 1-3 of each row
        let f = file(b"query-id\tcorpus-id\tscore\nq1\t0\t17\t1\n");
        let msg = Qrels::read(f.path()).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{}:2: expected 3", f.path().display()))
                && msg.contains("looks like TREC"),
            "{msg}"
        );
        let msg = Qrels::read_beir_tsv(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":2: expected 3"), "{msg}");
        // TREC then a BEIR row
        let f = file(b"q1 0 d1 1\nq2\td2\t1\n");
        let msg = Qrels::read(f.path()).unwrap_err().to_string();
        assert!(
            msg.contains(":2: expected 4") && msg.contains("looks like BEIR"),
            "{msg}"
        );
        // five columns, or two: neither format
        for bytes in [
            &b"q1 0 d1 1 extra\n"[..],
            b"q1\td1\t1\textra\t2\n",
            b"q1 d1\n",
        ] {
            let f = file(bytes);
            let msg = Qrels::read(f.path()).unwrap_err().to_string();
            assert!(msg.contains(":1: cannot tell the qrels format"), "{msg}");
        }
        // a first line that is not a header and not a judgment
        let f = file(b"q1\td1\thigh\n");
        let msg = Qrels::read(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":1: relevance score `high`"), "{msg}");
        // a header is only accepted on the first line
        let f = file(b"q1\td1\t1\nquery-id\tcorpus-id\tscore\n");
        let msg = Qrels::read(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":2: relevance score `score`"), "{msg}");
    }
}
