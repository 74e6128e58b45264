//! The shopper gives up on an unpaid order: the same close step as a deadline, started only from
//! `pending`. A `closing` order belongs to the flow already closing it (or the sweep), so asking
//! again changes nothing and calls WeChat for nothing: one session cannot make scanpay flood
//! WeChat (which throttles the whole merchant) by cancelling over and over.

use std::sync::Arc;

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{Cause, OrderRow, ANSWER_WITHIN};
use crate::server::orders::close;
use crate::server::state::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("the order is paid")]
    AlreadyPaid,
    #[error("the order was paid before it could be cancelled")]
    PaidBeforeCancel,
    #[error("the order is gone")]
    Gone,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Cancels `order` (already checked to be the caller's) and answers within a couple of seconds
/// with the order as it is then: `closing` until WeChat confirms, when the close carries on in the
/// background and the checkout polls for the outcome.
pub async fn cancel(ctx: &Arc<Ctx>, order: OrderRow) -> Result<OrderRow, CancelError> {
    match order.status {
        OrderStatus::Paid => Err(CancelError::AlreadyPaid),
        OrderStatus::Pending if !order.parked => {
            let id = order.id.clone();
            let task = tokio::spawn({
                let ctx = ctx.clone();
                async move { close::start(&ctx, order, FailureReason::Cancelled, Cause::Shopper).await }
            });
            match tokio::time::timeout(ANSWER_WITHIN, task).await {
                Ok(Ok(Err(e))) => return Err(e.into()),
                Ok(Err(e)) => {
                    tracing::error!(order_id = %id, error = %e, "cancel's close step panicked");
                }
                // Done, or still talking to WeChat: the status below says which.
                Ok(Ok(Ok(_))) | Err(_) => {}
            }
            reload(ctx, &id).await
        }
        // Closing (its flow or the sweep finishes it), finished, or parked: nothing to start.
        _ => reload(ctx, &order.id).await,
    }
}

async fn reload(ctx: &Ctx, id: &str) -> Result<OrderRow, CancelError> {
    let order = ctx.store.load(id).await?.ok_or(CancelError::Gone)?;
    if order.status == OrderStatus::Paid {
        return Err(CancelError::PaidBeforeCancel);
    }
    Ok(order)
}
