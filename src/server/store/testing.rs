//! Test support: a throwaway database of its own for each test, on the shared servers (SQLite:
//! a file; PostgreSQL: a new database), removed afterwards. Tests never share state with each
//! other or leave anything behind on a server other projects use too.
//!
//! The PostgreSQL server is `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! trust authentication), the MySQL/MariaDB one `TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`); a test creates `scanpay_t_<random>` there and drops it.

use crate::server::support::ids::random_alnum;

/// Which engine a test suite runs against: `TEST_DATABASE` (`sqlite`, the default, `postgres` or
/// `mysql`).
pub fn engine_under_test() -> String {
    std::env::var("TEST_DATABASE").unwrap_or_else(|_| "sqlite".into())
}

fn mysql_admin_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Files(std::path::PathBuf),
    Postgres { admin: String, name: String },
    Mysql { admin: String, name: String },
    Done,
}

impl TestDb {
    /// A new empty database on `engine` (`sqlite` or `postgres`).
    pub async fn new(engine: &str) -> TestDb {
        let name = format!("scanpay_t_{}", random_alnum(12).to_ascii_lowercase());
        match engine {
            "sqlite" => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("temp dir");
                TestDb {
                    url: format!("sqlite://{}/scanpay.db", dir.display()),
                    cleanup: Cleanup::Files(dir),
                }
            }
            "postgres" => {
                let admin = postgres_admin_url();
                let mut conn = connect_admin(&admin).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE");
                let mut url = reqwest::Url::parse(&admin).expect("TEST_POSTGRES_URL");
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    cleanup: Cleanup::Postgres { admin, name },
                }
            }
            "mysql" => {
                use sqlx::Connection;
                let admin = mysql_admin_url();
                let mut conn = sqlx::MySqlConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("test MySQL server ({admin}): {e}"));
                sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE");
                let mut url = reqwest::Url::parse(&admin).expect("TEST_MYSQL_URL");
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    cleanup: Cleanup::Mysql { admin, name },
                }
            }
            other => panic!("TEST_DATABASE={other}: sqlite, postgres or mysql"),
        }
    }

    /// Removes the database (call at the end of the test; dropping does it too, blocking).
    pub async fn remove(mut self) {
        self.remove_now().await
    }

    async fn remove_now(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Files(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin, name } => {
                let mut conn = connect_admin(&admin).await;
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
            Cleanup::Mysql { admin, name } => {
                // A connection can still be on its way in when the first KILL runs, and the server
                // can refuse a connection for a moment when a suite has many open: keep trying for
                // about ten seconds, and say so when the database is still there.
                let mut last = String::new();
                for _ in 0..25 {
                    match drop_mysql(&admin, &name).await {
                        Ok(true) => return,
                        Ok(false) => last = "still listed after DROP DATABASE".into(),
                        Err(e) => last = e.to_string(),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                }
                eprintln!("test clean-up: could not drop MySQL database {name}: {last}");
            }
            Cleanup::Done => {}
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Done => {}
            Cleanup::Files(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            server @ (Cleanup::Postgres { .. } | Cleanup::Mysql { .. }) => {
                // Dropped without `remove` (a failed test): clean up on a thread of its own.
                let mut rest = TestDb {
                    url: String::new(),
                    cleanup: server,
                };
                let _ = std::thread::spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        rt.block_on(rest.remove_now());
                    }
                })
                .join();
            }
        }
    }
}

/// Ends the connections still using `name`, drops it; true when it is gone.
async fn drop_mysql(admin: &str, name: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(admin).await?;
    // MariaDB reports ID as a signed BIGINT (decoding it as u64 fails).
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&mut conn)
    .await?;
    for id in ids {
        // The connection may have ended by itself in between.
        let _ = sqlx::query(&format!("KILL {id}")).execute(&mut conn).await;
    }
    sqlx::query("SET SESSION lock_wait_timeout = 10")
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await?;
    Ok(left == 0)
}

async fn connect_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL server ({url}): {e}"))
}

/// An order of one panda pin for the contract suites: placed now, its deadline and first check
/// `deadline_in_ms` and `first_check_in_ms` from now, in a session of its own.
pub fn pin_order(
    id: &str,
    deadline_in_ms: i64,
    first_check_in_ms: i64,
) -> crate::server::domain::NewOrder {
    let now = crate::server::support::clock::now_ms();
    crate::server::domain::NewOrder {
        id: id.into(),
        session_id: format!("s-{id}"),
        created_at: now,
        deadline_at: now + deadline_in_ms,
        first_check_at: now + first_check_in_ms,
        max_open: 1000,
        items: vec![crate::server::domain::NewItem {
            sku: "PIN-PANDA".into(),
            qty: 1,
        }],
    }
}
