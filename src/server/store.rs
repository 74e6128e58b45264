//! The SQL store: connection, embedded migrations and catalogue reads.
//! Order writes live in `orders::state`, the one module that changes an order.

use std::borrow::Cow;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

pub type Db = AnyPool;

/// The SQLite migrations, compiled into the binary and applied by sqlx's migrator (which records
/// a checksum of each, so an edited migration is refused instead of silently skipped).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "seed catalogue",
        include_str!("../../migrations/sqlite/0002_seed_catalogue.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SCANPAY_DATABASE_URL={url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migrations failed: {0}")]
    Migrate(String),
}

pub async fn connect(url: &str) -> Result<Db, StoreError> {
    sqlx::any::install_default_drivers();
    let mut full = url.to_string();
    if full.starts_with("sqlite:") && !full.contains("mode=") {
        full.push_str(if full.contains('?') {
            "&mode=rwc"
        } else {
            "?mode=rwc"
        });
    }
    let fail = |source| StoreError::Connect {
        url: redact(url),
        source,
    };
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .connect(&full)
        .await
        .map_err(fail)?;
    if full.starts_with("sqlite:") {
        // WAL lets the status polls read while a payment commits.
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await
            .map_err(fail)?;
    }
    Ok(pool)
}

fn migrator() -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            SQLITE_MIGRATIONS
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
    }
}

/// Applies the migrations not yet applied. Several processes may start at once: the migrator
/// locks where the engine can (PostgreSQL, MySQL); SQLite serialises the transactions, and a
/// process that loses the race finds the work done when it tries again.
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    let legacy: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    )
    .fetch_optional(db)
    .await
    .unwrap_or(None);
    if legacy.is_some() {
        return Err(StoreError::Migrate(
            "this database was made by an earlier scanpay (schema_migrations table); \
             start with a new database file"
                .into(),
        ));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrator().run(db).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 => {
                tracing::info!(error = %e, attempt, "migrations raced another process; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(StoreError::Migrate(e.to_string())),
        }
    }
}

/// A database URL fit for logs and error messages: the password (in the authority or as a
/// `password=` parameter) becomes `***`. A URL that does not parse is not echoed at all.
pub fn redact(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return "<a URL that does not parse>".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = matches!(k.to_ascii_lowercase().as_str(), "password" | "pass" | "pwd");
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A secret scanpay keeps for itself (e.g. the session-cookie key when none is configured): made
/// once, stored in the database, the same for every process and across restarts.
pub async fn generated_secret(db: &Db, name: &str) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO app_secrets (name, value, created_at) SELECT ?, ?, ? \
         WHERE NOT EXISTS (SELECT 1 FROM app_secrets WHERE name = ?)",
    )
    .bind(name)
    .bind(crate::server::wxpay::client::random_alnum(48))
    .bind(now_ms())
    .bind(name)
    .execute(db)
    .await?;
    sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = ?")
        .bind(name)
        .fetch_one(db)
        .await
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_fen: i64,
    pub stock: i64,
}

impl Product {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Product {
            sku: r.try_get("sku")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            price_fen: r.try_get("price_fen")?,
            stock: r.try_get("stock")?,
        })
    }
}

pub async fn products(db: &Db) -> Result<Vec<Product>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sku, name, description, price_fen, stock FROM products ORDER BY position",
    )
    .fetch_all(db)
    .await?;
    rows.iter().map(Product::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn migrations_apply_once_and_seed_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        migrate(&db).await.unwrap();
        migrate(&db).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(applied, SQLITE_MIGRATIONS.len() as i64);
        let p = products(&db).await.unwrap();
        assert_eq!(p.len(), 5);
        assert!(p.iter().all(|p| p.price_fen > 0 && p.stock > 0));
        let a = generated_secret(&db, "session").await.unwrap();
        assert_eq!(a.len(), 48);
        assert_eq!(generated_secret(&db, "session").await.unwrap(), a, "kept");
    }

    #[tokio::test]
    async fn concurrent_migrations_on_one_file_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let db = connect(&url).await.unwrap();
                migrate(&db).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let db = connect(&url).await.unwrap();
        assert_eq!(products(&db).await.unwrap().len(), 5, "seeded once");
    }
}
