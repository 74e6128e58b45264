//! Flow 6, closing an unpaid order (deadline reached or shopper cancelled):
//! `pending → closing`, `closeorder`, `orderquery` to confirm, then `closed` with stock restored.
//!
//! Any uncertain answer leaves the order in `closing` with a next-check time, and the
//! reconciliation sweep runs this flow again; stock is never restored on uncertainty.

use std::time::Duration;

use super::state::{self, Cause, OrderRow, PaidOutcome, Payment};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::store::{now_ms, Db};
use crate::server::wxpay::time::parse_beijing;
use crate::server::wxpay::{ErrCode, Gateway, OrderQueryResponse, TradeState, WxPayError};

/// What the flow reached this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    Paid,
    /// Still `closing`; the sweep will try again at this time (UTC ms).
    RetryAt(i64),
    /// Nothing to close: the order had already finished (or does not exist).
    AlreadyFinal(Option<OrderStatus>),
}

pub struct Closer<'a> {
    pub db: &'a Db,
    pub wechat: &'a dyn Gateway,
    /// WeChat refuses closeorder this soon after the order was created.
    pub close_floor: Duration,
    /// How soon to try again after an uncertain answer.
    pub retry_after: Duration,
}

impl Closer<'_> {
    /// Runs (or resumes) the close flow for one order.
    pub async fn run(
        &self,
        id: &str,
        reason: FailureReason,
        cause: Cause,
    ) -> Result<CloseOutcome, sqlx::Error> {
        let Some(order) = state::load(self.db, id).await? else {
            return Ok(CloseOutcome::AlreadyFinal(None));
        };
        match order.status {
            OrderStatus::Paid | OrderStatus::Closed | OrderStatus::Failed => {
                return Ok(CloseOutcome::AlreadyFinal(Some(order.status)))
            }
            OrderStatus::Pending => {
                if !state::begin_close(self.db, id, reason, cause).await? {
                    // Someone else moved it first (a payment, another closer): look again.
                    let now = state::load(self.db, id).await?.map(|o| o.status);
                    if now != Some(OrderStatus::Closing) {
                        return Ok(CloseOutcome::AlreadyFinal(now));
                    }
                }
            }
            OrderStatus::Closing => {}
        }
        self.drive(&order, cause).await
    }

    async fn drive(&self, order: &OrderRow, cause: Cause) -> Result<CloseOutcome, sqlx::Error> {
        let now = now_ms();
        let floor_at = order.created_at + self.close_floor.as_millis() as i64;
        if now < floor_at {
            // Too early for closeorder: WeChat's time_expire (set before our deadline) or a later
            // pass closes it. A query can still settle it now.
            return match self.settle_by_query(order, cause).await? {
                Some(done) => Ok(done),
                None => self.retry(&order.id, floor_at).await,
            };
        }
        match self.wechat.close_order(&order.id).await {
            Ok(())
            | Err(WxPayError::Business {
                code: ErrCode::OrderClosed,
                ..
            }) => {}
            // Paid before we could close: a normal paid order; the query brings the evidence.
            Err(WxPayError::Business {
                code: ErrCode::OrderPaid,
                ..
            }) => {}
            // WeChat never had this order (unifiedorder never landed): nothing can pay it.
            Err(WxPayError::Business {
                code: ErrCode::OrderNotExist,
                ..
            }) => {
                return self.closed(order, cause, "closeorder: ORDERNOTEXIST").await;
            }
            Err(e) => {
                let _ =
                    state::note(self.db, &order.id, "close_uncertain", cause, &e.to_string()).await;
                tracing::warn!(order_id = %order.id, error = %e, "closeorder uncertain; order stays closing");
                return self
                    .retry(&order.id, now_ms() + self.retry_after.as_millis() as i64)
                    .await;
            }
        }
        match self.settle_by_query(order, cause).await? {
            Some(done) => Ok(done),
            // Closed at WeChat but not yet visible to orderquery (it lags): ask again soon.
            None => {
                self.retry(&order.id, now_ms() + self.retry_after.as_millis() as i64)
                    .await
            }
        }
    }

    /// Queries WeChat and applies a definite answer: CLOSED → closed, SUCCESS → paid.
    /// None when the answer settles nothing (NOTPAY, or no answer).
    async fn settle_by_query(
        &self,
        order: &OrderRow,
        cause: Cause,
    ) -> Result<Option<CloseOutcome>, sqlx::Error> {
        match self.wechat.order_query(&order.id).await {
            Ok(q) => match q.trade_state {
                TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
                    let detail = format!("orderquery: {}", q.trade_state.as_str());
                    self.closed(order, cause, &detail).await.map(Some)
                }
                TradeState::Success | TradeState::Refund => {
                    Ok(Some(self.paid(order, &q, cause).await?))
                }
                _ => Ok(None),
            },
            Err(WxPayError::Business {
                code: ErrCode::OrderNotExist,
                ..
            }) if order.code_url.is_none() => self
                .closed(order, cause, "orderquery: ORDERNOTEXIST")
                .await
                .map(Some),
            Err(e) => {
                tracing::info!(order_id = %order.id, error = %e, "orderquery gave no answer");
                Ok(None)
            }
        }
    }

    async fn closed(
        &self,
        order: &OrderRow,
        cause: Cause,
        detail: &str,
    ) -> Result<CloseOutcome, sqlx::Error> {
        if state::close(self.db, &order.id, cause, detail).await? {
            tracing::info!(order_id = %order.id, detail, "order closed, stock restored");
            return Ok(CloseOutcome::Closed);
        }
        Ok(CloseOutcome::AlreadyFinal(
            state::load(self.db, &order.id).await?.map(|o| o.status),
        ))
    }

    async fn paid(
        &self,
        order: &OrderRow,
        q: &OrderQueryResponse,
        cause: Cause,
    ) -> Result<CloseOutcome, sqlx::Error> {
        match apply_query_success(self.db, order, q, cause).await? {
            PaidOutcome::Paid | PaidOutcome::AlreadyPaid => Ok(CloseOutcome::Paid),
            PaidOutcome::Anomaly(_) => {
                self.retry(&order.id, now_ms() + self.retry_after.as_millis() as i64)
                    .await
            }
        }
    }

    async fn retry(&self, id: &str, at: i64) -> Result<CloseOutcome, sqlx::Error> {
        state::check_again_at(self.db, id, at).await?;
        Ok(CloseOutcome::RetryAt(at))
    }
}

/// Applies an orderquery SUCCESS with the paid transition (amount checked there).
pub async fn apply_query_success(
    db: &Db,
    order: &OrderRow,
    q: &OrderQueryResponse,
    cause: Cause,
) -> Result<PaidOutcome, sqlx::Error> {
    let paid_at = q
        .time_end
        .as_deref()
        .and_then(|t| parse_beijing(t).ok())
        .unwrap_or_else(now_ms);
    let payment = Payment {
        out_trade_no: order.id.clone(),
        transaction_id: q.transaction_id.clone().unwrap_or_default(),
        total_fee: q.total_fee.unwrap_or(-1),
        paid_at,
    };
    let mut tx = db.begin().await?;
    let outcome = state::mark_paid(&mut tx, &payment, cause).await?;
    tx.commit().await?;
    Ok(outcome)
}
