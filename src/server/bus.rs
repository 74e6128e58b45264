//! The pay-result bus. Embedded default: a durable inbox table in the same database, so a pay
//! result handed off here survives a crash before the consumer applies it (design principle 2:
//! SUCCESS goes back to WeChat only once the result is durable).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::server::store::{now_ms, Db};
use crate::server::wxpay::notify::PayNotify;

#[derive(Debug, thiserror::Error)]
#[error("pay-result bus unavailable: {0}")]
pub struct BusError(String);

#[derive(Clone)]
pub struct PayResultBus {
    db: Db,
    wake: Arc<Notify>,
}

impl PayResultBus {
    pub fn new(db: Db) -> Self {
        PayResultBus {
            db,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Durably records a verified pay result. Publishing the same transaction twice is harmless.
    pub async fn publish(&self, n: &PayNotify) -> Result<(), BusError> {
        sqlx::query(
            "INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, received_at, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (transaction_id) DO NOTHING",
        )
        .bind(&n.transaction_id)
        .bind(&n.out_trade_no)
        .bind(n.total_fee)
        .bind(&n.time_end)
        .bind(n.paid_at_ms)
        .bind(now_ms())
        .bind(now_ms())
        .execute(&self.db)
        .await
        .map_err(|e| BusError(e.to_string()))?;
        self.wake.notify_one();
        Ok(())
    }

    /// Resolves when something was published (or spuriously; callers re-check the inbox).
    pub async fn wait(&self) {
        self.wake.notified().await
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
