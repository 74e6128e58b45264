//! The checkout and the result pages leave in one piece. Leptos renders a page as a stream of
//! small chunks, and every chunk became a write of its own to the socket (and a flush of the
//! compressor): after the QR code was no longer drawn per render, system calls were two fifths
//! of the checkout's CPU (docs/BENCHMARKS.md, issue 20). Those pages are rendered `SsrMode::Async`
//! — no byte goes out before their order is read — so nothing is lost by gathering the body and
//! sending it with its length. The catalogue and My orders keep streaming: their frame and
//! "loading" text go out before their query answers.

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Far above any page scanpay renders (the checkout is under 10 KB).
const MOST: usize = 16 * 1024 * 1024;

pub async fn layer(req: Request, next: Next) -> Response {
    // `/checkout/{id}`, `/orders/{id}/paid`, `/orders/{id}/failed` (not `/orders` itself).
    let path = req.uri().path();
    let whole = path.starts_with("/checkout/") || path.starts_with("/orders/");
    let resp = next.run(req).await;
    if !whole {
        return resp;
    }
    let html = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !html || resp.body().size_hint().exact().is_some() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, MOST).await {
        Ok(bytes) => Response::from_parts(parts, Body::from(bytes)),
        // A render that failed half-way is an error, not half a page.
        Err(e) => {
            tracing::error!(error = %e, "page not rendered");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
