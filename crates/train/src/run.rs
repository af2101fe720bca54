//! Run identity: one training run per output folder, one process at a time, and no
//! silent change of configuration between a run and its resumption.
//!
//! Contract ([`open`], called by `run_stage` before anything is read or written):
//! - An exclusive lock on `OUT/.train.lock` ([`LOCK_NAME`]; never deleted, not a
//!   `.colzero-` temp name, so no cleanup removes it) is held for the whole run; a second
//!   process on the same folder fails at once naming the holder's pid.
//! - Under the lock, temps and half-done directory swaps of killed runs in `OUT` and
//!   `OUT/checkpoints` are cleaned (`colzero_core::fsutil::clean_stale`).
//! - Without `resume`, `OUT` must hold nothing but the lock and the caller's `keep`
//!   entries. With `overwrite`, the trainer's own outputs ([`OUTPUTS`]) are deleted first;
//!   anything else makes even `overwrite` refuse (colzero deletes only what it wrote).
//! - `OUT/run.json` ([`RunRecord`], `format` [`RUN_FORMAT`]) records, at the run's start,
//!   the hash of its identity configuration ([`identity`]): the stage config minus the
//!   knobs that cannot change the trained weights — `train.progress`,
//!   `train.stop_after_steps`, `train.checkpoint_every`, `train.keep_checkpoints` and the
//!   whole `[eval]` section (evaluation only reads the model) — with `model.path` and
//!   `data.path` canonicalised (so the same files spelled differently are the same run).
//! - With `resume`, a config whose hash differs from run.json is refused, naming every
//!   differing field, unless `allow_config_change`: then the fields are logged, the
//!   change is appended to run.json's `changes` and the new hash becomes the reference.
//!   A folder written before run.json existed is adopted with a warning.

use crate::config::StageConfig;
use crate::{Result, TrainError};
use colzero_core::fsutil;
use colzero_core::lock::{FileLock, Wait};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lock file of a training output folder.
pub const LOCK_NAME: &str = ".train.lock";
/// The run identity file.
pub const RUN_FILE: &str = "run.json";
/// Version of run.json's layout.
pub const RUN_FORMAT: u32 = 1;
/// What the trainer writes in its output folder (all removed by `overwrite`).
pub const OUTPUTS: [&str; 8] = [
    "checkpoints",
    "final",
    "metrics.jsonl",
    "summary.json",
    "plot.png",
    // written by versions before 2026-12-08
    "plot.svg",
    "config.toml",
    RUN_FILE,
];

/// How `run_stage` treats an existing output folder.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue the run in the folder from its newest checkpoint.
    pub resume: bool,
    /// Start over in a folder holding a previous run (its outputs are deleted first).
    pub overwrite: bool,
    /// With `resume`: accept a configuration that differs from the run's.
    pub allow_config_change: bool,
    /// Entries of the folder that belong to the caller (exact names, or a prefix ending
    /// in `*`): never a reason to refuse, never deleted.
    pub keep: Vec<String>,
}

/// A configuration change accepted with `allow_config_change`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Newest checkpoint step when the change was accepted (0: none).
    pub at_step: usize,
    pub from_hash: String,
    pub to_hash: String,
    /// `field: old -> new`, one per differing field.
    pub fields: Vec<String>,
}

/// `OUT/run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Layout version ([`RUN_FORMAT`]).
    pub format: u32,
    /// FNV-1a of `config`.
    pub config_hash: String,
    /// The identity configuration as TOML.
    pub config: String,
    /// Accepted changes, oldest first.
    #[serde(default)]
    pub changes: Vec<ConfigChange>,
}

impl RunRecord {
    /// The record of a run starting now under the identity configuration `config`.
    pub fn new(config_hash: String, config: String) -> Self {
        Self {
            format: RUN_FORMAT,
            config_hash,
            config,
            changes: Vec::new(),
        }
    }
}

/// The identity form of a stage config (see module docs).
pub fn identity(cfg: &StageConfig) -> String {
    let mut c = cfg.clone();
    c.train.progress = true;
    c.train.stop_after_steps = 0;
    c.train.checkpoint_every = 0;
    c.train.keep_checkpoints = 0;
    c.eval = Default::default();
    for p in [&mut c.model.path, &mut c.data.path] {
        if let Ok(canon) = std::fs::canonicalize(&*p) {
            *p = canon;
        }
    }
    c.to_toml()
}

fn hash(text: &str) -> String {
    format!("{:016x}", colzero_core::hash::fnv1a(text.as_bytes()))
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// `field: old -> new` for every field that differs between two identity TOMLs.
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let parse = |s: &str| {
        let mut m = BTreeMap::new();
        if let Ok(v) = s.parse::<toml::Table>() {
            flatten("", &toml::Value::Table(v), &mut m);
        }
        m
    };
    let (a, b) = (parse(old), parse(new));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let unset = "(unset)".to_string();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} -> {}",
                a.get(k).unwrap_or(&unset),
                b.get(k).unwrap_or(&unset)
            )
        })
        .collect()
}

fn err(out: &Path, reason: String) -> TrainError {
    TrainError::Output {
        path: out.to_path_buf(),
        reason,
    }
}

fn kept(name: &str, keep: &[String]) -> bool {
    name == LOCK_NAME
        || keep.iter().any(|k| match k.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == k,
        })
}

/// Reads run.json (`None` when missing).
pub fn read_record(out: &Path) -> Result<Option<RunRecord>> {
    let p = out.join(RUN_FILE);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(colzero_core::CoreError::io(&p, e).into()),
    };
    let rec: RunRecord =
        serde_json::from_str(&text).map_err(|e| err(&p, format!("unreadable: {e}")))?;
    if rec.format > RUN_FORMAT {
        return Err(err(
            &p,
            format!(
                "format {} is newer than this colzero reads ({RUN_FORMAT})",
                rec.format
            ),
        ));
    }
    Ok(Some(rec))
}

fn write_record(out: &Path, rec: &RunRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(rec).map_err(|e| TrainError::Invalid(e.to_string()))?;
    fsutil::atomic_write_bytes(&out.join(RUN_FILE), &json)?;
    Ok(())
}

fn list(out: &Path, keep: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let rd = std::fs::read_dir(out).map_err(|e| colzero_core::CoreError::io(out, e))?;
    let (mut ours, mut foreign) = (Vec::new(), Vec::new());
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if kept(&name, keep) {
            continue;
        }
        if OUTPUTS.contains(&name.as_str()) {
            ours.push(name);
        } else {
            foreign.push(name);
        }
    }
    ours.sort();
    foreign.sort();
    Ok((ours, foreign))
}

fn remove_outputs(out: &Path, ours: &[String]) -> Result<()> {
    // run.json last: a folder cut short while clearing is still recognised as a run.
    for name in ours
        .iter()
        .filter(|n| *n != RUN_FILE)
        .chain(ours.iter().filter(|n| *n == RUN_FILE))
    {
        // Renamed to a temp name first (atomic), so a kill while deleting leaves no
        // half-deleted checkpoint under its real name; the temp goes with the next run.
        let p = out.join(name);
        let trash = out.join(format!(
            "{}overwrite-{name}{}",
            fsutil::litter::temp_prefix(),
            fsutil::litter::TEMP_SUFFIX
        ));
        std::fs::rename(&p, &trash).map_err(|e| colzero_core::CoreError::io(&p, e))?;
        let r = if trash.is_dir() {
            std::fs::remove_dir_all(&trash)
        } else {
            std::fs::remove_file(&trash)
        };
        r.map_err(|e| colzero_core::CoreError::io(&p, e))?;
    }
    Ok(())
}

/// The held lock of an opened run folder.
#[derive(Debug)]
pub struct RunGuard {
    _lock: FileLock,
    /// The lock file.
    pub lock_path: PathBuf,
    /// Whether the folder held a run before (outputs of the trainer).
    pub had_run: bool,
}

/// Opens `out` for a run of `cfg` (see module docs).
pub fn open(cfg: &StageConfig, out: &Path, opts: &RunOptions) -> Result<RunGuard> {
    std::fs::create_dir_all(out).map_err(|e| colzero_core::CoreError::io(out, e))?;
    let lock_path = out.join(LOCK_NAME);
    let lock = FileLock::exclusive(&lock_path, Wait::No).map_err(|e| match e {
        colzero_core::CoreError::Locked { holder, .. } => err(
            out,
            format!(
                "another training process is using this folder ({holder}, lock {}); wait \
                 for it to finish or choose another --out",
                lock_path.display()
            ),
        ),
        other => other.into(),
    })?;
    fsutil::clean_stale(out, true);
    fsutil::clean_stale(&crate::checkpoint::dir_of(out), true);
    let id = identity(cfg);
    let id_hash = hash(&id);
    let (ours, foreign) = list(out, &opts.keep)?;
    let record = read_record(out)?;
    let is_run = !ours.is_empty();
    if !opts.resume || !is_run {
        if !foreign.is_empty() {
            return Err(err(
                out,
                format!(
                    "the output folder holds files that are not from a training run ({}); \
                     colzero will not write into it or delete them. Choose a new or empty \
                     --out",
                    foreign.join(", ")
                ),
            ));
        }
        if is_run && !opts.resume {
            if !opts.overwrite {
                return Err(err(
                    out,
                    format!(
                        "already holds a training run ({}); pass --resume to continue it, \
                         --overwrite to delete it and start over, or choose another --out",
                        ours.join(", ")
                    ),
                ));
            }
            tracing::warn!(
                "--overwrite: deleting {} in {}",
                ours.join(", "),
                out.display()
            );
            remove_outputs(out, &ours)?;
        }
        write_record(out, &RunRecord::new(id_hash, id))?;
        return Ok(RunGuard {
            _lock: lock,
            lock_path,
            had_run: false,
        });
    }
    match record {
        None => {
            tracing::warn!(
                "{}: no {RUN_FILE} (a run from an older colzero); its configuration cannot \
                 be checked, recording the current one",
                out.display()
            );
            write_record(out, &RunRecord::new(id_hash, id))?;
        }
        Some(rec) if rec.config_hash == id_hash => {}
        Some(mut rec) => {
            let fields = diff(&rec.config, &id);
            let list = if fields.is_empty() {
                "  (no field differs; the hash changed)".to_string()
            } else {
                fields
                    .iter()
                    .map(|f| format!("  {f}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            if !opts.allow_config_change {
                return Err(err(
                    out,
                    format!(
                        "--resume with a configuration that differs from the run's \
                         (run.json hash {}, now {id_hash}):\n{list}\nResume with the \
                         original configuration, pass --allow-config-change to continue \
                         under the new one, or start a new run in another --out",
                        rec.config_hash
                    ),
                ));
            }
            tracing::warn!(
                "{}: --allow-config-change: continuing under a changed configuration:\n{list}",
                out.display()
            );
            let at_step = crate::checkpoint::list(out)?.last().map_or(0, |c| c.0);
            rec.changes.push(ConfigChange {
                at_step,
                from_hash: rec.config_hash.clone(),
                to_hash: id_hash.clone(),
                fields,
            });
            rec.config_hash = id_hash;
            rec.config = id;
            write_record(out, &rec)?;
        }
    }
    Ok(RunGuard {
        _lock: lock,
        lock_path,
        had_run: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StageConfig {
        StageConfig::from_toml_str(
            "[model]\npath = \"m\"\n[data]\npath = \"d.jsonl\"\n",
            Path::new("/nonexistent/stage.toml"),
        )
        .unwrap()
    }

    #[test]
    fn identity_ignores_knobs_that_cannot_change_the_weights() {
        let a = cfg();
        let mut b = a.clone();
        b.train.progress = false;
        b.train.stop_after_steps = 3;
        b.train.checkpoint_every = 5;
        b.train.keep_checkpoints = 9;
        b.eval.beir_dir = "beir".into();
        b.eval.every = 2;
        assert_eq!(hash(&identity(&a)), hash(&identity(&b)));
        b.optim.lr = 1e-3;
        b.train.seed = 1;
        assert_ne!(hash(&identity(&a)), hash(&identity(&b)));
        assert_eq!(
            diff(&identity(&a), &identity(&b)),
            vec!["optim.lr: 0.00005 -> 0.001", "train.seed: 42 -> 1"]
        );
    }

    #[test]
    fn keep_patterns_and_the_lock_are_not_outputs() {
        let keep = vec!["pipeline-stage.json".to_string(), "eval-*".to_string()];
        assert!(kept(LOCK_NAME, &keep));
        assert!(kept("eval-scifact.json", &keep));
        assert!(kept("pipeline-stage.json", &keep));
        assert!(!kept("notes.md", &keep));
        assert!(!kept("metrics.jsonl", &keep));
    }
}
