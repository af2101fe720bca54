//! Writes: `POST/DELETE /indices/{name}/documents`, `POST /indices`, `DELETE /indices/{name}`.
//!
//! Contract:
//! - A write holds the index's write mutex (one writer per index in this service) and,
//!   for its commit, the index's `writer.lock` (`IndexWriter::open_with(dir, Wait::No, served snapshot)`:
//!   another process writing it is 503 `INDEX_BUSY`). It answers 200 only after
//!   `IndexWriter::commit` renamed the manifest (fsynced): an acknowledged write survives
//!   a kill. The new snapshot is then published; searches that started earlier finish on
//!   the old one.
//! - Documents: `{"documents": [{"id", "text"} | {"id", "embeddings"}], "pool_factor"}`.
//!   Ids are the caller's strings and never change (deletes tombstone, nothing is
//!   renumbered). An id given twice, or already live, is 409 `DOCUMENT_EXISTS` and
//!   nothing is written (checked before encoding, and again by the index writer).
//!   `pool_factor > 1` pools every document (text or vectors) with
//!   `colzero_core::pool::pool_tokens(mv, pool_factor, 1)`.
//! - Delete: `{"ids": [..]}`; unknown ids are ignored and `deleted` counts the others.
//! - `POST /indices` `{"name", "documents", "pool_factor", "config": {"nbits", "seed",
//!   "num_centroids"}}` creates `--data-dir/NAME` from a first, non-empty batch of
//!   documents (PLAID needs token vectors to train its centroids; an empty index has
//!   none), with `colzero_index::build_index`. 409 `INDEX_ALREADY_EXISTS` if the name or
//!   directory exists; 400 without `--data-dir`.
//! - `DELETE /indices/{name}` removes a managed index (one created under `--data-dir`)
//!   from the service and from disk, under its writer lock; an index given with
//!   `--index` is 409 `INDEX_NOT_MANAGED` (the service never deletes a directory it was
//!   only asked to serve).

use crate::encode::{check_pool, encode_texts, one, to_multivector};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::search::{summary, IndexSummary};
use crate::state::{valid_name, AppState, IndexSlot};
use axum::extract::{Path, State};
use axum::Json;
use colzero_core::lock::{FileLock, Wait};
use colzero_core::MultiVector;
use colzero_index::{BuildConfig, IndexWriter};
use colzero_model::InputKind;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub id: String,
    pub text: Option<String>,
    pub embeddings: Option<Vec<Vec<f32>>>,
    /// Scalars only (`metadata.rs`); stored in the index's `metadata.sqlite`.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    pub documents: Vec<Document>,
    #[serde(default = "one")]
    pub pool_factor: usize,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct AddResponse {
    pub added: usize,
    pub document_ids: Vec<String>,
    pub num_documents: usize,
}

/// A validated batch: ids, then per document its text or its vectors.
struct Batch {
    ids: Vec<String>,
    items: Vec<Item>,
    pool_factor: usize,
}

enum Item {
    Text(String),
    Vectors(MultiVector),
}

/// Checks documents (dimension `dim` for vectors, `None`: any consistent one); ids
/// twice in the batch are 409.
fn validate(
    state: &AppState,
    docs: Vec<Document>,
    pool_factor: usize,
    dim: Option<usize>,
) -> Result<Batch, ApiError> {
    check_pool(pool_factor)?;
    if docs.is_empty() {
        return Err(ApiError::field(
            "documents",
            "must hold at least one document",
        ));
    }
    let max = state.limits().max_batch;
    if docs.len() > max {
        return Err(ApiError::field(
            "documents",
            format!("at most {max} per request"),
        ));
    }
    let mut seen = HashSet::new();
    let mut dim = dim;
    let mut batch = Batch {
        ids: Vec::with_capacity(docs.len()),
        items: Vec::with_capacity(docs.len()),
        pool_factor,
    };
    for (i, d) in docs.into_iter().enumerate() {
        let f = format!("documents[{i}]");
        if d.id.is_empty() {
            return Err(ApiError::field(&format!("{f}.id"), "is empty"));
        }
        if !seen.insert(d.id.clone()) {
            return Err(ApiError::conflict(
                "DOCUMENT_EXISTS",
                format!("document id `{}` is given twice ({f}.id)", d.id),
            ));
        }
        let item = match (d.text, d.embeddings) {
            (Some(t), None) if t.trim().is_empty() => {
                return Err(ApiError::field(&format!("{f}.text"), "is empty"))
            }
            (Some(t), None) => Item::Text(t),
            (None, Some(e)) => {
                let mv = to_multivector(&format!("{f}.embeddings"), e, dim)?;
                dim = Some(mv.dim());
                Item::Vectors(mv)
            }
            _ => {
                return Err(ApiError::field(
                    &f,
                    "give exactly one of `text` and `embeddings`",
                ))
            }
        };
        batch.ids.push(d.id);
        batch.items.push(item);
    }
    Ok(batch)
}

/// Turns a batch into multi-vectors (encoding its texts in one call; blocking).
fn embed(state: &AppState, batch: Batch) -> Result<(Vec<String>, Vec<MultiVector>), ApiError> {
    let texts: Vec<String> = batch
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Text(t) => Some(t.clone()),
            Item::Vectors(_) => None,
        })
        .collect();
    let mut encoded =
        encode_texts(state, &texts, InputKind::Document, batch.pool_factor)?.into_iter();
    let mut out = Vec::with_capacity(batch.items.len());
    for item in batch.items {
        out.push(match item {
            Item::Text(_) => encoded
                .next()
                .ok_or_else(|| ApiError::internal("encoder returned too few vectors"))?,
            Item::Vectors(v) if batch.pool_factor > 1 => {
                colzero_core::pool::pool_tokens(&v, batch.pool_factor, 1)
            }
            Item::Vectors(v) => v,
        });
    }
    Ok((batch.ids, out))
}

/// 404 when the index was deleted while this write waited for its turn.
fn ensure_still_served(state: &AppState, slot: &Arc<IndexSlot>) -> Result<(), ApiError> {
    match state.index(&slot.name) {
        Ok(now) if Arc::ptr_eq(&now, slot) => Ok(()),
        _ => Err(ApiError::no_index(&slot.name)),
    }
}

/// `POST /indices/{name}/documents`.
pub async fn add(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(mut req): ApiJson<AddRequest>,
) -> Result<Json<AddResponse>, ApiError> {
    let slot = state.index(&name)?;
    let snap = slot.snapshot();
    for (i, d) in req.documents.iter().enumerate() {
        if let Some(m) = &d.metadata {
            crate::metadata::validate(m, &format!("documents[{i}].metadata"))?;
        }
    }
    let metas = crate::metadata::rows(
        req.documents
            .iter_mut()
            .map(|d| (d.id.clone(), d.metadata.take())),
    );
    let batch = validate(&state, req.documents, req.pool_factor, Some(snap.dim()))?;
    if let Some(id) = batch.ids.iter().find(|id| snap.contains(id)) {
        return Err(ApiError::conflict(
            "DOCUMENT_EXISTS",
            format!("document id `{id}` already exists (delete it first to replace it)"),
        ));
    }
    drop(snap);
    let job = state.admit()?;
    let guard = slot.writer.clone().lock_owned().await;
    ensure_still_served(&state, &slot)?;
    let st = state.clone();
    let out = job
        .run(move || {
            let _guard = guard;
            let (ids, embs) = embed(&st, batch)?;
            // The served snapshot's chunks are reused, not checked again.
            let current = slot.snapshot();
            let mut w = IndexWriter::open_with(&slot.dir, Wait::No, Some(&current))?;
            // Metadata commits first, tagged with the generation this commit will have.
            let mut meta = crate::metadata::MetaStore::open(&slot.dir)?;
            meta.prune(current.info().generation)?;
            meta.put(w.generation(), &metas)?;
            w.add(ids.clone(), &embs)?;
            let index = w.commit()?;
            let num_documents = index.len();
            slot.publish(index);
            tracing::info!(
                index = slot.name,
                added = ids.len(),
                num_documents,
                "documents added"
            );
            Ok(AddResponse {
                added: ids.len(),
                document_ids: ids,
                num_documents,
            })
        })
        .await?;
    Ok(Json(out))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The ids to delete (or `filter`, not both).
    pub ids: Option<Vec<String>>,
    /// Delete the live documents whose metadata matches this filter (`metadata.rs`).
    pub filter: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct DeleteResponse {
    pub deleted: usize,
    pub num_documents: usize,
}

/// `DELETE /indices/{name}/documents`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let slot = state.index(&name)?;
    let (ids, filter) = match (req.ids, req.filter) {
        (Some(ids), None) if ids.is_empty() => {
            return Err(ApiError::field("ids", "must hold at least one id"))
        }
        (Some(ids), None) => (ids, None),
        (None, Some(f)) => (
            Vec::new(),
            Some(crate::metadata::Filter::parse(&f, "filter")?),
        ),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `ids` or `filter`, not both",
            ))
        }
        (None, None) => return Err(ApiError::bad_request("missing field `ids` (or `filter`)")),
    };
    let job = state.admit()?;
    let guard = slot.writer.clone().lock_owned().await;
    ensure_still_served(&state, &slot)?;
    let out = job
        .run(move || {
            let _guard = guard;
            let current = slot.snapshot();
            let ids = match &filter {
                None => ids,
                Some(f) => {
                    let store = crate::metadata::MetaStore::open(&slot.dir)?;
                    let mut m: Vec<String> = store
                        .matching(current.info().generation, f)?
                        .into_iter()
                        .filter(|id| current.contains(id))
                        .collect();
                    m.sort();
                    m
                }
            };
            if ids.is_empty() {
                return Ok(DeleteResponse {
                    deleted: 0,
                    num_documents: current.len(),
                });
            }
            let mut w = IndexWriter::open_with(&slot.dir, Wait::No, Some(&current))?;
            let deleted = w.delete(&ids)?;
            let index = w.commit()?;
            let num_documents = index.len();
            slot.publish(index);
            tracing::info!(
                index = slot.name,
                deleted,
                num_documents,
                "documents deleted"
            );
            Ok(DeleteResponse {
                deleted,
                num_documents,
            })
        })
        .await?;
    Ok(Json(out))
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    pub nbits: Option<usize>,
    pub seed: Option<u64>,
    pub num_centroids: Option<usize>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub name: String,
    pub documents: Vec<Document>,
    #[serde(default = "one")]
    pub pool_factor: usize,
    #[serde(default)]
    pub config: CreateConfig,
}

/// `POST /indices`.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<Json<IndexSummary>, ApiError> {
    let Some(root) = state.data_dir().map(|p| p.to_path_buf()) else {
        return Err(ApiError::bad_request(
            "this server has no --data-dir: indexes cannot be created",
        ));
    };
    if !valid_name(&req.name) {
        return Err(ApiError::field(
            "name",
            "use 1-64 characters of A-Z a-z 0-9 _ - . (not starting with .)",
        ));
    }
    let mut cfg = BuildConfig::default();
    if let Some(n) = req.config.nbits {
        if ![1, 2, 4].contains(&n) {
            return Err(ApiError::field("config.nbits", "must be 1, 2 or 4"));
        }
        cfg.nbits = n;
    }
    if let Some(s) = req.config.seed {
        cfg.seed = s;
    }
    if let Some(k) = req.config.num_centroids {
        if k == 0 {
            return Err(ApiError::field(
                "config.num_centroids",
                "must be at least 1",
            ));
        }
        cfg.num_centroids = Some(k);
    }
    let dim = state.model().config().embedding_dim;
    let batch = validate(&state, req.documents, req.pool_factor, Some(dim))?;
    let job = state.admit()?;
    // Held until the index is registered, even if the client goes away meanwhile.
    let catalog = state.catalog().lock_owned().await;
    let dir = root.join(&req.name);
    if state.index(&req.name).is_ok() || dir.exists() {
        return Err(ApiError::conflict(
            "INDEX_ALREADY_EXISTS",
            format!("index `{}` already exists", req.name),
        ));
    }
    let st = state.clone();
    let name = req.name.clone();
    let slot = job
        .run(move || {
            let _catalog = catalog;
            let (ids, embs) = embed(&st, batch)?;
            let docs: Vec<(String, MultiVector)> = ids.into_iter().zip(embs).collect();
            let index = colzero_index::build_index(&dir, &docs, &cfg)?;
            tracing::info!(index = name, documents = index.len(), "index created");
            Ok(st.insert(name, index))
        })
        .await?;
    Ok(Json(summary(&slot)))
}

/// `DELETE /indices/{name}`.
pub async fn drop_index(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let _catalog = state.catalog().lock_owned().await;
    let slot = state.index(&name)?;
    if !slot.managed {
        return Err(ApiError::conflict(
            "INDEX_NOT_MANAGED",
            format!(
                "index `{name}` was given with --index; the service only deletes indexes it created under --data-dir"
            ),
        ));
    }
    let _writes = slot.writer.clone().lock_owned().await;
    let lock_path = slot.dir.join(colzero_index::writer::WRITER_LOCK);
    let lock = FileLock::exclusive(&lock_path, Wait::No)
        .map_err(|e| ApiError::from(colzero_index::IndexError::Core(e)))?;
    state.remove(&name);
    let res = std::fs::remove_dir_all(&slot.dir);
    drop(lock);
    res.map_err(|e| ApiError::internal(format!("{}: {e}", slot.dir.display())))?;
    tracing::info!(index = name, "index deleted");
    Ok(Json(serde_json::json!({ "deleted": name })))
}
