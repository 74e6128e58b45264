//! MySQL/MariaDB: the order transitions. Each is one guarded `UPDATE … WHERE status IN (…)` whose
//! `rows_affected` decides what happens next, with its event in the same transaction; stock moves
//! only inside those transactions, so it is reserved once and restored at most once.

use sqlx::{MySqlConnection, Row};

use super::session_lock::LockedConn;
use super::timeline::{append_event, record_anomaly};
use super::{retryable, retrying, MySqlStore, RETRIES};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{
    classify_unapplied, order_body, status_list, Cause, CreateError, Created, HideOutcome,
    NewOrder, PaidOutcome, Payment,
};
use crate::server::support::clock::now_ms;

impl MySqlStore {
    /// Hides a finished order from its shopper's list: a logical delete (the row, its events and
    /// the operators' view stay). Hiding it again changes nothing.
    pub async fn hide(&self, id: &str, session_id: &str) -> Result<HideOutcome, sqlx::Error> {
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            let now = now_ms();
            let n = sqlx::query(
                "UPDATE orders SET hidden_at = ?, updated_at = ? WHERE id = ? AND session_id = ? \
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
                append_event(
                    &mut tx,
                    id,
                    "hidden",
                    Cause::Shopper,
                    "hidden from the shopper's list",
                )
                .await?;
                tx.commit().await?;
                return Ok(HideOutcome::Hidden);
            }
            let row: Option<(String, Option<i64>)> = sqlx::query_as(
                "SELECT status, hidden_at FROM orders WHERE id = ? AND session_id = ?",
            )
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

    /// One placing per session at a time (a named lock, MySQL's advisory lock), so the
    /// open-order count cannot be outrun; a locking read would take gap locks that deadlock
    /// placings of different sessions against each other.
    async fn create_order_once(
        &self,
        order: &NewOrder,
        shop_name: &str,
    ) -> Result<Created, CreateError> {
        // Armed before GET_LOCK is sent: a future dropped while waiting for its answer may have
        // been granted the lock all the same.
        let mut conn = LockedConn(Some(self.pool.acquire().await?));
        let key = format!("scanpay_s_{}", order.session_id);
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 10)")
            .bind(&key)
            .fetch_one(conn.conn())
            .await?;
        if got != Some(1) {
            conn.release_to_pool();
            return Err(CreateError::Db(sqlx::Error::PoolTimedOut));
        }
        let result = create_in(conn.conn(), order, shop_name).await;
        let released: Result<Option<i64>, _> = sqlx::query_scalar("SELECT RELEASE_LOCK(?)")
            .bind(&key)
            .fetch_one(conn.conn())
            .await;
        if released.is_ok() {
            conn.release_to_pool();
        } // else dropped, closing the connection and with it the lock
        result
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
                "UPDATE orders SET code_url = ?, prepay_id = ?, updated_at = ? \
                 WHERE id = ? AND status IN ('pending', 'closing') AND (code_url IS NULL OR code_url <> ?)",
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
                "UPDATE orders SET status = 'closing', failure_reason = ?, next_check_at = ?, updated_at = ? \
                 WHERE id = ? AND status = 'pending' AND parked_at IS NULL",
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
            "UPDATE orders SET status = ?, failure_reason = COALESCE(failure_reason, ?), finished_at = ?, \
             updated_at = ?, next_check_at = NULL WHERE id = ? AND status IN ({}) AND parked_at IS NULL",
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
                "UPDATE products p JOIN order_items i ON i.sku = p.sku \
                 SET p.stock = p.stock + i.qty WHERE i.order_id = ?",
            )
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
pub(super) async fn mark_paid_in(
    conn: &mut MySqlConnection,
    p: &Payment,
    cause: Cause,
) -> Result<PaidOutcome, sqlx::Error> {
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE orders SET status = 'paid', transaction_id = ?, paid_at = ?, finished_at = ?, updated_at = ?, \
         next_check_at = NULL WHERE id = ? AND status IN ('pending', 'closing') AND total_fee = ?",
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
        sqlx::query_as("SELECT status, total_fee, transaction_id FROM orders WHERE id = ? FOR UPDATE")
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
                "UPDATE orders SET parked_at = ?, next_check_at = NULL, updated_at = ? WHERE id = ?",
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

/// Places the order on a connection that holds the session's lock.
async fn create_in(
    conn: &mut MySqlConnection,
    order: &NewOrder,
    shop_name: &str,
) -> Result<Created, CreateError> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE session_id = ? AND status IN ('pending', 'closing')",
    )
    .bind(&order.session_id)
    .fetch_one(&mut *tx)
    .await?;
    if open >= order.max_open {
        return Err(CreateError::TooManyOpen(open));
    }
    let mut total_fee = 0i64;
    let mut names = Vec::new();
    for item in &order.items {
        // Rows are locked in SKU order (the cart is sorted), so two orders cannot deadlock here.
        let taken =
            sqlx::query("UPDATE products SET stock = stock - ? WHERE sku = ? AND stock >= ?")
                .bind(item.qty)
                .bind(&item.sku)
                .bind(item.qty)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let row = sqlx::query("SELECT name, price_fen, stock FROM products WHERE sku = ?")
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
                "INSERT INTO order_items (order_id, sku, name, unit_price_fen, qty) VALUES (?, ?, ?, ?, ?)",
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
    let body = order_body(shop_name, &names);
    sqlx::query(
            "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, next_check_at, updated_at) \
             VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
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
