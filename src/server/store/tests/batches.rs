//! The sweep's batched writes: a claim and `schedule_checks` each one UPDATE statement, counted
//! on every engine.

use crate::server::store::{Engine, PoolSettings, Store};

use super::{fresh, new_order};

/// The sweep's writes are one statement per batch, not one per order: a claim pushes all its
/// orders' next checks with one UPDATE, and so does `schedule_checks`. Counted on a pool of one
/// connection: SQLite by commits (each UPDATE outside a transaction commits on its own),
/// PostgreSQL by a statement-level trigger, MySQL by the session's `Com_update`.
#[tokio::test]
async fn a_claim_and_schedule_checks_update_in_one_statement() {
    let one = PoolSettings {
        max_connections: 1,
        ..PoolSettings::default()
    };
    for engine in ["sqlite", "postgres", "mysql"] {
        let (db, store) = fresh(engine, &one).await;
        let ids: Vec<String> = (0..5).map(|i| format!("B{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            store
                .create_order(&new_order(id, &format!("s{i}")), "Shop")
                .await
                .unwrap();
            store.schedule_check(id, 1000 + i as i64).await.unwrap();
        }
        let counter = UpdateCounter::install(&store).await;
        let claimed = store.claim_due(10_000, 10, &|_, _| 50_000).await.unwrap();
        assert_eq!(claimed.len(), 5, "{engine}");
        assert_eq!(counter.updates(&store).await, 1, "{engine}: the claim");
        let checks: Vec<(String, i64)> = ids.iter().map(|id| (id.clone(), 60_000)).collect();
        store.schedule_checks(&checks).await.unwrap();
        assert_eq!(
            counter.updates(&store).await,
            2,
            "{engine}: schedule_checks"
        );
        let rows = store.load_many(&ids).await.unwrap();
        assert!(rows.iter().all(|o| o.next_check_at == Some(60_000)));
        store.close_pool().await;
        db.remove().await;
    }
}

/// UPDATE statements run on a store's database since `install`.
enum UpdateCounter {
    Sqlite(std::sync::Arc<std::sync::atomic::AtomicUsize>),
    Postgres,
    Mysql(i64),
}

impl UpdateCounter {
    async fn install(store: &Store) -> UpdateCounter {
        match &store.engine {
            Engine::Sqlite(s) => {
                let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let counted = commits.clone();
                let mut conn = s.pool().acquire().await.unwrap();
                let mut handle = conn.lock_handle().await.unwrap();
                handle.set_commit_hook(move || {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    true // let it commit (sqlx's hook: false turns it into a rollback)
                });
                UpdateCounter::Sqlite(commits)
            }
            Engine::Postgres(s) => {
                for sql in [
                    "CREATE TABLE update_statements (at timestamptz DEFAULT now())",
                    "CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN INSERT INTO update_statements DEFAULT VALUES; RETURN NULL; END $$",
                    "CREATE TRIGGER count_updates AFTER UPDATE ON orders \
                     FOR EACH STATEMENT EXECUTE FUNCTION count_update()",
                ] {
                    sqlx::query(sql).execute(s.pool()).await.unwrap();
                }
                UpdateCounter::Postgres
            }
            Engine::Mysql(s) => UpdateCounter::Mysql(mysql_updates(s.pool()).await),
        }
    }

    async fn updates(&self, store: &Store) -> i64 {
        match (self, &store.engine) {
            (UpdateCounter::Sqlite(commits), _) => {
                commits.load(std::sync::atomic::Ordering::SeqCst) as i64
            }
            (UpdateCounter::Postgres, Engine::Postgres(s)) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM update_statements")
                    .fetch_one(s.pool())
                    .await
                    .unwrap()
            }
            (UpdateCounter::Mysql(before), Engine::Mysql(s)) => {
                mysql_updates(s.pool()).await - before
            }
            _ => unreachable!(),
        }
    }
}

/// The session's count of UPDATE statements (the pool's only connection).
async fn mysql_updates(pool: &sqlx::MySqlPool) -> i64 {
    let (_, n): (String, String) = sqlx::query_as("SHOW SESSION STATUS LIKE 'Com_update'")
        .fetch_one(pool)
        .await
        .unwrap();
    n.parse().unwrap()
}

/// SQLite's claim reads the due index, not every unfinished order: without the `+status` hint
/// its planner took the `(status, deadline_at)` index and sorted every pending order, so the
/// sweep's cost grew with the table (the lifecycle benchmark showed it).
#[tokio::test]
async fn the_sqlite_claim_reads_the_due_index_and_sorts_nothing() {
    let (db, store) = fresh("sqlite", &PoolSettings::default()).await;
    let Engine::Sqlite(lite) = &store.engine else {
        unreachable!()
    };
    use sqlx::Row;
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        crate::server::store::sqlite::claim_select()
    );
    let plan: Vec<String> = sqlx::query(&sql)
        .bind(0i64)
        .bind(10i64)
        .fetch_all(lite.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    let plan = plan.join(" | ");
    assert!(plan.contains("orders_due"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    store.close_pool().await;
    db.remove().await;
}
