//! The pay-result bus. Embedded default: a durable inbox table in the same database, so a pay
//! result handed off here survives a crash before the consumer applies it (design principle 2:
//! SUCCESS goes back to WeChat only once the result is durable).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::server::store::Store;
use crate::server::wxpay::notify::PayNotify;

#[derive(Debug, thiserror::Error)]
#[error("pay-result bus unavailable: {0}")]
pub struct BusError(String);

#[derive(Clone)]
pub struct PayResultBus {
    store: Store,
    wake: Arc<Notify>,
}

impl PayResultBus {
    pub fn new(store: Store) -> Self {
        PayResultBus {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Durably records a verified pay result. Publishing the same transaction twice is harmless.
    pub async fn publish(&self, n: &PayNotify) -> Result<(), BusError> {
        self.store
            .publish_pay_result(n)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        self.wake.notify_one();
        Ok(())
    }

    /// Resolves when something was published (or spuriously; callers re-check the inbox).
    pub async fn wait(&self) {
        self.wake.notified().await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
