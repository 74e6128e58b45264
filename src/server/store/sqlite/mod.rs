//! The SQLite store: the embedded default (`sqlite://path`). Its SQL lives in this folder, one
//! file per concern: transitions (`orders`), timeline and anomalies, scheduling queries and
//! claims, read models, and the pay-result inbox.

mod console;
mod inbox;
mod orders;
mod reads;
mod recon;
mod refunds;
mod schedule;
mod timeline;

#[cfg(test)]
pub(crate) use schedule::claim_select;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use super::PoolSettings;

/// The migrations in `migrations/sqlite/`, compiled into the binary by `sqlx::migrate!` (version
/// and description from each file name, a checksum of each file's text, so an edited migration is
/// refused instead of silently skipped).
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            // WAL lets the status polls read while a payment commits.
            .journal_mode(SqliteJournalMode::Wal)
            // Waiting for another connection's write lock is SQLite's lock wait (there is no
            // statement timeout). Zero is no limit, as on the other engines: SQLite's longest
            // (a busy timeout is an i32 of milliseconds).
            .busy_timeout(
                match (pool.lock_timeout, Duration::from_millis(i32::MAX as u64)) {
                    (d, longest) if d.is_zero() => longest,
                    (d, longest) => d.min(longest),
                },
            );
        // Switching a new file to WAL needs it to itself for a moment: processes opening it at
        // the same time see "database is locked" (before the busy timeout applies) and try again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opened = SqlitePoolOptions::new()
                .max_connections(pool.max_connections)
                .acquire_timeout(pool.acquire_timeout)
                // The file is in this process: no connection to go stale between uses, so no
                // ping (a round trip to the connection's thread) before every query.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await;
            match opened {
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("5" | "6")) && attempt < 50 =>
                {
                    tokio::time::sleep(Duration::from_millis(20 * attempt.min(10))).await;
                }
                other => return other.map(|pool| SqliteStore { pool }),
            }
        }
    }

    /// Applies the migrations not yet applied. SQLite has no migration lock: of several processes
    /// starting at once, one applies each migration (its transaction holds the write lock) and
    /// the others fail, try again and find it done.
    pub async fn migrate(&self) -> Result<(), String> {
        let legacy: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        if legacy.is_some() {
            return Err(
                "this database was made by an earlier scanpay (schema_migrations table); \
                        start with a new database file"
                    .into(),
            );
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 => {
                    tracing::info!(error = %e, attempt, "migrations raced another process; trying again");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub async fn close_pool(&self) {
        self.pool.close().await
    }

    /// The pool itself, for tests that reach around the store.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn migrations() -> usize {
        MIGRATOR.iter().count()
    }
}
