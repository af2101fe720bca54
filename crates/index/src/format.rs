//! On-disk format of a PLAID index directory (format version [`FORMAT_VERSION`]).
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
//!   and stale temp files are removed after a successful commit ([`collect_garbage`]).
//! - Opening checks, in order: the header line (magic, then version: another version is
//!   [`IndexError::Version`]), the manifest CRC, the JSON, then each data file's size and
//!   CRC ([`IndexError::Corrupt`] naming the file).
//! - Binary files are little-endian: `centroids` = k·dim f32; a chunk = doclens (u32 per
//!   document), codes (u32 per token), residuals (`dim·nbits/8` bytes per token).

use crate::error::{IndexError, Result};
use colzero_core::fsutil::atomic_write_bytes;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
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

/// The JSON body of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub generation: u64,
    pub dim: usize,
    pub num_centroids: usize,
    pub codec: CodecParams,
    pub build: crate::build::BuildConfig,
    pub centroids: FileRef,
    pub ivf: FileRef,
    pub docs: FileRef,
    pub chunks: Vec<ChunkRef>,
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
    if version != FORMAT_VERSION {
        return Err(IndexError::Version {
            path,
            found: version,
            expected: FORMAT_VERSION,
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

/// Removes data files of `dir` that `m` does not reference and stale temp files.
pub fn collect_garbage(dir: &Path, m: &Manifest) {
    let mut keep: Vec<&str> = vec![&m.centroids.name, &m.ivf.name, &m.docs.name];
    keep.extend(m.chunks.iter().map(|c| c.file.name.as_str()));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_tmp = name.starts_with(".colzero-") && name.ends_with(".tmp");
            let old_data = generation_of(&name).is_some() && !keep.contains(&name.as_str());
            if stale_tmp || old_data {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
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
