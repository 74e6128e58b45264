//! The operator endpoints (JSON, bearer `SCANPAY_OPS_TOKEN`): anomalies, one order's timeline
//! and refunds, asking for a refund, and the daily reconciliation (days, one day, resolving).
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::domain::{Cause, RefundOf, RefundRefusal, RefundRow};
use crate::server::orders::refund;
use crate::server::state::Ctx;

mod recon;
pub use recon::{recon_day, recon_days, recon_resolve};

/// Operator endpoints answer only with `Authorization: Bearer <SCANPAY_OPS_TOKEN>`.
pub(super) fn authorized(ctx: &Ctx, headers: &HeaderMap) -> Result<(), Response> {
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
    let refunds = ctx.store.refunds_of(&id).await.unwrap_or_default();
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
        "refunded_fee": order.refunded_fee,
        "refunds": refunds.iter().map(refund_json).collect::<Vec<_>>(),
        "events": events.iter().map(|e| json!({"seq": e.seq, "at_ms": e.at, "kind": e.kind, "cause": e.cause, "detail": e.detail})).collect::<Vec<_>>(),
    }))
    .into_response()
}

fn refund_json(r: &RefundRow) -> serde_json::Value {
    json!({
        "out_refund_no": r.out_refund_no, "status": r.status.as_str(),
        "refund_fee": r.refund_fee, "total_fee": r.total_fee, "transaction_id": r.transaction_id,
        "reason": r.reason, "requested_by": r.requested_by, "restock": r.restock,
        "anomaly_id": r.anomaly_id, "refund_id": r.refund_id, "failure": r.failure,
        "success_time": r.success_time, "recv_account": r.recv_account,
        "created_at_ms": r.created_at, "finished_at_ms": r.finished_at,
    })
}

/// The body of `POST /ops/orders/{id}/refunds`. Unknown fields are refused, so a typo
/// (`amount` for `amount_fen`) is an error rather than a full refund.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    pub amount_fen: i64,
    pub reason: String,
    #[serde(default)]
    pub restock: bool,
    /// Who asks (shown in the timeline); the console's sign-in will supply it.
    #[serde(default)]
    pub operator: Option<String>,
    /// A payment recorded as an anomaly of this order (a late or a second payment) rather than
    /// the order's own: its WeChat transaction id.
    #[serde(default)]
    pub transaction_id: Option<String>,
}

/// `POST /ops/orders/{id}/refunds` `{"amount_fen": 1200, "reason": "...", "restock": false}` →
/// 202 with the refund; the same request again within the refund spacing answers the same
/// refund (a double click); a refusal is a 4xx with the reason, and nothing is written.
pub async fn refund(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let bad = |why: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": why })),
        )
            .into_response()
    };
    let body: RefundBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "expected {{\"amount_fen\": <fen>, \"reason\": \"...\", \"restock\": false}}: {e}"
            ))
        }
    };
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 80 || reason.chars().any(char::is_control) {
        return bad(
            "reason: 1 to 80 characters, no control characters (WeChat shows it to the shopper)"
                .into(),
        );
    }
    let operator = body
        .operator
        .as_deref()
        .map(str::trim)
        .unwrap_or("ops-token")
        .to_string();
    if operator.is_empty() || operator.len() > 64 || operator == "system" {
        return bad("operator: 1 to 64 characters, not \"system\"".into());
    }
    let ask = refund::Ask {
        order_id: id,
        of: match body.transaction_id {
            None => RefundOf::Order,
            Some(transaction_id) => RefundOf::Anomaly { transaction_id },
        },
        refund_fee: Some(body.amount_fen),
        reason,
        requested_by: operator,
        restock: body.restock,
        cause: Cause::Operator,
    };
    let (order_id, reason, by) = (
        ask.order_id.clone(),
        ask.reason.clone(),
        ask.requested_by.clone(),
    );
    let audited = |detail: String| {
        let ctx = ctx.clone();
        let (order_id, reason) = (order_id.clone(), reason.clone());
        async move {
            let e = crate::server::domain::AuditEntry {
                actor: "ops-token",
                action: crate::server::domain::Audited::Refund,
                subject: &order_id,
                address: "",
                reason: &reason.chars().take(512).collect::<String>(),
                detail: &detail.chars().take(1024).collect::<String>(),
            };
            if let Err(err) = ctx
                .store
                .audit(&e, crate::server::support::clock::now_ms())
                .await
            {
                tracing::error!(error = %err, "AUDIT LOG NOT WRITTEN");
            }
        }
    };
    let outcome = refund::request(&ctx, ask).await;
    match &outcome {
        Ok(Ok(r)) => {
            audited(format!(
                "{} fen, {} (for {by})",
                r.refund_fee, r.out_refund_no
            ))
            .await
        }
        Ok(Err(refused)) => audited(format!("refused: {refused} (for {by})")).await,
        Err(e) => audited(format!("outcome unknown: {e} (for {by})")).await,
    }
    match outcome {
        Ok(Ok(r)) => (StatusCode::ACCEPTED, Json(refund_json(&r))).into_response(),
        Ok(Err(refused)) => {
            let status = match refused {
                RefundRefusal::NoOrder | RefundRefusal::NoAnomaly => StatusCode::NOT_FOUND,
                RefundRefusal::TooSoon { .. } => StatusCode::TOO_MANY_REQUESTS,
                RefundRefusal::BadAmount => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            let mut resp = (status, Json(json!({ "error": refused.to_string() }))).into_response();
            if let RefundRefusal::TooSoon { wait_ms } = refused {
                let secs = ((wait_ms + 999) / 1000).to_string();
                if let Ok(v) = axum::http::HeaderValue::from_str(&secs) {
                    resp.headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, v);
                }
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "ops: refund not recorded");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// A request's bad date (or other refusal) as JSON.
pub(super) fn refused(status: StatusCode, why: impl Into<String>) -> Response {
    (status, Json(json!({ "error": why.into() }))).into_response()
}

pub(super) fn db_down(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "ops: reconciliation query failed");
    (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
}
