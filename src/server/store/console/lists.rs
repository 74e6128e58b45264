//! The console's lists and counts: the orders list, anomalies, the overview's and /metrics'
//! counts, the operations log (stamped into each engine by `console_sql!`).

/// The lists' methods for one engine's store.
macro_rules! console_lists_sql {
    ($store:ident, $row:ty, $q:path, $idiv:literal, $int:literal) => {
        use sqlx::Row as _;

        use crate::server::domain::{
            AnomalyItem, Backlog, CallRow, NotifyRow, OrderFilter, OrderLine, OverviewCounts,
        };

        fn anomaly_item(r: &$row) -> Result<AnomalyItem, sqlx::Error> {
            Ok(AnomalyItem {
                id: r.try_get("id")?,
                order_id: r.try_get("order_id")?,
                transaction_id: r.try_get("transaction_id")?,
                kind: r.try_get("kind")?,
                detail: r.try_get("detail")?,
                at: r.try_get("at")?,
                resolved_at: r.try_get("resolved_at")?,
                resolution: r.try_get("resolution")?,
            })
        }

        fn order_line(r: &$row) -> Result<OrderLine, sqlx::Error> {
            let status: String = r.try_get("status")?;
            Ok(OrderLine {
                id: r.try_get("id")?,
                status: crate::app::types::OrderStatus::parse(&status).ok_or_else(|| {
                    sqlx::Error::Decode(format!("status {status:?}").into())
                })?,
                total_fee: r.try_get("total_fee")?,
                refunded_fee: r.try_get("refunded_fee")?,
                body: r.try_get("body")?,
                created_at: r.try_get("created_at")?,
                paid_at: r.try_get("paid_at")?,
                transaction_id: r.try_get("transaction_id")?,
                anomalies: r.try_get("anomalies")?,
            })
        }

        impl $store {
            /// One page of the orders list, newest first, as the filter selects.
            pub async fn orders_page(
                &self,
                f: &OrderFilter,
                limit: i64,
            ) -> Result<Vec<OrderLine>, sqlx::Error> {
                let (sql, args) = crate::server::store::console::facade::orders_sql(f, limit);
                let sql = $q(&sql);
                let mut q = sqlx::query(&sql);
                for a in args {
                    q = match a {
                        crate::server::store::console::facade::Arg::I(v) => q.bind(v),
                        crate::server::store::console::facade::Arg::S(v) => q.bind(v),
                    };
                }
                q.fetch_all(&self.pool).await?.iter().map(order_line).collect()
            }

            /// Anomalies, the open ones first, newest first within each.
            pub async fn anomaly_list(&self, limit: i64) -> Result<Vec<AnomalyItem>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT id, order_id, transaction_id, kind, detail, at, resolved_at, resolution \
                     FROM anomalies ORDER BY CASE WHEN resolved_at IS NULL THEN 0 ELSE 1 END, at DESC \
                     LIMIT ?",
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(anomaly_item)
                .collect()
            }

            /// One anomaly, open or resolved.
            pub async fn anomaly(&self, id: &str) -> Result<Option<AnomalyItem>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT id, order_id, transaction_id, kind, detail, at, resolved_at, resolution \
                     FROM anomalies WHERE id = ?",
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| anomaly_item(&r))
                .transpose()
            }

            /// An order's anomalies, oldest first.
            pub async fn anomalies_of(&self, order_id: &str) -> Result<Vec<AnomalyItem>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT id, order_id, transaction_id, kind, detail, at, resolved_at, resolution \
                     FROM anomalies WHERE order_id = ? ORDER BY at",
                ))
                .bind(order_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(anomaly_item)
                .collect()
            }

            /// Marks an open anomaly resolved with who and why; false if it was not open.
            pub async fn resolve_anomaly(
                &self,
                id: &str,
                resolution: &str,
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                Ok(sqlx::query(&$q(
                    "UPDATE anomalies SET resolved_at = ?, resolution = ? \
                     WHERE id = ? AND resolved_at IS NULL",
                ))
                .bind(now)
                .bind(resolution)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0)
            }

            /// Today's counts (orders placed, paid and refunded since `day_start`) and what is
            /// open now.
            pub async fn overview_counts(&self, day_start: i64) -> Result<OverviewCounts, sqlx::Error> {
                // SUM is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast back to an integer.
                let one = |sql: &'static str| {
                    let sql = $q(&sql.replace("INTTYPE", $int));
                    async move {
                        sqlx::query(&sql)
                            .bind(day_start)
                            .fetch_one(&self.pool)
                            .await
                    }
                };
                let placed = one(
                    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CASE WHEN paid_at IS NULL THEN 0 ELSE 1 END), 0) \
                     AS INTTYPE) AS fen FROM orders WHERE created_at >= ?",
                )
                .await?;
                let paid = one(
                    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(total_fee), 0) AS INTTYPE) AS fen FROM orders \
                     WHERE paid_at >= ?",
                )
                .await?;
                let refunds = one(
                    "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(refund_fee), 0) AS INTTYPE) AS fen FROM refunds \
                     WHERE status = 'success' AND finished_at >= ?",
                )
                .await?;
                let open = sqlx::query(&$q(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM orders \
                     WHERE status IN ('pending', 'closing')",
                ))
                .fetch_one(&self.pool)
                .await?;
                let anomalies: i64 = sqlx::query_scalar(&$q(
                    "SELECT COUNT(*) FROM anomalies WHERE resolved_at IS NULL",
                ))
                .fetch_one(&self.pool)
                .await?;
                let fen = |r: &$row| r.try_get::<i64, _>("fen");
                Ok(OverviewCounts {
                    placed: placed.try_get("n")?,
                    placed_paid: fen(&placed)?,
                    paid: paid.try_get("n")?,
                    paid_fen: fen(&paid)?,
                    refunds: refunds.try_get("n")?,
                    refunded_fen: fen(&refunds)?,
                    unfinished: open.try_get("n")?,
                    oldest_unfinished_at: open.try_get("oldest")?,
                    anomalies_open: anomalies,
                })
            }

            pub async fn backlog(&self, now: i64) -> Result<Backlog, sqlx::Error> {
                let due = sqlx::query(&$q(
                    "SELECT COUNT(*) AS n, MIN(next_check_at) AS oldest FROM orders \
                     WHERE status IN ('pending', 'closing') AND parked_at IS NULL AND next_check_at <= ?",
                ))
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let deadlines: i64 = sqlx::query_scalar(&$q(
                    "SELECT COUNT(*) FROM orders WHERE status = 'pending' AND parked_at IS NULL \
                     AND deadline_at <= ?",
                ))
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let inbox: i64 = sqlx::query_scalar(&$q(
                    "SELECT COUNT(*) FROM pay_inbox WHERE processed_at IS NULL",
                ))
                .fetch_one(&self.pool)
                .await?;
                let oldest: Option<i64> = due.try_get("oldest")?;
                Ok(Backlog {
                    due: due.try_get("n")?,
                    lag_ms: oldest.map_or(0, |o| (now - o).max(0)),
                    deadlines_due: deadlines,
                    inbox_waiting: inbox,
                })
            }

            /// Orders placed and paid per hour since `since`: (hour index from `since`, count).
            pub async fn hourly(
                &self,
                since: i64,
            ) -> Result<(Vec<(i64, i64)>, Vec<(i64, i64)>), sqlx::Error> {
                let per_hour = |column: &str| {
                    $q(&format!(
                        "SELECT ({column} - ?) {} 3600000 AS h, COUNT(*) AS n FROM orders \
                         WHERE {column} >= ? GROUP BY h",
                        $idiv
                    ))
                };
                let mut out = Vec::new();
                for column in ["created_at", "paid_at"] {
                    let sql = per_hour(column);
                    let rows = sqlx::query(&sql)
                        .bind(since)
                        .bind(since)
                        .fetch_all(&self.pool)
                        .await?;
                    out.push(
                        rows.iter()
                            .map(|r| Ok((r.try_get::<i64, _>("h")?, r.try_get::<i64, _>("n")?)))
                            .collect::<Result<Vec<_>, sqlx::Error>>()?,
                    );
                }
                let paid = out.pop().unwrap_or_default();
                Ok((out.pop().unwrap_or_default(), paid))
            }

            /// Writes a batch of the operations log in one transaction.
            pub async fn write_oplog(
                &self,
                calls: &[CallRow],
                notifies: &[NotifyRow],
            ) -> Result<(), sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                let call_sql = $q("INSERT INTO wxpay_calls (at, order_id, api, result, latency_ms) \
                     VALUES (?, ?, ?, ?, ?)");
                for c in calls {
                    sqlx::query(&call_sql)
                        .bind(c.at)
                        .bind(&c.order_id)
                        .bind(&c.api)
                        .bind(&c.result)
                        .bind(c.latency_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                let notify_sql = $q("INSERT INTO notify_log (at, kind, order_id, reference, outcome, reason) \
                     VALUES (?, ?, ?, ?, ?, ?)");
                for n in notifies {
                    sqlx::query(&notify_sql)
                        .bind(n.at)
                        .bind(&n.kind)
                        .bind(&n.order_id)
                        .bind(&n.reference)
                        .bind(&n.outcome)
                        .bind(&n.reason)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }

            /// The calls made to WeChat for an order, oldest first.
            pub async fn calls_of(&self, order_id: &str, limit: i64) -> Result<Vec<CallRow>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT at, order_id, api, result, latency_ms FROM wxpay_calls \
                     WHERE order_id = ? ORDER BY at, id LIMIT ?",
                ))
                .bind(order_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| -> Result<CallRow, sqlx::Error> {
                    Ok(CallRow {
                        at: r.try_get("at")?,
                        order_id: r.try_get("order_id")?,
                        api: r.try_get("api")?,
                        result: r.try_get("result")?,
                        latency_ms: r.try_get("latency_ms")?,
                    })
                })
                .collect()
            }

            /// The notifies received naming an order, oldest first.
            pub async fn notifies_of(&self, order_id: &str, limit: i64) -> Result<Vec<NotifyRow>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT at, kind, order_id, reference, outcome, reason FROM notify_log \
                     WHERE order_id = ? ORDER BY at, id LIMIT ?",
                ))
                .bind(order_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| -> Result<NotifyRow, sqlx::Error> {
                    Ok(NotifyRow {
                        at: r.try_get("at")?,
                        kind: r.try_get("kind")?,
                        order_id: r.try_get("order_id")?,
                        reference: r.try_get("reference")?,
                        outcome: r.try_get("outcome")?,
                        reason: r.try_get("reason")?,
                    })
                })
                .collect()
            }

            /// The order an exact id names: an out_trade_no, a WeChat transaction_id (of the
            /// order or of an anomaly's payment), or an out_refund_no.
            pub async fn find_order_id(&self, id: &str) -> Result<Option<String>, sqlx::Error> {
                for sql in [
                    "SELECT id FROM orders WHERE id = ?",
                    "SELECT id FROM orders WHERE transaction_id = ?",
                    "SELECT order_id FROM refunds WHERE out_refund_no = ?",
                    "SELECT order_id FROM anomalies WHERE transaction_id = ?",
                ] {
                    let found: Option<String> = sqlx::query_scalar(&$q(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                Ok(None)
            }
        }
    };
}
pub(crate) use console_lists_sql;
