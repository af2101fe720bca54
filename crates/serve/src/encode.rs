//! `POST /encode` and `POST /rerank`, and the helpers every endpoint uses to turn request
//! data into multi-vectors (text through the model, or vectors as sent).
//!
//! Contract:
//! - `/encode` `{"texts": [..], "input_type": "query"|"document", "pool_factor": 1}` →
//!   `{"embeddings": [[[f32]]], "num_texts"}`, one `[tokens][dim]` array per text in input
//!   order, exactly what `ColBERT::encode` returns (documents pooled with
//!   `colzero_core::pool::pool_tokens(mv, pool_factor, 1)` when `pool_factor > 1`;
//!   pooling applies to documents only, as in PyLate).
//! - `/rerank` `{"query", "documents": [..], "pool_factor"}` → `{"results": [{"index",
//!   "score"}]}`: MaxSim of the encoded query against each encoded document, best
//!   first, ties by index ascending.
//! - Vectors sent by clients must be non-empty, finite, with one dimension throughout
//!   (the model's or the index's); 400 names the first offending element.

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use colzero_core::MultiVector;
use colzero_model::InputKind;
use serde::{Deserialize, Serialize};

/// Checks a list of texts sent in `field`.
pub(crate) fn check_texts(state: &AppState, field: &str, texts: &[String]) -> Result<(), ApiError> {
    if texts.is_empty() {
        return Err(ApiError::field(field, "must hold at least one text"));
    }
    let max = state.limits().max_batch;
    if texts.len() > max {
        return Err(ApiError::field(field, format!("at most {max} per request")));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(ApiError::field(&format!("{field}[{i}]"), "is empty"));
    }
    Ok(())
}

/// Checks `pool_factor` (at least 1).
pub(crate) fn check_pool(pool_factor: usize) -> Result<(), ApiError> {
    if pool_factor == 0 {
        return Err(ApiError::field("pool_factor", "must be at least 1"));
    }
    Ok(())
}

/// Encodes `texts` (call on a blocking thread); documents are pooled by `pool_factor`.
pub(crate) fn encode_texts(
    state: &AppState,
    texts: &[String],
    kind: InputKind,
    pool_factor: usize,
) -> Result<Vec<MultiVector>, ApiError> {
    let mut out = state.model().encode(texts, kind, state.encode_options())?;
    if kind == InputKind::Document && pool_factor > 1 {
        out = out
            .iter()
            .map(|m| colzero_core::pool::pool_tokens(m, pool_factor, 1))
            .collect();
    }
    Ok(out)
}

/// Vectors sent in `field` as one multi-vector of dimension `dim` (`None`: any, the
/// first row's).
pub(crate) fn to_multivector(
    field: &str,
    rows: Vec<Vec<f32>>,
    dim: Option<usize>,
) -> Result<MultiVector, ApiError> {
    let Some(first) = rows.first() else {
        return Err(ApiError::field(field, "must hold at least one vector"));
    };
    let dim = dim.unwrap_or(first.len());
    if dim == 0 {
        return Err(ApiError::field(&format!("{field}[0]"), "is empty"));
    }
    let mut data = Vec::with_capacity(rows.len() * dim);
    for (t, r) in rows.iter().enumerate() {
        if r.len() != dim {
            return Err(ApiError::dimension(&format!("{field}[{t}]"), r.len(), dim));
        }
        if let Some(j) = r.iter().position(|x| !x.is_finite()) {
            return Err(ApiError::field(
                &format!("{field}[{t}][{j}]"),
                "is not finite",
            ));
        }
        data.extend_from_slice(r);
    }
    MultiVector::new(dim, data).map_err(|e| ApiError::field(field, e))
}

/// Serialises multi-vectors as nested arrays.
pub(crate) fn to_rows(mv: &MultiVector) -> Vec<Vec<f32>> {
    mv.rows().map(<[f32]>::to_vec).collect()
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Query,
    Document,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodeRequest {
    pub texts: Vec<String>,
    pub input_type: InputType,
    #[serde(default = "one")]
    pub pool_factor: usize,
}

pub(crate) fn one() -> usize {
    1
}

#[derive(Serialize)]
pub struct EncodeResponse {
    pub embeddings: Vec<Vec<Vec<f32>>>,
    pub num_texts: usize,
}

/// `POST /encode`.
pub async fn encode(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EncodeRequest>,
) -> Result<Json<EncodeResponse>, ApiError> {
    check_texts(&state, "texts", &req.texts)?;
    check_pool(req.pool_factor)?;
    let kind = match req.input_type {
        InputType::Query if req.pool_factor > 1 => {
            return Err(ApiError::field(
                "pool_factor",
                "pooling applies to documents only (input_type \"document\")",
            ))
        }
        InputType::Query => InputKind::Query,
        InputType::Document => InputKind::Document,
    };
    let job = state.admit()?;
    let st = state.clone();
    let embs = job
        .run(move || encode_texts(&st, &req.texts, kind, req.pool_factor))
        .await?;
    Ok(Json(EncodeResponse {
        num_texts: embs.len(),
        embeddings: embs.iter().map(to_rows).collect(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankRequest {
    pub query: String,
    pub documents: Vec<String>,
    #[serde(default = "one")]
    pub pool_factor: usize,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct RerankResult {
    pub index: usize,
    pub score: f32,
}

#[derive(Serialize)]
pub struct RerankResponse {
    pub results: Vec<RerankResult>,
}

/// `POST /rerank`.
pub async fn rerank(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RerankRequest>,
) -> Result<Json<RerankResponse>, ApiError> {
    if req.query.trim().is_empty() {
        return Err(ApiError::field("query", "is empty"));
    }
    check_texts(&state, "documents", &req.documents)?;
    check_pool(req.pool_factor)?;
    let job = state.admit()?;
    let st = state.clone();
    let results = job
        .run(move || {
            let q = encode_texts(&st, std::slice::from_ref(&req.query), InputKind::Query, 1)?;
            let docs = encode_texts(&st, &req.documents, InputKind::Document, req.pool_factor)?;
            let scores = colzero_core::maxsim_scores(&q[0], &docs);
            Ok(rank(&scores))
        })
        .await?;
    Ok(Json(RerankResponse { results }))
}

/// Scores as results, best first, ties by index ascending.
fn rank(scores: &[f32]) -> Vec<RerankResult> {
    let mut r: Vec<RerankResult> = scores
        .iter()
        .enumerate()
        .map(|(index, &score)| RerankResult { index, score })
        .collect();
    r.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_is_best_first_with_ties_by_index() {
        let r = rank(&[0.5, 2.0, 0.5, -1.0]);
        let order: Vec<usize> = r.iter().map(|x| x.index).collect();
        assert_eq!(order, [1, 0, 2, 3]);
        assert_eq!(r[0].score, 2.0);
    }

    #[test]
    fn vectors_are_checked_element_by_element() {
        let ok = to_multivector("q", vec![vec![1.0, 0.0], vec![0.0, 1.0]], Some(2)).unwrap();
        assert_eq!((ok.n_tokens(), ok.dim()), (2, 2));
        let e = to_multivector("q", vec![vec![1.0, 0.0], vec![1.0]], Some(2)).unwrap_err();
        assert_eq!(e.code, "DIMENSION_MISMATCH");
        assert!(e.message.contains("`q[1]`"), "{}", e.message);
        let e = to_multivector("q", vec![], Some(2)).unwrap_err();
        assert!(e.message.contains("at least one vector"), "{}", e.message);
        let e = to_multivector("q", vec![vec![1.0, f32::NAN]], None).unwrap_err();
        assert!(e.message.contains("`q[0][1]`"), "{}", e.message);
    }
}
