//! The consume loop both seams use: `prefetch` deliveries at a time on a connection of its own,
//! reconnecting with backoff whenever the connection or channel breaks, and settling every
//! delivery exactly once whatever its handler does.
//!
//! What a handler answers decides the delivery's fate:
//! - `Done`: acked (in a run with the earlier ones, see `Unsettled`);
//! - `Unavailable`: a dependency (the database) is down. The delivery is kept and handed to the
//!   handler again after a backoff, so an outage pauses consuming instead of spending the
//!   delivery limit in milliseconds and dead-lettering every pay result that arrives during it;
//! - `Retry`: this message failed. Rejected back to the queue after a wait that grows with its
//!   delivery count (0.5 s, 1 s, 2 s, 4 s, 8 s), so its deliveries span seconds, not a burst;
//! - `Poison`: it can never succeed (unreadable): dead-lettered at once.
//!
//! A handler that never returns is given up on after `HANDLER_TIMEOUT` (as `Retry`); a settle that
//! fails or times out closes the channel, so the broker requeues everything unsettled on it
//! rather than leaving later deliveries waiting behind a tag that will never be acked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

pub use super::topology::DELIVERY_LIMIT;
use super::topology::{declare, Names};
use super::RabbitSettings;
use crate::server::support::backoff::Backoff;

/// Longest a handler may take with one delivery.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for an ack or reject to go out.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a handler made of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Done (committed, or nothing to do): ack.
    Done,
    /// A dependency is down: keep the delivery and try it again after a backoff.
    Unavailable(String),
    /// Failed this time: back to the queue after a wait (counted toward the delivery limit).
    Retry(String),
    /// Can never succeed (unreadable): straight to the dead letters.
    Poison(String),
}

/// The deliveries of one channel that are not settled yet, by tag. Payments finish out of order;
/// an applied one waits here until every earlier delivery is applied (or rejected on its own),
/// then one `multiple` ack settles them all: one frame, and one settle command in the quorum
/// queue's log, for many messages. Under light load that is an ack per message.
#[derive(Default)]
pub(crate) struct Unsettled {
    /// Tag → applied (ackable).
    tags: std::collections::BTreeMap<u64, bool>,
}

impl Unsettled {
    pub(crate) fn received(&mut self, tag: u64) {
        self.tags.insert(tag, false);
    }

    /// `tag` is applied (`ack`) or was rejected on its own (`!ack`). Returns the tag to ack with
    /// `multiple` when the oldest deliveries are now all applied.
    pub(crate) fn settled(&mut self, tag: u64, ack: bool) -> Option<u64> {
        if ack {
            self.tags.insert(tag, true);
        } else {
            self.tags.remove(&tag);
        }
        let mut upto = None;
        while let Some((&t, true)) = self.tags.first_key_value() {
            self.tags.pop_first();
            upto = Some(t);
        }
        upto
    }
}

/// Watches one delivery until it is settled. Dropped unsettled (its handler cancelled or
/// panicked, its reject lost), it marks the channel broken: the session closes it, the broker
/// requeues what was unsettled, and no later delivery waits behind a tag that will never be acked.
struct WindowGuard {
    window: Arc<Mutex<Unsettled>>,
    tag: u64,
    armed: bool,
    broken: CancellationToken,
}

impl Drop for WindowGuard {
    fn drop(&mut self) {
        if self.armed {
            self.broken.cancel();
        }
    }
}

/// How many times this message was delivered before (quorum queues count them).
fn delivery_count(d: &Delivery) -> i64 {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(n),
            AMQPValue::LongInt(n) => Some(n as i64),
            AMQPValue::LongUInt(n) => Some(n as i64),
            AMQPValue::ShortInt(n) => Some(n as i64),
            _ => None,
        })
        .unwrap_or(0)
}

/// Runs `handle` on one delivery until it gives a definite answer (pausing while it says a
/// dependency is down), then settles it. False when the settle could not be sent.
async fn handle_one<F, Fut>(
    d: Delivery,
    handle: &F,
    guard: &mut WindowGuard,
    ch: &Channel,
    queue: &str,
    token: &CancellationToken,
) -> bool
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    let count = delivery_count(&d);
    if count > 0 || d.redelivered {
        // Delivered before (a consumer failed with it, or its channel closed unsettled).
        metrics::counter!("scanpay_amqp_redelivered_total", "queue" => queue.to_string())
            .increment(1);
    }
    let mut pause = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    let outcome = loop {
        let outcome = match tokio::time::timeout(HANDLER_TIMEOUT, handle(d.data.clone())).await {
            Ok(o) => o,
            Err(_) => Handled::Retry(format!("handler gave no answer within {HANDLER_TIMEOUT:?}")),
        };
        match outcome {
            Handled::Unavailable(why) => {
                let wait = pause.next_wait();
                tracing::warn!(%queue, error = %why, retry_in_ms = wait.as_millis() as u64,
                    "a dependency is down: holding the message and trying again");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    // Unsettled, it goes back to the queue when the channel closes.
                    _ = token.cancelled() => return true,
                }
            }
            other => break other,
        }
    };
    let reject = match outcome {
        Handled::Done => None,
        Handled::Retry(why) => {
            // Quorum queues dead-letter a message rejected when it has been delivered more than
            // DELIVERY_LIMIT times before: this is its last delivery.
            if count >= DELIVERY_LIMIT {
                tracing::error!(%queue, deliveries = count + 1, error = %why,
                    "message failed at its delivery limit: dead-lettered for an operator");
            } else {
                let wait = Backoff::nth(
                    Duration::from_millis(500),
                    Duration::from_secs(10),
                    count as u32,
                );
                tracing::warn!(%queue, deliveries = count + 1, error = %why,
                    redeliver_in_ms = wait.as_millis() as u64, "message failed; redelivering");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.cancelled() => return true,
                }
            }
            Some(true)
        }
        Handled::Poison(why) => {
            tracing::error!(%queue, error = %why, "unreadable message dead-lettered");
            Some(false)
        }
        Handled::Unavailable(_) => unreachable!("handled above"),
    };
    let settle = async {
        if let Some(requeue) = reject {
            d.reject(BasicRejectOptions { requeue }).await?;
        }
        // No await between settling in the window and sending the ack, so the acks leave in the
        // order of their tags.
        guard.armed = false;
        let upto = guard
            .window
            .lock()
            .unwrap()
            .settled(guard.tag, reject.is_none());
        if let Some(upto) = upto {
            ch.basic_ack(upto, BasicAckOptions { multiple: true })
                .await?;
        }
        Ok::<_, lapin::Error>(())
    };
    matches!(
        tokio::time::timeout(SETTLE_TIMEOUT, settle).await,
        Ok(Ok(()))
    )
}

/// Consumes `queue` until `token` is cancelled, `prefetch` deliveries at a time, on its own
/// connection; reconnects with backoff (250 ms doubling to 5 s) whenever the connection or
/// channel breaks. `handle` runs once per delivery (again while it answers `Unavailable`).
pub async fn consume<F, Fut>(
    settings: RabbitSettings,
    queue: String,
    token: CancellationToken,
    handle: F,
) where
    F: Fn(Vec<u8>) -> Fut + Clone,
    Fut: std::future::Future<Output = Handled>,
{
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        let session = async {
            let conn = Connection::connect(&settings.url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            declare(&ch, &Names::new(&settings.prefix)).await?;
            ch.basic_qos(settings.prefetch, BasicQosOptions::default())
                .await?;
            if token.is_cancelled() {
                // Stopped while connecting: take no deliveries only to hand them back.
                let _ =
                    tokio::time::timeout(SETTLE_TIMEOUT, conn.close(200, "stopping".into())).await;
                return Ok(None);
            }
            let consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            tracing::info!(%queue, prefetch = settings.prefetch, "consuming");
            let window = Arc::new(Mutex::new(Unsettled::default()));
            // Set when a settle failed: the channel is closed and the session starts over.
            let broken = CancellationToken::new();
            let (ch, queue, handle, token, broken_ref) = (&ch, &queue, &handle, &token, &broken);
            let work = consumer.for_each_concurrent(settings.prefetch as usize, |delivery| {
                let window = window.clone();
                // Before any later delivery can be settled (see `Unsettled`).
                let guard = delivery.as_ref().ok().map(|d| {
                    window.lock().unwrap().received(d.delivery_tag);
                    WindowGuard {
                        window: window.clone(),
                        tag: d.delivery_tag,
                        armed: true,
                        broken: broken_ref.clone(),
                    }
                });
                async move {
                    let (Ok(d), Some(mut guard)) = (delivery, guard) else {
                        return;
                    };
                    if !handle_one(d, handle, &mut guard, ch, queue, token).await {
                        tracing::warn!(%queue, "settle not sent; closing the channel so the broker redelivers");
                        broken_ref.cancel();
                    }
                }
            });
            // A cut connection does not always end the delivery stream: watch it, and start over
            // when it is gone (unacked deliveries go back to the queue for another consumer).
            let watchdog = async {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = broken.cancelled() => return,
                    }
                    if !conn.status().connected() || !ch.status().connected() {
                        return;
                    }
                }
            };
            let stopping = tokio::select! {
                biased;
                _ = token.cancelled() => true,
                _ = work => false,
                _ = watchdog => false,
            };
            if stopping {
                // Closed, not just dropped: a dropped connection can stay open with its consumer
                // registered, and the broker would go on handing it deliveries nobody settles
                // (until the process exits). Closed, what it held goes back to the queue now.
                let _ =
                    tokio::time::timeout(SETTLE_TIMEOUT, conn.close(200, "stopping".into())).await;
                return Ok(None);
            }
            if broken.is_cancelled() {
                let _ = tokio::time::timeout(SETTLE_TIMEOUT, ch.close(406, "settle failed".into()))
                    .await;
            }
            Ok::<_, lapin::Error>(Some(conn))
        };
        let mut session = std::pin::pin!(session);
        let result = tokio::select! {
            r = &mut session => Some(r),
            _ = token.cancelled() => None,
        };
        let result = match result {
            Some(r) => r,
            // The session sees the token too and closes what it opened: give it that long (it
            // may be stuck connecting, with nothing held yet).
            None => match tokio::time::timeout(SETTLE_TIMEOUT * 2, session).await {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        if token.is_cancelled() {
            return; // stopped (whatever the session's end said)
        }
        match result {
            Ok(None) => return,
            Ok(Some(_)) => {
                tracing::warn!(%queue, "RabbitMQ consumer lost its connection; reconnecting");
                backoff.reset(); // it was working: start the backoff over
            }
            Err(e) => {
                tracing::warn!(%queue, error = %e, "RabbitMQ consumer disconnected; reconnecting")
            }
        }
        let wait = backoff.next_wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = token.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(tags: &[u64]) -> Unsettled {
        let mut w = Unsettled::default();
        tags.iter().for_each(|t| w.received(*t));
        w
    }

    #[test]
    fn an_applied_delivery_is_acked_only_with_every_earlier_one() {
        let mut w = window(&[1, 2, 3, 4]);
        assert_eq!(w.settled(3, true), None, "1 and 2 are still being applied");
        assert_eq!(w.settled(1, true), Some(1));
        assert_eq!(
            w.settled(2, true),
            Some(3),
            "2 frees 3 too: one ack for both"
        );
        w.received(5);
        assert_eq!(w.settled(5, true), None, "4 is still being applied");
        assert_eq!(w.settled(4, true), Some(5));
        assert!(w.tags.is_empty());
    }

    #[test]
    fn a_rejected_delivery_leaves_the_window_and_frees_the_ones_after_it() {
        let mut w = window(&[7, 8, 9]);
        assert_eq!(w.settled(8, true), None);
        assert_eq!(w.settled(7, false), Some(8), "7 was rejected on its own");
        assert_eq!(w.settled(9, false), None, "nothing left to ack");
        assert!(w.tags.is_empty());
    }

    #[test]
    fn a_delivery_dropped_unsettled_breaks_the_channel_and_a_settled_one_does_not() {
        let w = Arc::new(Mutex::new(window(&[1, 2])));
        let broken = CancellationToken::new();
        let guard = |tag| WindowGuard {
            window: w.clone(),
            tag,
            armed: true,
            broken: broken.clone(),
        };
        let mut settled = guard(2);
        settled.armed = false; // what handle_one does once its settle is on its way
        drop(settled);
        assert!(!broken.is_cancelled());
        drop(guard(1)); // its handler was cancelled, or its reject was lost
        assert!(
            broken.is_cancelled(),
            "the session closes the channel: 1 and 2 are redelivered"
        );
    }
}
