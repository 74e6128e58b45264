//! Connecting, migrating and redacting, on every engine where it matters.

use std::time::Duration;

use super::*;
use crate::server::support::clock::now_ms;
use crate::server::support::redact::redact;

#[test]
fn redacts_passwords() {
    assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    assert_eq!(
        redact("postgres://u:p%40ss@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(
        redact("mysql://h/db?user=u&password=s3cret&ssl-mode=required"),
        "mysql://h/db?user=u&password=***&ssl-mode=required"
    );
    assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    assert!(!redact("postgres://u:pw@@h/db").contains("pw"));
    assert!(!redact("not a url with pw").contains("pw"));
}

#[tokio::test]
async fn unknown_schemes_are_refused_naming_the_variable_without_the_password() {
    let e = connect("oracle://u:hunter2@h/db", &PoolSettings::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("SCANPAY_DATABASE_URL") && !e.contains("hunter2"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unreachable_or_malformed_database_is_named_after_a_bounded_wait() {
    let quick = PoolSettings {
        acquire_timeout: Duration::from_millis(300),
        startup_wait: Duration::from_millis(800),
        ..PoolSettings::default()
    };
    let started = std::time::Instant::now();
    // Nothing listens on port 1: connection refused, retried until the start-up wait is spent.
    let e = connect("postgres://scanpay:hunter2@127.0.0.1:1/scanpay", &quick)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        e.starts_with("SCANPAY_DATABASE_URL=postgres://scanpay:***@127.0.0.1:1/scanpay"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = connect("mysql://root@127.0.0.1:notaport/x", &quick)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("SCANPAY_DATABASE_URL"), "{e}");
}

#[tokio::test]
async fn migrations_apply_once_even_when_processes_race() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = connect(&url, &PoolSettings::default()).await.unwrap();
            store.migrate().await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let store = connect(&url, &PoolSettings::default()).await.unwrap();
    store.migrate().await.unwrap();
    let p = store.products().await.unwrap();
    assert_eq!(p.len(), 5, "seeded once");
    assert!(p.iter().all(|p| p.price_fen > 0 && p.stock > 0));
    let a = store.generated_secret("session").await.unwrap();
    assert_eq!(a.len(), 48);
    assert_eq!(store.generated_secret("session").await.unwrap(), a, "kept");
    assert_eq!(sqlite::SqliteStore::migrations(), 3);
    assert!(
        p.iter().all(|p| p.name_zh.is_some()),
        "the catalogue in Chinese too"
    );
}

/// Each engine's migrations are exactly the files of `migrations/<engine>/`: a file added there
/// is applied without any Rust listing it, each named by its file (`0002_seed_catalogue.sql` is
/// version 2, "seed catalogue") and checked by the SHA-384 of its text.
#[test]
fn every_migration_file_is_embedded_under_its_file_name() {
    use sha2::{Digest, Sha384};
    let engines: [(&str, &sqlx::migrate::Migrator); 3] = [
        ("sqlite", &sqlite::MIGRATOR),
        ("postgres", &postgres::MIGRATOR),
        ("mysql", &mysql::MIGRATOR),
    ];
    for (engine, migrator) in engines {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(engine);
        let mut files: Vec<(i64, String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| {
                let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
                let (version, name) = stem.split_once('_').unwrap();
                let text = std::fs::read(&p).unwrap();
                (
                    version.parse().unwrap(),
                    name.replace('_', " "),
                    Sha384::digest(&text).to_vec(),
                )
            })
            .collect();
        files.sort();
        let embedded: Vec<(i64, String, Vec<u8>)> = migrator
            .iter()
            .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec()))
            .collect();
        assert_eq!(embedded, files, "{engine}");
    }
    assert_eq!(sqlite::SqliteStore::migrations(), 3);
}

/// A database migrated by earlier builds, whose migrations were listed by hand in Rust (with
/// descriptions of their own, e.g. "catalogue in Chinese" for `0003_catalogue_zh.sql`), is taken
/// as it is by the embedded migrator: sqlx compares only versions and checksums, and a checksum
/// is the SHA-384 of the same file text.
#[tokio::test]
async fn databases_migrated_by_earlier_builds_are_accepted() {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use std::borrow::Cow;
    macro_rules! listed {
        ($engine:literal) => {
            [
                (
                    1,
                    "init",
                    include_str!(concat!("../../../migrations/", $engine, "/0001_init.sql")),
                ),
                (
                    2,
                    "seed catalogue",
                    include_str!(concat!(
                        "../../../migrations/",
                        $engine,
                        "/0002_seed_catalogue.sql"
                    )),
                ),
                (
                    3,
                    "catalogue in Chinese",
                    include_str!(concat!(
                        "../../../migrations/",
                        $engine,
                        "/0003_catalogue_zh.sql"
                    )),
                ),
            ]
        };
    }
    let earlier = |listed: [(i64, &'static str, &'static str); 3]| Migrator {
        migrations: Cow::Owned(
            listed
                .iter()
                .map(|&(version, name, sql)| {
                    let (name, sql) = (Cow::Borrowed(name), Cow::Borrowed(sql));
                    Migration::new(version, name, MigrationType::Simple, sql, false)
                })
                .collect(),
        ),
        locking: false,
        ..Migrator::DEFAULT
    };
    for (engine, old) in [
        ("sqlite", earlier(listed!("sqlite"))),
        ("postgres", earlier(listed!("postgres"))),
        ("mysql", earlier(listed!("mysql"))),
    ] {
        let db = testing::TestDb::new(engine).await;
        let store = connect(&db.url, &PoolSettings::default()).await.unwrap();
        match &store.engine {
            Engine::Sqlite(s) => old.run(s.pool()).await,
            Engine::Postgres(s) => old.run(s.pool()).await,
            Engine::Mysql(s) => old.run(s.pool()).await,
        }
        .unwrap_or_else(|e| panic!("{engine}: the earlier migrations: {e}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        assert_eq!(store.products().await.unwrap().len(), 5, "{engine}");
        store.close_pool().await;
        db.remove().await;
    }
}

/// An order `id` placed in session `session`, one panda pin.
fn new_order(id: &str, session: &str) -> crate::server::domain::NewOrder {
    crate::server::domain::NewOrder {
        id: id.into(),
        session_id: session.into(),
        created_at: now_ms(),
        deadline_at: now_ms() + 900_000,
        first_check_at: now_ms(),
        max_open: 100,
        items: vec![crate::server::domain::NewItem {
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
