//! Streaming, bounded-memory PLAID index construction.
//!
//! Contract:
//! - [`IndexBuilder::train`] clusters a caller-chosen sample of documents (seeded
//!   k-means, K from `kmeans::num_centroids` unless [`BuildConfig::num_centroids`] is set)
//!   and trains the residual codec on held-out sample tokens (5% of the sample tokens,
//!   at most 50,000, at least 1; chosen with the seed).
//! - [`IndexBuilder::add_chunk`] compresses one chunk of documents and writes it to its
//!   own file at once; the builder keeps only the index's own metadata (ids, document
//!   lengths, inverted lists), so memory does not grow with the corpus beyond the index.
//! - [`IndexBuilder::finish`] writes centroids, inverted file and id table, then commits
//!   the manifest. Until then an index already in the directory stays the valid one.
//! - The builder is the index's one writer (see `writer.rs`): it takes the writer lock
//!   of the directory in [`IndexBuilder::train`] (before k-means, so a busy index fails
//!   fast) and holds it until `finish` has committed. A builder dropped before `finish`
//!   removes the files it wrote (and the directory, when it created it and nothing else
//!   is there); a killed one leaves files the next writer removes.
//! - Same sample, same chunks, same config ⇒ byte-identical index files.
//! - [`build_index`] does the whole thing for documents already in memory, sampling
//!   the documents `kmeans::sample_positions(N, seed)` names and adding chunks of
//!   [`BuildConfig::chunk_docs`] documents.

use crate::chunk::{write_chunk, Quantizer};
use crate::codec::ResidualCodec;
use crate::error::{IndexError, Result};
use crate::format::{self, ChunkRef, CodecParams, DocTable, Manifest, FORMAT_VERSION};
use crate::ivf::IvfLists;
use crate::kernel::pack_panels;
use crate::kmeans::{kmeans, num_centroids, sample_positions, KMeansConfig};
use crate::locks::{self, READERS_LOCK, WRITER_LOCK};
use crate::plaid::PlaidIndex;
use colzero_core::lock::{FileLock, Wait};
use colzero_core::MultiVector;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Index construction settings (the ones later updates need are stored in the manifest
/// as `format::Settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildConfig {
    /// Residual bits per dimension: 1, 2 or 4 (default 2: 32 B residual + 2 B code per
    /// token at dim 128 in format version 2).
    pub nbits: usize,
    /// Fixed number of centroids (default: PLAID's formula, see `kmeans.rs`).
    pub num_centroids: Option<usize>,
    /// Corpus size used by the K formula when training on a sample (default: the sample
    /// size, i.e. the sample is the corpus).
    pub expected_documents: Option<usize>,
    /// Ceiling on K (default 2^18).
    pub max_centroids: usize,
    /// k-means iterations (default 4).
    pub kmeans_niters: usize,
    /// k-means subsample: at most K · this many points (default 256).
    pub max_points_per_centroid: usize,
    /// Seed of every random choice (default 42).
    pub seed: u64,
    /// Documents per chunk in [`build_index`] (default 25,000).
    pub chunk_docs: usize,
    /// On-disk format version to write (default [`FORMAT_VERSION`]; older versions from
    /// `format::OLDEST_FORMAT_VERSION` can be written for older readers and tests).
    pub format_version: u32,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            nbits: 2,
            num_centroids: None,
            expected_documents: None,
            max_centroids: 1 << 18,
            kmeans_niters: 4,
            max_points_per_centroid: 256,
            seed: 42,
            chunk_docs: 25_000,
            format_version: FORMAT_VERSION,
        }
    }
}

/// A PLAID index being built chunk by chunk (see module docs).
pub struct IndexBuilder {
    dir: PathBuf,
    cfg: BuildConfig,
    generation: u64,
    dim: usize,
    codec: ResidualCodec,
    centroids: Vec<f32>,
    centroid_panels: Vec<f32>,
    ivf: IvfLists,
    ids: Vec<String>,
    seen: HashSet<String>,
    chunks: Vec<ChunkRef>,
    /// The writer lock, held from `train` to `finish`.
    lock: Option<FileLock>,
    /// True when `train` created the directory.
    created_dir: bool,
    /// Files written so far (removed if the builder is dropped unfinished).
    written: Vec<PathBuf>,
    finished: bool,
    model_fingerprint: Option<String>,
}

impl Drop for IndexBuilder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for f in &self.written {
            let _ = std::fs::remove_file(f);
        }
        if self.created_dir {
            let _ = std::fs::remove_file(self.dir.join(READERS_LOCK));
            let _ = std::fs::remove_file(self.dir.join(WRITER_LOCK));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl IndexBuilder {
    /// Trains centroids and codec on `sample` for an index to be written to `dir`,
    /// failing at once if another writer holds the directory.
    pub fn train(dir: &Path, sample: &[MultiVector], cfg: &BuildConfig) -> Result<Self> {
        Self::train_waiting(dir, sample, cfg, Wait::No)
    }

    /// [`IndexBuilder::train`], waiting for another writer of `dir` as `wait` says.
    pub fn train_waiting(
        dir: &Path,
        sample: &[MultiVector],
        cfg: &BuildConfig,
        wait: Wait,
    ) -> Result<Self> {
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
        let lock = match locks::lock_writer(dir, wait) {
            Ok(l) => l,
            Err(e) => {
                if created_dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
        };
        let mut b = Self::train_unlocked(dir, sample, cfg).inspect_err(|_| {
            if created_dir {
                let _ = std::fs::remove_file(dir.join(READERS_LOCK));
                let _ = std::fs::remove_file(dir.join(WRITER_LOCK));
                let _ = std::fs::remove_dir(dir);
            }
        })?;
        b.lock = Some(lock);
        b.created_dir = created_dir;
        // Litter of killed writers counts for the generation, then goes.
        b.generation = format::next_generation(dir);
        if let Ok(m) = format::read_manifest(dir) {
            locks::collect_garbage_locked(dir, &m);
        }
        Ok(b)
    }

    fn train_unlocked(dir: &Path, sample: &[MultiVector], cfg: &BuildConfig) -> Result<Self> {
        let version = cfg.format_version;
        if !(format::OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(IndexError::Invalid(format!(
                "format_version must be {} to {FORMAT_VERSION}, got {version}",
                format::OLDEST_FORMAT_VERSION
            )));
        }
        let dim = sample
            .iter()
            .find(|s| !s.is_empty())
            .map(|s| s.dim())
            .ok_or_else(|| IndexError::Invalid("training sample has no tokens".into()))?;
        // Token positions (document, row) instead of a flattened copy of the sample.
        let mut pos: Vec<(u32, u32)> = Vec::new();
        for (i, s) in sample.iter().enumerate() {
            if s.dim() != dim {
                return Err(IndexError::Dim {
                    what: format!("sample document {i}"),
                    expected: dim,
                    found: s.dim(),
                });
            }
            pos.extend((0..s.n_tokens() as u32).map(|t| (i as u32, t)));
        }
        let n = pos.len();
        // Held-out tokens for the codec: a seeded 5% (<= 50,000, >= 1).
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        pos.shuffle(&mut rng);
        let n_held = (n / 20).clamp(1, 50_000).min(n);
        let (held, rest) = pos.split_at(n_held);
        let mut rest = if rest.is_empty() {
            held.to_vec()
        } else {
            rest.to_vec()
        };
        rest.sort_unstable();
        let gather = |idx: &[(u32, u32)]| -> Vec<f32> {
            let mut out = Vec::with_capacity(idx.len() * dim);
            for &(d, t) in idx {
                out.extend_from_slice(sample[d as usize].row(t as usize));
            }
            out
        };
        let heldout = gather(&pos[..n_held]);
        let points = gather(&rest);
        drop(pos);
        let docs = cfg.expected_documents.unwrap_or(sample.len()).max(1);
        let est_tokens = (n as f64 / sample.len().max(1) as f64 * docs as f64) as usize;
        let k = cfg
            .num_centroids
            .unwrap_or_else(|| num_centroids(est_tokens, rest.len(), cfg.max_centroids));
        let centroids = kmeans(
            &points,
            dim,
            &KMeansConfig {
                k,
                niters: cfg.kmeans_niters,
                max_points_per_centroid: cfg.max_points_per_centroid,
                seed: cfg.seed,
            },
        )?;
        drop(points);
        // Codes and residuals are computed against the centroids exactly as stored.
        let mut centroids = centroids;
        format::round_centroids(version, &mut centroids);
        let mut centroid_panels = Vec::new();
        pack_panels(&centroids, dim, &mut centroid_panels);
        let codec = ResidualCodec::train(&heldout, dim, &centroids, &centroid_panels, cfg.nbits)?;
        let k = centroids.len() / dim;
        Ok(Self {
            dir: dir.to_path_buf(),
            cfg: cfg.clone(),
            generation: 0,
            dim,
            codec,
            centroids,
            centroid_panels,
            ivf: IvfLists::new(k),
            ids: Vec::new(),
            seen: HashSet::new(),
            chunks: Vec::new(),
            lock: None,
            created_dir: false,
            written: Vec::new(),
            finished: false,
            model_fingerprint: None,
        })
    }

    /// Records the fingerprint of the model whose vectors the index will hold (stored in
    /// the manifest).
    pub fn set_model_fingerprint(&mut self, fingerprint: Option<String>) {
        self.model_fingerprint = fingerprint;
    }

    /// Number of centroids trained.
    pub fn num_centroids(&self) -> usize {
        self.centroids.len() / self.dim
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Documents added so far.
    pub fn num_documents(&self) -> usize {
        self.ids.len()
    }

    /// Compresses and writes one chunk of documents (`ids[i]` names `embeddings[i]`).
    pub fn add_chunk(&mut self, ids: Vec<String>, embeddings: &[MultiVector]) -> Result<()> {
        if ids.len() != embeddings.len() {
            return Err(IndexError::Invalid(format!(
                "add_chunk: {} ids for {} embeddings",
                ids.len(),
                embeddings.len()
            )));
        }
        for id in &ids {
            if !self.seen.insert(id.clone()) {
                return Err(IndexError::DuplicateId(id.clone()));
            }
        }
        let name = format!("chunk-g{}-{}.bin", self.generation, self.chunks.len());
        self.written.push(self.dir.join(&name));
        let code_bytes = format::code_bytes_for(self.cfg.format_version, self.num_centroids());
        let chunk = write_chunk(
            &self.dir,
            (&name, code_bytes),
            self.ids.len() as u32,
            embeddings,
            &Quantizer {
                codec: &self.codec,
                centroids: &self.centroids,
                panels: &self.centroid_panels,
            },
            &mut self.ivf,
        );
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                ids.iter().for_each(|id| {
                    self.seen.remove(id);
                });
                return Err(e);
            }
        };
        self.ids.extend(ids);
        self.chunks.push(chunk);
        colzero_core::fault::point("index.build.chunk");
        Ok(())
    }

    /// Writes the remaining files, commits the manifest and opens the index.
    pub fn finish(mut self) -> Result<PlaidIndex> {
        let g = self.generation;
        let dir = self.dir.clone();
        let dir = &dir;
        for name in [
            format!("centroids-g{g}.bin"),
            format!("ivf-g{g}.bin"),
            format!("docs-g{g}.json"),
        ] {
            self.written.push(dir.join(name));
        }
        let centroids = format::write_file(
            dir,
            &format!("centroids-g{g}.bin"),
            &format::centroid_bytes(self.cfg.format_version, &self.centroids),
        )?;
        let ivf_bytes = self.ivf.encode(self.cfg.format_version);
        let ivf = format::write_file(dir, &format!("ivf-g{g}.bin"), &ivf_bytes)?;
        let table = DocTable {
            ids: std::mem::take(&mut self.ids),
            deleted: Vec::new(),
        };
        let docs = format::write_doc_table(dir, g, &table)?;
        let manifest = Manifest {
            format_version: self.cfg.format_version,
            generation: g,
            dim: self.dim,
            num_centroids: self.centroids.len() / self.dim,
            codec: CodecParams {
                nbits: self.codec.nbits(),
                cutoffs: self.codec.cutoffs().to_vec(),
                weights: self.codec.weights().to_vec(),
                cluster_threshold: self.codec.cluster_threshold(),
            },
            settings: format::Settings {
                nbits: self.cfg.nbits,
                kmeans_niters: self.cfg.kmeans_niters,
                max_points_per_centroid: self.cfg.max_points_per_centroid,
                seed: self.cfg.seed,
            },
            centroids,
            ivf,
            docs,
            chunks: std::mem::take(&mut self.chunks),
            model_fingerprint: self.model_fingerprint.clone(),
        };
        colzero_core::fault::point("index.build.files");
        format::commit_manifest(dir, &manifest)?;
        self.finished = true;
        colzero_core::fault::point("index.build.manifest");
        locks::collect_garbage_locked(dir, &manifest);
        let index = PlaidIndex::open(dir);
        self.lock = None;
        index
    }
}

/// Builds an index in `dir` from documents in memory (see module docs).
pub fn build_index(
    dir: &Path,
    docs: &[(String, MultiVector)],
    cfg: &BuildConfig,
) -> Result<PlaidIndex> {
    let n = docs.len();
    let idx = sample_positions(n, cfg.seed);
    let sample: Vec<MultiVector> = idx.iter().map(|&i| docs[i].1.clone()).collect();
    let mut c = cfg.clone();
    c.expected_documents = Some(cfg.expected_documents.unwrap_or(n));
    let mut b = IndexBuilder::train(dir, &sample, &c)?;
    drop(sample);
    for chunk in docs.chunks(cfg.chunk_docs.max(1)) {
        let ids = chunk.iter().map(|d| d.0.clone()).collect();
        let embs: Vec<MultiVector> = chunk.iter().map(|d| d.1.clone()).collect();
        b.add_chunk(ids, &embs)?;
    }
    b.finish()
}
