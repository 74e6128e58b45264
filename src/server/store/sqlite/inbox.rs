//! SQLite: the pay-result inbox (the embedded bus) and its consumer's transaction.

use super::orders::mark_paid_in;
use super::timeline::append_event;
use super::SqliteStore;
use crate::server::domain::PayResult;
use crate::server::domain::{Cause, Payment};
use crate::server::store::Applied;
use crate::server::support::clock::now_ms;

impl SqliteStore {
    /// Durably records a verified pay result; the same transaction twice is one row.
    pub async fn publish_pay_result(&self, n: &PayResult) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        insert_inbox(&mut conn, n).await
    }

    /// Records a pay result and applies it in one transaction (the RabbitMQ consumer: the inbox
    /// row is its idempotency key). None when it had been applied before.
    pub async fn receive_pay_result(&self, n: &PayResult) -> Result<Option<Applied>, sqlx::Error> {
        let p = Payment::from(n);
        self.apply_pay_result_once(&p, Some(n)).await
    }

    /// Pay results due for (another) attempt, oldest first, with their attempts so far.
    pub async fn due_pay_results(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(Payment, i64)>, sqlx::Error> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, out_trade_no, total_fee, paid_at, attempts FROM pay_inbox \
             WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(transaction_id, out_trade_no, total_fee, paid_at, attempts)| {
                    (
                        Payment {
                            out_trade_no,
                            transaction_id,
                            total_fee,
                            paid_at,
                        },
                        attempts,
                    )
                },
            )
            .collect())
    }

    /// Claims the entry, records it on the timeline and applies it, in one transaction. None
    /// when another consumer claimed it first.
    pub async fn apply_pay_result(&self, p: &Payment) -> Result<Option<Applied>, sqlx::Error> {
        self.apply_pay_result_once(p, None).await
    }

    async fn apply_pay_result_once(
        &self,
        p: &Payment,
        record: Option<&PayResult>,
    ) -> Result<Option<Applied>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let applied = apply_in(&mut tx, p, record).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Pay results that arrived together (the RabbitMQ consumer's batch, one per order), each
    /// recorded and applied as `receive_pay_result` does, all in one transaction: one commit for
    /// the lot. Nothing is written when any of them fails; the caller then takes each on its own.
    pub async fn receive_together(
        &self,
        batch: &[&PayResult],
    ) -> Result<Vec<Option<Applied>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut applied = Vec::with_capacity(batch.len());
        for n in batch {
            applied.push(apply_in(&mut tx, &Payment::from(*n), Some(n)).await?);
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// A failed application: try again at `at`, keeping the error for operators.
    pub async fn back_off_pay_result(
        &self,
        transaction_id: &str,
        at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE pay_inbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? \
             WHERE transaction_id = ? AND processed_at IS NULL",
        )
        .bind(at)
        .bind(error)
        .bind(transaction_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Claims a pay result (recording it first when `record` is given), records it on the timeline
/// and applies it, inside the caller's transaction. None when it had been applied before.
async fn apply_in(
    conn: &mut sqlx::SqliteConnection,
    p: &Payment,
    record: Option<&PayResult>,
) -> Result<Option<Applied>, sqlx::Error> {
    if let Some(n) = record {
        insert_inbox(conn, n).await?;
    }
    let claimed = sqlx::query(
        "UPDATE pay_inbox SET processed_at = ?, next_attempt_at = NULL \
         WHERE transaction_id = ? AND processed_at IS NULL",
    )
    .bind(now_ms())
    .bind(&p.transaction_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if claimed != 1 {
        return Ok(None);
    }
    let known = sqlx::query("UPDATE orders SET updated_at = ? WHERE id = ?")
        .bind(now_ms())
        .bind(&p.out_trade_no)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if known == 1 {
        append_event(
            conn,
            &p.out_trade_no,
            "notify_received",
            Cause::Notify,
            &p.detail(),
        )
        .await?;
    }
    let outcome = mark_paid_in(conn, p, Cause::Notify).await?;
    sqlx::query("UPDATE pay_inbox SET outcome = ? WHERE transaction_id = ?")
        .bind(outcome.as_str())
        .bind(&p.transaction_id)
        .execute(&mut *conn)
        .await?;
    Ok(Some(Applied { outcome, row: None }))
}

/// Inserts a pay result into the inbox unless its transaction is there already.
async fn insert_inbox(conn: &mut sqlx::SqliteConnection, n: &PayResult) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
            "INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, received_at, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (transaction_id) DO NOTHING",
    )
        .bind(&n.transaction_id)
        .bind(&n.out_trade_no)
        .bind(n.total_fee)
        .bind(&n.time_end)
        .bind(n.paid_at_ms)
        .bind(now)
        .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
