//! Crash-safe file output.
//!
//! Contract: [`atomic_write`] writes to a temporary file in the destination's directory,
//! flushes and fsyncs it, then renames it over the destination. A crash or an error at
//! any point leaves either the old file or the new one, never a half-written file.
//! [`atomic_dir`] does the same for a whole directory (checkpoints, indexes, models): the
//! new directory is built beside `path` and swapped in — on Linux with one
//! `renameat2(RENAME_EXCHANGE)`, so `path` always exists; elsewhere (or on file systems
//! without it) by moving the old one aside as `.colzero-old-<pid>-<name>` and renaming
//! the new one in. [`recover_dir`] finishes a swap that a killed process left half done
//! (it puts the old directory back when `path` is missing) and is run by `atomic_dir`
//! itself; readers may call it too. Temp names carry the creating pid
//! (`.colzero-<pid>-<random>.tmp`, see [`litter`]); the temps of dead processes in a
//! destination directory are removed the first time a process writes there. Fault
//! points: `fsutil.write.synced` (temp file written, not yet renamed),
//! `fsutil.swap.staged` (new directory built, nothing swapped),
//! `fsutil.swap.aside` (fallback only: old moved aside, new not in place),
//! `fsutil.swap.placed` (new in place, old not yet removed). `COLZERO_SWAP_FALLBACK=1`
//! forces the two-rename fallback (for crash tests of that path).

mod guard;
pub mod litter;

pub use guard::{
    check_replaceable_dir, ensure_dir_output_not_input, ensure_not_part_of,
    ensure_output_not_input, is_missing_or_empty, resolve,
};
pub use litter::{clean_stale, pid_alive};

use crate::error::{CoreError, Result};
use crate::fault;
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
    litter::clean_stale_once(&dir);
    let tmp = tempfile::Builder::new()
        .prefix(&litter::temp_prefix())
        .suffix(litter::TEMP_SUFFIX)
        .tempfile_in(&dir)
        .map_err(|e| CoreError::io(&dir, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut w = BufWriter::new(file);
    write(&mut w).map_err(|e| CoreError::io(path, e))?;
    let file = w
        .into_inner()
        .map_err(|e| CoreError::io(path, e.into_error()))?;
    file.sync_all().map_err(|e| CoreError::io(path, e))?;
    fault::point("fsutil.write.synced");
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

/// `path` with a real last component (`.`, `..` and a trailing `/` resolved), so that
/// its parent is where the swap happens.
fn swap_target(path: &Path) -> PathBuf {
    // `components` drops interior and trailing `.` and trailing slashes ("m/." -> "m").
    let clean: PathBuf = path.components().collect();
    if clean.file_name().is_some() {
        return clean;
    }
    guard::resolve(path)
}

/// Finishes or undoes a directory swap of `path` that a killed process left half done:
/// when `path` is missing and a `.colzero-old-<pid>-<name>` of a dead process lies
/// beside it, that (complete, previous) directory is put back; when `path` exists, such
/// leftovers are removed. Returns whether anything was changed.
pub fn recover_dir(path: &Path) -> Result<bool> {
    let path = swap_target(path);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(false);
    };
    let dir = parent_of(&path);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(false);
    };
    let mut aside: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let Ok(n) = e.file_name().into_string() else {
            continue;
        };
        if let Some(litter::TempName::Old { pid, name: target }) = litter::parse(&n) {
            if target == name && pid != std::process::id() && !pid_alive(pid) {
                let t = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                aside.push((t, e.path()));
            }
        }
    }
    if aside.is_empty() {
        return Ok(false);
    }
    aside.sort();
    if std::fs::symlink_metadata(&path).is_err() {
        let (_, newest) = aside.pop().expect("not empty");
        std::fs::rename(&newest, &path).map_err(|e| CoreError::io(&path, e))?;
    }
    for (_, p) in aside {
        let _ = std::fs::remove_dir_all(p);
    }
    Ok(true)
}

/// Atomically exchanges two existing paths (Linux `renameat2(RENAME_EXCHANGE)`);
/// `Ok(false)` when the platform or file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::ffi::CString;
    if std::env::var_os("COLZERO_SWAP_FALLBACK").is_some_and(|v| v == "1") {
        return Ok(false);
    }
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: two valid NUL-terminated paths; renameat2 does not keep the pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<bool> {
    Ok(false)
}

/// Builds a directory atomically: `build` fills a fresh temp directory next to `path`,
/// which then replaces `path` (see module docs: `path` is never seen missing or half
/// written, and a swap cut short by a kill is recovered by the next call).
pub fn atomic_dir<F, E>(path: &Path, build: F) -> std::result::Result<(), E>
where
    F: FnOnce(&Path) -> std::result::Result<(), E>,
    E: From<CoreError>,
{
    let path = &swap_target(path);
    let dir = parent_of(path);
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io(&dir, e))?;
    recover_dir(path)?;
    litter::clean_stale_once(&dir);
    let tmp = tempfile::Builder::new()
        .prefix(&litter::temp_prefix())
        .suffix(litter::TEMP_SUFFIX)
        .tempdir_in(&dir)
        .map_err(|e| CoreError::io(&dir, e))?;
    build(tmp.path())?;
    fault::point("fsutil.swap.staged");
    // From here on the temp directory is removed by hand on failure (it may hold the
    // old directory after an exchange).
    let staged = tmp.keep();
    let fail = |e: std::io::Error, staged: &Path| {
        let _ = std::fs::remove_dir_all(staged);
        CoreError::io(path, e)
    };
    if std::fs::symlink_metadata(path).is_ok() {
        match exchange(&staged, path) {
            Ok(true) => {
                fault::point("fsutil.swap.placed");
                let _ = std::fs::remove_dir_all(&staged);
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => return Err(fail(e, &staged).into()),
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("dir");
        let old = dir.join(litter::old_name(name));
        std::fs::rename(path, &old).map_err(|e| fail(e, &staged))?;
        fault::point("fsutil.swap.aside");
        if let Err(e) = std::fs::rename(&staged, path) {
            let _ = std::fs::rename(&old, path);
            return Err(fail(e, &staged).into());
        }
        fault::point("fsutil.swap.placed");
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&staged, path).map_err(|e| fail(e, &staged))?;
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

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temp_names_carry_the_pid_and_dead_temps_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let dead = litter::tests::dead_pid();
        let stale = dir.path().join(format!(".colzero-{dead}-zzzzzz.tmp"));
        std::fs::write(&stale, b"half").unwrap();
        atomic_write(&dir.path().join("a.txt"), |w| {
            let tmps: Vec<String> = names(dir.path())
                .into_iter()
                .filter(|n| n.starts_with(&litter::temp_prefix()) && n.ends_with(".tmp"))
                .collect();
            assert_eq!(tmps.len(), 1, "{tmps:?}");
            w.write_all(b"new")
        })
        .unwrap();
        assert_eq!(names(dir.path()), vec!["a.txt".to_string()]);
    }

    #[test]
    fn a_swap_killed_between_renames_is_undone() {
        // The on-disk state a kill at `fsutil.swap.aside` leaves: `ckpt` missing, the old
        // directory aside under a dead pid, the new one staged.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let dead = litter::tests::dead_pid();
        let p = d.join("step-3");
        let old = d.join(format!(".colzero-old-{dead}-step-3"));
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("state.json"), b"old").unwrap();
        let staged = d.join(format!(".colzero-{dead}-abcdef.tmp"));
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join("state.json"), b"new").unwrap();
        assert!(recover_dir(&p).unwrap());
        assert_eq!(std::fs::read(p.join("state.json")).unwrap(), b"old");
        // the staged leftover goes with the next write into that folder
        atomic_dir::<_, CoreError>(&d.join("other"), |t| atomic_write_bytes(&t.join("x"), b"1"))
            .unwrap();
        assert_eq!(names(d), vec!["other".to_string(), "step-3".into()]);
        // a swap that completed but was killed before removing the old copy
        std::fs::create_dir(&old).unwrap();
        assert!(recover_dir(&p).unwrap());
        assert!(!old.exists());
        assert_eq!(std::fs::read(p.join("state.json")).unwrap(), b"old");
        // a live process's aside copy is left alone (pid 1 is alive)
        let live = d.join(".colzero-old-1-gone");
        std::fs::create_dir(&live).unwrap();
        assert!(!recover_dir(&d.join("gone")).unwrap());
        assert!(live.exists() && !d.join("gone").exists());
    }

    #[test]
    fn atomic_dir_accepts_dot_paths_and_leaves_no_litter() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("m")).unwrap();
        std::fs::write(d.join("m/old"), b"1").unwrap();
        atomic_dir::<_, CoreError>(&d.join("m/."), |t| atomic_write_bytes(&t.join("new"), b"2"))
            .unwrap();
        assert_eq!(names(&d.join("m")), vec!["new".to_string()]);
        assert_eq!(names(d), vec!["m".to_string()]);
        let r = atomic_dir::<_, CoreError>(&d.join("m"), |t| {
            atomic_write_bytes(&t.join("partial"), b"3")?;
            Err(CoreError::Invalid("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(names(d), vec!["m".to_string()]);
        assert_eq!(names(&d.join("m")), vec!["new".to_string()]);
    }
}
