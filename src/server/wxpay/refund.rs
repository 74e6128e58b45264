//! Refunds on v2 (reference: wxpay-refund-bill.md §1–§2): `secapi/pay/refund`, sent over mutual
//! TLS with the merchant's API client certificate, and `pay/refundquery`. A SUCCESS from
//! `refund` means "accepted", not "money returned": the outcome comes from the refund notify or
//! from `refundquery`.

use super::client::WxPayClient;
use super::error::WxPayError;
use super::xml::Params;

/// A refund's state at WeChat (`refund_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundState {
    Success,
    /// `REFUNDCLOSE`: failed at WeChat, final.
    Closed,
    Processing,
    /// The shopper's account could not take the money: a person must act at WeChat.
    Change,
    Other(String),
}

impl RefundState {
    pub fn parse(s: &str) -> Self {
        match s {
            "SUCCESS" => RefundState::Success,
            "REFUNDCLOSE" => RefundState::Closed,
            "PROCESSING" => RefundState::Processing,
            "CHANGE" => RefundState::Change,
            other => RefundState::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            RefundState::Success => "SUCCESS",
            RefundState::Closed => "REFUNDCLOSE",
            RefundState::Processing => "PROCESSING",
            RefundState::Change => "CHANGE",
            RefundState::Other(s) => s,
        }
    }
}

/// One refund request. Sent again after an uncertain answer exactly as first sent: the same
/// `out_refund_no` with the same amounts is the same refund at WeChat; a new number would refund
/// twice, changed amounts under the old number are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The payment refunded (WeChat gives it precedence over out_trade_no).
    pub transaction_id: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    /// The payment's whole amount: WeChat requires it to equal the order's.
    pub total_fee: i64,
    pub refund_fee: i64,
    /// Shown in the shopper's refund message (at most 80 characters).
    pub refund_desc: String,
    pub notify_url: String,
}

/// WeChat accepted the refund application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAccepted {
    pub refund_id: String,
    pub refund_fee: i64,
}

/// One refund of a `refundquery` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_fee: i64,
    pub state: RefundState,
    pub success_time: Option<String>,
    pub recv_account: Option<String>,
}

impl WxPayClient {
    pub async fn refund(&self, r: &RefundRequest) -> Result<RefundAccepted, WxPayError> {
        let mut p = Params::new();
        p.insert("transaction_id".into(), r.transaction_id.clone());
        p.insert("out_trade_no".into(), r.out_trade_no.clone());
        p.insert("out_refund_no".into(), r.out_refund_no.clone());
        p.insert("total_fee".into(), r.total_fee.to_string());
        p.insert("refund_fee".into(), r.refund_fee.to_string());
        p.insert("refund_fee_type".into(), "CNY".into());
        p.insert(
            "refund_desc".into(),
            r.refund_desc.chars().take(80).collect(),
        );
        p.insert("notify_url".into(), r.notify_url.clone());
        let a = self.call_secure("secapi/pay/refund", p).await?;
        if a.get("out_refund_no") != Some(&r.out_refund_no) {
            return Err(WxPayError::InvalidResponse(
                "the answer names another out_refund_no".into(),
            ));
        }
        let refund_fee = fen(&a, "refund_fee")?;
        if refund_fee != r.refund_fee {
            return Err(WxPayError::InvalidResponse(format!(
                "refund_fee {refund_fee} answered for {} asked",
                r.refund_fee
            )));
        }
        Ok(RefundAccepted {
            refund_id: text(&a, "refund_id")?,
            refund_fee,
        })
    }

    /// The state of one refund, asked by our number (which WeChat ranks after refund_id, and
    /// which we always have, even before WeChat named its refund_id).
    pub async fn refund_query(&self, out_refund_no: &str) -> Result<RefundRecord, WxPayError> {
        let mut p = Params::new();
        p.insert("out_refund_no".into(), out_refund_no.into());
        let a = self.call_plain("pay/refundquery", p).await?;
        let count = fen_or_zero(&a, "refund_count")?;
        // The record that names our number (the `_$n` fields are signed like any other; the
        // answer was verified before this); another refund's record is not read at all.
        let n = (0..count)
            .find(|n| {
                a.get(&format!("out_refund_no_{n}")).map(String::as_str) == Some(out_refund_no)
            })
            .ok_or_else(|| {
                WxPayError::InvalidResponse(format!("refundquery does not list {out_refund_no}"))
            })?;
        record(&a, n)
    }
}

fn record(a: &Params, n: i64) -> Result<RefundRecord, WxPayError> {
    let k = |name: &str| format!("{name}_{n}");
    let get = |name: &str| a.get(&k(name)).filter(|v| !v.is_empty()).cloned();
    Ok(RefundRecord {
        out_refund_no: get("out_refund_no").ok_or_else(|| {
            WxPayError::InvalidResponse(format!("missing {}", k("out_refund_no")))
        })?,
        refund_id: get("refund_id").unwrap_or_default(),
        refund_fee: fen(a, &k("refund_fee"))?,
        state: RefundState::parse(&get("refund_status").ok_or_else(|| {
            WxPayError::InvalidResponse(format!("missing {}", k("refund_status")))
        })?),
        success_time: get("refund_success_time"),
        recv_account: get("refund_recv_accout"),
    })
}

fn text(a: &Params, k: &str) -> Result<String, WxPayError> {
    a.get(k)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| WxPayError::InvalidResponse(format!("missing {k}")))
}

fn fen(a: &Params, k: &str) -> Result<i64, WxPayError> {
    let v = text(a, k)?;
    v.parse::<i64>()
        .ok()
        .filter(|f| *f >= 0)
        .ok_or_else(|| WxPayError::InvalidResponse(format!("{k} {v:?}")))
}

fn fen_or_zero(a: &Params, k: &str) -> Result<i64, WxPayError> {
    match a.get(k).filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(_) => fen(a, k),
    }
}
