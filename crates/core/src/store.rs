//! Embedding store: multi-vectors saved as one safetensors file.
//!
//! Contract: the file holds one F32 tensor of shape `[tokens, dim]` per text, named by the
//! text's id (this is the output format of `colzero encode`). All tensors share one `dim`.
//! Writing is atomic; reading memory-maps the file and validates dtype and shape of every
//! tensor at open, naming the offending tensor on error.
//!
//! Provenance metadata (written by `colzero encode` / `eval --save-embeddings`):
//! [`KIND_KEY`] (`query` or `document`), [`MODEL_FINGERPRINT_KEY`] (the encoding model's
//! content fingerprint, `colzero_model::model_fingerprint`) and [`MODEL_KEY`] (its path,
//! informational only). [`EmbeddingStore::require_kind`] refuses a store of the other
//! kind, [`EmbeddingStore::require_model`] / [`EmbeddingStore::require_same_model`] a
//! store of another model, so query and document vectors of different sides or models are
//! never mixed silently. A store without these keys (written before colzero recorded
//! them, or by another tool) stays readable and passes the checks;
//! [`EmbeddingStore::unchecked_note`] says so, for the caller to print as a warning.

use crate::embedding::MultiVector;
use crate::error::{CoreError, Result};
use crate::fsutil::atomic_write_bytes;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key: the side the texts were encoded as, `query` or `document`.
pub const KIND_KEY: &str = "colzero.kind";
/// Metadata key: the encoding model's content fingerprint.
pub const MODEL_FINGERPRINT_KEY: &str = "colzero.model_fingerprint";
/// Metadata key: the encoding model's path when the store was written (informational).
pub const MODEL_KEY: &str = "colzero.model";

/// Collects multi-vectors and writes them as one safetensors file.
#[derive(Default)]
pub struct StoreWriter {
    items: Vec<(String, MultiVector)>,
    metadata: HashMap<String, String>,
}

impl StoreWriter {
    /// A new, empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a metadata key (for example `colzero.kind`).
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds one text's embedding; ids must be unique and dims equal.
    pub fn push(&mut self, id: String, mv: MultiVector) -> Result<()> {
        if let Some((_, first)) = self.items.first() {
            if first.dim() != mv.dim() {
                return Err(CoreError::Shape(format!(
                    "embedding `{id}` has dim {}, store has dim {}",
                    mv.dim(),
                    first.dim()
                )));
            }
        }
        self.items.push((id, mv));
        Ok(())
    }

    /// Number of embeddings collected.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes the store to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (id, _) in &self.items {
            if !seen.insert(id.as_str()) {
                return Err(CoreError::Invalid(format!(
                    "duplicate id `{id}` in embedding store"
                )));
            }
        }
        let views: Vec<(String, TensorView<'_>)> = self
            .items
            .iter()
            .map(|(id, mv)| {
                let bytes = f32_bytes(mv.as_slice());
                TensorView::new(Dtype::F32, vec![mv.n_tokens(), mv.dim()], bytes)
                    .map(|v| (id.clone(), v))
                    .map_err(|e| CoreError::Shape(format!("`{id}`: {e}")))
            })
            .collect::<Result<_>>()?;
        let meta = if self.metadata.is_empty() {
            None
        } else {
            Some(self.metadata.clone())
        };
        let bytes = safetensors::tensor::serialize(views, meta)
            .map_err(|e| CoreError::Invalid(format!("{}: {e}", path.display())))?;
        atomic_write_bytes(path, &bytes)
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; safetensors is
    // little-endian, which is the only byte order colzero supports.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// A memory-mapped embedding store opened for reading.
pub struct EmbeddingStore {
    path: PathBuf,
    mmap: memmap2::Mmap,
    ids: Vec<String>,
    dim: usize,
    metadata: HashMap<String, String>,
}

impl EmbeddingStore {
    /// Opens and validates a store written by [`StoreWriter`] (or any safetensors file of
    /// 2-D F32 tensors).
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
        // SAFETY: the file is opened read-only; colzero never mutates a store in place
        // (writes go to a new file that is renamed over the old one).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| CoreError::io(path, e))?;
        let st = SafeTensors::deserialize(&mmap).map_err(|e| CoreError::BadFile {
            path: path.to_path_buf(),
            reason: format!("not a safetensors file: {e}"),
        })?;
        let (_, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| CoreError::BadFile {
            path: path.to_path_buf(),
            reason: format!("bad safetensors header: {e}"),
        })?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let mut ids = Vec::new();
        let mut dim = None;
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 || view.shape().len() != 2 {
                return Err(CoreError::BadFile {
                    path: path.to_path_buf(),
                    reason: format!(
                        "tensor `{name}`: expected F32 [tokens, dim], found {:?} {:?}",
                        view.dtype(),
                        view.shape()
                    ),
                });
            }
            let d = view.shape()[1];
            if *dim.get_or_insert(d) != d {
                return Err(CoreError::BadFile {
                    path: path.to_path_buf(),
                    reason: format!("tensor `{name}` has dim {d}, others have {}", dim.unwrap()),
                });
            }
            ids.push(name);
        }
        ids.sort();
        drop(st);
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            ids,
            dim: dim.unwrap_or(0),
            metadata,
        })
    }

    /// Ids in the store, sorted.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Number of embeddings.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the store is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Embedding dimension (0 for an empty store).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The store's metadata.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The recorded kind (`query` / `document`), if any.
    pub fn kind(&self) -> Option<&str> {
        self.metadata.get(KIND_KEY).map(String::as_str)
    }

    /// The recorded model fingerprint, if any.
    pub fn model_fingerprint(&self) -> Option<&str> {
        self.metadata.get(MODEL_FINGERPRINT_KEY).map(String::as_str)
    }

    /// Refuses a store whose recorded kind is not `want`; `role` says what the store is
    /// used as (e.g. "--embeddings (documents to search)"). A store without a kind passes.
    pub fn require_kind(&self, want: &str, role: &str) -> Result<()> {
        match self.kind() {
            Some(k) if k != want => Err(CoreError::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "holds {k} embeddings ({KIND_KEY} = {k}) but {role} needs {want} embeddings \
                     (encode them with `colzero encode --kind {want}`)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a store encoded by another model than the one whose fingerprint is
    /// `fingerprint` (`model` names it in the message). A store without a fingerprint
    /// passes.
    pub fn require_model(&self, fingerprint: &str, model: &str) -> Result<()> {
        match self.model_fingerprint() {
            Some(f) if f != fingerprint => Err(CoreError::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "was encoded by another model ({}, fingerprint {f}) than {model} \
                     (fingerprint {fingerprint}); queries and documents must be encoded by the \
                     same model",
                    self.written_by()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses two stores whose recorded model fingerprints differ (e.g. a query store and
    /// a document store from different models). Passes when either has none.
    pub fn require_same_model(&self, other: &EmbeddingStore) -> Result<()> {
        match (self.model_fingerprint(), other.model_fingerprint()) {
            (Some(a), Some(b)) if a != b => Err(CoreError::Invalid(format!(
                "{} ({}, fingerprint {a}) and {} ({}, fingerprint {b}) were encoded by \
                 different models; queries and documents must be encoded by the same model",
                self.path.display(),
                self.written_by(),
                other.path.display(),
                other.written_by()
            ))),
            _ => Ok(()),
        }
    }

    /// A note for stores lacking kind or model fingerprint (their use cannot be checked);
    /// `None` for stores that carry both.
    pub fn unchecked_note(&self) -> Option<String> {
        let missing: Vec<&str> = [KIND_KEY, MODEL_FINGERPRINT_KEY]
            .into_iter()
            .filter(|k| !self.metadata.contains_key(*k))
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "{} has no {} metadata (written by an older colzero or another tool): \
                 cannot check that it holds the right kind of embeddings from the same model",
                self.path.display(),
                missing.join(" / ")
            )
        })
    }

    fn written_by(&self) -> String {
        match self.metadata.get(MODEL_KEY) {
            Some(m) => format!("model {m}"),
            None => "model path not recorded".into(),
        }
    }

    /// Copies out the embedding of `id`.
    pub fn get(&self, id: &str) -> Result<MultiVector> {
        let st = SafeTensors::deserialize(&self.mmap).map_err(|e| CoreError::BadFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let view = st.tensor(id).map_err(|_| CoreError::BadFile {
            path: self.path.clone(),
            reason: format!("no embedding with id `{id}`"),
        })?;
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        MultiVector::new(view.shape()[1], data)
    }

    /// Loads every embedding, in id order.
    pub fn load_all(&self) -> Result<Vec<(String, MultiVector)>> {
        let st = SafeTensors::deserialize(&self.mmap).map_err(|e| CoreError::BadFile {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        self.ids
            .iter()
            .map(|id| {
                let view = st.tensor(id).expect("validated at open");
                let data: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                Ok((id.clone(), MultiVector::new(view.shape()[1], data)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_including_empty_embedding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.safetensors");
        let mut w = StoreWriter::new();
        w.metadata("colzero.kind", "document");
        w.push(
            "d2".into(),
            MultiVector::new(2, vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
        )
        .unwrap();
        w.push("d1".into(), MultiVector::empty(2)).unwrap();
        w.write(&p).unwrap();
        let s = EmbeddingStore::open(&p).unwrap();
        assert_eq!(s.ids(), ["d1", "d2"]);
        assert_eq!(s.dim(), 2);
        assert_eq!(s.get("d2").unwrap().as_slice(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.get("d1").unwrap().n_tokens(), 0);
        assert_eq!(s.metadata()["colzero.kind"], "document");
        assert!(s.get("nope").is_err());
    }

    #[test]
    fn duplicate_ids_and_mixed_dims_are_rejected() {
        let mut w = StoreWriter::new();
        w.push("a".into(), MultiVector::new(2, vec![1.0, 2.0]).unwrap())
            .unwrap();
        assert!(w
            .push(
                "b".into(),
                MultiVector::new(3, vec![1.0, 2.0, 3.0]).unwrap()
            )
            .is_err());
        w.push("a".into(), MultiVector::new(2, vec![1.0, 2.0]).unwrap())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(w.write(&dir.path().join("x")).is_err());
    }

    fn store_with(dir: &Path, name: &str, meta: &[(&str, &str)]) -> EmbeddingStore {
        let p = dir.join(name);
        let mut w = StoreWriter::new();
        for (k, v) in meta {
            w.metadata(k, v);
        }
        w.push("a".into(), MultiVector::new(2, vec![1.0, 0.0]).unwrap())
            .unwrap();
        w.write(&p).unwrap();
        EmbeddingStore::open(&p).unwrap()
    }

    #[test]
    fn kind_and_model_provenance_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let q = store_with(
            dir.path(),
            "q.safetensors",
            &[
                (KIND_KEY, "query"),
                (MODEL_FINGERPRINT_KEY, "fnv1a64:1"),
                (MODEL_KEY, "m1"),
            ],
        );
        let d = store_with(
            dir.path(),
            "d.safetensors",
            &[(KIND_KEY, "document"), (MODEL_FINGERPRINT_KEY, "fnv1a64:2")],
        );
        assert_eq!(q.kind(), Some("query"));
        assert_eq!(d.model_fingerprint(), Some("fnv1a64:2"));
        let msg = q
            .require_kind("document", "--embeddings")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("q.safetensors: holds query embeddings")
                && msg.contains("--embeddings needs document embeddings"),
            "{msg}"
        );
        d.require_kind("document", "--embeddings").unwrap();
        q.require_model("fnv1a64:1", "model m1").unwrap();
        let msg = q
            .require_model("fnv1a64:9", "model m9")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("another model (model m1, fingerprint fnv1a64:1) than model m9"),
            "{msg}"
        );
        let msg = q.require_same_model(&d).unwrap_err().to_string();
        assert!(msg.contains("different models"), "{msg}");
        assert_eq!(q.unchecked_note(), None);

        // an old store without metadata: readable, passes, and says it was not checked
        let old = store_with(dir.path(), "old.safetensors", &[]);
        old.require_kind("document", "--embeddings").unwrap();
        old.require_model("fnv1a64:9", "model m9").unwrap();
        old.require_same_model(&q).unwrap();
        let note = old.unchecked_note().unwrap();
        assert!(
            note.contains("colzero.kind / colzero.model_fingerprint"),
            "{note}"
        );
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, b"not a safetensors file at all").unwrap();
        let msg = EmbeddingStore::open(&p).err().unwrap().to_string();
        assert!(msg.contains("bad.safetensors"), "{msg}");
    }
}
