//! Learning-rate schedules, identical to Hugging Face `transformers`'
//! `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
//! `get_cosine_schedule_with_warmup` (num_cycles 0.5).
//!
//! Contract: [`Schedule::multiplier`]`(step)` is the factor applied to the base LR for the
//! optimiser step with 0-based index `step` (HF semantics: step 0 of a warmup schedule
//! has LR 0). Warmup is `step / max(1, warmup)` for `step < warmup`; then linear decays
//! as `max(0, (total - step) / max(1, total - warmup))` and cosine as
//! `max(0, 0.5·(1 + cos(π · progress)))` with `progress = (step - warmup) / max(1, total - warmup)`.

use serde::{Deserialize, Serialize};

/// Shape of the decay after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Linear decay to 0 at `total` (HF Trainer default).
    #[default]
    Linear,
    /// Half-cosine decay to 0 at `total`.
    Cosine,
    /// Constant after warmup.
    Constant,
}

/// A warmup + decay schedule over `total` optimiser steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Decay shape.
    pub kind: ScheduleKind,
    /// Warmup steps.
    pub warmup: usize,
    /// Total optimiser steps.
    pub total: usize,
}

impl Schedule {
    /// LR multiplier for 0-based optimiser step `step`.
    pub fn multiplier(&self, step: usize) -> f64 {
        let (s, w, t) = (step as f64, self.warmup as f64, self.total as f64);
        if step < self.warmup {
            return s / w.max(1.0);
        }
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            ScheduleKind::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * progress).cos())).max(0.0)
            }
        }
    }

    /// The warmup step count from a ratio of the total (HF `warmup_ratio`: ceil).
    pub fn warmup_from_ratio(ratio: f64, total: usize) -> usize {
        (ratio * total as f64).ceil() as usize
    }
}
