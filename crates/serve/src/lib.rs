//! colzero-serve: `colzero serve`, an HTTP/JSON search service over the index and model
//! crates (as next-plaid's API crate sits over its index crate; field names follow
//! next-plaid's API so its users feel at home).
//!
//! Contract:
//! - [`app`] builds the router over an [`AppState`]; [`run`] serves it on a bound
//!   listener until a shutdown future resolves, then lets in-flight requests finish
//!   (graceful shutdown); [`serve`] is what the binary calls: load, bind (loopback by
//!   default), print the address, serve until SIGINT/SIGTERM.
//! - Routes (see `openapi.rs` for the document served at `/api-docs/openapi.json`):
//!   `GET /health`, `GET|POST /indices`, `GET|DELETE /indices/{name}`,
//!   `POST /indices/{name}/search`, `POST|DELETE /indices/{name}/documents`,
//!   `POST /encode`, `POST /rerank`. Anything else is a JSON 404 (405 for a known path).
//! - Errors are JSON `{"code", "message"}` (`error.rs`); CPU work runs on blocking
//!   threads behind a bounded queue (`state.rs`); writes are serialised per index and
//!   acknowledged once committed (`documents.rs`).
//! - Every request is logged at `info` (method, path, status, microseconds) with
//!   `tracing`; the binary shows them with `COLZERO_LOG=info`.

pub mod documents;
pub mod encode;
pub mod error;
pub mod extract;
pub mod metadata;
pub mod openapi;
pub mod search;
pub mod state;

pub use error::{ApiError, Result, ServeError};
pub use state::{AppState, IndexSlot, Limits, ServeConfig};

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;

/// The router of the service over `state`.
pub fn app(state: AppState) -> Router {
    let limit = state.limits().max_body_bytes;
    Router::new()
        .route("/health", get(search::health))
        .route("/indices", get(search::list).post(documents::create))
        .route(
            "/indices/{name}",
            get(search::get).delete(documents::drop_index),
        )
        .route("/indices/{name}/search", post(search::search))
        .route(
            "/indices/{name}/documents",
            post(documents::add).delete(documents::delete),
        )
        .route("/encode", post(encode::encode))
        .route("/rerank", post(encode::rerank))
        .route("/api-docs/openapi.json", get(openapi::openapi))
        .fallback(|req: Request| async move { ApiError::no_route(req.uri().path()) })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::method(req.method().as_str(), req.uri().path())
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let t = std::time::Instant::now();
    let r = next.run(req).await.into_response();
    tracing::info!(
        %method,
        path,
        status = r.status().as_u16(),
        micros = t.elapsed().as_micros() as u64,
        "request"
    );
    r
}

/// Serves `state` on `listener` until `shutdown` resolves, then waits for in-flight
/// requests to finish.
pub async fn run(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServeError::io("serving", e))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Loads `cfg`, binds `addr` (port 0: any free port), calls `ready` with the bound
/// address, and serves until SIGINT/SIGTERM (in-flight requests finish).
pub fn serve(cfg: &ServeConfig, addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let state = AppState::load(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::io("starting the async runtime", e))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::io(format!("binding {addr}"), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| ServeError::io("reading the bound address", e))?;
        tracing::info!(%bound, "listening");
        ready(bound);
        run(state, listener, shutdown_signal()).await
    })
}
