//! The pay-result bus: where the notify handler hands a verified pay result before answering
//! WeChat SUCCESS (design principle 2: only once the result is durable), and where the consumer
//! takes it from. Two implementations, one interface:
//!
//! - `inbox`: a durable table in the same database (the embedded default);
//! - `amqp`: a persistent, mandatory, confirmed publish to RabbitMQ's pay-result queue
//!   (`SCANPAY_AMQP_URL`).
//!
//! Either way every pay result is recorded in the store's inbox (keyed by `transaction_id`) and
//! applied in the same commit, so a result delivered twice, concurrently or after a crash is
//! applied once. The consumer flow sees only `PayResults`; `contract` is the suite both pass.

pub mod amqp;
pub mod contract;
pub mod inbox;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::server::domain::{PaidOutcome, PayResult};
use crate::server::store::Applied;
use crate::server::support::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Nothing was handed over (database or broker away, no confirm): answer FAIL, WeChat retries.
    #[error("pay-result bus unavailable: {0}")]
    Unavailable(String),
}

/// A pay result the store just applied (committed), for what must follow the commit.
pub struct Received {
    pub order_id: String,
    pub transaction_id: String,
    pub outcome: PaidOutcome,
    /// The order as committed, when the engine returned it (else the hook reads it back).
    pub row: Option<crate::server::domain::OrderRow>,
    /// When the notify that carried it was received, when the bus knows.
    pub received_at_ms: Option<i64>,
}

impl Received {
    pub(crate) fn new(order_id: &str, transaction_id: &str, applied: Applied) -> Self {
        Received {
            order_id: order_id.to_string(),
            transaction_id: transaction_id.to_string(),
            outcome: applied.outcome,
            row: applied.row,
            received_at_ms: None,
        }
    }
}

/// Told of every pay result once it is committed (logging, the status cache, the due index).
pub type OnApplied = Arc<dyn Fn(Received) -> BoxFuture<'static, ()> + Send + Sync>;

pub trait PayResults: Send + Sync {
    /// `inbox` or `rabbitmq`, as `/readyz` and logs name it.
    fn name(&self) -> &'static str;

    /// Durably hands over a verified pay result: `Ok` only once it cannot be lost. Handing over
    /// the same transaction twice is harmless.
    fn publish<'a>(&'a self, result: &'a PayResult) -> BoxFuture<'a, Result<(), BusError>>;

    /// Applies every handed-over pay result until `token` is cancelled: each is recorded and
    /// applied in one commit, exactly once per transaction, then `on_applied` is told.
    fn consume(&self, on_applied: OnApplied, token: CancellationToken) -> BoxFuture<'static, ()>;

    /// Pay results past their delivery limit, waiting for an operator: None for a bus that has
    /// none (the inbox backs off instead); an error when the broker does not answer.
    fn dead_letters(&self) -> BoxFuture<'_, Option<Result<u32, String>>>;

    /// What up to `limit` dead letters carry (their bodies as text), left where they are; None
    /// for a bus that has none.
    fn dead_letter_list(&self, _limit: u32) -> BoxFuture<'_, Option<Result<Vec<String>, String>>> {
        Box::pin(async { None })
    }

    /// Hands up to `limit` dead letters back to the consumers (applying one twice is harmless);
    /// how many. None for a bus that has none.
    fn requeue_dead_letters(&self, _limit: u32) -> BoxFuture<'_, Option<Result<u32, String>>> {
        Box::pin(async { None })
    }
}
