//! Flow 4, the pay-result consumer: the bus applies each pay result once (recorded in the inbox
//! and applied in one commit, see `bus`); this flow is what follows each commit.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::server::bus::{OnApplied, Received};
use crate::server::domain::PaidOutcome;
use crate::server::orders::{apply, refund};
use crate::server::state::Ctx;
use crate::server::support::metrics;

/// Told of every applied pay result: logged, and the cache and index told of the order.
pub fn on_applied(ctx: Arc<Ctx>) -> OnApplied {
    Arc::new(move |r: Received| {
        let ctx = ctx.clone();
        Box::pin(async move {
            tracing::info!(order_id = %r.order_id, transaction_id = %r.transaction_id,
                outcome = r.outcome.as_str(), "pay result applied");
            if r.outcome == PaidOutcome::Paid {
                metrics::transition("paid", "notify");
                if let Some(at) = r.received_at_ms {
                    let waited = (crate::server::support::clock::now_ms() - at).max(0);
                    metrics::notify_to_paid(waited as f64 / 1000.0);
                }
            }
            match &r.row {
                Some(row) => apply::committed(&ctx, row).await,
                None => apply::committed_id(&ctx, &r.order_id).await,
            }
            // Money scanpay cannot keep goes back by itself, beside the consumer (the sweep
            // asks for any this process did not get to).
            if let PaidOutcome::Anomaly("paid_after_close" | "second_payment") = r.outcome {
                let (order_id, tx) = (r.order_id.clone(), r.transaction_id.clone());
                tokio::spawn(async move { refund::automatic(&ctx, &order_id, &tx).await });
            }
        })
    })
}

/// Consumes pay results until cancelled.
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken) {
    let bus = ctx.bus.clone();
    bus.consume(on_applied(ctx), token).await
}
