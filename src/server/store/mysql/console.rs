//! The console's SQL (`store::console`), stamped for this engine.

use super::MySqlStore;

crate::server::store::console::console_sql!(
    MySqlStore,
    sqlx::mysql::MySqlRow,
    crate::server::store::refunds::plain,
    "DIV",
    "SIGNED"
);
