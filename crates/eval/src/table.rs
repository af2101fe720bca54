//! Plain-text table of named reports (rows) by metrics (columns) for the CLI.
//!
//! Contract: the first column holds the row names, left-aligned; each metric column is
//! headed by the metric's canonical name and holds the mean with 4 decimals,
//! right-aligned; a metric a report lacks prints `-`; a last column gives the number of
//! queries averaged. A dashed rule separates header and rows. Every line has the same
//! width (trailing spaces included), so columns line up in any monospace terminal.

use crate::metric::Metric;
use crate::report::Report;

/// Formats `rows` (name, report) over `metrics`; an empty `metrics` means the metrics of
/// the first report.
pub fn format_table<S: AsRef<str>>(rows: &[(S, &Report)], metrics: &[Metric]) -> String {
    format_table_titled("run", rows, metrics)
}

/// [`format_table`] with `title` heading the name column (e.g. `dataset`).
pub fn format_table_titled<S: AsRef<str>>(
    title: &str,
    rows: &[(S, &Report)],
    metrics: &[Metric],
) -> String {
    let metrics: Vec<Metric> = if metrics.is_empty() {
        rows.first()
            .map(|(_, r)| r.metrics().to_vec())
            .unwrap_or_default()
    } else {
        metrics.to_vec()
    };
    let mut header: Vec<String> = vec![title.to_string()];
    header.extend(metrics.iter().map(Metric::name));
    header.push("queries".to_string());
    let mut cells: Vec<Vec<String>> = vec![header];
    for (name, r) in rows {
        let mut line = vec![name.as_ref().to_string()];
        line.extend(metrics.iter().map(|m| match r.get(m) {
            Some(v) => format!("{v:.4}"),
            None => "-".to_string(),
        }));
        line.push(r.num_queries().to_string());
        cells.push(line);
    }
    let ncol = cells[0].len();
    let width: Vec<usize> = (0..ncol)
        .map(|c| {
            cells
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let render = |l: &Vec<String>| -> String {
        l.iter()
            .enumerate()
            .map(|(c, s)| {
                if c == 0 {
                    format!("{s:<w$}", w = width[c])
                } else {
                    format!("{s:>w$}", w = width[c])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = render(&cells[0]);
    out.push('\n');
    out.push_str(&"-".repeat(out.chars().count() - 1));
    out.push('\n');
    for l in &cells[1..] {
        out.push_str(&render(l));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn columns_align_and_missing_metrics_print_dash() {
        let ms = Metric::parse_list("ndcg@10,recall@100").unwrap();
        let mut pq = BTreeMap::new();
        pq.insert("q".to_string(), vec![0.64514, 1.0]);
        let a = Report::new(ms.clone(), pq.clone());
        let b = Report::new(
            ms[..1].to_vec(),
            pq.iter()
                .map(|(q, v)| (q.clone(), v[..1].to_vec()))
                .collect(),
        );
        let t = format_table(&[("colzero-minilm", &a), ("bm25", &b)], &ms);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "run             ndcg@10  recall@100  queries");
        assert_eq!(lines[1], "-".repeat(lines[0].len()));
        assert_eq!(lines[2], "colzero-minilm   0.6451      1.0000        1");
        assert_eq!(lines[3], "bm25             0.6451           -        1");
        assert_eq!(
            format_table(&[("x", &a)], &[]),
            format_table(&[("x", &a)], &ms)
        );
        let t = format_table_titled("dataset", &[("scifact", &a)], &ms[1..]);
        assert_eq!(t, "dataset  recall@100  queries\n----------------------------\nscifact      1.0000        1\n");
    }
}
