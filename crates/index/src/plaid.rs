//! [`PlaidIndex`]: an opened (memory-mapped) PLAID index directory and its summary.
//!
//! Contract:
//! - [`PlaidIndex::open`] validates everything (see `format.rs`) and never panics on a
//!   damaged directory: codes out of range, inconsistent doc lengths or sizes are
//!   [`IndexError::Corrupt`] naming the file.
//! - Documents have stable internal numbers (append order, never reused or renumbered);
//!   users only ever see external ids. Deleted documents are tombstoned: invisible to
//!   search, `contains` and `info().num_documents`; their id may be added again.
//! - Chunk data (codes and residuals, the bulk of the index) stays memory-mapped;
//!   centroids, the inverted file and the id table are loaded into memory. The 8-bit
//!   rerank adds, per chunk it touches, the inverse norms of its reconstructed tokens
//!   (4 bytes per token in memory, computed once on first use, never written).
//! - An opened index is a snapshot: writers commit new generations beside it (see
//!   `writer.rs`) and the snapshot keeps answering from the files it mapped.
//! - Search is in `search.rs`, updates in `update.rs` (staged by the one writer of
//!   `writer.rs`), building in `build.rs`.

use crate::chunk::Chunk;
use crate::codec::{Codes, ResidualCodec};
use crate::error::{IndexError, Result};
use crate::format::{self, ChunkRef, DocTable, Manifest};
use crate::ivf::Ivf;
use crate::kernel::pack_panels;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bytes of one part of an index and their share per stored token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartBytes {
    /// `manifest`, `centroids`, `ivf`, `id table`, `doclens`, `codes` or `residuals`.
    pub part: String,
    pub bytes: u64,
    pub bytes_per_token: f64,
}

/// Summary of an index (`colzero index info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    pub format_version: u32,
    pub generation: u64,
    pub dim: usize,
    pub nbits: usize,
    /// Live (not deleted) documents.
    pub num_documents: usize,
    pub num_deleted: usize,
    /// Tokens of live and deleted documents still stored.
    pub num_tokens: u64,
    pub num_centroids: usize,
    pub num_chunks: usize,
    /// Total size of the files the manifest references (plus the manifest).
    pub bytes_on_disk: u64,
    /// `bytes_on_disk / num_tokens`.
    pub bytes_per_token: f64,
    /// Where the bytes go (sums to `bytes_on_disk`; chunk files are split into their
    /// document lengths, codes and residuals).
    pub breakdown: Vec<PartBytes>,
}

impl std::fmt::Display for IndexInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "format version   {}", self.format_version)?;
        writeln!(f, "generation       {}", self.generation)?;
        writeln!(f, "documents        {}", self.num_documents)?;
        writeln!(f, "deleted          {}", self.num_deleted)?;
        writeln!(f, "tokens           {}", self.num_tokens)?;
        writeln!(f, "centroids        {}", self.num_centroids)?;
        writeln!(f, "dim / nbits      {} / {}", self.dim, self.nbits)?;
        writeln!(f, "chunks           {}", self.num_chunks)?;
        writeln!(f, "bytes on disk    {}", self.bytes_on_disk)?;
        write!(f, "bytes per token  {:.2}", self.bytes_per_token)?;
        for p in &self.breakdown {
            write!(
                f,
                "\n  {:<14} {:>12} B  {:>7.3} B/token",
                p.part, p.bytes, p.bytes_per_token
            )?;
        }
        Ok(())
    }
}

/// An opened PLAID index.
pub struct PlaidIndex {
    pub(crate) dir: PathBuf,
    pub(crate) manifest: Manifest,
    pub(crate) codec: ResidualCodec,
    pub(crate) centroids: Vec<f32>,
    pub(crate) centroid_panels: Vec<f32>,
    pub(crate) ivf: Ivf,
    /// Mapped chunks, shared with other snapshots of the same directory
    /// ([`PlaidIndex::open_reusing`]).
    pub(crate) chunks: Vec<std::sync::Arc<Chunk>>,
    /// Per internal doc: (chunk, token start inside the chunk, token count).
    pub(crate) doc_loc: Vec<(u32, u64, u32)>,
    pub(crate) ids: Vec<String>,
    pub(crate) deleted: Vec<bool>,
    pub(crate) lookup: HashMap<String, u32>,
}

impl PlaidIndex {
    /// Opens and validates the committed snapshot of the index in `dir`. While it reads
    /// the manifest and maps its files it holds the readers' shared lock, so no garbage
    /// collection removes them (see `writer.rs`); afterwards the snapshot stays valid
    /// whatever writers commit.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_reusing(dir, None)
    }

    /// [`PlaidIndex::open`], taking from `prev` (an earlier snapshot of the same directory)
    /// every chunk the new manifest names identically (file, size, CRC, documents) instead
    /// of mapping and checking it again: chunk files are never modified once published, so
    /// a chunk verified once stays valid. Opening after an add then costs the new chunk
    /// and the small per-generation files, not the whole index.
    pub fn open_reusing(dir: &Path, prev: Option<&PlaidIndex>) -> Result<Self> {
        let _reading = crate::locks::lock_reader(dir)?;
        let manifest = format::read_manifest(dir)?;
        let m = &manifest;
        let codec = ResidualCodec::new(
            m.dim,
            m.codec.nbits,
            m.codec.cutoffs.clone(),
            m.codec.weights.clone(),
            m.codec.cluster_threshold,
        )?;
        let cmap = format::map_checked(dir, &m.centroids)?;
        let centroids = format::centroids_from(m.format_version, &cmap, m.num_centroids, m.dim)
            .ok_or_else(|| {
                IndexError::corrupt(
                    dir.join(&m.centroids.name),
                    format!(
                        "expected {} x {} centroids of format version {}",
                        m.num_centroids, m.dim, m.format_version
                    ),
                )
            })?;
        let imap = format::map_checked(dir, &m.ivf)?;
        let ivf_path = dir.join(&m.ivf.name);
        let ivf = Ivf::decode(&imap, m.num_centroids, m.format_version, &ivf_path)?;
        let dmap = format::map_checked(dir, &m.docs)?;
        let table: DocTable = serde_json::from_slice(&dmap).map_err(|e| {
            IndexError::corrupt(dir.join(&m.docs.name), format!("bad document table: {e}"))
        })?;
        let mut index = Self {
            dir: dir.to_path_buf(),
            codec,
            centroid_panels: Vec::new(),
            centroids,
            ivf,
            chunks: Vec::new(),
            doc_loc: Vec::new(),
            ids: Vec::new(),
            deleted: Vec::new(),
            lookup: HashMap::new(),
            manifest: manifest.clone(),
        };
        pack_panels(&index.centroids, m.dim, &mut index.centroid_panels);
        let reusable: HashMap<&str, (&ChunkRef, &std::sync::Arc<Chunk>)> = match prev {
            Some(p) if p.dir == dir && p.manifest.format_version == m.format_version => p
                .manifest
                .chunks
                .iter()
                .zip(&p.chunks)
                .map(|(r, c)| (r.file.name.as_str(), (r, c)))
                .collect(),
            _ => HashMap::new(),
        };
        for c in &manifest.chunks {
            match reusable.get(c.file.name.as_str()) {
                Some((r, chunk)) if *r == c => index.push_chunk(std::sync::Arc::clone(chunk)),
                _ => index.attach_chunk(c)?,
            }
        }
        index.set_docs(table)?;
        if index.ivf.len() != m.num_centroids {
            return Err(IndexError::corrupt(&ivf_path, "wrong number of lists"));
        }
        if index
            .ivf
            .max_doc()
            .is_some_and(|d| d as usize >= index.ids.len())
        {
            return Err(IndexError::corrupt(&ivf_path, "document id out of range"));
        }
        Ok(index)
    }

    /// Maps and validates a chunk and appends its documents.
    pub(crate) fn attach_chunk(&mut self, c: &ChunkRef) -> Result<()> {
        let path = self.dir.join(&c.file.name);
        if c.first_doc as usize != self.doc_loc.len() {
            return Err(IndexError::corrupt(
                &path,
                "chunk does not follow the previous one",
            ));
        }
        let chunk = Chunk::open(&self.dir, c, &self.manifest, self.codec.bytes_per_token())?;
        self.push_chunk(std::sync::Arc::new(chunk));
        Ok(())
    }

    /// Appends a validated chunk's documents.
    fn push_chunk(&mut self, chunk: std::sync::Arc<Chunk>) {
        let ci = self.chunks.len() as u32;
        let mut start = 0u64;
        for &len in chunk.doclens() {
            self.doc_loc.push((ci, start, len));
            start += len as u64;
        }
        self.chunks.push(chunk);
    }

    /// Installs the id table (ids by internal number, tombstones).
    pub(crate) fn set_docs(&mut self, table: DocTable) -> Result<()> {
        let path = self.dir.join(&self.manifest.docs.name);
        if table.ids.len() != self.doc_loc.len() {
            return Err(IndexError::corrupt(
                &path,
                format!(
                    "{} ids for {} documents",
                    table.ids.len(),
                    self.doc_loc.len()
                ),
            ));
        }
        let mut deleted = vec![false; table.ids.len()];
        for &d in &table.deleted {
            *deleted
                .get_mut(d as usize)
                .ok_or_else(|| IndexError::corrupt(&path, "deleted id out of range"))? = true;
        }
        let mut lookup = HashMap::with_capacity(table.ids.len());
        for (i, id) in table.ids.iter().enumerate() {
            if !deleted[i] && lookup.insert(id.clone(), i as u32).is_some() {
                return Err(IndexError::corrupt(
                    &path,
                    format!("duplicate live id `{id}`"),
                ));
            }
        }
        self.ids = table.ids;
        self.deleted = deleted;
        self.lookup = lookup;
        Ok(())
    }

    /// The id table as stored.
    pub(crate) fn doc_table(&self) -> DocTable {
        DocTable {
            ids: self.ids.clone(),
            deleted: (0..self.deleted.len() as u32)
                .filter(|&i| self.deleted[i as usize])
                .collect(),
        }
    }

    /// Codes of internal document `i`.
    pub(crate) fn doc_codes(&self, i: usize) -> Codes<'_> {
        let (c, s, n) = self.doc_loc[i];
        self.chunks[c as usize]
            .codes()
            .slice(s as usize, s as usize + n as usize)
    }

    /// Residual bytes of internal document `i`.
    pub(crate) fn doc_residuals(&self, i: usize) -> &[u8] {
        let (c, s, n) = self.doc_loc[i];
        let b = self.codec.bytes_per_token();
        &self.chunks[c as usize].residuals()[s as usize * b..(s as usize + n as usize) * b]
    }

    /// Inverse norms of the reconstructed tokens of internal document `i` (`c + w`
    /// before normalisation), computed for its whole chunk on first use. Centroids are
    /// only ever appended, so they stay valid across updates.
    pub(crate) fn doc_inv_norms(&self, i: usize) -> &[f32] {
        let (c, s, n) = self.doc_loc[i];
        let chunk = &self.chunks[c as usize];
        let all = chunk.inv_norms.get_or_init(|| {
            self.codec
                .inv_norms(&self.centroids, chunk.codes(), chunk.residuals())
        });
        &all[s as usize..s as usize + n as usize]
    }

    /// Decompressed (approximate, unit-norm) token embeddings of document `id`.
    pub fn reconstruct(&self, id: &str) -> Option<colzero_core::MultiVector> {
        let &i = self.lookup.get(id)?;
        let dim = self.manifest.dim;
        let codes = self.doc_codes(i as usize).to_u32();
        let res = self.doc_residuals(i as usize);
        let bpt = self.codec.bytes_per_token();
        let mut data = vec![0.0f32; codes.len() * dim];
        for (t, &c) in codes.iter().enumerate() {
            let cent = &self.centroids[c as usize * dim..(c as usize + 1) * dim];
            self.codec.decode_into(
                cent,
                &res[t * bpt..(t + 1) * bpt],
                &mut data[t * dim..(t + 1) * dim],
            );
        }
        colzero_core::MultiVector::new(dim, data).ok()
    }

    /// Directory of the index.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Number of live documents.
    pub fn len(&self) -> usize {
        self.lookup.len()
    }

    /// True when no live document remains.
    pub fn is_empty(&self) -> bool {
        self.lookup.is_empty()
    }

    /// True when `id` is a live document.
    pub fn contains(&self, id: &str) -> bool {
        self.lookup.contains_key(id)
    }

    /// Live document ids, in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids
            .iter()
            .zip(&self.deleted)
            .filter(|(_, &d)| !d)
            .map(|(id, _)| id.as_str())
    }

    /// Fingerprint of the model whose document vectors the index holds, when recorded.
    pub fn model_fingerprint(&self) -> Option<&str> {
        self.manifest.model_fingerprint.as_deref()
    }

    /// The manifest currently committed.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Summary figures.
    pub fn info(&self) -> IndexInfo {
        let m = &self.manifest;
        let num_tokens: u64 = m.chunks.iter().map(|c| c.num_tokens).sum();
        let manifest_bytes = std::fs::metadata(self.dir.join(format::MANIFEST))
            .map(|md| md.len())
            .unwrap_or(0);
        let sum = |f: &dyn Fn(&ChunkRef) -> u64| m.chunks.iter().map(f).sum::<u64>();
        let doclens = sum(&|c| 4 * c.num_docs as u64);
        let codes = sum(&|c| c.code_bytes as u64 * c.num_tokens);
        let residuals = sum(&|c| c.file.bytes) - doclens - codes;
        let parts = [
            ("manifest", manifest_bytes),
            ("centroids", m.centroids.bytes),
            ("ivf", m.ivf.bytes),
            ("id table", m.docs.bytes),
            ("doclens", doclens),
            ("codes", codes),
            ("residuals", residuals),
        ];
        let per_token = |b: u64| b as f64 / num_tokens.max(1) as f64;
        let breakdown = parts
            .iter()
            .map(|&(part, bytes)| PartBytes {
                part: part.to_string(),
                bytes,
                bytes_per_token: per_token(bytes),
            })
            .collect();
        let bytes_on_disk = parts.iter().map(|p| p.1).sum::<u64>();
        IndexInfo {
            format_version: m.format_version,
            generation: m.generation,
            dim: m.dim,
            nbits: m.codec.nbits,
            num_documents: self.len(),
            num_deleted: self.ids.len() - self.len(),
            num_tokens,
            num_centroids: m.num_centroids,
            num_chunks: m.chunks.len(),
            bytes_on_disk,
            bytes_per_token: per_token(bytes_on_disk),
            breakdown,
        }
    }
}
