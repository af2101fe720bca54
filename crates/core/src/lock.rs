//! Advisory file locks: one writer per index, training run or output directory.
//!
//! Contract:
//! - [`FileLock::exclusive`] takes an exclusive `flock(2)` lock on a lock file (created if
//!   missing, never deleted: deleting a lock file that another process has open would let
//!   two holders in). While held, the file holds `pid <pid>` so that a refused caller can
//!   say who holds it; on release the file is truncated to empty again, so a directory
//!   that a failed operation touched is byte-identical to before.
//! - Stale locks cannot exist: the kernel drops a `flock` when its holder exits, however it
//!   exits (kill -9 included). A pid left in the file by a killed holder is ignored.
//! - [`Wait`] says what to do when the lock is held: fail at once with
//!   [`CoreError::Locked`] naming the file and the holder, or poll until a deadline.
//! - [`FileLock::shared`] takes a shared lock (readers): any number of shared holders, no
//!   exclusive one. [`FileLock::try_exclusive`] returns `None` instead of waiting.
//! - Locks are per open file description: two handles in one process exclude each other
//!   exactly as two processes do. A lock file that cannot be created because the directory
//!   is read-only is reported as such ([`FileLock::shared_if_writable`] skips it: nobody
//!   can write there either).
//! - Local file systems only (flock on NFS is emulated with byte-range locks on Linux and
//!   is as good as the server's lock manager).

use crate::error::{CoreError, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to do when a lock is held by someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once with [`CoreError::Locked`].
    No,
    /// Retry until this much time has passed, then fail with [`CoreError::Locked`].
    Up(Duration),
}

impl Wait {
    /// `--wait SECONDS` as a wait policy (`None` → [`Wait::No`]).
    pub fn from_secs(secs: Option<f64>) -> Self {
        match secs {
            Some(s) if s > 0.0 => Wait::Up(Duration::from_secs_f64(s)),
            _ => Wait::No,
        }
    }
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    exclusive: bool,
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| CoreError::io(path, e))
}

/// The pid written in a lock file by its last exclusive holder, if any.
pub fn holder_pid(path: &Path) -> Option<u32> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    s.trim().strip_prefix("pid ")?.trim().parse().ok()
}

fn locked_error(path: &Path, holder: Option<u32>, what: &str) -> CoreError {
    CoreError::Locked {
        path: path.to_path_buf(),
        holder: match holder {
            Some(p) => format!("{what} held by process {p}"),
            None => format!("{what} held by another process"),
        },
    }
}

impl FileLock {
    /// Takes the exclusive lock on `path` (see module docs).
    pub fn exclusive(path: &Path, wait: Wait) -> Result<Self> {
        let file = open_lock_file(path)?;
        let deadline = match wait {
            Wait::No => None,
            Wait::Up(d) => Some(Instant::now() + d),
        };
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if deadline.is_none_or(|d| Instant::now() >= d) {
                        return Err(locked_error(path, holder_pid(path), "exclusive lock"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(CoreError::io(path, e)),
            }
        }
        let mut lock = Self {
            file,
            path: path.to_path_buf(),
            exclusive: true,
        };
        lock.write_holder()?;
        Ok(lock)
    }

    /// The exclusive lock if it is free now, `None` if someone holds it.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        match Self::exclusive(path, Wait::No) {
            Ok(l) => Ok(Some(l)),
            Err(CoreError::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes a shared lock on `path`, waiting as `wait` says for an exclusive holder.
    pub fn shared(path: &Path, wait: Wait) -> Result<Self> {
        let file = open_lock_file(path)?;
        let deadline = match wait {
            Wait::No => None,
            Wait::Up(d) => Some(Instant::now() + d),
        };
        loop {
            match file.try_lock_shared() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if deadline.is_none_or(|d| Instant::now() >= d) {
                        return Err(locked_error(path, holder_pid(path), "exclusive lock"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(CoreError::io(path, e)),
            }
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            exclusive: false,
        })
    }

    /// A shared lock on `path`, or `None` when the lock file cannot be created because
    /// its directory is read-only (then no writer can change that directory either).
    pub fn shared_if_writable(path: &Path, wait: Wait) -> Result<Option<Self>> {
        if !path.exists() {
            match OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
            {
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::PermissionDenied
                        || e.raw_os_error() == Some(30) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(CoreError::io(path, e)),
            }
        }
        match Self::shared(path, wait) {
            Ok(l) => Ok(Some(l)),
            Err(CoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied
                    || source.raw_os_error() == Some(30) =>
            {
                // Open for writing refused (read-only file or mount): read-only access.
                let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
                file.lock_shared().map_err(|e| CoreError::io(path, e))?;
                Ok(Some(Self {
                    file,
                    path: path.to_path_buf(),
                    exclusive: false,
                }))
            }
            Err(e) => Err(e),
        }
    }

    fn write_holder(&mut self) -> Result<()> {
        let text = format!("pid {}\n", std::process::id());
        self.file
            .set_len(0)
            .and_then(|_| self.file.rewind())
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .map_err(|e| CoreError::io(&self.path, e))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if self.exclusive {
            let _ = self.file.set_len(0);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_names_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("writer.lock");
        let a = FileLock::exclusive(&p, Wait::No).unwrap();
        assert_eq!(holder_pid(&p), Some(std::process::id()));
        let err = FileLock::exclusive(&p, Wait::No).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("writer.lock"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        assert!(FileLock::shared(&p, Wait::No).is_err());
        drop(a);
        // Released: empty again, and free for the next holder.
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        let b = FileLock::try_exclusive(&p).unwrap();
        assert!(b.is_some());
    }

    #[test]
    fn shared_locks_coexist_and_block_writers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gc.lock");
        let r1 = FileLock::shared(&p, Wait::No).unwrap();
        let r2 = FileLock::shared(&p, Wait::No).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(r1);
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(r2);
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn waiting_writer_gets_the_lock_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("writer.lock");
        let a = FileLock::exclusive(&p, Wait::No).unwrap();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            FileLock::exclusive(&p2, Wait::Up(Duration::from_secs(10))).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(a);
        t.join().unwrap().unwrap();
        // A bounded wait that runs out is the same clear error.
        let _held = FileLock::exclusive(&p, Wait::No).unwrap();
        let t0 = Instant::now();
        let err = FileLock::exclusive(&p, Wait::Up(Duration::from_millis(100))).unwrap_err();
        assert!(matches!(err, CoreError::Locked { .. }));
        assert!(t0.elapsed() >= Duration::from_millis(100));
    }
}
