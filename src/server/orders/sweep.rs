//! Flow 5, the reconciliation sweep: every few seconds, take the unfinished orders that are due a
//! check, ask WeChat (`orderquery`) and drive the same transitions as every other flow. It is what
//! makes a lost notify, a lost timer, a lost unifiedorder answer or a crash in the middle of a
//! close harmless.

use std::sync::Arc;

use futures::stream::{self, StreamExt};

use super::place;
use super::reconcile::{self, Action, QrRoute};
use super::state::{Cause, OrderRow};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::store::now_ms;
use crate::server::Ctx;

/// Orders claimed at a time; a pass claims again while a full batch came back.
const BATCH: i64 = 200;

/// Runs passes until `stop` says so, one per `sweep_interval`. With Redis, every fourth pass
/// (one reconciliation period) and after a Redis outage it also repairs the index from SQL.
pub async fn run(ctx: Arc<Ctx>, mut stop: crate::server::workers::Stop) {
    let mut passes: u64 = 0;
    loop {
        if let Some(cache) = ctx.store.mirror() {
            if cache.take_recovered() {
                let store = &ctx.store;
                match cache
                    .recover(
                        |id| async move { store.load(&id).await },
                        || store.unfinished(),
                    )
                    .await
                {
                    Ok(n) => tracing::info!(
                        rewritten = n,
                        "Redis back: statuses rewritten, index repaired"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "Redis recovery incomplete; retrying next pass")
                    }
                }
            } else if passes % 4 == 3 {
                match cache.repair(|| ctx.store.unfinished()).await {
                    Ok((0, 0)) => {}
                    Ok((added, removed)) => {
                        tracing::info!(added, removed, "Redis index of unfinished orders repaired")
                    }
                    Err(e) => tracing::warn!(error = %e, "Redis index not repaired this time"),
                }
            }
        }
        passes += 1;
        if let Err(e) = pass(&ctx).await {
            tracing::error!(error = %e, "sweep pass failed; will retry");
        }
        if stop.sleep(ctx.settings.sweep_interval).await {
            return;
        }
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

/// One pass: claims and checks every order that is due, `sweep_concurrency` at a time, batch
/// after batch until none is left. Returns how many orders it checked.
pub async fn pass(ctx: &Ctx) -> Result<usize, sqlx::Error> {
    let interval = ctx.settings.sweep_interval.as_millis() as i64;
    let started = now_ms();
    let mut checked = 0;
    loop {
        let now = now_ms();
        let due = match claim_from_redis(ctx, now, interval).await {
            Some(due) => due,
            None => {
                ctx.store
                    .claim_due(now, BATCH, &|o, attempts| {
                        next_check(o, attempts, now, interval)
                    })
                    .await?
            }
        };
        let n = due.len();
        stream::iter(due)
            .for_each_concurrent(ctx.settings.sweep_concurrency, |order| async move {
                if let Err(e) = check(ctx, &order).await {
                    tracing::warn!(order_id = %order.id, error = %e, "sweep check failed; a later pass retries");
                }
            })
            .await;
        checked += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    let took = now_ms() - started;
    if took > interval {
        // Checks come due faster than they are made: orders wait longer than planned.
        tracing::warn!(
            checked,
            took_ms = took,
            interval_ms = interval,
            "sweep is falling behind: a pass took longer than the sweep interval \
             (raise SCANPAY_SWEEP_CONCURRENCY, or WeChat is slow)"
        );
    }
    Ok(checked)
}

/// Claims due orders from the Redis index (None when there is no Redis or it does not answer:
/// the caller claims from SQL). Each claimed id's score moves to one interval ahead inside the
/// claim, so a worker dying here only delays that order's check; the planned next check is
/// then written through the store (SQL, and the index again).
async fn claim_from_redis(ctx: &Ctx, now: i64, interval: i64) -> Option<Vec<OrderRow>> {
    let cache = ctx.store.mirror()?;
    let claimed = cache.claim(now, BATCH, now + interval).await.ok()?;
    let mut due = Vec::with_capacity(claimed.len());
    for (id, attempts) in claimed {
        match ctx.store.load(&id).await {
            Ok(Some(o)) if !o.status.is_final() && !o.parked => {
                let next = next_check(&o, attempts, now, interval);
                if let Err(e) = ctx.store.schedule_check(&id, next).await {
                    tracing::warn!(order_id = %id, error = %e, "cannot plan the next check");
                }
                due.push(o);
            }
            // Finished or parked since it was indexed: take it out of the index.
            Ok(Some(o)) => {
                let _ = cache.mirror(&o).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(order_id = %id, error = %e, "cannot load a claimed order"),
        }
    }
    Some(due)
}

/// Checks one claimed order and drives it toward its outcome.
async fn check(ctx: &Ctx, order: &OrderRow) -> Result<(), sqlx::Error> {
    if order.status == OrderStatus::Closing {
        let reason = order.failure_reason.unwrap_or(FailureReason::Expired);
        ctx.closer().run(&order.id, reason, Cause::Sweep).await?;
        return Ok(());
    }
    if now_ms() >= order.deadline_at {
        // The timer missed it (crash, lost message): the close flow queries WeChat itself.
        ctx.closer()
            .run(&order.id, FailureReason::Expired, Cause::Sweep)
            .await?;
        return Ok(());
    }
    let answer = ctx.wxpay.order_query(&order.id).await;
    let action = reconcile::decide(order, &answer, now_ms(), QrRoute::Open);
    match action {
        Action::RequestQr => place::request_payment(ctx, order).await,
        Action::StartClose(reason) => {
            ctx.closer().run(&order.id, reason, Cause::Sweep).await?;
            Ok(())
        }
        Action::Wait(why) => {
            tracing::debug!(order_id = %order.id, why, "sweep: nothing to do yet");
            Ok(())
        }
        action => {
            let settled = reconcile::settle(&ctx.store, order, &action, Cause::Sweep).await?;
            tracing::info!(order_id = %order.id, ?action, ?settled, "sweep settled an order");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, deadline_at: i64) -> OrderRow {
        OrderRow {
            next_check_at: None,
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
            parked: false,
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
