//! Connecting to the database and the transaction helpers every engine shares.

use std::future::Future;
use std::time::Duration;

use super::mysql::MySqlStore;
use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{Engine, Store};
use crate::server::support::redact::redact;

/// Connection settings (`SCANPAY_DATABASE_MAX_CONNECTIONS`, `SCANPAY_DATABASE_TIMEOUT`,
/// `SCANPAY_DATABASE_STARTUP_WAIT`).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Longest wait for a connection.
    pub acquire_timeout: Duration,
    /// How long start-up keeps trying while the database server is not answering yet.
    pub startup_wait: Duration,
    /// Longest a statement may run before the server cancels it (zero: no limit), set on every
    /// connection: PostgreSQL `statement_timeout`; MariaDB `max_statement_time`; MySQL
    /// `max_execution_time` (which only bounds SELECTs). SQLite has no such limit. Migrations
    /// run without it.
    pub statement_timeout: Duration,
    /// Longest a statement waits for a lock another transaction holds before it fails (zero: no
    /// limit), set on every connection: PostgreSQL `lock_timeout`; MySQL/MariaDB
    /// `innodb_lock_wait_timeout` (whole seconds, rounded up); SQLite's busy timeout. Migrations
    /// run without it.
    pub lock_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            startup_wait: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SCANPAY_DATABASE_URL={url}: {why}")]
    Url { url: String, why: String },
    #[error("SCANPAY_DATABASE_URL={url}: cannot connect: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migrations failed: {0}")]
    Migrate(String),
}

/// Connects to the database `url` names: `sqlite://path`, `postgres://…`, `mysql://…` or
/// `mariadb://…`. While the server does not answer yet, start-up keeps trying (backing off from 250 ms to
/// 4 s) for `startup_wait`; a malformed URL or refused credentials fail at once.
pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Store, StoreError> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    loop {
        let attempt = match scheme.as_str() {
            "sqlite" => SqliteStore::connect(url, pool).await.map(Engine::Sqlite),
            "postgres" | "postgresql" => PgStore::connect(url, pool).await.map(Engine::Postgres),
            "mysql" | "mariadb" => MySqlStore::connect(url, pool).await.map(Engine::Mysql),
            _ => {
                return Err(StoreError::Url {
                    url: redact(url),
                    why: "the scheme must be sqlite:, postgres: or mysql: (mariadb:)".into(),
                })
            }
        };
        match attempt {
            Ok(engine) => return Ok(Store { engine }),
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut))
                if started.elapsed() + backoff < pool.startup_wait =>
            {
                tracing::warn!(url = %redact(url), error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "database not answering yet; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(4));
            }
            Err(sqlx::Error::Configuration(e)) => {
                return Err(StoreError::Url {
                    url: redact(url),
                    why: e.to_string(),
                })
            }
            Err(source) => {
                return Err(StoreError::Connect {
                    url: redact(url),
                    source,
                })
            }
        }
    }
}

/// Attempts of a transaction that keeps hitting deadlocks or serialization failures.
pub(crate) const RETRIES: u32 = 8;

/// A deadlock or serialization failure (SQLSTATE 40P01 / 40001; MySQL's deadlock 1213 reports
/// 40001): the transaction rolled back and may simply run again.
pub(crate) fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")))
}

/// Runs a transaction again while it fails with a retryable error.
pub(crate) async fn retrying<T, F, Fut>(f: F) -> Result<T, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if retryable(&e) && attempt < RETRIES => {
                tracing::info!(error = %e, attempt, "transaction retried");
                // A little random wait, so the transactions that collided do not collide again.
                let ms = 1 + rand::random::<u64>() % (10 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            other => return other,
        }
    }
}

// ---- statements over many orders

/// Most orders one statement names (`load_many`, `schedule_checks`, a claim's update): well
/// inside every engine's limit on bound parameters, and statements the server plans quickly.
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// `?, ?, …`: `n` parameters for an `IN (…)` list.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The database did not answer (connection refused or cut, the pool timed out or was closed, the
/// server shutting down or refusing connections): worth waiting for, unlike a bug or a refused
/// statement. The consumers pause on it instead of spending a message's deliveries.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception), 57P01-03 (admin shutdown, crash shutdown,
        // cannot connect now), 53300 (too many connections).
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Each id once, in the order given (a second mention adds nothing to a read).
pub(crate) fn distinct(ids: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .map(String::as_str)
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Each order once, with the last time given for it: what setting them one after another
/// would leave.
pub(crate) fn last_per_id(checks: &[(String, i64)]) -> Vec<(&str, i64)> {
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<(&str, i64)> = checks
        .iter()
        .rev()
        .filter(|(id, _)| seen.insert(id.as_str()))
        .map(|(id, at)| (id.as_str(), *at))
        .collect();
    last.reverse();
    last
}
