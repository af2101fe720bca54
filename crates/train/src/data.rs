//! Training data: streamed, shuffled, multi-source, resumable.
//!
//! Contract:
//! * A dataset is a set of *sources*. Each source is a text file indexed once by the byte
//!   offset of every non-blank line (12 bytes per row in memory, never the text), so a
//!   dataset larger than memory trains; rows are read back by seeking.
//! * Pair/triplet sources ([`PairDataset`]): JSONL rows `{"query", "positive",
//!   "negatives": [...]}` (`"document"` is accepted for `"positive"`, a single
//!   `"negative"` string for `"negatives"`, other fields are ignored) or TSV rows
//!   `query \t positive [\t negative ...]`. The dataset path is a file (one source; a
//!   `"source"` field, when present, splits it into several sources) or a directory (every
//!   `*.jsonl` / `*.tsv` in it, sorted, is a source named by its file stem).
//! * KD data ([`KdDataset`]), PyLate's format: `queries.jsonl {query_id,text}`,
//!   `documents.jsonl {document_id,text}` (both held in memory),
//!   `train.jsonl {query_id, document_ids, scores}` (streamed), truncated to `n_ways`.
//! * [`Sampler`]: per epoch, each source's rows are shuffled (seeded by seed, epoch and
//!   source), cut into full batches (`drop_last`), and the batches of all sources are
//!   shuffled together — one source per batch, sources drawn in proportion to their size
//!   (Sentence-Transformers' PROPORTIONAL multi-dataset sampler, as ColBERT-Zero uses).
//!   Its [`DataPosition`] (epoch, batch) is serialisable; seeking to it reproduces the
//!   exact batch sequence of an uninterrupted run.
//! * No-duplicates batches ([`Sampler::no_duplicates`], `train.no_duplicates`): with the
//!   texts of every row hashed ([`PairDataset::text_keys`]), no two rows of a batch share
//!   any text (query, positive or negative), so a batch never holds a false in-batch
//!   negative such as another row's copy of this row's positive (Sentence-Transformers'
//!   NO_DUPLICATES sampler). Each shuffled row joins the first of up to
//!   [`NO_DUP_OPEN_BATCHES`] open batches it does not clash with; rows that clash with all
//!   of them get a second pass; batches still incomplete then are dropped (`drop_last`),
//!   so an epoch may hold fewer batches. The plan is a pure function of seed and epoch,
//!   so resume stays exact.
//!
//! Every malformed row is an error naming `file:line`. A UTF-8 byte-order mark opening a
//! file is skipped.

use crate::{Result, TrainError};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One indexed text file (or the rows of one `source` value inside a file).
#[derive(Clone, Debug)]
pub struct Source {
    /// Source name (file stem or `source` field value).
    pub name: String,
    /// The file holding the rows.
    pub path: PathBuf,
    rows: Vec<(u64, u32)>,
}

impl Source {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the source has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Reads row `i` as `(line_number, text)`.
    pub fn read(&self, i: usize) -> Result<(usize, String)> {
        let (off, line) = *self.rows.get(i).ok_or_else(|| TrainError::Data {
            path: self.path.clone(),
            line: 0,
            reason: format!("row {i} out of range ({} rows)", self.rows.len()),
        })?;
        let io = |e: std::io::Error| TrainError::Core(colzero_core::CoreError::io(&self.path, e));
        let mut f = File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(off)).map_err(io)?;
        let mut buf = Vec::new();
        BufReader::new(f).read_until(b'\n', &mut buf).map_err(io)?;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text = String::from_utf8(buf).map_err(|_| TrainError::Data {
            path: self.path.clone(),
            line: line as usize,
            reason: "invalid UTF-8".into(),
        })?;
        Ok((line as usize, text))
    }
}

/// Calls `f(byte offset, 1-based line, bytes)` for every non-blank line of `path`.
fn scan_lines(path: &Path, mut f: impl FnMut(u64, u32, &[u8]) -> Result<()>) -> Result<()> {
    let io = |e: std::io::Error| TrainError::Core(colzero_core::CoreError::io(path, e));
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let (mut off, mut line) = (0u64, 0u32);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        // a UTF-8 byte-order mark opening the file is not part of the first row
        let skip = if line == 1 && buf.starts_with(colzero_core::jsonl::UTF8_BOM) {
            colzero_core::jsonl::UTF8_BOM.len()
        } else {
            0
        };
        let row = &buf[skip..];
        if !row.iter().all(|b| b.is_ascii_whitespace()) {
            f(off + skip as u64, line, row)?;
        }
        off += n as u64;
    }
}

/// Indexes the non-blank lines of `path`: `(byte offset, 1-based line)`.
fn index_lines(path: &Path) -> Result<Vec<(u64, u32)>> {
    let mut rows = Vec::new();
    scan_lines(path, |off, line, _| {
        rows.push((off, line));
        Ok(())
    })?;
    Ok(rows)
}

/// Indexes a JSONL file grouping rows by their optional `source` field.
#[allow(clippy::type_complexity)]
fn index_by_source(path: &Path) -> Result<Vec<(String, Vec<(u64, u32)>)>> {
    let mut by: Vec<(String, Vec<(u64, u32)>)> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    scan_lines(path, |off, line, buf| {
        let key = if buf.windows(8).any(|w| w == b"\"source\"") {
            let sf: SourceField = serde_json::from_slice(buf).map_err(|e| TrainError::Data {
                path: path.to_path_buf(),
                line: line as usize,
                reason: format!("invalid JSON: {e}"),
            })?;
            sf.source.unwrap_or_else(|| "default".into())
        } else {
            "default".to_string()
        };
        let k = *slot.entry(key.clone()).or_insert_with(|| {
            by.push((key, Vec::new()));
            by.len() - 1
        });
        by[k].1.push((off, line));
        Ok(())
    })?;
    Ok(by)
}

/// A contrastive example: query, positive, hard negatives (in file order).
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Query text.
    pub query: String,
    /// Positive document text.
    pub positive: String,
    /// Hard negatives (exactly the dataset's `negatives` count).
    pub negatives: Vec<String>,
}

#[derive(Deserialize)]
struct PairRow {
    query: String,
    #[serde(alias = "document")]
    positive: String,
    #[serde(default)]
    negatives: Option<Vec<String>>,
    #[serde(default)]
    negative: Option<String>,
}

#[derive(Deserialize)]
struct SourceField {
    #[serde(default)]
    source: Option<String>,
}

/// Pair/triplet data (see module docs).
#[derive(Clone, Debug)]
pub struct PairDataset {
    /// The sources, in a stable order.
    pub sources: Vec<Source>,
    /// Hard negatives used per example (extra ones are dropped, missing ones are errors).
    pub negatives: usize,
}

fn is_tsv(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()) == Some("tsv")
}

impl PairDataset {
    /// Opens a file or a directory of sources.
    pub fn open(path: &Path, negatives: usize) -> Result<Self> {
        let mut sources = Vec::new();
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| colzero_core::CoreError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("jsonl" | "tsv")
                        )
                })
                .collect();
            files.sort();
            for f in files {
                let name = f
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("source")
                    .to_string();
                sources.push(Source {
                    name,
                    rows: index_lines(&f)?,
                    path: f,
                });
            }
        } else {
            let base = Source {
                name: "default".into(),
                path: path.to_path_buf(),
                rows: Vec::new(),
            };
            if is_tsv(path) {
                sources.push(Source {
                    rows: index_lines(path)?,
                    ..base
                });
            } else {
                // Split by the optional `source` field (first-appearance order).
                for (name, rows) in index_by_source(path)? {
                    sources.push(Source {
                        name,
                        rows,
                        ..base.clone()
                    });
                }
            }
        }
        sources.retain(|s| !s.is_empty());
        if sources.is_empty() {
            return Err(TrainError::Data {
                path: path.to_path_buf(),
                line: 0,
                reason: "no training rows".into(),
            });
        }
        Ok(Self { sources, negatives })
    }

    /// Rows per source.
    pub fn sizes(&self) -> Vec<usize> {
        self.sources.iter().map(Source::len).collect()
    }

    /// Reads and parses row `row` of source `source`.
    pub fn example(&self, source: usize, row: usize) -> Result<Example> {
        let src = &self.sources[source];
        let (line, text) = src.read(row)?;
        let bad = |reason: String| TrainError::Data {
            path: src.path.clone(),
            line,
            reason,
        };
        let (query, positive, mut negatives) = if is_tsv(&src.path) {
            let mut cols = text.split('\t').map(str::to_string);
            let q = cols.next().unwrap_or_default();
            let p = cols
                .next()
                .ok_or_else(|| bad("TSV row needs query\\tpositive[\\tnegative...]".into()))?;
            (q, p, cols.collect::<Vec<_>>())
        } else {
            let r: PairRow =
                serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
            let mut negs = r.negatives.unwrap_or_default();
            if let Some(n) = r.negative {
                negs.insert(0, n);
            }
            (r.query, r.positive, negs)
        };
        if negatives.len() < self.negatives {
            return Err(bad(format!(
                "{} hard negatives, the stage needs {} (set `data.negatives` lower)",
                negatives.len(),
                self.negatives
            )));
        }
        negatives.truncate(self.negatives);
        Ok(Example {
            query,
            positive,
            negatives,
        })
    }
}

/// A KD example: query, its `n_ways` documents and the teacher's scores.
#[derive(Clone, Debug, PartialEq)]
pub struct KdExample {
    /// Query text.
    pub query: String,
    /// Candidate documents (texts), `n_ways` of them.
    pub documents: Vec<String>,
    /// Teacher scores, one per document.
    pub scores: Vec<f32>,
}

#[derive(Deserialize)]
struct KdRow {
    query_id: serde_json::Value,
    document_ids: Vec<serde_json::Value>,
    scores: Vec<f32>,
}

fn id_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn load_texts(path: &Path, id_field: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for r in colzero_core::jsonl::read_jsonl::<serde_json::Value>(path)? {
        let (line, v) = r?;
        let bad = |reason: &str| TrainError::Data {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        };
        let id = v
            .get(id_field)
            .ok_or_else(|| bad(&format!("missing `{id_field}`")))?;
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("missing string `text`"))?;
        out.insert(id_string(id), text.to_string());
    }
    Ok(out)
}

/// PyLate-format distillation data (see module docs).
#[derive(Clone, Debug)]
pub struct KdDataset {
    /// The streamed `train.jsonl`.
    pub train: Source,
    queries: HashMap<String, String>,
    documents: HashMap<String, String>,
    /// Documents per query.
    pub n_ways: usize,
}

impl KdDataset {
    /// Opens `dir/{queries,documents,train}.jsonl`.
    pub fn open(dir: &Path, n_ways: usize) -> Result<Self> {
        let queries = load_texts(&dir.join("queries.jsonl"), "query_id")?;
        let documents = load_texts(&dir.join("documents.jsonl"), "document_id")?;
        let tp = dir.join("train.jsonl");
        let train = Source {
            name: "train".into(),
            rows: index_lines(&tp)?,
            path: tp,
        };
        if train.is_empty() || n_ways == 0 {
            return Err(TrainError::Data {
                path: train.path,
                line: 0,
                reason: "no rows or n_ways = 0".into(),
            });
        }
        Ok(Self {
            train,
            queries,
            documents,
            n_ways,
        })
    }

    /// Rows (one source).
    pub fn sizes(&self) -> Vec<usize> {
        vec![self.train.len()]
    }

    /// Row `row`, resolved to texts and truncated to `n_ways`. A missing document id
    /// becomes "" with a warning (PyLate's `KDProcessing`); a missing query is an error.
    pub fn example(&self, row: usize) -> Result<KdExample> {
        let (line, text) = self.train.read(row)?;
        let bad = |reason: String| TrainError::Data {
            path: self.train.path.clone(),
            line,
            reason,
        };
        let r: KdRow =
            serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if r.document_ids.len() != r.scores.len() {
            return Err(bad(format!(
                "{} document_ids but {} scores",
                r.document_ids.len(),
                r.scores.len()
            )));
        }
        if r.document_ids.len() < self.n_ways {
            return Err(bad(format!(
                "{} documents, n_ways is {}",
                r.document_ids.len(),
                self.n_ways
            )));
        }
        let qid = id_string(&r.query_id);
        let query = self
            .queries
            .get(&qid)
            .cloned()
            .ok_or_else(|| bad(format!("unknown query_id `{qid}`")))?;
        let documents = r.document_ids[..self.n_ways]
            .iter()
            .map(|d| {
                let id = id_string(d);
                self.documents.get(&id).cloned().unwrap_or_else(|| {
                    tracing::warn!(
                        "{}:{line}: unknown document_id `{id}`, using \"\"",
                        self.train.path.display()
                    );
                    String::new()
                })
            })
            .collect();
        Ok(KdExample {
            query,
            documents,
            scores: r.scores[..self.n_ways].to_vec(),
        })
    }
}

/// Where a run is in its data: epoch and batch index within the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    /// 0-based epoch.
    pub epoch: usize,
    /// Batches of this epoch already handed out.
    pub batch: usize,
}

/// Hashes of the texts of every row, by source then row (see [`Sampler::no_duplicates`]).
pub type RowKeys = Vec<Vec<Vec<u64>>>;

/// Open batches a row may join in the no-duplicates sampler (see module docs).
pub const NO_DUP_OPEN_BATCHES: usize = 8;

fn text_key(text: &str) -> u64 {
    colzero_core::hash::fnv1a(text.as_bytes())
}

impl PairDataset {
    /// The text hashes of every row (query, positive and the negatives a stage uses), for
    /// [`Sampler::no_duplicates`]. Reads every row once; errors name `file:line`.
    pub fn text_keys(&self) -> Result<RowKeys> {
        (0..self.sources.len())
            .map(|s| {
                (0..self.sources[s].len())
                    .map(|r| {
                        let ex = self.example(s, r)?;
                        let mut k = vec![text_key(&ex.query), text_key(&ex.positive)];
                        k.extend(ex.negatives.iter().map(|n| text_key(n)));
                        Ok(k)
                    })
                    .collect()
            })
            .collect()
    }
}

/// Full batches of `perm` in which no two rows share a key (see module docs).
fn no_dup_batches(perm: &[u32], keys: &[Vec<u64>], batch_size: usize) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    let mut open: Vec<(Vec<u32>, HashSet<u64>)> = Vec::new();
    let mut pending = perm.to_vec();
    for _pass in 0..2 {
        let mut deferred = Vec::new();
        for &r in &pending {
            let k = &keys[r as usize];
            let fits = open
                .iter()
                .position(|(_, seen)| k.iter().all(|h| !seen.contains(h)));
            let slot = match fits {
                Some(i) => i,
                None if open.len() < NO_DUP_OPEN_BATCHES => {
                    open.push((Vec::with_capacity(batch_size), HashSet::new()));
                    open.len() - 1
                }
                None => {
                    deferred.push(r);
                    continue;
                }
            };
            let (rows, seen) = &mut open[slot];
            rows.push(r);
            seen.extend(k.iter().copied());
            if rows.len() == batch_size {
                out.push(open.remove(slot).0);
            }
        }
        pending = deferred;
    }
    out
}

/// Seeded proportional one-source-per-batch sampler (see module docs).
#[derive(Clone, Debug)]
pub struct Sampler {
    sizes: Vec<usize>,
    batch_size: usize,
    seed: u64,
    pos: DataPosition,
    plan: Vec<(usize, Vec<u32>)>,
    keys: Option<std::sync::Arc<RowKeys>>,
    per_epoch: usize,
}

fn rng_for(seed: u64, epoch: usize, source: usize) -> ChaCha8Rng {
    let mix = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(source as u64 + 1);
    ChaCha8Rng::seed_from_u64(mix)
}

impl Sampler {
    /// A sampler at the start of epoch 0. Errors when no source fills a batch.
    pub fn new(sizes: Vec<usize>, batch_size: usize, seed: u64) -> Result<Self> {
        Self::build(sizes, batch_size, seed, None)
    }

    /// A sampler whose batches never repeat a text (see module docs); `keys` from
    /// [`PairDataset::text_keys`]. Errors when no source fills a batch.
    pub fn no_duplicates(keys: RowKeys, batch_size: usize, seed: u64) -> Result<Self> {
        let sizes = keys.iter().map(Vec::len).collect();
        Self::build(sizes, batch_size, seed, Some(std::sync::Arc::new(keys)))
    }

    fn build(
        sizes: Vec<usize>,
        batch_size: usize,
        seed: u64,
        keys: Option<std::sync::Arc<RowKeys>>,
    ) -> Result<Self> {
        let mut s = Self {
            sizes,
            batch_size: batch_size.max(1),
            seed,
            pos: DataPosition::default(),
            plan: Vec::new(),
            keys,
            per_epoch: 0,
        };
        s.plan = s.make_plan(0);
        s.per_epoch = s.plan.len();
        if s.per_epoch == 0 {
            let what = if s.keys.is_some() {
                " without a repeated text"
            } else {
                ""
            };
            return Err(TrainError::Invalid(format!(
                "no source has a full batch of {} rows{what} (sizes {:?})",
                s.batch_size, s.sizes
            )));
        }
        Ok(s)
    }

    /// Full batches in epoch 0 (sum over sources of `size / batch_size`; with
    /// no-duplicates batches, what epoch 0's plan holds — later epochs may differ by a
    /// few).
    pub fn batches_per_epoch(&self) -> usize {
        self.per_epoch
    }

    fn make_plan(&self, epoch: usize) -> Vec<(usize, Vec<u32>)> {
        let mut per_source: Vec<Vec<Vec<u32>>> = Vec::new();
        let mut order = Vec::new();
        for (s, &n) in self.sizes.iter().enumerate() {
            let mut perm: Vec<u32> = (0..n as u32).collect();
            perm.shuffle(&mut rng_for(self.seed, epoch, s));
            let batches: Vec<Vec<u32>> = match &self.keys {
                Some(k) => no_dup_batches(&perm, &k[s], self.batch_size),
                None => perm
                    .chunks_exact(self.batch_size)
                    .map(|c| c.to_vec())
                    .collect(),
            };
            order.extend(std::iter::repeat_n(s, batches.len()));
            per_source.push(batches.into_iter().rev().collect());
        }
        order.shuffle(&mut rng_for(self.seed, epoch, usize::MAX >> 1));
        order
            .into_iter()
            .map(|s| (s, per_source[s].pop().expect("batch count")))
            .collect()
    }

    /// The position of the next batch.
    pub fn position(&self) -> DataPosition {
        self.pos
    }

    /// Moves to `pos` (for resume).
    pub fn seek(&mut self, pos: DataPosition) {
        if pos.epoch != self.pos.epoch || self.plan.is_empty() {
            self.plan = self.make_plan(pos.epoch);
        }
        self.pos = pos;
    }

    /// The next batch as `(source, rows)`; rolls over to the next epoch when needed.
    pub fn next_batch(&mut self) -> (usize, Vec<usize>) {
        if self.pos.batch >= self.plan.len() {
            self.pos = DataPosition {
                epoch: self.pos.epoch + 1,
                batch: 0,
            };
            self.plan = self.make_plan(self.pos.epoch);
        }
        let (s, rows) = &self.plan[self.pos.batch];
        self.pos.batch += 1;
        (*s, rows.iter().map(|&r| r as usize).collect())
    }
}
