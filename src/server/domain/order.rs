//! The order state machine's vocabulary: statuses and causes, the rows the store returns, and the
//! engine-independent rules (an order's WeChat `body`, when WeChat stops taking payment, why a
//! payment could not be applied).
//!
//! The transitions themselves are `Store` methods (`server::store`), each one guarded
//! `UPDATE … WHERE status IN (…)` with its event in the same transaction, written once per SQL
//! engine and checked by one contract suite:
//!
//! ```text
//! pending ──▶ paid          (notify / query SUCCESS)
//! pending ──▶ failed        (WeChat never created the payment; stock restored)
//! pending ──▶ closing ──▶ closed (stock restored)
//!                  └────▶ paid
//! pending ──▶ closed        (WeChat already reports CLOSED)
//! ```

use crate::app::types::{FailureReason, OrderStatus};

/// Who or what caused a transition; recorded on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Shopper,
    Notify,
    Sweep,
    Timeout,
    Operator,
    System,
    /// The daily reconciliation against WeChat's bill.
    Reconciliation,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Shopper => "shopper",
            Cause::Notify => "notify",
            Cause::Sweep => "sweep",
            Cause::Timeout => "timeout",
            Cause::Operator => "operator",
            Cause::System => "system",
            Cause::Reconciliation => "reconciliation",
        }
    }
}

/// What came of a shopper hiding an order from their list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HideOutcome {
    /// Hidden now, or hidden before.
    Hidden,
    /// Pending or closing: an order still in play stays in view.
    NotFinished,
    /// No such order in this session.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: String,
    pub session_id: String,
    pub created_at: i64,
    pub deadline_at: i64,
    /// When the reconciliation sweep first looks at it (if no notify came by then).
    pub first_check_at: i64,
    /// Most unfinished (pending or closing) orders the session may hold, this one included.
    pub max_open: i64,
    pub items: Vec<NewItem>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("unknown product {0}")]
    UnknownSku(String),
    #[error("only {left} left of {name}")]
    OutOfStock {
        sku: String,
        name: String,
        left: i64,
    },
    /// The session already holds this many unfinished orders.
    #[error("{0} unfinished orders")]
    TooManyOpen(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What the order became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub total_fee: i64,
    pub body: String,
}

/// WeChat's `body`: "Shop - First item" (+ "N more"), cut to 127 bytes at a character boundary
/// (String(128) in the protocol; Chinese names take 3 bytes a character).
pub fn order_body(shop: &str, names: &[String]) -> String {
    let mut body = format!(
        "{shop} - {}",
        names.first().map(String::as_str).unwrap_or("order")
    );
    if names.len() > 1 {
        body.push_str(&format!(" +{} more", names.len() - 1));
    }
    let mut end = body.len().min(127);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body.truncate(end);
    body
}

/// `'pending', 'closing'` for an IN list (statuses are our own constants, never input).
pub fn status_list(statuses: &[OrderStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evidence that WeChat took the money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    pub paid_at: i64,
}

/// A verified pay result as the notify (or the bus carrying it) tells it: the evidence the
/// consumer applies, whatever API version or bus brought it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayResult {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    /// Beijing `yyyyMMddHHmmss` as WeChat sent it (kept in the inbox as evidence).
    pub time_end: String,
    /// `time_end` in UTC epoch milliseconds.
    pub paid_at_ms: i64,
    /// When scanpay received the notify (for the notify-to-paid metric); absent in messages
    /// from an earlier version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at_ms: Option<i64>,
}

impl From<&PayResult> for Payment {
    fn from(n: &PayResult) -> Payment {
        Payment {
            out_trade_no: n.out_trade_no.clone(),
            transaction_id: n.transaction_id.clone(),
            total_fee: n.total_fee,
            paid_at: n.paid_at_ms,
        }
    }
}

impl Payment {
    /// How the timeline shows it.
    pub fn detail(&self) -> String {
        format!(
            "transaction_id={} total_fee={}",
            self.transaction_id, self.total_fee
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaidOutcome {
    /// This call moved the order to `paid`.
    Paid,
    /// Already paid with this transaction: a duplicate, nothing changed.
    AlreadyPaid,
    /// Recorded as an anomaly for an operator; the order was not changed.
    Anomaly(&'static str),
}

impl PaidOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaidOutcome::Paid => "paid",
            PaidOutcome::AlreadyPaid => "duplicate",
            PaidOutcome::Anomaly(kind) => kind,
        }
    }
}

/// Why a payment the guarded paid transition did not apply cannot be applied, given the order
/// as it is; None when it is the duplicate of the payment already applied.
pub fn classify_unapplied(
    status: &str,
    total_fee: i64,
    transaction_id: Option<&str>,
    p: &Payment,
) -> Option<&'static str> {
    if status == "paid" && transaction_id == Some(p.transaction_id.as_str()) {
        None
    } else if total_fee != p.total_fee {
        Some("amount_mismatch")
    } else if status == "paid" {
        Some("second_payment")
    } else {
        Some("paid_after_close")
    }
}

/// How long a shopper's request (placing, cancelling) waits for WeChat before answering: past it
/// the work carries on in the background and the checkout's polls pick up the outcome.
pub const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_millis(1500);

/// The last moment WeChat takes payment (`time_expire`, whole seconds): a tenth of the time to pay,
/// at most a minute, before our deadline, so a payment cannot land after we have started closing
/// (the late-payment race shrinks to clock skew). Shoppers are shown this as their deadline.
pub fn pay_by(created_at: i64, deadline_at: i64) -> i64 {
    let margin = ((deadline_at - created_at) / 10).min(60_000);
    (deadline_at - margin).div_euclid(1000) * 1000
}

// ---- read models

#[derive(Debug, Clone)]
pub struct OrderRow {
    /// When the sweep next looks at it (None once finished or parked).
    pub next_check_at: Option<i64>,
    pub id: String,
    pub session_id: String,
    pub status: OrderStatus,
    pub total_fee: i64,
    pub body: String,
    pub created_at: i64,
    pub deadline_at: i64,
    pub code_url: Option<String>,
    pub transaction_id: Option<String>,
    pub paid_at: Option<i64>,
    pub failure_reason: Option<FailureReason>,
    /// Waiting for an operator (a payment that could not be applied): no automatic flow touches it.
    pub parked: bool,
    /// What WeChat has returned to the shopper (successful refunds of the order's payment).
    pub refunded_fee: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub sku: String,
    pub name: String,
    pub unit_price_fen: i64,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub cause: String,
    pub detail: String,
}

/// A payment that does not fit an order, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyRow {
    pub id: String,
    pub order_id: String,
    pub transaction_id: String,
    pub kind: String,
    pub detail: String,
    pub at: i64,
    pub order_status: Option<String>,
    pub parked_at: Option<i64>,
}

// Rows as the engines read them (the columns in this order), into the read models.

impl From<(String, String, i64, i64)> for ItemRow {
    fn from((sku, name, unit_price_fen, qty): (String, String, i64, i64)) -> Self {
        ItemRow {
            sku,
            name,
            unit_price_fen,
            qty,
        }
    }
}

impl From<(i64, i64, String, String, String)> for EventRow {
    fn from((seq, at, kind, cause, detail): (i64, i64, String, String, String)) -> Self {
        EventRow {
            seq,
            at,
            kind,
            cause,
            detail,
        }
    }
}

/// The columns an engine reads an anomaly as, in order (see `From` below).
pub type AnomalyColumns = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
);

impl From<AnomalyColumns> for AnomalyRow {
    fn from(
        (id, order_id, transaction_id, kind, detail, at, order_status, parked_at): AnomalyColumns,
    ) -> Self {
        AnomalyRow {
            id,
            order_id,
            transaction_id,
            kind,
            detail,
            at,
            order_status,
            parked_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pay_by;

    #[test]
    fn wechat_stops_taking_payment_a_little_before_the_deadline() {
        assert_eq!(
            pay_by(0, 900_000),
            840_000,
            "15 minutes: one minute earlier"
        );
        assert_eq!(
            pay_by(0, 3_000),
            2_000,
            "3 s: 300 ms earlier, cut to the second"
        );
        assert_eq!(pay_by(1_500, 11_500), 10_000);
    }
}
