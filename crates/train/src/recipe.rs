//! The pipeline recipe: one TOML file describes one whole study — optional data
//! preparation steps, an ordered list of training stages, and the BEIR sets every stage's
//! checkpoint is evaluated on. The schema is documented in `recipes/README.md`.
//!
//! Contract:
//! - Unknown keys anywhere are errors naming the file, the line and the key; every value
//!   error names the file and the dotted field (`stage.supervised.loss.kind`).
//! - Relative paths (`eval.datasets`, `stage.eval_datasets`, `stage.model.path`,
//!   `stage.data.path`, `stage.eval.beir_dir`, and the path-valued options of prepare
//!   steps: `dataset`, `corpus`, `triplets`, `model`) resolve against the recipe's folder.
//!   A path written `@name` is a reference: in `stage.data.path` (and prepare options) to
//!   the output of the prepare step `name`, in `stage.model.path` (`init = "colbert"`) to
//!   the final checkpoint of the earlier stage `name`. `init = "previous"` is the
//!   previous stage's final checkpoint.
//! - [`Recipe::stage_config`] turns a stage into the exact [`StageConfig`] the trainer
//!   runs, given the pipeline's output and data folders; [`Recipe::source_stage`] says
//!   which earlier stage a stage starts from (for the prompt/length alignment check).
//! - Each stage is validated with [`StageConfig::validate`] at load time, so a recipe
//!   that loads has no invalid stage. `allow_misaligned` entries must name one of
//!   [`ALIGNED_FIELDS`] (the alignment check itself runs in the CLI's pipeline).

use crate::config::{DataSection, EvalSection, LossSection, ModelSection, OptimSection};
use crate::config::{StageConfig, TrainSection};
use crate::{Result, TrainError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Evaluation defaults of a recipe (`[eval]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecipeEval {
    /// BEIR dataset directories; each is a column named by its folder name.
    pub datasets: Vec<PathBuf>,
    /// Split evaluated (whole split, exact MaxSim).
    pub split: String,
    /// Encoding batch size.
    pub batch_size: usize,
    /// Also evaluate the first `init = "dense"` stage's model in dense mode.
    pub dense_baseline: bool,
}

impl Default for RecipeEval {
    fn default() -> Self {
        Self {
            datasets: Vec::new(),
            split: "test".into(),
            batch_size: 32,
            dense_baseline: false,
        }
    }
}

/// One data preparation step (`[[prepare]]`): a `colzero data <kind>` invocation whose
/// other keys are that subcommand's flags; the pipeline sets `out`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PrepareStep {
    /// Step name; its output is referenced as `@name`.
    pub name: String,
    /// `"pairs"`, `"mine"` or `"teacher"`.
    pub kind: String,
    /// The subcommand's options (flag name -> value), paths already resolved.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// One training stage (`[[stage]]`): a name, optional evaluation override, and the
/// sections of a stage TOML (`colzero train --print-config`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeStage {
    /// Stage name: its output folder and its row in the report.
    pub name: String,
    /// BEIR sets to evaluate this stage on (default: `[eval].datasets`).
    #[serde(default)]
    pub eval_datasets: Option<Vec<PathBuf>>,
    /// Settings this stage changes on purpose relative to the stage it starts from
    /// (`query_prompt`, `document_prompt`, `query_length`, `document_length`): the
    /// alignment check reports them without warning or refusing.
    #[serde(default)]
    pub allow_misaligned: Vec<String>,
    /// Model (`init` may also be `"previous"`).
    #[serde(default)]
    pub model: ModelSection,
    /// Data (`path` may be `@prepare-name`).
    #[serde(default)]
    pub data: DataSection,
    /// Loss.
    #[serde(default)]
    pub loss: LossSection,
    /// Optimiser.
    #[serde(default)]
    pub optim: OptimSection,
    /// Loop.
    #[serde(default)]
    pub train: TrainSection,
    /// The trainer's periodic evaluation hook (off by default).
    #[serde(default)]
    pub eval: EvalSection,
}

/// A whole study (see module docs).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Recipe name (report variant, ablation sub-folder).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Refuse misaligned prompts/lengths between stages instead of warning.
    #[serde(default)]
    pub strict: bool,
    /// Evaluation defaults.
    #[serde(default)]
    pub eval: RecipeEval,
    /// Data preparation steps, run in order before the stages.
    #[serde(default)]
    pub prepare: Vec<PrepareStep>,
    /// Training stages, run in order.
    #[serde(default)]
    pub stage: Vec<RecipeStage>,
    /// The file the recipe was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Prepare-step option keys holding paths (resolved against the recipe folder).
pub const PREPARE_PATH_KEYS: [&str; 4] = ["dataset", "corpus", "triplets", "model"];
/// The prepare kinds (`colzero data` subcommands).
pub const PREPARE_KINDS: [&str; 3] = ["pairs", "mine", "teacher"];
/// Fields the alignment check compares (valid `allow_misaligned` entries).
pub const ALIGNED_FIELDS: [&str; 4] = [
    "query_prompt",
    "document_prompt",
    "query_length",
    "document_length",
];
/// Folder names inside a pipeline output that stages may not use.
pub const RESERVED_NAMES: [&str; 3] = ["data", "base", "report"];

/// `@name` -> `Some(name)`.
pub fn reference(p: &Path) -> Option<&str> {
    p.to_str().and_then(|s| s.strip_prefix('@'))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() || p.is_absolute() || reference(p).is_some() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn resolve_value(base: &Path, v: &mut toml::Value) {
    match v {
        toml::Value::String(s) => {
            *s = resolve(base, Path::new(s.as_str()))
                .to_string_lossy()
                .into_owned()
        }
        toml::Value::Array(a) => a.iter_mut().for_each(|x| resolve_value(base, x)),
        _ => {}
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Recipe {
    /// Parses and validates recipe text; `path` names the file and anchors relative paths.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut r: Recipe = toml::from_str(text).map_err(|e| TrainError::toml(path, text, &e))?;
        r.path = path.to_path_buf();
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        r.eval.datasets = r.eval.datasets.iter().map(|p| resolve(&base, p)).collect();
        for p in &mut r.prepare {
            for key in PREPARE_PATH_KEYS {
                if let Some(v) = p.options.get_mut(key) {
                    resolve_value(&base, v);
                }
            }
        }
        for s in &mut r.stage {
            s.model.path = resolve(&base, &s.model.path);
            s.data.path = resolve(&base, &s.data.path);
            s.eval.beir_dir = resolve(&base, &s.eval.beir_dir);
            if let Some(d) = &mut s.eval_datasets {
                *d = d.iter().map(|p| resolve(&base, p)).collect();
            }
        }
        r.validate()?;
        Ok(r)
    }

    /// Reads and validates a recipe file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = colzero_core::jsonl::read_text(path)?;
        Self::from_toml_str(&text, path)
    }

    fn bad<T>(&self, field: String, reason: String) -> Result<T> {
        Err(TrainError::Config {
            path: self.path.clone(),
            field,
            reason,
        })
    }

    /// Checks names, references and every stage's values (see module docs).
    pub fn validate(&self) -> Result<()> {
        if !valid_name(&self.name) {
            return self.bad(
                "name".into(),
                format!("`{}`: use letters, digits, '-', '_' or '.'", self.name),
            );
        }
        if self.stage.is_empty() {
            return self.bad(
                "stage".into(),
                "a recipe needs at least one [[stage]]".into(),
            );
        }
        if self.eval.split.is_empty() {
            return self.bad("eval.split".into(), "must not be empty".into());
        }
        for (i, p) in self.prepare.iter().enumerate() {
            let f = format!("prepare.{}", p.name);
            if !valid_name(&p.name) {
                return self.bad(
                    format!("prepare[{i}].name"),
                    format!("`{}` is not a valid name", p.name),
                );
            }
            if self.prepare[..i].iter().any(|q| q.name == p.name) {
                return self.bad(f, "duplicate prepare step name".into());
            }
            if !PREPARE_KINDS.contains(&p.kind.as_str()) {
                return self.bad(
                    format!("{f}.kind"),
                    format!("`{}`: expected one of {}", p.kind, PREPARE_KINDS.join(", ")),
                );
            }
            if p.options.contains_key("out") {
                return self.bad(
                    format!("{f}.out"),
                    "set by the pipeline (OUT/data/<name>)".into(),
                );
            }
        }
        for (i, s) in self.stage.iter().enumerate() {
            self.validate_stage(i, s)?;
        }
        if self.eval.dense_baseline && !self.stage.iter().any(|s| s.model.init == "dense") {
            return self.bad(
                "eval.dense_baseline".into(),
                "needs a stage with model.init = \"dense\" (its model is the baseline)".into(),
            );
        }
        Ok(())
    }

    fn validate_stage(&self, i: usize, s: &RecipeStage) -> Result<()> {
        let f = format!("stage.{}", s.name);
        if !valid_name(&s.name) || RESERVED_NAMES.contains(&s.name.as_str()) {
            return self.bad(
                format!("stage[{i}].name"),
                format!(
                    "`{}`: not a valid stage name (reserved: {})",
                    s.name,
                    RESERVED_NAMES.join(", ")
                ),
            );
        }
        if self.stage[..i].iter().any(|t| t.name == s.name) {
            return self.bad(f, "duplicate stage name".into());
        }
        let m = &s.model;
        match (m.init.as_str(), reference(&m.path)) {
            ("previous", _) if i == 0 => {
                return self.bad(
                    format!("{f}.model.init"),
                    "the first stage has no previous stage".into(),
                )
            }
            ("previous", _) if !m.path.as_os_str().is_empty() => {
                return self.bad(
                    format!("{f}.model.path"),
                    "must be empty with init = \"previous\"".into(),
                )
            }
            ("colbert", Some(r)) if !self.stage[..i].iter().any(|t| t.name == r) => {
                return self.bad(
                    format!("{f}.model.path"),
                    format!("`@{r}` is not an earlier stage"),
                )
            }
            ("dense", Some(_)) => {
                return self.bad(
                    format!("{f}.model.path"),
                    "a stage reference needs init = \"colbert\"".into(),
                )
            }
            ("previous" | "colbert" | "dense", _) => {}
            (other, _) => {
                return self.bad(
                    format!("{f}.model.init"),
                    format!("`{other}`: expected \"dense\", \"colbert\" or \"previous\""),
                )
            }
        }
        for a in &s.allow_misaligned {
            if !ALIGNED_FIELDS.contains(&a.as_str()) {
                return self.bad(
                    format!("{f}.allow_misaligned"),
                    format!("`{a}`: expected one of {}", ALIGNED_FIELDS.join(", ")),
                );
            }
        }
        if let Some(r) = reference(&s.data.path) {
            if !self.prepare.iter().any(|p| p.name == r) {
                return self.bad(
                    format!("{f}.data.path"),
                    format!("`@{r}` is not a prepare step"),
                );
            }
        }
        let cfg = self.stage_config(i, Path::new("OUT"), Path::new("OUT/data"));
        cfg.validate(&self.path).map_err(|e| match e {
            TrainError::Config {
                path,
                field,
                reason,
            } => TrainError::Config {
                path,
                field: format!("{f}.{field}"),
                reason,
            },
            e => e,
        })
    }

    /// Index of the earlier stage whose checkpoint stage `i` starts from, if any.
    pub fn source_stage(&self, i: usize) -> Option<usize> {
        let s = &self.stage[i];
        match s.model.init.as_str() {
            "previous" => i.checked_sub(1),
            "colbert" => reference(&s.model.path)
                .and_then(|r| self.stage[..i].iter().position(|t| t.name == r)),
            _ => None,
        }
    }

    /// The folder of stage `name` under the pipeline output `out`.
    pub fn stage_dir(out: &Path, name: &str) -> PathBuf {
        out.join(name)
    }

    /// The trainer configuration of stage `i`: references resolved against the pipeline
    /// output `out` (stage checkpoints) and `data_dir` (prepare outputs).
    pub fn stage_config(&self, i: usize, out: &Path, data_dir: &Path) -> StageConfig {
        let s = &self.stage[i];
        let mut model = s.model.clone();
        if let Some(j) = self.source_stage(i) {
            model.init = "colbert".into();
            model.path = Self::stage_dir(out, &self.stage[j].name).join("final");
        }
        let mut data = s.data.clone();
        if let Some(r) = reference(&s.data.path) {
            data.path = data_dir.join(r);
        }
        StageConfig {
            model,
            data,
            loss: s.loss.clone(),
            optim: s.optim.clone(),
            train: s.train.clone(),
            eval: s.eval.clone(),
        }
    }

    /// BEIR sets stage `i` is evaluated on.
    pub fn eval_datasets(&self, i: usize) -> &[PathBuf] {
        self.stage[i]
            .eval_datasets
            .as_deref()
            .unwrap_or(&self.eval.datasets)
    }

    /// Every BEIR set any stage is evaluated on, first-use order (the report's columns).
    pub fn all_datasets(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for i in 0..self.stage.len() {
            for d in self.eval_datasets(i) {
                if !v.contains(d) {
                    v.push(d.clone());
                }
            }
        }
        v
    }
}

/// A BEIR set's column name: its folder name.
pub fn dataset_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}
