//! MySQL/MariaDB: what the sweep and the timeout scheduler ask for, and their claims.

use super::reads::ORDER_COLUMNS;
use super::{retrying, MySqlStore};
use crate::server::domain::OrderRow;
use crate::server::store::pool::{last_per_id, placeholders, IDS_PER_STATEMENT};

impl MySqlStore {
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

    /// Every order of `checks` at its time, as `schedule_check` would one by one (unfinished,
    /// unparked orders only; the last time given for an order wins): one UPDATE per
    /// `IDS_PER_STATEMENT` orders.
    pub async fn schedule_checks(&self, checks: &[(String, i64)]) -> Result<(), sqlx::Error> {
        for chunk in last_per_id(checks).chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE orders SET next_check_at = CASE id {} END \
                 WHERE id IN ({}) AND status IN ('pending', 'closing') AND parked_at IS NULL",
                "WHEN ? THEN ? ".repeat(chunk.len()),
                placeholders(chunk.len())
            );
            let mut update = sqlx::query(&sql);
            for (id, at) in chunk {
                update = update.bind(*id).bind(*at);
            }
            for (id, _) in chunk {
                update = update.bind(*id);
            }
            update.execute(&self.pool).await?;
        }
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
            let rows = sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS}, check_attempts FROM orders \
                 WHERE next_check_at <= ? AND status IN ('pending', 'closing') AND parked_at IS NULL \
                 ORDER BY next_check_at LIMIT ? FOR UPDATE SKIP LOCKED"
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            let mut nexts = Vec::with_capacity(rows.len());
            for row in rows {
                use sqlx::Row;
                let order = super::reads::order_row(&row)?;
                let attempts: i64 = row.try_get("check_attempts")?;
                nexts.push((order.id.clone(), next_at(&order, attempts)));
                claimed.push(order);
            }
            // The claimed rows' next checks in one statement (per `IDS_PER_STATEMENT`), while
            // the rows are locked.
            for chunk in nexts.chunks(IDS_PER_STATEMENT) {
                let sql = format!(
                    "UPDATE orders SET next_check_at = CASE id {} END, check_attempts = check_attempts + 1 \
                     WHERE id IN ({})",
                    "WHEN ? THEN ? ".repeat(chunk.len()),
                    placeholders(chunk.len())
                );
                let mut update = sqlx::query(&sql);
                for (id, at) in chunk {
                    update = update.bind(id).bind(at);
                }
                for (id, _) in chunk {
                    update = update.bind(id);
                }
                update.execute(&mut *tx).await?;
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
            "SELECT id FROM orders WHERE status = 'pending' AND deadline_at <= ? AND parked_at IS NULL \
             ORDER BY deadline_at LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(deadline_at) FROM orders WHERE status = 'pending' AND parked_at IS NULL AND deadline_at > ?",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok((due, next))
    }
}
