//! Flow 4, the pay-result consumer: applies each inbox entry with the guarded paid transition and
//! marks the entry handled in the same commit, so a crash between the two cannot lose or repeat it.

use std::time::Duration;

use sqlx::Row;

use super::state::{self, Cause, Payment};
use crate::server::bus::PayResultBus;
use crate::server::store::now_ms;

/// Runs forever: drains the inbox whenever woken, and at least every second.
pub async fn run(bus: PayResultBus) {
    loop {
        if let Err(e) = drain(&bus).await {
            tracing::error!(error = %e, "pay-result consumer: will retry");
        }
        tokio::select! {
            _ = bus.wait() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Applies every unprocessed pay result; returns how many it handled.
pub async fn drain(bus: &PayResultBus) -> Result<usize, sqlx::Error> {
    let db = bus.db();
    let mut handled = 0;
    loop {
        let rows = sqlx::query(
            "SELECT transaction_id, out_trade_no, total_fee, paid_at FROM pay_inbox \
             WHERE processed_at IS NULL ORDER BY received_at LIMIT 50",
        )
        .fetch_all(db)
        .await?;
        if rows.is_empty() {
            return Ok(handled);
        }
        for row in rows {
            let p = Payment {
                transaction_id: row.try_get("transaction_id")?,
                out_trade_no: row.try_get("out_trade_no")?,
                total_fee: row.try_get("total_fee")?,
                paid_at: row.try_get("paid_at")?,
            };
            let mut tx = db.begin().await?;
            state::record_notify(&mut tx, &p).await?;
            let outcome = state::mark_paid(&mut tx, &p, Cause::Notify).await?;
            sqlx::query("UPDATE pay_inbox SET processed_at = ?, outcome = ? WHERE transaction_id = ? AND processed_at IS NULL")
                .bind(now_ms())
                .bind(outcome.as_str())
                .bind(&p.transaction_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(order_id = %p.out_trade_no, outcome = outcome.as_str(), "pay result applied");
            handled += 1;
        }
    }
}
