//! Run records: the JSONL metrics log, the end-of-run plot and `summary.json`.
//!
//! Contract: [`StepRecord`] is one line of `metrics.jsonl` per optimiser step (and
//! [`EvalRecord`] one line per evaluation, tagged `"kind":"eval"`). On resume the log is
//! truncated to the checkpoint's step ([`truncate_log`]) so it never holds steps twice.
//! [`plot`] draws loss and learning rate against the step into an SVG (two panels);
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

/// Draws loss (top) and learning rate (bottom) against the step into an SVG file.
pub fn plot(path: &Path, steps: &[StepRecord]) -> std::result::Result<(), String> {
    use plotters::prelude::*;
    let pts: Vec<&StepRecord> = steps.iter().filter(|r| r.loss.is_finite()).collect();
    if pts.is_empty() {
        return Err("no finite loss to plot".into());
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(360);
        let xmax = steps.iter().map(|r| r.step).max().unwrap_or(1).max(2) as f64;
        let (lmin, lmax) = pts.iter().fold((f32::MAX, f32::MIN), |(a, b), r| {
            (a.min(r.loss), b.max(r.loss))
        });
        let pad = ((lmax - lmin) * 0.05).max(1e-3);
        let mut c = ChartBuilder::on(&top)
            .caption("training loss", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..xmax, (lmin - pad) as f64..(lmax + pad) as f64)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .draw()
            .map_err(|e| e.to_string())?;
        c.draw_series(LineSeries::new(
            pts.iter().map(|r| (r.step as f64, r.loss as f64)),
            &BLUE,
        ))
        .map_err(|e| e.to_string())?;
        let lrmax = steps.iter().map(|r| r.lr).fold(0f64, f64::max).max(1e-12);
        let mut c2 = ChartBuilder::on(&bottom)
            .caption("learning rate", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..xmax, 0f64..lrmax * 1.05)
            .map_err(|e| e.to_string())?;
        c2.configure_mesh()
            .x_desc("step")
            .y_desc("lr")
            .draw()
            .map_err(|e| e.to_string())?;
        c2.draw_series(LineSeries::new(
            steps.iter().map(|r| (r.step as f64, r.lr)),
            &RED,
        ))
        .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    colzero_core::fsutil::atomic_write_bytes(path, svg.as_bytes()).map_err(|e| e.to_string())
}
