//! One error type for every WeChat Pay v2 call (reference §4), and the caller's reaction to it.

use super::xml::XmlError;

/// Business error codes (`err_code` when `result_code=FAIL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrCode {
    SystemError,
    InvalidRequest,
    OutTradeNoUsed,
    OrderPaid,
    OrderClosed,
    OrderNotExist,
    TradeStateError,
    NoAuth,
    NotEnough,
    AppidNotExist,
    MchidNotExist,
    AppidMchidNotMatch,
    LackParams,
    SignError,
    XmlFormatError,
    RequirePostMethod,
    PostDataEmpty,
    NotUtf8,
    BizerrNeedRetry,
    TradeOverdue,
    Error,
    UserAccountAbnormal,
    InvalidReqTooMuch,
    InvalidTransactionId,
    ParamError,
    FrequencyLimited,
    RefundNotExist,
    /// A code this version does not know; kept verbatim.
    Other(String),
}

impl ErrCode {
    pub fn parse(code: &str) -> Self {
        use ErrCode::*;
        match code {
            "SYSTEMERROR" => SystemError,
            "INVALID_REQUEST" => InvalidRequest,
            "OUT_TRADE_NO_USED" => OutTradeNoUsed,
            "ORDERPAID" => OrderPaid,
            "ORDERCLOSED" => OrderClosed,
            "ORDERNOTEXIST" => OrderNotExist,
            "TRADE_STATE_ERROR" => TradeStateError,
            "NOAUTH" => NoAuth,
            "NOTENOUGH" => NotEnough,
            "APPID_NOT_EXIST" => AppidNotExist,
            "MCHID_NOT_EXIST" => MchidNotExist,
            "APPID_MCHID_NOT_MATCH" => AppidMchidNotMatch,
            "LACK_PARAMS" => LackParams,
            "SIGNERROR" => SignError,
            "XML_FORMAT_ERROR" => XmlFormatError,
            "REQUIRE_POST_METHOD" => RequirePostMethod,
            "POST_DATA_EMPTY" => PostDataEmpty,
            "NOT_UTF8" => NotUtf8,
            "BIZERR_NEED_RETRY" => BizerrNeedRetry,
            "TRADE_OVERDUE" => TradeOverdue,
            "ERROR" => Error,
            "USER_ACCOUNT_ABNORMAL" => UserAccountAbnormal,
            "INVALID_REQ_TOO_MUCH" => InvalidReqTooMuch,
            "INVALID_TRANSACTIONID" => InvalidTransactionId,
            "PARAM_ERROR" => ParamError,
            "FREQUENCY_LIMITED" => FrequencyLimited,
            "REFUNDNOTEXIST" => RefundNotExist,
            other => Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        use ErrCode::*;
        match self {
            SystemError => "SYSTEMERROR",
            InvalidRequest => "INVALID_REQUEST",
            OutTradeNoUsed => "OUT_TRADE_NO_USED",
            OrderPaid => "ORDERPAID",
            OrderClosed => "ORDERCLOSED",
            OrderNotExist => "ORDERNOTEXIST",
            TradeStateError => "TRADE_STATE_ERROR",
            NoAuth => "NOAUTH",
            NotEnough => "NOTENOUGH",
            AppidNotExist => "APPID_NOT_EXIST",
            MchidNotExist => "MCHID_NOT_EXIST",
            AppidMchidNotMatch => "APPID_MCHID_NOT_MATCH",
            LackParams => "LACK_PARAMS",
            SignError => "SIGNERROR",
            XmlFormatError => "XML_FORMAT_ERROR",
            RequirePostMethod => "REQUIRE_POST_METHOD",
            PostDataEmpty => "POST_DATA_EMPTY",
            NotUtf8 => "NOT_UTF8",
            BizerrNeedRetry => "BIZERR_NEED_RETRY",
            TradeOverdue => "TRADE_OVERDUE",
            Error => "ERROR",
            UserAccountAbnormal => "USER_ACCOUNT_ABNORMAL",
            InvalidReqTooMuch => "INVALID_REQ_TOO_MUCH",
            InvalidTransactionId => "INVALID_TRANSACTIONID",
            ParamError => "PARAM_ERROR",
            FrequencyLimited => "FREQUENCY_LIMITED",
            RefundNotExist => "REFUNDNOTEXIST",
            Other(s) => s,
        }
    }

    /// Safe to call again with the same parameters (same out_trade_no / out_refund_no).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrCode::SystemError
                | ErrCode::BizerrNeedRetry
                | ErrCode::InvalidReqTooMuch
                | ErrCode::FrequencyLimited
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WxPayError {
    /// No answer: connection refused, reset or timed out. The call may or may not have happened.
    #[error("no answer from WeChat Pay: {0}")]
    Transport(String),
    /// An HTTP status other than 200.
    #[error("WeChat Pay answered HTTP {0}")]
    Http(u16),
    /// `return_code=FAIL`: the request itself was refused (bad sign, bad XML, bad parameter).
    #[error("WeChat Pay refused the request: {return_msg}")]
    Protocol { return_msg: String },
    /// `result_code=FAIL` with an `err_code`.
    #[error("WeChat Pay business error {}: {description}", code.as_str())]
    Business { code: ErrCode, description: String },
    /// The answer could not be read or lacked a required field.
    #[error("unreadable answer from WeChat Pay: {0}")]
    InvalidResponse(String),
    #[error("unreadable XML from WeChat Pay: {0}")]
    Xml(#[from] XmlError),
    /// A 2xx answer whose signature is missing or wrong is treated as forged.
    #[error("answer signature missing or invalid")]
    BadSignature,
}

impl WxPayError {
    /// The outcome at WeChat is unknown: the same request (same out_trade_no and parameters) may
    /// be sent again, and nothing may be concluded from the failure.
    pub fn is_retryable(&self) -> bool {
        match self {
            WxPayError::Transport(_) | WxPayError::Http(_) => true,
            WxPayError::Business { code, .. } => code.is_retryable(),
            // A forged or garbled answer tells us nothing about the order's state.
            WxPayError::BadSignature | WxPayError::InvalidResponse(_) | WxPayError::Xml(_) => true,
            WxPayError::Protocol { .. } => false,
        }
    }

    pub fn code(&self) -> Option<&ErrCode> {
        match self {
            WxPayError::Business { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_kept() {
        for code in [
            "SYSTEMERROR",
            "INVALID_REQUEST",
            "OUT_TRADE_NO_USED",
            "ORDERPAID",
            "ORDERCLOSED",
            "ORDERNOTEXIST",
            "TRADE_STATE_ERROR",
            "NOAUTH",
            "NOTENOUGH",
            "APPID_NOT_EXIST",
            "MCHID_NOT_EXIST",
            "APPID_MCHID_NOT_MATCH",
            "LACK_PARAMS",
            "SIGNERROR",
            "XML_FORMAT_ERROR",
            "REQUIRE_POST_METHOD",
            "POST_DATA_EMPTY",
            "NOT_UTF8",
            "BIZERR_NEED_RETRY",
            "TRADE_OVERDUE",
            "ERROR",
            "USER_ACCOUNT_ABNORMAL",
            "INVALID_REQ_TOO_MUCH",
            "INVALID_TRANSACTIONID",
            "PARAM_ERROR",
            "FREQUENCY_LIMITED",
            "REFUNDNOTEXIST",
            "SOMETHING_NEW",
        ] {
            assert_eq!(ErrCode::parse(code).as_str(), code);
        }
        assert_eq!(
            ErrCode::parse("SOMETHING_NEW"),
            ErrCode::Other("SOMETHING_NEW".into())
        );
    }

    #[test]
    fn only_uncertain_failures_are_retryable() {
        let business = |c: &str| WxPayError::Business {
            code: ErrCode::parse(c),
            description: String::new(),
        };
        assert!(business("SYSTEMERROR").is_retryable());
        assert!(business("BIZERR_NEED_RETRY").is_retryable());
        assert!(WxPayError::Transport("timeout".into()).is_retryable());
        assert!(WxPayError::BadSignature.is_retryable());
        for definite in [
            "OUT_TRADE_NO_USED",
            "ORDERPAID",
            "ORDERCLOSED",
            "INVALID_REQUEST",
            "NOAUTH",
            "SIGNERROR",
        ] {
            assert!(!business(definite).is_retryable(), "{definite}");
        }
        assert!(!WxPayError::Protocol {
            return_msg: "签名错误".into()
        }
        .is_retryable());
    }
}
