//! SQLite: what the sweep and the timeout scheduler ask for, and their claims.

use super::reads::ORDER_COLUMNS;
use super::SqliteStore;
use crate::server::domain::OrderRow;

impl SqliteStore {
    /// Sets when the sweep next looks at an unfinished order (earlier or later than planned).
    pub async fn schedule_check(&self, id: &str, at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE orders SET next_check_at = ? \
             WHERE id = ? AND status IN ('pending', 'closing') AND parked_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due orders; each claim is a compare-and-set on `next_check_at`, so
    /// of several sweepers (threads or processes) exactly one gets each order.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: i64,
        next_at: &(dyn Fn(&OrderRow, i64) -> i64 + Sync),
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        // `next_check_at` is NULL for finished and parked orders: the index range is due work.
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS}, next_check_at, check_attempts FROM orders \
             WHERE next_check_at <= ? AND status IN ('pending', 'closing') ORDER BY next_check_at LIMIT ?"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            use sqlx::Row;
            let order = super::reads::order_row(&row)?;
            let seen: i64 = row.try_get("next_check_at")?;
            let attempts: i64 = row.try_get("check_attempts")?;
            let n = sqlx::query(
                "UPDATE orders SET next_check_at = ?, check_attempts = check_attempts + 1 \
                 WHERE id = ? AND next_check_at = ? AND status IN ('pending', 'closing')",
            )
            .bind(next_at(&order, attempts))
            .bind(&order.id)
            .bind(seen)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if n == 1 {
                claimed.push(order);
            }
        }
        Ok(claimed)
    }

    /// Up to `limit` pending orders past their deadline (earliest first) and the next deadline
    /// ahead; both read the `(status, deadline_at)` index.
    pub async fn due_deadlines(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<(Vec<String>, Option<i64>), sqlx::Error> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'pending' AND deadline_at <= ? AND parked_at IS NULL \
             ORDER BY deadline_at LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deadline_at) FROM orders WHERE status = 'pending' AND deadline_at > ?",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok((due, next))
    }
}
