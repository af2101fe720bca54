//! `GET /api-docs/openapi.json`: the OpenAPI 3.0 description of the service, written by
//! hand (no code generator) next to the handlers it describes.
//!
//! Contract: every route of `crate::app` is listed with its request body and its
//! success and error responses; a test checks that the paths here and the router's agree.

use axum::Json;
use serde_json::{json, Value};

/// Every route as `(method, path)`, as the router registers them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/indices"),
    ("post", "/indices"),
    ("get", "/indices/{name}"),
    ("delete", "/indices/{name}"),
    ("post", "/indices/{name}/search"),
    ("post", "/indices/{name}/documents"),
    ("delete", "/indices/{name}/documents"),
    ("post", "/encode"),
    ("post", "/rerank"),
    ("get", "/api-docs/openapi.json"),
];

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn err(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn name_param() -> Value {
    json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}])
}

/// The document.
pub fn document() -> Value {
    let vecs = json!({"type": "array", "items": {"type": "array", "items": {"type": "number"}}});
    let errors = |extra: &[(&str, &str)]| {
        let mut m = serde_json::Map::new();
        m.insert(
            "400".into(),
            err("bad request: the message names the field"),
        );
        m.insert(
            "503".into(),
            err("queue full or index busy; see Retry-After"),
        );
        for (code, d) in extra {
            m.insert((*code).into(), err(d));
        }
        Value::Object(m)
    };
    let with = |mut responses: Value, code: &str, r: Value| {
        responses[code] = r;
        responses
    };
    json!({
      "openapi": "3.0.3",
      "info": {"title": "colzero serve", "version": env!("CARGO_PKG_VERSION"),
               "description": "ColBERT late-interaction search over PLAID indexes. Errors are {code, message}; 413 when the body exceeds --max-body-bytes."},
      "paths": {
        "/health": {"get": {"summary": "Version, model, indexes with document and token counts, memory",
            "responses": {"200": ok("ready", json!({"type": "object"}))}}},
        "/indices": {
          "get": {"summary": "List indexes", "responses": {"200": ok("indexes", json!({"type": "object", "properties": {"indices": {"type": "array", "items": {"$ref": "#/components/schemas/IndexSummary"}}}}))}},
          "post": {"summary": "Create an index under --data-dir from a first batch of documents",
            "requestBody": body(json!({"type": "object", "required": ["name", "documents"], "properties": {
                "name": {"type": "string"}, "documents": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}},
                "pool_factor": {"type": "integer", "minimum": 1, "default": 1},
                "config": {"type": "object", "properties": {"nbits": {"type": "integer", "enum": [1, 2, 4]}, "seed": {"type": "integer"}, "num_centroids": {"type": "integer"}}}}})),
            "responses": with(errors(&[("409", "index exists, or a document id twice")]), "200", ok("created", json!({"$ref": "#/components/schemas/IndexSummary"})))}
        },
        "/indices/{name}": {
          "parameters": name_param(),
          "get": {"summary": "One index", "responses": {"200": ok("index", json!({"$ref": "#/components/schemas/IndexSummary"})), "404": err("no such index")}},
          "delete": {"summary": "Delete an index created under --data-dir",
            "responses": with(errors(&[("404", "no such index"), ("409", "index given with --index")]), "200", ok("deleted", json!({"type": "object"})))}
        },
        "/indices/{name}/search": {"parameters": name_param(), "post": {"summary": "Search by query texts or query embeddings",
            "requestBody": body(json!({"type": "object", "properties": {
                "queries": {"type": "array", "items": {"type": "string"}},
                "query_embeddings": {"type": "array", "items": vecs},
                "params": {"type": "object", "properties": {"top_k": {"type": "integer", "minimum": 1, "default": 10},
                    "n_probe": {"type": "integer", "minimum": 1, "default": 8}, "n_full": {"type": "integer", "minimum": 1},
                    "centroid_threshold": {"type": "number", "nullable": true, "default": 0.4}}},
                "subset": {"type": "array", "items": {"type": "string"}},
                "filter": {"$ref": "#/components/schemas/Filter"}}})),
            "responses": with(errors(&[("404", "no such index")]), "200", ok("one result per query, in order", json!({"type": "object", "properties": {
                "results": {"type": "array", "items": {"type": "object", "properties": {"query_id": {"type": "integer"},
                    "document_ids": {"type": "array", "items": {"type": "string"}}, "scores": {"type": "array", "items": {"type": "number"}},
                    "metadata": {"type": "array", "items": {"type": "object", "nullable": true}}}}},
                "num_queries": {"type": "integer"}}})))}},
        "/indices/{name}/documents": {"parameters": name_param(),
          "post": {"summary": "Add documents (texts or embeddings); 200 once committed and durable",
            "requestBody": body(json!({"type": "object", "required": ["documents"], "properties": {
                "documents": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}},
                "pool_factor": {"type": "integer", "minimum": 1, "default": 1}}})),
            "responses": with(errors(&[("404", "no such index"), ("409", "a document id exists already or is given twice")]), "200", ok("committed", json!({"type": "object", "properties": {
                "added": {"type": "integer"}, "document_ids": {"type": "array", "items": {"type": "string"}}, "num_documents": {"type": "integer"}}})))},
          "delete": {"summary": "Delete documents by ids or by a metadata filter (one of them); 200 once committed",
            "requestBody": body(json!({"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}, "filter": {"$ref": "#/components/schemas/Filter"}}})),
            "responses": with(errors(&[("404", "no such index")]), "200", ok("committed", json!({"type": "object", "properties": {"deleted": {"type": "integer"}, "num_documents": {"type": "integer"}}})))}},
        "/encode": {"post": {"summary": "Encode texts into multi-vectors",
            "requestBody": body(json!({"type": "object", "required": ["texts", "input_type"], "properties": {
                "texts": {"type": "array", "items": {"type": "string"}}, "input_type": {"type": "string", "enum": ["query", "document"]},
                "pool_factor": {"type": "integer", "minimum": 1, "default": 1}}})),
            "responses": with(errors(&[]), "200", ok("one [tokens][dim] array per text", json!({"type": "object", "properties": {"embeddings": {"type": "array", "items": vecs}, "num_texts": {"type": "integer"}}})))}},
        "/rerank": {"post": {"summary": "MaxSim scores of documents for a query, best first",
            "requestBody": body(json!({"type": "object", "required": ["query", "documents"], "properties": {
                "query": {"type": "string"}, "documents": {"type": "array", "items": {"type": "string"}},
                "pool_factor": {"type": "integer", "minimum": 1, "default": 1}}})),
            "responses": with(errors(&[]), "200", ok("best first", json!({"type": "object", "properties": {"results": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "score": {"type": "number"}}}}}})))}},
        "/api-docs/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("OpenAPI 3.0", json!({"type": "object"}))}}}
      },
      "components": {"schemas": {
        "Error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "Document": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "text": {"type": "string"}, "embeddings": vecs,
            "metadata": {"type": "object", "description": "scalars only (string, number, bool, null)"}}},
        "Filter": {"type": "object", "description": "{field, eq} | {field, in: [..]} | {field, gt/gte/lt/lte} | {field, exists: bool} | {and: [..]} | {or: [..]} | {not: {..}}; compiled to parameterised SQL"},
        "IndexSummary": {"type": "object", "properties": {"name": {"type": "string"}, "path": {"type": "string"}, "managed": {"type": "boolean"},
            "num_documents": {"type": "integer"}, "num_deleted": {"type": "integer"}, "num_tokens": {"type": "integer"}, "dim": {"type": "integer"},
            "nbits": {"type": "integer"}, "num_centroids": {"type": "integer"}, "generation": {"type": "integer"}, "bytes_on_disk": {"type": "integer"}}}
      }}
    })
}

/// `GET /api-docs/openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let d = document();
        for (method, path) in ROUTES {
            assert!(d["paths"][path][method].is_object(), "{method} {path}");
        }
        let n: usize = d["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| {
                p.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .count()
            })
            .sum();
        assert_eq!(n, ROUTES.len());
    }
}
