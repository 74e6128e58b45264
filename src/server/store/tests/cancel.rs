//! A placing dropped half-way writes nothing and leaves its session free to place again at once
//! (on MySQL: no connection left holding the session's named lock).

use std::time::Duration;

use crate::server::store::{Engine, PoolSettings};

use super::{fresh, new_order, Holder};

/// A placing dropped while inside its transaction (axum drops the handler's future when the
/// client goes away) writes nothing and leaves nothing held: the same session places its next
/// order at once. On MySQL the session's named lock (GET_LOCK) belongs to the connection, which
/// used to go back to the pool still holding it, so that session's next placings waited 10 s and
/// failed.
#[tokio::test]
async fn a_cancelled_create_order_leaves_the_session_free() {
    for engine in ["sqlite", "postgres", "mysql"] {
        let (db, store) = fresh(engine, &PoolSettings::default()).await;
        // Another transaction holds the stock row the placing must update (SQLite: the write
        // lock), so the placing stops inside its transaction.
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
                sqlx::query("SELECT stock FROM products WHERE sku = 'PIN-PANDA' FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Holder::Postgres(tx)
            }
            Engine::Mysql(s) => {
                let mut tx = s.pool().begin().await.unwrap();
                sqlx::query("SELECT stock FROM products WHERE sku = 'PIN-PANDA' FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Holder::Mysql(tx)
            }
        };
        let first = new_order("X1", "s1");
        let placing = store.create_order(&first, "Shop");
        let dropped = tokio::time::timeout(Duration::from_millis(500), placing).await;
        assert!(dropped.is_err(), "{engine}: the placing did not wait");
        if let Engine::Mysql(s) = &store.engine {
            let held: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK('scanpay_s_s1')")
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert!(held.is_some(), "the placing stopped while holding its lock");
        }
        holder.release().await;
        let started = std::time::Instant::now();
        tokio::time::timeout(
            Duration::from_secs(5),
            store.create_order(&new_order("X2", "s1"), "Shop"),
        )
        .await
        .unwrap_or_else(|_| panic!("{engine}: the next placing still waits after 5 s"))
        .unwrap_or_else(|e| panic!("{engine}: the next placing: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{engine}: the next placing took {:?}",
            started.elapsed()
        );
        assert!(
            store.load("X1").await.unwrap().is_none(),
            "{engine}: the dropped placing wrote its order"
        );
        if let Engine::Mysql(s) = &store.engine {
            // Nobody holds the session's lock any more (not a pooled connection either).
            let held: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK('scanpay_s_s1')")
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert_eq!(held, None, "a connection still holds the session's lock");
        }
        store.close_pool().await;
        db.remove().await;
    }
}
