//! Flow 6's trigger: at each pending order's deadline, the close step. When deadlines come is
//! the schedule seam's business (`schedule::Deadlines`: the SQL poller, or RabbitMQ's delay
//! queues with the poller behind them); this flow only says what a deadline does. Several
//! processes may see the same deadline: `begin_close` is the claim, so its close runs once.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::app::types::FailureReason;
use crate::server::domain::Cause;
use crate::server::orders::close;
use crate::server::schedule::OnDue;
use crate::server::state::Ctx;

/// What a deadline does: the close step, for an order still pending.
pub fn on_due(ctx: Arc<Ctx>) -> OnDue {
    Arc::new(move |id: String| {
        let ctx = ctx.clone();
        Box::pin(async move {
            let outcome = close::run(&ctx, &id, FailureReason::Expired, Cause::Timeout).await?;
            tracing::info!(order_id = %id, ?outcome, "deadline reached");
            Ok(())
        })
    })
}

/// Acts on deadlines until cancelled.
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken) {
    let deadlines = ctx.deadlines.clone();
    deadlines.run(on_due(ctx), token).await
}

/// One pass of the SQL poller over what is due now (tests drive it by hand).
pub async fn tick(ctx: &Arc<Ctx>) -> Result<Option<i64>, sqlx::Error> {
    let poller = crate::server::schedule::sql::SqlDeadlines::new(
        ctx.store.clone(),
        ctx.settings.sweep_concurrency,
    );
    poller.tick(&on_due(ctx.clone())).await
}
