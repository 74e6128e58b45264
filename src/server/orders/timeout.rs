//! Flow 6's trigger: runs the close flow for every pending order whose deadline has passed.
//!
//! - Embedded: an SQL scheduler finds due work (an index on `(status, deadline_at)`), so nothing
//!   is lost across a restart.
//! - RabbitMQ: placing an order publishes its deadline to a delay queue (`schedule`), which hands
//!   it to the timeout queue on time; the SQL scheduler stays on as the safety net, one
//!   reconciliation period behind, so a lost message only makes a close that much later.
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

/// The timeout message RabbitMQ carries.
#[derive(serde::Serialize, serde::Deserialize)]
struct Deadline {
    order_id: String,
    deadline_at: i64,
}

/// Schedules the close of a just-placed order at its deadline (RabbitMQ only: the embedded
/// scheduler finds it in SQL). A failure is logged, not fatal: the SQL safety net closes it.
pub async fn schedule(ctx: &Ctx, order_id: &str, deadline_at: i64) {
    let Some(rabbit) = &ctx.rabbit else { return };
    let body = serde_json::to_vec(&Deadline {
        order_id: order_id.to_string(),
        deadline_at,
    })
    .expect("serializable");
    let delay = Duration::from_millis((deadline_at - now_ms()).max(0) as u64);
    if let Err(e) = rabbit.publish_delayed(delay, order_id, &body).await {
        tracing::warn!(order_id, error = %e, "deadline not scheduled on RabbitMQ; the SQL safety net will close it");
    }
}

/// Consumes the timeout queue: each message runs the close flow of its order once due.
pub async fn run_queue(ctx: Arc<Ctx>, stop: Stop) {
    let Some(rabbit) = ctx.rabbit.clone() else {
        return;
    };
    let (settings, queue) = (rabbit.settings().clone(), rabbit.names().timeout_queue);
    crate::server::rabbit::consume(settings, queue, stop, move |body| {
        let ctx = ctx.clone();
        async move { on_deadline(&ctx, &body).await }
    })
    .await
}

async fn on_deadline(ctx: &Ctx, body: &[u8]) -> crate::server::rabbit::Handled {
    use crate::server::rabbit::Handled;
    let d: Deadline = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => return Handled::Poison(format!("not a deadline: {e}")),
    };
    // Delay queues round up to whole seconds, so a message is never early by more than clock
    // skew between processes; wait that out rather than close before the deadline.
    let early = d.deadline_at - now_ms();
    if early > 0 {
        tokio::time::sleep(Duration::from_millis(early.min(2_000) as u64)).await;
    }
    match ctx
        .closer()
        .run(&d.order_id, FailureReason::Expired, Cause::Timeout)
        .await
    {
        Ok(outcome) => {
            tracing::info!(order_id = %d.order_id, ?outcome, "deadline reached");
            Handled::Done
        }
        Err(e) => Handled::Retry(e.to_string()),
    }
}

pub async fn run(ctx: Arc<Ctx>, mut stop: Stop) {
    let backoff = Backoff::default();
    // With RabbitMQ delivering deadlines, this scheduler only catches what it lost: it looks one
    // reconciliation period (four sweep intervals) behind, once a sweep interval.
    let lag = if ctx.rabbit.is_some() {
        4 * ctx.settings.sweep_interval.as_millis() as i64
    } else {
        0
    };
    loop {
        if lag > 0 {
            if let Err(e) = tick_behind(&ctx, &backoff, lag).await {
                tracing::error!(error = %e, "timeout safety net: will retry");
            }
            if stop.sleep(ctx.settings.sweep_interval).await {
                return;
            }
            continue;
        }
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
    tick_behind(ctx, backoff, 0).await
}

/// `tick`, taking only deadlines at least `lag_ms` old.
pub async fn tick_behind(
    ctx: &Ctx,
    backoff: &Backoff,
    lag_ms: i64,
) -> Result<Option<i64>, sqlx::Error> {
    loop {
        let real_now = now_ms();
        let now = real_now - lag_ms;
        // Backed-off orders sort first again; fetch past them so they cannot starve the rest.
        let limit = BATCH + backoff.len() as i64;
        let (due, next) = ctx.store.due_deadlines(now, limit).await?;
        let full = due.len() as i64 == limit;
        let work: Vec<String> = due
            .into_iter()
            .filter(|id| !backoff.waiting(id, real_now))
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
