//! The checkout's 3-second poll (`POST /api/order_status`) answered in front of the server
//! function. It is the request scanpay serves most (every open checkout, every 3 seconds), and
//! the server-function machinery (a reactive owner, contexts, a copy of the request's parts and
//! of the app's state) cost more than reading the status itself (docs/BENCHMARKS.md, issue 20).
//!
//! Only the common case is taken here: a script asking for JSON with arguments that parse. Its
//! answer is the server function's, byte for byte (the same `cache::poll`, the same encoding,
//! status and headers; tests/integration/server_fns.rs compares them). Everything else (HTML
//! forms, arguments that do not parse) goes on to the server function unchanged.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::api::OrderStatus as Args;
use crate::app::types::AppError;
use crate::server::state::Ctx;
use crate::server::support::session::SessionId;

pub const PATH: &str = "/api/order_status";

/// Middleware on the pages' router, inside the session layer (and `same_origin`, which has
/// already read the body within its limit).
pub async fn fast(State(ctx): State<Arc<Ctx>>, req: Request, next: Next) -> Response {
    if req.uri().path() != PATH || req.method() != Method::POST || accepts_html(&req) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::SERVER_FN_BODY).await else {
        return super::too_large_answer(&parts.headers);
    };
    let session = parts.extensions.get::<SessionId>().map(|s| s.0.as_str());
    // The server function's own decoding (its `PostUrl`: serde_qs, depth 5, not strict).
    let args = std::str::from_utf8(&bytes).ok().and_then(|s| {
        serde_qs::Config::new(5, false)
            .deserialize_str::<Args>(s)
            .ok()
    });
    let (Some(session), Some(args)) = (session, args) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    match crate::server::cache::poll(&*ctx.cache, &ctx.store, session, &args.id).await {
        Ok(Some(view)) => answer(
            StatusCode::OK,
            serde_json::to_vec(&view).expect("serializable"),
            false,
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, &AppError::NotFound),
        Err(e) => {
            tracing::error!(error = %e, "server function failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, &AppError::Internal)
        }
    }
}

/// A plain HTML form post: the server function redirects it back, so it takes it.
fn accepts_html(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// An error as server functions send it: JSON, marked with the function's path.
fn error(status: StatusCode, e: &AppError) -> Response {
    answer(status, serde_json::to_vec(e).expect("serializable"), true)
}

fn answer(status: StatusCode, body: Vec<u8>, is_error: bool) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if is_error {
        h.insert("serverfnerror", HeaderValue::from_static(PATH));
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
