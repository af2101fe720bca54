//! Temp names that say who made them, and the cleanup of what killed runs left behind.
//!
//! Contract:
//! - Every temp file or directory colzero creates beside an output is named
//!   `.colzero-<pid>-<random>.tmp` ([`temp_prefix`] + [`TEMP_SUFFIX`]; the `.colzero-`
//!   prefix and `.tmp` suffix are what the index's garbage collector also matches). A
//!   directory swap moves the replaced directory aside as `.colzero-old-<pid>-<name>`.
//! - [`clean_stale`] removes, in one directory, the temps whose creating process is dead
//!   (`kill(pid, 0)` fails with ESRCH), never those of a live process nor of this one.
//!   Names from older colzero versions (`.colzero-<random>[.tmp]`, no pid) are removed
//!   only when older than [`STALE_AFTER`] or when the caller holds the lock that owns the
//!   directory (`under_lock`: then every temp not made by this process is stale).
//!   A `.colzero-old-<pid>-<name>` of a dead process is a half-done swap: put back as
//!   `<name>` when `<name>` is missing (see `super::recover_dir`), removed otherwise.
//!   Names ending in `.lock` are never touched.
//! - [`clean_stale_once`] does the same at most once per directory per process (what
//!   `atomic_write`/`atomic_dir` call before writing into a directory).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Suffix of every temp name.
pub const TEMP_SUFFIX: &str = ".tmp";
/// Prefix of every colzero temp or aside name.
pub const PREFIX: &str = ".colzero-";
/// Prefix of a directory moved aside by a swap: `.colzero-old-<pid>-<name>`.
pub const OLD_PREFIX: &str = ".colzero-old-";
/// Age after which a temp without a pid in its name (older colzero) counts as stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// `.colzero-<pid>-`: the prefix of this process's temp names.
pub fn temp_prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// The name a swap gives the directory it replaces.
pub(crate) fn old_name(name: &str) -> String {
    format!("{OLD_PREFIX}{}-{name}", std::process::id())
}

/// Whether process `pid` exists (a pid that exists but belongs to another user counts).
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        if r == 0 {
            return true;
        }
        std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// What a colzero temp name says about its maker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TempName<'a> {
    /// `.colzero-old-<pid>-<name>`.
    Old { pid: u32, name: &'a str },
    /// `.colzero-<pid>-<random>.tmp`.
    Owned { pid: u32 },
    /// `.colzero-<anything else>`: an older colzero, no pid.
    Legacy,
}

pub(crate) fn parse(name: &str) -> Option<TempName<'_>> {
    if name.ends_with(".lock") {
        return None;
    }
    if let Some(rest) = name.strip_prefix(OLD_PREFIX) {
        let (pid, target) = rest.split_once('-')?;
        let pid = pid.parse().ok()?;
        return (!target.is_empty()).then_some(TempName::Old { pid, name: target });
    }
    let rest = name.strip_prefix(PREFIX)?;
    match rest.split_once('-') {
        Some((pid, _)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
            match pid.parse() {
                Ok(pid) => Some(TempName::Owned { pid }),
                Err(_) => Some(TempName::Legacy),
            }
        }
        _ => Some(TempName::Legacy),
    }
}

fn is_dead_maker(pid: u32, under_lock: bool) -> bool {
    pid != std::process::id() && (under_lock || !pid_alive(pid))
}

fn remove_any(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).is_ok(),
        Ok(_) => std::fs::remove_file(p).is_ok(),
        Err(_) => false,
    }
}

fn older_than(p: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d >= age)
}

/// Removes stale temps in `dir` (see module docs); returns how many entries it removed
/// or restored. Errors (a vanished entry, no permission) are skipped: cleanup never
/// makes a command fail.
pub fn clean_stale(dir: &Path, under_lock: bool) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let names: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    let mut done = 0;
    // Half-done swaps first: putting `<name>` back must come before its staged copy goes.
    for n in &names {
        if let Some(TempName::Old { pid, name }) = parse(n) {
            if !is_dead_maker(pid, under_lock) {
                continue;
            }
            let target = dir.join(name);
            let aside = dir.join(n);
            if std::fs::symlink_metadata(&target).is_err() {
                if std::fs::rename(&aside, &target).is_ok() {
                    done += 1;
                }
            } else if remove_any(&aside) {
                done += 1;
            }
        }
    }
    for n in &names {
        let stale = match parse(n) {
            Some(TempName::Owned { pid }) => is_dead_maker(pid, under_lock),
            Some(TempName::Legacy) => under_lock || older_than(&dir.join(n), STALE_AFTER),
            _ => false,
        };
        if stale && remove_any(&dir.join(n)) {
            done += 1;
        }
    }
    done
}

static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// [`clean_stale`]`(dir, false)` the first time this process writes into `dir`.
pub fn clean_stale_once(dir: &Path) {
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut g = CLEANED.lock().unwrap_or_else(|e| e.into_inner());
        if !g.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    clean_stale(dir, false);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pid that is certainly dead: a child that has exited and been reaped.
    pub(crate) fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        assert!(!pid_alive(pid));
        pid
    }

    #[test]
    fn names_are_parsed() {
        assert_eq!(
            parse(".colzero-old-12-step-00000003"),
            Some(TempName::Old {
                pid: 12,
                name: "step-00000003"
            })
        );
        assert_eq!(
            parse(".colzero-77-aB3xYz.tmp"),
            Some(TempName::Owned { pid: 77 })
        );
        assert_eq!(parse(".colzero-aB3xYz.tmp"), Some(TempName::Legacy));
        assert_eq!(parse(".colzero-123456"), Some(TempName::Legacy));
        assert_eq!(parse(".colzero-train.lock"), None);
        assert_eq!(parse("model.safetensors"), None);
        assert!(temp_prefix().starts_with(PREFIX));
        assert!(pid_alive(std::process::id()));
    }

    #[test]
    fn only_dead_or_old_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let dead = dead_pid();
        let mine = std::process::id();
        // pid 1 (init) is alive for as long as the system runs.
        for n in [
            format!(".colzero-{dead}-aaaaaa.tmp"),
            ".colzero-1-bbbbbb.tmp".to_string(),
            format!(".colzero-{mine}-cccccc.tmp"),
            ".colzero-legacy.tmp".to_string(),
            "keep.txt".to_string(),
            ".colzero-x.lock".to_string(),
        ] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        std::fs::create_dir(d.join(format!(".colzero-{dead}-dddddd.tmp"))).unwrap();
        std::fs::write(d.join(format!(".colzero-{dead}-dddddd.tmp/f")), b"x").unwrap();
        assert_eq!(clean_stale(d, false), 2);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![
            ".colzero-1-bbbbbb.tmp".to_string(),
            format!(".colzero-{mine}-cccccc.tmp"),
            ".colzero-legacy.tmp".into(),
            ".colzero-x.lock".into(),
            "keep.txt".into(),
        ];
        want.sort();
        assert_eq!(left, want);
        // Under the owning lock, every temp not made by this process is stale.
        assert_eq!(clean_stale(d, true), 2);
        assert!(d.join(format!(".colzero-{mine}-cccccc.tmp")).exists());
        assert!(d.join(".colzero-x.lock").exists() && d.join("keep.txt").exists());
        assert!(!d.join(".colzero-legacy.tmp").exists());
    }
}
