//! The PostgreSQL store (`postgres://user:password@host:5432/database`). Its SQL lives in this
//! folder, one file per concern, like the other engines'; what differs is PostgreSQL's own way:
//! `$n` parameters, claims with `FOR UPDATE SKIP LOCKED`, an advisory lock per shopper session,
//! partial indexes on unfinished orders, and transactions retried on deadlock or serialization
//! failure (`store::retrying`).

mod console;
mod inbox;
mod orders;
mod reads;
mod recon;
mod refunds;
mod schedule;
mod timeline;

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::{retryable, retrying, PoolSettings, RETRIES};

/// The migrations in `migrations/postgres/`, compiled into the binary by `sqlx::migrate!` (version
/// and description from each file name, a checksum of each file's text, so an edited migration is
/// refused instead of silently skipped).
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Self, sqlx::Error> {
        // Sent in the startup packet: each connection's defaults, which `RESET` returns to.
        let options = PgConnectOptions::from_str(url)?
            .application_name("scanpay")
            .options([
                ("statement_timeout", millis(pool.statement_timeout)),
                ("lock_timeout", millis(pool.lock_timeout)),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }

    /// Applies the migrations not yet applied, under the migrator's advisory lock, so processes
    /// starting together apply each once. Without the statement and lock timeouts: a migration
    /// may take long, and waiting for the process that holds the lock is the point. The
    /// connection is closed afterwards rather than returned to the pool with them lifted.
    pub async fn migrate(&self) -> Result<(), String> {
        use sqlx::Connection;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| e.to_string())?
            .detach();
        let result = async {
            sqlx::query("SET statement_timeout = 0")
                .execute(&mut conn)
                .await?;
            sqlx::query("SET lock_timeout = 0")
                .execute(&mut conn)
                .await?;
            MIGRATOR.run_direct(&mut conn).await?;
            Ok::<_, sqlx::migrate::MigrateError>(())
        }
        .await;
        let _ = conn.close().await;
        result.map_err(|e| e.to_string())
    }

    pub async fn close_pool(&self) {
        self.pool.close().await
    }

    /// The pool itself, for tests that reach around the store.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A duration as PostgreSQL reads a time setting (`0ms` is no limit).
fn millis(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis())
}
