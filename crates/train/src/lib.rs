//! colzero-train: one ColBERT training stage, numerically faithful to PyLate.
//!
//! Contract: [`scores`] and [`loss`] reproduce PyLate's MaxSim scores and its
//! Contrastive / Distillation losses on padded, masked embeddings (golden-tested against
//! PyTorch); [`cached`] is GradCache (same loss and gradients as Contrastive, memory
//! bounded by the mini-batch); [`optim`] and [`schedule`] are torch's AdamW,
//! `clip_grad_norm_` and HF's LR schedules; [`data`] streams multi-source pairs/triplets
//! and PyLate KD data with a resumable seeded sampler; [`config`] is the stage TOML;
//! [`trainer::run_stage`] runs a stage with checkpoints, resume, evaluation, metrics, plot
//! and a PyLate-layout final checkpoint ([`run`]: one run per output folder, locked, its
//! configuration checked on resume); [`recipe`] is the multi-stage pipeline recipe.
//!
//! ```no_run
//! # fn main() -> colzero_train::Result<()> {
//! let cfg = colzero_train::StageConfig::load("stage.toml".as_ref())?;
//! let summary = colzero_train::run_stage(&cfg, "runs/stage1".as_ref(), false)?;
//! println!("{} steps, last loss {:?}", summary.steps, summary.last_loss);
//! # Ok(()) }
//! ```

pub mod cached;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod evalhook;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod recipe;
pub mod run;
pub mod schedule;
pub mod scores;
pub mod step;
pub mod trainer;

pub use config::{default_config_toml, StageConfig};
pub use error::{Result, TrainError};
pub use loss::{Contrastive, Distillation, Temperature};
pub use metrics::Summary;
pub use recipe::Recipe;
pub use run::RunOptions;
pub use scores::MaskMode;
pub use trainer::{run_stage, run_stage_with};

/// The full default stage configuration as TOML (for `colzero train --print-config`).
pub fn print_config() -> String {
    default_config_toml()
}
