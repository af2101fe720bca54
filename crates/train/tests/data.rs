//! Data loading: streaming JSONL/TSV sources, multi-source proportional sampling, KD data
//! in PyLate's format, resumable positions, file:line errors.

use colzero_core::testing::shared_path;
use colzero_train::data::{DataPosition, KdDataset, PairDataset, Sampler};
use std::io::Write;

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn shared_triples_tsv_reads_real_rows() {
    let p = shared_path("data/train/msmarco-triples-splade-toy/triples.tsv");
    let ds = PairDataset::open(&p, 1).unwrap();
    assert_eq!(ds.sizes(), vec![100]);
    let ex = ds.example(0, 1).unwrap();
    assert_eq!(ex.query, "what fruit is native to australia");
    assert!(ex.positive.starts_with("Passiflora herbertiana."));
    assert_eq!(ex.negatives.len(), 1);
    assert!(PairDataset::open(&p, 2)
        .unwrap()
        .example(0, 0)
        .unwrap_err()
        .to_string()
        .contains("triples.tsv:1:"));
}

#[test]
#[ignore = "needs ../shared: run with -- --ignored"]
fn shared_kd_sample_resolves_ids_and_truncates() {
    let dir = shared_path("data/train/msmarco-bge-distill-flagembedding-sample");
    let ds = KdDataset::open(&dir, 8).unwrap();
    assert_eq!(ds.sizes(), vec![10]);
    let ex = ds.example(0).unwrap();
    assert_eq!(
        ex.query,
        ")what was the immediate impact of the success of the manhattan project?"
    );
    assert_eq!(ex.documents.len(), 8);
    assert_eq!(ex.scores.len(), 8);
    assert_eq!(&ex.scores[..3], &[96.6875, 90.5625, 89.0]);
    assert!(ex.documents[0].starts_with("Introduction The presence of communication"));
    // 26 documents per row: n_ways 27 is a clear error
    let e = KdDataset::open(&dir, 27)
        .unwrap()
        .example(0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.jsonl:1:") && e.contains("n_ways is 27"),
        "{e}"
    );
}

fn write(dir: &std::path::Path, name: &str, rows: &[String]) -> std::path::PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    for r in rows {
        writeln!(f, "{r}").unwrap();
    }
    p
}

fn rows(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"query":"{prefix}q{i}","positive":"{prefix}p{i}","negatives":["{prefix}n{i}a","{prefix}n{i}b"]}}"#))
        .collect()
}

#[test]
fn directory_sources_batches_are_single_source_and_proportional() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.jsonl", &rows("a", 40));
    write(tmp.path(), "b.jsonl", &rows("b", 10));
    write(tmp.path(), "ignored.txt", &["x".into()]);
    let ds = PairDataset::open(tmp.path(), 1).unwrap();
    assert_eq!(
        ds.sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let mut s = Sampler::new(ds.sizes(), 5, 3).unwrap();
    assert_eq!(s.batches_per_epoch(), 10);
    let mut count = [0usize; 2];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let (src, idx) = s.next_batch();
        count[src] += 1;
        for i in idx {
            let ex = ds.example(src, i).unwrap();
            let want = if src == 0 { "a" } else { "b" };
            assert!(ex.query.starts_with(want));
            assert_eq!(ex.negatives, vec![format!("{}n{}a", want, &ex.query[2..])]);
            assert!(seen.insert(ex.query));
        }
    }
    assert_eq!(count, [8, 2], "batches proportional to source sizes");
    assert_eq!(seen.len(), 50, "an epoch visits every row once");
    assert_eq!(
        s.position(),
        DataPosition {
            epoch: 0,
            batch: 10
        }
    );
    let first_next = s.next_batch();
    assert_eq!(s.position(), DataPosition { epoch: 1, batch: 1 });
    // a new epoch reshuffles
    let mut again = Sampler::new(ds.sizes(), 5, 3).unwrap();
    let e0 = again.next_batch();
    assert_ne!(e0, first_next);
}

#[test]
fn source_field_splits_a_file_and_seek_replays_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r: Vec<String> = Vec::new();
    for i in 0..30 {
        let src = if i % 3 == 0 { "x" } else { "y" };
        r.push(format!(
            r#"{{"source":"{src}","query":"q{i}","document":"d{i}"}}"#
        ));
        if i == 4 {
            r.push(String::new()); // blank line keeps line numbers honest
        }
    }
    let p = write(tmp.path(), "all.jsonl", &r);
    let ds = PairDataset::open(&p, 0).unwrap();
    assert_eq!(ds.sizes(), vec![10, 20]);
    assert_eq!(ds.sources[0].name, "x");
    let ex = ds.example(1, 3).unwrap(); // y rows: 1,2,4,5 -> q5 is on line 7
    assert_eq!(ex.query, "q5");
    let mut a = Sampler::new(ds.sizes(), 4, 11).unwrap();
    let seq: Vec<_> = (0..12).map(|_| a.next_batch()).collect();
    let mut b = Sampler::new(ds.sizes(), 4, 11).unwrap();
    for _ in 0..5 {
        b.next_batch();
    }
    let pos = b.position();
    let json = serde_json::to_string(&pos).unwrap();
    let mut c = Sampler::new(ds.sizes(), 4, 11).unwrap();
    c.seek(serde_json::from_str(&json).unwrap());
    let tail: Vec<_> = (0..7).map(|_| c.next_batch()).collect();
    assert_eq!(&seq[5..], &tail[..]);
    // a different seed gives a different order
    let mut d = Sampler::new(ds.sizes(), 4, 12).unwrap();
    assert_ne!(
        (0..6).map(|_| d.next_batch()).collect::<Vec<_>>(),
        seq[..6].to_vec()
    );
}

#[test]
fn malformed_rows_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "bad.jsonl",
        &[
            r#"{"query":"q","positive":"p","negatives":["n"]}"#.into(),
            String::new(),
            r#"{"query":"q","negatives":["n"]}"#.into(),
        ],
    );
    let ds = PairDataset::open(&p, 1).unwrap();
    assert!(ds.example(0, 0).is_ok());
    let e = ds.example(0, 1).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl:3:") && e.contains("positive"), "{e}");
    assert!(Sampler::new(vec![3], 4, 0).is_err());
}

/// Texts of a batch's rows, and whether two rows share one.
fn batch_repeats_text(ds: &PairDataset, src: usize, rows: &[usize]) -> bool {
    let mut seen = std::collections::HashSet::new();
    for &r in rows {
        let ex = ds.example(src, r).unwrap();
        let mut texts = vec![ex.query, ex.positive];
        texts.extend(ex.negatives);
        texts.sort();
        texts.dedup();
        for t in texts {
            if !seen.insert(t) {
                return true;
            }
        }
    }
    false
}

#[test]
fn no_duplicates_batches_never_share_a_text_and_replay_on_seek() {
    let tmp = tempfile::tempdir().unwrap();
    // 60 rows, 20 queries asked 3 times, 15 positives shared by 4 rows, 7 negatives
    let rows: Vec<String> = (0..60)
        .map(|i| {
            format!(
                r#"{{"query":"q{}","positive":"p{}","negatives":["n{}"]}}"#,
                i % 20,
                i % 15,
                i % 7
            )
        })
        .collect();
    let path = write(tmp.path(), "dup.jsonl", &rows);
    let ds = PairDataset::open(&path, 1).unwrap();
    let keys = ds.text_keys().unwrap();
    assert_eq!(keys[0].len(), 60);
    assert_eq!(keys[0][0].len(), 3, "query, positive, one negative");
    assert_eq!(
        keys[0][0][0], keys[0][20][0],
        "the same query text, the same key"
    );
    assert_ne!(keys[0][0][1], keys[0][20][1], "different positives");

    // the plain sampler does put copies of a text into one batch on this data
    let mut plain = Sampler::new(ds.sizes(), 5, 7).unwrap();
    let per = plain.batches_per_epoch();
    assert!((0..per).any(|_| {
        let (s, r) = plain.next_batch();
        batch_repeats_text(&ds, s, &r)
    }));

    let mut s = Sampler::no_duplicates(keys.clone(), 5, 7).unwrap();
    let per = s.batches_per_epoch();
    assert!(
        (9..=12).contains(&per),
        "{per} batches of 5 from 60 rows (at most 7 rows fit a batch: 7 negatives)"
    );
    let mut used = std::collections::HashSet::new();
    let mut epoch0 = Vec::new();
    for _ in 0..per {
        let (src, r) = s.next_batch();
        assert_eq!(r.len(), 5);
        assert!(
            !batch_repeats_text(&ds, src, &r),
            "batch {r:?} repeats a text"
        );
        for &x in &r {
            assert!(used.insert(x), "row {x} twice in one epoch");
        }
        epoch0.push(r);
    }
    // epoch 1 reshuffles, still without duplicates
    let (src, r1) = s.next_batch();
    assert!(!batch_repeats_text(&ds, src, &r1));
    assert_eq!(s.position(), DataPosition { epoch: 1, batch: 1 });

    // deterministic, and seeking replays exactly
    let mut again = Sampler::no_duplicates(keys.clone(), 5, 7).unwrap();
    assert_eq!(again.next_batch().1, epoch0[0]);
    let mut resumed = Sampler::no_duplicates(keys.clone(), 5, 7).unwrap();
    resumed.seek(DataPosition { epoch: 0, batch: 3 });
    for want in &epoch0[3..] {
        assert_eq!(&resumed.next_batch().1, want);
    }
    assert_eq!(resumed.next_batch().1, r1);

    // a batch that cannot be filled without repeats is an error, not a hang
    let e = Sampler::no_duplicates(keys, 8, 7).unwrap_err().to_string();
    assert!(e.contains("without a repeated text"), "{e}");
}

#[test]
fn a_byte_order_mark_opening_a_data_file_is_not_part_of_the_first_row() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("a.tsv", &b"\xEF\xBB\xBFwhat q\tpos text\tneg text\nq2\tp2\tn2\n"[..]),
        (
            "b.jsonl",
            b"\xEF\xBB\xBF{\"query\": \"what q\", \"positive\": \"pos text\", \"negative\": \"neg text\"}\n",
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let ds = PairDataset::open(&p, 1).unwrap();
        let ex = ds.example(0, 0).unwrap();
        assert_eq!(ex.query, "what q", "{name}");
        assert_eq!(ex.positive, "pos text", "{name}");
        assert_eq!(ex.negatives, vec!["neg text".to_string()], "{name}");
    }
}
