//! `POST /wxpay/refund-notify`: refund results. The body is unsigned: it is believed only once
//! its `req_info` decrypts with our key and names a refund, order and amounts we hold; SUCCESS
//! is answered only once the outcome is in SQL, anything else answers FAIL so WeChat retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::domain::NotifyRow;
use crate::server::oplog::Entry;
use crate::server::orders::refund::{self, NotifyVerdict};
use crate::server::state::Ctx;
use crate::server::support::metrics;
use crate::server::wxpay::notify::{reply_fail, REPLY_SUCCESS};
use crate::server::wxpay::refund_notify;

pub async fn refund_notify(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let (status, reply, judged) = judge_refund_notify(&ctx, &body).await;
    ctx.oplog.record(Entry::Notify(judged));
    (status, [(CONTENT_TYPE, "text/xml; charset=utf-8")], reply).into_response()
}

/// The refund notify without HTTP: decrypt and check → settle → the reply to send.
pub async fn handle_refund_notify(ctx: &Ctx, body: &[u8]) -> (StatusCode, String) {
    let (status, reply, _) = judge_refund_notify(ctx, body).await;
    (status, reply)
}

/// The same, with what the operations log keeps of it (the order and refund it names once
/// decrypted; nothing of a body that did not decrypt).
async fn judge_refund_notify(ctx: &Ctx, body: &[u8]) -> (StatusCode, String, NotifyRow) {
    let row = |order_id: &str, reference: &str, outcome: &'static str, reason: &str| {
        metrics::notify("refund", outcome);
        NotifyRow {
            at: crate::server::support::clock::now_ms(),
            kind: "refund".into(),
            order_id: order_id.chars().take(64).collect(),
            reference: reference.chars().take(64).collect(),
            outcome: outcome.into(),
            reason: reason.chars().take(256).collect(),
        }
    };
    let n = match refund_notify::parse(body, &ctx.settings.merchant) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "refund notify refused");
            let r = row("", "", "refused", &e.to_string());
            return (StatusCode::BAD_REQUEST, reply_fail(&e.to_string()), r);
        }
    };
    let (order, no) = (n.out_trade_no.as_str(), n.out_refund_no.as_str());
    match refund::on_notify(ctx, &n).await {
        Ok(NotifyVerdict::Done) => (
            StatusCode::OK,
            REPLY_SUCCESS.to_string(),
            row(order, no, "accepted", n.state.as_str()),
        ),
        Ok(NotifyVerdict::Refused(why)) => {
            tracing::warn!(out_refund_no = %n.out_refund_no, %why, "refund notify refused");
            let r = row(order, no, "refused_field", &why);
            (StatusCode::BAD_REQUEST, reply_fail(&why), r)
        }
        Err(e) => {
            tracing::error!(out_refund_no = %n.out_refund_no, error = %e, "refund notify not recorded; WeChat will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                reply_fail("temporarily unavailable"),
                row(order, no, "unavailable", &e.to_string()),
            )
        }
    }
}
