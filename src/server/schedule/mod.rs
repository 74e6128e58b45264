//! Scheduling: which unfinished orders are due a check (the `DueIndex` the sweep claims from)
//! and when each pending order's deadline comes (`Deadlines`). Each has an SQL implementation
//! that needs nothing else, and a faster one on Redis or RabbitMQ; SQL stays the truth, so the
//! fast ones may lose entries (an outage, a lost message) and the SQL side catches up:
//!
//! - `sql::SqlDueIndex`: the claim on `next_check_at` (`FOR UPDATE SKIP LOCKED`, or
//!   compare-and-set on SQLite). `redis::RedisDueIndex`: a sorted set claimed by one script with
//!   a lease, falling back to the SQL claim while Redis does not answer, repaired from SQL.
//! - `sql::SqlDeadlines`: a poller that sleeps until the next deadline. `amqp_delay::AmqpDeadlines`:
//!   delay queues of a few fixed lengths deliver each deadline on time, with the SQL poller one
//!   reconciliation period behind as the safety net.
//!
//! `contract` holds the checks each implementation passes.

pub mod amqp_delay;
pub mod contract;
pub mod redis;
pub mod sql;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::server::domain::OrderRow;
use crate::server::support::BoxFuture;

/// When to look at a claimed order next, given it and the checks made of it before.
pub type NextAt<'a> = &'a (dyn Fn(&OrderRow, i64) -> i64 + Sync);

pub trait DueIndex: Send + Sync {
    /// False for SQL (the table is the index): the after-commit hook skips reading rows for it.
    fn enabled(&self) -> bool;

    /// Claims up to `limit` unfinished, unparked orders due by `now`. Of several claimers each
    /// due order goes to exactly one; each claimed order's next check is pushed to `next_at`, so
    /// one whose claimer dies comes back then.
    fn claim<'a>(
        &'a self,
        now: i64,
        limit: i64,
        next_at: NextAt<'a>,
    ) -> BoxFuture<'a, Result<Vec<OrderRow>, sqlx::Error>>;

    /// After a commit: keeps the order at its next check while unfinished, or takes it out.
    fn changed<'a>(&'a self, row: &'a OrderRow) -> BoxFuture<'a, ()>;

    /// Makes the index hold exactly the unfinished orders SQL lists: (added, removed).
    fn repair(&self) -> BoxFuture<'_, Result<(usize, usize), String>>;

    /// Outages the index came back from (the sweep repairs after each).
    fn recoveries(&self) -> u64;

    /// None when the index is SQL's; else whether it answers now.
    fn health(&self) -> BoxFuture<'_, Option<bool>>;
}

/// Runs the close flow of an order whose deadline has come (the flows supply it).
pub type OnDue = Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), sqlx::Error>> + Send + Sync>;

pub trait Deadlines: Send + Sync {
    /// Arranges for `on_due` to run for the order at `deadline_at`. Best effort: a deadline this
    /// loses is found by the SQL poller.
    fn at(&self, order_id: String, deadline_at: i64) -> BoxFuture<'static, ()>;

    /// Calls `on_due` for every order whose deadline has come, until `token` is cancelled.
    fn run(&self, on_due: OnDue, token: CancellationToken) -> BoxFuture<'static, ()>;
}
