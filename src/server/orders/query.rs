//! Flow 6, "Query WeChat now": an operator asks orderquery for one order, and WeChat's definite
//! answer is applied (the recheck step).

use crate::server::domain::Cause;
use crate::server::orders::recheck;
use crate::server::state::Ctx;

/// What came of it, in words for the operator; None when there is no such order.
pub async fn now(ctx: &Ctx, id: &str) -> Result<Option<String>, sqlx::Error> {
    recheck::order(ctx, id, Cause::Operator).await
}
