//! The RabbitMQ topology (every name starts with `SCANPAY_AMQP_PREFIX`, `scanpay` unless set;
//! declared at start-up and again after every reconnect, always with the same arguments):
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
//! per-message TTLs would wait behind the head (measured; see docs/ARCHITECTURE.md). The lengths
//! are a fixed set plus the configured order time (`delay_lengths`), so the queues are few, known
//! in advance, and `purge-engines` removes every one of them.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::RabbitError;

/// Deliveries of one message before it is dead-lettered (the quorum queues' `x-delivery-limit`).
pub const DELIVERY_LIMIT: i64 = 5;

/// The delay lengths (seconds) besides the order time: a deadline is reached through the longest
/// of these that does not overshoot it, hop after hop (see `schedule::amqp_delay`).
const FIXED_DELAYS: [u64; 12] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

/// Every delay length in use with this order time, shortest first.
pub fn delay_lengths(order_ttl: Duration) -> Vec<u64> {
    let mut v = FIXED_DELAYS.to_vec();
    let ttl = order_ttl.as_secs();
    if ttl > 0 {
        v.push(ttl);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// The longest length that overshoots `remaining_ms` by less than a second (a deadline may be
/// acted on up to a second late, never early: the consumer waits out what is left), or None
/// when less than a second is left (the consumer waits that out itself).
pub fn delay_for(remaining_ms: i64, order_ttl: Duration) -> Option<u64> {
    if remaining_ms < 1000 {
        return None;
    }
    delay_lengths(order_ttl)
        .into_iter()
        .rev()
        .find(|s| (*s as i64) * 1000 < remaining_ms + 1000)
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
pub async fn declare(ch: &Channel, n: &Names) -> Result<(), lapin::Error> {
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

pub async fn declare_delay(ch: &Channel, n: &Names, secs: u64) -> Result<(), lapin::Error> {
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

/// Messages ready in `queue` (a passive declare: it never creates one).
pub async fn message_count(ch: &Channel, queue: &str) -> Result<u32, RabbitError> {
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// Deletes the fixed topology and the delay queues of `delays` seconds (deleting what is not
/// there is a no-op for RabbitMQ).
pub async fn delete(ch: &Channel, n: &Names, delays: &[u64]) -> Result<(), RabbitError> {
    let mut delays = delays.to_vec();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_use_few_known_lengths_and_are_never_early() {
        let ttl = Duration::from_secs(900);
        assert_eq!(
            delay_for(900_000, ttl),
            Some(900),
            "the order time: one hop"
        );
        assert_eq!(
            delay_for(899_400, ttl),
            Some(900),
            "published a moment after placing: still one hop, 0.6 s late at most"
        );
        assert_eq!(
            delay_for(898_000, ttl),
            Some(600),
            "then 298 s are left: 120, …"
        );
        assert_eq!(delay_for(8_000, ttl), Some(5));
        assert_eq!(
            delay_for(1_500, ttl),
            Some(2),
            "half a second late, never early"
        );
        assert_eq!(delay_for(999, ttl), None, "under a second: waited out");
        assert_eq!(delay_for(100_000_000, ttl), Some(7200));
        assert!(delay_lengths(ttl).len() <= 13);
        assert!(delay_lengths(Duration::from_secs(8)).contains(&8));
    }
}
