//! `GET /health`, `GET /indices`, `GET /indices/{name}` and `POST /indices/{name}/search`.
//!
//! Contract of search (field names as next-plaid's API; its `n_ivf_probe`,
//! `n_full_scores` and `centroid_score_threshold` are accepted as aliases):
//! - exactly one of `queries` (texts, encoded by the server as queries) and
//!   `query_embeddings` (`[query][token][dim]`, the index's dimension);
//! - `params`: `top_k` (default 10, 1..=max), `n_probe` (default 8, ≥ 1), `n_full`
//!   (default: by `top_k`, see `colzero_index::SearchParams`, ≥ 1), `centroid_threshold`
//!   (default 0.4; `null` disables pruning) map to `SearchParams` (`n_probe`, `n_full`,
//!   `centroid_score_threshold`);
//! - `subset`: only these ids are searched (unknown ids are ignored);
//! - unknown fields are 400 (a misspelt or unsupported field such as `filter` is never
//!   silently ignored);
//! - response `{"results": [{"query_id", "document_ids", "scores"}], "num_queries"}`, one
//!   entry per query in request order, exactly the hits of
//!   `PlaidIndex::search_batch` on one snapshot (best first, ties by id).

use crate::encode::{check_texts, encode_texts, to_multivector};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::{AppState, IndexSlot};
use axum::extract::{Path, State};
use axum::Json;
use colzero_core::MultiVector;
use colzero_index::{IdFilter, SearchParams};
use colzero_model::InputKind;
use serde::{Deserialize, Serialize};

/// Summary of one served index.
#[derive(Serialize, Debug)]
pub struct IndexSummary {
    pub name: String,
    pub path: String,
    /// Created under `--data-dir` (deletable through the API).
    pub managed: bool,
    pub num_documents: usize,
    pub num_deleted: usize,
    /// Stored token vectors (live and deleted documents).
    pub num_tokens: u64,
    pub dim: usize,
    pub nbits: usize,
    pub num_centroids: usize,
    pub generation: u64,
    pub bytes_on_disk: u64,
}

pub(crate) fn summary(slot: &IndexSlot) -> IndexSummary {
    let info = slot.snapshot().info();
    IndexSummary {
        name: slot.name.clone(),
        path: slot.dir.display().to_string(),
        managed: slot.managed,
        num_documents: info.num_documents,
        num_deleted: info.num_deleted,
        num_tokens: info.num_tokens,
        dim: info.dim,
        nbits: info.nbits,
        num_centroids: info.num_centroids,
        generation: info.generation,
        bytes_on_disk: info.bytes_on_disk,
    }
}

/// Resident memory of this process in bytes (Linux; `None` elsewhere).
fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `GET /health`.
pub async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let c = state.model().config();
    let indices: Vec<IndexSummary> = state.indexes().iter().map(|s| summary(s)).collect();
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model": {
            "path": state.model_dir().display().to_string(),
            "embedding_dim": c.embedding_dim,
            "query_length": c.query_length,
            "document_length": c.document_length,
        },
        "indices": indices,
        "memory": {"rss_bytes": rss_bytes()},
        "queue": {"free": state.queue_free(), "max": state.limits().max_queue},
    }))
}

/// `GET /indices`.
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let indices: Vec<IndexSummary> = state.indexes().iter().map(|s| summary(s)).collect();
    Json(serde_json::json!({ "indices": indices }))
}

/// `GET /indices/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<IndexSummary>, ApiError> {
    let slot = state.index(&name)?;
    Ok(Json(summary(&slot)))
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub top_k: Option<usize>,
    #[serde(alias = "n_ivf_probe")]
    pub n_probe: Option<usize>,
    #[serde(alias = "n_full_scores")]
    pub n_full: Option<usize>,
    /// Absent: the default; `null`: no pruning.
    #[serde(alias = "centroid_score_threshold", default, with = "double_option")]
    pub centroid_threshold: Option<Option<f32>>,
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f32>>, D::Error> {
        Option::<f32>::deserialize(d).map(Some)
    }
}

impl Params {
    /// `(top_k, SearchParams)`, or 400 naming the bad field.
    pub fn resolve(&self, max_top_k: usize) -> Result<(usize, SearchParams), ApiError> {
        let k = self.top_k.unwrap_or(10);
        if k == 0 || k > max_top_k {
            return Err(ApiError::field(
                "params.top_k",
                format!("must be between 1 and {max_top_k}"),
            ));
        }
        let mut p = SearchParams::default();
        if let Some(n) = self.n_probe {
            if n == 0 {
                return Err(ApiError::field("params.n_probe", "must be at least 1"));
            }
            p.n_probe = n;
        }
        if let Some(n) = self.n_full {
            if n == 0 {
                return Err(ApiError::field("params.n_full", "must be at least 1"));
            }
            p.n_full = Some(n);
        }
        if let Some(t) = self.centroid_threshold {
            if t.is_some_and(|t| !t.is_finite()) {
                return Err(ApiError::field(
                    "params.centroid_threshold",
                    "must be finite",
                ));
            }
            p.centroid_score_threshold = t;
        }
        Ok((k, p))
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub queries: Option<Vec<String>>,
    pub query_embeddings: Option<Vec<Vec<Vec<f32>>>>,
    #[serde(default)]
    pub params: Params,
    pub subset: Option<Vec<String>>,
    /// Typed metadata filter (`metadata.rs`), intersected with `subset`.
    pub filter: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct QueryResult {
    pub query_id: usize,
    pub document_ids: Vec<String>,
    pub scores: Vec<f32>,
    /// Per hit: its metadata object, or null.
    #[serde(default)]
    pub metadata: Vec<Option<serde_json::Value>>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct SearchResponse {
    pub results: Vec<QueryResult>,
    pub num_queries: usize,
}

enum Queries {
    Text(Vec<String>),
    Vectors(Vec<MultiVector>),
}

/// `POST /indices/{name}/search`.
pub async fn search(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<Json<SearchResponse>, ApiError> {
    let slot = state.index(&name)?;
    let (k, params) = req.params.resolve(state.limits().max_top_k)?;
    let dim = slot.snapshot().dim();
    let queries = match (req.queries, req.query_embeddings) {
        (Some(t), None) => {
            check_texts(&state, "queries", &t)?;
            Queries::Text(t)
        }
        (None, Some(e)) => {
            if e.is_empty() {
                return Err(ApiError::field(
                    "query_embeddings",
                    "must hold at least one query",
                ));
            }
            let max = state.limits().max_batch;
            if e.len() > max {
                return Err(ApiError::field(
                    "query_embeddings",
                    format!("at most {max} per request"),
                ));
            }
            let mvs = e
                .into_iter()
                .enumerate()
                .map(|(i, q)| to_multivector(&format!("query_embeddings[{i}]"), q, Some(dim)))
                .collect::<Result<Vec<_>, _>>()?;
            Queries::Vectors(mvs)
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `queries` or `query_embeddings`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing field `queries` (texts) or `query_embeddings` (vectors)",
            ))
        }
    };
    let meta_filter = match &req.filter {
        Some(f) => Some(crate::metadata::Filter::parse(f, "filter")?),
        None => None,
    };
    let subset = req.subset;
    let job = state.admit()?;
    let st = state.clone();
    let hits = job
        .run(move || {
            let qs = match queries {
                Queries::Text(t) => encode_texts(&st, &t, InputKind::Query, 1)?,
                Queries::Vectors(v) => v,
            };
            // One snapshot for the whole request: the old or the new index, never a mix.
            let index = slot.snapshot();
            let generation = index.manifest().generation;
            let store = crate::metadata::MetaStore::open_existing(&slot.dir)?;
            let ids = match (subset, meta_filter) {
                (s, None) => s,
                (s, Some(f)) => {
                    let m = match &store {
                        Some(st) => st.matching(generation, &f)?,
                        None => Default::default(),
                    };
                    Some(match s {
                        Some(s) => s.into_iter().filter(|i| m.contains(i)).collect(),
                        None => m.into_iter().collect(),
                    })
                }
            };
            let filter = ids.map(IdFilter::new);
            let hits = index.search_batch(&qs, k, &params, filter.as_ref())?;
            let metas = hits
                .iter()
                .map(|h| {
                    let ids: Vec<String> = h.iter().map(|x| x.id.clone()).collect();
                    match &store {
                        Some(st) => st.get(generation, &ids),
                        None => Ok(vec![None; ids.len()]),
                    }
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok::<_, ApiError>((hits, metas))
        })
        .await?;
    let (hits, metas) = hits;
    let results: Vec<QueryResult> = hits
        .into_iter()
        .zip(metas)
        .enumerate()
        .map(|(query_id, (h, metadata))| QueryResult {
            metadata,
            query_id,
            document_ids: h.iter().map(|x| x.id.clone()).collect(),
            scores: h.iter().map(|x| x.score).collect(),
        })
        .collect();
    Ok(Json(SearchResponse {
        num_queries: results.len(),
        results,
    }))
}
