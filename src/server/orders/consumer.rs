//! Flow 4, the pay-result consumer: applies each inbox entry with the guarded paid transition and
//! marks the entry handled in the same commit, so a crash between the two cannot lose or repeat it.
//!
//! Marking the entry handled comes first in that transaction and is guarded: with several
//! consumers (threads or processes) on one database, exactly one applies each entry. An entry whose
//! application fails is backed off (`next_attempt_at`) and the others flow past it.

use std::time::Duration;

use sqlx::Row;

use super::state::{self, Cause, Payment};
use crate::server::bus::PayResultBus;
use crate::server::store::now_ms;
use crate::server::workers::Stop;

const BATCH: i64 = 100;

/// Runs until stopped: drains the inbox whenever woken, and at least every second.
pub async fn run(bus: PayResultBus, stop: Stop) {
    loop {
        if let Err(e) = drain(&bus).await {
            tracing::error!(error = %e, "pay-result consumer: will retry");
        }
        if stop.is_stopping() {
            return;
        }
        tokio::select! {
            _ = bus.wait() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.stopped() => return,
        }
    }
}

/// Applies every pay result that is due; returns how many this call applied.
pub async fn drain(bus: &PayResultBus) -> Result<usize, sqlx::Error> {
    let db = bus.db();
    let mut handled = 0;
    loop {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT transaction_id, out_trade_no, total_fee, paid_at, attempts FROM pay_inbox \
             WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
        )
        .bind(now)
        .bind(BATCH)
        .fetch_all(db)
        .await?;
        let full = rows.len() as i64 == BATCH;
        for row in rows {
            let p = Payment {
                transaction_id: row.try_get("transaction_id")?,
                out_trade_no: row.try_get("out_trade_no")?,
                total_fee: row.try_get("total_fee")?,
                paid_at: row.try_get("paid_at")?,
            };
            let attempts: i64 = row
                .try_get::<i32, _>("attempts")
                .map(i64::from)
                .or_else(|_| row.try_get::<i64, _>("attempts"))?;
            match apply(bus, &p).await {
                Ok(Some(outcome)) => {
                    tracing::info!(order_id = %p.out_trade_no, outcome, "pay result applied");
                    handled += 1;
                }
                Ok(None) => {} // another consumer had it
                Err(e) => {
                    let retry_in = 500i64 << attempts.clamp(0, 7); // 0.5 s doubling to 64 s
                    tracing::warn!(order_id = %p.out_trade_no, attempts = attempts + 1, retry_in_ms = retry_in, error = %e,
                        "applying a pay result failed; backing off");
                    sqlx::query(
                        "UPDATE pay_inbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? \
                         WHERE transaction_id = ? AND processed_at IS NULL",
                    )
                    .bind(now_ms() + retry_in)
                    .bind(e.to_string().chars().take(500).collect::<String>())
                    .bind(&p.transaction_id)
                    .execute(db)
                    .await?;
                }
            }
        }
        if !full {
            return Ok(handled);
        }
    }
}

/// One entry in one transaction: claim it, record it on the timeline, apply it. None when
/// another consumer claimed it first.
async fn apply(bus: &PayResultBus, p: &Payment) -> Result<Option<&'static str>, sqlx::Error> {
    let mut tx = bus.db().begin().await?;
    let claimed = sqlx::query(
        "UPDATE pay_inbox SET processed_at = ?, next_attempt_at = NULL \
         WHERE transaction_id = ? AND processed_at IS NULL",
    )
    .bind(now_ms())
    .bind(&p.transaction_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed != 1 {
        return Ok(None);
    }
    state::record_notify(&mut tx, p).await?;
    let outcome = state::mark_paid(&mut tx, p, Cause::Notify).await?;
    sqlx::query("UPDATE pay_inbox SET outcome = ? WHERE transaction_id = ?")
        .bind(outcome.as_str())
        .bind(&p.transaction_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(outcome.as_str()))
}
