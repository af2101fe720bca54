//! `colzero pipeline`: a whole recipe (data preparation, ordered training stages,
//! evaluation of every stage) with resume, the alignment check and the report.
//!
//! Contract (`run(recipe, OUT, opts)`):
//! - Before anything runs: the recipe validates (`colzero_train::Recipe`), every prepare
//!   step's options parse ([`prepare::plan`]), every input path exists and lies outside
//!   the folders the pipeline writes ([`check_outputs`]), and the prompt /
//!   length alignment is checked ([`align::check`]): misalignments are warnings citing
//!   the paper, or an error with `strict` (option or recipe `strict = true`).
//! - Prepare steps run in recipe order into `DATA/<name>/` (`DATA` =
//!   `opts.shared_dir/data`, default `OUT/data`), each skipped when done with the same
//!   options: a step is run just before the first stage whose data needs it (directly or
//!   through another step's `@` option), steps no stage needs at the start.
//! - Stage `s` trains into `OUT/<s>/` (the trainer's layout: `final/` in PyLate's layout,
//!   `summary.json`, `checkpoints/`). `OUT/<s>/pipeline-stage.json` ([`Marker`]) records
//!   the stage hash — FNV-1a of its resolved config with placeholder paths, minus the
//!   knobs that do not change the weights (progress, stop_after_steps, checkpointing,
//!   the trainer's eval hook), chained with the hash of the stage it starts from and of
//!   its prepare step — and `status` `running`/`done`. A done stage with the same hash
//!   is skipped; a running one resumes from its newest checkpoint; a stage whose hash
//!   changed is an error naming it unless `rerun_changed` (its folder is then wiped and
//!   it retrains; later stages change hash with it).
//! - After training, the stage's `final/` is evaluated on its BEIR sets
//!   ([`evaluate::evaluate_cached`], cached as `OUT/<s>/eval-<dataset>.json`). With
//!   `eval.dense_baseline`, the first `init = "dense"` model is evaluated in dense mode
//!   (cached under `SHARED/base/<model>/`), row `"<model> (dense)"` / `base`.
//! - `OUT/report.{md,json,png}` ([`report`]) are rewritten after every stage.
//!   A stage that pauses (`train.stop_after_steps`) or `opts.stop_after` ends the run
//!   with `complete = false`.

pub mod align;
pub mod evaluate;
pub mod prepare;
pub mod report;
pub mod status;

use crate::cmd::{Ctx, Mode};
use anyhow::{bail, Context, Result};
use colzero_train::recipe::{dataset_name, reference, Recipe};
use colzero_train::StageConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use report::{PipelineReport, StageOutcome};

/// How to run a recipe.
#[derive(Clone, Debug, Default)]
pub struct PipelineOptions {
    /// Refuse misaligned prompts/lengths instead of warning.
    pub strict: bool,
    /// Retrain (or rebuild) a finished stage (or prepare step) whose config changed.
    pub rerun_changed: bool,
    /// Stop after this stage has been trained and evaluated.
    pub stop_after: Option<String>,
    /// Folder for prepare outputs (`data/`) and dense-baseline evaluations (`base/`),
    /// shared between recipes by `colzero ablate` (default: the output folder).
    pub shared_dir: Option<PathBuf>,
    /// Hide progress bars.
    pub quiet: bool,
}

/// A stage's (or prepare step's) state file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Marker {
    /// Configuration hash.
    pub hash: String,
    /// `"running"` or `"done"`.
    pub status: String,
    /// Training wall time over all invocations, seconds.
    #[serde(default)]
    pub train_seconds: f64,
}

impl Marker {
    /// Reads a marker; `None` when missing or unreadable.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    /// Writes it atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        colzero_core::fsutil::atomic_write_bytes(
            path,
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?;
        Ok(())
    }
}

/// FNV-1a 64-bit of `text` as 16 hex digits (stable across builds and platforms).
pub fn fnv_hex(text: &str) -> String {
    format!("{:016x}", colzero_core::hash::fnv1a(text.as_bytes()))
}

/// The hashed form of a stage config: placeholder paths, weight-neutral knobs reset.
fn canonical(recipe: &Recipe, i: usize) -> String {
    let mut c = recipe.stage_config(i, Path::new("@OUT"), Path::new("@DATA"));
    c.train.progress = true;
    c.train.stop_after_steps = 0;
    c.train.checkpoint_every = 0;
    c.train.keep_checkpoints = 0;
    c.eval = Default::default();
    c.to_toml()
}

/// The hash of every stage (see module docs).
pub fn stage_hashes(recipe: &Recipe, planned: &[prepare::PlannedStep]) -> Vec<String> {
    let mut hashes: Vec<String> = Vec::new();
    for (i, s) in recipe.stage.iter().enumerate() {
        let mut key = canonical(recipe, i);
        if let Some(j) = recipe.source_stage(i) {
            key.push_str(&format!("\nfrom={}", hashes[j]));
        }
        if let Some(r) = reference(&s.data.path) {
            if let Some(p) = planned.iter().find(|p| p.name == r) {
                key.push_str(&format!("\ndata={}", p.hash));
            }
        }
        hashes.push(fnv_hex(&key));
    }
    hashes
}

/// Runs the recipe file at `recipe_path` into `out` (see module docs).
pub fn run(recipe_path: &Path, out: &Path, opts: &PipelineOptions) -> Result<PipelineReport> {
    let recipe = Recipe::load(recipe_path)?;
    run_recipe(&recipe, out, opts)
}

fn check_exists(recipe: &Recipe, field: String, p: &Path) -> Result<()> {
    if p.as_os_str().is_empty() || reference(p).is_some() || p.exists() {
        return Ok(());
    }
    bail!(
        "{}: `{field}`: {} does not exist",
        recipe.path.display(),
        p.display()
    )
}

/// Checks input paths and alignment; returns the planned prepare steps.
pub fn preflight(
    recipe: &Recipe,
    data_dir: &Path,
    strict: bool,
) -> Result<Vec<prepare::PlannedStep>> {
    for d in recipe.all_datasets() {
        check_exists(recipe, "eval.datasets".into(), &d)?;
    }
    for p in &recipe.prepare {
        for key in colzero_train::recipe::PREPARE_PATH_KEYS {
            let vals: Vec<String> = match p.options.get(key) {
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            for v in vals {
                check_exists(recipe, format!("prepare.{}.{key}", p.name), Path::new(&v))?;
            }
        }
    }
    for (i, s) in recipe.stage.iter().enumerate() {
        if recipe.source_stage(i).is_none() {
            check_exists(
                recipe,
                format!("stage.{}.model.path", s.name),
                &s.model.path,
            )?;
        }
        check_exists(recipe, format!("stage.{}.data.path", s.name), &s.data.path)?;
        check_exists(
            recipe,
            format!("stage.{}.eval.beir_dir", s.name),
            &s.eval.beir_dir,
        )?;
    }
    let planned = prepare::plan(recipe, data_dir)?;
    let (_, mis) = align::check(recipe);
    let strict = strict || recipe.strict;
    let bad: Vec<&align::Misalignment> = mis.iter().filter(|m| !m.allowed).collect();
    for m in mis.iter().filter(|m| m.allowed) {
        eprintln!("note: {m} (listed in allow_misaligned)");
    }
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|m| format!("  - {m}")).collect();
        let msg = format!(
            "{}: prompts/lengths differ between stages:\n{}\n{FINDING}.\nSet the same values, \
             or list the field in the stage's `allow_misaligned` if the change is intended.",
            recipe.path.display(),
            list.join("\n"),
            FINDING = align::FINDING
        );
        if strict {
            bail!("refusing to train (strict): {msg}");
        }
        eprintln!("warning: {msg}");
    }
    Ok(planned)
}

/// Refuses a recipe whose input paths (the recipe itself, models, data, datasets,
/// prepare inputs) lie in a folder the pipeline replaces or trains into: a stage folder
/// `OUT/<stage>` or a prepare output `DATA/<name>`.
pub fn check_outputs(recipe: &Recipe, out: &Path, data_dir: &Path) -> Result<()> {
    let mut inputs: Vec<(String, PathBuf)> = vec![("the recipe".into(), recipe.path.clone())];
    for d in recipe.all_datasets() {
        inputs.push(("eval.datasets".into(), d));
    }
    for p in &recipe.prepare {
        for key in colzero_train::recipe::PREPARE_PATH_KEYS {
            let vals: Vec<String> = match p.options.get(key) {
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            for v in vals
                .into_iter()
                .filter(|v| reference(Path::new(v)).is_none())
            {
                inputs.push((format!("prepare.{}.{key}", p.name), PathBuf::from(v)));
            }
        }
    }
    for (i, s) in recipe.stage.iter().enumerate() {
        if recipe.source_stage(i).is_none() {
            inputs.push((format!("stage.{}.model.path", s.name), s.model.path.clone()));
        }
        if reference(&s.data.path).is_none() {
            inputs.push((format!("stage.{}.data.path", s.name), s.data.path.clone()));
        }
        inputs.push((
            format!("stage.{}.eval.beir_dir", s.name),
            s.eval.beir_dir.clone(),
        ));
    }
    let inputs: Vec<(&str, &Path)> = inputs
        .iter()
        .map(|(k, p)| (k.as_str(), p.as_path()))
        .collect();
    let mut outputs: Vec<(String, PathBuf)> = recipe
        .stage
        .iter()
        .map(|s| {
            (
                format!("stage folder `{}`", s.name),
                Recipe::stage_dir(out, &s.name),
            )
        })
        .collect();
    for p in &recipe.prepare {
        outputs.push((
            format!("prepare output `{}`", p.name),
            data_dir.join(&p.name),
        ));
    }
    for (what, dir) in &outputs {
        colzero_core::fsutil::ensure_dir_output_not_input(what, dir, &inputs)
            .with_context(|| format!("{}: --out {}", recipe.path.display(), out.display()))?;
    }
    for f in ["report.md", "report.json", "report.png"] {
        colzero_core::fsutil::ensure_output_not_input(f, &out.join(f), &inputs)?;
    }
    Ok(())
}

/// Runs a loaded recipe into `out` (see module docs).
pub fn run_recipe(recipe: &Recipe, out: &Path, opts: &PipelineOptions) -> Result<PipelineReport> {
    let shared = opts.shared_dir.clone().unwrap_or_else(|| out.to_path_buf());
    let data_dir = shared.join("data");
    if let Some(s) = &opts.stop_after {
        if !recipe.stage.iter().any(|t| &t.name == s) {
            bail!("--stop-after `{s}`: the recipe has no such stage");
        }
    }
    let planned = preflight(recipe, &data_dir, opts.strict)?;
    check_outputs(recipe, out, &data_dir)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ctx = Ctx { quiet: opts.quiet };
    // prepare steps no stage uses run now; the others just before their first stage
    let mut prepared = std::collections::HashSet::new();
    for step in &planned {
        if !recipe
            .stage
            .iter()
            .any(|s| prepare::needs(&planned, &s.data.path, &step.name))
        {
            prepare::run(step, &data_dir, opts.rerun_changed, &ctx)?;
            prepared.insert(step.name.clone());
        }
    }
    let mut rep = PipelineReport::new(recipe);
    if recipe.eval.dense_baseline {
        let s = recipe
            .stage
            .iter()
            .find(|s| s.model.init == "dense")
            .expect("validated: a dense stage exists");
        let name = dataset_name(&s.model.path);
        let spec = evaluate::EvalSpec {
            datasets: &recipe.eval.datasets,
            split: &recipe.eval.split,
            batch_size: recipe.eval.batch_size,
        };
        let recs = evaluate::evaluate_cached(
            &s.model.path,
            Mode::Dense,
            &spec,
            &shared.join("base").join(&name),
            "dense",
            &ctx,
        )?;
        rep.add_base(&format!("{name} (dense)"), &recs)?;
    }
    let hashes = stage_hashes(recipe, &planned);
    for (i, s) in recipe.stage.iter().enumerate() {
        let hash = hashes[i].clone();
        for step in &planned {
            if !prepared.contains(&step.name) && prepare::needs(&planned, &s.data.path, &step.name)
            {
                prepare::run(step, &data_dir, opts.rerun_changed, &ctx)?;
                prepared.insert(step.name.clone());
            }
        }
        let dir = Recipe::stage_dir(out, &s.name);
        let outcome = run_one_stage(recipe, i, &dir, &data_dir, &hash, opts, &ctx)?;
        let paused = outcome.is_none();
        if let Some(o) = outcome {
            rep.add_stage(o)?;
        }
        rep.write(out)?;
        if paused {
            eprintln!(
                "stage `{}` paused before its end; rerun to continue",
                s.name
            );
            return Ok(rep);
        }
        if opts.stop_after.as_deref() == Some(s.name.as_str()) {
            eprintln!("stopped after stage `{}` (--stop-after)", s.name);
            return Ok(rep);
        }
    }
    rep.complete = true;
    rep.write(out)?;
    Ok(rep)
}

/// Trains (or skips, or resumes) and evaluates one stage; `None` when it paused.
fn run_one_stage(
    recipe: &Recipe,
    i: usize,
    dir: &Path,
    data_dir: &Path,
    hash: &str,
    opts: &PipelineOptions,
    ctx: &Ctx,
) -> Result<Option<StageOutcome>> {
    let s = &recipe.stage[i];
    let out = dir.parent().unwrap_or(Path::new("."));
    let mut cfg: StageConfig = recipe.stage_config(i, out, data_dir);
    cfg.train.progress &= !opts.quiet;
    let marker_path = dir.join("pipeline-stage.json");
    let final_dir = dir.join("final");
    let mut marker = Marker::read(&marker_path);
    if let Some(m) = &marker {
        if m.hash != hash {
            if !opts.rerun_changed {
                bail!(
                    "stage `{}` in {} was trained with a different configuration (hash {} -> \
                     {hash}; it, or a stage or data it starts from, changed). Pass \
                     --rerun-changed to retrain it and the stages after it, or use another --out",
                    s.name,
                    dir.display(),
                    m.hash
                );
            }
            eprintln!("stage `{}`: configuration changed, retraining", s.name);
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            marker = None;
        }
    } else if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists but is not a pipeline stage folder (no pipeline-stage.json); move it \
             away or use another --out",
            dir.display()
        );
    }
    let done = marker.as_ref().is_some_and(|m| m.status == "done")
        && final_dir.join("modules.json").is_file()
        && dir.join("summary.json").is_file();
    let mut train_seconds = marker.as_ref().map(|m| m.train_seconds).unwrap_or(0.0);
    let skipped = done;
    if done {
        eprintln!(
            "stage `{}`: done ({}), skipped",
            s.name,
            final_dir.display()
        );
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let resume = colzero_train::checkpoint::latest(dir)?.is_some();
        eprintln!(
            "stage `{}`: {} ({} {}, {} steps)",
            s.name,
            if resume { "resuming" } else { "training" },
            cfg.loss.kind,
            cfg.model.path.display(),
            cfg.train.steps
        );
        Marker {
            hash: hash.to_string(),
            status: "running".into(),
            train_seconds,
        }
        .write(&marker_path)?;
        let t = Instant::now();
        // Always `resume`: a stage folder holds only this stage's run (its marker says so),
        // and the trainer starts from step 0 when there is no checkpoint yet.
        let run = colzero_train::RunOptions {
            resume: true,
            keep: vec!["pipeline-stage.json".into(), "eval-*".into()],
            ..Default::default()
        };
        let summary = colzero_train::run_stage_with(&cfg, dir, &run)
            .with_context(|| format!("training stage `{}`", s.name))?;
        train_seconds += t.elapsed().as_secs_f64();
        let finished = final_dir.join("modules.json").is_file();
        Marker {
            hash: hash.to_string(),
            status: if finished { "done" } else { "running" }.into(),
            train_seconds,
        }
        .write(&marker_path)?;
        if !finished {
            eprintln!("stage `{}`: paused at step {}", s.name, summary.steps);
            return Ok(None);
        }
    }
    let spec = evaluate::EvalSpec {
        datasets: recipe.eval_datasets(i),
        split: &recipe.eval.split,
        batch_size: recipe.eval.batch_size,
    };
    let evals = evaluate::evaluate_cached(&final_dir, Mode::Colbert, &spec, dir, hash, ctx)?;
    Ok(Some(StageOutcome {
        name: s.name.clone(),
        checkpoint: final_dir,
        hash: hash.to_string(),
        skipped,
        train_seconds,
        eval_seconds: evals.iter().map(|e| e.seconds).sum(),
        evals,
    }))
}
