//! SQLite: refunds — the portable SQL of `store::refunds`, its parameters as written.

use super::SqliteStore;

crate::server::store::refunds::refund_sql!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection,
    crate::server::store::refunds::plain
);
