//! The pay-result bus: where the notify handler hands a verified pay result before answering
//! WeChat SUCCESS (design principle 2: only once the result is durable).
//!
//! - Embedded (default): a durable inbox table in the same database; the consumer drains it.
//! - RabbitMQ (`SCANPAY_AMQP_URL`): a persistent, mandatory publish to the pay-result queue,
//!   confirmed by the broker; the consumer records it in the same inbox table (the idempotency key)
//!   and applies it in one commit, then acks. See `server::rabbit` for the topology.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::server::rabbit::Rabbit;
use crate::server::store::Store;
use crate::server::wxpay::notify::PayNotify;

#[derive(Debug, thiserror::Error)]
#[error("pay-result bus unavailable: {0}")]
pub struct BusError(String);

/// A pay result as it travels through RabbitMQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayMessage {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    pub time_end: String,
    pub paid_at_ms: i64,
}

impl PayMessage {
    pub fn from_notify(n: &PayNotify) -> Self {
        PayMessage {
            out_trade_no: n.out_trade_no.clone(),
            transaction_id: n.transaction_id.clone(),
            total_fee: n.total_fee,
            time_end: n.time_end.clone(),
            paid_at_ms: n.paid_at_ms,
        }
    }
    pub fn notify(&self) -> PayNotify {
        PayNotify {
            out_trade_no: self.out_trade_no.clone(),
            transaction_id: self.transaction_id.clone(),
            total_fee: self.total_fee,
            time_end: self.time_end.clone(),
            paid_at_ms: self.paid_at_ms,
            openid: None,
        }
    }
}

#[derive(Clone)]
pub enum PayResultBus {
    Inbox { store: Store, wake: Arc<Notify> },
    Rabbit { rabbit: Arc<Rabbit>, store: Store },
}

impl PayResultBus {
    pub fn embedded(store: Store) -> Self {
        PayResultBus::Inbox {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn rabbit(rabbit: Arc<Rabbit>, store: Store) -> Self {
        PayResultBus::Rabbit { rabbit, store }
    }

    /// Durably hands over a verified pay result. Publishing the same transaction twice is harmless.
    pub async fn publish(&self, n: &PayNotify) -> Result<(), BusError> {
        match self {
            PayResultBus::Inbox { store, wake } => {
                store
                    .publish_pay_result(n)
                    .await
                    .map_err(|e| BusError(e.to_string()))?;
                wake.notify_one();
                Ok(())
            }
            PayResultBus::Rabbit { rabbit, .. } => {
                let body = serde_json::to_vec(&PayMessage::from_notify(n)).expect("serializable");
                let names = rabbit.names();
                rabbit
                    .publish(&names.pay_exchange, "pay_result", &n.transaction_id, &body)
                    .await
                    .map_err(|e| BusError(e.to_string()))
            }
        }
    }

    /// Resolves when something was published here (embedded bus; callers re-check the inbox).
    pub async fn wait(&self) {
        match self {
            PayResultBus::Inbox { wake, .. } => wake.notified().await,
            PayResultBus::Rabbit { .. } => std::future::pending().await,
        }
    }

    pub fn store(&self) -> &Store {
        match self {
            PayResultBus::Inbox { store, .. } | PayResultBus::Rabbit { store, .. } => store,
        }
    }
}
