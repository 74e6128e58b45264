//! What scanpay holds for a day (the comparison's facts), the day's lines, their resolution,
//! and the open differences for /metrics and the overview.

/// Stamped by `recon_sql!`: `$int` is the engine's integer cast (SUM is NUMERIC on PostgreSQL,
/// DECIMAL on MySQL).
macro_rules! recon_lines_sql {
    ($store:ident, $row:ty, $q:path, $int:literal) => {
        use sqlx::Row as _;

        use crate::app::types::OrderStatus;
        use crate::server::domain::recon::{
            ClassTotal, LineKind, LocalAnomaly, LocalOrder, LocalRefund, ReconClass, ReconLine,
        };
        use crate::server::domain::RefundStatus;
        use crate::server::store::recon::{marks, DIFFERENCES, IN_BATCH};

        fn decode<T>(what: &str, v: Option<T>) -> Result<T, sqlx::Error> {
            v.ok_or_else(|| sqlx::Error::Decode(format!("unknown {what}").into()))
        }

        fn local_order(r: &$row) -> Result<LocalOrder, sqlx::Error> {
            let status: String = r.try_get("status")?;
            Ok(LocalOrder {
                id: r.try_get("id")?,
                status: decode("order status", OrderStatus::parse(&status))?,
                total_fee: r.try_get("total_fee")?,
                transaction_id: r.try_get("transaction_id")?,
                paid_at: r.try_get("paid_at")?,
            })
        }

        fn local_refund(r: &$row) -> Result<LocalRefund, sqlx::Error> {
            let status: String = r.try_get("status")?;
            Ok(LocalRefund {
                out_refund_no: r.try_get("out_refund_no")?,
                order_id: r.try_get("order_id")?,
                transaction_id: r.try_get("transaction_id")?,
                refund_fee: r.try_get("refund_fee")?,
                status: decode("refund status", RefundStatus::parse(&status))?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn local_anomaly(r: &$row) -> Result<LocalAnomaly, sqlx::Error> {
            Ok(LocalAnomaly {
                transaction_id: r.try_get("transaction_id")?,
                order_id: r.try_get("order_id")?,
                kind: r.try_get("kind")?,
                resolved: r.try_get::<Option<i64>, _>("resolved_at")?.is_some(),
            })
        }

        fn line(r: &$row) -> Result<ReconLine, sqlx::Error> {
            let kind: String = r.try_get("kind")?;
            let class: String = r.try_get("class")?;
            Ok(ReconLine {
                key: r.try_get("line_key")?,
                kind: decode("line kind", LineKind::parse(&kind))?,
                class: decode("line class", ReconClass::parse(&class))?,
                out_trade_no: r.try_get("out_trade_no")?,
                transaction_id: r.try_get("transaction_id")?,
                out_refund_no: r.try_get("out_refund_no")?,
                trade_time: r.try_get("trade_time")?,
                wechat_fen: r.try_get("wechat_fen")?,
                local_fen: r.try_get("local_fen")?,
                wechat_state: r.try_get("wechat_state")?,
                local_state: r.try_get("local_state")?,
                fee_millifen: r.try_get("fee_millifen")?,
                note: r.try_get("note")?,
                resolved_at: r.try_get("resolved_at")?,
                resolved_by: r.try_get("resolved_by")?,
                resolution: r.try_get("resolution")?,
            })
        }

        const ORDER: &str = "SELECT id, status, total_fee, transaction_id, paid_at FROM orders";
        const REFUND: &str = "SELECT out_refund_no, order_id, transaction_id, refund_fee, status, \
             created_at FROM refunds";
        const LINE: &str = "SELECT line_key, kind, class, out_trade_no, transaction_id, \
             out_refund_no, trade_time, wechat_fen, local_fen, wechat_state, local_state, \
             fee_millifen, note, resolved_at, resolved_by, resolution FROM recon_lines";

        impl $store {
            /// Orders WeChat says were paid in [from, to) (`paid_at` is WeChat's `time_end`).
            pub async fn recon_paid_between(
                &self,
                from: i64,
                to: i64,
            ) -> Result<Vec<LocalOrder>, sqlx::Error> {
                let sql = format!("{ORDER} WHERE paid_at >= ? AND paid_at < ?");
                sqlx::query(&$q(&sql))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(local_order)
                    .collect()
            }

            pub async fn recon_orders(&self, ids: &[String]) -> Result<Vec<LocalOrder>, sqlx::Error> {
                self.fetch_in(&format!("{ORDER} WHERE id"), ids, local_order).await
            }

            /// The rows `head IN (…)` names, `IN_BATCH` ids a statement.
            async fn fetch_in<T>(
                &self,
                head: &str,
                ids: &[String],
                read: fn(&$row) -> Result<T, sqlx::Error>,
            ) -> Result<Vec<T>, sqlx::Error> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(IN_BATCH) {
                    let sql = $q(&format!("{head} IN ({})", marks(chunk.len())));
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for r in q.fetch_all(&self.pool).await? {
                        out.push(read(&r)?);
                    }
                }
                Ok(out)
            }

            /// The anomalies recording any of these payments.
            pub async fn recon_anomalies(
                &self,
                transaction_ids: &[String],
            ) -> Result<Vec<LocalAnomaly>, sqlx::Error> {
                let head = "SELECT transaction_id, order_id, kind, resolved_at FROM anomalies \
                     WHERE transaction_id";
                self.fetch_in(head, transaction_ids, local_anomaly).await
            }

            /// Refunds recorded in [from, to).
            pub async fn recon_refunds_between(
                &self,
                from: i64,
                to: i64,
            ) -> Result<Vec<LocalRefund>, sqlx::Error> {
                let sql = format!("{REFUND} WHERE created_at >= ? AND created_at < ?");
                sqlx::query(&$q(&sql))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(local_refund)
                    .collect()
            }

            pub async fn recon_refunds(&self, nos: &[String]) -> Result<Vec<LocalRefund>, sqlx::Error> {
                self.fetch_in(&format!("{REFUND} WHERE out_refund_no"), nos, local_refund).await
            }

            /// When the first order was placed (no day before it needs reconciling).
            pub async fn first_order_at(&self) -> Result<Option<i64>, sqlx::Error> {
                sqlx::query(&$q("SELECT MIN(created_at) AS at FROM orders"))
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("at")
            }

            /// A page of the day's lines in key order after `after`: every line, or only the
            /// differences.
            pub async fn recon_lines(
                &self,
                date: &str,
                differences_only: bool,
                after: &str,
                limit: i64,
            ) -> Result<Vec<ReconLine>, sqlx::Error> {
                let only = if differences_only {
                    format!(" AND {DIFFERENCES}")
                } else {
                    String::new()
                };
                let sql = format!(
                    "{LINE} WHERE bill_date = ? AND line_key > ?{only} ORDER BY line_key LIMIT ?"
                );
                sqlx::query(&$q(&sql))
                    .bind(date)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(line)
                    .collect()
            }

            pub async fn recon_line(
                &self,
                date: &str,
                key: &str,
            ) -> Result<Option<ReconLine>, sqlx::Error> {
                let sql = format!("{LINE} WHERE bill_date = ? AND line_key = ?");
                sqlx::query(&$q(&sql))
                    .bind(date)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| line(&r))
                    .transpose()
            }

            /// The differences naming this order, newest day first.
            pub async fn recon_lines_of_order(
                &self,
                order_id: &str,
            ) -> Result<Vec<(String, ReconLine)>, sqlx::Error> {
                let sql = format!(
                    "{}, bill_date FROM recon_lines WHERE out_trade_no = ? AND {DIFFERENCES} \
                     ORDER BY bill_date DESC",
                    LINE.trim_end_matches(" FROM recon_lines")
                );
                let rows = sqlx::query(&$q(&sql))
                    .bind(order_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("bill_date")?, line(r)?)))
                    .collect()
            }

            /// What a run found, to note beside a difference once WeChat was asked about it.
            pub async fn recon_note(
                &self,
                date: &str,
                key: &str,
                note: &str,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(&$q(
                    "UPDATE recon_lines SET note = ? WHERE bill_date = ? AND line_key = ?",
                ))
                .bind(note)
                .bind(date)
                .bind(key)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// Resolves an open difference with who and why; false if it is not an open one.
            pub async fn recon_resolve(
                &self,
                date: &str,
                key: &str,
                by: &str,
                reason: &str,
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                crate::server::store::retrying(|| async {
                    let mut tx = self.pool.begin().await?;
                    // The day's row first, as a save takes it: the two never wait on each other
                    // in opposite orders.
                    sqlx::query(&$q("UPDATE recon_days SET updated_at = ? WHERE bill_date = ?"))
                        .bind(now)
                        .bind(date)
                        .execute(&mut *tx)
                        .await?;
                    let done = sqlx::query(&$q(
                        "UPDATE recon_lines SET resolved_at = ?, resolved_by = ?, resolution = ? \
                         WHERE bill_date = ? AND line_key = ? AND class <> 'matched' \
                         AND resolved_at IS NULL",
                    ))
                    .bind(now)
                    .bind(by)
                    .bind(reason)
                    .bind(date)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if done == 1 {
                        sqlx::query(&$q(
                            "UPDATE recon_days SET n_open = n_open - 1 WHERE bill_date = ?",
                        ))
                        .bind(date)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(done == 1)
                })
                .await
            }

            /// Count, amounts and open differences of each class on the day.
            pub async fn recon_totals(&self, date: &str) -> Result<[ClassTotal; 5], sqlx::Error> {
                let sql = "SELECT class, COUNT(*) AS n, \
                     CAST(COALESCE(SUM(wechat_fen), 0) AS INTTYPE) AS w, \
                     CAST(COALESCE(SUM(local_fen), 0) AS INTTYPE) AS l, \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NULL AND class <> 'matched' \
                     THEN 1 ELSE 0 END), 0) AS INTTYPE) AS o \
                     FROM recon_lines WHERE bill_date = ? GROUP BY class"
                    .replace("INTTYPE", $int);
                let mut t: [ClassTotal; 5] = Default::default();
                for r in sqlx::query(&$q(&sql))
                    .bind(date)
                    .fetch_all(&self.pool)
                    .await?
                {
                    let class: String = r.try_get("class")?;
                    let c = decode("line class", ReconClass::parse(&class))?;
                    t[c.index()] = ClassTotal {
                        count: r.try_get("n")?,
                        wechat_fen: r.try_get("w")?,
                        local_fen: r.try_get("l")?,
                        open: r.try_get("o")?,
                    };
                }
                Ok(t)
            }

            /// Open differences of each class, over every day.
            pub async fn recon_open_by_class(&self) -> Result<[i64; 5], sqlx::Error> {
                let mut out = [0i64; 5];
                let sql = format!(
                    "SELECT class, COUNT(*) AS n FROM recon_lines \
                     WHERE {DIFFERENCES} AND resolved_at IS NULL GROUP BY class"
                );
                for r in sqlx::query(&$q(&sql)).fetch_all(&self.pool).await? {
                    let class: String = r.try_get("class")?;
                    out[decode("line class", ReconClass::parse(&class))?.index()] = r.try_get("n")?;
                }
                Ok(out)
            }
        }
    };
}
pub(crate) use recon_lines_sql;
