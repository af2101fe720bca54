//! The pipeline / ablation report: nDCG@10 per (variant, stage) and dataset, plus the
//! wall time of each stage.
//!
//! Contract: [`write_report`] writes `DIR/<stem>.md` (the `AblationTable` Markdown, then a
//! timing table: training and evaluation seconds per row), `DIR/<stem>.json` (the
//! `AblationTable` JSON — `{"metric","datasets","rows":[{"variant","stage","scores",
//! "average","wall_seconds"}]}`, readable by `AblationTable::from_json` — plus `"timing"`:
//! `[{"variant","stage","train_seconds","eval_seconds","checkpoint"}]` and `"complete"`)
//! and `DIR/<stem>.png` (grouped bar chart). `wall_seconds` = training + evaluation.

use super::evaluate::EvalRecord;
use anyhow::Result;
use colzero_eval::AblationTable;
use colzero_train::recipe::{dataset_name, Recipe};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What one stage produced.
#[derive(Clone, Debug)]
pub struct StageOutcome {
    /// Stage name.
    pub name: String,
    /// Its final checkpoint (PyLate layout).
    pub checkpoint: PathBuf,
    /// Its configuration hash.
    pub hash: String,
    /// True when it was already done and not retrained in this run.
    pub skipped: bool,
    /// Training wall time over all invocations, seconds.
    pub train_seconds: f64,
    /// Evaluation wall time (as recorded when each evaluation ran), seconds.
    pub eval_seconds: f64,
    /// Per-dataset evaluations.
    pub evals: Vec<EvalRecord>,
}

/// Timing of one report row.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Timing {
    pub variant: String,
    pub stage: String,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

/// The result of a pipeline run.
#[derive(Clone, Debug)]
pub struct PipelineReport {
    /// Recipe name (the variant of its rows).
    pub recipe: String,
    /// Rows: the dense base row (if any), then one per evaluated stage.
    pub table: AblationTable,
    /// Timing per row, same order as `table.rows`.
    pub timing: Vec<Timing>,
    /// Stages run or skipped, in order.
    pub stages: Vec<StageOutcome>,
    /// All stages finished.
    pub complete: bool,
}

impl PipelineReport {
    /// An empty report whose columns are every dataset the recipe evaluates on.
    pub fn new(recipe: &Recipe) -> Self {
        let mut cols: Vec<String> = recipe
            .eval
            .datasets
            .iter()
            .map(|d| dataset_name(d))
            .collect();
        for d in recipe.all_datasets() {
            let n = dataset_name(&d);
            if !cols.contains(&n) {
                cols.push(n);
            }
        }
        Self {
            recipe: recipe.name.clone(),
            table: AblationTable::new("ndcg@10", cols),
            timing: Vec::new(),
            stages: Vec::new(),
            complete: false,
        }
    }

    /// Adds the dense baseline row.
    pub fn add_base(&mut self, variant: &str, recs: &[EvalRecord]) -> Result<()> {
        self.push_row(variant, "base", recs, 0.0, None)
    }

    /// Adds a finished stage's row.
    pub fn add_stage(&mut self, o: StageOutcome) -> Result<()> {
        let recipe = self.recipe.clone();
        self.push_row(
            &recipe,
            &o.name,
            &o.evals,
            o.train_seconds,
            Some(o.checkpoint.clone()),
        )?;
        self.stages.push(o);
        Ok(())
    }

    fn push_row(
        &mut self,
        variant: &str,
        stage: &str,
        recs: &[EvalRecord],
        train_seconds: f64,
        checkpoint: Option<PathBuf>,
    ) -> Result<()> {
        self.table.push(
            variant,
            stage,
            recs.iter().map(|r| (r.dataset.as_str(), r.ndcg_at_10)),
        )?;
        let eval_seconds: f64 = recs.iter().map(|r| r.seconds).sum();
        self.table
            .set_wall_seconds(variant, stage, train_seconds + eval_seconds);
        self.timing.push(Timing {
            variant: variant.into(),
            stage: stage.into(),
            train_seconds,
            eval_seconds,
            checkpoint,
        });
        Ok(())
    }

    /// Writes `dir/report.{md,json,png}`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_report(&self.table, &self.timing, self.complete, dir, "report")
    }
}

/// `-` for no time (a stage not trained or not evaluated), `12.3s` under a minute, else
/// whole minutes and seconds (`1m05s`).
fn fmt_secs(s: f64) -> String {
    if s <= 0.0 {
        "-".into()
    } else if s >= 59.95 {
        let r = s.round() as u64;
        format!("{}m{:02}s", r / 60, r % 60)
    } else {
        format!("{s:.1}s")
    }
}

/// The timing table in Markdown.
pub fn timing_markdown(timing: &[Timing]) -> String {
    let mut s = String::from(
        "Wall time per row (training, evaluation)\n\n| variant | stage | train | eval |\n\
         | :--- | :--- | ---: | ---: |\n",
    );
    for t in timing {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            t.variant,
            t.stage,
            fmt_secs(t.train_seconds),
            fmt_secs(t.eval_seconds)
        ));
    }
    s
}

/// Writes `<stem>.md`, `<stem>.json`, `<stem>.png` in `dir` (see module docs).
pub fn write_report(
    table: &AblationTable,
    timing: &[Timing],
    complete: bool,
    dir: &Path,
    stem: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let png = dir.join(format!("{stem}.png"));
    if let Err(e) = colzero_eval::plot::bar_chart_png(
        &table.bar_chart(),
        &png,
        colzero_eval::plot::BAR_CHART_SIZE,
    ) {
        eprintln!("warning: {} not written: {e}", png.display());
    }
    let mut md = table.to_markdown();
    md.push('\n');
    md.push_str(&timing_markdown(timing));
    if !complete {
        md.push_str("\n(incomplete: not every stage has finished)\n");
    }
    colzero_core::fsutil::atomic_write_bytes(&dir.join(format!("{stem}.md")), md.as_bytes())?;
    let mut json: serde_json::Value = serde_json::from_str(&table.to_json_string())?;
    json["timing"] = serde_json::to_value(timing)?;
    json["complete"] = serde_json::Value::Bool(complete);
    let mut text = serde_json::to_string_pretty(&json)?;
    text.push('\n');
    colzero_core::fsutil::atomic_write_bytes(&dir.join(format!("{stem}.json")), text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fmt_secs;

    #[test]
    fn seconds_format_without_negative_zero_or_sixty_seconds() {
        assert_eq!(fmt_secs(-0.0), "-");
        assert_eq!(fmt_secs(0.0), "-");
        assert_eq!(fmt_secs(12.34), "12.3s");
        assert_eq!(fmt_secs(119.7), "2m00s");
        assert_eq!(fmt_secs(386.0), "6m26s");
    }
}
