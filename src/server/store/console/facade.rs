//! The console's store methods, on whichever engine runs, and the orders list's SQL (built
//! here once from the filter: placeholders only, never a value in the text).

use crate::server::domain::{
    AnomalyItem, AuditEntry, AuditRow, Backlog, CallRow, NotifyRow, OperatorRow, OpsSessionRow,
    OrderFilter, OrderLine, OverviewCounts, Role,
};
use crate::server::store::{Engine, Store};

pub(crate) enum Arg {
    I(i64),
    S(String),
}

/// `SELECT … WHERE <filter> ORDER BY created_at DESC, id DESC LIMIT ?` with its arguments.
pub(crate) fn orders_sql(f: &OrderFilter, limit: i64) -> (String, Vec<Arg>) {
    let mut sql = String::from(
        "SELECT id, status, total_fee, refunded_fee, body, created_at, paid_at, transaction_id, \
         (SELECT COUNT(*) FROM anomalies a WHERE a.order_id = orders.id) AS anomalies \
         FROM orders WHERE 1 = 1",
    );
    let mut args = Vec::new();
    let mut cond = |sql_part: &str, a: Vec<Arg>| {
        sql.push_str(" AND ");
        sql.push_str(sql_part);
        args.extend(a);
    };
    if let Some(s) = f.status {
        cond("status = ?", vec![Arg::S(s.as_str().into())]);
    }
    if let Some(v) = f.from_ms {
        cond("created_at >= ?", vec![Arg::I(v)]);
    }
    if let Some(v) = f.until_ms {
        cond("created_at < ?", vec![Arg::I(v)]);
    }
    if let Some(v) = f.min_fee {
        cond("total_fee >= ?", vec![Arg::I(v)]);
    }
    if let Some(v) = f.max_fee {
        cond("total_fee <= ?", vec![Arg::I(v)]);
    }
    if f.has_anomaly {
        cond(
            "EXISTS (SELECT 1 FROM anomalies a WHERE a.order_id = orders.id)",
            vec![],
        );
    }
    if f.refunded {
        cond("refunded_fee > 0", vec![]);
    }
    if let Some(p) = &f.id_prefix {
        // Letters and digits only (parsed at the edge): no LIKE wildcard can be in it.
        debug_assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        cond("id LIKE ?", vec![Arg::S(format!("{p}%"))]);
    }
    if let Some((at, id)) = &f.after {
        cond(
            "(created_at < ? OR (created_at = ? AND id < ?))",
            vec![Arg::I(*at), Arg::I(*at), Arg::S(id.clone())],
        );
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
    args.push(Arg::I(limit));
    (sql, args)
}

/// A page of the orders list and where the next one starts.
#[derive(Debug, Clone)]
pub struct OrdersPage {
    pub lines: Vec<OrderLine>,
    pub next: Option<(i64, String)>,
}

impl Store {
    pub async fn add_operator(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.add_operator(name, role, password_hash, now).await)
    }

    pub async fn operator(&self, name: &str) -> Result<Option<OperatorRow>, sqlx::Error> {
        on_engine!(self, s => s.operator(name).await)
    }

    pub async fn operators(&self) -> Result<Vec<OperatorRow>, sqlx::Error> {
        on_engine!(self, s => s.operators().await)
    }

    pub async fn disable_operator(&self, name: &str, now: i64) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.disable_operator(name, now).await)
    }

    pub async fn create_ops_session(
        &self,
        id_hash: &str,
        operator: &str,
        now: i64,
        expires_at: i64,
        address: &str,
    ) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.create_ops_session(id_hash, operator, now, expires_at, address).await)
    }

    pub async fn ops_session(&self, id_hash: &str) -> Result<Option<OpsSessionRow>, sqlx::Error> {
        on_engine!(self, s => s.ops_session(id_hash).await)
    }

    pub async fn touch_ops_session(
        &self,
        id_hash: &str,
        now: i64,
        authed: bool,
    ) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.touch_ops_session(id_hash, now, authed).await)
    }

    pub async fn end_ops_session(&self, id_hash: &str) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.end_ops_session(id_hash).await)
    }

    pub async fn purge_ops_sessions(&self, now: i64, idle_before: i64) -> Result<u64, sqlx::Error> {
        on_engine!(self, s => s.purge_ops_sessions(now, idle_before).await)
    }

    /// Writes one line of the audit log.
    pub async fn audit(&self, e: &AuditEntry<'_>, now: i64) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.audit(e, now).await)
    }

    pub async fn audit_log(
        &self,
        before: Option<i64>,
        subject: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        on_engine!(self, s => s.audit_log(before, subject, limit).await)
    }

    pub async fn sign_in_failures(
        &self,
        name: &str,
        address: &str,
        since: i64,
    ) -> Result<(i64, i64), sqlx::Error> {
        on_engine!(self, s => s.sign_in_failures(name, address, since).await)
    }

    /// `limit` orders of the filter, newest first, and the cursor of the page after them.
    pub async fn orders_page(
        &self,
        f: &OrderFilter,
        limit: i64,
    ) -> Result<OrdersPage, sqlx::Error> {
        let mut lines = on_engine!(self, s => s.orders_page(f, limit + 1).await)?;
        let next = if lines.len() as i64 > limit {
            lines.truncate(limit as usize);
            lines.last().map(|l| (l.created_at, l.id.clone()))
        } else {
            None
        };
        Ok(OrdersPage { lines, next })
    }

    pub async fn find_order_id(&self, id: &str) -> Result<Option<String>, sqlx::Error> {
        on_engine!(self, s => s.find_order_id(id).await)
    }

    pub async fn anomaly_list(&self, limit: i64) -> Result<Vec<AnomalyItem>, sqlx::Error> {
        on_engine!(self, s => s.anomaly_list(limit).await)
    }

    pub async fn resolve_anomaly(
        &self,
        id: &str,
        resolution: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.resolve_anomaly(id, resolution, now).await)
    }

    pub async fn overview_counts(&self, day_start: i64) -> Result<OverviewCounts, sqlx::Error> {
        on_engine!(self, s => s.overview_counts(day_start).await)
    }

    /// (placed, paid) per hour since `since`, as (hour index, count) lists.
    pub async fn hourly(
        &self,
        since: i64,
    ) -> Result<(Vec<(i64, i64)>, Vec<(i64, i64)>), sqlx::Error> {
        on_engine!(self, s => s.hourly(since).await)
    }

    pub async fn write_oplog(
        &self,
        calls: &[CallRow],
        notifies: &[NotifyRow],
    ) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.write_oplog(calls, notifies).await)
    }

    pub async fn calls_of(&self, order_id: &str, limit: i64) -> Result<Vec<CallRow>, sqlx::Error> {
        on_engine!(self, s => s.calls_of(order_id, limit).await)
    }

    pub async fn notifies_of(
        &self,
        order_id: &str,
        limit: i64,
    ) -> Result<Vec<NotifyRow>, sqlx::Error> {
        on_engine!(self, s => s.notifies_of(order_id, limit).await)
    }

    pub async fn set_operator_role(
        &self,
        name: &str,
        role: Role,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.set_operator_role(name, role, now).await)
    }

    pub async fn set_totp_pending(&self, name: &str, secret: &str) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.set_totp_pending(name, secret).await)
    }

    pub async fn enable_totp(
        &self,
        name: &str,
        pending: &str,
        step: i64,
        code_hashes: &[String],
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.enable_totp(name, pending, step, code_hashes).await)
    }

    pub async fn disable_totp(&self, name: &str) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.disable_totp(name).await)
    }

    pub async fn use_totp_step(&self, name: &str, step: i64) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.use_totp_step(name, step).await)
    }

    pub async fn use_recovery_code(
        &self,
        name: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.use_recovery_code(name, code_hash, now).await)
    }

    pub async fn backlog(&self, now: i64) -> Result<Backlog, sqlx::Error> {
        on_engine!(self, s => s.backlog(now).await)
    }

    pub async fn anomaly(&self, id: &str) -> Result<Option<AnomalyItem>, sqlx::Error> {
        on_engine!(self, s => s.anomaly(id).await)
    }

    pub async fn anomalies_of(&self, order_id: &str) -> Result<Vec<AnomalyItem>, sqlx::Error> {
        on_engine!(self, s => s.anomalies_of(order_id).await)
    }
}
