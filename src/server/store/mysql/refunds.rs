//! MySQL: refunds — the portable SQL of `store::refunds`, its parameters as written.

use super::MySqlStore;

crate::server::store::refunds::refund_sql!(
    MySqlStore,
    sqlx::mysql::MySqlRow,
    sqlx::MySqlConnection,
    crate::server::store::refunds::plain
);
crate::server::store::refunds::refund_settle_sql!(
    MySqlStore,
    sqlx::MySqlConnection,
    crate::server::store::refunds::plain
);
