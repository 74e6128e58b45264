//! The MySQL / MariaDB store (`mysql://user:password@host:3306/database`; `mariadb://` too).
//! Its SQL lives in this folder, one file per concern, like the other engines'; what differs is
//! InnoDB's way: claims with `FOR UPDATE SKIP LOCKED` (MySQL 8, MariaDB 10.6+), a named lock per
//! shopper session (`GET_LOCK`, released even when the placing is cancelled: see
//! `session_lock.rs`) to serialise placing, `INSERT IGNORE` on unique keys, utf8mb4 throughout,
//! and transactions retried on deadlock (`store::retrying`).

mod console;
mod inbox;
mod orders;
mod reads;
mod recon;
mod refunds;
mod schedule;
mod session_lock;
mod timeline;

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySqlConnection, MySqlPool};

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
        let limits = Limits::of(pool);
        let pool = MySqlPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .after_connect(move |conn, _| Box::pin(async move { limits.set(conn).await }))
            .connect_with(options)
            .await?;
        Ok(MySqlStore { pool })
    }

    /// Applies the migrations not yet applied, holding a named lock (`GET_LOCK`) on the connection
    /// that runs them: MySQL's DDL is not transactional, so a second process must wait, not start
    /// the same migration. (sqlx's own lock asks MariaDB for an infinite wait with -1, which
    /// MariaDB does not take as one.) Without the statement and lock timeouts (the server's
    /// global values apply, as they did before there were any): a migration may take long, and so
    /// may the wait for the lock. The connection is closed afterwards rather than returned to the
    /// pool with them lifted.
    pub async fn migrate(&self) -> Result<(), String> {
        use sqlx::Connection;
        let conn = self.pool.acquire().await.map_err(|e| e.to_string())?;
        let mut conn = conn.detach();
        let result = migrate_on(&mut conn).await;
        let _ = conn.close().await;
        result
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

/// Applies the migrations on `conn`, with its session limits lifted, under the named lock.
async fn migrate_on(conn: &mut MySqlConnection) -> Result<(), String> {
    Limits::lift(conn).await.map_err(|e| e.to_string())?;
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('scanpay_migrations', 60)")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if got != Some(1) {
        return Err("another process held the migration lock for 60 s".into());
    }
    // `MIGRATOR` does not lock: the named lock is held here.
    let result = MIGRATOR
        .run_direct(&mut *conn)
        .await
        .map_err(|e| e.to_string());
    let _ = sqlx::query("SELECT RELEASE_LOCK('scanpay_migrations')")
        .execute(&mut *conn)
        .await;
    result
}

/// The session limits every connection gets (`PoolSettings::statement_timeout` and
/// `lock_timeout`). Which statement limit exists depends on the server: MariaDB has
/// `max_statement_time` (seconds, any statement), MySQL `max_execution_time` (milliseconds,
/// SELECTs only); setting the other one is an error, so the server is asked which it is.
#[derive(Clone, Copy)]
struct Limits {
    /// `innodb_lock_wait_timeout`: whole seconds, at least 1.
    lock_wait_s: u64,
    statement_ms: u128,
}

impl Limits {
    fn of(pool: &PoolSettings) -> Limits {
        // InnoDB has no "no limit": its maximum (about 34 years) stands for it.
        const INNODB_MAX: u64 = 1_073_741_824;
        let lock = pool.lock_timeout;
        let lock_wait_s = if lock.is_zero() {
            INNODB_MAX
        } else {
            (lock.as_secs() + u64::from(lock.subsec_nanos() > 0)).clamp(1, INNODB_MAX)
        };
        Limits {
            lock_wait_s,
            statement_ms: pool.statement_timeout.as_millis(),
        }
    }

    async fn set(self, conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
        let statement = if is_mariadb(conn).await? {
            let ms = self.statement_ms;
            format!("max_statement_time = {}.{:03}", ms / 1000, ms % 1000)
        } else {
            format!("max_execution_time = {}", self.statement_ms)
        };
        let set = format!(
            "SET SESSION innodb_lock_wait_timeout = {}, {statement}",
            self.lock_wait_s
        );
        sqlx::query(&set).execute(conn).await.map(|_| ())
    }

    /// Back to the server's global values for this session.
    async fn lift(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
        let statement = if is_mariadb(conn).await? {
            "max_statement_time"
        } else {
            "max_execution_time"
        };
        let set = format!("SET SESSION innodb_lock_wait_timeout = DEFAULT, {statement} = DEFAULT");
        sqlx::query(&set).execute(conn).await.map(|_| ())
    }
}

async fn is_mariadb(conn: &mut MySqlConnection) -> Result<bool, sqlx::Error> {
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(conn)
        .await?;
    Ok(version.contains("MariaDB"))
}
