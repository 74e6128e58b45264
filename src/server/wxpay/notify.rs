//! Pay-result notifies (reference §5): parse, verify, and the exact acknowledgement XML.

use super::sign;
use super::xml::{self, Params, XmlError};
use super::Merchant;
use crate::server::support::clock::parse_beijing;

/// A verified payment result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayNotify {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    /// Beijing `yyyyMMddHHmmss` as sent.
    pub time_end: String,
    /// `time_end` converted to UTC epoch milliseconds.
    pub paid_at_ms: i64,
    pub openid: Option<String>,
}

impl From<&PayNotify> for crate::server::domain::PayResult {
    fn from(n: &PayNotify) -> Self {
        crate::server::domain::PayResult {
            out_trade_no: n.out_trade_no.clone(),
            transaction_id: n.transaction_id.clone(),
            total_fee: n.total_fee,
            time_end: n.time_end.clone(),
            paid_at_ms: n.paid_at_ms,
            received_at_ms: Some(crate::server::support::clock::now_ms()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("unreadable notify: {0}")]
    Xml(#[from] XmlError),
    #[error("notify has return_code={0}")]
    NotSuccess(String),
    #[error("notify has no sign")]
    MissingSign,
    #[error("notify signature does not verify")]
    BadSign,
    #[error("notify is for another merchant (appid/mch_id mismatch)")]
    WrongMerchant,
    #[error("notify reports a failed payment ({0})")]
    PaymentFailed(String),
    #[error("notify field {0}: {1}")]
    BadField(&'static str, String),
}

/// Parses and verifies a notify body. The configured sign type is used whatever the notify says
/// (WeChat may omit `sign_type` under HMAC-SHA256), and a missing `sign` never passes.
pub fn parse_and_verify(body: &[u8], merchant: &Merchant) -> Result<PayNotify, NotifyError> {
    let p = xml::parse(body)?;
    verify(&p, merchant)?;
    to_pay_notify(&p)
}

pub fn verify(p: &Params, merchant: &Merchant) -> Result<(), NotifyError> {
    match p.get("return_code").map(String::as_str) {
        Some("SUCCESS") => {}
        other => return Err(NotifyError::NotSuccess(other.unwrap_or("<none>").into())),
    }
    if p.get("sign").is_none_or(|s| s.is_empty()) {
        return Err(NotifyError::MissingSign);
    }
    if !sign::verify(p, merchant.api_key.expose(), merchant.sign_type) {
        return Err(NotifyError::BadSign);
    }
    if p.get("appid") != Some(&merchant.appid) || p.get("mch_id") != Some(&merchant.mch_id) {
        return Err(NotifyError::WrongMerchant);
    }
    Ok(())
}

fn to_pay_notify(p: &Params) -> Result<PayNotify, NotifyError> {
    if p.get("result_code").map(String::as_str) != Some("SUCCESS") {
        return Err(NotifyError::PaymentFailed(
            p.get("err_code").cloned().unwrap_or_default(),
        ));
    }
    let field = |k: &'static str| {
        p.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(NotifyError::BadField(k, "missing".into()))
    };
    let total_fee_s = field("total_fee")?;
    let total_fee = total_fee_s
        .parse::<i64>()
        .ok()
        .filter(|f| *f > 0 && total_fee_s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            NotifyError::BadField(
                "total_fee",
                format!("{total_fee_s:?} is not a positive integer"),
            )
        })?;
    let time_end = field("time_end")?;
    let paid_at_ms = parse_beijing(&time_end).map_err(|e| NotifyError::BadField("time_end", e))?;
    Ok(PayNotify {
        out_trade_no: field("out_trade_no")?,
        transaction_id: field("transaction_id")?,
        total_fee,
        time_end,
        paid_at_ms,
        openid: p.get("openid").cloned(),
    })
}

/// The acknowledgement WeChat stops retrying on. Byte-exact: re-encoded replies cause endless retries.
pub const REPLY_SUCCESS: &str =
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

pub fn reply_fail(msg: &str) -> String {
    let mut p = Params::new();
    p.insert("return_code".into(), "FAIL".into());
    p.insert("return_msg".into(), msg.into());
    xml::to_xml(&p)
}

/// Whether a notify reply acknowledges delivery (the sandbox's notifier uses this).
pub fn is_success_reply(body: &[u8]) -> bool {
    xml::parse(body).is_ok_and(|p| p.get("return_code").map(String::as_str) == Some("SUCCESS"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::wxpay::{ApiKey, SignType};

    fn merchant(sign_type: SignType) -> Merchant {
        Merchant {
            appid: "wxd930ea5d5a258f4f".into(),
            mch_id: "10000100".into(),
            api_key: ApiKey::new("192006250b4c09247ec02edce69f6a2d"),
            sign_type,
        }
    }

    fn notify_params() -> Params {
        [
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("nonce_str", "1761723102373"),
            ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
            ("bank_type", "ICBC_DEBIT"),
            ("cash_fee", "1"),
            ("fee_type", "CNY"),
            ("is_subscribe", "N"),
            ("out_trade_no", "SP20251029ABC"),
            ("time_end", "20251029153852"),
            ("total_fee", "1"),
            ("trade_type", "NATIVE"),
            ("transaction_id", "4200002882202510298162739638"),
            ("rate_value", "unknown-but-signed"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn signed(mut p: Params, m: &Merchant) -> Vec<u8> {
        let s = sign::sign(&p, m.api_key.expose(), m.sign_type);
        p.insert("sign".into(), s);
        xml::to_xml(&p).into_bytes()
    }

    #[test]
    fn verified_notify_parses_with_utc_time() {
        for st in [SignType::Md5, SignType::HmacSha256] {
            let m = merchant(st);
            let n = parse_and_verify(&signed(notify_params(), &m), &m).unwrap();
            assert_eq!(n.total_fee, 1);
            assert_eq!(n.transaction_id, "4200002882202510298162739638");
            assert_eq!(n.paid_at_ms, 1_761_723_532_000);
        }
    }

    #[test]
    fn refuses_missing_wrong_or_mismatched_signatures() {
        let m = merchant(SignType::Md5);
        let unsigned = xml::to_xml(&notify_params()).into_bytes();
        assert_eq!(
            parse_and_verify(&unsigned, &m),
            Err(NotifyError::MissingSign)
        );
        // Signed with MD5 but we are configured for HMAC: refused.
        assert_eq!(
            parse_and_verify(
                &signed(notify_params(), &m),
                &merchant(SignType::HmacSha256)
            ),
            Err(NotifyError::BadSign)
        );
        let mut forged = notify_params();
        forged.insert("sign".into(), "0".repeat(32));
        assert_eq!(
            parse_and_verify(xml::to_xml(&forged).as_bytes(), &m),
            Err(NotifyError::BadSign)
        );
        let mut other = notify_params();
        other.insert("appid".into(), "wx0000000000000000".into());
        assert_eq!(
            parse_and_verify(&signed(other, &m), &m),
            Err(NotifyError::WrongMerchant)
        );
        let mut fractional = notify_params();
        fractional.insert("total_fee".into(), "1.0".into());
        assert!(matches!(
            parse_and_verify(&signed(fractional, &m), &m),
            Err(NotifyError::BadField("total_fee", _))
        ));
    }

    #[test]
    fn replies_are_exact() {
        assert!(is_success_reply(REPLY_SUCCESS.as_bytes()));
        assert!(!is_success_reply(reply_fail("bad sign").as_bytes()));
        assert!(!is_success_reply(b"SUCCESS"));
        assert_eq!(reply_fail("x"), "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[x]]></return_msg></xml>");
    }
}
