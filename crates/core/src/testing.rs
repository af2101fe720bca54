//! Test support: the one way tests find the read-only `../shared` data and models.
//!
//! Contract: [`shared_dir`] returns the directory named by `COLZERO_SHARED`, or the first
//! `shared/` directory beside the workspace or one of its ancestors. When neither exists
//! it panics with a message saying what is missing: tests that need shared data fail
//! loudly rather than skip. The product itself never calls this module.
//!
//! Gating, the one documented way: every test that reaches `../shared` (through this
//! module) is marked `#[ignore = "needs ../shared: run with -- --ignored"]`, so that
//! `cargo test --workspace` passes on a fresh clone without it, and
//! `cargo test --workspace -- --ignored` runs exactly those tests (`.ci/run` runs both).
//! A test that needs `../shared` but is not marked fails loudly on a fresh clone: to
//! check, run the suite with `COLZERO_SHARED=/nonexistent`.

use std::path::PathBuf;

/// The shared data directory (see module docs). Panics when it cannot be found.
pub fn shared_dir() -> PathBuf {
    if let Ok(p) = std::env::var("COLZERO_SHARED") {
        let p = PathBuf::from(p);
        assert!(
            p.join("data").is_dir(),
            "COLZERO_SHARED={} has no data/ directory",
            p.display()
        );
        return p;
    }
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let cand = dir.join("shared");
        if cand.join("data").is_dir() && cand.join("models").is_dir() {
            return cand;
        }
    }
    panic!(
        "shared test data not found: expected a `shared/` directory (with data/ and models/) \
         beside the colzero checkout, or COLZERO_SHARED pointing at it; searched upwards from {}",
        start.display()
    );
}

/// `shared_dir()/rel`, asserting that it exists.
pub fn shared_path(rel: &str) -> PathBuf {
    let p = shared_dir().join(rel);
    assert!(p.exists(), "shared test file missing: {}", p.display());
    p
}

/// The all-MiniLM-L6-v2 checkpoint in the shared models.
pub fn minilm_dir() -> PathBuf {
    shared_path("models/sentence-transformers/all-MiniLM-L6-v2")
}

/// A repository path relative to the workspace root (for committed fixtures).
pub fn repo_path(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(|p| p.parent())
        .expect("workspace root")
        .to_path_buf();
    root.join(rel)
}
