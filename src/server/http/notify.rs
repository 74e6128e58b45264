//! `POST /wxpay/notify`: the pay-result notify. Verify first, hand off durably, then answer;
//! anything short of a durable hand-off answers FAIL so WeChat retries.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::bus::PayResults;
use crate::server::domain::{NotifyRow, PayResult};
use crate::server::oplog::Entry;
use crate::server::state::Ctx;
use crate::server::support::metrics;
use crate::server::wxpay::notify::{self, NotifyError, REPLY_SUCCESS};
use crate::server::wxpay::Merchant;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

pub async fn notify(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let (status, reply, judged) = judge_notify(&ctx.settings.merchant, &*ctx.bus, &body).await;
    ctx.oplog.record(Entry::Notify(judged));
    xml(status, reply)
}

/// The notify path without HTTP: verify → publish → the reply to send.
pub async fn handle_notify(
    merchant: &Merchant,
    bus: &dyn PayResults,
    body: &[u8],
) -> (StatusCode, String) {
    let (status, reply, _) = judge_notify(merchant, bus, body).await;
    (status, reply)
}

/// The same, with what the operations log keeps of it: the order and transaction it names
/// (as claimed, when it was refused), the verdict and why.
async fn judge_notify(
    merchant: &Merchant,
    bus: &dyn PayResults,
    body: &[u8],
) -> (StatusCode, String, NotifyRow) {
    let claimed = |k: &str| {
        crate::server::wxpay::xml::parse(body)
            .ok()
            .and_then(|p| p.get(k).cloned())
            .map(|v| {
                v.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .take(64)
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    let row = |order_id: String, reference: String, outcome: &'static str, reason: String| {
        metrics::notify("pay", outcome);
        NotifyRow {
            at: crate::server::support::clock::now_ms(),
            kind: "pay".into(),
            order_id,
            reference,
            outcome: outcome.into(),
            reason: reason.chars().take(256).collect(),
        }
    };
    let pay = match notify::parse_and_verify(body, merchant) {
        Ok(pay) => pay,
        // Verified, but not a payment: nothing to do, and nothing to retry.
        Err(NotifyError::PaymentFailed(code)) => {
            tracing::info!(err_code = %code, "notify for a failed payment acknowledged");
            let r = row(
                claimed("out_trade_no"),
                claimed("transaction_id"),
                "payment_failed",
                code,
            );
            return (StatusCode::OK, REPLY_SUCCESS.to_string(), r);
        }
        Err(e) => {
            tracing::warn!(error = %e, "notify refused");
            let outcome = match e {
                NotifyError::MissingSign | NotifyError::BadSign => "refused_sign",
                NotifyError::WrongMerchant => "refused_merchant",
                NotifyError::Xml(_) => "refused_xml",
                _ => "refused_field",
            };
            let r = row(
                claimed("out_trade_no"),
                claimed("transaction_id"),
                outcome,
                e.to_string(),
            );
            return (
                StatusCode::BAD_REQUEST,
                notify::reply_fail(&e.to_string()),
                r,
            );
        }
    };
    let (order_id, tx) = (pay.out_trade_no.clone(), pay.transaction_id.clone());
    match bus.publish(&PayResult::from(&pay)).await {
        Ok(()) => {
            tracing::info!(order_id = %pay.out_trade_no, transaction_id = %pay.transaction_id, "notify accepted");
            let r = row(order_id, tx, "accepted", String::new());
            (StatusCode::OK, REPLY_SUCCESS.to_string(), r)
        }
        Err(e) => {
            tracing::error!(error = %e, order_id = %pay.out_trade_no, "notify not handed off; WeChat will retry");
            let r = row(order_id, tx, "unavailable", e.to_string());
            (
                StatusCode::SERVICE_UNAVAILABLE,
                notify::reply_fail("temporarily unavailable"),
                r,
            )
        }
    }
}
