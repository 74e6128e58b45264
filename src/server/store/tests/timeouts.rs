//! The statement and lock timeouts every connection carries: a lock wait and a long statement
//! each give up with an error instead of hanging.

use std::time::Duration;

use crate::server::store::{Engine, PoolSettings};
use crate::server::support::clock::now_ms;

use super::{fresh, new_order, Holder};

/// A writer waiting for a lock another transaction holds gives up after `lock_timeout` with an
/// error instead of hanging (PostgreSQL `lock_timeout`, InnoDB's `innodb_lock_wait_timeout`,
/// SQLite's busy timeout), and the row is writable again once the holder lets go.
#[tokio::test]
async fn a_lock_wait_gives_up_after_lock_timeout() {
    let settings = PoolSettings {
        lock_timeout: Duration::from_secs(1),
        ..PoolSettings::default()
    };
    for engine in ["sqlite", "postgres", "mysql"] {
        let (db, store) = fresh(engine, &settings).await;
        store
            .create_order(&new_order("L1", "s1"), "Shop")
            .await
            .unwrap();
        // Another transaction holds the order's row (SQLite: the database's write lock).
        let holder = match &store.engine {
            Engine::Sqlite(s) => {
                let mut conn = s.pool().acquire().await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                Holder::Sqlite(conn)
            }
            Engine::Postgres(s) => {
                let mut tx = s.pool().begin().await.unwrap();
                sqlx::query("SELECT id FROM orders WHERE id = 'L1' FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Holder::Postgres(tx)
            }
            Engine::Mysql(s) => {
                let mut tx = s.pool().begin().await.unwrap();
                sqlx::query("SELECT id FROM orders WHERE id = 'L1' FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Holder::Mysql(tx)
            }
        };
        let started = std::time::Instant::now();
        let waited = tokio::time::timeout(
            Duration::from_secs(8),
            store.schedule_check("L1", now_ms() + 1000),
        )
        .await
        .unwrap_or_else(|_| panic!("{engine}: still waiting for the lock after 8 s"));
        let elapsed = started.elapsed();
        assert!(waited.is_err(), "{engine}: the waiting write succeeded");
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
            "{engine}: gave up after {elapsed:?}, lock_timeout is 1 s"
        );
        holder.release().await;
        store.schedule_check("L1", now_ms() + 1000).await.unwrap();
        store.close_pool().await;
        db.remove().await;
    }
}

/// A statement running longer than `statement_timeout` is cancelled by the server with an error
/// (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`, MySQL `max_execution_time`).
#[tokio::test]
async fn a_statement_gives_up_after_statement_timeout() {
    let settings = PoolSettings {
        statement_timeout: Duration::from_secs(1),
        ..PoolSettings::default()
    };
    for engine in ["postgres", "mysql"] {
        let (db, store) = fresh(engine, &settings).await;
        let started = std::time::Instant::now();
        let slow = async {
            match &store.engine {
                Engine::Postgres(s) => sqlx::query("SELECT pg_sleep(5)")
                    .execute(s.pool())
                    .await
                    .map(|_| ()),
                // MariaDB fails the statement; MySQL (whose limit bounds SELECTs only) ends it
                // early, and an interrupted SLEEP() returns 1 instead of 0.
                Engine::Mysql(s) => {
                    match sqlx::query_scalar::<_, i64>("SELECT SLEEP(5)")
                        .fetch_one(s.pool())
                        .await
                    {
                        Ok(1) => Err(sqlx::Error::Protocol("SLEEP() interrupted".into())),
                        other => other.map(|_| ()),
                    }
                }
                Engine::Sqlite(_) => unreachable!(),
            }
        };
        let ran = tokio::time::timeout(Duration::from_secs(20), slow)
            .await
            .unwrap_or_else(|_| panic!("{engine}: still running after 20 s"));
        let elapsed = started.elapsed();
        let e = ran.expect_err(&format!("{engine}: finished in {elapsed:?}, no timeout"));
        assert!(
            elapsed < Duration::from_secs(4),
            "{engine}: cancelled after {elapsed:?} ({e}), statement_timeout is 1 s"
        );
        store.close_pool().await;
        db.remove().await;
    }
}
