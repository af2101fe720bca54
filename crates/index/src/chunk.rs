//! Chunk files: the one place that writes and reads the bulk of an index (the compressed
//! tokens of a run of documents).
//!
//! Contract:
//! - Layout (little-endian): doclens (u32 per document), codes (`code_bytes` = 2 or 4
//!   per token; see `format::code_bytes_for`), residuals (`dim·nbits/8` bytes per token).
//!   Internal ids of a chunk's documents are `first_doc..first_doc + num_docs`.
//! - [`write_chunk`] compresses documents with a [`Quantizer`], records their codes in the
//!   inverted lists under their internal ids, and writes the file atomically
//!   (`format::write_file`).
//! - [`Chunk::open`] maps a chunk named by a manifest and checks it completely: size and
//!   CRC (`format::map_checked`), code width valid for the format version, size equal to
//!   the layout's, every code below the number of centroids, document lengths adding up
//!   to the token count. Any mismatch is [`IndexError::Corrupt`] naming the file.
//! - A mapped chunk is immutable (files are never modified after they are published);
//!   the 8-bit rerank caches its inverse norms in memory (4 bytes per token).

use crate::codec::{Codes, ResidualCodec};
use crate::error::{IndexError, Result};
use crate::format::{self, as_u16s, as_u32s, ChunkRef, Manifest};
use crate::ivf::IvfLists;
use colzero_core::MultiVector;
use std::path::Path;

/// One memory-mapped chunk file.
pub(crate) struct Chunk {
    pub(crate) map: memmap2::Mmap,
    pub(crate) num_docs: usize,
    pub(crate) num_tokens: usize,
    pub(crate) code_bytes: usize,
    /// Inverse norms of the chunk's reconstructed tokens, computed on first use by the
    /// 8-bit rerank (4 bytes per token in memory, nothing on disk).
    pub(crate) inv_norms: std::sync::OnceLock<Vec<f32>>,
}

impl Chunk {
    pub(crate) fn doclens(&self) -> &[u32] {
        as_u32s(&self.map[..4 * self.num_docs])
    }
    pub(crate) fn codes(&self) -> Codes<'_> {
        let s = &self.map[4 * self.num_docs..4 * self.num_docs + self.code_bytes * self.num_tokens];
        if self.code_bytes == 2 {
            Codes::U16(as_u16s(s))
        } else {
            Codes::U32(as_u32s(s))
        }
    }
    pub(crate) fn residuals(&self) -> &[u8] {
        &self.map[4 * self.num_docs + self.code_bytes * self.num_tokens..]
    }
}

impl Chunk {
    /// Maps and validates the chunk `c` of the index in `dir` (see module docs).
    pub(crate) fn open(
        dir: &Path,
        c: &ChunkRef,
        m: &Manifest,
        bytes_per_token: usize,
    ) -> Result<Self> {
        let path = dir.join(&c.file.name);
        let cb = c.code_bytes as usize;
        if cb != 4 && !(cb == 2 && m.format_version >= 2) {
            return Err(IndexError::corrupt(
                &path,
                format!("{cb}-byte codes are not valid in this format version"),
            ));
        }
        let map = format::map_checked(dir, &c.file)?;
        let (nd, nt) = (c.num_docs as usize, c.num_tokens as usize);
        let want = 4 * nd + cb * nt + nt * bytes_per_token;
        if map.len() != want {
            return Err(IndexError::corrupt(
                &path,
                format!("{} bytes, expected {want}", map.len()),
            ));
        }
        let chunk = Chunk {
            map,
            num_docs: nd,
            num_tokens: nt,
            code_bytes: cb,
            inv_norms: std::sync::OnceLock::new(),
        };
        if chunk.codes().max().is_some_and(|c| c >= m.num_centroids) {
            return Err(IndexError::corrupt(&path, "centroid code out of range"));
        }
        let total: u64 = chunk.doclens().iter().map(|&l| l as u64).sum();
        if total != nt as u64 {
            return Err(IndexError::corrupt(&path, "document lengths do not add up"));
        }
        Ok(chunk)
    }
}

/// Flattens multi-vectors, checking they all have dimension `dim`.
pub(crate) fn flatten(embs: &[MultiVector], dim: usize, what: &str) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(embs.iter().map(|e| e.as_slice().len()).sum());
    for (i, e) in embs.iter().enumerate() {
        if e.dim() != dim {
            return Err(IndexError::Dim {
                what: format!("{what} {i}"),
                expected: dim,
                found: e.dim(),
            });
        }
        out.extend_from_slice(e.as_slice());
    }
    Ok(out)
}

/// What compresses a chunk: the codec and the centroids (row-major and panel layout).
pub(crate) struct Quantizer<'a> {
    pub codec: &'a ResidualCodec,
    pub centroids: &'a [f32],
    pub panels: &'a [f32],
}

/// Compresses documents and writes them as chunk file `name` with `code_bytes`-wide codes
/// (2 or 4; see `format.rs`); records their codes in `ivf` under internal ids starting at
/// `first_doc`.
pub(crate) fn write_chunk(
    dir: &Path,
    (name, code_bytes): (&str, u8),
    first_doc: u32,
    embs: &[MultiVector],
    q: &Quantizer<'_>,
    ivf: &mut IvfLists,
) -> Result<ChunkRef> {
    let dim = q.codec.dim();
    let tokens = flatten(embs, dim, "document")?;
    let (codes, residuals) = q.codec.compress(&tokens, q.centroids, q.panels);
    drop(tokens);
    let doclens: Vec<u32> = embs.iter().map(|e| e.n_tokens() as u32).collect();
    let mut start = 0;
    for (i, &len) in doclens.iter().enumerate() {
        ivf.add_doc(first_doc + i as u32, &codes[start..start + len as usize]);
        start += len as usize;
    }
    let mut bytes = format::u32_bytes(&doclens);
    if code_bytes == 2 {
        let narrow: Vec<u16> = codes.iter().map(|&c| c as u16).collect();
        bytes.extend(format::u16_bytes(&narrow));
    } else {
        bytes.extend(format::u32_bytes(&codes));
    }
    bytes.extend_from_slice(&residuals);
    Ok(ChunkRef {
        file: format::write_file(dir, name, &bytes)?,
        first_doc,
        num_docs: embs.len() as u32,
        num_tokens: codes.len() as u64,
        code_bytes,
    })
}
