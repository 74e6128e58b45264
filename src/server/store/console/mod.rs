//! The console's SQL, written once in portable statements and stamped into each engine (like
//! the refunds', `store::refunds`), with `?` renumbered for PostgreSQL: operators, their
//! sessions, second factor and the audit log here; the orders list, anomalies, the overview's
//! counts and the operations log in `lists.rs`.

pub(crate) mod facade;
mod lists;

pub(crate) use lists::console_lists_sql;

/// The console methods for one engine's store (`$store` with a `pool` field): its row type,
/// the placeholder style, integer division and the integer cast. Each half in a module of its
/// own (their imports and helpers apart).
macro_rules! console_sql {
    ($store:ident, $row:ty, $q:path, $idiv:literal, $int:literal) => {
        mod accounts {
            use super::$store;
            crate::server::store::console::console_accounts_sql!($store, $row, $q);
        }
        mod lists {
            use super::$store;
            crate::server::store::console::console_lists_sql!($store, $row, $q, $idiv, $int);
        }
    };
}
pub(crate) use console_sql;

/// Operators, sessions, the second factor, the audit log.
macro_rules! console_accounts_sql {
    ($store:ident, $row:ty, $q:path) => {
        use sqlx::Row as _;

        use crate::server::domain::{AuditEntry, AuditRow, OperatorRow, OpsSessionRow, Role};

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
        }
    };
}
pub(crate) use console_accounts_sql;
