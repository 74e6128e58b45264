//! v3's error answers read into the `WxPayError` the v2 client gives: 5xx and 429 uncertain,
//! 401 a refusal of the request itself, other 4xx business errors under v2's codes.

use super::client::Answer;
use crate::server::wxpay::error::{ErrCode, WxPayError};

#[derive(serde::Deserialize, Default)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// A non-2xx answer as the v2 client would have reported the same refusal: 5xx and 429 are
/// uncertain (retryable), 401 a refusal of the request itself, other 4xx business errors.
pub(super) fn error_of(a: &Answer) -> WxPayError {
    let e: ErrorBody = serde_json::from_slice(&a.body).unwrap_or_default();
    match (a.status, e.code.as_str()) {
        (401, _) => WxPayError::Protocol {
            return_msg: format!("{} {}", e.code, e.message).trim().to_string(),
        },
        (429, _) => WxPayError::Business {
            code: ErrCode::FrequencyLimited,
            description: e.message,
        },
        (s, "SYSTEM_ERROR") if s >= 500 => WxPayError::Business {
            code: ErrCode::SystemError,
            description: e.message,
        },
        // A 5xx of any other kind, or an answer without WeChat's error body: the outcome is
        // unknown.
        (s, _) if s >= 500 => WxPayError::Http(s),
        (s, "") => WxPayError::Http(s),
        (_, code) => WxPayError::Business {
            code: code_of(code),
            description: e.message,
        },
    }
}

/// v3's error codes as the v2 codes the flows decide on (both spellings where WeChat has two).
pub fn code_of(code: &str) -> ErrCode {
    match code {
        "SYSTEM_ERROR" => ErrCode::SystemError,
        "FREQUENCY_LIMITED" => ErrCode::FrequencyLimited,
        "ORDER_CLOSED" | "ORDERCLOSED" => ErrCode::OrderClosed,
        "ORDER_PAID" | "ORDERPAID" => ErrCode::OrderPaid,
        "ORDER_NOT_EXIST" | "ORDERNOTEXIST" => ErrCode::OrderNotExist,
        "OUT_TRADE_NO_USED" => ErrCode::OutTradeNoUsed,
        "INVALID_REQUEST" => ErrCode::InvalidRequest,
        "PARAM_ERROR" => ErrCode::ParamError,
        "NO_AUTH" => ErrCode::NoAuth,
        "NOT_ENOUGH" | "NOTENOUGH" => ErrCode::NotEnough,
        "USER_ACCOUNT_ABNORMAL" => ErrCode::UserAccountAbnormal,
        "MCH_NOT_EXISTS" => ErrCode::MchidNotExist,
        "APPID_MCHID_NOT_MATCH" => ErrCode::AppidMchidNotMatch,
        "SIGN_ERROR" => ErrCode::SignError,
        other => ErrCode::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::wxpay::v3::crypto::SignedBy;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            signed_by: SignedBy::default(),
        }
    }

    #[test]
    fn error_answers_map_to_the_decisions_v2_gives() {
        let code = |s, b| error_of(&answer(s, b)).code().cloned();
        assert_eq!(
            code(500, r#"{"code":"SYSTEM_ERROR","message":"x"}"#),
            Some(ErrCode::SystemError)
        );
        assert_eq!(
            code(429, r#"{"code":"FREQUENCY_LIMITED","message":"x"}"#),
            Some(ErrCode::FrequencyLimited)
        );
        assert_eq!(
            code(400, r#"{"code":"ORDER_CLOSED"}"#),
            Some(ErrCode::OrderClosed)
        );
        assert_eq!(
            code(400, r#"{"code":"ORDER_PAID"}"#),
            Some(ErrCode::OrderPaid)
        );
        assert_eq!(
            code(400, r#"{"code":"ORDERPAID"}"#),
            Some(ErrCode::OrderPaid)
        );
        assert_eq!(
            code(404, r#"{"code":"ORDER_NOT_EXIST"}"#),
            Some(ErrCode::OrderNotExist)
        );
        assert_eq!(
            code(403, r#"{"code":"OUT_TRADE_NO_USED"}"#),
            Some(ErrCode::OutTradeNoUsed)
        );
        assert_eq!(
            code(403, r#"{"code":"NOT_ENOUGH"}"#),
            Some(ErrCode::NotEnough)
        );
        for uncertain in [
            answer(500, r#"{"code":"SYSTEM_ERROR"}"#),
            answer(502, "<html>bad gateway</html>"),
            answer(503, r#"{"code":"BANKERROR"}"#),
            answer(429, r#"{"code":"FREQUENCY_LIMITED"}"#),
        ] {
            assert!(error_of(&uncertain).is_retryable(), "{uncertain:?}");
        }
        for definite in [
            answer(400, r#"{"code":"ORDER_CLOSED"}"#),
            answer(403, r#"{"code":"OUT_TRADE_NO_USED"}"#),
            answer(401, r#"{"code":"SIGN_ERROR","message":"签名错误"}"#),
        ] {
            assert!(!error_of(&definite).is_retryable(), "{definite:?}");
        }
    }
}
