//! The RabbitMQ bus: a pay result is published persistently and `mandatory` to the pay-result
//! queue and counts as handed over only on the broker's confirm. The consumer records each
//! delivery in the store's inbox (its idempotency key) and applies it in one commit, then acks;
//! a redelivery finds the entry handled and is simply acked.
//!
//! Deliveries waiting at the same moment are applied together (`Batcher`): one commit for the
//! lot, since every commit waits for a disk flush and the disk (shared with RabbitMQ's quorum
//! queues) is what a burst of payments waits on. When the database does not answer, the
//! deliveries are held and tried again (`Handled::Unavailable`): an outage pauses the consumer
//! instead of spending every message's delivery limit.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{BusError, OnApplied, PayResults, Received};
use crate::server::amqp::{self, Handled, Rabbit};
use crate::server::domain::PayResult;
use crate::server::store::{self, Applied, Store};
use crate::server::support::BoxFuture;

/// Batches applied at once: while they run, the next deliveries gather into the following batch.
const BATCHES_IN_FLIGHT: usize = 4;

pub struct AmqpBus {
    rabbit: Arc<Rabbit>,
    store: Store,
}

impl AmqpBus {
    pub fn new(rabbit: Arc<Rabbit>, store: Store) -> Self {
        AmqpBus { rabbit, store }
    }
}

impl PayResults for AmqpBus {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn publish<'a>(&'a self, result: &'a PayResult) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(result).expect("serializable");
            let names = self.rabbit.names();
            self.rabbit
                .publish(
                    &names.pay_exchange,
                    "pay_result",
                    &result.transaction_id,
                    &body,
                )
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Option<Result<u32, String>>> {
        Box::pin(async move { Some(self.rabbit.dead_letters().await.map_err(|e| e.to_string())) })
    }

    fn dead_letter_list(&self, limit: u32) -> BoxFuture<'_, Option<Result<Vec<String>, String>>> {
        Box::pin(async move {
            Some(
                self.rabbit
                    .dead_letter_bodies(limit)
                    .await
                    .map(|bodies| {
                        bodies
                            .iter()
                            .map(|b| String::from_utf8_lossy(&b[..b.len().min(2048)]).into_owned())
                            .collect()
                    })
                    .map_err(|e| e.to_string()),
            )
        })
    }

    fn requeue_dead_letters(&self, limit: u32) -> BoxFuture<'_, Option<Result<u32, String>>> {
        Box::pin(async move {
            Some(
                self.rabbit
                    .requeue_dead_letters(limit)
                    .await
                    .map_err(|e| e.to_string()),
            )
        })
    }

    fn consume(&self, on_applied: OnApplied, token: CancellationToken) -> BoxFuture<'static, ()> {
        let settings = self.rabbit.settings().clone();
        let queue = self.rabbit.names().pay_queue;
        let batcher = Batcher::start(
            self.store.clone(),
            BATCHES_IN_FLIGHT,
            settings.prefetch.into(),
            token.clone(),
        );
        Box::pin(async move {
            amqp::consume(settings, queue, token, move |body| {
                let (batcher, on_applied) = (batcher.clone(), on_applied.clone());
                async move { apply_message(&batcher, &on_applied, &body).await }
            })
            .await
        })
    }
}

/// One delivery: parsed, applied with whatever else is waiting, the hook told.
async fn apply_message(batcher: &Batcher, on_applied: &OnApplied, body: &[u8]) -> Handled {
    let result: PayResult = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return Handled::Poison(format!("not a pay result: {e}")),
    };
    match batcher.apply(result.clone()).await {
        Ok(Some(applied)) => {
            on_applied(Received {
                received_at_ms: result.received_at_ms,
                ..Received::new(&result.out_trade_no, &result.transaction_id, applied)
            })
            .await;
            Handled::Done
        }
        Ok(None) => Handled::Done, // applied before (a redelivery or a duplicate notify)
        Err(e) if store::is_unavailable(&e) => Handled::Unavailable(e.to_string()),
        Err(e) => Handled::Retry(e.to_string()),
    }
}

/// Hands the pay results that are waiting at the same moment to `Store::receive_pay_results`
/// together, so the engine commits them as one. Nothing waits for a batch to fill: a batch is
/// whatever arrived while the ones before it ran.
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::UnboundedSender<Job>,
}

type Answer = Result<Option<Applied>, sqlx::Error>;

struct Job {
    result: PayResult,
    done: oneshot::Sender<Answer>,
}

impl Batcher {
    /// Applies batches of up to `max` pay results, `in_flight` at a time, until every handle to
    /// the batcher is dropped or `token` is cancelled (then no new batch starts: what was
    /// waiting is answered as abandoned, and its deliveries go back to the queue).
    pub fn start(store: Store, in_flight: usize, max: usize, token: CancellationToken) -> Batcher {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    job = queue.recv() => match job {
                        Some(job) => job,
                        None => return,
                    },
                    _ = token.cancelled() => return,
                };
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                if token.is_cancelled() {
                    return;
                }
                // Everything that arrived while waiting for a slot goes in with it.
                let mut batch = vec![first];
                while batch.len() < max.max(1) {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                tokio::spawn(async move {
                    let (results, answers): (Vec<_>, Vec<_>) =
                        batch.into_iter().map(|j| (j.result, j.done)).unzip();
                    let applied = store.receive_pay_results(&results).await;
                    drop(slot);
                    for (a, answer) in applied.into_iter().zip(answers) {
                        let _ = answer.send(a);
                    }
                });
            }
        });
        Batcher { jobs }
    }

    /// Applies one pay result with whichever others are waiting; what came of it.
    pub async fn apply(&self, result: PayResult) -> Answer {
        // An abandoned batch (stopped, or its task panicked) is not a database outage: the
        // delivery is retried (and dead-lettered at its limit), never held for ever.
        let abandoned = || sqlx::Error::Configuration("the pay-result batch was abandoned".into());
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { result, done })
            .map_err(|_| abandoned())?;
        answer.await.unwrap_or_else(|_| Err(abandoned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::domain::{NewItem, NewOrder, PaidOutcome};
    use crate::server::store::testing::TestDb;
    use crate::server::support::clock::now_ms;

    /// Pay results handed over at once come back each with its own outcome, whichever batch
    /// they were applied in (PostgreSQL: the one-statement path; a wrong amount on its own).
    #[tokio::test]
    async fn every_pay_result_gets_its_own_outcome() {
        let db = TestDb::new("postgres").await;
        let store = crate::server::store::connect(&db.url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut results = Vec::new();
        for i in 0..24 {
            let order = NewOrder {
                id: format!("B{i:02}"),
                session_id: "s".into(),
                created_at: now_ms(),
                deadline_at: now_ms() + 900_000,
                first_check_at: now_ms(),
                max_open: 100,
                items: vec![NewItem {
                    sku: "PIN-PANDA".into(),
                    qty: 1,
                }],
            };
            let fee = store.create_order(&order, "Shop").await.unwrap().total_fee;
            results.push(PayResult {
                out_trade_no: order.id,
                transaction_id: format!("42000009{i:02}"),
                // Every fifth one another amount: an anomaly amid the payments.
                total_fee: if i % 5 == 0 { fee + 1 } else { fee },
                time_end: "20261127120000".into(),
                paid_at_ms: 1,
                received_at_ms: None,
            });
        }
        let batcher = Batcher::start(store.clone(), 2, 8, CancellationToken::new());
        let outcomes =
            futures::future::join_all(results.iter().map(|n| batcher.apply(n.clone()))).await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let expected = if i % 5 == 0 {
                PaidOutcome::Anomaly("amount_mismatch")
            } else {
                PaidOutcome::Paid
            };
            assert_eq!(
                outcome.unwrap().map(|a| a.outcome),
                Some(expected),
                "B{i:02}"
            );
        }
        // Again: every one of them applied before.
        let again =
            futures::future::join_all(results.iter().map(|n| batcher.apply(n.clone()))).await;
        assert!(again.iter().all(|o| matches!(o, Ok(None))));
        drop(batcher);
        store.close_pool().await;
        db.remove().await;
    }
}
