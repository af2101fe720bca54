//! Run records: the JSONL metrics log, the end-of-run plot and `summary.json`.
//!
//! Contract: [`StepRecord`] is one line of `metrics.jsonl` per optimiser step (and
//! [`EvalRecord`] one line per evaluation, tagged `"kind":"eval"`). On resume the log is
//! truncated to the checkpoint's step ([`truncate_log`]) so it never holds steps twice.
//! The plot of a run is drawn by `colzero_eval::plot::curves_png` (the one plotting
//! module);
//! [`Summary`] is written atomically as `summary.json`.

use crate::Result;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One optimiser step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Always `"step"`.
    pub kind: String,
    /// 1-based optimiser step.
    pub step: usize,
    /// Mean loss over the step's micro-batches.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Training examples per second over this step.
    pub samples_per_sec: f64,
    /// Epoch (fractional).
    pub epoch: f64,
    /// The step was skipped (non-finite loss or gradient).
    pub skipped: bool,
    /// Temperature (when learnable).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temperature: Option<f64>,
}

/// One evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Always `"eval"`.
    pub kind: String,
    /// Optimiser steps done when evaluated.
    pub step: usize,
    /// nDCG@10.
    pub ndcg_at_10: f64,
    /// Queries evaluated.
    pub queries: usize,
    /// Seconds the evaluation took.
    pub seconds: f64,
}

/// What `run_stage` returns and writes as `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Optimiser steps done in total.
    pub steps: usize,
    /// Steps skipped because of NaN/Inf.
    pub skipped_steps: usize,
    /// Loss of the first and last step.
    pub first_loss: Option<f32>,
    /// Loss of the last step.
    pub last_loss: Option<f32>,
    /// Every step's loss (in order; skipped steps are NaN).
    pub losses: Vec<f32>,
    /// Evaluations (step, nDCG@10).
    pub evals: Vec<(usize, f64)>,
    /// Wall time of this invocation in seconds.
    pub wall_seconds: f64,
    /// Examples per second over this invocation.
    pub samples_per_sec: f64,
    /// The final PyLate-layout checkpoint.
    pub final_checkpoint: PathBuf,
    /// Resumed from this step (0 = fresh run).
    pub resumed_from: usize,
}

/// Appends one serialisable record as a JSON line.
pub fn append<T: Serialize>(path: &Path, rec: &T) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| colzero_core::CoreError::io(path, e))?;
    let line = serde_json::to_string(rec).map_err(|e| crate::TrainError::Invalid(e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| colzero_core::CoreError::io(path, e))?;
    Ok(())
}

/// Keeps only the records with `step <= step` (atomic rewrite). Missing file: no-op.
pub fn truncate_log(path: &Path, step: usize) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| colzero_core::CoreError::io(path, e))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s as usize <= step)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    colzero_core::fsutil::atomic_write_bytes(path, out.as_bytes())?;
    Ok(())
}

/// Reads the step records of a metrics log.
pub fn read_steps(path: &Path) -> Result<Vec<StepRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| colzero_core::CoreError::io(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<StepRecord>(l).ok())
        .filter(|r| r.kind == "step")
        .collect())
}
