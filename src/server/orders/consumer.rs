//! Flow 4, the pay-result consumer. Embedded bus: applies each inbox entry with the guarded paid transition and
//! marks the entry handled in the same commit, so a crash between the two cannot lose or repeat it.
//!
//! Marking the entry handled comes first in that transaction and is guarded: with several
//! consumers (threads or processes) on one database, exactly one applies each entry. An entry whose
//! application fails is backed off (`next_attempt_at`) and the others flow past it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::server::bus::{PayMessage, PayResultBus};
use crate::server::orders::state::PaidOutcome;
use crate::server::rabbit::{self, Handled};
use crate::server::store::{now_ms, Store};
use crate::server::workers::Stop;
use crate::server::wxpay::notify::PayNotify;

const BATCH: i64 = 100;

/// Runs until stopped. Embedded: drains the inbox whenever woken, and at least every second.
/// RabbitMQ: consumes the pay-result queue (`prefetch` at a time), acking after each commit.
pub async fn run(bus: PayResultBus, stop: Stop) {
    if let PayResultBus::Rabbit { rabbit, store } = &bus {
        let (settings, queue) = (rabbit.settings().clone(), rabbit.names().pay_queue);
        let batcher = Batcher::start(store.clone(), BATCHES_IN_FLIGHT, settings.prefetch.into());
        rabbit::consume(settings, queue, stop, move |body| {
            let batcher = batcher.clone();
            async move { apply_message(&batcher, &body).await }
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
pub async fn apply_message(batcher: &Batcher, body: &[u8]) -> Handled {
    let msg: PayMessage = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return Handled::Poison(format!("not a pay result: {e}")),
    };
    match batcher.apply(msg.notify()).await {
        Ok(Some(outcome)) => {
            tracing::info!(order_id = %msg.out_trade_no, outcome = outcome.as_str(), "pay result applied");
            Handled::Done
        }
        Ok(None) => Handled::Done, // applied before (a redelivery or a duplicate notify)
        Err(e) => Handled::Retry(e),
    }
}

/// Batches of pay results applied at once: at most this many at a time, so that while they run
/// the next deliveries gather into the following batch.
const BATCHES_IN_FLIGHT: usize = 4;

/// Hands the pay results that are waiting at the same moment to `Store::receive_pay_results`
/// together, so PostgreSQL commits them as one (one disk flush for the lot instead of one each).
/// Nothing waits for a batch to fill: a batch is whatever arrived while the ones before it ran.
#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::UnboundedSender<Job>,
}

struct Job {
    notify: PayNotify,
    done: oneshot::Sender<Result<Option<PaidOutcome>, String>>,
}

impl Batcher {
    /// Applies batches of up to `max` pay results, `in_flight` at a time, until every handle to
    /// the batcher is dropped.
    pub fn start(store: Store, in_flight: usize, max: usize) -> Batcher {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
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
                    let (notifies, answers): (Vec<_>, Vec<_>) =
                        batch.into_iter().map(|j| (j.notify, j.done)).unzip();
                    let results = store.receive_pay_results(&notifies).await;
                    drop(slot);
                    for (result, answer) in results.into_iter().zip(answers) {
                        let _ = answer.send(result.map_err(|e| e.to_string()));
                    }
                });
            }
        });
        Batcher { jobs }
    }

    /// Applies one pay result with whichever others are waiting; what came of it.
    pub async fn apply(&self, notify: PayNotify) -> Result<Option<PaidOutcome>, String> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { notify, done })
            .map_err(|_| "the pay-result batcher has stopped".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("the pay-result batch was abandoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::orders::state::{NewItem, NewOrder};
    use crate::server::store::testing::TestDb;

    /// Pay results handed over at once come back each with its own outcome, whichever batch
    /// they were applied in (PostgreSQL: the one-statement path; a wrong amount on its own).
    #[tokio::test]
    async fn every_pay_result_gets_its_own_outcome() {
        let db = TestDb::new("postgres").await;
        let store = crate::server::store::connect(&db.url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut notifies = Vec::new();
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
            notifies.push(PayNotify {
                out_trade_no: order.id,
                transaction_id: format!("42000009{i:02}"),
                // Every fifth one another amount: an anomaly amid the payments.
                total_fee: if i % 5 == 0 { fee + 1 } else { fee },
                time_end: "20261127120000".into(),
                paid_at_ms: 1,
                openid: None,
            });
        }
        let batcher = Batcher::start(store.clone(), 2, 8);
        let outcomes =
            futures::future::join_all(notifies.iter().map(|n| batcher.apply(n.clone()))).await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let expected = if i % 5 == 0 {
                PaidOutcome::Anomaly("amount_mismatch")
            } else {
                PaidOutcome::Paid
            };
            assert_eq!(outcome, Ok(Some(expected)), "B{i:02}");
        }
        // Again: every one of them applied before.
        let again =
            futures::future::join_all(notifies.iter().map(|n| batcher.apply(n.clone()))).await;
        assert!(again.iter().all(|o| *o == Ok(None)), "{again:?}");
        drop(batcher);
        store.close_pool().await;
        db.remove().await;
    }
}
