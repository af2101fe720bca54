//! The stage configuration: one TOML file describes one training stage.
//!
//! Contract: every section and key has a default (see [`default_config_toml`], which the
//! CLI's `--print-config` prints); unknown keys anywhere are errors naming the key;
//! relative paths (`model.path`, `data.path`, `eval.beir_dir`) resolve against the TOML
//! file's own folder ([`StageConfig::load`]). [`StageConfig::validate`] checks the values
//! that serde cannot (positive sizes, loss/data agreement) and names the field at fault.

use crate::data::DataPosition;
use crate::optim::AdamWConfig;
use crate::schedule::ScheduleKind;
use crate::scores::MaskMode;
use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the model comes from and how it tokenizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Checkpoint directory (PyLate/ST layout; a dense ST model is converted).
    pub path: PathBuf,
    /// `"colbert"`: load a ColBERT checkpoint; `"dense"`: a fresh seeded projection of
    /// `embedding_dim` over a dense model (PyLate's conversion).
    pub init: String,
    /// Projection size for `init = "dense"`.
    pub embedding_dim: usize,
    /// Query length in tokens (0 = the checkpoint's).
    pub query_length: usize,
    /// Document length in tokens (0 = the checkpoint's).
    pub document_length: usize,
    /// Prompt prepended to queries (ColBERT-Zero: "search_query: "); None = checkpoint's.
    pub query_prompt: Option<String>,
    /// Prompt prepended to documents (ColBERT-Zero: "search_document: ").
    pub document_prompt: Option<String>,
    /// Override `do_query_expansion`.
    pub do_query_expansion: Option<bool>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            init: "colbert".into(),
            embedding_dim: 128,
            query_length: 0,
            document_length: 0,
            query_prompt: None,
            document_prompt: None,
            do_query_expansion: None,
        }
    }
}

/// Training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Pairs/triplets file or directory of sources; for distillation the directory holding
    /// queries.jsonl, documents.jsonl and train.jsonl.
    pub path: PathBuf,
    /// Hard negatives per example (contrastive losses).
    pub negatives: usize,
    /// Documents per query (distillation).
    pub n_ways: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            negatives: 1,
            n_ways: 32,
        }
    }
}

/// Which loss and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossSection {
    /// `"contrastive"`, `"cached_contrastive"` or `"distillation"`.
    pub kind: String,
    /// Contrastive temperature τ.
    pub temperature: f64,
    /// Train log τ.
    pub learnable_temperature: bool,
    /// GradCache encoder chunk.
    pub mini_batch_size: usize,
    /// GradCache scoring chunk (0 = mini_batch_size).
    pub score_mini_batch_size: usize,
    /// Reproduce PyLate 1.6.0 CachedContrastive's B-times-larger gradients.
    pub pylate_grad_scale: bool,
    /// How masked document tokens enter MaxSim.
    pub mask_mode: MaskMode,
    /// Distillation: min-max normalise student scores.
    pub normalize_scores: bool,
}

impl Default for LossSection {
    fn default() -> Self {
        Self {
            kind: "contrastive".into(),
            temperature: 1.0,
            learnable_temperature: false,
            mini_batch_size: 32,
            score_mini_batch_size: 0,
            pylate_grad_scale: false,
            mask_mode: MaskMode::Multiply,
            normalize_scores: true,
        }
    }
}

/// Optimiser and schedule (HF TrainingArguments defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSection {
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW settings.
    #[serde(flatten)]
    pub adamw: AdamWConfig,
    /// Decay after warmup.
    pub schedule: ScheduleKind,
    /// Warmup steps (takes precedence over `warmup_ratio` when > 0).
    pub warmup_steps: usize,
    /// Warmup as a fraction of the total steps.
    pub warmup_ratio: f64,
    /// Global gradient-norm clip (0 = off).
    pub max_grad_norm: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr: 5e-5,
            adamw: AdamWConfig::default(),
            schedule: ScheduleKind::Linear,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            max_grad_norm: 1.0,
        }
    }
}

/// Loop settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Examples per micro-batch (one source per batch).
    pub batch_size: usize,
    /// Pair/triplet data: no two rows of a batch share any text, so no in-batch negative
    /// is a copy of a row's positive (Sentence-Transformers' NO_DUPLICATES; see
    /// `data.rs`). Not for distillation, which has no in-batch negatives.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_duplicates: bool,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Optimiser steps (0 = from `epochs`).
    pub steps: usize,
    /// Epochs when `steps` is 0.
    pub epochs: f64,
    /// Seed for data order, dropout and any fresh weights.
    pub seed: u64,
    /// Write a resumable checkpoint every N optimiser steps (0 = only at the end).
    pub checkpoint_every: usize,
    /// Keep only the newest N step checkpoints.
    pub keep_checkpoints: usize,
    /// On a NaN/Inf loss or gradient: `"stop"` (error) or `"skip"` (drop the step).
    pub on_nonfinite: String,
    /// Apply dropout while training (rates from the checkpoint's config.json).
    pub dropout: bool,
    /// Override every dropout rate of the backbone while training (unset: the rates in
    /// the checkpoint's config.json, e.g. BERT's 0.1, ModernBERT's 0.0).
    pub dropout_rate: Option<f64>,
    /// Show the progress bar.
    pub progress: bool,
    /// End this invocation after this many total steps, as if interrupted (0 = run to
    /// the end): a resumable pause for time-boxed jobs (no `final/` is written).
    pub stop_after_steps: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            batch_size: 32,
            no_duplicates: false,
            grad_accum: 1,
            steps: 0,
            epochs: 1.0,
            seed: 42,
            checkpoint_every: 0,
            keep_checkpoints: 2,
            on_nonfinite: "stop".into(),
            dropout: true,
            dropout_rate: None,
            progress: true,
            stop_after_steps: 0,
        }
    }
}

/// Periodic evaluation (nDCG@10 with exact MaxSim on a BEIR split).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalSection {
    /// BEIR dataset directory (empty = no evaluation).
    pub beir_dir: PathBuf,
    /// Split to evaluate.
    pub split: String,
    /// Evaluate every N optimiser steps (0 = only before and after training).
    pub every: usize,
    /// Also evaluate before the first step.
    pub at_start: bool,
    /// Evaluate at most this many queries (0 = all), the first ones in qrels order.
    pub max_queries: usize,
    /// Encoding batch size.
    pub batch_size: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            beir_dir: PathBuf::new(),
            split: "test".into(),
            every: 0,
            at_start: true,
            max_queries: 0,
            batch_size: 32,
        }
    }
}

/// One training stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageConfig {
    /// Model to train.
    pub model: ModelSection,
    /// Training data.
    pub data: DataSection,
    /// Loss.
    pub loss: LossSection,
    /// Optimiser and schedule.
    pub optim: OptimSection,
    /// Loop.
    pub train: TrainSection,
    /// Evaluation hook.
    pub eval: EvalSection,
}

/// The full default configuration as TOML (what `--print-config` shows).
pub fn default_config_toml() -> String {
    let text = toml::to_string_pretty(&StageConfig::default()).expect("default config serialises");
    // `no_duplicates` is left out of serialised configs while false (so stage hashes of
    // recipes written before it existed stay valid); show it here all the same.
    text.replacen(
        "[train]\nbatch_size = 32\n",
        "[train]\nbatch_size = 32\nno_duplicates = false\n",
        1,
    )
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() || p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl StageConfig {
    /// Parses TOML text; `path` is used in messages and to resolve relative paths.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut cfg: StageConfig =
            toml::from_str(text).map_err(|e| TrainError::toml(path, text, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.model.path = resolve(&base, &cfg.model.path);
        cfg.data.path = resolve(&base, &cfg.data.path);
        cfg.eval.beir_dir = resolve(&base, &cfg.eval.beir_dir);
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and validates a stage TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = colzero_core::jsonl::read_text(path)?;
        Self::from_toml_str(&text, path)
    }

    /// The resolved configuration as TOML (written next to the outputs).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Value checks serde cannot express; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(TrainError::Config {
                path: path.to_path_buf(),
                field: field.into(),
                reason,
            })
        };
        if self.model.path.as_os_str().is_empty() {
            return bad("model.path", "required".into());
        }
        if !matches!(self.model.init.as_str(), "colbert" | "dense") {
            return bad(
                "model.init",
                format!("`{}`: expected \"colbert\" or \"dense\"", self.model.init),
            );
        }
        if self.data.path.as_os_str().is_empty() {
            return bad("data.path", "required".into());
        }
        if !matches!(
            self.loss.kind.as_str(),
            "contrastive" | "cached_contrastive" | "distillation"
        ) {
            return bad(
                "loss.kind",
                format!(
                    "`{}`: expected contrastive, cached_contrastive or distillation",
                    self.loss.kind
                ),
            );
        }
        if let Some(r) = self.train.dropout_rate {
            if !(0.0..1.0).contains(&r) {
                return bad("train.dropout_rate", format!("{r}: must be in [0, 1)"));
            }
        }
        if self.loss.temperature.is_nan() || self.loss.temperature <= 0.0 {
            return bad("loss.temperature", "must be > 0".into());
        }
        if self.loss.kind == "cached_contrastive" && self.loss.mini_batch_size == 0 {
            return bad("loss.mini_batch_size", "must be > 0".into());
        }
        if self.loss.kind == "distillation" && self.data.n_ways == 0 {
            return bad("data.n_ways", "must be > 0".into());
        }
        if self.optim.lr.is_nan() || self.optim.lr < 0.0 {
            return bad("optim.lr", "must be >= 0".into());
        }
        if !(0.0..=1.0).contains(&self.optim.warmup_ratio) {
            return bad("optim.warmup_ratio", "must be in [0, 1]".into());
        }
        if self.train.batch_size == 0 {
            return bad("train.batch_size", "must be > 0".into());
        }
        if self.train.no_duplicates && self.loss.kind == "distillation" {
            return bad(
                "train.no_duplicates",
                "applies to pair/triplet data (in-batch negatives); distillation has none".into(),
            );
        }
        if self.train.grad_accum == 0 {
            return bad("train.grad_accum", "must be > 0".into());
        }
        if self.train.steps == 0 && (self.train.epochs.is_nan() || self.train.epochs <= 0.0) {
            return bad("train.epochs", "set train.steps or train.epochs > 0".into());
        }
        if !matches!(self.train.on_nonfinite.as_str(), "stop" | "skip") {
            return bad(
                "train.on_nonfinite",
                format!(
                    "`{}`: expected \"stop\" or \"skip\"",
                    self.train.on_nonfinite
                ),
            );
        }
        Ok(())
    }
}

/// What a checkpoint records besides weights and optimiser state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    /// Next data position.
    pub data: DataPosition,
    /// Dropout RNG: the ChaCha seed.
    pub rng_seed: [u8; 32],
    /// Dropout RNG: `"word_pos:stream"` (u128 as decimal text for JSON safety).
    pub rng_word_pos: String,
    /// Loss per optimiser step so far (for the metrics and plot after resume).
    pub losses: Vec<f32>,
    /// Skipped (non-finite) steps so far.
    pub skipped: usize,
}
