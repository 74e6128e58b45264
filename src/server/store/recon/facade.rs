//! The reconciliation's store methods, on whichever engine runs (each documented where its
//! SQL is: `recon/mod.rs`, `recon/lines.rs`).

use crate::server::domain::recon::{
    ClassTotal, DayResult, LocalAnomaly, LocalOrder, LocalRefund, ReconDayRow, ReconLine,
};
use crate::server::store::{Engine, Store};

impl Store {
    pub async fn recon_ensure_day(&self, date: &str, now: i64) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.recon_ensure_day(date, now).await)
    }

    pub async fn recon_claim(
        &self,
        date: &str,
        run_id: &str,
        now: i64,
        lease_until: i64,
        force: bool,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.recon_claim(date, run_id, now, lease_until, force).await)
    }

    pub async fn recon_give_back(
        &self,
        date: &str,
        run_id: &str,
        error: &str,
        next_at: Option<i64>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.recon_give_back(date, run_id, error, next_at, now).await)
    }

    pub async fn recon_renew(
        &self,
        date: &str,
        run_id: &str,
        lease_until: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.recon_renew(date, run_id, lease_until).await)
    }

    pub async fn recon_save(
        &self,
        date: &str,
        run_id: &str,
        result: &DayResult,
        lines: &[ReconLine],
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.recon_save(date, run_id, result, lines, now).await)
    }

    pub async fn recon_due(&self, now: i64) -> Result<Vec<String>, sqlx::Error> {
        on_engine!(self, s => s.recon_due(now).await)
    }

    pub async fn recon_day(&self, date: &str) -> Result<Option<ReconDayRow>, sqlx::Error> {
        on_engine!(self, s => s.recon_day(date).await)
    }

    pub async fn recon_days(
        &self,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ReconDayRow>, sqlx::Error> {
        on_engine!(self, s => s.recon_days(before, limit).await)
    }

    /// The newest `limit` days with differences still open (a handful of rows: one a day).
    pub async fn recon_open_days(&self, limit: i64) -> Result<Vec<ReconDayRow>, sqlx::Error> {
        on_engine!(self, s => s.recon_open_days(limit).await)
    }

    pub async fn recon_raw(&self, date: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        on_engine!(self, s => s.recon_raw(date).await)
    }

    pub async fn recon_paid_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<LocalOrder>, sqlx::Error> {
        on_engine!(self, s => s.recon_paid_between(from, to).await)
    }

    pub async fn recon_orders(&self, ids: &[String]) -> Result<Vec<LocalOrder>, sqlx::Error> {
        on_engine!(self, s => s.recon_orders(ids).await)
    }

    pub async fn recon_anomalies(
        &self,
        transaction_ids: &[String],
    ) -> Result<Vec<LocalAnomaly>, sqlx::Error> {
        on_engine!(self, s => s.recon_anomalies(transaction_ids).await)
    }

    pub async fn recon_refunds_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<LocalRefund>, sqlx::Error> {
        on_engine!(self, s => s.recon_refunds_between(from, to).await)
    }

    pub async fn recon_refunds(&self, nos: &[String]) -> Result<Vec<LocalRefund>, sqlx::Error> {
        on_engine!(self, s => s.recon_refunds(nos).await)
    }

    pub async fn first_order_at(&self) -> Result<Option<i64>, sqlx::Error> {
        on_engine!(self, s => s.first_order_at().await)
    }

    pub async fn recon_lines(
        &self,
        date: &str,
        differences_only: bool,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ReconLine>, sqlx::Error> {
        on_engine!(self, s => s.recon_lines(date, differences_only, after, limit).await)
    }

    pub async fn recon_line(
        &self,
        date: &str,
        key: &str,
    ) -> Result<Option<ReconLine>, sqlx::Error> {
        on_engine!(self, s => s.recon_line(date, key).await)
    }

    pub async fn recon_lines_of_order(
        &self,
        order_id: &str,
    ) -> Result<Vec<(String, ReconLine)>, sqlx::Error> {
        on_engine!(self, s => s.recon_lines_of_order(order_id).await)
    }

    pub async fn recon_note(&self, date: &str, key: &str, note: &str) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.recon_note(date, key, note).await)
    }

    pub async fn recon_resolve(
        &self,
        date: &str,
        key: &str,
        by: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.recon_resolve(date, key, by, reason, now).await)
    }

    pub async fn recon_totals(&self, date: &str) -> Result<[ClassTotal; 5], sqlx::Error> {
        on_engine!(self, s => s.recon_totals(date).await)
    }

    pub async fn recon_open_by_class(&self) -> Result<[i64; 5], sqlx::Error> {
        on_engine!(self, s => s.recon_open_by_class().await)
    }
}
