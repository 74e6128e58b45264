//! Flow 4, the pay-result consumer. Embedded bus: applies each inbox entry with the guarded paid transition and
//! marks the entry handled in the same commit, so a crash between the two cannot lose or repeat it.
//!
//! Marking the entry handled comes first in that transaction and is guarded: with several
//! consumers (threads or processes) on one database, exactly one applies each entry. An entry whose
//! application fails is backed off (`next_attempt_at`) and the others flow past it.

use std::time::Duration;

use crate::server::bus::{PayMessage, PayResultBus};
use crate::server::rabbit::{self, Handled};
use crate::server::store::{now_ms, Store};
use crate::server::workers::Stop;

const BATCH: i64 = 100;

/// Runs until stopped. Embedded: drains the inbox whenever woken, and at least every second.
/// RabbitMQ: consumes the pay-result queue (`prefetch` at a time), acking after each commit.
pub async fn run(bus: PayResultBus, stop: Stop) {
    if let PayResultBus::Rabbit { rabbit, store } = &bus {
        let (settings, queue) = (rabbit.settings().clone(), rabbit.names().pay_queue);
        let store = store.clone();
        rabbit::consume(settings, queue, stop, move |body| {
            let store = store.clone();
            async move { apply_message(&store, &body).await }
        })
        .await;
        return;
    }
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

/// One pay result from RabbitMQ: recorded in the inbox (its idempotency key) and applied in one
/// commit before the ack; a redelivery finds the entry handled and is simply acked.
pub async fn apply_message(store: &Store, body: &[u8]) -> Handled {
    let msg: PayMessage = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return Handled::Poison(format!("not a pay result: {e}")),
    };
    match store.receive_pay_result(&msg.notify()).await {
        Ok(Some(outcome)) => {
            tracing::info!(order_id = %msg.out_trade_no, outcome = outcome.as_str(), "pay result applied");
            Handled::Done
        }
        Ok(None) => Handled::Done, // applied before (a redelivery or a duplicate notify)
        Err(e) => Handled::Retry(e.to_string()),
    }
}
