//! Carrying out decisions: every transition the flows make goes through here, so what must
//! follow a commit — the status cache and the due index told of the order as committed — is done
//! in one place. The store's transitions are SQL only; the hook never fails one (a cache that
//! does not answer marks the entry stale, the index is repaired from SQL by the sweep).
//!
//! `settle` applies the definite actions of `decide` (paid, close, fail).

use crate::app::types::FailureReason;
use crate::server::domain::{Cause, OrderRow, PaidOutcome, Payment};
use crate::server::orders::decide::Action;
use crate::server::state::Ctx;
use crate::server::support::metrics;

/// After a commit that returned (or built) the row: tell the cache and the index.
pub async fn committed(ctx: &Ctx, row: &OrderRow) {
    tokio::join!(ctx.cache.changed(row), ctx.due.changed(row));
}

/// After a commit that changed order `id`: read it back for the cache and the index, if either
/// listens.
pub async fn committed_id(ctx: &Ctx, id: &str) {
    if !ctx.cache.enabled() && !ctx.due.enabled() {
        return;
    }
    match ctx.store.load(id).await {
        Ok(Some(row)) => committed(ctx, &row).await,
        Ok(None) => {}
        Err(e) => {
            ctx.cache.mark_stale(id);
            tracing::warn!(order_id = %id, error = %e, "cannot read the order back for the cache");
        }
    }
}

async fn then_hook<T>(ctx: &Ctx, id: &str, changed: bool, r: T) -> T {
    if changed {
        committed_id(ctx, id).await;
    }
    r
}

/// Stores the QR code WeChat issued for a still-unfinished order.
pub async fn record_code_url(
    ctx: &Ctx,
    id: &str,
    code_url: &str,
    prepay_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = ctx.store.record_code_url(id, code_url, prepay_id).await?;
    Ok(then_hook(ctx, id, done, done).await)
}

/// `pending → failed`, stock restored: WeChat never created a payment for it.
pub async fn fail(ctx: &Ctx, id: &str, cause: Cause, detail: &str) -> Result<bool, sqlx::Error> {
    let reason = FailureReason::PaymentNotCreated;
    let done = ctx.store.fail(id, reason, cause, detail).await?;
    if done {
        metrics::transition("failed", cause.as_str());
    }
    Ok(then_hook(ctx, id, done, done).await)
}

/// `pending → closing`: the close flow's claim (see `Store::begin_close`).
pub async fn begin_close(
    ctx: &Ctx,
    id: &str,
    reason: FailureReason,
    cause: Cause,
    check_at: i64,
) -> Result<bool, sqlx::Error> {
    let done = ctx.store.begin_close(id, reason, cause, check_at).await?;
    if done {
        metrics::transition("closing", cause.as_str());
    }
    Ok(then_hook(ctx, id, done, done).await)
}

/// `pending | closing → closed`, stock restored: only on WeChat's confirmation.
pub async fn close(
    ctx: &Ctx,
    id: &str,
    reason: FailureReason,
    cause: Cause,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    let done = ctx.store.close(id, reason, cause, detail).await?;
    if done {
        metrics::transition("closed", cause.as_str());
    }
    Ok(then_hook(ctx, id, done, done).await)
}

/// `pending | closing → paid`, guarded by the amount (an anomaly otherwise).
pub async fn mark_paid(ctx: &Ctx, p: &Payment, cause: Cause) -> Result<PaidOutcome, sqlx::Error> {
    let outcome = ctx.store.mark_paid(p, cause).await?;
    if outcome == PaidOutcome::Paid {
        metrics::transition("paid", cause.as_str());
    }
    Ok(then_hook(ctx, &p.out_trade_no, true, outcome).await)
}

/// When the sweep next looks at an unfinished order.
pub async fn schedule_check(ctx: &Ctx, id: &str, at: i64) -> Result<(), sqlx::Error> {
    ctx.store.schedule_check(id, at).await?;
    committed_id(ctx, id).await;
    Ok(())
}

/// What applying a definite action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Paid,
    Closed,
    Failed,
    /// The payment could not be applied: recorded once and left to an operator.
    Parked,
    /// Another flow had already moved the order; it is now this.
    Unchanged(Option<crate::app::types::OrderStatus>),
}

/// Applies a definite action (paid, close, fail) with its guarded transition. None for the
/// actions the caller carries out itself (asking for the QR again, starting a close, waiting).
pub async fn settle(
    ctx: &Ctx,
    order: &OrderRow,
    action: &Action,
    cause: Cause,
) -> Result<Option<Settled>, sqlx::Error> {
    let applied = match action {
        Action::Paid(p) => {
            let outcome = mark_paid(ctx, p, cause).await?;
            tracing::info!(order_id = %order.id, outcome = outcome.as_str(), cause = cause.as_str(), "WeChat reports the order paid");
            return Ok(Some(match outcome {
                PaidOutcome::Paid | PaidOutcome::AlreadyPaid => Settled::Paid,
                PaidOutcome::Anomaly(_) => Settled::Parked,
            }));
        }
        Action::Close(detail) => {
            let reason = order.failure_reason.unwrap_or(FailureReason::Expired);
            close(ctx, &order.id, reason, cause, detail)
                .await?
                .then_some(Settled::Closed)
        }
        Action::Fail(detail) => fail(ctx, &order.id, cause, detail)
            .await?
            .then_some(Settled::Failed),
        Action::RequestQr | Action::StartClose(_) | Action::Wait(_) => return Ok(None),
    };
    Ok(Some(match applied {
        Some(s) => s,
        None => Settled::Unchanged(ctx.store.load(&order.id).await?.map(|o| o.status)),
    }))
}
