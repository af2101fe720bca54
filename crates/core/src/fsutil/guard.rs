//! Guards run before a command writes: an output never replaces one of its inputs, and a
//! directory output never wipes a folder that is not a previous output of the same kind.
//!
//! Contract:
//! - [`ensure_output_not_input`]`(flag, output, inputs)`: an error naming both flags when
//!   `output` is an input — the same path once `.`/`..`/symlinks are resolved (for a
//!   missing output, through its nearest existing ancestor), or, for existing files, the
//!   same device and inode (hard links). Inputs given as empty paths are skipped.
//! - [`ensure_dir_output_not_input`]: the same for an output directory that is replaced
//!   or cleared as a whole, which also must not contain any input.
//! - [`ensure_not_part_of`]: an output that already exists inside an input model or
//!   index directory is part of that input and is refused.
//! - [`check_replaceable_dir`]`(flag, dir, recognise, what, force)`: a missing or empty
//!   directory, or one `recognise` accepts as a previous output of this kind, may be
//!   replaced; any other non-empty directory is refused unless `force`. A directory that
//!   is (or contains) the current working directory is always refused: replacing it
//!   would leave the shell in a deleted directory.

use crate::error::{CoreError, Result};
use std::path::{Component, Path, PathBuf};

/// `path` made absolute with `.`, `..` and symlinks resolved as far as it exists; the
/// missing tail is appended lexically.
pub fn resolve(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // Lexical normalisation first, so that `missing/..` does not become `missing`.
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                norm.pop();
            }
            Component::CurDir => {}
            other => norm.push(other),
        }
    }
    let mut tail = Vec::new();
    let mut head = norm.as_path();
    loop {
        if let Ok(p) = std::fs::canonicalize(head) {
            let mut out = p;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (head.file_name(), head.parent()) {
            (Some(n), Some(parent)) => {
                tail.push(n.to_os_string());
                head = parent;
            }
            _ => return norm,
        }
    }
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

fn refuse(flag: &str, output: &Path, why: String) -> CoreError {
    CoreError::Invalid(format!(
        "{flag} {}: {why}; writing there would destroy an input. Choose another output path",
        output.display()
    ))
}

/// Refuses an `output` that is one of `inputs` (`(flag, path)` pairs); see module docs.
pub fn ensure_output_not_input(flag: &str, output: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let out = resolve(output);
    for (iflag, input) in inputs {
        if input.as_os_str().is_empty() {
            continue;
        }
        if resolve(input) == out {
            return Err(refuse(
                flag,
                output,
                format!("is the same path as {iflag} {}", input.display()),
            ));
        }
        if same_inode(output, input) {
            return Err(refuse(
                flag,
                output,
                format!(
                    "is the same file as {iflag} {} (a hard link)",
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

/// [`ensure_output_not_input`] for a directory replaced as a whole: it must not hold any
/// input either.
pub fn ensure_dir_output_not_input(
    flag: &str,
    output: &Path,
    inputs: &[(&str, &Path)],
) -> Result<()> {
    ensure_output_not_input(flag, output, inputs)?;
    let out = resolve(output);
    for (iflag, input) in inputs {
        if !input.as_os_str().is_empty() && resolve(input).starts_with(&out) {
            return Err(refuse(
                flag,
                output,
                format!("contains {iflag} {}", input.display()),
            ));
        }
    }
    Ok(())
}

/// Refuses an `output` that already exists inside one of the input directories `dirs`
/// (a model or index folder: anything existing in it is part of it). New paths inside
/// them are allowed.
pub fn ensure_not_part_of(flag: &str, output: &Path, dirs: &[(&str, &Path)]) -> Result<()> {
    if std::fs::symlink_metadata(output).is_err() {
        return Ok(());
    }
    let out = resolve(output);
    for (iflag, dir) in dirs {
        if dir.as_os_str().is_empty() || !dir.is_dir() {
            continue;
        }
        let d = resolve(dir);
        if out != d && out.starts_with(&d) {
            return Err(refuse(
                flag,
                output,
                format!("is part of {iflag} {}", dir.display()),
            ));
        }
    }
    Ok(())
}

/// Whether `dir` is missing or an empty directory.
pub fn is_missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => rd.next().is_none(),
        Err(_) => !dir.exists(),
    }
}

/// Checks that the directory `dir` (given as `flag`) may be replaced; see module docs.
/// `what` names the kind of output recognised, e.g. "a ColBERT checkpoint".
pub fn check_replaceable_dir(
    flag: &str,
    dir: &Path,
    recognise: impl Fn(&Path) -> bool,
    what: &str,
    force: bool,
) -> Result<()> {
    if let Ok(cwd) = std::env::current_dir() {
        let cwd = resolve(&cwd);
        if cwd.starts_with(resolve(dir)) {
            return Err(CoreError::Invalid(format!(
                "{flag} {}: is the current directory (or contains it), which cannot be \
                 replaced as a whole; give a new folder, e.g. {flag} ./model",
                dir.display()
            )));
        }
    }
    if dir.exists() && !dir.is_dir() {
        return Err(CoreError::Invalid(format!(
            "{flag} {}: exists and is not a directory",
            dir.display()
        )));
    }
    if is_missing_or_empty(dir) || force || recognise(dir) {
        return Ok(());
    }
    Err(CoreError::Invalid(format!(
        "{flag} {}: folder is not empty and is not {what}; refusing to replace it (its \
         contents would be deleted). Choose a new or empty folder, or pass --force to \
         replace it",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_path_symlink_and_hard_link_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let input = d.join("in.jsonl");
        std::fs::write(&input, b"x").unwrap();
        let other = d.join("out.safetensors");
        ensure_output_not_input("--output", &other, &[("--input", &input)]).unwrap();
        let dotted = d.join("sub/../in.jsonl");
        std::fs::create_dir(d.join("sub")).unwrap();
        let e = ensure_output_not_input("--output", &dotted, &[("--input", &input)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--output") && e.contains("--input"), "{e}");
        assert!(e.contains("same path"), "{e}");
        std::fs::hard_link(&input, d.join("hard")).unwrap();
        let e = ensure_output_not_input("--output", &d.join("hard"), &[("--input", &input)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("hard link"), "{e}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&input, d.join("soft")).unwrap();
            assert!(
                ensure_output_not_input("--output", &d.join("soft"), &[("--input", &input)])
                    .is_err()
            );
        }
        // empty inputs are skipped; a missing output through `..` still resolves
        ensure_output_not_input("--output", &d.join("new/../x"), &[("--run", Path::new(""))])
            .unwrap();
        assert_eq!(resolve(&d.join("new/../x")), resolve(d).join("x"));
    }

    #[test]
    fn a_directory_output_must_not_hold_an_input() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("m")).unwrap();
        std::fs::write(d.join("m/config.json"), b"{}").unwrap();
        let e = ensure_dir_output_not_input("--out", d, &[("--from", &d.join("m"))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains --from"), "{e}");
        ensure_dir_output_not_input("--out", &d.join("m2"), &[("--from", &d.join("m"))]).unwrap();
        let m = [("--model", d.join("m"))];
        let m: Vec<(&str, &Path)> = m.iter().map(|(f, p)| (*f, p.as_path())).collect();
        let e = ensure_not_part_of("--output", &d.join("m/config.json"), &m)
            .unwrap_err()
            .to_string();
        assert!(e.contains("part of --model"), "{e}");
        ensure_not_part_of("--output", &d.join("m/new.trec"), &m).unwrap();
    }

    #[test]
    fn only_empty_or_recognised_folders_are_replaceable() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("out");
        let yes = |_: &Path| true;
        let no = |_: &Path| false;
        check_replaceable_dir("--out", &d, no, "a checkpoint", false).unwrap();
        std::fs::create_dir(&d).unwrap();
        check_replaceable_dir("--out", &d, no, "a checkpoint", false).unwrap();
        std::fs::write(d.join("thesis.tex"), b"x").unwrap();
        let e = check_replaceable_dir("--out", &d, no, "a checkpoint", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty") && e.contains("--force"), "{e}");
        check_replaceable_dir("--out", &d, yes, "a checkpoint", false).unwrap();
        check_replaceable_dir("--out", &d, no, "a checkpoint", true).unwrap();
        // the current directory (or an ancestor of it) is never replaceable
        let cwd = std::env::current_dir().unwrap();
        let e = check_replaceable_dir("--out", &cwd, yes, "x", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("current directory"), "{e}");
        assert!(check_replaceable_dir("--out", Path::new("."), yes, "x", true).is_err());
    }
}
