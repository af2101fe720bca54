//! Ablation table: Markdown and JSON golden strings for a small table (ties bold, missing
//! values, averages only over complete rows), JSON round trip, and the PNG charts (decode,
//! exact size, one colour per row, legend text drawn, loss/lr curves from a metrics log).

use colzero_eval::plot::{bar_chart_png, curves_png, metrics_png, read_step_metrics};
use colzero_eval::{AblationTable, Metric, Report};
use std::collections::BTreeMap;
use std::path::Path;

fn table() -> AblationTable {
    let mut t = AblationTable::new("ndcg@10", ["scifact", "nfcorpus"]);
    t.push(
        "minilm (dense)",
        "base",
        [("scifact", 0.6451), ("nfcorpus", 0.3123)],
    )
    .unwrap();
    t.push(
        "colbert-zero",
        "unsupervised",
        [("scifact", 0.6012), ("nfcorpus", 0.2988)],
    )
    .unwrap();
    t.push("colbert-zero", "distillation", [("scifact", 0.6733)])
        .unwrap();
    t.set("colbert-zero", "distillation", "nfcorpus", 0.3301)
        .unwrap();
    t.push("kd-only", "distillation", [("scifact", 0.67331)])
        .unwrap();
    t.set_wall_seconds("colbert-zero", "distillation", 12.5);
    t
}

const MARKDOWN: &str = "\
ndcg@10 (x100) by variant and stage; Avg over 2 dataset(s)

| variant        | stage        |   scifact |  nfcorpus |       Avg |
| :------------- | :----------- | --------: | --------: | --------: |
| minilm (dense) | base         |     64.51 |     31.23 |     47.87 |
| colbert-zero   | unsupervised |     60.12 |     29.88 |     45.00 |
| colbert-zero   | distillation | **67.33** | **33.01** | **50.17** |
| kd-only        | distillation | **67.33** |         - |         - |
";

const JSON: &str = r#"{
  "metric": "ndcg@10",
  "datasets": [
    "scifact",
    "nfcorpus"
  ],
  "rows": [
    {
      "variant": "minilm (dense)",
      "stage": "base",
      "scores": {
        "nfcorpus": 0.3123,
        "scifact": 0.6451
      },
      "average": 0.4787
    },
    {
      "variant": "colbert-zero",
      "stage": "unsupervised",
      "scores": {
        "nfcorpus": 0.2988,
        "scifact": 0.6012
      },
      "average": 0.45
    },
    {
      "variant": "colbert-zero",
      "stage": "distillation",
      "scores": {
        "nfcorpus": 0.3301,
        "scifact": 0.6733
      },
      "average": 0.5017,
      "wall_seconds": 12.5
    },
    {
      "variant": "kd-only",
      "stage": "distillation",
      "scores": {
        "scifact": 0.67331
      },
      "average": null
    }
  ]
}"#;

#[test]
fn markdown_and_json_match_golden_strings() {
    let t = table();
    assert_eq!(t.to_markdown(), MARKDOWN);
    // averages are f64 means; compare JSON structurally so the golden stays readable
    let got: serde_json::Value = serde_json::from_str(&t.to_json_string()).unwrap();
    let want: serde_json::Value = serde_json::from_str(JSON).unwrap();
    for (g, w) in got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["rows"].as_array().unwrap())
    {
        match (g["average"].as_f64(), w["average"].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{a} vs {b}"),
            (a, b) => assert_eq!(a, b),
        }
    }
    let strip = |mut v: serde_json::Value| {
        for r in v["rows"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("average");
        }
        v
    };
    assert_eq!(strip(got), strip(want));
    let back = AblationTable::from_json(&t.to_json_string()).unwrap();
    assert_eq!(back, t);
}

#[test]
fn averages_need_every_dataset_and_columns_are_checked() {
    let mut t = table();
    assert!((t.average(&t.rows[0]).unwrap() - 0.4787).abs() < 1e-12);
    assert_eq!(t.average(&t.rows[3]), None);
    let e = t.set("x", "y", "fiqa", 0.5).unwrap_err().to_string();
    assert!(e.contains("`fiqa` is not a column"), "{e}");
    assert!(t.set("x", "y", "scifact", f64::NAN).is_err());
    assert!(AblationTable::from_json("{\"metric\":\"ndcg@10\"}").is_err());
    // reports feed rows through the table's metric
    let ms = Metric::parse_list("ndcg@10").unwrap();
    let mut pq = BTreeMap::new();
    pq.insert("q1".to_string(), vec![0.5]);
    pq.insert("q2".to_string(), vec![1.0]);
    let r = Report::new(ms, pq);
    t.push_reports("new", "kd", &[("scifact", &r), ("nfcorpus", &r)])
        .unwrap();
    assert_eq!(t.rows.last().unwrap().scores["scifact"], 0.75);
    assert_eq!(t.average(t.rows.last().unwrap()), Some(0.75));
}

fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn count(rgb: &[u8], w: u32, x_from: u32, c: [u8; 3]) -> usize {
    rgb.chunks_exact(3)
        .enumerate()
        .filter(|(i, p)| (*i as u32 % w) >= x_from && p[..] == c[..])
        .count()
}

const PALETTE: [[u8; 3]; 4] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40]];

#[test]
fn bar_chart_png_has_one_colour_per_row_and_legend_text() {
    let dir = tempfile::tempdir().unwrap();
    let paths = table().write_all(dir.path(), "report").unwrap();
    assert_eq!(std::fs::read_to_string(&paths[0]).unwrap(), MARKDOWN);
    assert_eq!(AblationTable::read_json(&paths[1]).unwrap(), table());
    let (w, h, rgb) = decode(&paths[2]);
    assert_eq!((w, h), (1200, 600));
    // every row has bars (3 groups, or 1 for kd-only) in its own colour
    for (i, c) in PALETTE.iter().enumerate() {
        let n = count(&rgb, w, 0, *c);
        assert!(n > 500, "row {i} colour {c:?}: {n} pixels");
    }
    // kd-only has one bar (scifact) + legend square: far fewer pixels than full rows
    assert!(count(&rgb, w, 0, PALETTE[3]) < count(&rgb, w, 0, PALETTE[2]) / 2);
    // legend text: dark anti-aliased glyph pixels right of the plot
    let dark = rgb
        .chunks_exact(3)
        .enumerate()
        .filter(|(i, p)| (*i as u32 % w) > 900 && p.iter().all(|&v| v < 100))
        .count();
    assert!(dark > 200, "legend text pixels: {dark}");
    let e = bar_chart_png(&table().bar_chart(), &dir.path().join("x.png"), (10, 10)).unwrap_err();
    assert!(e.to_string().contains("x.png"), "{e}");
    assert!(!dir.path().join("x.png").exists());
}

#[test]
fn curves_png_from_metrics_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("metrics.jsonl");
    let mut s = String::new();
    for step in 1..=60 {
        let loss = 2.0 * (-(step as f64) / 20.0).exp() + 0.1;
        let lr = 3e-4 * (1.0 - step as f64 / 60.0);
        s.push_str(&format!(
            "{{\"kind\":\"step\",\"step\":{step},\"loss\":{loss},\"lr\":{lr},\"grad_norm\":1.0}}\n"
        ));
        if step % 20 == 0 {
            s.push_str(&format!(
                "{{\"kind\":\"eval\",\"step\":{step},\"ndcg_at_10\":0.5}}\n"
            ));
        }
    }
    s.push_str("{\"kind\":\"step\",\"step\":61,\"loss\":null,\"lr\":0.0}\n");
    std::fs::write(&log, &s).unwrap();
    let pts = read_step_metrics(&log).unwrap();
    assert_eq!(pts.len(), 60);
    assert_eq!(pts[0].step, 1.0);
    assert!((pts[59].lr.unwrap() - 0.0).abs() < 1e-15);
    let out = dir.path().join("curves.png");
    metrics_png(&log, &out).unwrap();
    let (w, h, rgb) = decode(&out);
    assert_eq!((w, h), (900, 640));
    assert!(count(&rgb, w, 0, PALETTE[0]) > 300, "loss line");
    assert!(count(&rgb, w, 0, PALETTE[3]) > 300, "lr line");
    // without lr: one panel
    let no_lr: Vec<_> = pts
        .iter()
        .map(|p| colzero_eval::plot::StepPoint { lr: None, ..*p })
        .collect();
    curves_png(&no_lr, &out, (400, 300)).unwrap();
    assert_eq!(decode(&out).0, 400);
    std::fs::write(
        &log,
        "{\"kind\":\"step\",\"step\":1,\"loss\":1.0}\n\n{\"kind\":\"step\",\"lr\":1}\n",
    )
    .unwrap();
    let e = read_step_metrics(&log).unwrap_err().to_string();
    assert!(e.contains("metrics.jsonl:3:"), "{e}");
}
