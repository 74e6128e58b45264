//! The refund transitions after a request — accepted, uncertain, refused, settled — each under
//! the order's row lock taken as its transaction's first statement, and what a success changes
//! (refunded amount, restock once, the anomaly resolved). Stamped into each engine beside
//! `refund_sql!`, whose row readers it uses.

macro_rules! refund_settle_sql {
    ($store:ident, $conn:ty, $q:path) => {
        impl $store {
            /// `requested → processing`: WeChat accepted the application (`refund_id` is its
            /// number); refundquery looks at it at `next_check_at`.
            pub async fn refund_accepted(
                &self,
                out_refund_no: &str,
                refund_id: &str,
                cause: Cause,
                next_check_at: i64,
            ) -> Result<bool, sqlx::Error> {
                let detail = format!("out_refund_no={out_refund_no} refund_id={refund_id}");
                self.refund_step(out_refund_no, "refund_processing", cause, &detail, |now| {
                    (
                        $q("UPDATE refunds SET status = 'processing', refund_id = ?, failure = NULL, \
                            updated_at = ?, next_check_at = ? WHERE out_refund_no = ? AND status = 'requested'"),
                        vec![Some(refund_id.to_string())],
                        vec![now, next_check_at],
                    )
                })
                .await
            }

            /// `requested` stays: the answer was uncertain (timeout, SYSTEMERROR, 5xx, a page
            /// that is not WeChat's); the same request is sent again at `next_check_at`.
            pub async fn refund_uncertain(
                &self,
                out_refund_no: &str,
                error: &str,
                cause: Cause,
                next_check_at: i64,
            ) -> Result<bool, sqlx::Error> {
                let detail = format!("out_refund_no={out_refund_no} retry: {error}");
                self.refund_step(out_refund_no, "refund_uncertain", cause, &detail, |now| {
                    (
                        $q("UPDATE refunds SET failure = ?, updated_at = ?, next_check_at = ? \
                            WHERE out_refund_no = ? AND status = 'requested'"),
                        vec![Some(error.to_string())],
                        vec![now, next_check_at],
                    )
                })
                .await
            }

            /// `requested → failed`: WeChat refused it for good (NOTENOUGH, TRADE_OVERDUE, …);
            /// its amount is refundable again.
            pub async fn refund_refused(
                &self,
                out_refund_no: &str,
                reason: &str,
                cause: Cause,
            ) -> Result<bool, sqlx::Error> {
                let detail = format!("out_refund_no={out_refund_no} refused: {reason}");
                self.refund_step(out_refund_no, "refund_failed", cause, &detail, |now| {
                    (
                        $q("UPDATE refunds SET status = 'failed', failure = ?, updated_at = ?, finished_at = ?, \
                            next_check_at = NULL WHERE out_refund_no = ? AND status = 'requested'"),
                        vec![Some(reason.to_string())],
                        vec![now, now],
                    )
                })
                .await
            }

            /// `requested | processing | abnormal → success | closed | abnormal`, on WeChat's
            /// word (notify or refundquery). A success adds to what the shopper got back, puts
            /// the items back once the order is fully refunded (if asked), and resolves the
            /// anomaly the refund was for. False when it had already ended so.
            pub async fn settle_refund(
                &self,
                out_refund_no: &str,
                end: &RefundEnd,
                cause: Cause,
            ) -> Result<bool, sqlx::Error> {
                // The order a refund belongs to never changes: read before the transaction.
                let Some(order_id) = self.refund(out_refund_no).await?.map(|r| r.order_id) else {
                    return Ok(false);
                };
                crate::server::store::retrying(|| async {
                    let mut tx = self.pool.begin().await?;
                    let Some(r) = lock_refund(&mut *tx, &order_id, out_refund_no).await? else {
                        return Ok(false);
                    };
                    let to = end.status();
                    // WeChat's word ends it, even one scanpay had concluded `failed`; an end
                    // already recorded (success, closed) stays.
                    if r.status == to || matches!(r.status, RefundStatus::Success | RefundStatus::Closed) {
                        return Ok(false);
                    }
                    let now = crate::server::support::clock::now_ms();
                    let (refund_id, success_time, recv_account) = match end {
                        RefundEnd::Success { refund_id, success_time, recv_account } => {
                            (refund_id.clone(), success_time.clone(), recv_account.clone())
                        }
                        _ => (None, None, None),
                    };
                    // Abnormal waits for a person at WeChat: no more automatic checks.
                    let finished = (to != RefundStatus::Abnormal).then_some(now);
                    let changed = sqlx::query(&$q(
                        "UPDATE refunds SET status = ?, refund_id = COALESCE(?, refund_id), success_time = ?, \
                         recv_account = ?, updated_at = ?, finished_at = ?, next_check_at = NULL \
                         WHERE out_refund_no = ? AND status = ?",
                    ))
                    .bind(to.as_str())
                    .bind(&refund_id)
                    .bind(&success_time)
                    .bind(&recv_account)
                    .bind(now)
                    .bind(finished)
                    .bind(out_refund_no)
                    .bind(r.status.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    // A compare-and-set on the status read: of two settles racing, one applies.
                    if changed != 1 {
                        return Ok(false);
                    }
                    let kind = match to {
                        RefundStatus::Success => "refund_succeeded",
                        RefundStatus::Closed => "refund_closed",
                        _ => "refund_abnormal",
                    };
                    let detail = format!(
                        "out_refund_no={out_refund_no} refund_fee={}{}",
                        r.refund_fee,
                        recv_account.as_ref().map(|a| format!(" to={a}")).unwrap_or_default()
                    );
                    super::timeline::append_event(&mut tx, &r.order_id, kind, cause, &detail).await?;
                    if to == RefundStatus::Success {
                        after_success(&mut *tx, &r, cause, now).await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                })
                .await
            }

            /// One guarded UPDATE of a refund with its event, under the order's lock.
            async fn refund_step<F>(
                &self,
                out_refund_no: &str,
                kind: &str,
                cause: Cause,
                detail: &str,
                statement: F,
            ) -> Result<bool, sqlx::Error>
            where
                F: Fn(i64) -> (String, Vec<Option<String>>, Vec<i64>),
            {
                let Some(order_id) = self.refund(out_refund_no).await?.map(|r| r.order_id) else {
                    return Ok(false);
                };
                crate::server::store::retrying(|| async {
                    let mut tx = self.pool.begin().await?;
                    let Some(r) = lock_refund(&mut *tx, &order_id, out_refund_no).await? else {
                        return Ok(false);
                    };
                    let (sql, texts, numbers) = statement(crate::server::support::clock::now_ms());
                    let mut q = sqlx::query(&sql);
                    for t in texts {
                        q = q.bind(t);
                    }
                    for n in numbers {
                        q = q.bind(n);
                    }
                    let n = q.bind(out_refund_no).execute(&mut *tx).await?.rows_affected();
                    if n == 1 {
                        super::timeline::append_event(&mut tx, &r.order_id, kind, cause, detail).await?;
                    }
                    tx.commit().await?;
                    Ok(n == 1)
                })
                .await
            }

        }

        /// Locks the refund's order row as the transaction's first statement, then reads the
        /// refund: on MySQL the snapshot is taken at the first plain read, so it must come after
        /// the lock; on SQLite the write lock must come before any read, or the upgrade fails.
        async fn lock_refund(
            conn: &mut $conn,
            order_id: &str,
            out_refund_no: &str,
        ) -> Result<Option<RefundRow>, sqlx::Error> {
            sqlx::query(&$q("UPDATE orders SET updated_at = ? WHERE id = ?"))
                .bind(crate::server::support::clock::now_ms())
                .bind(order_id)
                .execute(&mut *conn)
                .await?;
            refund_in(&mut *conn, out_refund_no).await
        }

        /// What a successful refund changes besides itself, in its transaction.
        async fn after_success(
            conn: &mut $conn,
            r: &RefundRow,
            cause: Cause,
            now: i64,
        ) -> Result<(), sqlx::Error> {
            // The shopper got this back: of the order's own payment, or of a late payment of an
            // order that is not paid. A second payment's refund leaves the order's figure alone.
            sqlx::query(&$q(
                "UPDATE orders SET refunded_fee = refunded_fee + ? \
                 WHERE id = ? AND (transaction_id = ? OR status <> 'paid')",
            ))
            .bind(r.refund_fee)
            .bind(&r.order_id)
            .bind(&r.transaction_id)
            .execute(&mut *conn)
            .await?;
            if let Some(anomaly) = &r.anomaly_id {
                let resolution = format!("refunded by {}", r.out_refund_no);
                let n = sqlx::query(&$q(
                    "UPDATE anomalies SET resolved_at = ?, resolution = ? WHERE id = ? AND resolved_at IS NULL",
                ))
                .bind(now)
                .bind(&resolution)
                .bind(anomaly)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if n == 1 {
                    let detail = format!("anomaly={anomaly} {resolution}");
                    super::timeline::append_event(&mut *conn, &r.order_id, "anomaly_resolved", cause, &detail).await?;
                }
            }
            // Restock once: the order's payment fully refunded, and a refund of it asked for it.
            let full: Option<(i64,)> = sqlx::query_as(&$q(
                "SELECT total_fee FROM orders WHERE id = ? AND status = 'paid' AND transaction_id = ? \
                 AND restocked_at IS NULL AND refunded_fee >= total_fee \
                 AND EXISTS (SELECT 1 FROM refunds WHERE order_id = ? AND transaction_id = ? \
                             AND status = 'success' AND restock = 1)",
            ))
            .bind(&r.order_id)
            .bind(&r.transaction_id)
            .bind(&r.order_id)
            .bind(&r.transaction_id)
            .fetch_optional(&mut *conn)
            .await?;
            if full.is_some() {
                let items: Vec<(String, i64)> =
                    sqlx::query_as(&$q("SELECT sku, qty FROM order_items WHERE order_id = ? ORDER BY sku"))
                        .bind(&r.order_id)
                        .fetch_all(&mut *conn)
                        .await?;
                for (sku, qty) in &items {
                    sqlx::query(&$q("UPDATE products SET stock = stock + ? WHERE sku = ?"))
                        .bind(qty)
                        .bind(sku)
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query(&$q("UPDATE orders SET restocked_at = ? WHERE id = ?"))
                    .bind(now)
                    .bind(&r.order_id)
                    .execute(&mut *conn)
                    .await?;
                let detail = items
                    .iter()
                    .map(|(sku, qty)| format!("{sku}+{qty}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                super::timeline::append_event(&mut *conn, &r.order_id, "restocked", cause, &detail).await?;
            }
            Ok(())
        }
    };
}

pub(crate) use refund_settle_sql;
