//! PostgreSQL: the order transitions. Each is one guarded `UPDATE … WHERE status IN (…)` whose
//! `rows_affected` decides what happens next, with its event in the same transaction; stock moves
//! only inside those transactions, so it is reserved once and restored at most once.

use sqlx::{PgConnection, Row};

use super::reads::{order_row, ORDER_COLUMNS};
use super::timeline::{append_event, record_anomaly};
use super::{retryable, retrying, PgStore, RETRIES};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{
    classify_unapplied, order_body, status_list, Cause, CreateError, Created, HideOutcome,
    NewOrder, OrderRow, PaidOutcome, Payment,
};
use crate::server::support::clock::now_ms;

impl PgStore {
    /// Hides a finished order from its shopper's list: a logical delete (the row, its events and
    /// the operators' view stay). Hiding it again changes nothing.
    pub async fn hide(&self, id: &str, session_id: &str) -> Result<HideOutcome, sqlx::Error> {
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let now = now_ms();
            let n = sqlx::query(
                "UPDATE orders SET hidden_at = $1, updated_at = $2 WHERE id = $3 AND session_id = $4 \
                 AND status IN ('paid', 'closed', 'failed') AND hidden_at IS NULL",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(session_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                append_event(&mut tx, id, "hidden", Cause::Shopper, "hidden from the shopper's list").await?;
                tx.commit().await?;
                return Ok(HideOutcome::Hidden);
            }
            let row: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT status, hidden_at FROM orders WHERE id = $1 AND session_id = $2")
                    .bind(id)
                    .bind(session_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.rollback().await?;
            Ok(match row {
                None => HideOutcome::NotFound,
                Some((_, Some(_))) => HideOutcome::Hidden,
                Some(_) => HideOutcome::NotFinished,
            })
        })
        .await
    }

    pub async fn create_order(
        &self,
        order: &NewOrder,
        shop_name: &str,
    ) -> Result<Created, CreateError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.create_order_once(order, shop_name).await {
                Err(CreateError::Db(e)) if retryable(&e) && attempt < RETRIES => continue,
                other => return other,
            }
        }
    }

    async fn create_order_once(
        &self,
        order: &NewOrder,
        shop_name: &str,
    ) -> Result<Created, CreateError> {
        let mut tx = self.pool.begin().await?;
        // One placing per session at a time, so the open-order count below cannot be outrun.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(&order.session_id)
            .execute(&mut *tx)
            .await?;
        let mut total_fee = 0i64;
        let mut names = Vec::new();
        for item in &order.items {
            // Rows are locked in SKU order (the cart is sorted), so two orders cannot deadlock here.
            let taken = sqlx::query(
                "UPDATE products SET stock = stock - $1 WHERE sku = $2 AND stock >= $3",
            )
            .bind(item.qty)
            .bind(&item.sku)
            .bind(item.qty)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let row = sqlx::query("SELECT name, price_fen, stock FROM products WHERE sku = $1")
                .bind(&item.sku)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(CreateError::UnknownSku(item.sku.clone()));
            };
            let name: String = row.try_get("name")?;
            let price: i64 = row.try_get("price_fen")?;
            if taken != 1 {
                return Err(CreateError::OutOfStock {
                    sku: item.sku.clone(),
                    name,
                    left: row.try_get("stock")?,
                });
            }
            total_fee += price * item.qty;
            sqlx::query(
                "INSERT INTO order_items (order_id, sku, name, unit_price_fen, qty) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&order.id)
            .bind(&item.sku)
            .bind(&name)
            .bind(price)
            .bind(item.qty)
            .execute(&mut *tx)
            .await?;
            names.push(name);
        }
        // The session's advisory lock makes this count exact.
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM orders WHERE session_id = $1 AND status IN ('pending', 'closing')",
        )
        .bind(&order.session_id)
        .fetch_one(&mut *tx)
        .await?;
        if open >= order.max_open {
            return Err(CreateError::TooManyOpen(open));
        }
        let body = order_body(shop_name, &names);
        sqlx::query(
            "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, next_check_at, updated_at) \
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8)",
        )
        .bind(&order.id)
        .bind(&order.session_id)
        .bind(total_fee)
        .bind(&body)
        .bind(order.created_at)
        .bind(order.deadline_at)
        .bind(order.first_check_at)
        .bind(order.created_at)
        .execute(&mut *tx)
        .await?;
        let detail = format!("total_fee={total_fee}");
        append_event(&mut tx, &order.id, "created", Cause::Shopper, &detail).await?;
        tx.commit().await?;
        Ok(Created { total_fee, body })
    }

    pub async fn record_code_url(
        &self,
        id: &str,
        code_url: &str,
        prepay_id: &str,
    ) -> Result<bool, sqlx::Error> {
        // Deadlocks and serialization failures are retried, like every write here.
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let n = sqlx::query(
                "UPDATE orders SET code_url = $1, prepay_id = $2, updated_at = $3 \
                 WHERE id = $4 AND status IN ('pending', 'closing') AND (code_url IS NULL OR code_url <> $5)",
            )
            .bind(code_url)
            .bind(prepay_id)
            .bind(now_ms())
            .bind(id)
            .bind(code_url)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                let detail = format!("prepay_id={prepay_id}");
                append_event(&mut tx, id, "qr_issued", Cause::System, &detail).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn begin_close(
        &self,
        id: &str,
        reason: FailureReason,
        cause: Cause,
        check_at: i64,
    ) -> Result<bool, sqlx::Error> {
        // Deadlocks and serialization failures are retried, like every write here.
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let now = now_ms();
            let n = sqlx::query(
                "UPDATE orders SET status = 'closing', failure_reason = $1, next_check_at = $2, updated_at = $3 \
                 WHERE id = $4 AND status = 'pending' AND parked_at IS NULL",
            )
            .bind(reason.as_str())
            .bind(check_at)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                append_event(&mut tx, id, "closing", cause, reason.as_str()).await?;
            }
            tx.commit().await?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn finish_unpaid(
        &self,
        id: &str,
        from: &[OrderStatus],
        to: OrderStatus,
        reason: FailureReason,
        cause: Cause,
        detail: &str,
    ) -> Result<bool, sqlx::Error> {
        retrying(|| self.finish_unpaid_once(id, from, to, reason, cause, detail)).await
    }

    async fn finish_unpaid_once(
        &self,
        id: &str,
        from: &[OrderStatus],
        to: OrderStatus,
        reason: FailureReason,
        cause: Cause,
        detail: &str,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let n = sqlx::query(&format!(
            "UPDATE orders SET status = $1, failure_reason = COALESCE(failure_reason, $2), finished_at = $3, \
             updated_at = $4, next_check_at = NULL WHERE id = $5 AND status IN ({}) AND parked_at IS NULL",
            status_list(from)
        ))
        .bind(to.as_str())
        .bind(reason.as_str())
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            sqlx::query(
                "UPDATE products SET stock = stock + (SELECT qty FROM order_items i \
                 WHERE i.order_id = $1 AND i.sku = products.sku) \
                 WHERE sku IN (SELECT sku FROM order_items WHERE order_id = $2)",
            )
            .bind(id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            append_event(&mut tx, id, to.as_str(), cause, detail).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn mark_paid(&self, p: &Payment, cause: Cause) -> Result<PaidOutcome, sqlx::Error> {
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let outcome = mark_paid_in(&mut tx, p, cause).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }
}

/// `pending | closing → paid`, guarded by the amount, inside the caller's transaction. A payment
/// that cannot be applied is recorded once as an anomaly, and an unfinished order parked.
/// The guarded paid update alone, returning the order as it now is; None when the order is not
/// pending or closing with this amount (the caller then goes through `mark_paid_in`).
pub(super) async fn mark_paid_returning(
    conn: &mut PgConnection,
    p: &Payment,
) -> Result<Option<OrderRow>, sqlx::Error> {
    let now = now_ms();
    let row = sqlx::query(&format!(
        "UPDATE orders SET status = 'paid', transaction_id = $1, paid_at = $2, finished_at = $3, updated_at = $3, \
         next_check_at = NULL WHERE id = $4 AND status IN ('pending', 'closing') AND total_fee = $5 \
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(&p.transaction_id)
    .bind(p.paid_at)
    .bind(now)
    .bind(&p.out_trade_no)
    .bind(p.total_fee)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(order_row).transpose()
}

pub(super) async fn mark_paid_in(
    conn: &mut PgConnection,
    p: &Payment,
    cause: Cause,
) -> Result<PaidOutcome, sqlx::Error> {
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE orders SET status = 'paid', transaction_id = $1, paid_at = $2, finished_at = $3, updated_at = $4, \
         next_check_at = NULL WHERE id = $5 AND status IN ('pending', 'closing') AND total_fee = $6",
    )
    .bind(&p.transaction_id)
    .bind(p.paid_at)
    .bind(now)
    .bind(now)
    .bind(&p.out_trade_no)
    .bind(p.total_fee)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 1 {
        let detail = p.detail();
        append_event(conn, &p.out_trade_no, "paid", cause, &detail).await?;
        return Ok(PaidOutcome::Paid);
    }
    // Not applied: find out why, and never let money go unnoticed.
    let row: Option<(String, i64, Option<String>)> =
        // Locked: the anomaly's events are appended under the order row's lock, like every other.
        sqlx::query_as("SELECT status, total_fee, transaction_id FROM orders WHERE id = $1 FOR UPDATE")
            .bind(&p.out_trade_no)
            .fetch_optional(&mut *conn)
            .await?;
    let evidence = format!(
        "{} paid_at={} via {}",
        p.detail(),
        p.paid_at,
        cause.as_str()
    );
    let Some((status, total_fee, txn)) = row else {
        record_anomaly(conn, p, "unknown_order", &evidence).await?;
        return Ok(PaidOutcome::Anomaly("unknown_order"));
    };
    let Some(kind) = classify_unapplied(&status, total_fee, txn.as_deref(), p) else {
        return Ok(PaidOutcome::AlreadyPaid);
    };
    let detail = format!("{evidence}; order status={status} total_fee={total_fee}");
    if record_anomaly(conn, p, kind, &detail).await? {
        append_event(
            conn,
            &p.out_trade_no,
            "anomaly",
            cause,
            &format!("{kind}: {detail}"),
        )
        .await?;
        if status == "pending" || status == "closing" {
            // Money arrived that cannot be applied: stop the automatic flows (no more checks, no
            // close) and leave the order, its stock and the evidence to an operator.
            sqlx::query(
                "UPDATE orders SET parked_at = $1, next_check_at = NULL, updated_at = $2 WHERE id = $3",
            )
            .bind(now_ms())
            .bind(now_ms())
            .bind(&p.out_trade_no)
            .execute(&mut *conn)
            .await?;
            append_event(conn, &p.out_trade_no, "parked", cause, kind).await?;
        }
    }
    Ok(PaidOutcome::Anomaly(kind))
}
