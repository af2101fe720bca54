//! The lock files of an index directory and the two rules built on them (the protocol is
//! described in `writer.rs`): writers hold `writer.lock` exclusively; readers hold
//! `readers.lock` shared while they open a snapshot, and garbage collection holds it
//! exclusively, so it never removes files a reader is about to map.

use crate::error::{IndexError, Result};
use crate::format::{self, Manifest};
use colzero_core::lock::{FileLock, Wait};
use std::path::Path;
use std::time::Duration;

/// Lock file held exclusively by the one writer of an index.
pub const WRITER_LOCK: &str = "writer.lock";
/// Lock file held shared by readers while they open a snapshot, exclusively by garbage
/// collection.
pub const READERS_LOCK: &str = "readers.lock";

/// How long a reader waits for a garbage collection to finish before reporting "busy".
pub const READER_WAIT: Duration = Duration::from_secs(30);
/// How long garbage collection waits for readers that are opening a snapshot.
const GC_WAIT: Duration = Duration::from_millis(500);

/// Takes the writer lock of `dir` (the directory must exist).
pub(crate) fn lock_writer(dir: &Path, wait: Wait) -> Result<FileLock> {
    // The readers' lock file exists from the first write on, so that reading never has
    // to create files in an index directory.
    touch(&dir.join(READERS_LOCK))?;
    Ok(FileLock::exclusive(&dir.join(WRITER_LOCK), wait)?)
}

fn touch(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| IndexError::io(path, e))
}

/// The shared lock a reader holds while opening a snapshot of `dir` (`None` for a
/// directory without a lock file that cannot have one: read-only, never written by this
/// version).
pub(crate) fn lock_reader(dir: &Path) -> Result<Option<FileLock>> {
    let path = dir.join(READERS_LOCK);
    if !dir.join(format::MANIFEST).exists() {
        return Ok(None);
    }
    Ok(FileLock::shared_if_writable(&path, Wait::Up(READER_WAIT))?)
}

/// Removes garbage (see module docs) once no reader is opening a snapshot; the caller
/// holds the writer lock. Returns the number of files removed, or `None` when readers
/// kept the directory busy and collection was deferred.
pub(crate) fn collect_garbage_locked(dir: &Path, m: &Manifest) -> Option<usize> {
    let lock = FileLock::exclusive(&dir.join(READERS_LOCK), Wait::Up(GC_WAIT)).ok()?;
    let n = format::collect_garbage(dir, m);
    drop(lock);
    Some(n)
}
