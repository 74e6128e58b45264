//! The PostgreSQL store (`postgres://user:password@host:5432/database`). Its SQL lives in this
//! folder, one file per concern, like the other engines'; what differs is PostgreSQL's own way:
//! `$n` parameters, claims with `FOR UPDATE SKIP LOCKED`, an advisory lock per shopper session,
//! partial indexes on unfinished orders, and transactions retried on deadlock or serialization
//! failure.

mod inbox;
mod orders;
mod reads;
mod schedule;
mod timeline;

use std::borrow::Cow;
use std::future::Future;
use std::str::FromStr;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::PoolSettings;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "seed catalogue",
        include_str!("../../../../migrations/postgres/0002_seed_catalogue.sql"),
    ),
];

/// Attempts of a transaction that keeps hitting deadlocks or serialization failures.
const RETRIES: u32 = 5;

/// A deadlock (40P01) or serialization failure (40001): the transaction rolled back and may simply
/// run again.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")))
}

/// Runs a transaction again while it fails with a retryable error.
async fn retrying<T, F, Fut>(f: F) -> Result<T, sqlx::Error>
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
            }
            other => return other,
        }
    }
}

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
        let migrator = Migrator {
            migrations: Cow::Owned(
                MIGRATIONS
                    .iter()
                    .map(|&(version, name, sql)| {
                        Migration::new(
                            version,
                            Cow::Borrowed(name),
                            MigrationType::Simple,
                            Cow::Borrowed(sql),
                            false,
                        )
                    })
                    .collect(),
            ),
            ..Migrator::DEFAULT
        };
        migrator.run(&self.pool).await.map_err(|e| e.to_string())
    }

    pub async fn close_pool(&self) {
        self.pool.close().await
    }
}
