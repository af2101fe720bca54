//! The one-writer protocol of `writer.rs` on seeded synthetic data: a second writer is
//! refused (or waits), staged changes are all or nothing (a dropped or failed writer
//! leaves the directory byte-identical), generations are never reused, readers keep
//! their snapshot while writers commit, and garbage collection waits for opening readers.

use colzero_core::lock::{FileLock, Wait};
use colzero_core::{CoreError, MultiVector};
use colzero_index::synthetic::{clustered, SyntheticConfig};
use colzero_index::writer::{collect_garbage, READERS_LOCK};
use colzero_index::{build_index, BuildConfig, IndexError, IndexWriter, PlaidIndex, SearchParams};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

type Corpus = Vec<(String, MultiVector)>;

fn data(n_docs: usize, seed: u64) -> (Corpus, Corpus) {
    clustered(&SyntheticConfig {
        dim: 32,
        n_docs,
        n_queries: 8,
        n_concepts: 32,
        min_doc_len: 5,
        max_doc_len: 20,
        query_len: 8,
        seed,
        ..Default::default()
    })
}

fn cfg() -> BuildConfig {
    BuildConfig {
        chunk_docs: 40,
        ..Default::default()
    }
}

/// Every file of a directory with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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

/// Files that are neither referenced by the manifest nor the manifest or a lock file.
fn litter(dir: &Path) -> Vec<String> {
    let m = colzero_index::format::read_manifest(dir).unwrap();
    colzero_index::format::unreferenced_files(dir, &m)
}

fn ids_of(d: &[(String, MultiVector)]) -> (Vec<String>, Vec<MultiVector>) {
    d.iter().map(|(i, m)| (i.clone(), m.clone())).unzip()
}

#[test]
fn second_writer_is_refused_or_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = data(120, 1);
    let p = dir.path().join("idx");
    build_index(&p, &docs[..80], &cfg()).unwrap();
    let w = IndexWriter::open(&p, Wait::No).unwrap();
    let err = IndexWriter::open(&p, Wait::No)
        .err()
        .expect("second writer refused");
    let msg = err.to_string();
    assert!(
        matches!(err, IndexError::Core(CoreError::Locked { .. })),
        "{msg}"
    );
    assert!(msg.contains("writer.lock"), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    // The one-shot API is a writer too.
    let mut idx = PlaidIndex::open(&p).unwrap();
    assert!(idx.delete(&["d0"]).is_err());
    assert!(idx.contains("d0"));
    // A waiting writer gets in once the first one is done, and sees its commit.
    let p2 = p.clone();
    let extra = docs[80..90].to_vec();
    let t = std::thread::spawn(move || {
        let mut w2 = IndexWriter::open(&p2, Wait::Up(Duration::from_secs(30))).unwrap();
        let (ids, embs) = ids_of(&extra);
        w2.add(ids, &embs).unwrap();
        w2.commit().unwrap().len()
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut w = w;
    assert_eq!(w.delete(&["d1", "d2", "nope"]).unwrap(), 2);
    let after_first = w.commit().unwrap();
    assert_eq!(after_first.len(), 78);
    assert_eq!(t.join().unwrap(), 88);
    let idx = PlaidIndex::open(&p).unwrap();
    assert_eq!(idx.len(), 88);
    assert!(!idx.contains("d1") && idx.contains("d85"));
    assert!(litter(&p).is_empty(), "{:?}", litter(&p));
}

#[test]
fn dropped_or_failed_writer_leaves_the_directory_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = data(200, 2);
    let p = dir.path().join("idx");
    build_index(&p, &docs[..100], &cfg()).unwrap();
    // One committed update first, so that lock files already exist.
    PlaidIndex::open(&p).unwrap().delete(&["d3"]).unwrap();
    let before = snapshot(&p);

    // Two staged chunks and a delete, then dropped.
    let mut w = IndexWriter::open(&p, Wait::No).unwrap();
    let (ids, embs) = ids_of(&docs[100..140]);
    w.add(ids, &embs).unwrap();
    let (ids, embs) = ids_of(&docs[140..180]);
    w.add(ids, &embs).unwrap();
    assert_eq!(w.delete(&["d4"]).unwrap(), 1);
    assert!(w.contains("d150") && !w.contains("d4"));
    assert!(
        snapshot(&p).len() > before.len(),
        "chunks are staged on disk"
    );
    drop(w);
    assert_eq!(snapshot(&p), before);

    // A failure in the second chunk (wrong dimension): nothing of the first one stays.
    let mut w = IndexWriter::open(&p, Wait::No).unwrap();
    let (ids, embs) = ids_of(&docs[100..140]);
    w.add(ids, &embs).unwrap();
    let bad = MultiVector::new(16, vec![0.25; 32]).unwrap();
    let err = w.add(vec!["x".into()], &[bad]).unwrap_err();
    assert!(matches!(err, IndexError::Dim { .. }), "{err}");
    // A duplicate id is refused before anything is written, also against staged ids.
    let (ids, embs) = ids_of(&docs[100..101]);
    assert!(matches!(w.add(ids, &embs), Err(IndexError::DuplicateId(_))));
    drop(w);
    assert_eq!(snapshot(&p), before);
    let idx = PlaidIndex::open(&p).unwrap();
    assert_eq!(idx.len(), 99);
    assert!(!idx.contains("d100"));
}

#[test]
fn a_multi_chunk_commit_is_one_generation_and_equals_one_big_add() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, queries) = data(200, 3);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build_index(&a, &docs[..100], &cfg()).unwrap();
    build_index(&b, &docs[..100], &cfg()).unwrap();
    let g0 = PlaidIndex::open(&a).unwrap().info().generation;
    let mut w = IndexWriter::open(&a, Wait::No).unwrap();
    for part in docs[100..].chunks(25) {
        let (ids, embs) = ids_of(part);
        w.add(ids, &embs).unwrap();
    }
    let ia = w.commit().unwrap();
    assert_eq!(ia.info().generation, g0 + 1);
    assert_eq!(ia.info().num_chunks, 3 + 4);
    let mut ib = PlaidIndex::open(&b).unwrap();
    let (ids, embs) = ids_of(&docs[100..]);
    ib.add(ids, &embs).unwrap();
    // Same documents, same reconstruction where no centroid was added.
    assert_eq!(ia.len(), 200);
    assert_eq!(ib.len(), 200);
    let p = SearchParams::default();
    for (_, q) in &queries {
        let ha: Vec<String> = ia
            .search_with(q, 10, &p, None)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        let hb: Vec<String> = ib
            .search_with(q, 10, &p, None)
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
        let common = ha.iter().filter(|i| hb.contains(i)).count();
        assert!(common >= 8, "{ha:?} vs {hb:?}");
    }
}

#[test]
fn generations_never_reuse_litter_and_litter_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = data(120, 4);
    let p = dir.path().join("idx");
    build_index(&p, &docs[..100], &cfg()).unwrap();
    let g = PlaidIndex::open(&p).unwrap().info().generation;
    // A killed writer's files: a chunk of the next generation and a temp file.
    let junk = format!("chunk-g{}-0.bin", g + 1);
    std::fs::write(p.join(&junk), b"half a chunk").unwrap();
    std::fs::write(p.join(".colzero-abc.tmp"), b"temp").unwrap();
    let w = IndexWriter::open(&p, Wait::No).unwrap();
    assert_eq!(w.generation(), g + 2);
    assert!(!p.join(&junk).exists(), "litter removed under the lock");
    assert!(!p.join(".colzero-abc.tmp").exists());
    let mut w = w;
    let (ids, embs) = ids_of(&docs[100..]);
    w.add(ids, &embs).unwrap();
    let idx = w.commit().unwrap();
    assert_eq!(idx.info().generation, g + 2);
    assert!(litter(&p).is_empty(), "{:?}", litter(&p));
}

#[test]
fn readers_keep_their_snapshot_and_gc_waits_for_opening_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, queries) = data(200, 5);
    let p = dir.path().join("idx");
    build_index(&p, &docs[..100], &cfg()).unwrap();
    let old = PlaidIndex::open(&p).unwrap();
    let params = SearchParams::default();
    let q = &queries[0].1;
    let before = old.search_with(q, 5, &params, None).unwrap();
    let rec_before = old.reconstruct("d7").unwrap();

    // Commit twice (new centroids, ivf and id table each time): the old files go.
    let mut w = IndexWriter::open(&p, Wait::No).unwrap();
    let (ids, embs) = ids_of(&docs[100..150]);
    w.add(ids, &embs).unwrap();
    w.delete(&["d7"]).unwrap();
    w.commit().unwrap();
    let old_files: Vec<String> = vec![
        old.manifest().docs.name.clone(),
        old.manifest().ivf.name.clone(),
    ];
    assert!(old_files.iter().all(|f| !p.join(f).exists()));
    // The old snapshot still answers exactly as before.
    assert_eq!(old.search_with(q, 5, &params, None).unwrap(), before);
    assert_eq!(old.reconstruct("d7").unwrap(), rec_before);
    assert!(!PlaidIndex::open(&p).unwrap().contains("d7"));

    // A reader in the middle of opening (holding the readers' lock): collection is
    // deferred, so the files of the manifest it may have read stay.
    let opening = FileLock::shared(&p.join(READERS_LOCK), Wait::No).unwrap();
    let docs_file = PlaidIndex::open(&p).unwrap().manifest().docs.name.clone();
    let mut w = IndexWriter::open(&p, Wait::No).unwrap();
    w.delete(&["d8"]).unwrap();
    w.commit().unwrap();
    assert!(p.join(&docs_file).exists(), "deferred while a reader opens");
    assert_eq!(litter(&p), vec![docs_file.clone()]);
    drop(opening);
    assert_eq!(collect_garbage(&p, Wait::No).unwrap(), 1);
    assert!(litter(&p).is_empty());
}

#[test]
fn failed_fresh_build_leaves_no_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = data(50, 6);
    let p = dir.path().join("fresh");
    let sample: Vec<MultiVector> = docs.iter().map(|d| d.1.clone()).collect();
    let mut b = colzero_index::IndexBuilder::train(&p, &sample, &cfg()).unwrap();
    let (ids, embs) = ids_of(&docs[..20]);
    b.add_chunk(ids, &embs).unwrap();
    // Another writer cannot get in while the builder holds the directory.
    assert!(FileLock::try_exclusive(&p.join("writer.lock"))
        .unwrap()
        .is_none());
    drop(b);
    assert!(!p.exists(), "{:?}", snapshot(&p));
}
