//! The recheck step: ask orderquery for one order and apply WeChat's definite answer (paid,
//! closed, no such order) through the same decision function as the sweep's; asking for a QR or
//! starting a close stays the sweep's and the timer's. The answer is noted on the order's
//! timeline either way. An operator's "Query WeChat now" and the daily reconciliation (a
//! payment in WeChat's bill that is not paid here) use it.

use crate::server::domain::Cause;
use crate::server::orders::apply;
use crate::server::orders::decide::{self, Action, QrRoute};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;

/// What came of it, in words for the operator; None when there is no such order.
pub async fn order(ctx: &Ctx, id: &str, cause: Cause) -> Result<Option<String>, sqlx::Error> {
    let Some(order) = ctx.store.load(id).await? else {
        return Ok(None);
    };
    let answer = ctx.wxpay.order_query(&order.id).await;
    let said = match &answer {
        Ok(r) => format!("WeChat: trade_state {}", r.trade_state.as_str()),
        Err(e) => format!("WeChat: {e}"),
    };
    let action = decide::decide(&order, &answer, now_ms(), QrRoute::Open);
    let outcome = match &action {
        Action::Paid(_) | Action::Close(_) | Action::Fail(_) => {
            match apply::settle(ctx, &order, &action, cause).await? {
                Some(s) => format!("applied: {s:?}"),
                None => "nothing to apply".to_string(),
            }
        }
        other => format!("left to the sweep: {other:?}"),
    };
    let detail = format!("{said}; {outcome}");
    ctx.store.note(id, "queried", cause, &detail).await?;
    Ok(Some(detail))
}
