//! [`AblationTable`]: the paper-style comparison of training pipelines — one row per
//! (variant, stage), one column per BEIR dataset, and the average.
//!
//! Contract:
//! - A table has one metric (default `ndcg@10`) and an ordered list of datasets (its
//!   columns). Rows keep insertion order; setting a value for an existing (variant, stage)
//!   updates that row. A value for a dataset outside the column list is an error.
//! - [`AblationTable::average`] is the arithmetic mean over *all* the table's datasets;
//!   a row missing any dataset has no average (an average over a different dataset set is
//!   not comparable).
//! - Markdown ([`AblationTable::to_markdown`]): values × 100 with 2 decimals (the paper's
//!   convention), missing values `-`, the best value of each column in **bold** (all tied
//!   best values), a header `| variant | stage | <datasets...> | Avg |`, right-aligned
//!   number columns.
//! - JSON ([`AblationTable::to_json_string`]): `{"metric", "datasets", "rows": [{"variant",
//!   "stage", "scores": {dataset: value}, "average", "wall_seconds"?}]}` with raw values
//!   (0..1); [`AblationTable::from_json`] reads it back (`average` is recomputed, never
//!   trusted). Files are written atomically.
//! - [`AblationTable::write_all`] writes `<stem>.md`, `<stem>.json` and `<stem>.png` (the
//!   grouped bar chart of [`crate::plot`]).

use crate::error::{EvalError, Result};
use crate::report::Report;
use colzero_core::fsutil::atomic_write_bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One (variant, stage) row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    /// Pipeline variant, e.g. `colbert-zero`, `kd-only-noprompts`, `minilm (dense)`.
    pub variant: String,
    /// Stage name, e.g. `unsupervised`, `supervised`, `distillation`, `base`.
    pub stage: String,
    /// Metric value per dataset (0..1).
    pub scores: BTreeMap<String, f64>,
    /// Wall time of the stage in seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
}

/// Rows by datasets (see module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct AblationTable {
    /// Metric name shown in captions (e.g. `ndcg@10`).
    pub metric: String,
    /// Column order.
    pub datasets: Vec<String>,
    /// Rows in insertion order.
    pub rows: Vec<AblationRow>,
}

#[derive(Serialize, Deserialize)]
struct JsonRow {
    variant: String,
    stage: String,
    scores: BTreeMap<String, f64>,
    #[serde(default)]
    average: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct JsonTable {
    metric: String,
    datasets: Vec<String>,
    rows: Vec<JsonRow>,
}

impl AblationTable {
    /// An empty table over `datasets` for `metric`.
    pub fn new<S: Into<String>>(metric: &str, datasets: impl IntoIterator<Item = S>) -> Self {
        Self {
            metric: metric.to_string(),
            datasets: datasets.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    fn row_mut(&mut self, variant: &str, stage: &str) -> &mut AblationRow {
        let i = match self
            .rows
            .iter()
            .position(|r| r.variant == variant && r.stage == stage)
        {
            Some(i) => i,
            None => {
                self.rows.push(AblationRow {
                    variant: variant.to_string(),
                    stage: stage.to_string(),
                    scores: BTreeMap::new(),
                    wall_seconds: None,
                });
                self.rows.len() - 1
            }
        };
        &mut self.rows[i]
    }

    /// Sets the value of `dataset` for (variant, stage), creating the row if needed.
    pub fn set(&mut self, variant: &str, stage: &str, dataset: &str, value: f64) -> Result<()> {
        if !self.datasets.iter().any(|d| d == dataset) {
            return Err(EvalError::Invalid(format!(
                "ablation table: dataset `{dataset}` is not a column (columns: {})",
                self.datasets.join(", ")
            )));
        }
        if !value.is_finite() {
            return Err(EvalError::Invalid(format!(
                "ablation table: {variant}/{stage} {dataset} value {value} is not finite"
            )));
        }
        self.row_mut(variant, stage)
            .scores
            .insert(dataset.to_string(), value);
        Ok(())
    }

    /// Sets several datasets of one row at once.
    pub fn push<S: AsRef<str>>(
        &mut self,
        variant: &str,
        stage: &str,
        scores: impl IntoIterator<Item = (S, f64)>,
    ) -> Result<()> {
        self.row_mut(variant, stage);
        for (d, v) in scores {
            self.set(variant, stage, d.as_ref(), v)?;
        }
        Ok(())
    }

    /// Adds one row from per-dataset evaluation reports (the table's metric of each).
    pub fn push_reports<S: AsRef<str>>(
        &mut self,
        variant: &str,
        stage: &str,
        reports: &[(S, &Report)],
    ) -> Result<()> {
        let mut vals = Vec::new();
        for (d, r) in reports {
            let v = r.get_name(&self.metric).ok_or_else(|| {
                EvalError::Invalid(format!(
                    "report for `{}` has no `{}`",
                    d.as_ref(),
                    self.metric
                ))
            })?;
            vals.push((d.as_ref().to_string(), v));
        }
        self.push(variant, stage, vals)
    }

    /// Records the wall time of (variant, stage).
    pub fn set_wall_seconds(&mut self, variant: &str, stage: &str, seconds: f64) {
        self.row_mut(variant, stage).wall_seconds = Some(seconds);
    }

    /// Mean over all the table's datasets; `None` if the row lacks one (or there are none).
    pub fn average(&self, row: &AblationRow) -> Option<f64> {
        if self.datasets.is_empty() {
            return None;
        }
        let vals: Option<Vec<f64>> = self
            .datasets
            .iter()
            .map(|d| row.scores.get(d).copied())
            .collect();
        vals.map(|v| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// The Markdown table (see module docs).
    pub fn to_markdown(&self) -> String {
        let ncol = self.datasets.len() + 1;
        let values: Vec<Vec<Option<f64>>> = self
            .rows
            .iter()
            .map(|r| {
                let mut v: Vec<Option<f64>> = self
                    .datasets
                    .iter()
                    .map(|d| r.scores.get(d).copied())
                    .collect();
                v.push(self.average(r));
                v
            })
            .collect();
        // compare at the printed precision so that printed ties are all bold
        let shown = |x: f64| (x * 10000.0).round() as i64;
        let best: Vec<Option<i64>> = (0..ncol)
            .map(|c| values.iter().filter_map(|v| v[c]).map(shown).max())
            .collect();
        let mut header = vec!["variant".to_string(), "stage".to_string()];
        header.extend(self.datasets.iter().cloned());
        header.push("Avg".to_string());
        let mut lines = vec![header];
        for (r, v) in self.rows.iter().zip(&values) {
            let mut l = vec![r.variant.clone(), r.stage.clone()];
            for (c, x) in v.iter().enumerate() {
                l.push(match x {
                    Some(x) if Some(shown(*x)) == best[c] => format!("**{:.2}**", x * 100.0),
                    Some(x) => format!("{:.2}", x * 100.0),
                    None => "-".to_string(),
                });
            }
            lines.push(l);
        }
        let width: Vec<usize> = (0..ncol + 2)
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let render = |l: &[String]| -> String {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if c < 2 {
                        format!("{s:<w$}", w = width[c])
                    } else {
                        format!("{s:>w$}", w = width[c])
                    }
                })
                .collect();
            format!("| {} |", cells.join(" | "))
        };
        let mut out = format!(
            "{} (x100) by variant and stage; Avg over {} dataset(s)\n\n",
            self.metric,
            self.datasets.len()
        );
        out.push_str(&render(&lines[0]));
        out.push('\n');
        let rule: Vec<String> = width
            .iter()
            .enumerate()
            .map(|(c, &w)| {
                if c < 2 {
                    format!(":{}", "-".repeat(w - 1))
                } else {
                    format!("{}:", "-".repeat(w - 1))
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for l in &lines[1..] {
            out.push_str(&render(l));
            out.push('\n');
        }
        out
    }

    /// Pretty JSON text (see module docs).
    pub fn to_json_string(&self) -> String {
        let t = JsonTable {
            metric: self.metric.clone(),
            datasets: self.datasets.clone(),
            rows: self
                .rows
                .iter()
                .map(|r| JsonRow {
                    variant: r.variant.clone(),
                    stage: r.stage.clone(),
                    scores: r.scores.clone(),
                    average: self.average(r),
                    wall_seconds: r.wall_seconds,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&t).expect("an ablation table always serialises")
    }

    /// Reads the JSON form back; every score must name a column.
    pub fn from_json(text: &str) -> Result<Self> {
        let t: JsonTable = serde_json::from_str(text)
            .map_err(|e| EvalError::Invalid(format!("not an ablation table: {e}")))?;
        let mut out = AblationTable::new(&t.metric, t.datasets);
        for r in t.rows {
            out.push(&r.variant, &r.stage, r.scores)?;
            if let Some(s) = r.wall_seconds {
                out.set_wall_seconds(&r.variant, &r.stage, s);
            }
        }
        Ok(out)
    }

    /// Reads a JSON file written by [`Self::write_json`].
    pub fn read_json(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| colzero_core::CoreError::io(path, e))?;
        Self::from_json(&text).map_err(|e| EvalError::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes the JSON form atomically.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let mut s = self.to_json_string();
        s.push('\n');
        atomic_write_bytes(path, s.as_bytes())?;
        Ok(())
    }

    /// Writes the Markdown form atomically.
    pub fn write_markdown(&self, path: &Path) -> Result<()> {
        atomic_write_bytes(path, self.to_markdown().as_bytes())?;
        Ok(())
    }

    /// Writes `dir/<stem>.md`, `dir/<stem>.json` and `dir/<stem>.png`; returns the paths.
    pub fn write_all(&self, dir: &Path, stem: &str) -> Result<[PathBuf; 3]> {
        let md = dir.join(format!("{stem}.md"));
        let json = dir.join(format!("{stem}.json"));
        let png = dir.join(format!("{stem}.png"));
        self.write_markdown(&md)?;
        self.write_json(&json)?;
        crate::plot::bar_chart_png(&self.bar_chart(), &png, crate::plot::BAR_CHART_SIZE)?;
        Ok([md, json, png])
    }

    /// The table as a grouped bar chart: one group per dataset plus `Avg`, one series per
    /// row ("variant / stage"), metric × 100; the average only for rows that have one.
    pub fn bar_chart(&self) -> crate::plot::BarChart {
        let mut groups = self.datasets.clone();
        groups.push("Avg".into());
        let series = self
            .rows
            .iter()
            .map(|r| {
                let mut v: Vec<Option<f64>> = self
                    .datasets
                    .iter()
                    .map(|d| r.scores.get(d).map(|x| x * 100.0))
                    .collect();
                v.push(self.average(r).map(|x| x * 100.0));
                (format!("{} / {}", r.variant, r.stage), v)
            })
            .collect();
        crate::plot::BarChart {
            title: format!("{} by dataset (x100)", self.metric),
            y_label: self.metric.clone(),
            groups,
            series,
        }
    }
}
