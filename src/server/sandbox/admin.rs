//! `/sandbox/admin/…`: set fault knobs and pay on schedule (for tests and rehearsals).
//!
//! - `POST /sandbox/admin/faults` form `spec=notify=drop,closeorder=timeout` [`&out_trade_no=…`]
//! - `DELETE /sandbox/admin/faults` clears every fault
//! - `POST /sandbox/admin/pay` form `out_trade_no=…` [`&at_ms=<unix ms>`]: pays now or at that moment
//! - `GET /sandbox/admin/refunds?out_trade_no=…` [`&mch_id=…`]: the refunds held for an order, as
//!   JSON (in process, `Sandbox::refunds` gives the same)

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Form, Json};
use serde::Deserialize;

use super::faults::Faults;
use super::Sandbox;
use crate::server::support::clock::now_ms;

#[derive(Deserialize)]
pub(super) struct FaultForm {
    spec: String,
    out_trade_no: Option<String>,
}

pub(super) async fn set_faults(
    State(sb): State<Sandbox>,
    Form(f): Form<FaultForm>,
) -> (StatusCode, String) {
    match Faults::parse(&f.spec) {
        Ok(faults) => {
            let scope = f.out_trade_no.as_deref().filter(|s| !s.is_empty());
            sb.set_faults(scope, faults);
            (
                StatusCode::OK,
                format!("faults for {}: {faults:?}\n", scope.unwrap_or("all orders")),
            )
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

pub(super) async fn clear_faults(State(sb): State<Sandbox>) -> (StatusCode, String) {
    sb.clear_faults();
    (StatusCode::OK, "faults cleared\n".into())
}

#[derive(Deserialize)]
pub(super) struct PayForm {
    out_trade_no: String,
    mch_id: Option<String>,
    at_ms: Option<i64>,
}

pub(super) async fn pay(State(sb): State<Sandbox>, Form(f): Form<PayForm>) -> (StatusCode, String) {
    let mch_id = f.mch_id.unwrap_or_else(|| sb.default_mch_id());
    if sb.order(&mch_id, &f.out_trade_no).is_none() {
        return (
            StatusCode::NOT_FOUND,
            format!("no sandbox order {}\n", f.out_trade_no),
        );
    }
    match f.at_ms {
        Some(at) if at > now_ms() => {
            let wait = std::time::Duration::from_millis((at - now_ms()) as u64);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Err(why) = sb.pay(&mch_id, &f.out_trade_no) {
                    tracing::info!(out_trade_no = %f.out_trade_no, why, "sandbox scheduled payment refused");
                }
            });
            (
                StatusCode::ACCEPTED,
                format!("payment scheduled in {} ms\n", wait.as_millis()),
            )
        }
        _ => match sb.pay(&mch_id, &f.out_trade_no) {
            Ok(_) => (StatusCode::OK, "paid\n".into()),
            Err(why) => (StatusCode::CONFLICT, format!("{why}\n")),
        },
    }
}

#[derive(Deserialize)]
pub(super) struct OrderRef {
    out_trade_no: String,
    mch_id: Option<String>,
}

/// `[{"out_refund_no", "refund_id", "refund_fee", "status", "success_time", "notify_attempts",
/// "notify_acked"}]`, oldest first; 404 for an order the sandbox does not have.
pub(super) async fn refunds(
    State(sb): State<Sandbox>,
    Query(q): Query<OrderRef>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let mch_id = q.mch_id.unwrap_or_else(|| sb.default_mch_id());
    let o = sb.order(&mch_id, &q.out_trade_no).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("no sandbox order {}\n", q.out_trade_no),
        )
    })?;
    Ok(Json(
        o.refunds
            .iter()
            .map(|r| {
                serde_json::json!({
                    "out_refund_no": r.out_refund_no,
                    "refund_id": r.refund_id,
                    "refund_fee": r.refund_fee,
                    "status": r.status.as_str(),
                    "success_time": r.success_time,
                    "notify_attempts": r.notify_attempts,
                    "notify_acked": r.notify_acked,
                })
            })
            .collect(),
    ))
}
