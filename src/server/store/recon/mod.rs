//! The daily reconciliation's SQL, written once in portable statements and stamped into each
//! engine (like the refunds' and the console's), with `?` renumbered for PostgreSQL: the day's
//! claim and its result here; what scanpay holds for a day, and the lines' reads, in `lines.rs`.
//!
//! A day is one row of `recon_days`, claimed by a guarded UPDATE (`due` and its time come, or
//! `running` with its lease run out), so any number of workers run it once. The result is
//! written in one transaction that first checks the claim is still ours: a run that lost its
//! lease to another process writes nothing.

pub(crate) mod facade;
mod lines;

pub(crate) use lines::recon_lines_sql;

/// Lines go in this many to a statement (17 values each: well under every engine's limit).
pub(crate) const INSERT_BATCH: usize = 200;
/// Ids go in this many to an `IN (…)`.
pub(crate) const IN_BATCH: usize = 500;

/// The differences, as SQL: `IN` (an index serves it; `<> 'matched'` would scan every line).
pub(crate) const DIFFERENCES: &str =
    "class IN ('wechat_only', 'local_only', 'amount_differs', 'refund_differs')";

/// `?, ?, …` for `n` values.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub(crate) const DAY_COLUMNS: &str = "bill_date, status, attempts, next_attempt_at, last_error, \
     bill, raw_sha256, wechat_rows, wechat_settlement_fen, wechat_refund_fen, wechat_fee_millifen, \
     wechat_order_fen, local_paid_count, local_paid_fen, local_refund_count, local_refund_fen, \
     n_matched, n_wechat_only, n_local_only, n_amount_differs, n_refund_differs, n_open, \
     started_at, finished_at, run_by";

/// The reconciliation methods for one engine's store: its row type, the placeholder style and
/// the integer cast. Each half in a module of its own.
macro_rules! recon_sql {
    ($store:ident, $row:ty, $q:path, $int:literal) => {
        mod recon_days {
            use super::$store;
            crate::server::store::recon::recon_days_sql!($store, $row, $q);
        }
        mod recon_lines {
            use super::$store;
            crate::server::store::recon::recon_lines_sql!($store, $row, $q, $int);
        }
    };
}
pub(crate) use recon_sql;

/// The day: ensure, claim, give back, save.
macro_rules! recon_days_sql {
    ($store:ident, $row:ty, $q:path) => {
        use sqlx::Row as _;

        use crate::server::domain::recon::{
            DayResult, DayStatus, LocalTotals, ReconClass, ReconDayRow, ReconLine, WechatTotals,
        };
        use crate::server::store::recon::{marks, DAY_COLUMNS, INSERT_BATCH};

        pub(crate) fn day_row(r: &$row) -> Result<ReconDayRow, sqlx::Error> {
            let status: String = r.try_get("status")?;
            Ok(ReconDayRow {
                bill_date: r.try_get("bill_date")?,
                status: DayStatus::parse(&status).ok_or_else(|| {
                    sqlx::Error::Decode(format!("recon day status {status:?}").into())
                })?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_error: r.try_get("last_error")?,
                bill: r.try_get("bill")?,
                raw_sha256: r.try_get("raw_sha256")?,
                wechat: WechatTotals {
                    rows: r.try_get("wechat_rows")?,
                    settlement_fen: r.try_get("wechat_settlement_fen")?,
                    refund_fen: r.try_get("wechat_refund_fen")?,
                    fee_millifen: r.try_get("wechat_fee_millifen")?,
                    order_fen: r.try_get("wechat_order_fen")?,
                },
                local: LocalTotals {
                    paid_count: r.try_get("local_paid_count")?,
                    paid_fen: r.try_get("local_paid_fen")?,
                    refund_count: r.try_get("local_refund_count")?,
                    refund_fen: r.try_get("local_refund_fen")?,
                },
                counts: [
                    r.try_get("n_matched")?,
                    r.try_get("n_wechat_only")?,
                    r.try_get("n_local_only")?,
                    r.try_get("n_amount_differs")?,
                    r.try_get("n_refund_differs")?,
                ],
                open: r.try_get("n_open")?,
                started_at: r.try_get("started_at")?,
                finished_at: r.try_get("finished_at")?,
                run_by: r.try_get("run_by")?,
            })
        }

        impl $store {
            /// The day's row, `due` now, unless it exists.
            pub async fn recon_ensure_day(&self, date: &str, now: i64) -> Result<(), sqlx::Error> {
                // Looked up first: the insert's unique violation (two processes at once) is
                // handled, but PostgreSQL logs every one as an error.
                let held = sqlx::query(&$q("SELECT 1 FROM recon_days WHERE bill_date = ?"))
                    .bind(date)
                    .fetch_optional(&self.pool)
                    .await?;
                if held.is_some() {
                    return Ok(());
                }
                let r = sqlx::query(&$q(
                    "INSERT INTO recon_days (bill_date, status, attempts, next_attempt_at, \
                     created_at, updated_at) VALUES (?, 'due', 0, ?, ?, ?)",
                ))
                .bind(date)
                .bind(now)
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await;
                match r {
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(()),
                    other => other.map(|_| ()),
                }
            }

            /// Takes the day for `run_id` until `lease_until`: when it is due (or its last
            /// run's lease ran out), or in any state when `force` (a re-run on demand).
            pub async fn recon_claim(
                &self,
                date: &str,
                run_id: &str,
                now: i64,
                lease_until: i64,
                force: bool,
            ) -> Result<bool, sqlx::Error> {
                let guard = if force {
                    ""
                } else {
                    " AND ((status = 'due' AND next_attempt_at <= ?) \
                     OR (status = 'running' AND lease_until < ?))"
                };
                let sql = format!(
                    "UPDATE recon_days SET status = 'running', run_id = ?, lease_until = ?, \
                     attempts = attempts + 1, started_at = ?, updated_at = ? \
                     WHERE bill_date = ?{guard}"
                );
                let sql = $q(&sql);
                let mut q = sqlx::query(&sql)
                    .bind(run_id)
                    .bind(lease_until)
                    .bind(now)
                    .bind(now)
                    .bind(date);
                if !force {
                    q = q.bind(now).bind(now);
                }
                Ok(q.execute(&self.pool).await?.rows_affected() == 1)
            }

            /// Gives the day back after a run that could not have the bill: `due` again at
            /// `next_at`, or `failed` (None: a person runs it again), or `done` as it was when an
            /// earlier run finished it.
            pub async fn recon_give_back(
                &self,
                date: &str,
                run_id: &str,
                error: &str,
                next_at: Option<i64>,
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                let status = if next_at.is_some() { "due" } else { "failed" };
                Ok(sqlx::query(&$q(
                    "UPDATE recon_days SET status = CASE WHEN bill IS NULL THEN ? ELSE 'done' END, \
                     run_id = NULL, lease_until = NULL, next_attempt_at = ?, last_error = ?, \
                     updated_at = ? WHERE bill_date = ? AND run_id = ?",
                ))
                .bind(status)
                .bind(next_at)
                .bind(error)
                .bind(now)
                .bind(date)
                .bind(run_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            /// Holds the claim longer; false when it is no longer `run_id`'s.
            pub async fn recon_renew(
                &self,
                date: &str,
                run_id: &str,
                lease_until: i64,
            ) -> Result<bool, sqlx::Error> {
                Ok(sqlx::query(&$q(
                    "UPDATE recon_days SET lease_until = ? \
                     WHERE bill_date = ? AND run_id = ? AND status = 'running'",
                ))
                .bind(lease_until)
                .bind(date)
                .bind(run_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1)
            }

            /// Replaces the day's lines and totals with this run's, if the claim is still
            /// `run_id`'s; an operator's resolution stays on a line still there in the same class.
            pub async fn recon_save(
                &self,
                date: &str,
                run_id: &str,
                result: &DayResult,
                lines: &[ReconLine],
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                crate::server::store::retrying(|| async {
                    let mut tx = self.pool.begin().await?;
                    let ours = sqlx::query(&$q(
                        "UPDATE recon_days SET updated_at = ? \
                         WHERE bill_date = ? AND run_id = ? AND status = 'running'",
                    ))
                    .bind(now)
                    .bind(date)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if ours != 1 {
                        return Ok(false);
                    }
                    let mut kept = std::collections::HashMap::new();
                    for r in sqlx::query(&$q(
                        "SELECT line_key, class, resolved_at, resolved_by, resolution \
                         FROM recon_lines WHERE bill_date = ? AND resolved_at IS NOT NULL",
                    ))
                    .bind(date)
                    .fetch_all(&mut *tx)
                    .await?
                    {
                        let key: String = r.try_get("line_key")?;
                        let class: String = r.try_get("class")?;
                        let at: Option<i64> = r.try_get("resolved_at")?;
                        let by: Option<String> = r.try_get("resolved_by")?;
                        let why: Option<String> = r.try_get("resolution")?;
                        kept.insert((key, class), (at, by, why));
                    }
                    sqlx::query(&$q("DELETE FROM recon_lines WHERE bill_date = ?"))
                        .bind(date)
                        .execute(&mut *tx)
                        .await?;
                    let mut counts = [0i64; 5];
                    let mut open = 0i64;
                    for chunk in lines.chunks(INSERT_BATCH) {
                        let row = format!("({})", marks(17));
                        let sql = format!(
                            "INSERT INTO recon_lines (bill_date, line_key, kind, class, out_trade_no, \
                             transaction_id, out_refund_no, trade_time, wechat_fen, local_fen, \
                             wechat_state, local_state, fee_millifen, note, resolved_at, \
                             resolved_by, resolution) VALUES {}",
                            vec![row.as_str(); chunk.len()].join(", ")
                        );
                        let sql = $q(&sql);
                        let mut q = sqlx::query(&sql);
                        for l in chunk {
                            let k = (l.key.clone(), l.class.as_str().to_string());
                            let (at, by, why) = match (l.class, kept.get(&k)) {
                                (ReconClass::Matched, _) | (_, None) => (None, None, None),
                                (_, Some(r)) => r.clone(),
                            };
                            counts[l.class.index()] += 1;
                            open += (l.class != ReconClass::Matched && at.is_none()) as i64;
                            q = q
                                .bind(date)
                                .bind(l.key.as_str())
                                .bind(l.kind.as_str())
                                .bind(l.class.as_str())
                                .bind(l.out_trade_no.as_str())
                                .bind(l.transaction_id.as_str())
                                .bind(l.out_refund_no.as_str())
                                .bind(l.trade_time.as_str())
                                .bind(l.wechat_fen)
                                .bind(l.local_fen)
                                .bind(l.wechat_state.as_str())
                                .bind(l.local_state.as_str())
                                .bind(l.fee_millifen)
                                .bind(l.note.chars().take(512).collect::<String>())
                                .bind(at)
                                .bind(by)
                                .bind(why);
                        }
                        q.execute(&mut *tx).await?;
                    }
                    let w = result.wechat.clone().unwrap_or_default();
                    sqlx::query(&$q(
                        "UPDATE recon_days SET status = 'done', run_id = NULL, lease_until = NULL, \
                         next_attempt_at = NULL, last_error = NULL, bill = ?, raw_gzip = ?, \
                         raw_sha256 = ?, wechat_rows = ?, wechat_settlement_fen = ?, \
                         wechat_refund_fen = ?, wechat_fee_millifen = ?, wechat_order_fen = ?, \
                         local_paid_count = ?, local_paid_fen = ?, local_refund_count = ?, \
                         local_refund_fen = ?, n_matched = ?, n_wechat_only = ?, n_local_only = ?, \
                         n_amount_differs = ?, n_refund_differs = ?, n_open = ?, finished_at = ?, \
                         run_by = ?, updated_at = ? WHERE bill_date = ?",
                    ))
                    .bind(if result.wechat.is_some() { "bill" } else { "no_bill" })
                    .bind(result.raw_gzip.clone())
                    .bind(result.raw_sha256.clone())
                    .bind(w.rows)
                    .bind(w.settlement_fen)
                    .bind(w.refund_fen)
                    .bind(w.fee_millifen)
                    .bind(w.order_fen)
                    .bind(result.local.paid_count)
                    .bind(result.local.paid_fen)
                    .bind(result.local.refund_count)
                    .bind(result.local.refund_fen)
                    .bind(counts[0])
                    .bind(counts[1])
                    .bind(counts[2])
                    .bind(counts[3])
                    .bind(counts[4])
                    .bind(open)
                    .bind(now)
                    .bind(result.run_by.clone())
                    .bind(now)
                    .bind(date)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(true)
                })
                .await
            }

            /// Days whose run is due now (or whose lease ran out), oldest first.
            pub async fn recon_due(&self, now: i64) -> Result<Vec<String>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT bill_date FROM recon_days WHERE (status = 'due' AND next_attempt_at <= ?) \
                     OR (status = 'running' AND lease_until < ?) ORDER BY bill_date",
                ))
                .bind(now)
                .bind(now)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("bill_date"))
                .collect()
            }

            pub async fn recon_day(&self, date: &str) -> Result<Option<ReconDayRow>, sqlx::Error> {
                let sql = format!("SELECT {DAY_COLUMNS} FROM recon_days WHERE bill_date = ?");
                sqlx::query(&$q(&sql))
                    .bind(date)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| day_row(&r))
                    .transpose()
            }

            /// Days newest first, those before `before` (a page of the list).
            pub async fn recon_days(
                &self,
                before: Option<&str>,
                limit: i64,
            ) -> Result<Vec<ReconDayRow>, sqlx::Error> {
                let sql = format!(
                    "SELECT {DAY_COLUMNS} FROM recon_days WHERE bill_date < ? \
                     ORDER BY bill_date DESC LIMIT ?"
                );
                sqlx::query(&$q(&sql))
                    .bind(before.unwrap_or("9999-99-99"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(day_row)
                    .collect()
            }

            /// The newest `limit` days with differences still open, however old.
            pub async fn recon_open_days(
                &self,
                limit: i64,
            ) -> Result<Vec<ReconDayRow>, sqlx::Error> {
                let sql = format!(
                    "SELECT {DAY_COLUMNS} FROM recon_days WHERE n_open > 0 \
                     ORDER BY bill_date DESC LIMIT ?"
                );
                sqlx::query(&$q(&sql))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(day_row)
                    .collect()
            }

            /// WeChat's file as it came (gzipped), once a run had it.
            pub async fn recon_raw(&self, date: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                Ok(sqlx::query(&$q("SELECT raw_gzip FROM recon_days WHERE bill_date = ?"))
                    .bind(date)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.try_get::<Option<Vec<u8>>, _>("raw_gzip"))
                    .transpose()?
                    .flatten())
            }
        }
    };
}
pub(crate) use recon_days_sql;
