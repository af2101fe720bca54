//! On-disk format of a PLAID index directory (format version [`FORMAT_VERSION`]; versions
//! [`OLDEST_FORMAT_VERSION`]..=[`FORMAT_VERSION`] are read).
//!
//! Contract:
//! - `manifest.json` is the single commit point. Its first line is
//!   `colzero-index <version> crc32:<8 hex digits>` and the rest is a JSON [`Manifest`]
//!   whose bytes have that CRC-32. The manifest names every data file with its size and
//!   CRC-32; files are named with the generation that wrote them
//!   (`centroids-g<gen>.bin`, `ivf-g<gen>.bin`, `docs-g<gen>.json`,
//!   `chunk-g<gen>-<seq>.bin`), so a new generation never overwrites a file that the
//!   current manifest references.
//! - Every file is written through `colzero_core::fsutil` (temp file, fsync, rename); the
//!   manifest is written last. A crash at any point leaves the old manifest with all its
//!   files, or the new one with all of its files. Unreferenced files of other generations
//!   and stale temp files are removed after a successful commit ([`collect_garbage`]),
//!   under the locking protocol of `writer.rs` (`writer.lock`, `readers.lock`).
//! - Opening checks, in order: the header line (magic, then version: another version is
//!   [`IndexError::Version`]), the manifest CRC, the JSON, then each data file's size and
//!   CRC ([`IndexError::Corrupt`] naming the file).
//! - Binary files are little-endian. A chunk = doclens (u32 per document), codes
//!   ([`ChunkRef::code_bytes`] = 2 or 4 bytes per token), residuals (`dim·nbits/8` bytes
//!   per token).
//! - Version 1: centroids k·dim f32; codes always u32; inverted file = `(k + 1)` u64
//!   offsets then u32 document ids (see `ivf.rs`).
//! - Version 2 (written by this build): centroids k·dim f16 (centroids are rounded to f16
//!   right after k-means, before the codec is trained and tokens are encoded, so codes and
//!   residuals are computed against exactly the stored values); codes u16 in chunks written
//!   while K <= 65,536, u32 otherwise (per chunk); inverted file = per centroid a LEB128
//!   varint list length, then the ascending ids as varint gaps (first id, then
//!   differences). At dim 128, nbits 2 this is 32 B residuals + 2 B code per token plus
//!   per-document and per-centroid overhead.
//! - An index keeps the version it was built with: `add`/`delete` on a version 1 index
//!   write version 1 files.

use crate::error::{IndexError, Result};
use colzero_core::fsutil::atomic_write_bytes;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format version this build writes (it reads every version from
/// [`OLDEST_FORMAT_VERSION`] to this one).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build still reads (and updates in place).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Name of the manifest file inside an index directory.
pub const MANIFEST: &str = "manifest.json";
const MAGIC: &str = "colzero-index";

/// A data file referenced by the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// One chunk of compressed documents (internal ids `first_doc..first_doc + num_docs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub file: FileRef,
    pub first_doc: u32,
    pub num_docs: u32,
    pub num_tokens: u64,
    /// Bytes per centroid code: 2 (u16) or 4 (u32; version 1 chunks, and absent = 4).
    #[serde(default = "four", skip_serializing_if = "is_four")]
    pub code_bytes: u8,
}

fn four() -> u8 {
    4
}

fn is_four(v: &u8) -> bool {
    *v == 4
}

/// Code width for a chunk written into an index of format `version` with `k` centroids.
pub fn code_bytes_for(version: u32, k: usize) -> u8 {
    if version >= 2 && k <= 1 << 16 {
        2
    } else {
        4
    }
}

/// Rounds centroids to the precision format `version` stores them in (f16 from
/// version 2; unchanged for version 1).
pub fn round_centroids(version: u32, c: &mut [f32]) {
    if version >= 2 {
        c.iter_mut()
            .for_each(|v| *v = half::f16::from_f32(*v).to_f32());
    }
}

/// On-disk bytes of the centroids in format `version`.
pub fn centroid_bytes(version: u32, c: &[f32]) -> Vec<u8> {
    if version >= 2 {
        c.iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect()
    } else {
        f32_bytes(c)
    }
}

/// Centroids from their on-disk bytes in format `version` (`None` when the size is not
/// `k · dim` values).
pub fn centroids_from(version: u32, bytes: &[u8], k: usize, dim: usize) -> Option<Vec<f32>> {
    let width = if version >= 2 { 2 } else { 4 };
    if bytes.len() != k * dim * width {
        return None;
    }
    Some(if version >= 2 {
        bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()
    } else {
        f32s(bytes)
    })
}

/// Codec parameters (see `codec.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecParams {
    pub nbits: usize,
    pub cutoffs: Vec<f32>,
    pub weights: Vec<f32>,
    pub cluster_threshold: f32,
}

/// External ids by internal id, and the deleted (tombstoned) internal ids.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocTable {
    pub ids: Vec<String>,
    pub deleted: Vec<u32>,
}

/// The settings an index keeps for its later updates (the build-time knobs of
/// `BuildConfig` that only steer one build — chunk size, corpus size estimate, centroid
/// count or ceiling — are not stored). Stored under the JSON key `build` so that
/// manifests written before and after this split read the same way (unknown keys of old
/// manifests are ignored; the format version lives in the header and `format_version`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Residual bits per dimension (also in `CodecParams`; kept for readers of old files).
    pub nbits: usize,
    /// k-means iterations for the centroids that updates add.
    pub kmeans_niters: usize,
    /// k-means subsample factor, and the number of outliers per added centroid.
    pub max_points_per_centroid: usize,
    /// Seed of every random choice (updates derive theirs from it and the generation).
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nbits: 2,
            kmeans_niters: 4,
            max_points_per_centroid: 256,
            seed: 42,
        }
    }
}

/// The JSON body of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub generation: u64,
    pub dim: usize,
    pub num_centroids: usize,
    pub codec: CodecParams,
    #[serde(rename = "build")]
    pub settings: Settings,
    pub centroids: FileRef,
    pub ivf: FileRef,
    pub docs: FileRef,
    pub chunks: Vec<ChunkRef>,
    /// Fingerprint of the model whose document vectors the index holds (see
    /// `colzero_model::model_fingerprint`), when the builder knew it; queries from another
    /// model are refused by the CLI. Absent in indexes built before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_fingerprint: Option<String>,
}

/// Writes `bytes` as `dir/name` atomically and returns its reference.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<FileRef> {
    atomic_write_bytes(&dir.join(name), bytes)?;
    Ok(FileRef {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    })
}

/// Writes the id table of generation `g`.
pub(crate) fn write_doc_table(dir: &Path, g: u64, table: &DocTable) -> Result<FileRef> {
    let bytes = serde_json::to_vec(table)
        .map_err(|e| IndexError::Invalid(format!("cannot serialise id table: {e}")))?;
    write_file(dir, &format!("docs-g{g}.json"), &bytes)
}

/// Serialises a manifest with its header line.
pub fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>> {
    let body = serde_json::to_vec_pretty(m)
        .map_err(|e| IndexError::Invalid(format!("cannot serialise manifest: {e}")))?;
    let mut out = format!(
        "{MAGIC} {} crc32:{:08x}\n",
        m.format_version,
        crc32fast::hash(&body)
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Commits a manifest (atomic write; the index now is this generation), then fsyncs
/// the directory where the platform allows it.
pub fn commit_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    atomic_write_bytes(&dir.join(MANIFEST), &manifest_bytes(m)?)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads and validates `dir/manifest.json` (header, version, CRC, JSON).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| IndexError::corrupt(&path, "no header line"))?;
    let header = std::str::from_utf8(&bytes[..nl])
        .map_err(|_| IndexError::corrupt(&path, "header line is not UTF-8"))?;
    let parts: Vec<&str> = header.split(' ').collect();
    if parts.len() != 3 || parts[0] != MAGIC {
        return Err(IndexError::corrupt(
            &path,
            format!("not a colzero index manifest (header `{header}`)"),
        ));
    }
    let version: u32 = parts[1]
        .parse()
        .map_err(|_| IndexError::corrupt(&path, format!("bad version `{}`", parts[1])))?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(IndexError::Version {
            path,
            found: version,
            oldest: OLDEST_FORMAT_VERSION,
            newest: FORMAT_VERSION,
        });
    }
    let crc = parts[2]
        .strip_prefix("crc32:")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| IndexError::corrupt(&path, format!("bad checksum field `{}`", parts[2])))?;
    let body = &bytes[nl + 1..];
    let actual = crc32fast::hash(body);
    if actual != crc {
        return Err(IndexError::corrupt(
            &path,
            format!("checksum mismatch (header says {crc:08x}, content has {actual:08x})"),
        ));
    }
    let m: Manifest = serde_json::from_slice(body)
        .map_err(|e| IndexError::corrupt(&path, format!("bad manifest JSON: {e}")))?;
    if m.format_version != version {
        return Err(IndexError::corrupt(
            &path,
            "header and body versions differ",
        ));
    }
    Ok(m)
}

/// Memory-maps a referenced file and checks its size and CRC-32.
pub fn map_checked(dir: &Path, f: &FileRef) -> Result<memmap2::Mmap> {
    let path = dir.join(&f.name);
    let file = std::fs::File::open(&path).map_err(|e| IndexError::io(&path, e))?;
    // SAFETY: colzero never modifies a data file after the rename that published it
    // (new data goes to new files), so the mapping stays valid and immutable.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IndexError::io(&path, e))?;
    if map.len() as u64 != f.bytes {
        return Err(IndexError::corrupt(
            &path,
            format!("size is {} bytes, manifest says {}", map.len(), f.bytes),
        ));
    }
    let crc = crc32fast::hash(&map);
    if crc != f.crc32 {
        return Err(IndexError::corrupt(
            &path,
            format!(
                "checksum mismatch (manifest says {:08x}, file has {crc:08x})",
                f.crc32
            ),
        ));
    }
    Ok(map)
}

/// The generation a new write into `dir` should use: one more than any generation named
/// by a file there (1 for a new directory).
pub fn next_generation(dir: &Path) -> u64 {
    let mut max = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Some(g) = generation_of(&e.file_name().to_string_lossy()) {
                max = max.max(g);
            }
        }
    }
    if let Ok(m) = read_manifest(dir) {
        max = max.max(m.generation);
    }
    max + 1
}

/// The generation in a data file name (`<kind>-g<gen>[-...].<ext>`), if it is one.
fn generation_of(name: &str) -> Option<u64> {
    let rest = ["centroids-g", "ivf-g", "docs-g", "chunk-g"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes data files of `dir` that `m` does not reference and stale temp files; returns
/// how many were removed. Only the holder of the writer lock may call this, and only
/// while no reader is opening a snapshot (see `writer.rs`).
pub fn collect_garbage(dir: &Path, m: &Manifest) -> usize {
    let mut n = 0;
    let mut keep: Vec<&str> = vec![&m.centroids.name, &m.ivf.name, &m.docs.name];
    keep.extend(m.chunks.iter().map(|c| c.file.name.as_str()));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_tmp = name.starts_with(".colzero-") && name.ends_with(".tmp");
            let old_data = generation_of(&name).is_some() && !keep.contains(&name.as_str());
            if (stale_tmp || old_data) && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Names in `dir` that belong to no part of the index `m` describes: neither the
/// manifest, a file it references, nor a lock file (`writer.lock`, `readers.lock`).
/// Files other tools keep beside an index (the service's `metadata.sqlite*`) count too;
/// the crash tests use this to prove a directory holds no litter.
pub fn unreferenced_files(dir: &Path, m: &Manifest) -> Vec<String> {
    let mut keep: Vec<&str> = vec![MANIFEST, "writer.lock", "readers.lock"];
    keep.extend([&m.centroids.name, &m.ivf.name, &m.docs.name].map(String::as_str));
    keep.extend(m.chunks.iter().map(|c| c.file.name.as_str()));
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !keep.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Little-endian u32 values of a byte slice.
pub fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// Little-endian f32 values of a byte slice.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// Little-endian bytes of u32 values.
pub fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian bytes of u16 values.
pub fn u16_bytes(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Zero-copy view of little-endian u16 values inside a mapped file (the section starts
/// at a multiple of 2).
pub fn as_u16s(bytes: &[u8]) -> &[u16] {
    assert!(
        cfg!(target_endian = "little") && (bytes.as_ptr() as usize).is_multiple_of(2),
        "colzero indexes need a little-endian platform and 2-byte aligned sections"
    );
    // SAFETY: alignment checked above; any 2 bytes are a valid u16; length truncated.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const u16, bytes.len() / 2) }
}

/// Zero-copy view of little-endian u32 values inside a mapped file (the mapping is page
/// aligned and every u32 array starts at a multiple of 4).
pub fn as_u32s(bytes: &[u8]) -> &[u32] {
    assert!(
        cfg!(target_endian = "little") && (bytes.as_ptr() as usize).is_multiple_of(4),
        "colzero indexes need a little-endian platform and 4-byte aligned sections"
    );
    // SAFETY: alignment checked above; any 4 bytes are a valid u32; length truncated.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const u32, bytes.len() / 4) }
}
