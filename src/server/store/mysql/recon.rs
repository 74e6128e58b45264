//! The daily reconciliation's SQL (`store::recon`), stamped for this engine.

use super::MySqlStore;

crate::server::store::recon::recon_sql!(
    MySqlStore,
    sqlx::mysql::MySqlRow,
    crate::server::store::refunds::plain,
    "SIGNED"
);
