//! The embedded timeout scheduler (flow 6's trigger): runs the close flow for every pending order
//! whose deadline has passed. Due work is found from SQL (an index on `(status, deadline_at)`), so
//! nothing is lost across a restart; RabbitMQ's delay queue takes this role in production.
//!
//! Several processes may tick at once: `begin_close` is the claim, so each deadline's close flow
//! runs once. An order whose close fails is backed off in this process and the rest flow on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::state::Cause;
use crate::app::types::FailureReason;
use crate::server::store::now_ms;
use crate::server::workers::Stop;
use crate::server::Ctx;

/// Longest the scheduler sleeps: bounds how late a deadline is acted on.
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Due orders taken per tick (a tick runs again at once while a full batch came back).
const BATCH: i64 = 200;

/// Orders whose close failed here, with when to try again (attempts, retry at).
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<String, (u32, i64)>>);

impl Backoff {
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
        e.1 = now + (250i64 << e.0.min(7)); // 0.5 s doubling to 32 s
        e.0
    }
    fn done(&self, id: &str) {
        self.0.lock().unwrap().remove(id);
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

pub async fn run(ctx: Arc<Ctx>, mut stop: Stop) {
    let backoff = Backoff::default();
    loop {
        let sleep = match tick(&ctx, &backoff).await {
            Ok(Some(next)) => Duration::from_millis((next - now_ms()).max(0) as u64).min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::error!(error = %e, "timeout scheduler: will retry");
                MAX_SLEEP
            }
        };
        if stop.sleep(sleep).await {
            return;
        }
    }
}

/// Closes what is due (`sweep_concurrency` at a time); returns the next deadline still ahead.
pub async fn tick(ctx: &Ctx, backoff: &Backoff) -> Result<Option<i64>, sqlx::Error> {
    loop {
        let now = now_ms();
        // Backed-off orders sort first again; fetch past them so they cannot starve the rest.
        let limit = BATCH + backoff.len() as i64;
        let (due, next) = ctx.store.due_deadlines(now, limit).await?;
        let full = due.len() as i64 == limit;
        let work: Vec<String> = due
            .into_iter()
            .filter(|id| !backoff.waiting(id, now))
            .collect();
        if work.is_empty() {
            return Ok(next);
        }
        stream::iter(work)
            .for_each_concurrent(ctx.settings.sweep_concurrency, |id| async move {
                match ctx
                    .closer()
                    .run(&id, FailureReason::Expired, Cause::Timeout)
                    .await
                {
                    Ok(outcome) => {
                        backoff.done(&id);
                        tracing::info!(order_id = %id, ?outcome, "deadline reached");
                    }
                    Err(e) => {
                        let attempts = backoff.failed(&id, now_ms());
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
