//! Crash-safe file output.
//!
//! Contract: [`atomic_write`] writes to a temporary file in the destination's directory,
//! flushes and fsyncs it, then renames it over the destination. A crash or an error at
//! any point leaves either the old file or the new one, never a half-written file.
//! [`atomic_dir`] does the same for a whole directory (checkpoints, indexes).

use crate::error::{CoreError, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes a file atomically: `write` fills a buffered temp file which is then renamed to
/// `path`. Parent directories are created.
pub fn atomic_write<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let dir = parent_of(path);
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".colzero-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| CoreError::io(&dir, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut w = BufWriter::new(file);
    write(&mut w).map_err(|e| CoreError::io(path, e))?;
    let file = w
        .into_inner()
        .map_err(|e| CoreError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| CoreError::io(path, e))?;
    // tempfile creates 0600 files; outputs are ordinary files (0644), shareable like any
    // file the user writes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&*tmp_path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| CoreError::io(path, e))?;
    }
    tmp_path
        .persist(path)
        .map_err(|e| CoreError::io(path, e.error))?;
    Ok(())
}

/// Writes bytes to `path` atomically.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |w| w.write_all(bytes))
}

/// Builds a directory atomically: `build` fills a fresh temp directory next to `path`,
/// which then replaces `path` (an existing `path` is moved aside and removed only after
/// the new one is in place).
pub fn atomic_dir<F, E>(path: &Path, build: F) -> std::result::Result<(), E>
where
    F: FnOnce(&Path) -> std::result::Result<(), E>,
    E: From<CoreError>,
{
    let dir = parent_of(path);
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".colzero-")
        .tempdir_in(&dir)
        .map_err(|e| CoreError::io(&dir, e))?;
    build(tmp.path())?;
    let staged = tmp.keep();
    if path.exists() {
        let old = dir.join(format!(
            ".colzero-old-{}-{}",
            std::process::id(),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("dir")
        ));
        std::fs::rename(path, &old).map_err(|e| CoreError::io(path, e))?;
        std::fs::rename(&staged, path).map_err(|e| CoreError::io(path, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, path).map_err(|e| CoreError::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        atomic_write_bytes(&p, b"old").unwrap();
        let r = atomic_write(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        // no temp files left behind
        let n = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(n, 1);
    }

    #[test]
    fn atomic_dir_replaces_whole_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ckpt");
        atomic_dir::<_, CoreError>(&p, |d| {
            atomic_write_bytes(&d.join("x"), b"1")?;
            Ok(())
        })
        .unwrap();
        let r = atomic_dir::<_, CoreError>(&p, |_| Err(CoreError::Invalid("fail".into())));
        assert!(r.is_err());
        assert_eq!(std::fs::read(p.join("x")).unwrap(), b"1");
        atomic_dir::<_, CoreError>(&p, |d| {
            atomic_write_bytes(&d.join("y"), b"2")?;
            Ok(())
        })
        .unwrap();
        assert!(!p.join("x").exists());
        assert_eq!(std::fs::read(p.join("y")).unwrap(), b"2");
    }
}
