//! [`Bm25Index`]: framework-free Okapi BM25 over an in-memory inverted index, for hard
//! negative mining and lexical baselines.
//!
//! Contract:
//! - Analyzer ([`Analyzer`]): the text is split into maximal runs of Unicode alphanumeric
//!   characters (`char::is_alphanumeric`: letters, marks of alphabetic scripts, digits;
//!   everything else, `_` included, separates tokens), each run is lower-cased
//!   (`str::to_lowercase`), then optionally English stopwords are removed (Lucene's
//!   33-word `EnglishAnalyzer` default set, [`ENGLISH_STOPWORDS`], as Anserini uses) and
//!   optionally each token is stemmed with the Snowball English (Porter2) stemmer of the
//!   `rust-stemmers` crate. Defaults: no stopwords, no stemming.
//! - Scoring, for a query with term frequencies `qtf(t)` over the analysed query tokens:
//!   `score(q, d) = Σ_t qtf(t) · idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))`
//!   with `idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))` (Lucene's always-positive
//!   idf), `|d|` the number of analysed tokens of `d`, `avgdl` their mean over the corpus,
//!   `N` the number of documents. Repeated query terms count as often as they occur
//!   (Anserini's bag-of-words query). Terms absent from the corpus contribute nothing.
//!   Defaults `k1 = 0.9`, `b = 0.4` (Anserini/Pyserini's BEIR "flat" settings). Sums are
//!   accumulated in f64 in ascending term-id order, then rounded to f32. Unlike Lucene,
//!   document lengths are exact (Lucene stores them lossily in one byte).
//! - Hits contain only documents sharing at least one term with the query, ordered by
//!   score descending, ties by external id ascending (documents are held sorted by id),
//!   the same order as `colzero_core::ranking`. Batch search is parallel over queries
//!   (rayon); results do not depend on the thread count.
//! - Errors: duplicate ids and invalid parameters are [`IndexError`]s, never panics.

use crate::error::{IndexError, Result};
use colzero_core::Hit;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Lucene's default English stopword set (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`).
pub const ENGLISH_STOPWORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// How text becomes terms (see module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Analyzer {
    /// Drop [`ENGLISH_STOPWORDS`] (after lower-casing, before stemming).
    pub stopwords: bool,
    /// Stem with Snowball English (Porter2).
    pub stem: bool,
}

impl Analyzer {
    /// Lucene/Anserini-like English analysis: stopwords removed and Porter2 stemming.
    pub fn english() -> Self {
        Self {
            stopwords: true,
            stem: true,
        }
    }

    /// The analysed tokens of `text`, in order.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let stemmer = self
            .stem
            .then(|| rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English));
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .filter(|t| !(self.stopwords && ENGLISH_STOPWORDS.contains(&t.as_str())))
            .map(|t| match &stemmer {
                Some(s) => s.stem(&t).into_owned(),
                None => t,
            })
            .collect()
    }
}

/// BM25 free parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    /// Term-frequency saturation (>= 0).
    pub k1: f64,
    /// Length normalisation strength, in [0, 1].
    pub b: f64,
}

impl Default for Bm25Params {
    /// Anserini/Pyserini BEIR defaults: `k1 = 0.9`, `b = 0.4`.
    fn default() -> Self {
        Self { k1: 0.9, b: 0.4 }
    }
}

impl Bm25Params {
    fn validate(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(IndexError::Invalid(format!(
                "bm25 k1 must be finite and >= 0, got {}",
                self.k1
            )));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(IndexError::Invalid(format!(
                "bm25 b must be in [0, 1], got {}",
                self.b
            )));
        }
        Ok(())
    }
}

/// In-memory inverted index with BM25 scoring (see module docs).
#[derive(Debug, Clone)]
pub struct Bm25Index {
    analyzer: Analyzer,
    params: Bm25Params,
    /// External ids, sorted ascending (document index = rank in id order).
    ids: Vec<String>,
    lookup: HashMap<String, u32>,
    doc_len: Vec<u32>,
    avgdl: f64,
    vocab: HashMap<String, u32>,
    /// Per term: `(document, tf)` in ascending document order.
    postings: Vec<Vec<(u32, u32)>>,
    /// Per term: its idf.
    idf: Vec<f64>,
    /// Per document: `k1 · (1 − b + b·|d|/avgdl)`.
    norm: Vec<f64>,
}

impl Bm25Index {
    /// Indexes `(id, text)` pairs (any order; tokenised in parallel). Fails on duplicate
    /// ids or invalid parameters. An empty corpus gives an index that finds nothing.
    pub fn build<I, S, T>(docs: I, analyzer: Analyzer, params: Bm25Params) -> Result<Self>
    where
        I: IntoIterator<Item = (S, T)>,
        S: Into<String>,
        T: AsRef<str> + Send + Sync,
    {
        params.validate()?;
        let mut docs: Vec<(String, T)> = docs.into_iter().map(|(i, t)| (i.into(), t)).collect();
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = docs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(IndexError::DuplicateId(w[0].0.clone()));
        }
        let counted: Vec<(u32, BTreeMap<String, u32>)> = docs
            .par_iter()
            .map(|(_, t)| {
                let toks = analyzer.tokens(t.as_ref());
                let mut c = BTreeMap::new();
                for tok in &toks {
                    *c.entry(tok.clone()).or_insert(0u32) += 1;
                }
                (toks.len() as u32, c)
            })
            .collect();
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut postings: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (d, (len, counts)) in counted.into_iter().enumerate() {
            doc_len.push(len);
            for (term, tf) in counts {
                let next = postings.len() as u32;
                let t = *vocab.entry(term).or_insert(next);
                if t == next {
                    postings.push(Vec::new());
                }
                postings[t as usize].push((d as u32, tf));
            }
        }
        let n = doc_len.len() as f64;
        let avgdl = if doc_len.is_empty() {
            0.0
        } else {
            doc_len.iter().map(|&l| l as f64).sum::<f64>() / n
        };
        let idf = postings
            .iter()
            .map(|p| {
                let df = p.len() as f64;
                (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
            })
            .collect();
        let norm = doc_len
            .iter()
            .map(|&l| {
                let rel = if avgdl > 0.0 { l as f64 / avgdl } else { 0.0 };
                params.k1 * (1.0 - params.b + params.b * rel)
            })
            .collect();
        let ids: Vec<String> = docs.into_iter().map(|(i, _)| i).collect();
        let lookup = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        Ok(Self {
            analyzer,
            params,
            ids,
            lookup,
            doc_len,
            avgdl,
            vocab,
            postings,
            idf,
            norm,
        })
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Document ids, ascending.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Number of distinct terms.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Mean analysed document length.
    pub fn avgdl(&self) -> f64 {
        self.avgdl
    }

    /// Analysed length of document `id`.
    pub fn doc_len(&self, id: &str) -> Option<usize> {
        self.lookup
            .get(id)
            .map(|&d| self.doc_len[d as usize] as usize)
    }

    /// The analyzer used for documents and queries.
    pub fn analyzer(&self) -> Analyzer {
        self.analyzer
    }

    /// The BM25 parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// Query term ids with their query frequencies, ascending by term id.
    fn query_terms(&self, query: &str) -> Vec<(u32, f64)> {
        let mut q: BTreeMap<u32, f64> = BTreeMap::new();
        for tok in self.analyzer.tokens(query) {
            if let Some(&t) = self.vocab.get(&tok) {
                *q.entry(t).or_insert(0.0) += 1.0;
            }
        }
        q.into_iter().collect()
    }

    #[inline]
    fn term_score(&self, t: u32, d: u32, tf: u32) -> f64 {
        let tf = tf as f64;
        self.idf[t as usize] * tf * (self.params.k1 + 1.0) / (tf + self.norm[d as usize])
    }

    /// `(document index, score)` for every document sharing a term with the query.
    fn accumulate(&self, query: &str) -> Vec<(u32, f64)> {
        let terms = self.query_terms(query);
        let touched: usize = terms
            .iter()
            .map(|(t, _)| self.postings[*t as usize].len())
            .sum();
        // Both paths add each document's term contributions in ascending term order, so
        // they give bit-identical scores; the dense one avoids hashing for common terms.
        if touched * 8 >= self.len() {
            let mut acc = vec![0f64; self.len()];
            let mut hit = vec![false; self.len()];
            for (t, qtf) in terms {
                for &(d, tf) in &self.postings[t as usize] {
                    acc[d as usize] += qtf * self.term_score(t, d, tf);
                    hit[d as usize] = true;
                }
            }
            return (0..self.len() as u32)
                .filter(|&d| hit[d as usize])
                .map(|d| (d, acc[d as usize]))
                .collect();
        }
        let mut acc: HashMap<u32, f64> = HashMap::new();
        for (t, qtf) in terms {
            for &(d, tf) in &self.postings[t as usize] {
                *acc.entry(d).or_insert(0.0) += qtf * self.term_score(t, d, tf);
            }
        }
        acc.into_iter().collect()
    }

    /// BM25 scores of `query` against every document, in id order ([`Self::ids`]);
    /// documents sharing no term score 0.
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let mut out = vec![0f32; self.len()];
        for (d, s) in self.accumulate(query) {
            out[d as usize] = s as f32;
        }
        out
    }

    /// Score of document `id` for `query` (`None` for an unknown id).
    pub fn score(&self, query: &str, id: &str) -> Option<f32> {
        let d = *self.lookup.get(id)?;
        let mut s = 0.0;
        for (t, qtf) in self.query_terms(query) {
            let p = &self.postings[t as usize];
            if let Ok(i) = p.binary_search_by_key(&d, |e| e.0) {
                s += qtf * self.term_score(t, d, p[i].1);
            }
        }
        Some(s as f32)
    }

    /// The `k` best documents for `query` (see module docs for order and ties).
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        let mut cand: Vec<(u32, f32)> = self
            .accumulate(query)
            .into_iter()
            .map(|(d, s)| (d, s as f32))
            .collect();
        let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k == 0 {
            return Vec::new();
        }
        if k < cand.len() {
            cand.select_nth_unstable_by(k - 1, cmp);
            cand.truncate(k);
        }
        cand.sort_by(cmp);
        cand.into_iter()
            .map(|(d, score)| Hit {
                id: self.ids[d as usize].clone(),
                score,
            })
            .collect()
    }

    /// [`Self::search`] for many queries, in parallel over queries; results in input order.
    pub fn search_batch<S: AsRef<str> + Sync>(&self, queries: &[S], k: usize) -> Vec<Vec<Hit>> {
        queries
            .par_iter()
            .map(|q| self.search(q.as_ref(), k))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzer_splits_lowercases_and_filters() {
        let a = Analyzer::default();
        assert_eq!(
            a.tokens("The COVID-19 vaccine_trial, Café's"),
            ["the", "covid", "19", "vaccine", "trial", "café", "s"]
        );
        let e = Analyzer::english();
        assert_eq!(e.tokens("The running of the Cats"), ["run", "cat"]);
        assert!(a.tokens(" -- ").is_empty());
    }

    #[test]
    fn rejects_bad_params_and_duplicates() {
        let docs = [("a", "x"), ("a", "y")];
        let e = Bm25Index::build(docs, Analyzer::default(), Bm25Params::default());
        assert!(matches!(e, Err(IndexError::DuplicateId(id)) if id == "a"));
        for p in [
            Bm25Params { k1: -1.0, b: 0.4 },
            Bm25Params { k1: 0.9, b: 1.5 },
            Bm25Params {
                k1: f64::NAN,
                b: 0.4,
            },
        ] {
            assert!(Bm25Index::build([("a", "x")], Analyzer::default(), p).is_err());
        }
        let empty = Bm25Index::build(
            Vec::<(String, String)>::new(),
            Analyzer::default(),
            Bm25Params::default(),
        )
        .unwrap();
        assert!(empty.is_empty());
        assert!(empty.search("x", 10).is_empty());
    }

    #[test]
    fn sparse_and_dense_accumulators_agree_with_per_document_scores() {
        // 200 docs: "common" is in every doc (dense path), "rare{i}" in one (sparse path)
        let docs: Vec<(String, String)> = (0..200)
            .map(|i| {
                let filler = "common word ".repeat(1 + i % 7);
                (
                    format!("d{i:03}"),
                    format!("{filler} rare{} x{}", i % 50, i % 3),
                )
            })
            .collect();
        let idx = Bm25Index::build(docs, Analyzer::default(), Bm25Params::default()).unwrap();
        for q in [
            "rare7",
            "common",
            "rare7 common x1",
            "rare3 rare3 x2",
            "nothing",
        ] {
            let acc = idx.accumulate(q);
            let touched: usize = idx
                .query_terms(q)
                .iter()
                .map(|(t, _)| idx.postings[*t as usize].len())
                .sum();
            assert!(
                q != "rare7" || touched * 8 < idx.len(),
                "rare7 takes the sparse path"
            );
            assert!(
                q != "common" || touched * 8 >= idx.len(),
                "common takes the dense path"
            );
            // docs with one of the query's terms, counted from the texts
            let terms: Vec<String> = Analyzer::default().tokens(q);
            let want = (0..200)
                .filter(|i| {
                    let t = format!("common word rare{} x{}", i % 50, i % 3);
                    terms.iter().any(|q| t.split(' ').any(|w| w == q))
                })
                .count();
            assert_eq!(acc.len(), want, "{q}");
            for (d, s) in acc {
                let id = &idx.ids()[d as usize];
                assert_eq!(s as f32, idx.score(q, id).unwrap(), "{q} {id}");
            }
            let all = idx.scores(q);
            assert_eq!(
                all.iter().filter(|&&s| s > 0.0).count(),
                idx.search(q, 1000).len()
            );
        }
    }

    #[test]
    fn ties_break_by_id_and_unmatched_docs_are_not_hits() {
        let docs = [("d3", "apple pie"), ("d1", "apple pie"), ("d2", "banana")];
        let idx = Bm25Index::build(docs, Analyzer::default(), Bm25Params::default()).unwrap();
        let hits = idx.search("apple", 10);
        let ids: Vec<_> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["d1", "d3"]);
        assert_eq!(hits[0].score, hits[1].score);
        assert_eq!(idx.score("apple", "d2"), Some(0.0));
        assert_eq!(idx.score("apple", "zz"), None);
        assert_eq!(idx.search("apple", 1).len(), 1);
        assert_eq!(idx.search("apple", 1)[0].id, "d1");
    }
}
