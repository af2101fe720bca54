//! Index safety through the binary (issue 16): one writer per index (a second one is
//! refused naming the holder, or waits with `--wait`), concurrent add+add and add+delete
//! keep every acknowledged change, `index add` is all or nothing per command (a bad line
//! late in the input leaves the index byte-identical and the retry works), a kill at
//! every write step of add and delete leaves the old or the new index and no litter after
//! the next writer, searches during an add never fail, `--ids-file` errors name the
//! line, and an index refuses queries or documents of another model than the one that
//! built it (the manifest records its model fingerprint).

use colzero_core::lock::{FileLock, Wait};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_colzero"));
    c.arg("--quiet").arg("--threads").arg("1");
    c.env_remove("COLZERO_FAULT");
    c
}

fn tiny_model() -> PathBuf {
    colzero_core::testing::repo_path("crates/model/tests/fixtures/tiny-bert-colbert")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const WORDS: [&str; 12] = [
    "stem", "cells", "market", "vitamin", "bone", "river", "engine", "protein", "climate", "music",
    "orbit", "forest",
];

/// A JSONL corpus of `n` documents with ids `<prefix><i>`.
fn corpus(path: &Path, prefix: &str, n: usize) {
    let mut s = String::new();
    for i in 0..n {
        let text: Vec<&str> = (0..6)
            .map(|j| WORDS[(i * 5 + j * 7) % WORDS.len()])
            .collect();
        s.push_str(&format!(
            "{{\"id\": \"{prefix}{i}\", \"text\": \"{} {i}\"}}\n",
            text.join(" ")
        ));
    }
    std::fs::write(path, s).unwrap();
}

fn index_cmd(action: &str, idx: &Path) -> Command {
    let mut c = bin();
    c.args(["index", action, "--index"]).arg(idx);
    c
}

fn add(idx: &Path, docs: &Path) -> Command {
    let mut c = index_cmd("add", idx);
    c.arg("--model")
        .arg(tiny_model())
        .arg("--corpus")
        .arg(docs)
        .args(["--chunk-docs", "2"]);
    c
}

fn build(dir: &Path, n: usize) -> PathBuf {
    let docs = dir.join("base.jsonl");
    corpus(&docs, "b", n);
    let idx = dir.join("idx");
    let o = bin()
        .args(["index", "build", "--model"])
        .arg(tiny_model())
        .arg("--corpus")
        .arg(&docs)
        .arg("--out")
        .arg(&idx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    idx
}

fn ids(idx: &Path) -> Vec<String> {
    let mut v: Vec<String> = colzero_index::PlaidIndex::open(idx)
        .unwrap()
        .ids()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Names in the index directory that no manifest references (lock files excepted).
fn litter(idx: &Path) -> Vec<String> {
    let m = colzero_index::format::read_manifest(idx).unwrap();
    colzero_index::format::unreferenced_files(idx, &m)
}

fn expect_ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn a_held_index_is_refused_naming_the_holder_or_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 6);
    let docs = dir.path().join("new.jsonl");
    corpus(&docs, "n", 3);
    let held = FileLock::exclusive(&idx.join("writer.lock"), Wait::No).unwrap();
    let o = add(&idx, &docs).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("writer.lock"), "{err}");
    assert!(
        err.contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    let o = index_cmd("delete", &idx)
        .args(["--ids", "b1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // With --wait, the command goes through once the holder is done.
    let child = add(&idx, &docs)
        .args(["--wait", "60"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(held);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ids(&idx).len(), 9);
}

#[test]
fn concurrent_adds_and_deletes_keep_every_acknowledged_change() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 6);
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    corpus(&a, "a", 12);
    corpus(&b, "c", 12);
    let ca = add(&idx, &a)
        .args(["--wait", "120"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let cb = add(&idx, &b)
        .args(["--wait", "120"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let cd = index_cmd("delete", &idx)
        .args(["--ids", "b0,b1,b2", "--wait", "120"])
        .output()
        .unwrap();
    for o in [
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
        cd,
    ] {
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut want = expect_ids("a", 12);
    want.extend(expect_ids("c", 12));
    want.extend(expect_ids("b", 6).into_iter().skip(3));
    want.sort();
    assert_eq!(ids(&idx), want);
    assert!(litter(&idx).is_empty(), "{:?}", litter(&idx));
}

#[test]
fn a_failing_add_changes_nothing_and_the_retry_works() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 6);
    // One committed update so that the lock files exist, then the snapshot.
    let o = index_cmd("delete", &idx)
        .args(["--ids", "b5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let before = files(&idx);
    let docs = dir.path().join("new.jsonl");
    corpus(&docs, "n", 8);
    let mut text = std::fs::read_to_string(&docs).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let broken = format!(
        "{}\n{}\n{}\n{}\n{{\"id\": \"n4\", \"text\": \n{}\n",
        lines[0],
        lines[1],
        lines[2],
        lines[3],
        lines[5..].join("\n")
    );
    std::fs::write(&docs, &broken).unwrap();
    let o = add(&idx, &docs).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("new.jsonl:5"), "{err}");
    assert_eq!(
        files(&idx),
        before,
        "a failed add leaves the index byte-identical"
    );
    // An id already in the index: refused before anything is encoded.
    corpus(&docs, "n", 3);
    text.clear();
    text.push_str(&std::fs::read_to_string(&docs).unwrap());
    text.push_str("{\"id\": \"b1\", \"text\": \"again\"}\n");
    std::fs::write(&docs, &text).unwrap();
    let o = add(&idx, &docs).output().unwrap();
    assert!(
        stderr(&o).contains("`b1` is already in the index"),
        "{}",
        stderr(&o)
    );
    assert_eq!(files(&idx), before);
    // The fixed input goes through.
    corpus(&docs, "n", 8);
    let o = add(&idx, &docs).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ids(&idx).len(), 5 + 8);
}

#[test]
fn a_kill_at_every_write_step_leaves_old_or_new_and_no_litter() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 6);
    let docs = dir.path().join("new.jsonl");
    corpus(&docs, "n", 5);
    let old = ids(&idx);
    let mut new = old.clone();
    new.extend(expect_ids("n", 5));
    new.sort();
    let steps = [
        ("index.add.chunk@1", false),
        ("index.add.chunk@3", false),
        ("index.commit.begin", false),
        ("index.commit.ivf", false),
        ("index.commit.docs", false),
        ("index.commit.manifest", true),
        ("index.commit.gc", true),
    ];
    for (step, applied) in steps {
        let o = add(&idx, &docs)
            .env("COLZERO_FAULT", step)
            .output()
            .unwrap();
        assert_eq!(o.status.signal(), Some(9), "{step}: {}", stderr(&o));
        assert_eq!(&ids(&idx), if applied { &new } else { &old }, "{step}");
        if applied {
            // Back to the old state for the next step, through the CLI.
            let o = index_cmd("delete", &idx)
                .args(["--ids", "n0,n1,n2,n3,n4"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
        }
        // The next writer (here `index check`) leaves nothing unreferenced.
        let o = index_cmd("check", &idx).output().unwrap();
        assert!(o.status.success(), "{step}: {}", stderr(&o));
        assert!(litter(&idx).is_empty(), "{step}: {:?}", litter(&idx));
    }
    for (step, applied) in [
        ("index.commit.begin", false),
        ("index.commit.docs", false),
        ("index.commit.manifest", true),
    ] {
        let before = ids(&idx);
        let o = index_cmd("delete", &idx)
            .args(["--ids", "b0,b3"])
            .env("COLZERO_FAULT", step)
            .output()
            .unwrap();
        assert_eq!(o.status.signal(), Some(9), "{step}: {}", stderr(&o));
        let after = ids(&idx);
        let gone = before.len() - after.len();
        assert_eq!(gone, if applied { 2 } else { 0 }, "delete {step}");
        if applied {
            let back = dir.path().join("back.jsonl");
            std::fs::write(
                &back,
                "{\"id\": \"b0\", \"text\": \"stem cells\"}\n{\"id\": \"b3\", \"text\": \"bone\"}\n",
            )
            .unwrap();
            let o = add(&idx, &back).output().unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
    let o = add(&idx, &docs).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ids(&idx), new);
    assert!(litter(&idx).is_empty(), "{:?}", litter(&idx));
}

#[test]
fn searches_during_an_add_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 6);
    let docs = dir.path().join("new.jsonl");
    corpus(&docs, "n", 40);
    let mut writer = add(&idx, &docs).stdout(Stdio::null()).spawn().unwrap();
    let mut n = 0;
    loop {
        let done = writer.try_wait().unwrap().is_some();
        let o = bin()
            .args(["search", "--model"])
            .arg(tiny_model())
            .arg("--index")
            .arg(&idx)
            .args(["--query", "stem cells", "-k", "3"])
            .output()
            .unwrap();
        assert!(o.status.success(), "search {n}: {}", stderr(&o));
        n += 1;
        if done {
            break;
        }
    }
    assert!(writer.wait().unwrap().success());
    assert_eq!(ids(&idx).len(), 46);
}

#[test]
fn ids_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 4);
    let f = dir.path().join("ids.txt");
    std::fs::write(&f, b"\xEF\xBB\xBFb0\nb\xff1\n").unwrap();
    let o = index_cmd("delete", &idx)
        .arg("--ids-file")
        .arg(&f)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("ids.txt:2: not UTF-8"), "{err}");
    assert_eq!(ids(&idx).len(), 4, "nothing deleted");
    std::fs::write(&f, b"\xEF\xBB\xBFb0\n\n  b1  \n").unwrap();
    let o = index_cmd("delete", &idx)
        .arg("--ids-file")
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ids(&idx), ["b2", "b3"]);
}

/// A copy of the tiny model with one weight changed: same shapes, another fingerprint.
fn other_model(dir: &Path) -> PathBuf {
    let src = tiny_model();
    let dst = dir.join("other-model");
    for e in walk(&src) {
        let rel = e.strip_prefix(&src).unwrap();
        std::fs::create_dir_all(dst.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&e, dst.join(rel)).unwrap();
    }
    let w = dst.join("1_Dense/model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x01; // the last weight's low mantissa bits
    std::fs::write(&w, bytes).unwrap();
    dst
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_index_refuses_queries_and_documents_of_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 6);
    let other = other_model(dir.path());
    let o = bin()
        .args(["search", "--model"])
        .arg(&other)
        .arg("--index")
        .arg(&idx)
        .args(["--query", "stem cells"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("another model"), "{err}");
    let docs = dir.path().join("new.jsonl");
    corpus(&docs, "n", 2);
    let o = index_cmd("add", &idx)
        .arg("--model")
        .arg(&other)
        .arg("--corpus")
        .arg(&docs)
        .output()
        .unwrap();
    assert!(stderr(&o).contains("another model"), "{}", stderr(&o));
    assert_eq!(ids(&idx).len(), 6);
    // The model that built it is accepted.
    let o = bin()
        .args(["search", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(&idx)
        .args(["--query", "stem cells"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn beir_queries_files_with_underscore_ids_are_read_by_search() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build(dir.path(), 4);
    let q = dir.path().join("queries.jsonl");
    std::fs::write(&q, "{\"_id\": \"q1\", \"text\": \"stem cells\"}\n").unwrap();
    let run = dir.path().join("run.trec");
    let o = bin()
        .args(["search", "--model"])
        .arg(tiny_model())
        .arg("--index")
        .arg(&idx)
        .arg("--queries")
        .arg(&q)
        .arg("--output")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&run).unwrap();
    assert!(text.lines().all(|l| l.starts_with("q1 ")), "{text}");
    assert_eq!(text.lines().count(), 4);
}
