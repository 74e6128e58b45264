//! API v3 notifies (§4): the signature headers checked over the raw body first, then the
//! resource decrypted with the APIv3 key (its nonce and associated data from the envelope), then
//! read and checked against this merchant — into the same verified results v2's notifies give
//! (`PayNotify`, `RefundNotify`), so the flows behind them are the same.

use serde::Deserialize;

use super::crypto::{self, ApiV3Key, DecryptError, SignedBy, VerifyError, WechatKeys};
use crate::server::support::clock::{beijing_display, format_beijing, parse_rfc3339};
use crate::server::wxpay::notify::PayNotify;
use crate::server::wxpay::refund_notify::RefundNotify;
use crate::server::wxpay::RefundState;

/// A verified v3 notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V3Notify {
    /// `TRANSACTION.SUCCESS`.
    Pay(PayNotify),
    /// `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`.
    Refund(RefundNotify),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V3NotifyError {
    #[error("signature: {0}")]
    Signature(#[from] VerifyError),
    #[error("not a notify envelope: {0}")]
    Envelope(String),
    #[error("resource: {0}")]
    Decrypt(#[from] DecryptError),
    #[error("the resource is for another merchant (mchid/appid)")]
    WrongMerchant,
    #[error("an event this version does not take: {0}")]
    UnknownEvent(String),
    #[error("missing or malformed field {0}")]
    Field(&'static str),
    #[error("this shop speaks WeChat Pay API v2 (SCANPAY_WXPAY_API)")]
    NotThisApi,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    event_type: String,
    resource: Resource,
}

#[derive(Deserialize)]
struct Resource {
    #[serde(default)]
    algorithm: String,
    ciphertext: String,
    #[serde(default)]
    associated_data: String,
    nonce: String,
}

#[derive(Deserialize)]
struct Transaction {
    #[serde(default)]
    mchid: String,
    #[serde(default)]
    appid: String,
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    transaction_id: String,
    #[serde(default)]
    trade_state: String,
    #[serde(default)]
    success_time: String,
    payer: Option<Payer>,
    amount: Option<Amount>,
}

#[derive(Deserialize)]
struct Payer {
    #[serde(default)]
    openid: String,
}

#[derive(Deserialize)]
struct Amount {
    #[serde(default)]
    total: i64,
    #[serde(default)]
    refund: i64,
}

#[derive(Deserialize)]
struct Refund {
    #[serde(default)]
    mchid: String,
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    transaction_id: String,
    #[serde(default)]
    out_refund_no: String,
    #[serde(default)]
    refund_id: String,
    #[serde(default)]
    refund_status: String,
    #[serde(default)]
    success_time: String,
    #[serde(default)]
    user_received_account: String,
    amount: Option<Amount>,
}

/// Verifies, decrypts and reads one notify at `now_s` (Unix seconds). Nothing is believed
/// before the signature verifies over the exact bytes received.
pub fn parse(
    h: &SignedBy,
    body: &[u8],
    keys: &WechatKeys,
    key: &ApiV3Key,
    appid: &str,
    mchid: &str,
    now_s: i64,
) -> Result<V3Notify, V3NotifyError> {
    keys.verify(h, body, now_s)?;
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| V3NotifyError::Envelope(e.to_string()))?;
    if env.resource.algorithm != "AEAD_AES_256_GCM" {
        return Err(V3NotifyError::Envelope(format!(
            "algorithm {:?}",
            env.resource.algorithm
        )));
    }
    let r = &env.resource;
    let plain = crypto::decrypt(key, &r.nonce, &r.associated_data, &r.ciphertext)?;
    match env.event_type.as_str() {
        "TRANSACTION.SUCCESS" => pay(&plain, appid, mchid).map(V3Notify::Pay),
        "REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED" => {
            refund(&plain, mchid).map(V3Notify::Refund)
        }
        other => Err(V3NotifyError::UnknownEvent(other.to_string())),
    }
}

fn nonempty(v: &str, name: &'static str) -> Result<String, V3NotifyError> {
    (!v.is_empty())
        .then(|| v.to_string())
        .ok_or(V3NotifyError::Field(name))
}

fn pay(plain: &[u8], appid: &str, mchid: &str) -> Result<PayNotify, V3NotifyError> {
    let t: Transaction =
        serde_json::from_slice(plain).map_err(|_| V3NotifyError::Field("transaction"))?;
    if t.mchid != mchid || t.appid != appid {
        return Err(V3NotifyError::WrongMerchant);
    }
    // A delivery retried after a refund may say REFUND: still this payment.
    if t.trade_state != "SUCCESS" && t.trade_state != "REFUND" {
        return Err(V3NotifyError::Field("trade_state"));
    }
    let total = t
        .amount
        .map(|a| a.total)
        .filter(|v| *v > 0)
        .ok_or(V3NotifyError::Field("amount.total"))?;
    let paid_at_ms =
        parse_rfc3339(&t.success_time).map_err(|_| V3NotifyError::Field("success_time"))?;
    Ok(PayNotify {
        out_trade_no: nonempty(&t.out_trade_no, "out_trade_no")?,
        transaction_id: nonempty(&t.transaction_id, "transaction_id")?,
        total_fee: total,
        // As v2 writes it, so both APIs leave the same evidence in the inbox.
        time_end: format_beijing(paid_at_ms),
        paid_at_ms,
        openid: t.payer.map(|p| p.openid).filter(|o| !o.is_empty()),
    })
}

fn refund(plain: &[u8], mchid: &str) -> Result<RefundNotify, V3NotifyError> {
    let r: Refund = serde_json::from_slice(plain).map_err(|_| V3NotifyError::Field("refund"))?;
    if r.mchid != mchid {
        return Err(V3NotifyError::WrongMerchant);
    }
    let amount = r.amount.ok_or(V3NotifyError::Field("amount"))?;
    if amount.total <= 0 {
        return Err(V3NotifyError::Field("amount.total"));
    }
    if amount.refund <= 0 {
        return Err(V3NotifyError::Field("amount.refund"));
    }
    let state = match r.refund_status.as_str() {
        "SUCCESS" => RefundState::Success,
        "CLOSED" => RefundState::Closed,
        // v3's ABNORMAL is v2's CHANGE: the money could not reach the shopper; a person acts.
        "ABNORMAL" => RefundState::Change,
        _ => return Err(V3NotifyError::Field("refund_status")),
    };
    let success_time = match (&state, r.success_time.as_str()) {
        (RefundState::Success, t) => Some(beijing_display(
            parse_rfc3339(t).map_err(|_| V3NotifyError::Field("success_time"))?,
        )),
        _ => None,
    };
    Ok(RefundNotify {
        out_refund_no: nonempty(&r.out_refund_no, "out_refund_no")?,
        refund_id: nonempty(&r.refund_id, "refund_id")?,
        out_trade_no: nonempty(&r.out_trade_no, "out_trade_no")?,
        transaction_id: nonempty(&r.transaction_id, "transaction_id")?,
        total_fee: amount.total,
        refund_fee: amount.refund,
        state,
        success_time,
        recv_account: Some(r.user_received_account).filter(|a| !a.is_empty()),
    })
}

#[cfg(test)]
mod tests;
