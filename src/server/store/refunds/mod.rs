//! Refunds in SQL. Unlike the order transitions, the refunds' SQL is the same on every engine:
//! plain portable statements (no upserts, no RETURNING, no engine locks), each transaction
//! opening with `UPDATE orders … WHERE id = ?`, which locks the order's row on PostgreSQL and
//! MySQL and takes the write lock on SQLite — so the guards (`domain::judge`) read facts nothing
//! can change until commit, and the events' `seq` cannot race. It is written once here and
//! stamped into each engine (`refund_sql!` here: requests, reads, claims; `refund_settle_sql!` in
//! `settle.rs`: the transitions after a request), with `?` renumbered to `$n` for PostgreSQL.

/// `?` → `$1, $2, …` (PostgreSQL's parameters). Our SQL has no `?` inside literals.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// MySQL's and SQLite's parameters are `?` already.
pub(crate) fn plain(sql: &str) -> String {
    sql.to_string()
}

pub(crate) const REFUND_COLUMNS: &str = "out_refund_no, order_id, transaction_id, total_fee, \
     refund_fee, reason, requested_by, restock, anomaly_id, status, refund_id, failure, \
     success_time, recv_account, created_at, updated_at, finished_at, next_check_at, check_attempts";

/// The refund methods for one engine's store: `$store` (with a `pool` field), its database's
/// row and connection types, and the placeholder style. Expanded inside the engine's module, beside its
/// `timeline::append_event`.
macro_rules! refund_sql {
    ($store:ident, $row:ty, $conn:ty, $q:path) => {
        use sqlx::Row as _;

        use crate::server::domain::{
            judge, AnomalyFacts, Cause, Judged, NewRefund, OrderFacts, RefundEnd, RefundOf,
            RefundRefusal, RefundRow, RefundStatus, Requested,
        };
        use crate::server::store::refunds::REFUND_COLUMNS;

        fn refund_row(r: &$row) -> Result<RefundRow, sqlx::Error> {
            let status: String = r.try_get("status")?;
            Ok(RefundRow {
                out_refund_no: r.try_get("out_refund_no")?,
                order_id: r.try_get("order_id")?,
                transaction_id: r.try_get("transaction_id")?,
                total_fee: r.try_get("total_fee")?,
                refund_fee: r.try_get("refund_fee")?,
                reason: r.try_get("reason")?,
                requested_by: r.try_get("requested_by")?,
                restock: r.try_get::<i64, _>("restock")? != 0,
                anomaly_id: r.try_get("anomaly_id")?,
                status: RefundStatus::parse(&status).ok_or_else(|| {
                    sqlx::Error::Decode(format!("refund status {status:?}").into())
                })?,
                refund_id: r.try_get("refund_id")?,
                failure: r.try_get("failure")?,
                success_time: r.try_get("success_time")?,
                recv_account: r.try_get("recv_account")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                finished_at: r.try_get("finished_at")?,
                next_check_at: r.try_get("next_check_at")?,
                check_attempts: r.try_get("check_attempts")?,
            })
        }

        impl $store {
            /// Checks the guards and writes the refund `requested`, with its event, in one
            /// transaction; nothing is written when a guard refuses it.
            pub async fn request_refund(
                &self,
                ask: &NewRefund,
            ) -> Result<Result<Requested, RefundRefusal>, sqlx::Error> {
                crate::server::store::retrying(|| async {
                    let mut tx = self.pool.begin().await?;
                    let locked = sqlx::query(&$q("UPDATE orders SET updated_at = ? WHERE id = ?"))
                        .bind(ask.now)
                        .bind(&ask.order_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if locked == 0 {
                        return Ok(Err(RefundRefusal::NoOrder));
                    }
                    let o = sqlx::query(&$q(
                        "SELECT status, total_fee, transaction_id FROM orders WHERE id = ?",
                    ))
                    .bind(&ask.order_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    let status: String = o.try_get("status")?;
                    let order = OrderFacts {
                        status: crate::app::types::OrderStatus::parse(&status).ok_or_else(
                            || sqlx::Error::Decode(format!("status {status:?}").into()),
                        )?,
                        total_fee: o.try_get("total_fee")?,
                        transaction_id: o.try_get("transaction_id")?,
                    };
                    let anomaly = match &ask.of {
                        RefundOf::Order => None,
                        RefundOf::Anomaly { transaction_id } => sqlx::query(&$q(
                            "SELECT id, kind, resolved_at FROM anomalies \
                             WHERE order_id = ? AND transaction_id = ?",
                        ))
                        .bind(&ask.order_id)
                        .bind(transaction_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|a| -> Result<AnomalyFacts, sqlx::Error> {
                            Ok(AnomalyFacts {
                                id: a.try_get("id")?,
                                kind: a.try_get("kind")?,
                                resolved: a.try_get::<Option<i64>, _>("resolved_at")?.is_some(),
                            })
                        })
                        .transpose()?,
                    };
                    let existing = refunds_in(&mut *tx, &ask.order_id).await?;
                    let (out_refund_no, transaction_id, total_fee, refund_fee, anomaly_id) =
                        match judge(ask, &order, anomaly.as_ref(), &existing) {
                            Err(refused) => return Ok(Err(refused)),
                            Ok(Judged::Same(row)) => return Ok(Ok(Requested::Existing(*row))),
                            Ok(Judged::New {
                                out_refund_no,
                                transaction_id,
                                total_fee,
                                refund_fee,
                                anomaly_id,
                            }) => (out_refund_no, transaction_id, total_fee, refund_fee, anomaly_id),
                        };
                    sqlx::query(&$q(
                        "INSERT INTO refunds (out_refund_no, order_id, transaction_id, total_fee, \
                         refund_fee, reason, requested_by, restock, anomaly_id, status, created_at, \
                         updated_at, next_check_at, check_attempts) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'requested', ?, ?, ?, 0)",
                    ))
                    .bind(&out_refund_no)
                    .bind(&ask.order_id)
                    .bind(&transaction_id)
                    .bind(total_fee)
                    .bind(refund_fee)
                    .bind(&ask.reason)
                    .bind(&ask.requested_by)
                    .bind(i64::from(ask.restock))
                    .bind(&anomaly_id)
                    .bind(ask.now)
                    .bind(ask.now)
                    .bind(ask.first_check_at)
                    .execute(&mut *tx)
                    .await?;
                    let detail = format!(
                        "out_refund_no={out_refund_no} refund_fee={refund_fee} transaction_id={transaction_id} \
                         by={} restock={} reason={}",
                        ask.requested_by, ask.restock, ask.reason
                    );
                    super::timeline::append_event(&mut tx, &ask.order_id, "refund_requested", ask.cause, &detail)
                        .await?;
                    let row = refund_in(&mut *tx, &out_refund_no).await?.ok_or(sqlx::Error::RowNotFound)?;
                    tx.commit().await?;
                    Ok(Ok(Requested::New(row)))
                })
                .await
            }

            pub async fn refund(&self, out_refund_no: &str) -> Result<Option<RefundRow>, sqlx::Error> {
                let mut conn = self.pool.acquire().await?;
                refund_in(&mut *conn, out_refund_no).await
            }

            /// An order's refunds, oldest first.
            pub async fn refunds_of(&self, order_id: &str) -> Result<Vec<RefundRow>, sqlx::Error> {
                let mut conn = self.pool.acquire().await?;
                refunds_in(&mut *conn, order_id).await
            }

            /// Claims up to `limit` refunds whose check is due (requested: send again;
            /// processing: refundquery), pushing each one's next check to `next_at(attempts)`.
            /// Each claim is a compare-and-set on `next_check_at`: of several claimers, one wins.
            pub async fn claim_due_refunds(
                &self,
                now: i64,
                limit: i64,
                next_at: &(dyn Fn(i64) -> i64 + Sync),
            ) -> Result<Vec<RefundRow>, sqlx::Error> {
                let due: Vec<(String, i64, i64)> = sqlx::query_as(&$q(
                    "SELECT out_refund_no, next_check_at, check_attempts FROM refunds \
                     WHERE next_check_at IS NOT NULL AND next_check_at <= ? ORDER BY next_check_at LIMIT ?",
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = Vec::new();
                for (no, at, attempts) in due {
                    let n = sqlx::query(&$q(
                        "UPDATE refunds SET next_check_at = ?, check_attempts = check_attempts + 1 \
                         WHERE out_refund_no = ? AND next_check_at = ?",
                    ))
                    .bind(next_at(attempts + 1))
                    .bind(&no)
                    .bind(at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        if let Some(r) = self.refund(&no).await? {
                            claimed.push(r);
                        }
                    }
                }
                Ok(claimed)
            }

            /// Open anomalies whose payment scanpay refunds by itself (a late payment of a
            /// closed order, a second payment) and that it has not asked to refund yet: it asks
            /// once; one WeChat refused or closed stays open for a person.
            pub async fn unrefunded_anomalies(
                &self,
                limit: i64,
            ) -> Result<Vec<(String, String)>, sqlx::Error> {
                sqlx::query_as(&$q(
                    "SELECT a.order_id, a.transaction_id FROM anomalies a \
                     WHERE a.resolved_at IS NULL AND a.kind IN ('paid_after_close', 'second_payment') \
                     AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.anomaly_id = a.id) \
                     ORDER BY a.at LIMIT ?",
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }

        async fn refund_in(
            conn: &mut $conn,
            out_refund_no: &str,
        ) -> Result<Option<RefundRow>, sqlx::Error> {
            let sql = $q(&format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE out_refund_no = ?"));
            sqlx::query(&sql)
                .bind(out_refund_no)
                .fetch_optional(&mut *conn)
                .await?
                .map(|r| refund_row(&r))
                .transpose()
        }

        async fn refunds_in(
            conn: &mut $conn,
            order_id: &str,
        ) -> Result<Vec<RefundRow>, sqlx::Error> {
            let sql = $q(&format!(
                "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = ? ORDER BY created_at, out_refund_no"
            ));
            sqlx::query(&sql)
                .bind(order_id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(refund_row)
                .collect()
        }

    };
}

pub(crate) use refund_sql;

mod settle;
pub(crate) use settle::refund_settle_sql;

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            super::numbered("UPDATE t SET a = ?, b = ? WHERE c = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3"
        );
        assert_eq!(super::plain("a = ?"), "a = ?");
    }
}
