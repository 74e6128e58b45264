//! The embedded timeout scheduler (flow 6's trigger): runs the close flow for every pending order
//! whose deadline has passed. Due work is found from SQL on every tick, so nothing is lost across
//! a restart; RabbitMQ's delay queue takes this role in production.

use std::sync::Arc;
use std::time::Duration;

use super::state::{self, Cause};
use crate::app::types::FailureReason;
use crate::server::store::now_ms;
use crate::server::Ctx;

/// Longest the scheduler sleeps: bounds how late a deadline is acted on.
const MAX_SLEEP: Duration = Duration::from_millis(500);

pub async fn run(ctx: Arc<Ctx>) {
    loop {
        let sleep = match tick(&ctx).await {
            Ok(Some(next)) => Duration::from_millis((next - now_ms()).max(0) as u64).min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::error!(error = %e, "timeout scheduler: will retry");
                MAX_SLEEP
            }
        };
        tokio::time::sleep(sleep).await;
    }
}

/// Closes what is due; returns the next deadline still ahead.
pub async fn tick(ctx: &Ctx) -> Result<Option<i64>, sqlx::Error> {
    let (due, next) = state::due_deadlines(&ctx.db, now_ms()).await?;
    for id in due {
        let outcome = ctx
            .closer()
            .run(&id, FailureReason::Expired, Cause::Timeout)
            .await?;
        tracing::info!(order_id = %id, ?outcome, "deadline reached");
    }
    Ok(next)
}
