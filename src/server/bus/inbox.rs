//! The embedded bus: a durable inbox table in the same database. Publishing inserts the row
//! (committed before the notify is answered); the consumer claims each due row, applies it and
//! marks it handled in one transaction, so a crash between the two cannot lose or repeat it.
//!
//! Claiming comes first in that transaction and is guarded: with several consumers (threads or
//! processes) on one database, exactly one applies each row. A row whose application fails is
//! backed off (`next_attempt_at`) and the others flow past it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{BusError, OnApplied, PayResults, Received};
use crate::server::domain::PayResult;
use crate::server::store::Store;
use crate::server::support::backoff::Backoff;
use crate::server::support::clock::now_ms;
use crate::server::support::BoxFuture;

/// Rows taken per query (drained again at once while a full batch came back).
const BATCH: i64 = 100;

#[derive(Clone)]
pub struct InboxBus {
    store: Store,
    wake: Arc<Notify>,
}

impl InboxBus {
    pub fn new(store: Store) -> Self {
        InboxBus {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Applies every pay result that is due; returns how many this call applied.
    pub async fn drain(&self, on_applied: &OnApplied) -> Result<usize, sqlx::Error> {
        let store = &self.store;
        let mut handled = 0;
        loop {
            let due = store.due_pay_results(now_ms(), BATCH).await?;
            let full = due.len() as i64 == BATCH;
            for (p, attempts) in due {
                match store.apply_pay_result(&p).await {
                    Ok(Some(applied)) => {
                        on_applied(Received::new(&p.out_trade_no, &p.transaction_id, applied))
                            .await;
                        handled += 1;
                    }
                    Ok(None) => {} // another consumer had it
                    Err(e) => {
                        let retry_in = Backoff::nth(
                            Duration::from_millis(500),
                            Duration::from_secs(64),
                            attempts.clamp(0, 20) as u32,
                        )
                        .as_millis() as i64;
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
}

impl PayResults for InboxBus {
    fn name(&self) -> &'static str {
        "inbox"
    }

    fn publish<'a>(&'a self, result: &'a PayResult) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            self.store
                .publish_pay_result(result)
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
            self.wake.notify_one();
            Ok(())
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Option<Result<u32, String>>> {
        Box::pin(async { None })
    }

    /// Drains the inbox whenever woken by a publish in this process, and at least every second
    /// (rows published by other processes, rows backed off).
    fn consume(&self, on_applied: OnApplied, token: CancellationToken) -> BoxFuture<'static, ()> {
        let bus = self.clone();
        Box::pin(async move {
            loop {
                if let Err(e) = bus.drain(&on_applied).await {
                    tracing::error!(error = %e, "pay-result consumer: will retry");
                }
                tokio::select! {
                    _ = bus.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = token.cancelled() => return,
                }
            }
        })
    }
}
