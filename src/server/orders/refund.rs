//! The refund step: write the refund (its guards in the same transaction), then ask WeChat, then
//! apply WeChat's answer — verify → record → ask → settle, each a named function. Used by the
//! operator endpoint, by the consume flow and the sweep for the payments scanpay refunds by
//! itself, by the sweep for refunds not yet final, and by the refund notify.
//!
//! Money is never guessed: a refund is in SQL before WeChat hears of it; an uncertain answer
//! leaves it `requested` and the identical request (same `out_refund_no`, same amounts) goes
//! again; only WeChat's definite word (accepted, refused, SUCCESS / REFUNDCLOSE / CHANGE) moves it.

use std::sync::Arc;

use crate::server::domain::{
    Cause, NewRefund, RefundOf, RefundRefusal, RefundRow, RefundStatus, Requested, ANSWER_WITHIN,
};
use crate::server::orders::apply;
use crate::server::orders::decide::{self, RefundAnswer};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;
use crate::server::wxpay::refund_notify::RefundNotify;
use crate::server::wxpay::{ErrCode, RefundRequest, WxPayError};

/// Who asks, and why, for the refund endpoint and the automatic refunds.
pub struct Ask {
    pub order_id: String,
    pub of: RefundOf,
    pub refund_fee: Option<i64>,
    pub reason: String,
    pub requested_by: String,
    pub restock: bool,
    pub cause: Cause,
}

/// Records the refund (or finds the same request made moments ago), then sends it; answers
/// within [`ANSWER_WITHIN`] with the refund as it then stands — past that the send carries on
/// and the sweep takes over if it cannot finish.
pub async fn request(
    ctx: &Arc<Ctx>,
    ask: Ask,
) -> Result<Result<RefundRow, RefundRefusal>, sqlx::Error> {
    let now = now_ms();
    let new = NewRefund {
        order_id: ask.order_id,
        of: ask.of,
        refund_fee: ask.refund_fee,
        reason: ask.reason,
        requested_by: ask.requested_by,
        cause: ask.cause,
        restock: ask.restock,
        now,
        spacing_ms: ctx.settings.refund_spacing.as_millis() as i64,
        // Should this process stop before WeChat answers, the sweep sends it.
        first_check_at: now + retry_ms(ctx, 0),
    };
    let row = match ctx.store.request_refund(&new).await? {
        Err(refused) => return Ok(Err(refused)),
        Ok(Requested::Existing(row)) => return Ok(Ok(row)),
        Ok(Requested::New(row)) => row,
    };
    tracing::info!(order_id = %row.order_id, out_refund_no = %row.out_refund_no,
        refund_fee = row.refund_fee, by = %row.requested_by, "refund requested");
    apply::committed_id(ctx, &row.order_id).await;
    let task = tokio::spawn({
        let ctx = ctx.clone();
        let row = row.clone();
        async move {
            if let Err(e) = send(&ctx, &row, new.cause).await {
                tracing::warn!(out_refund_no = %row.out_refund_no, error = %e, "refund not sent; the sweep retries");
            }
        }
    });
    let _ = tokio::time::timeout(ANSWER_WITHIN, task).await;
    Ok(Ok(ctx
        .store
        .refund(&row.out_refund_no)
        .await?
        .unwrap_or(row)))
}

/// The full refund of a payment scanpay cannot keep (a late payment of a closed order, a second
/// payment), asked by the system. Off with `SCANPAY_REFUND_AUTOMATIC=false`.
pub async fn automatic(ctx: &Arc<Ctx>, order_id: &str, transaction_id: &str) {
    if !ctx.settings.refund_automatic {
        return;
    }
    let ask = Ask {
        order_id: order_id.to_string(),
        of: RefundOf::Anomaly {
            transaction_id: transaction_id.to_string(),
        },
        refund_fee: None,
        reason: "payment scanpay cannot keep (order closed or already paid)".into(),
        requested_by: "system".into(),
        restock: false,
        cause: Cause::System,
    };
    match request(ctx, ask).await {
        Ok(Ok(r)) => tracing::info!(order_id, transaction_id, out_refund_no = %r.out_refund_no,
            status = r.status.as_str(), "automatic refund of a payment scanpay cannot keep"),
        // Too soon after another refund of the order: the sweep asks again.
        Ok(Err(refused)) => {
            tracing::info!(order_id, transaction_id, %refused, "automatic refund not made now")
        }
        Err(e) => {
            tracing::warn!(order_id, transaction_id, error = %e, "automatic refund not recorded; the sweep retries")
        }
    }
}

/// Sends a `requested` refund, exactly as recorded, and applies the answer.
pub async fn send(ctx: &Ctx, r: &RefundRow, cause: Cause) -> Result<(), sqlx::Error> {
    if r.status != RefundStatus::Requested {
        return Ok(());
    }
    let req = RefundRequest {
        transaction_id: r.transaction_id.clone(),
        out_trade_no: r.order_id.clone(),
        out_refund_no: r.out_refund_no.clone(),
        total_fee: r.total_fee,
        refund_fee: r.refund_fee,
        refund_desc: r.reason.clone(),
        notify_url: ctx.settings.refund_notify_url(),
    };
    let answer = ctx.wxpay.refund(&req).await;
    let no = &r.out_refund_no;
    let changed = match decide::decide_refund(&answer) {
        RefundAnswer::Accepted(refund_id) => {
            let at = now_ms() + retry_ms(ctx, 0);
            ctx.store.refund_accepted(no, &refund_id, cause, at).await?
        }
        RefundAnswer::Uncertain(why) => {
            tracing::warn!(out_refund_no = %no, error = %why, "refund answer uncertain; the same request goes again");
            let at = now_ms() + retry_ms(ctx, r.check_attempts);
            ctx.store
                .refund_uncertain(no, &short(&why), cause, at)
                .await?
        }
        RefundAnswer::Refused(why) => confirm_refusal(ctx, r, &why, cause).await?,
    };
    if changed {
        apply::committed_id(ctx, &r.order_id).await;
    }
    Ok(())
}

/// A refusal is believed only once WeChat confirms it holds no refund under this number: an
/// earlier attempt (an answer lost, a SYSTEMERROR that was applied) or one still in flight may
/// have been accepted, and marking it `failed` would let the same money be refunded again.
async fn confirm_refusal(
    ctx: &Ctx,
    r: &RefundRow,
    why: &str,
    cause: Cause,
) -> Result<bool, sqlx::Error> {
    let no = &r.out_refund_no;
    match ctx.wxpay.refund_query(no).await {
        Err(WxPayError::Business {
            code: ErrCode::RefundNotExist,
            ..
        }) => {
            tracing::warn!(out_refund_no = %no, error = %why, "WeChat refused the refund");
            ctx.store.refund_refused(no, &short(why), cause).await
        }
        Ok(rec) if rec.refund_fee == r.refund_fee => {
            tracing::warn!(out_refund_no = %no, error = %why, "refused, yet WeChat holds the refund: kept");
            let at = now_ms() + retry_ms(ctx, 0);
            let mut changed = ctx
                .store
                .refund_accepted(no, &rec.refund_id, cause, at)
                .await?;
            if let Some(end) = decide::decide_refund_query(&Ok(rec)) {
                changed |= ctx.store.settle_refund(no, &end, cause).await?;
            }
            Ok(changed)
        }
        other => {
            let detail = short(&format!(
                "refused ({why}), not confirmed by refundquery ({:?})",
                other.err()
            ));
            tracing::warn!(out_refund_no = %no, %detail, "refund refusal unconfirmed; the same request goes again");
            let at = now_ms() + retry_ms(ctx, r.check_attempts);
            ctx.store.refund_uncertain(no, &detail, cause, at).await
        }
    }
}

/// Asks WeChat how a `processing` refund stands and settles it on a definite answer.
pub async fn check(ctx: &Ctx, r: &RefundRow, cause: Cause) -> Result<(), sqlx::Error> {
    match r.status {
        RefundStatus::Requested => return send(ctx, r, cause).await,
        RefundStatus::Processing => {}
        _ => return Ok(()),
    }
    let answer = ctx.wxpay.refund_query(&r.out_refund_no).await;
    if let Ok(rec) = &answer {
        if rec.refund_fee != r.refund_fee {
            // Not the refund we hold: nothing is concluded from it.
            tracing::error!(out_refund_no = %r.out_refund_no, held = r.refund_fee, answered = rec.refund_fee,
                "refundquery answers another amount for this refund");
            return Ok(());
        }
    }
    match decide::decide_refund_query(&answer) {
        Some(end) => {
            if ctx
                .store
                .settle_refund(&r.out_refund_no, &end, cause)
                .await?
            {
                tracing::info!(out_refund_no = %r.out_refund_no, status = end.status().as_str(), "refund settled by refundquery");
                apply::committed_id(ctx, &r.order_id).await;
            }
        }
        None => {
            tracing::debug!(out_refund_no = %r.out_refund_no, answer = ?answer.err(), "refund still in progress")
        }
    }
    Ok(())
}

/// The sweep's refund work: the automatic refunds not yet asked for, then every refund whose
/// check is due (sent again if `requested`, queried if `processing`). Returns how many it checked.
pub async fn pass(ctx: &Arc<Ctx>) -> Result<usize, sqlx::Error> {
    use futures::stream::{self, StreamExt};
    // As many WeChat calls at once as the order sweep makes, so a slow WeChat delays refunds by
    // about one call's time, not one call per refund.
    let at_once = ctx.settings.sweep_concurrency;
    if ctx.settings.refund_automatic {
        let open = ctx.store.unrefunded_anomalies(100).await?;
        stream::iter(open)
            .for_each_concurrent(at_once, |(order_id, tx)| async move {
                automatic(ctx, &order_id, &tx).await
            })
            .await;
    }
    let now = now_ms();
    let next_at = |attempts: i64| now + retry_ms(ctx, attempts);
    let due = ctx.store.claim_due_refunds(now, 200, &next_at).await?;
    let n = due.len();
    stream::iter(due)
        .for_each_concurrent(at_once, |r| async move {
            if let Err(e) = check(ctx, &r, Cause::Sweep).await {
                tracing::warn!(out_refund_no = %r.out_refund_no, error = %e, "refund check failed; a later pass retries");
            }
        })
        .await;
    Ok(n)
}

/// What to answer a refund notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyVerdict {
    /// Durable (applied now, or before): tell WeChat SUCCESS.
    Done,
    /// It names a refund or amounts we do not hold: refuse, change nothing.
    Refused(String),
}

/// Applies a decrypted refund notify: only to a refund we hold, with the same order, payment and
/// amounts; idempotent (a duplicate finds the refund already settled).
pub async fn on_notify(ctx: &Ctx, n: &RefundNotify) -> Result<NotifyVerdict, sqlx::Error> {
    let Some(r) = ctx.store.refund(&n.out_refund_no).await? else {
        return Ok(NotifyVerdict::Refused(format!(
            "unknown out_refund_no {}",
            n.out_refund_no
        )));
    };
    let held = (&r.order_id, &r.transaction_id, r.refund_fee, r.total_fee);
    let told = (
        &n.out_trade_no,
        &n.transaction_id,
        n.refund_fee,
        n.total_fee,
    );
    if held != told {
        return Ok(NotifyVerdict::Refused(format!(
            "refund {} is (order, payment, refund_fee, total_fee) = {held:?}, the notify says {told:?}",
            r.out_refund_no
        )));
    }
    let Some(end) = decide::refund_end(
        &n.state,
        Some(&n.refund_id),
        &n.success_time,
        &n.recv_account,
    ) else {
        // PROCESSING (never notified by WeChat) or a state this version does not know: nothing
        // to apply; the sweep's refundquery keeps watching the refund.
        if let crate::server::wxpay::RefundState::Other(state) = &n.state {
            tracing::error!(out_refund_no = %r.out_refund_no, state, "refund notify with an unknown refund_status");
        }
        return Ok(NotifyVerdict::Done);
    };
    if ctx
        .store
        .settle_refund(&r.out_refund_no, &end, Cause::Notify)
        .await?
    {
        tracing::info!(out_refund_no = %r.out_refund_no, status = end.status().as_str(), "refund settled by notify");
        apply::committed_id(ctx, &r.order_id).await;
    } else if r.status.is_settled() && r.status != end.status() {
        // WeChat contradicts an end we recorded: kept on the order's timeline for a person.
        let detail = format!(
            "out_refund_no={} recorded={} notify={}",
            r.out_refund_no,
            r.status.as_str(),
            n.state.as_str()
        );
        tracing::error!(%detail, "refund notify contradicts the recorded outcome");
        ctx.store
            .note(
                &r.order_id,
                "refund_notify_conflict",
                Cause::Notify,
                &detail,
            )
            .await?;
    }
    Ok(NotifyVerdict::Done)
}

/// WeChat's texts (or a foreign page's) as kept in SQL: at most 400 characters.
fn short(s: &str) -> String {
    s.chars().take(400).collect()
}

/// The wait before a refund's next check: one sweep interval doubling to four (one
/// reconciliation period), as orders.
fn retry_ms(ctx: &Ctx, attempts: i64) -> i64 {
    ctx.settings.sweep_interval.as_millis() as i64 * (1 << attempts.clamp(0, 2))
}
