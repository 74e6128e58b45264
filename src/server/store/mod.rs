//! The store: every read and transition the flows make, one implementation per SQL engine,
//! chosen by the scheme of `SCANPAY_DATABASE_URL`. Each engine's SQL is readable in one place
//! (`store/sqlite/`); the flows call `Store`'s methods and never see which engine runs.
//! The store knows SQL only: what must follow a commit (the status cache, the due index) is the
//! flows' after-commit hook (`orders::apply`), fed the rows the transitions return or name.
//! Engines are an enum rather than trait objects: static dispatch, plain `async fn`s, and the
//! contract suite (`store::contract`) runs the same checks against each.

pub mod mysql;
mod pool;
pub mod postgres;
pub(crate) mod refunds;
pub mod sqlite;
pub mod testing;

pub use pool::{connect, is_unavailable, PoolSettings, StoreError};
pub(crate) use pool::{retryable, retrying, RETRIES};

#[cfg(test)]
mod contract;

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{
    AnomalyRow, Cause, CreateError, Created, EventRow, HideOutcome, ItemRow, NewOrder, NewRefund,
    OrderRow, PaidOutcome, PayResult, Payment, Product, RefundEnd, RefundRefusal, RefundRow,
    Requested,
};
use mysql::MySqlStore;
use postgres::PgStore;
use sqlite::SqliteStore;

/// A pay result an engine applied: what came of it and, when the engine had it at hand, the
/// order as committed (saving the after-commit hook a read-back).
#[derive(Debug, Clone)]
pub struct Applied {
    pub outcome: PaidOutcome,
    pub row: Option<OrderRow>,
}

#[derive(Clone)]
pub enum Engine {
    Sqlite(SqliteStore),
    Postgres(PgStore),
    Mysql(MySqlStore),
}

/// The SQL engine the deployment runs on.
#[derive(Clone)]
pub struct Store {
    pub(crate) engine: Engine,
}

/// Calls the same method on whichever engine this store is.
macro_rules! on_engine {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.engine {
            Engine::Sqlite($s) => $call,
            Engine::Postgres($s) => $call,
            Engine::Mysql($s) => $call,
        }
    };
}

// Declared here, after `on_engine!`, so the console's facade calls engines the same way.
pub(crate) mod console;
pub(crate) mod recon;

impl Store {
    /// The engine's name, as health reports and logs show it.
    pub fn engine(&self) -> &'static str {
        match &self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
            Engine::Mysql(_) => "mysql",
        }
    }

    /// Every unfinished, unparked order with its next check (rebuilding the Redis index).
    pub async fn unfinished(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        on_engine!(self, s => s.unfinished().await)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_engine!(self, s => s.migrate().await.map_err(StoreError::Migrate))
    }

    /// Closes the connection pool (tests use it to take the database away).
    pub async fn close_pool(&self) {
        on_engine!(self, s => s.close_pool().await)
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.ping().await)
    }

    // ---- the catalogue and generated secrets

    pub async fn products(&self) -> Result<Vec<Product>, sqlx::Error> {
        on_engine!(self, s => s.products().await)
    }

    /// A secret scanpay keeps for itself (e.g. the session-cookie key when none is configured):
    /// made once, stored in the database, the same for every process and across restarts.
    pub async fn generated_secret(&self, name: &str) -> Result<String, sqlx::Error> {
        let fresh = crate::server::support::ids::random_alnum(48);
        on_engine!(self, s => s.generated_secret(name, &fresh).await)
    }

    // ---- transitions

    /// Reserves stock with guarded decrements and inserts the `pending` order, in one
    /// transaction: either everything is written or nothing is.
    pub async fn create_order(
        &self,
        order: &NewOrder,
        shop_name: &str,
    ) -> Result<Created, CreateError> {
        on_engine!(self, s => s.create_order(order, shop_name).await)
    }

    /// Stores the QR code WeChat issued for a still-unfinished order.
    pub async fn record_code_url(
        &self,
        id: &str,
        code_url: &str,
        prepay_id: &str,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.record_code_url(id, code_url, prepay_id).await)
    }

    /// `pending → failed`, restoring stock: WeChat never created a payment for it (confirmed by
    /// ORDERNOTEXIST or a protocol refusal). False when the order was not pending.
    pub async fn fail(
        &self,
        id: &str,
        reason: FailureReason,
        cause: Cause,
        detail: &str,
    ) -> Result<bool, sqlx::Error> {
        let from = [OrderStatus::Pending];
        on_engine!(self, s => s.finish_unpaid(id, &from, OrderStatus::Failed, reason, cause, detail).await)
    }

    /// `pending → closing`: the close flow has started (deadline, cancel, or a refused
    /// unifiedorder). The guarded UPDATE is also the claim: of several processes reaching the same
    /// deadline, one wins; the sweep takes over at `check_at` only if that flow stops early.
    pub async fn begin_close(
        &self,
        id: &str,
        reason: FailureReason,
        cause: Cause,
        check_at: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.begin_close(id, reason, cause, check_at).await)
    }

    /// `pending | closing → closed`, restoring stock. Only once WeChat confirmed nobody can pay
    /// (CLOSED; or ORDERNOTEXIST for an order that never had a QR code). `reason` applies when
    /// the order had none yet (a pending order WeChat expired on its own).
    pub async fn close(
        &self,
        id: &str,
        reason: FailureReason,
        cause: Cause,
        detail: &str,
    ) -> Result<bool, sqlx::Error> {
        let from = [OrderStatus::Pending, OrderStatus::Closing];
        on_engine!(self, s => s.finish_unpaid(id, &from, OrderStatus::Closed, reason, cause, detail).await)
    }

    /// `pending | closing → paid`, guarded by the amount. A payment that cannot be applied is
    /// recorded once per (order, transaction) as an anomaly; an unfinished order is parked.
    pub async fn mark_paid(&self, p: &Payment, cause: Cause) -> Result<PaidOutcome, sqlx::Error> {
        on_engine!(self, s => s.mark_paid(p, cause).await)
    }

    /// Notes something on the order's timeline without changing it.
    pub async fn note(
        &self,
        id: &str,
        kind: &str,
        cause: Cause,
        detail: &str,
    ) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.note(id, kind, cause, detail).await)
    }

    // ---- scheduling

    /// Sets when the sweep next looks at an unfinished order (earlier or later than planned).
    pub async fn schedule_check(&self, id: &str, at: i64) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.schedule_check(id, at).await)
    }

    /// Claims up to `limit` orders whose check is due, pushing each one's next check to
    /// `next_at(order, attempts)`; of several claimers each due order goes to exactly one.
    pub async fn claim_due(
        &self,
        now: i64,
        limit: i64,
        next_at: &(dyn Fn(&OrderRow, i64) -> i64 + Sync),
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        on_engine!(self, s => s.claim_due(now, limit, next_at).await)
    }

    /// The orders of `ids` that exist (one SELECT per 500 ids), in no particular order; an id
    /// with no order is simply absent, one given twice is there once.
    pub async fn load_many(&self, ids: &[String]) -> Result<Vec<OrderRow>, sqlx::Error> {
        on_engine!(self, s => s.load_many(ids).await)
    }

    /// `schedule_check` for many orders at once (one UPDATE per 500): each unfinished, unparked
    /// order of `checks` is next looked at at its time (the last one given for an order wins);
    /// the others are left alone.
    pub async fn schedule_checks(&self, checks: &[(String, i64)]) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.schedule_checks(checks).await)
    }

    /// Pending orders past their deadline (earliest first) and the next deadline ahead.
    pub async fn due_deadlines(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<(Vec<String>, Option<i64>), sqlx::Error> {
        on_engine!(self, s => s.due_deadlines(now, limit).await)
    }

    // ---- reads

    pub async fn load(&self, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        on_engine!(self, s => s.load(id).await)
    }

    /// A shopper's orders, newest first, up to `limit`, without the ones they hid.
    pub async fn session_orders(
        &self,
        session_id: &str,
        limit: i64,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        on_engine!(self, s => s.session_orders(session_id, limit).await)
    }

    /// Hides a finished order from its shopper's list (logical delete; operators still see it).
    pub async fn hide(&self, id: &str, session_id: &str) -> Result<HideOutcome, sqlx::Error> {
        on_engine!(self, s => s.hide(id, session_id).await)
    }

    pub async fn items(&self, id: &str) -> Result<Vec<ItemRow>, sqlx::Error> {
        on_engine!(self, s => s.items(id).await)
    }

    pub async fn events(&self, id: &str) -> Result<Vec<EventRow>, sqlx::Error> {
        on_engine!(self, s => s.events(id).await)
    }

    pub async fn anomaly_kinds(&self, order_id: &str) -> Result<Vec<String>, sqlx::Error> {
        on_engine!(self, s => s.anomaly_kinds(order_id).await)
    }

    pub async fn anomalies(&self, limit: i64) -> Result<Vec<AnomalyRow>, sqlx::Error> {
        on_engine!(self, s => s.anomalies(limit).await)
    }

    // ---- refunds (one SQL for every engine: `store::refunds`)

    /// Checks the guards (`domain::judge`) and writes the refund `requested` before anything is
    /// asked of WeChat; a refused request writes nothing.
    pub async fn request_refund(
        &self,
        ask: &NewRefund,
    ) -> Result<Result<Requested, RefundRefusal>, sqlx::Error> {
        let r = on_engine!(self, s => s.request_refund(ask).await);
        if let Ok(Ok(Requested::New(_))) = &r {
            refund_metric("requested");
        }
        r
    }

    /// `requested → processing`: WeChat accepted it; refundquery looks at `next_check_at`.
    pub async fn refund_accepted(
        &self,
        out_refund_no: &str,
        refund_id: &str,
        cause: Cause,
        next_check_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let changed = on_engine!(self, s => s.refund_accepted(out_refund_no, refund_id, cause, next_check_at).await)?;
        if changed {
            refund_metric("processing");
        }
        Ok(changed)
    }

    /// An uncertain answer: still `requested`, sent again (same number, same amounts) later.
    pub async fn refund_uncertain(
        &self,
        out_refund_no: &str,
        error: &str,
        cause: Cause,
        next_check_at: i64,
    ) -> Result<bool, sqlx::Error> {
        on_engine!(self, s => s.refund_uncertain(out_refund_no, error, cause, next_check_at).await)
    }

    /// `requested → failed`: WeChat's definite refusal, its reason kept.
    pub async fn refund_refused(
        &self,
        out_refund_no: &str,
        reason: &str,
        cause: Cause,
    ) -> Result<bool, sqlx::Error> {
        let changed = on_engine!(self, s => s.refund_refused(out_refund_no, reason, cause).await)?;
        if changed {
            refund_metric("failed");
        }
        Ok(changed)
    }

    /// The refund's end on WeChat's word (notify or refundquery); false if nothing changed.
    pub async fn settle_refund(
        &self,
        out_refund_no: &str,
        end: &RefundEnd,
        cause: Cause,
    ) -> Result<bool, sqlx::Error> {
        let changed = on_engine!(self, s => s.settle_refund(out_refund_no, end, cause).await)?;
        if changed {
            refund_metric(end.status().as_str());
        }
        Ok(changed)
    }

    pub async fn refund(&self, out_refund_no: &str) -> Result<Option<RefundRow>, sqlx::Error> {
        on_engine!(self, s => s.refund(out_refund_no).await)
    }

    pub async fn refunds_of(&self, order_id: &str) -> Result<Vec<RefundRow>, sqlx::Error> {
        on_engine!(self, s => s.refunds_of(order_id).await)
    }

    /// Refunds whose check is due, claimed (each by one claimer), next check pushed on.
    pub async fn claim_due_refunds(
        &self,
        now: i64,
        limit: i64,
        next_at: &(dyn Fn(i64) -> i64 + Sync),
    ) -> Result<Vec<RefundRow>, sqlx::Error> {
        on_engine!(self, s => s.claim_due_refunds(now, limit, next_at).await)
    }

    /// (order, transaction) of open anomalies scanpay refunds by itself and has not yet.
    pub async fn unrefunded_anomalies(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        on_engine!(self, s => s.unrefunded_anomalies(limit).await)
    }

    // ---- the pay-result inbox (the embedded bus)

    pub async fn publish_pay_result(&self, n: &PayResult) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.publish_pay_result(n).await)
    }

    /// Records a pay result and applies it in one transaction (the RabbitMQ consumer); None when
    /// it had been applied before.
    pub async fn receive_pay_result(&self, n: &PayResult) -> Result<Option<Applied>, sqlx::Error> {
        on_engine!(self, s => s.receive_pay_result(n).await)
    }

    /// Pay results that arrived together (the RabbitMQ consumer's batch), one answer each, in
    /// order, each as `receive_pay_result` would have answered it alone, with one commit for the
    /// lot: every commit waits for a disk flush, and the disk (shared with RabbitMQ's quorum
    /// queues) is what a burst of payments waits on. PostgreSQL pays the payable ones in one
    /// statement; MySQL and SQLite apply them one after another in one transaction. Whatever the
    /// batch leaves (a second pay result for an order, anything not payable on PostgreSQL, every
    /// one when the batch could not be written as one) goes through `receive_pay_result`.
    pub async fn receive_pay_results(
        &self,
        batch: &[PayResult],
    ) -> Vec<Result<Option<Applied>, sqlx::Error>> {
        let mut together = std::collections::HashMap::new();
        if batch.len() > 1 {
            // One per order (a second one is judged after the first commits), in id order so
            // that concurrent batches lock orders in the same order.
            let mut seen = std::collections::HashSet::new();
            let mut firsts: Vec<&PayResult> = batch
                .iter()
                .filter(|n| seen.insert(n.out_trade_no.as_str()))
                .collect();
            firsts.sort_by(|a, b| a.out_trade_no.cmp(&b.out_trade_no));
            let applied = match &self.engine {
                Engine::Postgres(pg) => pg.receive_payable_batch(&firsts).await.map(|rows| {
                    rows.into_iter()
                        .map(|row| {
                            let id = row.id.clone();
                            let paid = Applied {
                                outcome: PaidOutcome::Paid,
                                row: Some(row),
                            };
                            (id, Some(paid))
                        })
                        .collect::<Vec<_>>()
                }),
                // Every one answered, in the order given.
                Engine::Mysql(my) => my
                    .receive_together(&firsts)
                    .await
                    .map(|all| by_id(&firsts, all)),
                Engine::Sqlite(lite) => lite
                    .receive_together(&firsts)
                    .await
                    .map(|all| by_id(&firsts, all)),
            };
            match applied {
                Ok(applied) => together.extend(applied),
                Err(e) => tracing::info!(error = %e, size = firsts.len(),
                    "pay results not applicable as one batch; applying each on its own"),
            }
        }
        futures::future::join_all(batch.iter().map(|n| {
            let applied = together.remove(&n.out_trade_no);
            async move {
                match applied {
                    Some(applied) => Ok(applied),
                    None => self.receive_pay_result(n).await,
                }
            }
        }))
        .await
    }

    pub async fn due_pay_results(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(Payment, i64)>, sqlx::Error> {
        on_engine!(self, s => s.due_pay_results(now, limit).await)
    }

    /// Claims, records and applies one pay result in one transaction; None when another
    /// consumer had it.
    pub async fn apply_pay_result(&self, p: &Payment) -> Result<Option<Applied>, sqlx::Error> {
        on_engine!(self, s => s.apply_pay_result(p).await)
    }

    pub async fn back_off_pay_result(
        &self,
        transaction_id: &str,
        at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        on_engine!(self, s => s.back_off_pay_result(transaction_id, at, error).await)
    }
}

/// `scanpay_refunds_total{status}`: a refund reached `status` (counted once, where the
/// transition committed).
fn refund_metric(status: &'static str) {
    crate::server::support::metrics::refund(status);
}

/// Each pay result's answer beside its order id.
fn by_id(batch: &[&PayResult], answers: Vec<Option<Applied>>) -> Vec<(String, Option<Applied>)> {
    let ids = batch.iter().map(|n| n.out_trade_no.clone());
    ids.zip(answers).collect()
}

pub(crate) type ProductRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
);

impl From<ProductRow> for Product {
    fn from(
        (sku, name, description, price_fen, stock, name_zh, description_zh): ProductRow,
    ) -> Self {
        Product {
            sku,
            name,
            description,
            price_fen,
            stock,
            name_zh,
            description_zh,
        }
    }
}

#[cfg(test)]
mod tests;
