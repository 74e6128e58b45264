//! The console's SQL (`store::console`), stamped for this engine.

use super::PgStore;

crate::server::store::console::console_sql!(
    PgStore,
    sqlx::postgres::PgRow,
    crate::server::store::refunds::numbered,
    "/",
    "BIGINT"
);
