//! Flow 4, the pay-result consumer: applies each inbox entry with the guarded paid transition and
//! marks the entry handled in the same commit, so a crash between the two cannot lose or repeat it.
//!
//! Marking the entry handled comes first in that transaction and is guarded: with several
//! consumers (threads or processes) on one database, exactly one applies each entry. An entry whose
//! application fails is backed off (`next_attempt_at`) and the others flow past it.

use std::time::Duration;

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
    let store = bus.store();
    let mut handled = 0;
    loop {
        let due = store.due_pay_results(now_ms(), BATCH).await?;
        let full = due.len() as i64 == BATCH;
        for (p, attempts) in due {
            match store.apply_pay_result(&p).await {
                Ok(Some(outcome)) => {
                    tracing::info!(order_id = %p.out_trade_no, outcome = outcome.as_str(), "pay result applied");
                    handled += 1;
                }
                Ok(None) => {} // another consumer had it
                Err(e) => {
                    let retry_in = 500i64 << attempts.clamp(0, 7); // 0.5 s doubling to 64 s
                    tracing::warn!(order_id = %p.out_trade_no, attempts = attempts + 1, retry_in_ms = retry_in, error = %e,
                        "applying a pay result failed; backing off");
                    let why: String = e.to_string().chars().take(500).collect();
                    store
                        .back_off_pay_result(&p.transaction_id, now_ms() + retry_in, &why)
                        .await?;
                }
            }
        }
        if !full {
            return Ok(handled);
        }
    }
}
