//! PNG charts for reports and training runs, the one plotting module of colzero: grouped
//! bar charts ([`BarChart`], built by `AblationTable::bar_chart`) and the loss /
//! learning-rate curves of a training `metrics.jsonl` (drawn by the trainer at the end
//! of a run).
//!
//! Contract:
//! - Charts are drawn with plotters' bitmap backend into memory, encoded as 8-bit RGB PNG
//!   with the `png` crate and written atomically (`colzero_core::fsutil`): a failed draw
//!   leaves no file. Image size is exactly the requested `(width, height)`.
//! - Text is rendered with plotters' `ttf` feature, which finds a system "sans-serif" font
//!   through fontconfig (DejaVu on the project's machines). Without any font, drawing
//!   text fails and the error names the chart file (nothing is written).
//! - Bar chart: one group per entry of [`BarChart::groups`] (x axis), one bar per series
//!   (one colour each, legend on the right), values as given on the y axis (an ablation
//!   passes metric × 100, datasets plus `Avg`); a missing value draws no bar.
//! - Metrics log: JSONL lines with `"kind": "step"` (or no `kind`) carry numeric `step` and
//!   `loss`, optionally `lr`; other kinds (`"eval"`) are ignored; a step line lacking them
//!   is a `file:line` error. Non-finite losses are not drawn.

use crate::error::{EvalError, Result};
use colzero_core::fsutil::atomic_write_bytes;
use plotters::prelude::*;
use std::path::Path;

/// Default bar chart size in pixels.
pub const BAR_CHART_SIZE: (u32, u32) = (1200, 600);
/// Default metrics plot size in pixels.
pub const CURVES_SIZE: (u32, u32) = (900, 640);

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Colour of series `i` (a 10-colour palette, then plotters' 99-colour palette).
fn colour(i: usize) -> RGBColor {
    if i < PALETTE.len() {
        PALETTE[i]
    } else {
        let c = Palette99::pick(i).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::BadFile {
        path: path.to_path_buf(),
        reason: format!("drawing chart: {e}"),
    }
}

/// Encodes an RGB buffer as PNG and writes it atomically.
fn write_png(path: &Path, rgb: &[u8], (w, h): (u32, u32)) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| draw_err(path, e))?;
        wr.write_image_data(rgb).map_err(|e| draw_err(path, e))?;
    }
    atomic_write_bytes(path, &bytes)?;
    Ok(())
}

fn check_size(path: &Path, (w, h): (u32, u32)) -> Result<()> {
    if w < 200 || h < 150 || w > 10_000 || h > 10_000 {
        return Err(draw_err(
            path,
            format!("size {w}x{h} outside 200x150..10000x10000"),
        ));
    }
    Ok(())
}

/// A grouped bar chart: `series[i].1[g]` is the bar of series `i` in group `g`.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Caption above the chart.
    pub title: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Group names along the x axis.
    pub groups: Vec<String>,
    /// Series name and one value per group (`None`: no bar).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// Draws `chart` into a PNG of `size` pixels at `path`.
pub fn bar_chart_png(chart: &BarChart, path: &Path, size: (u32, u32)) -> Result<()> {
    check_size(path, size)?;
    let (groups, rows) = (&chart.groups, &chart.series);
    let (title, y_label) = (chart.title.as_str(), chart.y_label.as_str());
    let vmax = rows
        .iter()
        .flat_map(|r| r.1.iter().flatten())
        .fold(0f64, |a, &b| a.max(b));
    let ymax = ((vmax * 1.1 / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let e = |err: DrawingAreaErrorKind<_>| draw_err(path, err);
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let legend_w = (size.0 as f64 * 0.28) as u32;
        let (plot, legend) = root.split_horizontally(size.0 - legend_w);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..groups.len() as f64, 0f64..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_desc(y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        let n = rows.len().max(1) as f64;
        let slot = 0.8 / n;
        for (i, (_, vals)) in rows.iter().enumerate() {
            let c = colour(i);
            let bars = vals.iter().enumerate().filter_map(|(g, v)| {
                v.map(|y| {
                    let x0 = g as f64 + 0.1 + slot * i as f64;
                    Rectangle::new([(x0, 0.0), (x0 + slot * 0.92, y)], c.filled())
                })
            });
            chart.draw_series(bars).map_err(e)?;
        }
        // group names centred under their groups
        let style = ("sans-serif", 15).into_font().color(&BLACK);
        for (g, name) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            let (tw, _) = plot.estimate_text_size(name, &style).map_err(e)?;
            let at = (px - tw as i32 / 2 - plot.get_base_pixel().0, py + 8);
            plot.draw(&Text::new(name.clone(), at, style.clone()))
                .map_err(e)?;
        }
        // legend: colour square + row name, one per line
        let lstyle = ("sans-serif", 14).into_font().color(&BLACK);
        for (i, (name, _)) in rows.iter().enumerate() {
            let y = 40 + i as i32 * 22;
            legend
                .draw(&Rectangle::new([(8, y), (22, y + 14)], colour(i).filled()))
                .map_err(e)?;
            legend
                .draw(&Text::new(name.clone(), (28, y), lstyle.clone()))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    write_png(path, &buf, size)
}

/// One training step of a metrics log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPoint {
    /// Optimiser step.
    pub step: f64,
    /// Loss at that step.
    pub loss: f64,
    /// Learning rate, when logged.
    pub lr: Option<f64>,
}

/// Reads the step lines of a `metrics.jsonl` (see module docs).
pub fn read_step_metrics(path: &Path) -> Result<Vec<StepPoint>> {
    let mut out = Vec::new();
    for r in colzero_core::jsonl::read_jsonl::<serde_json::Value>(path)? {
        let (line, v) = r?;
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("step");
        if kind != "step" {
            continue;
        }
        let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let (Some(step), Some(loss)) = (num("step"), num("loss")) else {
            // serde_json writes NaN/inf as null: a null loss is a non-finite step
            if num("step").is_some() && v.get("loss").is_some_and(|l| l.is_null()) {
                continue;
            }
            return Err(EvalError::line(
                path,
                line,
                "a step record needs numeric `step` and `loss`",
            ));
        };
        out.push(StepPoint {
            step,
            loss,
            lr: num("lr"),
        });
    }
    Ok(out)
}

/// Draws loss (top panel) and learning rate (bottom panel, if any step logged one)
/// against the step into a PNG of `size` pixels.
pub fn curves_png(points: &[StepPoint], path: &Path, size: (u32, u32)) -> Result<()> {
    check_size(path, size)?;
    let pts: Vec<&StepPoint> = points.iter().filter(|p| p.loss.is_finite()).collect();
    if pts.is_empty() {
        return Err(draw_err(path, "no finite loss to plot"));
    }
    let lrs: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.lr.filter(|l| l.is_finite()).map(|l| (p.step, l)))
        .collect();
    let xmin = pts.iter().map(|p| p.step).fold(f64::MAX, f64::min);
    let xmax = pts
        .iter()
        .map(|p| p.step)
        .fold(f64::MIN, f64::max)
        .max(xmin + 1.0);
    let (lmin, lmax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(p.loss), b.max(p.loss))
    });
    let pad = ((lmax - lmin) * 0.05).max(1e-3);
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let e = |err: DrawingAreaErrorKind<_>| draw_err(path, err);
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let areas = if lrs.is_empty() {
            vec![root.clone()]
        } else {
            let (a, b) = root.split_vertically(size.1 * 55 / 100);
            vec![a, b]
        };
        let mut c = ChartBuilder::on(&areas[0])
            .caption("training loss", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(xmin..xmax, (lmin - pad)..(lmax + pad))
            .map_err(e)?;
        c.configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("loss")
            .draw()
            .map_err(e)?;
        c.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.step, p.loss)),
            colour(0).stroke_width(2),
        ))
        .map_err(e)?;
        if let Some(area) = areas.get(1) {
            let lrmax = lrs.iter().map(|p| p.1).fold(0f64, f64::max).max(1e-12);
            let mut c2 = ChartBuilder::on(area)
                .caption("learning rate", ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(32)
                .y_label_area_size(64)
                .build_cartesian_2d(xmin..xmax, 0f64..lrmax * 1.05)
                .map_err(e)?;
            c2.configure_mesh()
                .x_desc("step")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_desc("lr")
                .y_label_formatter(&|v| format!("{v:.1e}"))
                .draw()
                .map_err(e)?;
            c2.draw_series(LineSeries::new(
                lrs.iter().copied(),
                colour(3).stroke_width(2),
            ))
            .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    write_png(path, &buf, size)
}

/// [`read_step_metrics`] then [`curves_png`] with [`CURVES_SIZE`].
pub fn metrics_png(metrics_jsonl: &Path, out: &Path) -> Result<()> {
    curves_png(&read_step_metrics(metrics_jsonl)?, out, CURVES_SIZE)
}
