//! The schedule in SQL alone: the sweep's claim on `next_check_at`, and the deadline poller
//! (an index on `(status, deadline_at)`; it sleeps until the next deadline, at most
//! `MAX_SLEEP`, so nothing is lost across a restart). Several processes may poll at once: the
//! close flow's `begin_close` is the claim, so each deadline is acted on once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{Deadlines, DueIndex, NextAt, OnDue};
use crate::server::domain::OrderRow;
use crate::server::store::Store;
use crate::server::support::backoff::Backoff;
use crate::server::support::clock::now_ms;
use crate::server::support::BoxFuture;

/// Longest the poller sleeps: bounds how late a deadline is acted on.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Due orders taken per tick (a tick runs again at once while a full batch came back).
const BATCH: i64 = 200;

pub struct SqlDueIndex {
    store: Store,
}

impl SqlDueIndex {
    pub fn new(store: Store) -> Self {
        SqlDueIndex { store }
    }
}

impl DueIndex for SqlDueIndex {
    fn enabled(&self) -> bool {
        false
    }
    fn claim<'a>(
        &'a self,
        now: i64,
        limit: i64,
        next_at: NextAt<'a>,
    ) -> BoxFuture<'a, Result<Vec<OrderRow>, sqlx::Error>> {
        Box::pin(self.store.claim_due(now, limit, next_at))
    }
    fn changed<'a>(&'a self, _: &'a OrderRow) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn repair(&self) -> BoxFuture<'_, Result<(usize, usize), String>> {
        Box::pin(async { Ok((0, 0)) })
    }
    fn recoveries(&self) -> u64 {
        0
    }
    fn health(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async { None })
    }
}

/// Orders whose close failed in this process, with when to try again (attempts, retry at), so
/// one failing order is backed off while the rest flow on.
#[derive(Default)]
pub struct FailedCloses(Mutex<HashMap<String, (u32, i64)>>);

impl FailedCloses {
    fn waiting(&self, id: &str, now: i64) -> bool {
        self.0
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|&(_, at)| at > now)
    }
    fn failed(&self, id: &str, now: i64) -> u32 {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(id.to_string()).or_insert((0, 0));
        e.0 += 1;
        // 0.5 s doubling to 32 s
        let wait = Backoff::nth(Duration::from_millis(500), Duration::from_secs(32), e.0 - 1);
        e.1 = now + wait.as_millis() as i64;
        e.0
    }
    fn done(&self, id: &str) {
        self.0.lock().unwrap().remove(id);
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// Forgets orders no longer due here (closed elsewhere, or no longer pending).
    fn keep_only(&self, due: &[String]) {
        let due: std::collections::HashSet<&str> = due.iter().map(String::as_str).collect();
        self.0
            .lock()
            .unwrap()
            .retain(|id, _| due.contains(id.as_str()));
    }
}

#[derive(Clone)]
pub struct SqlDeadlines {
    store: Store,
    /// Act only on deadlines at least this old (the safety net behind the delay queues).
    lag_ms: i64,
    /// With a lag: how often to look.
    every: Duration,
    concurrency: usize,
    failed: Arc<FailedCloses>,
}

impl SqlDeadlines {
    pub fn new(store: Store, concurrency: usize) -> Self {
        SqlDeadlines {
            store,
            lag_ms: 0,
            every: MAX_SLEEP,
            concurrency,
            failed: Arc::default(),
        }
    }

    /// Looks only at deadlines `lag` old, every `every`.
    pub fn behind(mut self, lag: Duration, every: Duration) -> Self {
        self.lag_ms = lag.as_millis() as i64;
        self.every = every;
        self
    }

    /// Acts on what is due (`concurrency` at a time); returns the next deadline still ahead.
    pub async fn tick(&self, on_due: &OnDue) -> Result<Option<i64>, sqlx::Error> {
        loop {
            let real_now = now_ms();
            let now = real_now - self.lag_ms;
            // Backed-off orders sort first again; fetch past them so they cannot starve the rest.
            let limit = BATCH + self.failed.len() as i64;
            let (due, next) = self.store.due_deadlines(now, limit).await?;
            let full = due.len() as i64 == limit;
            if !full {
                self.failed.keep_only(&due);
            }
            let work: Vec<String> = due
                .into_iter()
                .filter(|id| !self.failed.waiting(id, real_now))
                .collect();
            if work.is_empty() {
                return Ok(next);
            }
            stream::iter(work)
                .for_each_concurrent(self.concurrency, |id| async move {
                    match on_due(id.clone()).await {
                        Ok(()) => self.failed.done(&id),
                        Err(e) => {
                            let attempts = self.failed.failed(&id, now_ms());
                            tracing::warn!(order_id = %id, attempts, error = %e, "closing an expired order failed; backing off");
                        }
                    }
                })
                .await;
            if !full {
                return Ok(next);
            }
        }
    }
}

impl Deadlines for SqlDeadlines {
    fn at(&self, _: String, _: i64) -> BoxFuture<'static, ()> {
        Box::pin(async {}) // the poller finds it in SQL
    }

    fn run(&self, on_due: OnDue, token: CancellationToken) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            loop {
                let sleep = match this.tick(&on_due).await {
                    Ok(_) if this.lag_ms > 0 => this.every,
                    Ok(Some(next)) => {
                        Duration::from_millis((next - now_ms()).max(0) as u64).min(MAX_SLEEP)
                    }
                    Ok(None) => MAX_SLEEP,
                    Err(e) => {
                        tracing::error!(error = %e, "deadline poller: will retry");
                        this.every.max(MAX_SLEEP)
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = token.cancelled() => return,
                }
            }
        })
    }
}
