//! SQLite: refunds — the portable SQL of `store::refunds`, its parameters as written.

use super::SqliteStore;

crate::server::store::refunds::refund_sql!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    sqlx::SqliteConnection,
    crate::server::store::refunds::plain
);
crate::server::store::refunds::refund_settle_sql!(
    SqliteStore,
    sqlx::SqliteConnection,
    crate::server::store::refunds::plain
);
