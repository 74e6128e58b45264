//! SQLite: what the sweep and the timeout scheduler ask for, and their claims.

use super::reads::ORDER_COLUMNS;
use super::SqliteStore;
use crate::server::domain::OrderRow;
use crate::server::store::pool::{last_per_id, placeholders, IDS_PER_STATEMENT};

/// The claim's read: the due orders by next check, from the `orders_due (next_check_at)` index.
pub(crate) fn claim_select() -> String {
    format!(
        "SELECT {ORDER_COLUMNS}, next_check_at, check_attempts FROM orders \
         WHERE next_check_at <= ? AND +status IN ('pending', 'closing') ORDER BY next_check_at LIMIT ?"
    )
}

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

    /// Claims up to `limit` due orders. The claim is a compare-and-set on `next_check_at`, one
    /// UPDATE for the lot: an order is claimed only if its check is still the one this claimer
    /// read, so of several sweepers (threads or processes) exactly one gets each order.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: i64,
        next_at: &(dyn Fn(&OrderRow, i64) -> i64 + Sync),
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        use sqlx::Row;
        // `next_check_at` is NULL for finished and parked orders: the index range is due work.
        // `+status` keeps SQLite's planner off the `(status, deadline_at)` index: with it, it
        // scanned every unfinished order and sorted them (the cost followed the table, not the
        // due orders; EXPLAIN QUERY PLAN showed `orders_deadline` and a temp B-tree).
        let rows = sqlx::query(&claim_select())
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut seen = Vec::with_capacity(rows.len());
        for row in &rows {
            let order = super::reads::order_row(row)?;
            let was: i64 = row.try_get("next_check_at")?;
            let attempts: i64 = row.try_get("check_attempts")?;
            let next = next_at(&order, attempts);
            seen.push((order, was, next));
        }
        let mut won = std::collections::HashSet::new();
        for chunk in seen.chunks(IDS_PER_STATEMENT) {
            let n = chunk.len();
            let sql = format!(
                "UPDATE orders SET next_check_at = CASE id {when} END, check_attempts = check_attempts + 1 \
                 WHERE id IN ({ids}) AND next_check_at = CASE id {when} END \
                 AND status IN ('pending', 'closing') RETURNING id",
                when = "WHEN ? THEN ? ".repeat(n),
                ids = placeholders(n)
            );
            let mut update = sqlx::query_scalar::<_, String>(&sql);
            for (order, _, next) in chunk {
                update = update.bind(&order.id).bind(*next);
            }
            for (order, _, _) in chunk {
                update = update.bind(&order.id);
            }
            for (order, was, _) in chunk {
                update = update.bind(&order.id).bind(*was);
            }
            won.extend(update.fetch_all(&self.pool).await?);
        }
        let claimed = seen.into_iter().map(|(order, _, _)| order);
        Ok(claimed.filter(|order| won.contains(&order.id)).collect())
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
