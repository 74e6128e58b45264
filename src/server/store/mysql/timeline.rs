//! MySQL/MariaDB: the order's timeline (events) and anomalies.

use sqlx::MySqlConnection;

use super::{retrying, MySqlStore};
use crate::server::domain::{AnomalyRow, Cause, EventRow, Payment};
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;

/// Appends to the order's timeline. Every caller has updated or locked the order's row earlier in
/// its transaction, so appends to one order are serialised and `MAX(seq) + 1` cannot race.
pub(super) async fn append_event(
    conn: &mut MySqlConnection,
    id: &str,
    kind: &str,
    cause: Cause,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM order_events WHERE order_id = ?",
    )
    .bind(id)
    .bind(now_ms())
    .bind(kind)
    .bind(cause.as_str())
    .bind(detail)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records an anomaly once per (order, WeChat transaction); true when this call recorded it.
pub(super) async fn record_anomaly(
    conn: &mut MySqlConnection,
    p: &Payment,
    kind: &str,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        // IGNORE: the unique key (order_id, transaction_id) turns a second record into a no-op.
        "INSERT IGNORE INTO anomalies (id, order_id, transaction_id, kind, detail, at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(random_alnum(24))
    .bind(&p.out_trade_no)
    .bind(&p.transaction_id)
    .bind(kind)
    .bind(detail)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 1 {
        tracing::error!(order_id = %p.out_trade_no, kind, detail, "payment anomaly: needs an operator");
    }
    Ok(n == 1)
}

impl MySqlStore {
    /// Notes something about an order in its timeline without changing it.
    pub async fn note(
        &self,
        id: &str,
        kind: &str,
        cause: Cause,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        // Deadlocks and serialization failures are retried, like every write here.
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query("UPDATE orders SET updated_at = ? WHERE id = ?")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                append_event(&mut tx, id, kind, cause, detail).await?;
            }
            tx.commit().await
        })
        .await
    }

    pub async fn events(&self, id: &str) -> Result<Vec<EventRow>, sqlx::Error> {
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, at, kind, cause, detail FROM order_events WHERE order_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    pub async fn anomaly_kinds(&self, order_id: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT kind FROM anomalies WHERE order_id = ? ORDER BY at")
            .bind(order_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Unresolved anomalies, newest first, with their order's status and parking.
    pub async fn anomalies(&self, limit: i64) -> Result<Vec<AnomalyRow>, sqlx::Error> {
        type Raw = crate::server::domain::AnomalyColumns;
        let rows: Vec<Raw> = sqlx::query_as(
            "SELECT a.id, a.order_id, a.transaction_id, a.kind, a.detail, a.at, o.status, o.parked_at \
             FROM anomalies a LEFT JOIN orders o ON o.id = a.order_id \
             WHERE a.resolved_at IS NULL ORDER BY a.at DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AnomalyRow::from).collect())
    }
}
