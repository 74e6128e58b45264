//! The close step (deadline reached, shopper cancelled, or a QR that cannot be had):
//! `pending → closing`, `closeorder`, `orderquery` to confirm, then `closed` with stock restored.
//!
//! Any uncertain answer leaves the order in `closing` with a next-check time, and the sweep runs
//! this step again; stock is never restored on uncertainty. Flows call it; it calls only
//! `decide` and `apply` below it.

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{Cause, OrderRow};
use crate::server::orders::apply::{self, Settled};
use crate::server::orders::decide::{self, Action, QrRoute};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;
use crate::server::wxpay::{ErrCode, WxPayError};

/// What the step reached this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    Paid,
    /// Still `closing`; the sweep will try again at this time (UTC ms).
    RetryAt(i64),
    /// A payment arrived that cannot be applied: left to an operator.
    Parked,
    /// Nothing to close: the order had already finished (or does not exist), or another process
    /// holds its close.
    AlreadyFinal(Option<OrderStatus>),
}

/// Runs (or resumes) the close of order `id`.
pub async fn run(
    ctx: &Ctx,
    id: &str,
    reason: FailureReason,
    cause: Cause,
) -> Result<CloseOutcome, sqlx::Error> {
    match ctx.store.load(id).await? {
        Some(order) => run_row(ctx, order, reason, cause).await,
        None => Ok(CloseOutcome::AlreadyFinal(None)),
    }
}

/// Runs (or resumes) the close of an order already loaded: a pending one is claimed first
/// (`begin_close`), a closing one is driven on.
pub async fn run_row(
    ctx: &Ctx,
    order: OrderRow,
    reason: FailureReason,
    cause: Cause,
) -> Result<CloseOutcome, sqlx::Error> {
    if order.parked {
        return Ok(CloseOutcome::Parked);
    }
    match order.status {
        OrderStatus::Paid | OrderStatus::Closed | OrderStatus::Failed => {
            Ok(CloseOutcome::AlreadyFinal(Some(order.status)))
        }
        OrderStatus::Pending => start(ctx, order, reason, cause).await,
        OrderStatus::Closing => drive(ctx, &order, cause).await,
    }
}

/// Starts the close of a pending order and drives it. The guarded `pending → closing` is the
/// claim: of several callers (a deadline seen twice, a cancel clicked again) one drives the close;
/// the others, and any caller for an order already `closing`, leave it to that flow and the
/// sweep (so a cancel can never make scanpay call WeChat more than once per order).
pub async fn start(
    ctx: &Ctx,
    order: OrderRow,
    reason: FailureReason,
    cause: Cause,
) -> Result<CloseOutcome, sqlx::Error> {
    if order.status != OrderStatus::Pending || order.parked {
        return Ok(CloseOutcome::AlreadyFinal(Some(order.status)));
    }
    let check_at = soon(ctx);
    if !apply::begin_close(ctx, &order.id, reason, cause, check_at).await? {
        let now = ctx.store.load(&order.id).await?.map(|o| o.status);
        return Ok(CloseOutcome::AlreadyFinal(now));
    }
    drive(ctx, &order, cause).await
}

async fn drive(ctx: &Ctx, order: &OrderRow, cause: Cause) -> Result<CloseOutcome, sqlx::Error> {
    let floor_at = order.created_at + ctx.settings.wxpay_close_floor.as_millis() as i64;
    if now_ms() < floor_at {
        // Too early for closeorder: WeChat's time_expire (set before our deadline) or the pass
        // at the floor closes it. A query can still settle it now.
        return settle_by_query(ctx, order, cause, floor_at).await;
    }
    match ctx.wxpay.close_order(&order.id).await {
        // Each of these is definite; the query says which outcome it was. ORDERNOTEXIST too:
        // the query decides whether an order that had a QR code may be closed.
        Ok(())
        | Err(WxPayError::Business {
            code: ErrCode::OrderClosed | ErrCode::OrderPaid | ErrCode::OrderNotExist,
            ..
        }) => {}
        Err(e) => {
            let _ = ctx
                .store
                .note(&order.id, "close_uncertain", cause, &e.to_string())
                .await;
            tracing::warn!(order_id = %order.id, error = %e, "closeorder uncertain; order stays closing");
            return retry(ctx, &order.id, soon(ctx)).await;
        }
    }
    // Closed at WeChat but not yet visible to orderquery (it lags): asked again soon.
    settle_by_query(ctx, order, cause, soon(ctx)).await
}

/// Queries WeChat and applies a definite answer; otherwise the sweep looks again at `retry_at`.
async fn settle_by_query(
    ctx: &Ctx,
    order: &OrderRow,
    cause: Cause,
    retry_at: i64,
) -> Result<CloseOutcome, sqlx::Error> {
    let order = OrderRow {
        status: OrderStatus::Closing,
        ..order.clone()
    };
    let answer = ctx.wxpay.order_query(&order.id).await;
    let action = decide::decide(&order, &answer, now_ms(), QrRoute::Open);
    match apply::settle(ctx, &order, &action, cause).await? {
        Some(Settled::Paid) => Ok(CloseOutcome::Paid),
        Some(Settled::Closed | Settled::Failed) => {
            tracing::info!(order_id = %order.id, ?action, "order closed, stock restored");
            Ok(CloseOutcome::Closed)
        }
        Some(Settled::Parked) => Ok(CloseOutcome::Parked),
        Some(Settled::Unchanged(now)) => Ok(CloseOutcome::AlreadyFinal(now)),
        None => {
            if let Action::Wait(why) = &action {
                tracing::info!(order_id = %order.id, why, "close not confirmed yet");
            }
            retry(ctx, &order.id, retry_at).await
        }
    }
}

fn soon(ctx: &Ctx) -> i64 {
    now_ms() + ctx.settings.sweep_interval.as_millis() as i64
}

async fn retry(ctx: &Ctx, id: &str, at: i64) -> Result<CloseOutcome, sqlx::Error> {
    apply::schedule_check(ctx, id, at).await?;
    Ok(CloseOutcome::RetryAt(at))
}
