//! Plain HTTP endpoints: the pay-result notify, health and the operator views.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::bus::PayResultBus;
use super::orders::state;
use super::wxpay::notify::{self, NotifyError, REPLY_SUCCESS};
use super::wxpay::Merchant;
use super::Ctx;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// `POST /wxpay/notify`: verify, hand off durably, then acknowledge. Anything short of a durable
/// hand-off answers FAIL so WeChat retries.
pub async fn notify(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let (status, reply) = handle_notify(&ctx.settings.merchant, &ctx.bus, &body).await;
    xml(status, reply)
}

/// The notify path without HTTP: verify → publish → the reply to send.
pub async fn handle_notify(
    merchant: &Merchant,
    bus: &PayResultBus,
    body: &[u8],
) -> (StatusCode, String) {
    let pay = match notify::parse_and_verify(body, merchant) {
        Ok(pay) => pay,
        // Verified, but not a payment: nothing to do, and nothing to retry.
        Err(NotifyError::PaymentFailed(code)) => {
            tracing::info!(err_code = %code, "notify for a failed payment acknowledged");
            return (StatusCode::OK, REPLY_SUCCESS.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, "notify refused");
            return (StatusCode::BAD_REQUEST, notify::reply_fail(&e.to_string()));
        }
    };
    match bus.publish(&pay).await {
        Ok(()) => {
            tracing::info!(order_id = %pay.out_trade_no, transaction_id = %pay.transaction_id, "notify accepted");
            (StatusCode::OK, REPLY_SUCCESS.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, order_id = %pay.out_trade_no, "notify not handed off; WeChat will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                notify::reply_fail("temporarily unavailable"),
            )
        }
    }
}

/// `GET /healthz`: the process is up and its database answers.
pub async fn health(State(ctx): State<Arc<Ctx>>) -> Response {
    match sqlx::query("SELECT 1").execute(&ctx.db).await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

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
    type AnomalyRow = (String, String, String, String, i64);
    let rows: Result<Vec<AnomalyRow>, _> =
        sqlx::query_as("SELECT id, order_id, kind, detail, at FROM anomalies WHERE resolved_at IS NULL ORDER BY at DESC LIMIT 500")
            .fetch_all(&ctx.db)
            .await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|(id, order_id, kind, detail, at)| json!({"id": id, "order_id": order_id, "kind": kind, "detail": detail, "at_ms": at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
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
    let order = match state::load(&ctx.db, &id).await {
        Ok(Some(o)) => o,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such order").into_response(),
        Err(e) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response()
        }
    };
    let events = state::events(&ctx.db, &id).await.unwrap_or_default();
    Json(json!({
        "id": order.id,
        "status": order.status.as_str(),
        "total_fee": order.total_fee,
        "created_at_ms": order.created_at,
        "deadline_at_ms": order.deadline_at,
        "transaction_id": order.transaction_id,
        "paid_at_ms": order.paid_at,
        "failure_reason": order.failure_reason.map(|r| r.as_str()),
        "events": events.iter().map(|e| json!({"seq": e.seq, "at_ms": e.at, "kind": e.kind, "cause": e.cause, "detail": e.detail})).collect::<Vec<_>>(),
    }))
    .into_response()
}
