//! PostgreSQL: what the sweep and the timeout scheduler ask for, and their claims.

use super::reads::ORDER_COLUMNS;
use super::{retrying, PgStore};
use crate::server::domain::OrderRow;

impl PgStore {
    /// Sets when the sweep next looks at an unfinished order (earlier or later than planned).
    pub async fn schedule_check(&self, id: &str, at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE orders SET next_check_at = $1 \
             WHERE id = $2 AND status IN ('pending', 'closing') AND parked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due orders with `FOR UPDATE SKIP LOCKED`: several sweepers (threads
    /// or processes) take disjoint rows without waiting for each other.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: i64,
        next_at: &(dyn Fn(&OrderRow, i64) -> i64 + Sync),
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        // Deadlocks and serialization failures are retried, like every write here.
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            // The conditions match the partial index `orders_due`.
            let rows = sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS}, check_attempts FROM orders \
                 WHERE next_check_at <= $1 AND status IN ('pending', 'closing') AND parked_at IS NULL \
                 ORDER BY next_check_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut claimed = Vec::new();
            for row in rows {
                use sqlx::Row;
                let order = super::reads::order_row(&row)?;
                let attempts: i64 = row.try_get("check_attempts")?;
                sqlx::query(
                    "UPDATE orders SET next_check_at = $1, check_attempts = check_attempts + 1 WHERE id = $2",
                )
                .bind(next_at(&order, attempts))
                .bind(&order.id)
                .execute(&mut *tx)
                .await?;
                claimed.push(order);
            }
            tx.commit().await?;
            Ok(claimed)
        })
        .await
    }

    /// Up to `limit` pending orders past their deadline (earliest first) and the next deadline
    /// ahead; both read the `(status, deadline_at)` index.
    pub async fn due_deadlines(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<(Vec<String>, Option<i64>), sqlx::Error> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'pending' AND deadline_at <= $1 AND parked_at IS NULL \
             ORDER BY deadline_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deadline_at) FROM orders WHERE status = 'pending' AND parked_at IS NULL AND deadline_at > $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok((due, next))
    }
}
