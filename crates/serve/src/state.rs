//! [`AppState`]: what the service holds (the model, the named indexes, the work queue)
//! and how it is loaded from a [`ServeConfig`].
//!
//! Contract:
//! - Each index is an [`IndexSlot`]: its directory, the committed snapshot it answers
//!   from (`Arc<PlaidIndex>`, swapped whole after each commit, so a search holds one
//!   snapshot from start to end: the old or the new, never a mix) and a write mutex that
//!   serialises the service's writes to it (the index's own `writer.lock` keeps other
//!   processes out; a write that finds it held gets 503 `INDEX_BUSY`).
//! - Indexes come from `--index NAME=DIR` (served, never deleted by the service) and from
//!   the subdirectories of `--data-dir` that hold an index (managed: created and deleted
//!   through the API). Names are 1–64 characters of `[A-Za-z0-9_.-]`, not starting with
//!   a dot, unique.
//! - CPU work (encoding, search, index writes) runs on blocking threads, never on the
//!   async executor: a request first takes a queue slot ([`AppState::admit`]; none free
//!   is 503 `QUEUE_FULL` with `Retry-After`), then waits for one of `workers` permits.
//!   Queue slots bound memory: at most `max_queue` requests hold decoded work at once.

use crate::error::{ApiError, Result, ServeError};
use colzero_index::PlaidIndex;
use colzero_model::{ColBERT, EncodeOptions, LoadOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// Request-size and work limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Requests holding CPU work at once, queued or running (503 above).
    pub max_queue: usize,
    /// CPU jobs running at once (each also uses the rayon pool inside).
    pub workers: usize,
    /// Most queries, texts or documents in one request.
    pub max_batch: usize,
    /// Largest `top_k`.
    pub max_top_k: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
            max_queue: 64,
            workers: 2,
            max_batch: 4096,
            max_top_k: 10_000,
        }
    }
}

/// Everything `colzero serve` is started with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// ColBERT model directory (queries and documents sent as text are encoded with it).
    pub model: PathBuf,
    /// How to load it.
    pub load: LoadOptions,
    /// Texts per forward pass.
    pub encode_batch_size: usize,
    /// Indexes served as they are: `(name, directory)`.
    pub indexes: Vec<(String, PathBuf)>,
    /// Directory where `POST /indices` creates indexes (and whose indexes are served).
    pub data_dir: Option<PathBuf>,
    pub limits: Limits,
}

impl ServeConfig {
    /// A configuration with default limits.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            load: LoadOptions::default(),
            encode_batch_size: 32,
            indexes: Vec::new(),
            data_dir: None,
            limits: Limits::default(),
        }
    }
}

/// One served index (see module docs).
pub struct IndexSlot {
    pub name: String,
    pub dir: PathBuf,
    /// Created under `--data-dir` (may be deleted through the API).
    pub managed: bool,
    snapshot: RwLock<Arc<PlaidIndex>>,
    /// Serialises this service's writes to the index.
    pub(crate) writer: Arc<Mutex<()>>,
}

impl IndexSlot {
    fn new(name: String, index: PlaidIndex, managed: bool) -> Self {
        Self {
            name,
            dir: index.dir().to_path_buf(),
            managed,
            snapshot: RwLock::new(Arc::new(index)),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The committed snapshot searches answer from.
    pub fn snapshot(&self) -> Arc<PlaidIndex> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the snapshot after a commit.
    pub(crate) fn publish(&self, index: PlaidIndex) {
        let new = Arc::new(index);
        match self.snapshot.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
    }
}

struct Inner {
    model: Arc<ColBERT>,
    model_dir: PathBuf,
    encode: EncodeOptions,
    data_dir: Option<PathBuf>,
    indexes: RwLock<BTreeMap<String, Arc<IndexSlot>>>,
    /// Serialises index creation and deletion.
    catalog: Arc<Mutex<()>>,
    queue: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    limits: Limits,
}

/// The shared state of the service (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// A queue slot taken by [`AppState::admit`]: CPU work runs through it.
pub struct Admitted {
    slot: OwnedSemaphorePermit,
    workers: Arc<Semaphore>,
}

impl Admitted {
    /// Runs `f` on a blocking thread once a worker is free; the queue slot and the worker
    /// are held until `f` returns, even when the client has gone.
    pub async fn run<T, F>(self, f: F) -> std::result::Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
    {
        let worker = self
            .workers
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("worker pool closed"))?;
        let slot = self.slot;
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop((worker, slot));
            out
        })
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
    }
}

/// True when `name` may name an index (see module docs).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl AppState {
    /// Loads the model and opens every index of `cfg` (see module docs).
    pub fn load(cfg: &ServeConfig) -> Result<Self> {
        let model = ColBERT::load(&cfg.model, &cfg.load)?;
        Self::with_model(cfg, Arc::new(model))
    }

    /// [`AppState::load`] with a model already loaded (tests share one).
    pub fn with_model(cfg: &ServeConfig, model: Arc<ColBERT>) -> Result<Self> {
        let l = &cfg.limits;
        if l.max_queue == 0 || l.workers == 0 || l.max_body_bytes == 0 {
            return Err(ServeError::Invalid(
                "--max-queue, --workers and --max-body-bytes must be at least 1".into(),
            ));
        }
        let mut indexes = BTreeMap::new();
        let mut add = |name: String, dir: &Path, managed: bool| -> Result<()> {
            if !valid_name(&name) {
                return Err(ServeError::Invalid(format!(
                    "index name `{name}`: use 1-64 characters of A-Z a-z 0-9 _ - . (not starting with .)"
                )));
            }
            if indexes.contains_key(&name) {
                return Err(ServeError::Invalid(format!(
                    "index name `{name}` is given twice ({})",
                    dir.display()
                )));
            }
            let index = PlaidIndex::open(dir).map_err(|source| ServeError::OpenIndex {
                name: name.clone(),
                source,
            })?;
            let dim = model.config().embedding_dim;
            if index.dim() != dim && !index.is_empty() {
                return Err(ServeError::Invalid(format!(
                    "index `{name}` ({}) holds dim {} but the model encodes dim {dim}",
                    dir.display(),
                    index.dim()
                )));
            }
            tracing::info!(name, dir = %dir.display(), documents = index.len(), "index opened");
            indexes.insert(name.clone(), Arc::new(IndexSlot::new(name, index, managed)));
            Ok(())
        };
        for (name, dir) in &cfg.indexes {
            add(name.clone(), dir, false)?;
        }
        if let Some(d) = &cfg.data_dir {
            std::fs::create_dir_all(d).map_err(|e| ServeError::io(d.display().to_string(), e))?;
            let rd =
                std::fs::read_dir(d).map_err(|e| ServeError::io(d.display().to_string(), e))?;
            let mut found: Vec<(String, PathBuf)> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join(colzero_index::format::MANIFEST).is_file())
                .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
                .filter(|(n, _)| valid_name(n))
                .collect();
            found.sort();
            for (name, dir) in found {
                add(name, &dir, true)?;
            }
        }
        Ok(Self(Arc::new(Inner {
            model,
            model_dir: cfg.model.clone(),
            encode: EncodeOptions {
                batch_size: cfg.encode_batch_size.max(1),
                show_progress: false,
                parallel_batches: true,
            },
            data_dir: cfg.data_dir.clone(),
            indexes: RwLock::new(indexes),
            catalog: Arc::new(Mutex::new(())),
            queue: Arc::new(Semaphore::new(l.max_queue)),
            workers: Arc::new(Semaphore::new(l.workers)),
            limits: l.clone(),
        })))
    }

    /// The model.
    pub fn model(&self) -> &Arc<ColBERT> {
        &self.0.model
    }

    /// The model's directory.
    pub fn model_dir(&self) -> &Path {
        &self.0.model_dir
    }

    /// Encoding options for every encode.
    pub fn encode_options(&self) -> &EncodeOptions {
        &self.0.encode
    }

    /// Where new indexes are created.
    pub fn data_dir(&self) -> Option<&Path> {
        self.0.data_dir.as_deref()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The served indexes, by name.
    pub fn indexes(&self) -> Vec<Arc<IndexSlot>> {
        let g = match self.0.indexes.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.values().cloned().collect()
    }

    /// The index named `name`, or 404.
    pub fn index(&self, name: &str) -> std::result::Result<Arc<IndexSlot>, ApiError> {
        let g = match self.0.indexes.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(name).cloned().ok_or_else(|| ApiError::no_index(name))
    }

    /// Registers a newly created index (the caller holds the catalog lock).
    pub(crate) fn insert(&self, name: String, index: PlaidIndex) -> Arc<IndexSlot> {
        let slot = Arc::new(IndexSlot::new(name.clone(), index, true));
        let mut g = match self.0.indexes.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.insert(name, slot.clone());
        slot
    }

    /// Unregisters an index (the caller holds the catalog lock).
    pub(crate) fn remove(&self, name: &str) -> Option<Arc<IndexSlot>> {
        let mut g = match self.0.indexes.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.remove(name)
    }

    /// The lock serialising index creation and deletion.
    pub(crate) fn catalog(&self) -> Arc<Mutex<()>> {
        self.0.catalog.clone()
    }

    /// Takes a queue slot for CPU work, or 503 `QUEUE_FULL` when all are taken.
    pub fn admit(&self) -> std::result::Result<Admitted, ApiError> {
        let slot = self.0.queue.clone().try_acquire_owned().map_err(|_| {
            ApiError::unavailable(
                "QUEUE_FULL",
                format!(
                    "{} requests are already queued or running (--max-queue); retry later",
                    self.0.limits.max_queue
                ),
            )
        })?;
        Ok(Admitted {
            slot,
            workers: self.0.workers.clone(),
        })
    }

    /// Queue slots free now.
    pub fn queue_free(&self) -> usize {
        self.0.queue.available_permits()
    }
}
