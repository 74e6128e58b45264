//! The daily reconciliation's SQL (`store::recon`), stamped for this engine.

use super::PgStore;

crate::server::store::recon::recon_sql!(
    PgStore,
    sqlx::postgres::PgRow,
    crate::server::store::refunds::numbered,
    "BIGINT"
);
