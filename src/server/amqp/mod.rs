//! RabbitMQ (lapin, `SCANPAY_AMQP_URL`): one supervised publishing connection, the topology both
//! seams use (`topology`), and the consume loop (`consume`). The pay-result bus (`bus::amqp`) and
//! the deadline delay queues (`schedule::amqp_delay`) are built on it; nothing else talks AMQP.
//!
//! Publishing is `mandatory` + persistent with publisher confirms; only `Ack` with nothing
//! returned counts, within `SCANPAY_AMQP_PUBLISH_TIMEOUT`. A broker that is away at start-up or
//! later is reconnected in the background (with backoff): publishes fail fast meanwhile, so a
//! notify answers FAIL and WeChat retries; only a malformed URL or refused credentials stop
//! start-up.

pub mod consume;
pub mod topology;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::server::support::backoff::Backoff;
use crate::server::support::redact::redact;
pub use consume::{consume, Handled, DELIVERY_LIMIT};
pub use topology::Names;

#[derive(Clone)]
pub struct RabbitSettings {
    pub url: String,
    pub prefix: String,
    /// Unacked deliveries per consumer, handled concurrently.
    pub prefetch: u16,
    /// Longest wait for a publish and its confirm.
    pub publish_timeout: Duration,
}

/// The URL's password never reaches a log through `{:?}`.
impl std::fmt::Debug for RabbitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSettings")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("publish_timeout", &self.publish_timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("SCANPAY_AMQP_URL={url}: {why}")]
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

/// Whether a failed connect is one no retry can fix (refused credentials, no such vhost): start-up
/// stops on it, where a broker that is merely away is waited for in the background.
fn is_refusal(why: &str) -> bool {
    let w = why.to_ascii_uppercase();
    w.contains("ACCESS_REFUSED") || w.contains("NOT_ALLOWED") || w.contains("403")
}

struct Publisher {
    _conn: Connection,
    channel: Channel,
}

/// The publishing connection (consumers open their own, see `consume`).
pub struct Rabbit {
    settings: RabbitSettings,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    /// After a failed connect, publishes fail at once until this instant (no reconnect storm).
    retry_at: StdMutex<(Option<Instant>, Backoff)>,
    up: AtomicBool,
    /// Delay queues this process declared (by seconds): re-declared after a reconnect.
    delays: StdMutex<HashSet<u64>>,
}

impl Rabbit {
    /// Checks the URL and tries to connect once. A broker that does not answer is not an error:
    /// the process starts degraded (said in the log and `/readyz`) and connects in the background.
    /// A malformed URL or refused credentials are, naming `SCANPAY_AMQP_URL`.
    pub async fn connect(settings: RabbitSettings) -> Result<Rabbit, RabbitError> {
        let shown = redact(&settings.url);
        let named = |why: String| RabbitError::Connect {
            url: shown.clone(),
            why,
        };
        settings
            .url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|e| named(format!("not an amqp:// URL: {e}")))?;
        let rabbit = Rabbit {
            publisher: tokio::sync::Mutex::new(None),
            retry_at: StdMutex::new((
                None,
                Backoff::new(Duration::from_millis(250), Duration::from_secs(5)),
            )),
            up: AtomicBool::new(false),
            delays: StdMutex::new(HashSet::new()),
            settings,
        };
        let first = tokio::time::timeout(rabbit.settings.publish_timeout * 2, rabbit.open()).await;
        match first {
            Ok(Ok(p)) => {
                *rabbit.publisher.lock().await = Some(p);
                rabbit.up.store(true, Ordering::Relaxed);
            }
            Ok(Err(e)) if is_refusal(&e.to_string()) => return Err(named(format!("refused: {e}"))),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "connect timed out".into(),
                };
                tracing::error!(url = %redact(&rabbit.settings.url), error = %why,
                    "SCANPAY_AMQP_URL: RabbitMQ unreachable at start-up; starting degraded \
                     (notifies answer FAIL until it is back) and connecting in the background");
                rabbit.note_failure();
            }
        }
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
        topology::declare(&channel, &names).await?;
        let delays: Vec<u64> = self.delays.lock().unwrap().iter().copied().collect();
        for secs in delays {
            topology::declare_delay(&channel, &names, secs).await?;
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            _conn: conn,
            channel,
        })
    }

    fn note_failure(&self) {
        let mut retry = self.retry_at.lock().unwrap();
        let wait = retry.1.next_wait();
        retry.0 = Some(Instant::now() + wait);
    }

    /// The publishing channel, reconnecting (with backoff) when the last one broke.
    pub(crate) async fn channel(&self) -> Result<Channel, RabbitError> {
        let mut guard = self.publisher.lock().await;
        if let Some(p) = guard.as_ref() {
            if p.channel.status().connected() {
                return Ok(p.channel.clone());
            }
            *guard = None;
        }
        if let (Some(at), _) = *self.retry_at.lock().unwrap() {
            if Instant::now() < at {
                return Err(RabbitError::Down);
            }
        }
        match tokio::time::timeout(self.settings.publish_timeout * 2, self.open()).await {
            Ok(Ok(p)) => {
                let ch = p.channel.clone();
                *guard = Some(p);
                {
                    let mut retry = self.retry_at.lock().unwrap();
                    retry.0 = None;
                    retry.1.reset();
                }
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
                self.note_failure();
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

    /// Publishes `body` to the delay queue of `secs` seconds (declared here first if this process
    /// has not yet): it reaches the timeout queue when that time is up.
    pub async fn publish_delayed(
        &self,
        secs: u64,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), RabbitError> {
        let names = self.names();
        let known = self.delays.lock().unwrap().contains(&secs);
        if !known {
            let ch = self.channel().await?;
            topology::declare_delay(&ch, &names, secs).await?;
            self.delays.lock().unwrap().insert(secs);
        }
        self.publish("", &names.delay_queue(secs), message_id, body)
            .await
    }

    /// Up to `limit` dead letters' bodies, for operators to read. A quorum queue counts every
    /// delivery (and drops a message past its limit), so each is not put back but published
    /// again at the tail: never lost, at worst listed twice if the connection drops between the
    /// publish and the ack.
    pub async fn dead_letter_bodies(&self, limit: u32) -> Result<Vec<Vec<u8>>, RabbitError> {
        let dead = self.names().dead_queue;
        self.move_dead_letters(limit, "", &dead).await
    }

    /// Moves up to `limit` dead letters back to the pay-result queue. The consumers' inbox makes
    /// one applied before harmless. How many were moved.
    pub async fn requeue_dead_letters(&self, limit: u32) -> Result<u32, RabbitError> {
        let names = self.names();
        let moved = self
            .move_dead_letters(limit, &names.pay_exchange, "pay_result")
            .await?;
        Ok(moved.len() as u32)
    }

    /// Takes up to `limit` dead letters (no more than were waiting when it began, so it never
    /// goes round the queue), publishes each to `exchange`/`routing_key` and acks it only once
    /// the broker confirmed the publish. Their bodies.
    async fn move_dead_letters(
        &self,
        limit: u32,
        exchange: &str,
        routing_key: &str,
    ) -> Result<Vec<Vec<u8>>, RabbitError> {
        let dead = self.names().dead_queue;
        let ch = self.channel().await?;
        let waiting = topology::message_count(&ch, &dead).await?;
        let mut moved = Vec::new();
        for _ in 0..waiting.min(limit) {
            let get = lapin::options::BasicGetOptions { no_ack: false };
            let Some(m) = ch.basic_get(dead.as_str().into(), get).await? else {
                break;
            };
            let d = m.delivery;
            let id = d
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            self.publish(exchange, routing_key, &id, &d.data).await?;
            d.ack(lapin::options::BasicAckOptions::default()).await?;
            moved.push(d.data);
        }
        Ok(moved)
    }

    /// Messages waiting in the dead-letter queue (for readiness and operators).
    pub async fn dead_letters(&self) -> Result<u32, RabbitError> {
        let ch = self.channel().await?;
        topology::message_count(&ch, &self.names().dead_queue).await
    }

    /// Deletes every queue and exchange under this prefix: the fixed topology, the delay queues
    /// of the fixed lengths, of `extra_delays` (seconds: the order time) and of any length this
    /// process declared (purge-engines, and tests cleaning up).
    pub async fn delete_topology(&self, extra_delays: &[u64]) -> Result<(), RabbitError> {
        let ch = self.channel().await?;
        let mut delays: Vec<u64> = self.delays.lock().unwrap().iter().copied().collect();
        delays.extend(topology::delay_lengths(Duration::ZERO));
        delays.extend_from_slice(extra_delays);
        topology::delete(&ch, &self.names(), &delays).await
    }
}
