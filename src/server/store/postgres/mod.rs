//! The PostgreSQL store (`postgres://user:password@host:5432/database`). Its SQL lives in this
//! folder, one file per concern, like the other engines'; what differs is PostgreSQL's own way:
//! `$n` parameters, claims with `FOR UPDATE SKIP LOCKED`, an advisory lock per shopper session,
//! partial indexes on unfinished orders, and transactions retried on deadlock or serialization
//! failure (`store::retrying`).

mod inbox;
mod orders;
mod reads;
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
        let options = PgConnectOptions::from_str(url)?.application_name("scanpay");
        let pool = PgPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }

    /// Applies the migrations not yet applied, under the migrator's advisory lock, so processes
    /// starting together apply each once.
    pub async fn migrate(&self) -> Result<(), String> {
        MIGRATOR.run(&self.pool).await.map_err(|e| e.to_string())
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
