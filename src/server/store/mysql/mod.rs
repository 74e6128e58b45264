//! The MySQL / MariaDB store (`mysql://user:password@host:3306/database`; `mariadb://` too).
//! Its SQL lives in this folder, one file per concern, like the other engines'; what differs is
//! InnoDB's way: claims with `FOR UPDATE SKIP LOCKED` (MySQL 8, MariaDB 10.6+), a locking read of
//! the shopper's orders to serialise placing, `INSERT IGNORE` on unique keys, utf8mb4 throughout,
//! and transactions retried on deadlock (`store::retrying`).

mod inbox;
mod orders;
mod reads;
mod schedule;
mod timeline;

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::MySqlPool;

use super::{retryable, retrying, PoolSettings, RETRIES};

/// The migrations in `migrations/mysql/`, compiled into the binary by `sqlx::migrate!` (version
/// and description from each file name, a checksum of each file's text, so an edited migration is
/// refused instead of silently skipped). Without sqlx's own lock: `migrate` holds a named lock.
pub(super) static MIGRATOR: Migrator = Migrator {
    locking: false,
    ..sqlx::migrate!("migrations/mysql")
};

#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Self, sqlx::Error> {
        // sqlx reads `mysql:`; `mariadb:` names the same protocol.
        let url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_string(),
        };
        let options = MySqlConnectOptions::from_str(&url)?.charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(MySqlStore { pool })
    }

    /// Applies the migrations not yet applied, holding a named lock (`GET_LOCK`) on the connection
    /// that runs them: MySQL's DDL is not transactional, so a second process must wait, not start
    /// the same migration. (sqlx's own lock asks MariaDB for an infinite wait with -1, which
    /// MariaDB does not take as one.)
    pub async fn migrate(&self) -> Result<(), String> {
        let mut conn = self.pool.acquire().await.map_err(|e| e.to_string())?;
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('scanpay_migrations', 60)")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        if got != Some(1) {
            return Err("another process held the migration lock for 60 s".into());
        }
        let result = self.run_migrations(&mut conn).await;
        let _ = sqlx::query("SELECT RELEASE_LOCK('scanpay_migrations')")
            .execute(&mut *conn)
            .await;
        result
    }

    async fn run_migrations(&self, conn: &mut sqlx::MySqlConnection) -> Result<(), String> {
        // `MIGRATOR` does not lock: the named lock is held above.
        MIGRATOR.run_direct(conn).await.map_err(|e| e.to_string())
    }

    pub async fn close_pool(&self) {
        self.pool.close().await
    }

    /// The pool itself, for tests that reach around the store.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &MySqlPool {
        &self.pool
    }
}
