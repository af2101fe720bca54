//! [`ApiJson`]: the JSON body extractor of every endpoint, with errors a client can act on.
//!
//! Contract: the body is read whole (bounded by the router's body limit: over it is 413
//! `PAYLOAD_TOO_LARGE`), then parsed with `serde_json`; a syntax error is 400 "malformed
//! JSON" with line and column, a type error or a missing/unknown field is 400 naming the
//! field's path (`queries[2]`, `params.top_k`). The `Content-Type` header is not checked
//! (curl's default form type is accepted), so a well-formed body is never refused for it.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON request body of type `T`.
pub struct ApiJson<T>(pub T);

/// Parses `bytes` as `T` (see module docs).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                if inner.is_data() && path == "." {
                    return Err(ApiError::bad_request(format!("request body: {inner}")));
                }
                Err(ApiError::bad_request(format!("malformed JSON: {inner}")))
            } else {
                Err(ApiError::field(&path, inner))
            }
        }
    }
}

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.limits().max_body_bytes;
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::too_large(limit))
            }
            Err(r) => {
                return Err(ApiError::bad_request(format!(
                    "request body: {}",
                    r.body_text()
                )))
            }
        };
        parse(&bytes).map(ApiJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        queries: Vec<String>,
        #[serde(default)]
        params: Params,
    }

    #[derive(Deserialize, Debug, Default)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        top_k: Option<usize>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Req>(br#"{"queries": ["a", 3]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("field `queries[1]`"), "{}", e.message);
        let e = parse::<Req>(br#"{"queries": [], "params": {"top_k": -1}}"#).unwrap_err();
        assert!(
            e.message.starts_with("field `params.top_k`"),
            "{}",
            e.message
        );
        let e = parse::<Req>(br#"{"queries": [], "filter": {}}"#).unwrap_err();
        assert!(
            e.message.contains("unknown field `filter`"),
            "{}",
            e.message
        );
        let e = parse::<Req>(br#"{"queries": ["a""#).unwrap_err();
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        let e = parse::<Req>(br#"{}"#).unwrap_err();
        assert!(
            e.message.contains("missing field `queries`"),
            "{}",
            e.message
        );
        assert_eq!(
            parse::<Req>(br#"{"queries": ["x"]}"#).unwrap().queries,
            ["x"]
        );
    }
}
