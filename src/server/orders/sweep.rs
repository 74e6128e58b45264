//! Flow 5, the reconciliation sweep: every few seconds, take the unfinished orders that are due a
//! check, ask WeChat (`orderquery`) and drive the same transitions as every other flow. It is what
//! makes a lost notify, a lost timer or a crash in the middle of a close harmless.

use std::sync::Arc;

use super::close::{apply_query_success, CloseOutcome};
use super::place;
use super::state::{self, Cause, OrderRow};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::store::now_ms;
use crate::server::wxpay::{ErrCode, TradeState, WxPayError};
use crate::server::Ctx;

/// Orders one pass takes at most; the rest wait for the next pass.
const BATCH: i64 = 50;

/// Runs passes forever, one per `sweep_interval`.
pub async fn run(ctx: Arc<Ctx>) {
    loop {
        if let Err(e) = pass(&ctx).await {
            tracing::error!(error = %e, "sweep pass failed; will retry");
        }
        tokio::time::sleep(ctx.settings.sweep_interval).await;
    }
}

/// When to look at an order again after this check: backing off from one sweep interval to four
/// (the reconciliation period), never past a pending order's deadline.
pub fn next_check(o: &OrderRow, attempts: i64, now: i64, interval_ms: i64) -> i64 {
    let at = now + interval_ms * (1 << attempts.clamp(0, 2));
    if o.status == OrderStatus::Pending && o.deadline_at > now {
        at.min(o.deadline_at)
    } else {
        at
    }
}

/// One pass; returns how many orders it checked.
pub async fn pass(ctx: &Ctx) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let interval = ctx.settings.sweep_interval.as_millis() as i64;
    let due = state::claim_due(&ctx.db, now, BATCH, |o, attempts| {
        next_check(o, attempts, now, interval)
    })
    .await?;
    for order in &due {
        if let Err(e) = check(ctx, order).await {
            tracing::warn!(order_id = %order.id, error = %e, "sweep check failed; next pass retries");
        }
    }
    Ok(due.len())
}

async fn check(ctx: &Ctx, order: &OrderRow) -> Result<(), sqlx::Error> {
    if order.status == OrderStatus::Closing {
        let reason = order.failure_reason.unwrap_or(FailureReason::Expired);
        ctx.closer().run(&order.id, reason, Cause::Sweep).await?;
        return Ok(());
    }
    let past_deadline = now_ms() >= order.deadline_at;
    match ctx.wxpay.order_query(&order.id).await {
        Ok(q) => match q.trade_state {
            TradeState::Success | TradeState::Refund => {
                let outcome = apply_query_success(&ctx.db, order, &q, Cause::Sweep).await?;
                tracing::info!(order_id = %order.id, outcome = outcome.as_str(), "sweep found a payment");
            }
            TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
                ctx.closer()
                    .run(&order.id, FailureReason::Expired, Cause::Sweep)
                    .await?;
            }
            _ if past_deadline => {
                let outcome = ctx
                    .closer()
                    .run(&order.id, FailureReason::Expired, Cause::Sweep)
                    .await?;
                if let CloseOutcome::RetryAt(_) = outcome {
                    tracing::info!(order_id = %order.id, "sweep started closing an expired order");
                }
            }
            _ => {} // NOTPAY before the deadline: the shopper may still pay.
        },
        // WeChat has no such order: unifiedorder never landed. Ask again (same parameters) while
        // the shopper can still pay, give up after the deadline.
        Err(WxPayError::Business {
            code: ErrCode::OrderNotExist,
            ..
        }) if order.code_url.is_none() => {
            if past_deadline {
                state::fail(
                    &ctx.db,
                    &order.id,
                    FailureReason::PaymentNotCreated,
                    Cause::Sweep,
                    "orderquery: ORDERNOTEXIST",
                )
                .await?;
            } else {
                place::request_payment(ctx, order).await?;
            }
        }
        Err(e) => {
            tracing::info!(order_id = %order.id, error = %e, "sweep: orderquery gave no answer")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, deadline_at: i64) -> OrderRow {
        OrderRow {
            id: "O".into(),
            session_id: "s".into(),
            status,
            total_fee: 1,
            body: "b".into(),
            created_at: 0,
            deadline_at,
            code_url: None,
            transaction_id: None,
            paid_at: None,
            failure_reason: None,
        }
    }

    #[test]
    fn backoff_doubles_to_four_intervals_and_stops_at_the_deadline() {
        let o = order(OrderStatus::Pending, 1_000_000);
        assert_eq!(next_check(&o, 0, 0, 5000), 5000);
        assert_eq!(next_check(&o, 1, 0, 5000), 10_000);
        assert_eq!(next_check(&o, 2, 0, 5000), 20_000);
        assert_eq!(next_check(&o, 9, 0, 5000), 20_000);
        assert_eq!(
            next_check(&order(OrderStatus::Pending, 3000), 2, 0, 5000),
            3000
        );
        assert_eq!(
            next_check(&order(OrderStatus::Closing, 3000), 2, 0, 5000),
            20_000
        );
    }
}
