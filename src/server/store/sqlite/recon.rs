//! The daily reconciliation's SQL (`store::recon`), stamped for this engine.

use super::SqliteStore;

crate::server::store::recon::recon_sql!(
    SqliteStore,
    sqlx::sqlite::SqliteRow,
    crate::server::store::refunds::plain,
    "INTEGER"
);
