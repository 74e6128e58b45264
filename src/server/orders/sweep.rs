//! Flow 5, the reconciliation sweep: every few seconds, take the unfinished orders that are due a
//! check, ask WeChat (`orderquery`) and drive the same transitions as every other flow; then the
//! refunds not yet final (sent again, or `refundquery`) and the automatic refunds not yet asked. It is what
//! makes a lost notify, a lost timer, a lost unifiedorder answer or a crash in the middle of a
//! close harmless.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{Cause, OrderRow};
use crate::server::orders::decide::{self, Action, QrRoute};
use crate::server::orders::{apply, close, qr, refund};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;

/// Orders claimed at a time; a pass claims again while a full batch came back.
const BATCH: i64 = 200;

/// Runs passes until cancelled, one per `sweep_interval`. Every fourth pass (one reconciliation
/// period), and after the index came back from an outage, it also repairs the due index from SQL.
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken) {
    let mut passes: u64 = 0;
    let mut recoveries = ctx.due.recoveries();
    let mut told_misdirected = None;
    loop {
        // Said once per episode, as an error: the close and QR warnings it causes are symptoms.
        let period = ctx.reconciliation_period().as_millis() as i64;
        let misdirected = ctx
            .wxpay
            .misdirected(period)
            .filter(|(since, _)| now_ms() - since >= period);
        if let (Some((since, why)), None) = (&misdirected, told_misdirected) {
            tracing::error!(base = %ctx.settings.wxpay_base_url, answer = %why,
                "SCANPAY_WXPAY_BASE_URL has answered only what WeChat Pay never answers for a \
                 reconciliation period: nothing can be paid, queried or closed through it");
            told_misdirected = Some(*since);
        }
        if misdirected.is_none() {
            told_misdirected = None;
        }
        let recovered = ctx.due.recoveries() != recoveries;
        if recovered || passes % 4 == 3 {
            match ctx.due.repair().await {
                Ok((0, 0)) => {}
                Ok((added, removed)) => {
                    tracing::info!(added, removed, "due index repaired from SQL")
                }
                Err(e) => tracing::warn!(error = %e, "due index not repaired this time"),
            }
            recoveries = ctx.due.recoveries();
        }
        passes += 1;
        if let Err(e) = pass(&ctx).await {
            tracing::error!(error = %e, "sweep pass failed; will retry");
        }
        if let Err(e) = refund::pass(&ctx).await {
            tracing::error!(error = %e, "refund pass failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(ctx.settings.sweep_interval) => {}
            _ = token.cancelled() => return,
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
        let next_at = |o: &OrderRow, attempts: i64| next_check(o, attempts, now, interval);
        let due = ctx.due.claim(now, BATCH, &next_at).await?;
        let n = due.len();
        stream::iter(due)
            .for_each_concurrent(ctx.settings.sweep_concurrency, |order| async move {
                let id = order.id.clone();
                if let Err(e) = check(ctx, order).await {
                    tracing::warn!(order_id = %id, error = %e, "sweep check failed; a later pass retries");
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

/// Checks one claimed order (as the claim loaded it) and drives it toward its outcome.
async fn check(ctx: &Ctx, order: OrderRow) -> Result<(), sqlx::Error> {
    if order.status == OrderStatus::Closing {
        let reason = order.failure_reason.unwrap_or(FailureReason::Expired);
        close::run_row(ctx, order, reason, Cause::Sweep).await?;
        return Ok(());
    }
    if now_ms() >= order.deadline_at {
        // The timer missed it (crash, lost message): the close step queries WeChat itself.
        close::run_row(ctx, order, FailureReason::Expired, Cause::Sweep).await?;
        return Ok(());
    }
    let answer = ctx.wxpay.order_query(&order.id).await;
    let action = decide::decide(&order, &answer, now_ms(), QrRoute::Open);
    match action {
        Action::RequestQr => qr::request_payment(ctx, &order).await,
        Action::StartClose(reason) => {
            close::run_row(ctx, order, reason, Cause::Sweep).await?;
            Ok(())
        }
        Action::Wait(why) => {
            tracing::debug!(order_id = %order.id, why, "sweep: nothing to do yet");
            Ok(())
        }
        action => {
            let settled = apply::settle(ctx, &order, &action, Cause::Sweep).await?;
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
            refunded_fee: 0,
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
