//! TREC run files: `qid Q0 docid rank score tag`, one hit per line.
//!
//! Contract: [`write_run`] writes atomically (colzero_core::fsutil), queries in id order,
//! hits in the order given with ranks 1..n, scores in Rust's shortest round-trip decimal
//! form, so [`read_run`] gives back exactly the same [`Run`]. Ids and the tag must be
//! non-empty and free of whitespace; scores must be finite. [`read_run`] keeps each
//! query's hits in file order, ignores the rank column (as trec_eval does: evaluation
//! ranks by score) and reports `file:line: reason` for a wrong field count, a non-finite
//! or unparsable score, and invalid UTF-8. Scores are read as f32 (colzero's [`Hit`]):
//! two run scores that differ only beyond f32 precision become ties.

use crate::error::{EvalError, Result};
use colzero_core::fsutil::atomic_write;
use colzero_core::jsonl::Lines;
use colzero_core::{Hit, Run};
use std::io::Write;
use std::path::Path;

/// Reads a TREC run file.
pub fn read_run(path: &Path) -> Result<Run> {
    let mut run = Run::new();
    for r in Lines::open(path)? {
        let (n, line) = r?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 {
            return Err(EvalError::line(
                path,
                n,
                format!(
                    "expected 6 fields `qid Q0 docid rank score tag`, found {}",
                    f.len()
                ),
            ));
        }
        let score: f32 = f[4]
            .parse()
            .map_err(|_| EvalError::line(path, n, format!("score `{}` is not a number", f[4])))?;
        if !score.is_finite() {
            return Err(EvalError::line(
                path,
                n,
                format!("score `{}` is not finite", f[4]),
            ));
        }
        run.entry(f[0].to_string()).or_default().push(Hit {
            id: f[2].to_string(),
            score,
        });
    }
    Ok(run)
}

fn check_token(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(EvalError::Invalid(format!(
            "cannot write a TREC run: {what} `{s}` is empty or contains whitespace"
        )));
    }
    Ok(())
}

/// Writes `run` as a TREC run file with the given tag, atomically.
pub fn write_run(path: &Path, run: &Run, tag: &str) -> Result<()> {
    check_token("run tag", tag)?;
    for (q, hits) in run {
        check_token("query id", q)?;
        for h in hits {
            check_token("document id", &h.id)?;
            if !h.score.is_finite() {
                return Err(EvalError::Invalid(format!(
                    "cannot write a TREC run: query `{q}` document `{}` has score {}",
                    h.id, h.score
                )));
            }
        }
    }
    atomic_write(path, |w| {
        for (q, hits) in run {
            for (i, h) in hits.iter().enumerate() {
                writeln!(w, "{q} Q0 {} {} {} {tag}", h.id, i + 1, h.score)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            score,
        }
    }

    #[test]
    fn round_trip_is_exact() {
        let mut run = Run::new();
        run.insert(
            "q2".into(),
            vec![
                hit("d3", 0.1),
                hit("d1", 0.1),
                hit("d9", -1.5e-7),
                hit("d0", 3.4e38),
            ],
        );
        run.insert(
            "q1".into(),
            vec![hit("x", 1.0 / 3.0), hit("y", f32::MIN_POSITIVE)],
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/run.trec");
        write_run(&p, &run, "colzero").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("q1 Q0 x 1 0.33333334 colzero\n"), "{text}");
        assert_eq!(read_run(&p).unwrap(), run);
    }

    #[test]
    fn bad_lines_and_unwritable_runs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.trec");
        std::fs::write(&p, "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 zero t\n").unwrap();
        let msg = read_run(&p).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("{}:2: score `zero`", p.display())),
            "{msg}"
        );
        std::fs::write(&p, "q1 Q0 d1 1 0.5 t\n\nq1 Q0 d2 2 t\n").unwrap();
        let msg = read_run(&p).unwrap_err().to_string();
        assert!(msg.contains(":3: expected 6 fields"), "{msg}");
        std::fs::write(&p, "q1 Q0 d1 1 NaN t\n").unwrap();
        assert!(read_run(&p)
            .unwrap_err()
            .to_string()
            .contains(":1: score `NaN` is not finite"));
        std::fs::write(&p, b"q1 Q0 d\xff 1 1 t\n").unwrap();
        assert!(read_run(&p)
            .unwrap_err()
            .to_string()
            .contains(":1: invalid UTF-8"));

        let mut run = Run::new();
        run.insert("q 1".into(), vec![hit("d", 1.0)]);
        assert!(write_run(&p, &run, "t").is_err());
        run.clear();
        run.insert("q1".into(), vec![hit("d", f32::NAN)]);
        assert!(write_run(&p, &run, "t").is_err());
        // failed writes leave the previous file untouched
        assert_eq!(std::fs::read(&p).unwrap(), b"q1 Q0 d\xff 1 1 t\n");
    }
}
