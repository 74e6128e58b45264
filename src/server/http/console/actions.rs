//! The console's forms that act: refund, note, query WeChat, resolve an anomaly. Each checks the
//! role (and for a refund a password entered within five minutes), validates its form (a bad one
//! changes nothing), acts through the same steps as every other caller, writes the audit log
//! and redirects back with what came of it.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::redirect;
use super::{acting, address_of, audit, form, Signed};
use crate::server::domain::{parse_yuan, Action, Audited, Cause, RefundOf, RefundRefusal};
use crate::server::orders::{query, refund};
use crate::server::state::AppState;
use crate::server::support::clock::now_ms;

/// A query value: everything but unreserved characters escaped.
const VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn back(path: &str, key: &str, value: &str) -> Response {
    let v = percent_encoding::utf8_percent_encode(value, VALUE);
    redirect(&format!("{path}?{key}={v}"))
}

/// A reason WeChat shows the shopper: 1–80 characters, no control characters.
fn reason_ok(r: &str, max: usize) -> bool {
    !r.is_empty() && r.chars().count() <= max && !r.chars().any(char::is_control)
}

#[derive(Debug, serde::Deserialize)]
pub struct RefundForm {
    amount: String,
    reason: String,
    #[serde(default)]
    restock: Option<String>,
}

/// `POST /ops/orders/{id}/refund`.
pub async fn refund(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::Refund) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page = format!("/ops/orders/{id}");
    if !signed.session.recently_authed(now_ms()) {
        let next = percent_encoding::utf8_percent_encode(&page, percent_encoding::NON_ALPHANUMERIC);
        return redirect(&format!("/ops/login?again={}&next={next}", signed.me.name));
    }
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: RefundForm = match form(body, 4096).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(fen) = parse_yuan(&f.amount).filter(|f| *f > 0) else {
        return back(&page, "error", "bad_amount");
    };
    let reason = f.reason.trim().to_string();
    if !reason_ok(&reason, 80) {
        return back(&page, "error", "bad_reason");
    }
    let ask = refund::Ask {
        order_id: id.clone(),
        of: RefundOf::Order,
        refund_fee: Some(fen),
        reason: reason.clone(),
        requested_by: signed.me.name.clone(),
        restock: f.restock.is_some(),
        cause: Cause::Operator,
    };
    refund_and_audit(&state, &signed, &address, &page, ask).await
}

/// A refusal as a flash key (with its number): the page shows it in the operator's language.
fn refusal_flash(r: &RefundRefusal) -> String {
    match r {
        RefundRefusal::NoOrder => "refused_no_order".into(),
        RefundRefusal::NotPaid(_) => "refused_not_paid".into(),
        RefundRefusal::BadAmount => "bad_amount".into(),
        RefundRefusal::OverRefundable { refundable } => format!("refused_over.{refundable}"),
        RefundRefusal::TooMany => "refused_too_many".into(),
        RefundRefusal::TooSoon { wait_ms } => {
            format!("refused_too_soon.{}", (wait_ms + 999) / 1000)
        }
        RefundRefusal::NoAnomaly => "refused_no_anomaly".into(),
        RefundRefusal::NotRefundable(_) => "refused_not_refundable".into(),
        RefundRefusal::AnomalyResolved => "not_open".into(),
    }
}

/// Asks for a refund and writes the audit line, whatever came of it; where to go back to.
async fn refund_and_audit(
    state: &AppState,
    signed: &Signed,
    address: &str,
    page: &str,
    ask: refund::Ask,
) -> Response {
    let ctx = &state.ctx;
    let (id, reason) = (ask.order_id.clone(), ask.reason.clone());
    let started = now_ms();
    match refund::request(ctx, ask).await {
        Ok(Ok(r)) => {
            // The same request moments ago (a double submit) is that refund, not another.
            let again = if r.created_at < started {
                "; the same refund again (a double submit)"
            } else {
                ""
            };
            let detail = format!("{} fen, {}{again}", r.refund_fee, r.out_refund_no);
            audit(
                ctx,
                &signed.me.name,
                Audited::Refund,
                &id,
                address,
                &reason,
                &detail,
            )
            .await;
            back(page, "done", "refund_requested")
        }
        Ok(Err(refused)) => {
            let detail = format!("refused: {refused}");
            audit(
                ctx,
                &signed.me.name,
                Audited::Refund,
                &id,
                address,
                &reason,
                &detail,
            )
            .await;
            back(page, "error", &refusal_flash(&refused))
        }
        Err(e) => {
            // It may have been recorded (and sent) before the failure: say so, never "nothing
            // changed" — asking again after the spacing would be a second refund.
            tracing::error!(error = %e, "console: refund outcome unknown");
            let detail = format!("outcome unknown: {e}");
            audit(
                ctx,
                &signed.me.name,
                Audited::Refund,
                &id,
                address,
                &reason,
                &detail,
            )
            .await;
            back(page, "error", "refund_unknown")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct AnomalyRefundForm {
    reason: String,
}

/// `POST /ops/anomalies/{id}/refund`: the anomaly's own payment (a late or a second one) back
/// to the shopper, in full — not the order's.
pub async fn refund_anomaly(
    State(state): State<AppState>,
    Path(anomaly_id): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::Refund) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !signed.session.recently_authed(now_ms()) {
        return redirect(&format!(
            "/ops/login?again={}&next=%2Fops%2Fanomalies",
            signed.me.name
        ));
    }
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: AnomalyRefundForm = match form(body, 4096).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let reason = f.reason.trim().to_string();
    if !reason_ok(&reason, 80) {
        return back("/ops/anomalies", "error", "bad_reason");
    }
    let anomaly = match state.ctx.store.anomaly(&anomaly_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return back("/ops/anomalies", "error", "refused_no_anomaly"),
        Err(_) => return back("/ops/anomalies", "error", "unavailable"),
    };
    let ask = refund::Ask {
        order_id: anomaly.order_id.clone(),
        of: RefundOf::Anomaly {
            transaction_id: anomaly.transaction_id.clone(),
        },
        refund_fee: None,
        reason,
        requested_by: signed.me.name.clone(),
        restock: false,
        cause: Cause::Operator,
    };
    refund_and_audit(&state, &signed, &address, "/ops/anomalies", ask).await
}

#[derive(Debug, serde::Deserialize)]
pub struct NoteForm {
    text: String,
}

/// `POST /ops/orders/{id}/note`: a line on the order's timeline, signed by the operator.
pub async fn note(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    let signed = match acting(&req, Action::Note) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page = format!("/ops/orders/{id}");
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: NoteForm = match form(body, 4096).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let text = f.text.trim().replace(['\r', '\n'], " ");
    if text.is_empty() || text.chars().count() > 500 || text.chars().any(char::is_control) {
        return back(&page, "error", "bad_note");
    }
    let ctx = &state.ctx;
    match ctx.store.load(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return (StatusCode::NOT_FOUND, "no such order").into_response(),
        Err(_) => return back(&page, "error", "unavailable"),
    }
    let detail = format!("{}: {text}", signed.me.name);
    if let Err(e) = ctx.store.note(&id, "note", Cause::Operator, &detail).await {
        tracing::error!(error = %e, "console: note not written");
        return back(&page, "error", "unavailable");
    }
    audit(
        ctx,
        &signed.me.name,
        Audited::Note,
        &id,
        &address,
        "",
        &text,
    )
    .await;
    back(&page, "done", "note_saved")
}

/// `POST /ops/orders/{id}/query`: orderquery now, its answer applied (see `orders::query`).
pub async fn query(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::QueryWechat) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let page = format!("/ops/orders/{id}");
    let address = address_of(&state, &req.into_parts().0);
    let ctx = &state.ctx;
    match query::now(ctx, &id).await {
        Ok(Some(said)) => {
            audit(
                ctx,
                &signed.me.name,
                Audited::QueryWechat,
                &id,
                &address,
                "",
                &said,
            )
            .await;
            back(&page, "done", "queried")
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such order").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: query not applied");
            back(&page, "error", "unavailable")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ResolveForm {
    reason: String,
}

/// `POST /ops/anomalies/{id}/resolve`: closed with who and why (the money stays where it is).
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::Resolve) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: ResolveForm = match form(body, 4096).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let reason = f.reason.trim().to_string();
    if !reason_ok(&reason, 180) {
        return back("/ops/anomalies", "error", "bad_reason");
    }
    let ctx = &state.ctx;
    let resolution = format!("{}: {reason}", signed.me.name);
    match ctx.store.resolve_anomaly(&id, &resolution, now_ms()).await {
        Ok(true) => {
            audit(
                ctx,
                &signed.me.name,
                Audited::Resolve,
                &id,
                &address,
                &reason,
                "",
            )
            .await;
            back("/ops/anomalies", "done", "resolved")
        }
        Ok(false) => back("/ops/anomalies", "error", "not_open"),
        Err(e) => {
            tracing::error!(error = %e, "console: anomaly not resolved");
            back("/ops/anomalies", "error", "unavailable")
        }
    }
}
