//! Types shared by the server and the browser.

use serde::{Deserialize, Serialize};

/// An amount in fen (1/100 yuan). Never negative; never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fen(i64);

impl Fen {
    pub fn new(fen: i64) -> Option<Self> {
        (fen >= 0).then_some(Fen(fen))
    }
    pub fn get(self) -> i64 {
        self.0
    }
    /// `¥68.00`
    pub fn yuan(self) -> String {
        format!("¥{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Pending,
    Closing,
    Paid,
    Closed,
    Failed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Closing => "closing",
            OrderStatus::Paid => "paid",
            OrderStatus::Closed => "closed",
            OrderStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => OrderStatus::Pending,
            "closing" => OrderStatus::Closing,
            "paid" => OrderStatus::Paid,
            "closed" => OrderStatus::Closed,
            "failed" => OrderStatus::Failed,
            _ => return None,
        })
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::Closed | OrderStatus::Failed
        )
    }
}

/// Why an order ended without payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureReason {
    Expired,
    Cancelled,
    PaymentNotCreated,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Expired => "expired",
            FailureReason::Cancelled => "cancelled",
            FailureReason::PaymentNotCreated => "payment_not_created",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "expired" => FailureReason::Expired,
            "cancelled" => FailureReason::Cancelled,
            "payment_not_created" => FailureReason::PaymentNotCreated,
            _ => return None,
        })
    }
    /// What the shopper reads on the failure page.
    pub fn explain(self) -> super::i18n::Key {
        use super::i18n::Key;
        match self {
            FailureReason::Expired => Key::failed_expired,
            FailureReason::Cancelled => Key::failed_cancelled,
            FailureReason::PaymentNotCreated => Key::failed_not_created,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Fen,
    pub stock: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItemView {
    pub sku: String,
    pub name: String,
    pub qty: i64,
    pub unit_price: Fen,
}

/// Everything the checkout, success and failure pages show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: String,
    pub shop_name: String,
    pub status: OrderStatus,
    pub amount: Fen,
    pub items: Vec<OrderItemView>,
    /// Milliseconds left to pay, as the server saw it.
    pub remaining_ms: i64,
    /// Inline SVG of the QR code (generated on the server from WeChat's code_url).
    pub qr_svg: Option<String>,
    /// The sandbox phone page for this code, when the sandbox is serving payments.
    pub sandbox_scan_url: Option<String>,
    pub transaction_id: Option<String>,
    /// Beijing time, `2026-11-27 10:31:05`.
    pub paid_at: Option<String>,
    pub failure_reason: Option<FailureReason>,
    /// What WeChat has returned to the shopper (zero: nothing).
    pub refunded: Fen,
}

/// One line of the shopper's order list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub id: String,
    pub status: OrderStatus,
    pub amount: Fen,
    /// What was bought, as WeChat shows it (`Shop - Tieguanyin oolong +1 more`).
    pub body: String,
    /// Beijing time, `2026-11-27 10:31:05`.
    pub placed_at: String,
    /// What WeChat has returned to the shopper (zero: nothing).
    pub refunded: Fen,
}

/// What the checkout page polls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub status: OrderStatus,
    pub remaining_ms: i64,
    /// WeChat has issued the QR code (it may come late, after an uncertain first request).
    pub qr_ready: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Order not found.")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    #[error("{0}")]
    ServerFn(String),
}

impl AppError {
    /// What the shopper reads: messages from the server come in their language already.
    pub fn text(&self, lang: super::i18n::Lang) -> String {
        use super::i18n::{text, Key};
        match self {
            AppError::NotFound => text(lang, Key::err_not_found).to_string(),
            AppError::Internal => text(lang, Key::err_internal).to_string(),
            AppError::BadRequest(m) | AppError::Unavailable(m) | AppError::ServerFn(m) => m.clone(),
        }
    }
}

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;
    /// Arguments that do not parse (malformed, missing, out of range) are the caller's
    /// mistake: 400 with a plain message in the caller's language, never serde's text and a 500.
    fn from_server_fn_error(e: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match e {
            #[cfg(feature = "ssr")]
            E::Args(_) | E::MissingArg(_) | E::Deserialization(_) => {
                tracing_bad_args(&e);
                AppError::BadRequest(crate::app::i18n::console::bad_arguments(400))
            }
            e => AppError::ServerFn(e.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
fn tracing_bad_args(e: &leptos::server_fn::error::ServerFnErrorErr) {
    tracing::info!(error = %e, "server function called with bad arguments: 400");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fen_formats_as_yuan_and_refuses_negatives() {
        assert_eq!(Fen::new(6800).unwrap().yuan(), "¥68.00");
        assert_eq!(Fen::new(101).unwrap().yuan(), "¥1.01");
        assert_eq!(Fen::new(5).unwrap().yuan(), "¥0.05");
        assert!(Fen::new(-1).is_none());
    }
}
