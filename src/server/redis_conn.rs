//! The Redis connection (`SCANPAY_REDIS_URL`) the status cache and the due index share: every
//! command under a deadline, outages noted once and recoveries counted, the connection replaced
//! when commands keep failing. A Redis that is away at start-up is not an error: the process
//! starts degraded (the log and `/readyz` say so) and its callers fall back to SQL until it
//! answers. Only a malformed URL or refused credentials stop start-up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::server::support::redact::redact;

/// Longest wait for one Redis command before falling back to SQL.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("SCANPAY_REDIS_URL={url}: {why}")]
    Connect { url: String, why: String },
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis is down (tried again at most once a second)")]
    Down,
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1))
}

/// Redis answered "no" to who we are (credentials, permissions): no retry fixes that. Anything
/// else — away, loading its data set, failing over, busy — is waited for.
fn refused(e: &::redis::RedisError) -> bool {
    e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOPERM" | "WRONGPASS" | "NOAUTH"))
        || e.to_string().contains("without any password configured")
}

pub struct RedisConn {
    client: ::redis::Client,
    /// Replaced by a fresh one when commands keep failing (see `run`).
    conn: Mutex<ConnectionManager>,
    /// When the connection was last replaced.
    replaced_at: Mutex<Instant>,
    /// While Redis is down, at most one call a second goes to it (the probe); the others fail at
    /// once, so an outage costs polls and commits nothing but a fallback to SQL.
    tried_at: Mutex<Instant>,
    prefix: String,
    up: AtomicBool,
    /// How many times Redis came back after an outage: each user repairs what it missed.
    recoveries: AtomicU64,
}

impl RedisConn {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisConn, RedisError> {
        let named = |why: String| RedisError::Connect {
            url: redact(url),
            why,
        };
        let client = ::redis::Client::open(url).map_err(|e| named(e.to_string()))?;
        let first = tokio::time::timeout(
            COMMAND_TIMEOUT * 4,
            ConnectionManager::new_with_config(client.clone(), manager_config()),
        )
        .await;
        let (conn, up) = match first {
            Ok(Ok(conn)) => (conn, true),
            // The server answered and refused us (credentials, database number): no retry fixes it.
            Ok(Err(e)) if refused(&e) => return Err(named(format!("refused: {e}"))),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "connect timed out".into(),
                };
                tracing::error!(url = %redact(url), error = %why,
                    "SCANPAY_REDIS_URL: Redis unreachable at start-up; starting degraded \
                     (polls and the sweep use SQL) and connecting in the background");
                let lazy =
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config())
                        .map_err(|e| named(e.to_string()))?;
                (lazy, false)
            }
        };
        let conn = RedisConn {
            client,
            conn: Mutex::new(conn),
            replaced_at: Mutex::new(Instant::now()),
            tried_at: Mutex::new(Instant::now() - Duration::from_secs(2)),
            prefix: prefix.to_string(),
            up: AtomicBool::new(up),
            recoveries: AtomicU64::new(0),
        };
        if up {
            // An answer to AUTH is not an answer to commands (ACLs): check once.
            if let Err(RedisError::Redis(e)) = conn.ping().await {
                if refused(&e) {
                    return Err(named(format!("refused: {e}")));
                }
            }
        }
        Ok(conn)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn key(&self, k: &str) -> String {
        format!("{}:{k}", self.prefix)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How many outages Redis has come back from in this process's life.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.lock().unwrap().clone()
    }

    /// A fresh connection after failures (at most once a second): the manager's own reconnects
    /// can give up for good after a long outage.
    async fn replace_connection(&self) {
        {
            let mut at = self.replaced_at.lock().unwrap();
            if at.elapsed() < Duration::from_secs(1) {
                return;
            }
            *at = Instant::now();
        }
        let fresh = tokio::time::timeout(
            COMMAND_TIMEOUT,
            ConnectionManager::new_with_config(self.client.clone(), manager_config()),
        )
        .await;
        if let Ok(Ok(conn)) = fresh {
            *self.conn.lock().unwrap() = conn;
        }
    }

    /// Runs one Redis call with a deadline, noting outages and recoveries.
    pub async fn run<T, F>(&self, f: F) -> Result<T, RedisError>
    where
        F: std::future::Future<Output = Result<T, ::redis::RedisError>>,
    {
        if !self.is_up() {
            let mut at = self.tried_at.lock().unwrap();
            if at.elapsed() < Duration::from_secs(1) {
                return Err(RedisError::Down);
            }
            *at = Instant::now();
        }
        let r = match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Redis(e)),
            Err(_) => Err(RedisError::Timeout(COMMAND_TIMEOUT)),
        };
        match &r {
            Ok(_) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    self.recoveries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("Redis answers again: polls and the sweep use it again");
                }
            }
            Err(e) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "Redis unreachable: polls and the sweep fall back to SQL");
                }
                self.replace_connection().await;
            }
        }
        r
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut c = self.conn();
        self.run(async move { ::redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    /// Deletes every key matching `pattern` (SCAN, never KEYS: no pause for the server); how
    /// many there were.
    pub async fn delete_matching(&self, pattern: &str) -> Result<usize, RedisError> {
        let mut cursor: u64 = 0;
        let mut n = 0;
        loop {
            let mut c = self.conn();
            let pattern = pattern.to_string();
            let (next, keys): (u64, Vec<String>) = self
                .run(async move {
                    ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                n += keys.len();
                let mut c = self.conn();
                self.run(async move { ::redis::AsyncCommands::del::<_, ()>(&mut c, keys).await })
                    .await?;
            }
            if next == 0 {
                return Ok(n);
            }
            cursor = next;
        }
    }

    /// Deletes every key under this prefix (purge-engines, tests cleaning up).
    pub async fn delete_all(&self) -> Result<usize, RedisError> {
        self.delete_matching(&format!("{}:*", self.prefix)).await
    }
}
