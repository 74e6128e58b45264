//! PostgreSQL: the pay-result inbox (the embedded bus) and its consumer's transaction.

use super::orders::{mark_paid_in, mark_paid_returning};
use super::reads::{order_row, ORDER_COLUMNS};
use super::timeline::append_event;
use super::{retrying, PgStore};
use crate::server::domain::PayResult;
use crate::server::domain::{Cause, OrderRow, PaidOutcome, Payment};
use crate::server::store::Applied;
use crate::server::support::clock::now_ms;

impl PgStore {
    /// Durably records a verified pay result; the same transaction twice is one row.
    pub async fn publish_pay_result(&self, n: &PayResult) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        insert_inbox(&mut conn, n).await
    }

    /// Records a pay result and applies it in one transaction (the RabbitMQ consumer: the inbox
    /// row is its idempotency key). None when it had been applied before.
    pub async fn receive_pay_result(&self, n: &PayResult) -> Result<Option<Applied>, sqlx::Error> {
        let p = Payment::from(n);
        match self.receive_payable(n, &p).await {
            Ok(Some(row)) => {
                return Ok(Some(Applied {
                    outcome: PaidOutcome::Paid,
                    row: Some(row),
                }))
            }
            // Not payable as it stands, or another writer took an event number first: the
            // locked transaction below sorts it out.
            Ok(None) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(e),
        }
        retrying(|| self.apply_pay_result_once(&p, Some(n))).await
    }

    /// The common case as one statement (so one round trip, no explicit transaction): the order
    /// is pending or closing with this amount, so pay it, record the inbox row as applied and
    /// append both events. Nothing is written when the order is not payable. The events'
    /// numbers come from the statement's snapshot: if another writer appended to this order
    /// after it, the primary key refuses the insert and the whole statement with it.
    async fn receive_payable(
        &self,
        n: &PayResult,
        p: &Payment,
    ) -> Result<Option<OrderRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "WITH paid AS ( \
               UPDATE orders SET status = 'paid', transaction_id = $1, paid_at = $2, finished_at = $3, \
                 updated_at = $3, next_check_at = NULL \
               WHERE id = $4 AND status IN ('pending', 'closing') AND total_fee = $5 \
               RETURNING {ORDER_COLUMNS}), \
             inbox AS ( \
               INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, received_at, processed_at, outcome) \
               SELECT $1, $4, $5, $6, $2, $3, $3, 'paid' FROM paid \
               ON CONFLICT (transaction_id) DO UPDATE \
                 SET processed_at = EXCLUDED.processed_at, next_attempt_at = NULL, outcome = 'paid'), \
             events AS ( \
               INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
               SELECT $4, base.m + k.n, $3, k.kind, $7, $8 \
               FROM paid, \
                    (SELECT COALESCE(MAX(seq), 0) AS m FROM order_events WHERE order_id = $4) AS base, \
                    (VALUES (1, 'notify_received'), (2, 'paid')) AS k(n, kind)) \
             SELECT * FROM paid"
        ))
        .bind(&p.transaction_id)
        .bind(p.paid_at)
        .bind(now_ms())
        .bind(&p.out_trade_no)
        .bind(p.total_fee)
        .bind(&n.time_end)
        .bind(Cause::Notify.as_str())
        .bind(p.detail())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// Pay results that arrived together (the RabbitMQ consumer's batch, one per order): the
    /// payable ones paid as `receive_payable` pays one, all in one statement, so one commit and
    /// one disk flush for the lot. Returns the orders it paid; nothing is written when any part
    /// fails (an inbox row already there, another writer's event number, a deadlock), and the
    /// caller then takes each pay result on its own.
    pub async fn receive_payable_batch(
        &self,
        batch: &[&PayResult],
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        let column = |f: fn(&PayResult) -> String| batch.iter().map(|n| f(n)).collect::<Vec<_>>();
        let rows = sqlx::query(&format!(
            "WITH input AS ( \
               SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[]) \
                 AS i(i_no, i_tid, i_fee, i_paid_at, i_time_end, i_detail)), \
             paid AS ( \
               UPDATE orders SET status = 'paid', transaction_id = i_tid, paid_at = i_paid_at, \
                 finished_at = $7, updated_at = $7, next_check_at = NULL \
               FROM input \
               WHERE id = i_no AND status IN ('pending', 'closing') AND total_fee = i_fee \
               RETURNING {ORDER_COLUMNS}, i_tid, i_time_end, i_detail), \
             inbox AS ( \
               INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, received_at, processed_at, outcome) \
               SELECT i_tid, id, total_fee, i_time_end, paid_at, $7, $7, 'paid' FROM paid), \
             events AS ( \
               INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
               SELECT paid.id, base.m + k.n, $7, k.kind, $8, paid.i_detail \
               FROM paid \
               CROSS JOIN LATERAL (SELECT COALESCE(MAX(seq), 0) AS m FROM order_events e WHERE e.order_id = paid.id) AS base \
               CROSS JOIN (VALUES (1, 'notify_received'), (2, 'paid')) AS k(n, kind)) \
             SELECT * FROM paid"
        ))
        .bind(column(|n| n.out_trade_no.clone()))
        .bind(column(|n| n.transaction_id.clone()))
        .bind(batch.iter().map(|n| n.total_fee).collect::<Vec<i64>>())
        .bind(batch.iter().map(|n| n.paid_at_ms).collect::<Vec<i64>>())
        .bind(column(|n| n.time_end.clone()))
        .bind(column(|n| Payment::from(n).detail()))
        .bind(now_ms())
        .bind(Cause::Notify.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_row).collect()
    }

    /// Pay results due for (another) attempt, oldest first, with their attempts so far.
    pub async fn due_pay_results(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(Payment, i64)>, sqlx::Error> {
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, out_trade_no, total_fee, paid_at, attempts FROM pay_inbox \
             WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2",
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
        retrying(|| self.apply_pay_result_once(p, None)).await
    }

    async fn apply_pay_result_once(
        &self,
        p: &Payment,
        record: Option<&PayResult>,
    ) -> Result<Option<Applied>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let claimed = match record {
            Some(n) => insert_claimed(&mut tx, n).await?,
            None => sqlx::query(
                "UPDATE pay_inbox SET processed_at = $1, next_attempt_at = NULL \
                 WHERE transaction_id = $2 AND processed_at IS NULL",
            )
            .bind(now_ms())
            .bind(&p.transaction_id)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        };
        if claimed != 1 {
            return Ok(None);
        }
        // The common case in two statements: the guarded paid update (which locks the order and
        // returns it for the Redis mirror), then both events and the outcome. The events' MAX(seq)
        // is read by a statement that starts after the lock is held, so it sees every event.
        if let Some(row) = mark_paid_returning(&mut tx, p).await? {
            let now = now_ms();
            sqlx::query(
                "WITH ev AS (INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
                   SELECT $1, base.m + k.n, $2, k.kind, $3, $4 \
                   FROM (SELECT COALESCE(MAX(seq), 0) AS m FROM order_events WHERE order_id = $1) AS base, \
                        (VALUES (1, 'notify_received'), (2, 'paid')) AS k(n, kind)) \
                 UPDATE pay_inbox SET outcome = 'paid' WHERE transaction_id = $5",
            )
            .bind(&p.out_trade_no)
            .bind(now)
            .bind(Cause::Notify.as_str())
            .bind(p.detail())
            .bind(&p.transaction_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Some(Applied {
                outcome: PaidOutcome::Paid,
                row: Some(row),
            }));
        }
        // Not applicable as it stands (already paid, closed, unknown, another amount): record it
        // and find out why, under the order's lock.
        let known = sqlx::query("UPDATE orders SET updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(&p.out_trade_no)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if known == 1 {
            append_event(
                &mut tx,
                &p.out_trade_no,
                "notify_received",
                Cause::Notify,
                &p.detail(),
            )
            .await?;
        }
        let outcome = mark_paid_in(&mut tx, p, Cause::Notify).await?;
        sqlx::query("UPDATE pay_inbox SET outcome = $1 WHERE transaction_id = $2")
            .bind(outcome.as_str())
            .bind(&p.transaction_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Applied { outcome, row: None }))
    }

    /// A failed application: try again at `at`, keeping the error for operators.
    pub async fn back_off_pay_result(
        &self,
        transaction_id: &str,
        at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE pay_inbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 \
             WHERE transaction_id = $3 AND processed_at IS NULL",
        )
        .bind(at)
        .bind(error)
        .bind(transaction_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Inserts a pay result into the inbox unless its transaction is there already.
async fn insert_inbox(conn: &mut sqlx::PgConnection, n: &PayResult) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
            "INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, received_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (transaction_id) DO NOTHING",
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

/// Inserts a pay result already claimed by this transaction; 1 when this call claimed it (new, or
/// recorded before but never applied), 0 when it had been applied before.
async fn insert_claimed(conn: &mut sqlx::PgConnection, n: &PayResult) -> Result<u64, sqlx::Error> {
    let now = now_ms();
    Ok(sqlx::query(
        "INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, received_at, processed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (transaction_id) DO UPDATE \
         SET processed_at = EXCLUDED.processed_at, next_attempt_at = NULL WHERE pay_inbox.processed_at IS NULL",
    )
    .bind(&n.transaction_id)
    .bind(&n.out_trade_no)
    .bind(n.total_fee)
    .bind(&n.time_end)
    .bind(n.paid_at_ms)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}
