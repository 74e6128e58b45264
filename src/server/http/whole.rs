//! Pages leave in one piece. Leptos renders a page as a stream of small chunks, and every chunk
//! became a write of its own to the socket (and a flush of the compressor): for the checkout,
//! system calls were two fifths of the render's CPU (docs/BENCHMARKS.md, issue 20). scanpay's
//! pages wait for their data before any byte goes out (one or two queries), so nothing is gained
//! by streaming them: the body is gathered here and sent with its length.

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
    let resp = next.run(req).await;
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
