//! The store's unit tests, by subject: connecting, migrating, the connections' timeouts, a
//! cancelled placing, and the sweep's batched writes. This file holds what several of them share.

mod batches;
mod cancel;
mod connect;
mod migrate;
mod timeouts;

use crate::server::domain::{NewItem, NewOrder};
use crate::server::store::{connect, testing, PoolSettings, Store};
use crate::server::support::clock::now_ms;

/// An order `id` placed in session `session`, one panda pin.
fn new_order(id: &str, session: &str) -> NewOrder {
    NewOrder {
        id: id.into(),
        session_id: session.into(),
        created_at: now_ms(),
        deadline_at: now_ms() + 900_000,
        first_check_at: now_ms(),
        max_open: 100,
        items: vec![NewItem {
            sku: "PIN-PANDA".into(),
            qty: 1,
        }],
    }
}

/// A store on a new database of `engine`, migrated, with `settings`.
async fn fresh(engine: &str, settings: &PoolSettings) -> (testing::TestDb, Store) {
    let db = testing::TestDb::new(engine).await;
    let store = connect(&db.url, settings).await.unwrap();
    store.migrate().await.unwrap();
    (db, store)
}

/// Another transaction holding a lock (a row's, or SQLite's write lock) until `release`.
enum Holder {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Mysql(sqlx::Transaction<'static, sqlx::MySql>),
}

impl Holder {
    async fn release(self) {
        match self {
            Holder::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
            Holder::Postgres(tx) => tx.rollback().await.unwrap(),
            Holder::Mysql(tx) => tx.rollback().await.unwrap(),
        }
    }
}
