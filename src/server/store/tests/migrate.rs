//! Migrating: once however many processes race, exactly the files of `migrations/<engine>/`, and
//! databases migrated by earlier builds taken as they are.

use crate::server::store::{connect, mysql, postgres, sqlite, testing, Engine, PoolSettings};

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
    assert_eq!(sqlite::SqliteStore::migrations(), 6);
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
    assert_eq!(sqlite::SqliteStore::migrations(), 6);
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
                    include_str!(concat!(
                        "../../../../migrations/",
                        $engine,
                        "/0001_init.sql"
                    )),
                ),
                (
                    2,
                    "seed catalogue",
                    include_str!(concat!(
                        "../../../../migrations/",
                        $engine,
                        "/0002_seed_catalogue.sql"
                    )),
                ),
                (
                    3,
                    "catalogue in Chinese",
                    include_str!(concat!(
                        "../../../../migrations/",
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
