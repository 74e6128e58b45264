//! The console's SQL (`store::console`), stamped for this engine.

use super::SqliteStore;

crate::server::store::console::console_sql!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    crate::server::store::refunds::plain,
    "/",
    "INTEGER"
);
