//! Deadlines through RabbitMQ's delay queues: placing an order publishes its deadline to the
//! queue of the longest fixed length that overshoots it by less than a second
//! (`amqp::topology::delay_for`; the configured order time is one of the lengths, so an order
//! usually takes one hop). When it expires into the timeout queue, the consumer either sends it
//! on for what is left (another hop, with two seconds or more to go) or waits out the rest and
//! runs the close: never early, at most a second late. The SQL poller runs
//! one reconciliation period behind as the safety net: a lost message only makes a close that
//! much later.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::sql::SqlDeadlines;
use super::{Deadlines, OnDue};
use crate::server::amqp::topology::delay_for;
use crate::server::amqp::{self, Handled, Rabbit};
use crate::server::store;
use crate::server::support::clock::now_ms;
use crate::server::support::BoxFuture;

/// The timeout message RabbitMQ carries.
#[derive(serde::Serialize, serde::Deserialize)]
struct Deadline {
    order_id: String,
    deadline_at: i64,
}

#[derive(Clone)]
pub struct AmqpDeadlines {
    rabbit: Arc<Rabbit>,
    order_ttl: Duration,
    net: SqlDeadlines,
}

impl AmqpDeadlines {
    /// `net` is the SQL poller, already set to look behind (see `SqlDeadlines::behind`).
    pub fn new(rabbit: Arc<Rabbit>, order_ttl: Duration, net: SqlDeadlines) -> Self {
        AmqpDeadlines {
            rabbit,
            order_ttl,
            net,
        }
    }

    /// Publishes the deadline for the next hop: the longest length that does not overshoot it
    /// (a second when less is left).
    async fn publish(&self, d: &Deadline) -> Result<(), amqp::RabbitError> {
        let secs = delay_for(d.deadline_at - now_ms(), self.order_ttl).unwrap_or(1);
        let body = serde_json::to_vec(d).expect("serializable");
        self.rabbit.publish_delayed(secs, &d.order_id, &body).await
    }

    async fn on_message(&self, on_due: &OnDue, body: &[u8]) -> Handled {
        let d: Deadline = match serde_json::from_slice(body) {
            Ok(d) => d,
            Err(e) => return Handled::Poison(format!("not a deadline: {e}")),
        };
        let left = d.deadline_at - now_ms();
        if left >= 2000 && delay_for(left, self.order_ttl).is_some() {
            // Seconds to go: on to the next delay queue.
            return match self.publish(&d).await {
                Ok(()) => Handled::Done,
                Err(e) => Handled::Retry(format!("next hop not published: {e}")),
            };
        }
        if left > 0 {
            // Never close before the deadline (clock skew between processes included); at most
            // two seconds are waited out here.
            tokio::time::sleep(Duration::from_millis(left as u64)).await;
        }
        match on_due(d.order_id.clone()).await {
            Ok(()) => Handled::Done,
            Err(e) if store::is_unavailable(&e) => Handled::Unavailable(e.to_string()),
            Err(e) => Handled::Retry(e.to_string()),
        }
    }
}

impl Deadlines for AmqpDeadlines {
    fn at(&self, order_id: String, deadline_at: i64) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let d = Deadline {
                order_id,
                deadline_at,
            };
            if let Err(e) = this.publish(&d).await {
                tracing::warn!(order_id = %d.order_id, error = %e,
                    "deadline not scheduled on RabbitMQ; the SQL safety net will close it");
            }
        })
    }

    fn run(&self, on_due: OnDue, token: CancellationToken) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let settings = this.rabbit.settings().clone();
            let queue = this.rabbit.names().timeout_queue;
            let consumer = {
                let (this, on_due) = (this.clone(), on_due.clone());
                amqp::consume(settings, queue, token.clone(), move |body| {
                    let (this, on_due) = (this.clone(), on_due.clone());
                    async move { this.on_message(&on_due, &body).await }
                })
            };
            tokio::join!(consumer, this.net.run(on_due, token.clone()));
        })
    }
}
