//! [`IndexWriter`]: the one writer of an index directory, and the reader/writer protocol
//! that keeps searches working while it commits.
//!
//! Contract (the model is tantivy's single `IndexWriter` over committed snapshots):
//! - **One writer.** Every write (build into an existing directory, add, delete) holds an
//!   exclusive `flock` on `writer.lock` ([`WRITER_LOCK`]) from before it reads the
//!   committed manifest until after its commit or rollback. A second writer fails with a
//!   clear "held by process N" error, or waits ([`Wait`]). The kernel drops the lock when
//!   its holder dies, so a killed writer never leaves a stale lock.
//! - **Unique generations.** Under the lock the writer takes a generation one above every
//!   generation named by the manifest or by any file in the directory (litter of killed
//!   writers included, counted before it is removed), so it never writes over a file
//!   that anybody may read.
//! - **All or nothing.** [`IndexWriter::add`] and [`IndexWriter::delete`] only stage:
//!   chunk files are written under the new generation but nothing references them. One
//!   [`IndexWriter::commit`] writes the inverted file, id table (and centroids when they
//!   grew), then renames the manifest: the index is the old one before that rename and the
//!   new one after it. A writer dropped without commit (an error, a panic) removes the
//!   files it staged, so a failed command leaves the directory byte-identical; a killed
//!   one leaves unreferenced files that the next writer removes.
//! - **Snapshot readers.** [`PlaidIndex::open`] holds a shared lock on `readers.lock`
//!   ([`READERS_LOCK`]) while it reads the manifest and maps or loads every file it names;
//!   after that, the snapshot lives in memory and in mappings that survive unlinking, so
//!   it can be searched for as long as the caller keeps it. Garbage collection (removing
//!   files no longer referenced) takes that lock exclusively: it never runs while a
//!   reader is between reading a manifest and holding its files. When readers keep it
//!   busy, collection is deferred to the next writer (or `colzero index check`).
//! - Garbage is: data files of other generations than the manifest references, and
//!   `.colzero-*.tmp` temp files; collection runs only under the writer lock, so no live
//!   writer owns any of them.

use crate::error::{IndexError, Result};
use crate::format::{self, ChunkRef, DocTable, Manifest};
use crate::ivf::IvfLists;
use crate::plaid::PlaidIndex;
use colzero_core::fault;
use colzero_core::lock::{FileLock, Wait};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::locks::{collect_garbage_locked, lock_writer};
pub use crate::locks::{READERS_LOCK, READER_WAIT, WRITER_LOCK};

/// Data staged by [`IndexWriter::add`]: the centroids (grown by outliers), the inverted
/// lists and the chunk files written so far.
pub(crate) struct Staged {
    pub(crate) centroids: Vec<f32>,
    pub(crate) panels: Vec<f32>,
    pub(crate) lists: IvfLists,
    pub(crate) expanded: bool,
    pub(crate) chunks: Vec<ChunkRef>,
}

/// Files written under the new generation; removed when dropped unless kept (committed).
#[derive(Default)]
pub(crate) struct StagedFiles {
    paths: Vec<PathBuf>,
    keep: bool,
}

impl StagedFiles {
    pub(crate) fn push(&mut self, p: PathBuf) {
        self.paths.push(p);
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        if !self.keep {
            for f in &self.paths {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// The one writer of an index directory (see module docs).
pub struct IndexWriter {
    pub(crate) lock: FileLock,
    pub(crate) base: PlaidIndex,
    pub(crate) generation: u64,
    /// Id table after the staged changes.
    pub(crate) table: DocTable,
    /// Live ids after the staged changes.
    pub(crate) lookup: HashMap<String, u32>,
    pub(crate) staged: Option<Staged>,
    /// Files written under the new generation (removed on rollback).
    pub(crate) written: StagedFiles,
    pub(crate) changed: bool,
    /// Set when a staging step failed half-way: the writer can only be rolled back.
    pub(crate) poisoned: bool,
}

impl IndexWriter {
    /// Locks `dir` for writing, removes litter of killed writers and opens the committed
    /// snapshot as the base of the next commit.
    pub fn open(dir: &Path, wait: Wait) -> Result<Self> {
        Self::open_with(dir, wait, None)
    }

    /// [`IndexWriter::open`], reusing the chunks of `current` (a snapshot of the same
    /// directory the caller holds, e.g. a service's) instead of checking them again.
    pub fn open_with(dir: &Path, wait: Wait, current: Option<&PlaidIndex>) -> Result<Self> {
        if !dir.join(format::MANIFEST).exists() {
            return Err(IndexError::io(
                dir.join(format::MANIFEST),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no index here"),
            ));
        }
        let lock = lock_writer(dir, wait)?;
        // The generation first (litter counts), then the litter goes.
        let generation = format::next_generation(dir);
        let base = PlaidIndex::open_reusing(dir, current)?;
        collect_garbage_locked(dir, base.manifest());
        let table = base.doc_table();
        let lookup = base.lookup.clone();
        Ok(Self {
            lock,
            base,
            generation,
            table,
            lookup,
            staged: None,
            written: StagedFiles::default(),
            changed: false,
            poisoned: false,
        })
    }

    /// The committed snapshot this writer started from.
    pub fn base(&self) -> &PlaidIndex {
        &self.base
    }

    /// The generation the commit will have.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when `id` is live after the staged changes.
    pub fn contains(&self, id: &str) -> bool {
        self.lookup.contains_key(id)
    }

    /// Live documents after the staged changes.
    pub fn len(&self) -> usize {
        self.lookup.len()
    }

    /// True when no live document remains after the staged changes.
    pub fn is_empty(&self) -> bool {
        self.lookup.is_empty()
    }

    /// Commits the staged changes (one manifest rename) and returns the new snapshot.
    /// With nothing staged, nothing is written and the base is returned.
    pub fn commit(self) -> Result<PlaidIndex> {
        let IndexWriter {
            lock,
            base,
            generation: g,
            mut table,
            staged,
            mut written,
            changed,
            poisoned,
            ..
        } = self;
        if poisoned {
            return Err(IndexError::Invalid(
                "index writer: an earlier step failed; nothing was committed".into(),
            ));
        }
        if !changed {
            return Ok(base);
        }
        let dir = base.dir.clone();
        let version = base.manifest.format_version;
        let mut m: Manifest = base.manifest.clone();
        m.generation = g;
        fault::point("index.commit.begin");
        if let Some(st) = staged {
            if st.expanded {
                let name = format!("centroids-g{g}.bin");
                let bytes = format::centroid_bytes(version, &st.centroids);
                written.push(dir.join(&name));
                m.centroids = format::write_file(&dir, &name, &bytes)?;
                m.num_centroids = st.centroids.len() / m.dim;
                fault::point("index.commit.centroids");
            }
            let name = format!("ivf-g{g}.bin");
            written.push(dir.join(&name));
            m.ivf = format::write_file(&dir, &name, &st.lists.encode(version))?;
            fault::point("index.commit.ivf");
            m.chunks.extend(st.chunks);
        }
        table.deleted.sort_unstable();
        table.deleted.dedup();
        written.push(dir.join(format!("docs-g{g}.json")));
        m.docs = format::write_doc_table(&dir, g, &table)?;
        fault::point("index.commit.docs");
        format::commit_manifest(&dir, &m)?;
        written.keep = true;
        fault::point("index.commit.manifest");
        collect_garbage_locked(&dir, &m);
        fault::point("index.commit.gc");
        // The new snapshot shares the base's verified chunks.
        let index = PlaidIndex::open_reusing(&dir, Some(&base));
        drop(lock);
        index
    }

    /// Drops the staged changes and their files (what dropping the writer does too).
    pub fn rollback(self) {}
}

/// Removes garbage from `dir` under the writer lock, waiting for readers as long as it
/// takes (up to `wait` for the writer lock itself). Returns the number of files removed.
pub fn collect_garbage(dir: &Path, wait: Wait) -> Result<usize> {
    let _lock = lock_writer(dir, wait)?;
    let m = format::read_manifest(dir)?;
    let _readers = FileLock::exclusive(&dir.join(READERS_LOCK), Wait::Up(READER_WAIT))?;
    Ok(format::collect_garbage(dir, &m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{clustered, SyntheticConfig};
    use crate::{build_index, BuildConfig};
    use std::sync::Arc;

    #[test]
    fn a_commit_shares_the_verified_chunks_of_its_base() {
        let (docs, _) = clustered(&SyntheticConfig {
            dim: 32,
            n_docs: 120,
            n_queries: 1,
            n_concepts: 16,
            min_doc_len: 4,
            max_doc_len: 12,
            seed: 3,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let cfg = BuildConfig {
            chunk_docs: 50,
            ..Default::default()
        };
        let first = build_index(dir.path(), &docs[..100], &cfg).unwrap();
        let mut w = IndexWriter::open_with(dir.path(), Wait::No, Some(&first)).unwrap();
        assert!(Arc::ptr_eq(&w.base.chunks[1], &first.chunks[1]));
        let (ids, embs): (Vec<String>, Vec<_>) = docs[100..].iter().cloned().unzip();
        w.add(ids, &embs).unwrap();
        let next = w.commit().unwrap();
        assert_eq!(next.chunks.len(), 3);
        assert!(Arc::ptr_eq(&next.chunks[0], &first.chunks[0]));
        assert_eq!(next.len(), 120);
        // A fresh open maps everything itself and sees the same documents.
        let fresh = PlaidIndex::open(dir.path()).unwrap();
        assert!(!Arc::ptr_eq(&fresh.chunks[0], &first.chunks[0]));
        assert_eq!(fresh.reconstruct("d110"), next.reconstruct("d110"));
    }
}
