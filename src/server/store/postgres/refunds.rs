//! PostgreSQL: refunds — the portable SQL of `store::refunds`, its parameters renumbered to `$n`.

use super::PgStore;

crate::server::store::refunds::refund_sql!(
    PgStore,
    sqlx::postgres::PgRow,
    sqlx::PgConnection,
    crate::server::store::refunds::numbered
);
crate::server::store::refunds::refund_settle_sql!(
    PgStore,
    sqlx::PgConnection,
    crate::server::store::refunds::numbered
);
