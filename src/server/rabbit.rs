//! RabbitMQ (lapin, `SCANPAY_AMQP_URL`): the pay-result queue and the timeout delay queues.
//!
//! Topology (every name starts with `SCANPAY_AMQP_PREFIX`, `scanpay` unless set; declared at
//! start-up and again after every reconnect):
//!
//! ```text
//! notify ──► {p}.pay (direct) ──pay_result──► {p}.pay_results (quorum, delivery limit 5) ──► consumers
//!                                                    │ past the limit / unreadable
//!                                                    ▼
//!                                 {p}.dead (fanout) ──► {p}.dead_letters (quorum; operators read it)
//! place ──► {p}.delay.<N>s (quorum, x-message-ttl N s, at-least-once dead-lettering)
//!              │ after N s
//!              ▼
//!           {p}.timeouts (direct) ──timeout──► {p}.timeouts (quorum, delivery limit 5) ──► close flow
//! ```
//!
//! A delay queue holds messages of one delay length only: a per-queue TTL expires in order, where
//! per-message TTLs would wait behind the head (measured; see docs/ARCHITECTURE.md).
//! Publishing is `mandatory` + persistent with publisher confirms; only `Ack` with nothing returned
//! counts, within `SCANPAY_AMQP_PUBLISH_TIMEOUT`. Consumers ack after the SQL commit.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

use crate::server::workers::Stop;

/// Deliveries of one message before it is dead-lettered.
pub const DELIVERY_LIMIT: i64 = 5;

#[derive(Debug, Clone)]
pub struct RabbitSettings {
    pub url: String,
    pub prefix: String,
    /// Unacked deliveries per consumer, handled concurrently.
    pub prefetch: u16,
    /// Longest wait for a publish and its confirm.
    pub publish_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("SCANPAY_AMQP_URL={url}: cannot connect: {why}")]
    Connect { url: String, why: String },
    #[error("RabbitMQ: {0}")]
    Broker(String),
    #[error("RabbitMQ returned the message as unroutable ({0}): the topology is missing")]
    Unroutable(String),
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ is unreachable; retrying in the background")]
    Down,
}

impl From<lapin::Error> for RabbitError {
    fn from(e: lapin::Error) -> Self {
        RabbitError::Broker(e.to_string())
    }
}

struct Publisher {
    _conn: Connection,
    channel: Channel,
}

/// A supervised connection for publishing (consumers open their own, see `consume`).
pub struct Rabbit {
    settings: RabbitSettings,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    /// After a failed connect, publishes fail at once until this instant (no reconnect storm).
    retry_at: StdMutex<Option<(Instant, Duration)>>,
    up: AtomicBool,
    /// Delay queues this process declared (by seconds): re-declared after a reconnect.
    delays: StdMutex<HashSet<u64>>,
}

/// The names of the topology under one prefix.
pub struct Names {
    pub pay_exchange: String,
    pub pay_queue: String,
    pub timeout_exchange: String,
    pub timeout_queue: String,
    pub dead_exchange: String,
    pub dead_queue: String,
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            pay_exchange: format!("{prefix}.pay"),
            pay_queue: format!("{prefix}.pay_results"),
            timeout_exchange: format!("{prefix}.timeouts"),
            timeout_queue: format!("{prefix}.timeouts"),
            dead_exchange: format!("{prefix}.dead"),
            dead_queue: format!("{prefix}.dead_letters"),
            prefix: prefix.to_string(),
        }
    }
    pub fn delay_queue(&self, secs: u64) -> String {
        format!("{}.delay.{secs}s", self.prefix)
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Arguments of a quorum queue dead-lettering into `dlx`.
fn quorum(dlx: &str, routing_key: Option<&str>) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-queue-type".into(), text("quorum"));
    t.insert("x-dead-letter-exchange".into(), text(dlx));
    if let Some(rk) = routing_key {
        t.insert("x-dead-letter-routing-key".into(), text(rk));
    }
    t
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// Declares the exchanges, queues and bindings (idempotent; the same arguments every time).
async fn declare(ch: &Channel, n: &Names) -> Result<(), lapin::Error> {
    ch.exchange_declare(
        n.dead_exchange.as_str().into(),
        ExchangeKind::Fanout,
        durable_exchange(),
        FieldTable::default(),
    )
    .await?;
    let mut dead = FieldTable::default();
    dead.insert("x-queue-type".into(), text("quorum"));
    ch.queue_declare(n.dead_queue.as_str().into(), durable_queue(), dead)
        .await?;
    ch.queue_bind(
        n.dead_queue.as_str().into(),
        n.dead_exchange.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    for (exchange, queue, key) in [
        (&n.pay_exchange, &n.pay_queue, "pay_result"),
        (&n.timeout_exchange, &n.timeout_queue, "timeout"),
    ] {
        ch.exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
        let mut args = quorum(&n.dead_exchange, None);
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        ch.queue_declare(queue.as_str().into(), durable_queue(), args)
            .await?;
        ch.queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

async fn declare_delay(ch: &Channel, n: &Names, secs: u64) -> Result<(), lapin::Error> {
    let mut args = quorum(&n.timeout_exchange, Some("timeout"));
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt((secs * 1000) as i64),
    );
    // A quorum queue re-publishes expired messages with confirms only this way.
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
    ch.queue_declare(n.delay_queue(secs).as_str().into(), durable_queue(), args)
        .await?;
    Ok(())
}

impl Rabbit {
    /// Connects and declares the topology; at start-up an unreachable broker is an error naming
    /// `SCANPAY_AMQP_URL`.
    pub async fn connect(settings: RabbitSettings) -> Result<Rabbit, RabbitError> {
        let rabbit = Rabbit {
            settings,
            publisher: tokio::sync::Mutex::new(None),
            retry_at: StdMutex::new(None),
            up: AtomicBool::new(false),
            delays: StdMutex::new(HashSet::new()),
        };
        let p = rabbit.open().await.map_err(|e| RabbitError::Connect {
            url: crate::server::store::redact(&rabbit.settings.url),
            why: e.to_string(),
        })?;
        *rabbit.publisher.lock().await = Some(p);
        rabbit.up.store(true, Ordering::Relaxed);
        Ok(rabbit)
    }

    pub fn names(&self) -> Names {
        Names::new(&self.settings.prefix)
    }

    pub fn settings(&self) -> &RabbitSettings {
        &self.settings
    }

    /// Whether the last publish or connect worked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    async fn open(&self) -> Result<Publisher, lapin::Error> {
        let conn = Connection::connect(&self.settings.url, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        let names = self.names();
        declare(&channel, &names).await?;
        let delays: Vec<u64> = self.delays.lock().unwrap().iter().copied().collect();
        for secs in delays {
            declare_delay(&channel, &names, secs).await?;
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            _conn: conn,
            channel,
        })
    }

    /// The publishing channel, reconnecting (with backoff) when the last one broke.
    async fn channel(&self) -> Result<Channel, RabbitError> {
        let mut guard = self.publisher.lock().await;
        if let Some(p) = guard.as_ref() {
            if p.channel.status().connected() {
                return Ok(p.channel.clone());
            }
            *guard = None;
        }
        if let Some((at, _)) = *self.retry_at.lock().unwrap() {
            if Instant::now() < at {
                return Err(RabbitError::Down);
            }
        }
        match tokio::time::timeout(self.settings.publish_timeout * 2, self.open()).await {
            Ok(Ok(p)) => {
                let ch = p.channel.clone();
                *guard = Some(p);
                *self.retry_at.lock().unwrap() = None;
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("RabbitMQ reachable again; topology declared");
                }
                Ok(ch)
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "connect timed out".into(),
                };
                let mut retry = self.retry_at.lock().unwrap();
                let wait = retry
                    .map(|(_, d)| (d * 2).min(Duration::from_secs(5)))
                    .unwrap_or(Duration::from_millis(250));
                *retry = Some((Instant::now() + wait, wait));
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %why, "RabbitMQ unreachable: notifies answer FAIL until it is back");
                }
                Err(RabbitError::Broker(why))
            }
        }
    }

    /// Forgets the publishing connection after a failure (the next publish reconnects). Never
    /// waits on the broker (a close on a dead connection may never be answered) nor behind a
    /// reconnect already under way.
    fn reset(&self) {
        if let Ok(mut guard) = self.publisher.try_lock() {
            // Dropping the last handle closes the connection in the background.
            guard.take();
        }
    }

    /// Publishes persistently and `mandatory`, and waits for the broker's confirm: `Ok` only for
    /// an ack with nothing returned.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), RabbitError> {
        let limit = self.settings.publish_timeout;
        let attempt = async {
            let ch = self.channel().await?;
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message_id.into());
            let confirm = ch
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    props,
                )
                .await?;
            match confirm.await? {
                Confirmation::Ack(None) => Ok(()),
                Confirmation::Ack(Some(ret)) => Err(RabbitError::Unroutable(format!(
                    "{} {}",
                    ret.reply_code, ret.reply_text
                ))),
                Confirmation::Nack(_) => Err(RabbitError::Nacked),
                Confirmation::NotRequested => Err(RabbitError::Broker("confirms are off".into())),
            }
        };
        let result = match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(RabbitError::Timeout(limit)),
        };
        match &result {
            Ok(()) | Err(RabbitError::Unroutable(_)) | Err(RabbitError::Down) => {}
            Err(_) => self.reset(),
        }
        result
    }

    /// Schedules `body` to reach the timeout queue after `delay` (rounded up to whole seconds,
    /// the granularity of the delay queues).
    pub async fn publish_delayed(
        &self,
        delay: Duration,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), RabbitError> {
        let secs = delay.as_millis().div_ceil(1000).max(1) as u64;
        let names = self.names();
        let known = self.delays.lock().unwrap().contains(&secs);
        if !known {
            let ch = self.channel().await?;
            declare_delay(&ch, &names, secs).await?;
            self.delays.lock().unwrap().insert(secs);
        }
        self.publish("", &names.delay_queue(secs), message_id, body)
            .await
    }

    /// Messages waiting in the dead-letter queue (for readiness and operators).
    pub async fn dead_letters(&self) -> Result<u32, RabbitError> {
        let ch = self.channel().await?;
        let q = ch
            .queue_declare(
                self.names().dead_queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(q.message_count())
    }

    /// The delay lengths (seconds) this process declared queues for.
    pub fn declared_delays(&self) -> Vec<u64> {
        self.delays.lock().unwrap().iter().copied().collect()
    }

    /// Deletes every queue and exchange under this prefix, with the delay queues this process
    /// declared and `more_delays` (tests clean up with it).
    pub async fn delete_topology(&self, more_delays: &[u64]) -> Result<(), RabbitError> {
        let ch = self.channel().await?;
        let n = self.names();
        let mut delays = self.declared_delays();
        delays.extend_from_slice(more_delays);
        delays.sort_unstable();
        delays.dedup();
        let mut queues = vec![
            n.pay_queue.clone(),
            n.timeout_queue.clone(),
            n.dead_queue.clone(),
        ];
        queues.extend(delays.iter().map(|s| n.delay_queue(*s)));
        for q in queues {
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for e in [&n.pay_exchange, &n.timeout_exchange, &n.dead_exchange] {
            ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}

/// What a handler made of one delivery.
pub enum Handled {
    /// Done (committed, or nothing to do): ack.
    Done,
    /// Failed this time: back to the queue (counted toward the delivery limit).
    Retry(String),
    /// Can never succeed (unreadable): straight to the dead letters.
    Poison(String),
}

/// The deliveries of one channel that are not settled yet, by tag. Payments finish out of order;
/// an applied one waits here until every earlier delivery is applied (or rejected on its own),
/// then one `multiple` ack settles them all: one frame, and one settle command in the quorum
/// queue's log, for many messages. Under light load that is an ack per message, as before.
#[derive(Default)]
struct Unsettled {
    /// Tag → applied (ackable).
    tags: std::collections::BTreeMap<u64, bool>,
}

impl Unsettled {
    fn received(&mut self, tag: u64) {
        self.tags.insert(tag, false);
    }

    /// `tag` is applied (`ack`) or was rejected on its own (`!ack`). Returns the tag to ack with
    /// `multiple` when the oldest deliveries are now all applied.
    fn settled(&mut self, tag: u64, ack: bool) -> Option<u64> {
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

/// Consumes `queue` until stopped, `prefetch` deliveries at a time, on its own connection;
/// reconnects with backoff (250 ms doubling to 5 s) whenever the connection or channel breaks.
/// `handle` runs once per delivery; the ack follows its `Done`.
pub async fn consume<F, Fut>(settings: RabbitSettings, queue: String, mut stop: Stop, handle: F)
where
    F: Fn(Vec<u8>) -> Fut + Clone,
    Fut: std::future::Future<Output = Handled>,
{
    let mut backoff = Duration::from_millis(250);
    loop {
        let session = async {
            let conn = Connection::connect(&settings.url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            declare(&ch, &Names::new(&settings.prefix)).await?;
            ch.basic_qos(settings.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            tracing::info!(%queue, prefetch = settings.prefetch, "consuming");
            let handle = handle.clone();
            let queue = &queue;
            let window = std::sync::Arc::new(StdMutex::new(Unsettled::default()));
            let ch = &ch;
            let work = consumer
                .for_each_concurrent(settings.prefetch as usize, |delivery| {
                    let handle = handle.clone();
                    let window = window.clone();
                    // Before any later delivery can be settled (see `Unsettled`).
                    if let Ok(d) = &delivery {
                        window.lock().unwrap().received(d.delivery_tag);
                    }
                    async move {
                        let Ok(d) = delivery else { return };
                        let count = delivery_count(&d);
                        let tag = d.delivery_tag;
                        let outcome = handle(d.data.clone()).await;
                        let answer = async {
                            let reject = match outcome {
                                Handled::Done => None,
                                Handled::Retry(why) => {
                                    if count + 1 >= DELIVERY_LIMIT {
                                        tracing::error!(%queue, deliveries = count + 1, error = %why,
                                            "message failed at its delivery limit: dead-lettered for an operator");
                                    } else {
                                        tracing::warn!(%queue, deliveries = count + 1, error = %why, "message failed; redelivering");
                                    }
                                    Some(true)
                                }
                                Handled::Poison(why) => {
                                    tracing::error!(%queue, error = %why, "unreadable message dead-lettered");
                                    Some(false)
                                }
                            };
                            if let Some(requeue) = reject {
                                d.reject(BasicRejectOptions { requeue }).await?;
                            }
                            // No await between settling in the window and sending the ack, so
                            // the acks leave in the order of their tags.
                            let upto = window.lock().unwrap().settled(tag, reject.is_none());
                            match upto {
                                Some(upto) => ch.basic_ack(upto, BasicAckOptions { multiple: true }).await.map(|()| true),
                                None => Ok(true),
                            }
                        };
                        // An ack on a connection that just died may never complete.
                        let sent = tokio::time::timeout(Duration::from_secs(5), answer)
                            .await
                            .unwrap_or(Ok(false));
                        if !matches!(sent, Ok(true)) {
                            // The channel broke before the ack went out: the broker redelivers it.
                            tracing::warn!(%queue, "ack not sent; the message will be redelivered");
                        }
                    }
                });
            // A cut connection does not always end the delivery stream: watch it, and start over
            // when it is gone (unacked deliveries go back to the queue for another consumer).
            let watchdog = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if !conn.status().connected() || !ch.status().connected() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = work => {}
                _ = watchdog => {}
            }
            Ok::<_, lapin::Error>(conn)
        };
        let result = tokio::select! {
            r = session => r,
            _ = stop.stopped() => return,
        };
        match result {
            Ok(_) => {
                tracing::warn!(%queue, "RabbitMQ consumer lost its connection; reconnecting");
                backoff = Duration::from_millis(250); // it was working: start the backoff over
            }
            Err(e) => tracing::warn!(%queue, error = %e, retry_in_ms = backoff.as_millis() as u64,
                "RabbitMQ consumer disconnected; reconnecting"),
        }
        if stop.sleep(backoff).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::Unsettled;

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
}
