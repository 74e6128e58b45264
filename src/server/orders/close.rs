//! Flow 6, closing an unpaid order (deadline reached or shopper cancelled):
//! `pending → closing`, `closeorder`, `orderquery` to confirm, then `closed` with stock restored.
//!
//! Any uncertain answer leaves the order in `closing` with a next-check time, and the
//! reconciliation sweep runs this flow again; stock is never restored on uncertainty.

use std::time::Duration;

use super::reconcile::{self, Action, QrRoute, Settled};
use super::state::{Cause, OrderRow};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::store::{now_ms, Store};
use crate::server::wxpay::{ErrCode, Gateway, WxPayError};

/// What the flow reached this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    Paid,
    /// Still `closing`; the sweep will try again at this time (UTC ms).
    RetryAt(i64),
    /// A payment arrived that cannot be applied: left to an operator.
    Parked,
    /// Nothing to close: the order had already finished (or does not exist), or another process
    /// holds its close.
    AlreadyFinal(Option<OrderStatus>),
}

pub struct Closer<'a> {
    pub store: &'a Store,
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
        let Some(order) = self.store.load(id).await? else {
            return Ok(CloseOutcome::AlreadyFinal(None));
        };
        if order.parked {
            return Ok(CloseOutcome::Parked);
        }
        match order.status {
            OrderStatus::Paid | OrderStatus::Closed | OrderStatus::Failed => {
                return Ok(CloseOutcome::AlreadyFinal(Some(order.status)))
            }
            OrderStatus::Pending => {
                // The guarded transition is the claim: one caller per deadline runs the flow.
                let check_at = now_ms() + self.retry_after.as_millis() as i64;
                if !self.store.begin_close(id, reason, cause, check_at).await? {
                    let now = self.store.load(id).await?.map(|o| o.status);
                    return Ok(CloseOutcome::AlreadyFinal(now));
                }
            }
            OrderStatus::Closing => {}
        }
        self.drive(&order, cause).await
    }

    async fn drive(&self, order: &OrderRow, cause: Cause) -> Result<CloseOutcome, sqlx::Error> {
        let floor_at = order.created_at + self.close_floor.as_millis() as i64;
        if now_ms() < floor_at {
            // Too early for closeorder: WeChat's time_expire (set before our deadline) or the
            // pass at the floor closes it. A query can still settle it now.
            return self.settle_by_query(order, cause, floor_at).await;
        }
        match self.wechat.close_order(&order.id).await {
            // Each of these is definite; the query says which outcome it was. ORDERNOTEXIST too:
            // the query decides whether an order that had a QR code may be closed.
            Ok(())
            | Err(WxPayError::Business {
                code: ErrCode::OrderClosed | ErrCode::OrderPaid | ErrCode::OrderNotExist,
                ..
            }) => {}
            Err(e) => {
                let _ = self
                    .store
                    .note(&order.id, "close_uncertain", cause, &e.to_string())
                    .await;
                tracing::warn!(order_id = %order.id, error = %e, "closeorder uncertain; order stays closing");
                return self.retry(&order.id, self.soon()).await;
            }
        }
        // Closed at WeChat but not yet visible to orderquery (it lags): asked again soon.
        self.settle_by_query(order, cause, self.soon()).await
    }

    /// Queries WeChat and applies a definite answer; otherwise the sweep looks again at `retry_at`.
    async fn settle_by_query(
        &self,
        order: &OrderRow,
        cause: Cause,
        retry_at: i64,
    ) -> Result<CloseOutcome, sqlx::Error> {
        let order = OrderRow {
            status: OrderStatus::Closing,
            ..order.clone()
        };
        let answer = self.wechat.order_query(&order.id).await;
        let action = reconcile::decide(&order, &answer, now_ms(), QrRoute::Open);
        match reconcile::settle(self.store, &order, &action, cause).await? {
            Some(Settled::Paid) => Ok(CloseOutcome::Paid),
            Some(Settled::Closed | Settled::Failed) => {
                tracing::info!(order_id = %order.id, ?action, "order closed, stock restored");
                Ok(CloseOutcome::Closed)
            }
            Some(Settled::Parked) => Ok(CloseOutcome::Parked),
            Some(Settled::Unchanged(now)) => Ok(CloseOutcome::AlreadyFinal(now)),
            None => {
                if let Action::Wait(why) = &action {
                    tracing::info!(order_id = %order.id, why, "close not confirmed yet");
                }
                self.retry(&order.id, retry_at).await
            }
        }
    }

    fn soon(&self) -> i64 {
        now_ms() + self.retry_after.as_millis() as i64
    }

    async fn retry(&self, id: &str, at: i64) -> Result<CloseOutcome, sqlx::Error> {
        self.store.schedule_check(id, at).await?;
        Ok(CloseOutcome::RetryAt(at))
    }
}
