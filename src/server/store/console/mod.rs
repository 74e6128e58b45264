//! The console's SQL: operators, their sessions, the audit log and the orders list. Like the
//! refunds' (`store::refunds`), it is portable SQL written once and stamped into each engine by
//! `console_sql!`, with `?` renumbered for PostgreSQL.

pub(crate) mod facade;

/// The console methods for one engine's store (`$store` with a `pool` field), its row type and
/// the placeholder style.
macro_rules! console_sql {
    ($store:ident, $row:ty, $q:path, $idiv:literal, $int:literal) => {
        use sqlx::Row as _;

        use crate::server::domain::{
            AnomalyItem, AuditEntry, AuditRow, CallRow, NotifyRow, OperatorRow, OpsSessionRow,
            Backlog, OrderFilter, OrderLine, OverviewCounts, Role,
        };

        fn role_of(r: &$row) -> Result<Role, sqlx::Error> {
            let role: String = r.try_get("role")?;
            Role::parse(&role).map_err(|e| sqlx::Error::Decode(e.into()))
        }

        fn operator_row(r: &$row) -> Result<OperatorRow, sqlx::Error> {
            Ok(OperatorRow {
                name: r.try_get("name")?,
                role: role_of(r)?,
                password_hash: r.try_get("password_hash")?,
                created_at: r.try_get("created_at")?,
                disabled_at: r.try_get("disabled_at")?,
                totp_secret: r.try_get("totp_secret")?,
                totp_pending: r.try_get("totp_pending")?,
                totp_last_step: r.try_get("totp_last_step")?,
            })
        }

        fn audit_row(r: &$row) -> Result<AuditRow, sqlx::Error> {
            Ok(AuditRow {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                subject: r.try_get("subject")?,
                address: r.try_get("address")?,
                reason: r.try_get("reason")?,
                detail: r.try_get("detail")?,
            })
        }

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
            /// False when an operator of that name exists already.
            pub async fn add_operator(
                &self,
                name: &str,
                role: Role,
                password_hash: &str,
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                let added = sqlx::query(&$q(
                    "INSERT INTO operators (name, role, password_hash, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?)",
                ))
                .bind(name)
                .bind(role.as_str())
                .bind(password_hash)
                .bind(now)
                .bind(now)
                .execute(&self.pool)
                .await;
                match added {
                    Ok(_) => Ok(true),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                    Err(e) => Err(e),
                }
            }

            pub async fn operator(&self, name: &str) -> Result<Option<OperatorRow>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT name, role, password_hash, created_at, disabled_at, totp_secret, \
                     totp_pending, totp_last_step \
                     FROM operators WHERE name = ?",
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| operator_row(&r))
                .transpose()
            }

            pub async fn operators(&self) -> Result<Vec<OperatorRow>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT name, role, password_hash, created_at, disabled_at, totp_secret, \
                     totp_pending, totp_last_step \
                     FROM operators ORDER BY name",
                ))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(operator_row)
                .collect()
            }

            /// Disables an operator and ends every session of theirs; false if there is no
            /// such operator or it was disabled already.
            pub async fn disable_operator(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(&$q(
                    "UPDATE operators SET disabled_at = ?, updated_at = ? \
                     WHERE name = ? AND disabled_at IS NULL",
                ))
                .bind(now)
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(&$q("DELETE FROM ops_sessions WHERE operator = ?"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(changed > 0)
            }

            /// Gives an enabled operator another role and ends their sessions (they sign in
            /// again under it); false if there is no such enabled operator.
            pub async fn set_operator_role(
                &self,
                name: &str,
                role: Role,
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(&$q(
                    "UPDATE operators SET role = ?, updated_at = ? WHERE name = ? AND disabled_at IS NULL",
                ))
                .bind(role.as_str())
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(&$q("DELETE FROM ops_sessions WHERE operator = ?"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(changed > 0)
            }

            pub async fn set_totp_pending(&self, name: &str, secret: &str) -> Result<bool, sqlx::Error> {
                Ok(sqlx::query(&$q(
                    "UPDATE operators SET totp_pending = ? WHERE name = ? AND totp_secret IS NULL",
                ))
                .bind(secret)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0)
            }

            /// The pending secret confirmed (by a code of `step`), with fresh recovery codes.
            pub async fn enable_totp(
                &self,
                name: &str,
                pending: &str,
                step: i64,
                code_hashes: &[String],
            ) -> Result<bool, sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(&$q(
                    "UPDATE operators SET totp_secret = totp_pending, totp_pending = NULL, \
                     totp_last_step = ? WHERE name = ? AND totp_pending = ? AND totp_secret IS NULL",
                ))
                .bind(step)
                .bind(name)
                .bind(pending)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Ok(false);
                }
                sqlx::query(&$q("DELETE FROM operator_recovery_codes WHERE operator = ?"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                for h in code_hashes {
                    sqlx::query(&$q(
                        "INSERT INTO operator_recovery_codes (operator, code_hash) VALUES (?, ?)",
                    ))
                    .bind(name)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            pub async fn disable_totp(&self, name: &str) -> Result<(), sqlx::Error> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(&$q(
                    "UPDATE operators SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL \
                     WHERE name = ?",
                ))
                .bind(name)
                .execute(&mut *tx)
                .await?;
                sqlx::query(&$q("DELETE FROM operator_recovery_codes WHERE operator = ?"))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }

            /// A code of time step `step` used: true only the first time (later steps only).
            pub async fn use_totp_step(&self, name: &str, step: i64) -> Result<bool, sqlx::Error> {
                Ok(sqlx::query(&$q(
                    "UPDATE operators SET totp_last_step = ? WHERE name = ? \
                     AND (totp_last_step IS NULL OR totp_last_step < ?)",
                ))
                .bind(step)
                .bind(name)
                .bind(step)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0)
            }

            /// A recovery code used: true only the first time.
            pub async fn use_recovery_code(
                &self,
                name: &str,
                code_hash: &str,
                now: i64,
            ) -> Result<bool, sqlx::Error> {
                Ok(sqlx::query(&$q(
                    "UPDATE operator_recovery_codes SET used_at = ? \
                     WHERE operator = ? AND code_hash = ? AND used_at IS NULL",
                ))
                .bind(now)
                .bind(name)
                .bind(code_hash)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0)
            }

            pub async fn create_ops_session(
                &self,
                id_hash: &str,
                operator: &str,
                now: i64,
                expires_at: i64,
                address: &str,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(&$q(
                    "INSERT INTO ops_sessions (id_hash, operator, created_at, seen_at, authed_at, \
                     expires_at, address) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ))
                .bind(id_hash)
                .bind(operator)
                .bind(now)
                .bind(now)
                .bind(now)
                .bind(expires_at)
                .bind(address)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// The session with its operator's current role; None when there is no such
            /// session or its operator has been disabled.
            pub async fn ops_session(
                &self,
                id_hash: &str,
            ) -> Result<Option<OpsSessionRow>, sqlx::Error> {
                sqlx::query(&$q(
                    "SELECT s.operator, o.role, s.created_at, s.seen_at, s.authed_at, s.expires_at \
                     FROM ops_sessions s JOIN operators o ON o.name = s.operator \
                     WHERE s.id_hash = ? AND o.disabled_at IS NULL",
                ))
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| -> Result<OpsSessionRow, sqlx::Error> {
                    Ok(OpsSessionRow {
                        operator: r.try_get("operator")?,
                        role: role_of(&r)?,
                        created_at: r.try_get("created_at")?,
                        seen_at: r.try_get("seen_at")?,
                        authed_at: r.try_get("authed_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .transpose()
            }

            /// Marks the session used at `now` (its idle time-out starts again); with
            /// `authed`, the password was just entered again too.
            pub async fn touch_ops_session(
                &self,
                id_hash: &str,
                now: i64,
                authed: bool,
            ) -> Result<(), sqlx::Error> {
                let again = $q("UPDATE ops_sessions SET seen_at = ?, authed_at = ? WHERE id_hash = ?");
                let seen = $q("UPDATE ops_sessions SET seen_at = ? WHERE id_hash = ?");
                let q = if authed {
                    sqlx::query(&again).bind(now).bind(now)
                } else {
                    sqlx::query(&seen).bind(now)
                };
                q.bind(id_hash).execute(&self.pool).await?;
                Ok(())
            }

            pub async fn end_ops_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
                sqlx::query(&$q("DELETE FROM ops_sessions WHERE id_hash = ?"))
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            /// Deletes sessions past their absolute end or idle since before `idle_before`.
            pub async fn purge_ops_sessions(
                &self,
                now: i64,
                idle_before: i64,
            ) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(&$q(
                    "DELETE FROM ops_sessions WHERE expires_at <= ? OR seen_at < ?",
                ))
                .bind(now)
                .bind(idle_before)
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            pub async fn audit(&self, e: &AuditEntry<'_>, now: i64) -> Result<(), sqlx::Error> {
                sqlx::query(&$q(
                    "INSERT INTO ops_audit (at, actor, action, subject, address, reason, detail) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                ))
                .bind(now)
                .bind(e.actor)
                .bind(e.action.as_str())
                .bind(e.subject)
                .bind(e.address)
                .bind(e.reason)
                .bind(e.detail)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            /// The audit log, newest first, `limit` lines before the line `before` (or from
            /// the newest), optionally only about `subject`.
            pub async fn audit_log(
                &self,
                before: Option<i64>,
                subject: Option<&str>,
                limit: i64,
            ) -> Result<Vec<AuditRow>, sqlx::Error> {
                let mut sql = String::from(
                    "SELECT id, at, actor, action, subject, address, reason, detail \
                     FROM ops_audit WHERE id < ?",
                );
                if subject.is_some() {
                    sql.push_str(" AND subject = ?");
                }
                sql.push_str(" ORDER BY id DESC LIMIT ?");
                let sql = $q(&sql);
                let mut q = sqlx::query(&sql).bind(before.unwrap_or(i64::MAX));
                if let Some(s) = subject {
                    q = q.bind(s);
                }
                q.bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(audit_row)
                    .collect()
            }

            /// Failed sign-ins since `since`: for this name, and from this address.
            pub async fn sign_in_failures(
                &self,
                name: &str,
                address: &str,
                since: i64,
            ) -> Result<(i64, i64), sqlx::Error> {
                let count = |sql: &'static str, key: &str| {
                    let sql = $q(sql);
                    let key = key.to_string();
                    async move {
                        sqlx::query_scalar::<_, i64>(&sql)
                            .bind("sign_in_failed")
                            .bind(key)
                            .bind(since)
                            .fetch_one(&self.pool)
                            .await
                    }
                };
                let by_name = count(
                    "SELECT COUNT(*) FROM ops_audit WHERE action = ? AND actor = ? AND at >= ?",
                    name,
                )
                .await?;
                let by_address = count(
                    "SELECT COUNT(*) FROM ops_audit WHERE action = ? AND address = ? AND at >= ?",
                    address,
                )
                .await?;
                Ok((by_name, by_address))
            }

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
pub(crate) use console_sql;
