//! Refunds: their states, and the guards a new one must pass — pure, so every engine applies the
//! same rules to the facts it read under the order's lock.
//!
//! ```text
//! requested ──WeChat accepted──► processing ──► success | closed | abnormal (CHANGE: a person acts)
//!     │  ▲ uncertain answer: the same out_refund_no and amounts again
//!     └──┴──WeChat refused──► failed
//! ```

use super::Cause;
use crate::app::types::OrderStatus;

/// WeChat splits one payment into at most this many refunds.
pub const MAX_REFUNDS_PER_ORDER: usize = 50;
/// WeChat's shortest spacing between two refunds of one order.
pub const WECHAT_REFUND_SPACING_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Requested,
    Processing,
    Success,
    Closed,
    Abnormal,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "requested",
            RefundStatus::Processing => "processing",
            RefundStatus::Success => "success",
            RefundStatus::Closed => "closed",
            RefundStatus::Abnormal => "abnormal",
            RefundStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => RefundStatus::Requested,
            "processing" => RefundStatus::Processing,
            "success" => RefundStatus::Success,
            "closed" => RefundStatus::Closed,
            "abnormal" => RefundStatus::Abnormal,
            "failed" => RefundStatus::Failed,
            _ => return None,
        })
    }
    /// Money that is, or may yet be, on its way back: it counts against what is refundable.
    pub fn holds_money(self) -> bool {
        !matches!(self, RefundStatus::Failed | RefundStatus::Closed)
    }
    /// Nothing automatic moves it again (abnormal waits for a person at WeChat).
    pub fn is_settled(self) -> bool {
        !matches!(self, RefundStatus::Requested | RefundStatus::Processing)
    }
}

/// A refund as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub out_refund_no: String,
    pub order_id: String,
    pub transaction_id: String,
    pub total_fee: i64,
    pub refund_fee: i64,
    pub reason: String,
    pub requested_by: String,
    pub restock: bool,
    pub anomaly_id: Option<String>,
    pub status: RefundStatus,
    pub refund_id: Option<String>,
    pub failure: Option<String>,
    pub success_time: Option<String>,
    pub recv_account: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub next_check_at: Option<i64>,
    pub check_attempts: i64,
}

/// What is being refunded: the order's own payment, or a payment recorded as an anomaly (a
/// late payment of a closed order, a second payment) that scanpay cannot keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOf {
    Order,
    /// The anomalous payment's WeChat transaction id.
    Anomaly {
        transaction_id: String,
    },
}

/// A refund someone asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub order_id: String,
    pub of: RefundOf,
    /// None: everything still refundable of that payment.
    pub refund_fee: Option<i64>,
    pub reason: String,
    /// An operator's name, or `system`.
    pub requested_by: String,
    pub cause: Cause,
    pub restock: bool,
    pub now: i64,
    /// Refunds of one order at least this far apart (WeChat's minute; tests shorten it).
    pub spacing_ms: i64,
    /// When the sweep first looks at it, should the caller not get to send it.
    pub first_check_at: i64,
}

/// The order as the guard sees it.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    pub status: OrderStatus,
    pub total_fee: i64,
    pub transaction_id: Option<String>,
}

/// An anomaly as the guard sees it.
#[derive(Debug, Clone)]
pub struct AnomalyFacts {
    pub id: String,
    pub kind: String,
    pub resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefusal {
    #[error("no such order")]
    NoOrder,
    #[error("the order is {}, not paid", .0.as_str())]
    NotPaid(OrderStatus),
    #[error("the amount must be a positive number of fen")]
    BadAmount,
    #[error("at most {refundable} fen of this payment can still be refunded")]
    OverRefundable { refundable: i64 },
    #[error("WeChat refunds one payment in at most {MAX_REFUNDS_PER_ORDER} parts")]
    TooMany,
    #[error("WeChat wants refunds of one order a minute apart: try again in {}s", (.wait_ms + 999) / 1000)]
    TooSoon { wait_ms: i64 },
    #[error("no such anomaly on this order")]
    NoAnomaly,
    #[error("an anomaly of kind {0} is not refunded automatically: a person decides")]
    NotRefundable(String),
    #[error("the anomaly is already resolved")]
    AnomalyResolved,
}

/// What came of a refund request that passed the guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Written now, `requested`: the caller sends it.
    New(RefundRow),
    /// The same request made moments ago (or the anomaly's refund): that refund, unchanged.
    Existing(RefundRow),
}

impl Requested {
    pub fn row(&self) -> &RefundRow {
        match self {
            Requested::New(r) | Requested::Existing(r) => r,
        }
    }
}

/// What the engine writes for an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Insert this refund.
    New {
        out_refund_no: String,
        transaction_id: String,
        total_fee: i64,
        refund_fee: i64,
        anomaly_id: Option<String>,
    },
    /// The same request again within the spacing (a double click): that refund.
    Same(Box<RefundRow>),
}

/// The guards, over the facts read in the request's transaction: only a paid order (or an
/// anomaly's payment); what holds money ≤ the payment; at most 50 per order; WeChat's minute
/// between two; the same request twice within that minute is one refund.
pub fn judge(
    ask: &NewRefund,
    order: &OrderFacts,
    anomaly: Option<&AnomalyFacts>,
    existing: &[RefundRow],
) -> Result<Judged, RefundRefusal> {
    if ask.refund_fee.is_some_and(|f| f <= 0) {
        return Err(RefundRefusal::BadAmount);
    }
    let (transaction_id, anomaly_id) = match (&ask.of, anomaly) {
        (RefundOf::Order, _) => match (&order.status, &order.transaction_id) {
            (OrderStatus::Paid, Some(tx)) => (tx.clone(), None),
            (status, _) => return Err(RefundRefusal::NotPaid(*status)),
        },
        (RefundOf::Anomaly { .. }, None) => return Err(RefundRefusal::NoAnomaly),
        (RefundOf::Anomaly { transaction_id }, Some(a)) => {
            if !matches!(a.kind.as_str(), "paid_after_close" | "second_payment") {
                return Err(RefundRefusal::NotRefundable(a.kind.clone()));
            }
            if a.resolved {
                return Err(RefundRefusal::AnomalyResolved);
            }
            (transaction_id.clone(), Some(a.id.clone()))
        }
    };
    // A double click: the latest refund of the order, asked the same way, moments ago.
    let latest = existing.iter().max_by_key(|r| r.created_at);
    if let Some(r) = latest {
        let same = r.transaction_id == transaction_id
            && ask.refund_fee.is_none_or(|f| f == r.refund_fee)
            && r.reason == ask.reason
            && r.restock == ask.restock
            && r.requested_by == ask.requested_by
            && r.anomaly_id == anomaly_id;
        if same && ask.now - r.created_at < ask.spacing_ms {
            return Ok(Judged::Same(Box::new(r.clone())));
        }
    }
    // An anomaly's payment is refunded once; asking again answers that refund while it holds
    // the money (after a refusal or a REFUNDCLOSE it may be asked for anew).
    if let Some(id) = &anomaly_id {
        if let Some(r) = existing
            .iter()
            .find(|r| r.anomaly_id.as_ref() == Some(id) && r.status.holds_money())
        {
            return Ok(Judged::Same(Box::new(r.clone())));
        }
    }
    let holding: Vec<&RefundRow> = existing.iter().filter(|r| r.status.holds_money()).collect();
    let of_payment: i64 = holding
        .iter()
        .filter(|r| r.transaction_id == transaction_id)
        .map(|r| r.refund_fee)
        .sum();
    let refundable = order.total_fee - of_payment;
    let refund_fee = ask.refund_fee.unwrap_or(refundable);
    if refund_fee > refundable || refundable <= 0 {
        return Err(RefundRefusal::OverRefundable {
            refundable: refundable.max(0),
        });
    }
    // WeChat counts every refund it accepted (a closed one too) toward its 50 and its minute;
    // only the ones it refused are as if never asked.
    let accepted: Vec<&RefundRow> = existing
        .iter()
        .filter(|r| r.status != RefundStatus::Failed)
        .collect();
    if accepted.len() >= MAX_REFUNDS_PER_ORDER {
        return Err(RefundRefusal::TooMany);
    }
    if let Some(last) = accepted.iter().map(|r| r.created_at).max() {
        let wait_ms = last + ask.spacing_ms - ask.now;
        if wait_ms > 0 {
            return Err(RefundRefusal::TooSoon { wait_ms });
        }
    }
    Ok(Judged::New {
        // Numbers are never reused, failed ones included: one number is one refund at WeChat.
        out_refund_no: format!("{}R{:02}", ask.order_id, existing.len() + 1),
        transaction_id,
        total_fee: order.total_fee,
        refund_fee,
        anomaly_id,
    })
}

/// How a refund ended at WeChat (from the refund notify or refundquery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundEnd {
    Success {
        refund_id: Option<String>,
        success_time: Option<String>,
        recv_account: Option<String>,
    },
    /// REFUNDCLOSE: the refund failed at WeChat; the money stays with the merchant.
    Closed,
    /// CHANGE: the money could not reach the shopper's account; a person acts at WeChat.
    Abnormal,
}

impl RefundEnd {
    pub fn status(&self) -> RefundStatus {
        match self {
            RefundEnd::Success { .. } => RefundStatus::Success,
            RefundEnd::Closed => RefundStatus::Closed,
            RefundEnd::Abnormal => RefundStatus::Abnormal,
        }
    }
}

#[cfg(test)]
mod tests;
