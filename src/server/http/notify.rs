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
use crate::server::domain::PayResult;
use crate::server::state::Ctx;
use crate::server::support::metrics;
use crate::server::wxpay::notify::{self, NotifyError, REPLY_SUCCESS};
use crate::server::wxpay::Merchant;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

pub async fn notify(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let (status, reply) = handle_notify(&ctx.settings.merchant, &*ctx.bus, &body).await;
    xml(status, reply)
}

/// The notify path without HTTP: verify → publish → the reply to send.
pub async fn handle_notify(
    merchant: &Merchant,
    bus: &dyn PayResults,
    body: &[u8],
) -> (StatusCode, String) {
    let pay = match notify::parse_and_verify(body, merchant) {
        Ok(pay) => pay,
        // Verified, but not a payment: nothing to do, and nothing to retry.
        Err(NotifyError::PaymentFailed(code)) => {
            tracing::info!(err_code = %code, "notify for a failed payment acknowledged");
            metrics::notify("pay", "payment_failed");
            return (StatusCode::OK, REPLY_SUCCESS.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, "notify refused");
            metrics::notify(
                "pay",
                match e {
                    NotifyError::MissingSign | NotifyError::BadSign => "refused_sign",
                    NotifyError::WrongMerchant => "refused_merchant",
                    NotifyError::Xml(_) => "refused_xml",
                    _ => "refused_field",
                },
            );
            return (StatusCode::BAD_REQUEST, notify::reply_fail(&e.to_string()));
        }
    };
    match bus.publish(&PayResult::from(&pay)).await {
        Ok(()) => {
            tracing::info!(order_id = %pay.out_trade_no, transaction_id = %pay.transaction_id, "notify accepted");
            metrics::notify("pay", "accepted");
            (StatusCode::OK, REPLY_SUCCESS.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, order_id = %pay.out_trade_no, "notify not handed off; WeChat will retry");
            metrics::notify("pay", "unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                notify::reply_fail("temporarily unavailable"),
            )
        }
    }
}
