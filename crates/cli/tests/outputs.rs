//! Outputs never destroy inputs, directory swaps survive kills, killed runs leave no
//! litter (issue 16), through the `colzero` binary:
//! - `convert --out` refuses a non-empty folder that is not a ColBERT checkpoint (unless
//!   `--force`), the current directory, and `--from` itself; so does `data teacher --out`
//!   for a folder that is not a KD directory;
//! - an output equal to an input (same path, `..` spelling, hard link) is refused for
//!   encode, search, metrics, data pairs, data mine, eval and convert — input untouched;
//! - a process killed (`COLZERO_FAULT`) mid-swap or mid-write leaves a whole directory
//!   and temps that the next run on the same output removes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{dense_model, repo_path, s};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colzero"));
    c.arg("--quiet").arg("--threads").arg("2");
    c
}

fn run(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> Output {
    let mut c = bin();
    c.args(args).env_remove("COLZERO_FAULT");
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.output().expect("colzero runs")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) {
    let o = run(args, &[], None);
    assert!(o.status.success(), "{args:?} failed: {}", err(&o));
}

/// Fails with exit status 1 (no panic, no kill) and a message holding every `want`.
fn refused(args: &[&str], want: &[&str]) {
    let o = run(args, &[], None);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for w in want {
        assert!(e.contains(w), "{args:?}: stderr lacks {w:?}: {e}");
    }
}

/// Killed by SIGKILL at the fault point `fault`.
fn killed_at(args: &[&str], fault: &str, env: &[(&str, &str)]) {
    let mut e = vec![("COLZERO_FAULT", fault)];
    e.extend_from_slice(env);
    let o = run(args, &e, None);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(9),
        "not killed at {fault}: {}",
        err(&o)
    );
}

fn names(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn litter(d: &Path) -> Vec<String> {
    names(d)
        .into_iter()
        .filter(|n| n.starts_with(".colzero-"))
        .collect()
}

fn tiny_colbert() -> PathBuf {
    repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

fn convert_args<'a>(from: &'a Path, out: &'a Path, seed: &'a str) -> Vec<&'a str> {
    vec![
        "convert",
        "--from",
        s(from),
        "--out",
        s(out),
        "--dim",
        "8",
        "--seed",
        seed,
    ]
}

/// The projection weights of a converted checkpoint (differ by seed).
fn head(out: &Path) -> Vec<u8> {
    std::fs::read(out.join("1_Dense/model.safetensors")).unwrap()
}

#[test]
fn convert_refuses_foreign_folders_the_cwd_and_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dense = root.join("dense");
    dense_model(&dense);
    // A folder with the user's files: refused, untouched.
    let out = root.join("thesis");
    std::fs::create_dir_all(out.join("chapters")).unwrap();
    std::fs::write(out.join("main.tex"), "x").unwrap();
    std::fs::write(out.join("chapters/one.tex"), "y").unwrap();
    refused(
        &convert_args(&dense, &out, "1"),
        &["--out", "thesis", "not empty", "--force"],
    );
    assert_eq!(names(&out), vec!["chapters".to_string(), "main.tex".into()]);
    assert_eq!(std::fs::read(out.join("chapters/one.tex")).unwrap(), b"y");
    // --force replaces it with a checkpoint.
    let mut a = convert_args(&dense, &out, "1");
    a.push("--force");
    ok(&a);
    assert!(out.join("modules.json").is_file() && !out.join("main.tex").exists());
    // A checkpoint is recognised: converting again replaces it without --force.
    let h1 = head(&out);
    ok(&convert_args(&dense, &out, "2"));
    assert_ne!(head(&out), h1, "seed 2 gives another projection");
    assert_eq!(litter(root), Vec::<String>::new());
    // --out equal to --from, or holding it: refused, the input untouched.
    let before = names(&dense);
    refused(&convert_args(&dense, &dense, "1"), &["--out", "--from"]);
    refused(&convert_args(&dense, root, "1"), &["contains --from"]);
    assert_eq!(names(&dense), before);
    // --out . (the current directory): refused, nothing left behind.
    let cwd = root.join("work");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::write(cwd.join("notes.txt"), "keep").unwrap();
    let o = run(
        &["convert", "--from", s(&dense), "--out", ".", "--dim", "8"],
        &[],
        Some(&cwd),
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("current directory"), "{}", err(&o));
    assert_eq!(names(&cwd), vec!["notes.txt".to_string()]);
    assert_eq!(litter(root), Vec::<String>::new());
    // data teacher --out is replaced whole too: a foreign folder is refused, kept.
    let triplets = root.join("t.jsonl");
    std::fs::write(
        &triplets,
        "{\"query\":\"q\",\"positive\":\"p\",\"negatives\":[\"n\"]}\n",
    )
    .unwrap();
    refused(
        &[
            "data",
            "teacher",
            "--model",
            s(&tiny_colbert()),
            "--triplets",
            s(&triplets),
            "--n-ways",
            "2",
            "--out",
            s(&cwd),
        ],
        &["--out", "not a KD directory", "--force"],
    );
    assert_eq!(names(&cwd), vec!["notes.txt".to_string()]);
}

#[test]
fn outputs_that_are_inputs_are_refused_and_inputs_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let model = tiny_colbert();
    let docs = d.join("docs.jsonl");
    let text = "{\"id\":\"d1\",\"text\":\"cats purr\"}\n{\"id\":\"d2\",\"text\":\"dogs bark\"}\n";
    std::fs::write(&docs, text).unwrap();
    let same = |p: &Path| std::fs::read_to_string(p).unwrap() == text;
    // encode: the same path, a `..` spelling, a hard link
    let enc = |out: &Path| {
        vec![
            "encode".to_string(),
            "--model".into(),
            s(&model).into(),
            "--input".into(),
            s(&docs).into(),
            "--kind".into(),
            "document".into(),
            "--output".into(),
            s(out).into(),
        ]
    };
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::hard_link(&docs, d.join("link.jsonl")).unwrap();
    for out in [
        docs.clone(),
        d.join("sub/../docs.jsonl"),
        d.join("link.jsonl"),
    ] {
        let a = enc(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, &["--output", "--input"]);
        assert!(same(&docs), "input changed by {out:?}");
    }
    // a file of the model folder is part of the model
    let a = enc(&model.join("tokenizer.json"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    refused(&a, &["part of --model"]);
    // search --output equal to --queries
    let emb = d.join("docs.safetensors");
    let a = enc(&emb);
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let q = d.join("q.jsonl");
    let qtext = "{\"id\":\"q1\",\"text\":\"purring pets\"}\n";
    std::fs::write(&q, qtext).unwrap();
    let search = [
        "search",
        "--model",
        s(&model),
        "--embeddings",
        s(&emb),
        "--queries",
        s(&q),
    ];
    let mut a = search.to_vec();
    a.extend(["--output", s(&q)]);
    refused(&a, &["--output", "--queries"]);
    assert_eq!(std::fs::read_to_string(&q).unwrap(), qtext);
    let mut a = search.to_vec();
    let run_file = d.join("run.trec");
    a.extend(["--output", s(&run_file)]);
    ok(&a);
    // metrics --output equal to --run
    let qrels = d.join("qrels.tsv");
    std::fs::write(&qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\n").unwrap();
    let run_text = std::fs::read_to_string(&run_file).unwrap();
    refused(
        &[
            "metrics",
            "--qrels",
            s(&qrels),
            "--run",
            s(&run_file),
            "--output",
            s(&run_file),
        ],
        &["--output", "--run"],
    );
    assert_eq!(std::fs::read_to_string(&run_file).unwrap(), run_text);
    // data pairs --out equal to --corpus
    let corpus = d.join("corpus.jsonl");
    let ctext = "{\"_id\":\"a\",\"title\":\"Cats\",\"text\":\"Cats purr a lot.\"}\n";
    std::fs::write(&corpus, ctext).unwrap();
    refused(
        &["data", "pairs", "--corpus", s(&corpus), "--out", s(&corpus)],
        &["--out", "--corpus"],
    );
    assert_eq!(std::fs::read_to_string(&corpus).unwrap(), ctext);
    // data mine --out equal to the dataset's queries file
    std::fs::create_dir_all(d.join("qrels")).unwrap();
    std::fs::write(
        d.join("queries.jsonl"),
        "{\"_id\":\"q1\",\"text\":\"pets\"}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("qrels/train.tsv"),
        "query-id\tcorpus-id\tscore\nq1\ta\t1\n",
    )
    .unwrap();
    refused(
        &[
            "data",
            "mine",
            "--dataset",
            s(d),
            "--out",
            s(&d.join("queries.jsonl")),
        ],
        &["--out", "--dataset"],
    );
    // eval --output whose run.trec is an input (--embeddings named run.trec here)
    let out = d.join("evalout");
    std::fs::create_dir(&out).unwrap();
    std::fs::copy(&emb, out.join("run.trec")).unwrap();
    refused(
        &[
            "eval",
            "--model",
            s(&model),
            "--dataset",
            s(d),
            "--split",
            "train",
            "--embeddings",
            s(&out.join("run.trec")),
            "--output",
            s(&out),
        ],
        &["run.trec", "--embeddings"],
    );
}

#[test]
fn a_convert_killed_mid_swap_leaves_a_whole_checkpoint_and_no_litter() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dense = root.join("dense");
    dense_model(&dense);
    let out = root.join("colbert");
    ok(&convert_args(&dense, &out, "1"));
    let first = head(&out);
    // Killed with the new checkpoint built, nothing swapped: the old one stays.
    killed_at(&convert_args(&dense, &out, "2"), "fsutil.swap.staged", &[]);
    assert_eq!(head(&out), first);
    assert_eq!(litter(root).len(), 1, "{:?}", litter(root));
    // Killed after the exchange: the new one is in place.
    killed_at(&convert_args(&dense, &out, "3"), "fsutil.swap.placed", &[]);
    let third = head(&out);
    assert_ne!(third, first);
    // Fallback swap killed between its two renames: `colbert` is missing, the old one
    // aside. A reader puts it back; the next convert cleans every temp.
    killed_at(
        &convert_args(&dense, &out, "4"),
        "fsutil.swap.aside",
        &[("COLZERO_SWAP_FALLBACK", "1")],
    );
    assert!(!out.exists());
    assert!(
        litter(root).iter().any(|n| n.starts_with(".colzero-old-")),
        "{:?}",
        litter(root)
    );
    let docs = root.join("d.jsonl");
    std::fs::write(&docs, "{\"id\":\"d\",\"text\":\"cats\"}\n").unwrap();
    let emb = root.join("d.safetensors");
    ok(&[
        "encode",
        "--model",
        s(&out),
        "--input",
        s(&docs),
        "--kind",
        "document",
        "--output",
        s(&emb),
    ]);
    assert_eq!(head(&out), third, "the previous checkpoint is back");
    ok(&convert_args(&dense, &out, "5"));
    assert_eq!(litter(root), Vec::<String>::new());
    assert!(out.join("modules.json").is_file());
}

#[test]
fn a_killed_encode_leaves_a_temp_that_the_next_run_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let docs = d.join("in/docs.jsonl");
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::write(&docs, "{\"id\":\"d\",\"text\":\"cats\"}\n").unwrap();
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("e.safetensors");
    let model = tiny_colbert();
    let args = [
        "encode",
        "--model",
        s(&model),
        "--input",
        s(&docs),
        "--kind",
        "document",
        "--output",
        s(&out),
    ];
    killed_at(&args, "fsutil.write.synced", &[]);
    let l = litter(&out_dir);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].ends_with(".tmp"), "{l:?}");
    assert!(!out.exists());
    ok(&args);
    assert_eq!(names(&out_dir), vec!["e.safetensors".to_string()]);
}
