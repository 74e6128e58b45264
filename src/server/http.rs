//! Plain HTTP endpoints: the pay-result notify and health.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::wxpay::notify::{self, NotifyError, REPLY_SUCCESS};
use super::Ctx;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// `POST /wxpay/notify`: verify, hand off durably, then acknowledge. Anything short of a durable
/// hand-off answers FAIL so WeChat retries.
pub async fn notify(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let verified = notify::parse_and_verify(&body, &ctx.settings.merchant);
    let pay = match verified {
        Ok(pay) => pay,
        // Verified, but not a payment: nothing to do, and nothing to retry.
        Err(NotifyError::PaymentFailed(code)) => {
            tracing::info!(err_code = %code, "notify for a failed payment acknowledged");
            return xml(StatusCode::OK, REPLY_SUCCESS.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, "notify refused");
            return xml(StatusCode::BAD_REQUEST, notify::reply_fail(&e.to_string()));
        }
    };
    match ctx.bus.publish(&pay).await {
        Ok(()) => {
            tracing::info!(order_id = %pay.out_trade_no, transaction_id = %pay.transaction_id, "notify accepted");
            xml(StatusCode::OK, REPLY_SUCCESS.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, order_id = %pay.out_trade_no, "notify not handed off; WeChat will retry");
            xml(
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
