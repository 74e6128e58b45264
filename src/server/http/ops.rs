//! The operator endpoints (JSON, bearer `SCANPAY_OPS_TOKEN`): anomalies and one order's timeline.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::state::Ctx;

/// Operator endpoints answer only with `Authorization: Bearer <SCANPAY_OPS_TOKEN>`.
fn authorized(ctx: &Ctx, headers: &HeaderMap) -> Result<(), Response> {
    use subtle::ConstantTimeEq;
    let Some(token) = &ctx.settings.ops_token else {
        return Err((
            StatusCode::NOT_FOUND,
            "operator endpoints are off: set SCANPAY_OPS_TOKEN",
        )
            .into_response());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.len() == token.expose().len()
        && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
    {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "bad or missing bearer token").into_response())
    }
}

/// `GET /ops/anomalies`: payments that do not fit an order, newest first, with their evidence.
pub async fn anomalies(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let rows = ctx.store.anomalies(500).await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|a| {
                    json!({
                        "id": a.id, "order_id": a.order_id, "transaction_id": a.transaction_id,
                        "kind": a.kind, "detail": a.detail, "at_ms": a.at,
                        "order_status": a.order_status,
                        // Parked: no automatic flow touches the order until an operator acts.
                        "parked_at_ms": a.parked_at,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "ops: anomalies query failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// `GET /ops/orders/{id}`: one order with its event timeline.
pub async fn order_timeline(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let order = match ctx.store.load(&id).await {
        Ok(Some(o)) => o,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such order").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "ops: order query failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
        }
    };
    let events = ctx.store.events(&id).await.unwrap_or_default();
    Json(json!({
        "id": order.id,
        "status": order.status.as_str(),
        "total_fee": order.total_fee,
        "created_at_ms": order.created_at,
        "deadline_at_ms": order.deadline_at,
        "transaction_id": order.transaction_id,
        "paid_at_ms": order.paid_at,
        "failure_reason": order.failure_reason.map(|r| r.as_str()),
        "parked": order.parked,
        "events": events.iter().map(|e| json!({"seq": e.seq, "at_ms": e.at, "kind": e.kind, "cause": e.cause, "detail": e.detail})).collect::<Vec<_>>(),
    }))
    .into_response()
}
