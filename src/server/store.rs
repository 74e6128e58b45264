//! The SQL store: connection, embedded migrations and catalogue reads.
//! Order writes live in `orders::state`, the one module that changes an order.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub type Db = AnyPool;

/// Migrations compiled into the binary, applied in order, each once.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "seed_catalogue",
        include_str!("../../migrations/0002_seed_catalogue.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migration {version} ({name}) failed: {source}")]
    Migrate {
        version: i64,
        name: &'static str,
        source: sqlx::Error,
    },
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

pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    let fail = |version, name| {
        move |source| StoreError::Migrate {
            version,
            name,
            source,
        }
    };
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64) NOT NULL, applied_at BIGINT NOT NULL)")
        .execute(db)
        .await
        .map_err(fail(0, "schema_migrations"))?;
    for &(version, name, sql) in MIGRATIONS {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                .bind(version)
                .fetch_optional(db)
                .await
                .map_err(fail(version, name))?;
        if done.is_some() {
            continue;
        }
        let mut tx = db.begin().await.map_err(fail(version, name))?;
        for stmt in statements(sql) {
            sqlx::query(&stmt)
                .execute(&mut *tx)
                .await
                .map_err(fail(version, name))?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
            .bind(version)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail(version, name))?;
        tx.commit().await.map_err(fail(version, name))?;
    }
    Ok(())
}

/// Splits a migration file into statements, dropping `--` comment lines.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn redact(url: &str) -> String {
    // postgres://user:password@host → postgres://user:***@host
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
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
    fn splits_statements_and_drops_comments() {
        let s =
            statements("-- head\nCREATE TABLE a (x INT); -- tail\n\nINSERT INTO a VALUES (1);\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x INT)", "INSERT INTO a VALUES (1)"]
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[tokio::test]
    async fn migrations_apply_once_and_seed_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        migrate(&db).await.unwrap();
        migrate(&db).await.unwrap();
        let p = products(&db).await.unwrap();
        assert_eq!(p.len(), 5);
        assert!(p.iter().all(|p| p.price_fen > 0 && p.stock > 0));
    }
}
