//! `POST /wxpay/v3/notify`: API v3's pay and refund notifies (wxpay-v3.md §4). The signature
//! headers are checked over the raw body before anything is read, then the resource decrypted
//! with the APIv3 key and checked against this merchant (the gateway's `read_v3_notify`); a
//! payment is handed off durably, a refund's outcome settled in SQL, and only then 204 is
//! answered. Anything else answers 4xx/5xx with the JSON WeChat expects, and WeChat retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::server::domain::{NotifyRow, PayResult};
use crate::server::oplog::Entry;
use crate::server::orders::refund::{self, NotifyVerdict};
use crate::server::state::Ctx;
use crate::server::support::metrics;
use crate::server::wxpay::v3::client::signed_by;
use crate::server::wxpay::v3::notify::{V3Notify, V3NotifyError};

/// A v3 notify is a few KB.
pub const MAX_BODY: usize = 64 * 1024;

fn fail(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"code": "FAIL", "message": message}).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

pub async fn notify_v3(State(ctx): State<Arc<Ctx>>, headers: HeaderMap, body: Bytes) -> Response {
    let (response, row) = judge(&ctx, &headers, &body).await;
    ctx.oplog.record(Entry::Notify(row));
    response
}

/// The v3 notify path without HTTP: verify, decrypt, check → hand off → the status answered.
pub async fn handle_notify_v3(ctx: &Ctx, headers: &HeaderMap, body: &[u8]) -> u16 {
    let (response, _) = judge(ctx, headers, body).await;
    response.status().as_u16()
}

fn row(
    kind: &'static str,
    order: &str,
    reference: &str,
    outcome: &'static str,
    reason: &str,
) -> NotifyRow {
    metrics::notify(kind, outcome);
    NotifyRow {
        at: crate::server::support::clock::now_ms(),
        kind: kind.into(),
        order_id: order.chars().take(64).collect(),
        reference: reference.chars().take(64).collect(),
        outcome: outcome.into(),
        reason: reason.chars().take(256).collect(),
    }
}

async fn judge(ctx: &Ctx, headers: &HeaderMap, body: &[u8]) -> (Response, NotifyRow) {
    let signed = signed_by(headers);
    let n = match ctx.wxpay.read_v3_notify(&signed, body).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "v3 notify refused");
            let (status, outcome) = match &e {
                V3NotifyError::Signature(_) => (StatusCode::UNAUTHORIZED, "refused_sign"),
                V3NotifyError::Decrypt(_) => (StatusCode::BAD_REQUEST, "refused_decrypt"),
                V3NotifyError::WrongMerchant => (StatusCode::BAD_REQUEST, "refused_merchant"),
                _ => (StatusCode::BAD_REQUEST, "refused_field"),
            };
            // Nothing of an unverified body is kept but the fact and why.
            return (
                fail(status, &e.to_string()),
                row("v3", "", "", outcome, &e.to_string()),
            );
        }
    };
    match n {
        V3Notify::Pay(pay) => {
            let (order, tx) = (pay.out_trade_no.as_str(), pay.transaction_id.as_str());
            match ctx.bus.publish(&PayResult::from(&pay)).await {
                Ok(()) => {
                    tracing::info!(order_id = %order, transaction_id = %tx, "v3 notify accepted");
                    (
                        StatusCode::NO_CONTENT.into_response(),
                        row("pay", order, tx, "accepted", ""),
                    )
                }
                Err(e) => {
                    tracing::error!(error = %e, order_id = %order, "v3 notify not handed off; WeChat will retry");
                    (
                        fail(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable"),
                        row("pay", order, tx, "unavailable", &e.to_string()),
                    )
                }
            }
        }
        V3Notify::Refund(n) => {
            let (order, no) = (n.out_trade_no.as_str(), n.out_refund_no.as_str());
            match refund::on_notify(ctx, &n).await {
                Ok(NotifyVerdict::Done) => (
                    StatusCode::NO_CONTENT.into_response(),
                    row("refund", order, no, "accepted", n.state.as_str()),
                ),
                Ok(NotifyVerdict::Refused(why)) => {
                    tracing::warn!(out_refund_no = %no, %why, "v3 refund notify refused");
                    (
                        fail(StatusCode::BAD_REQUEST, &why),
                        row("refund", order, no, "refused_field", &why),
                    )
                }
                Err(e) => {
                    tracing::error!(out_refund_no = %no, error = %e, "v3 refund notify not recorded; WeChat will retry");
                    (
                        fail(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable"),
                        row("refund", order, no, "unavailable", &e.to_string()),
                    )
                }
            }
        }
    }
}
