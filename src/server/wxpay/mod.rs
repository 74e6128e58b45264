//! WeChat Pay API v2: signing, XML, the typed client and pay-result notifies.

pub mod client;
pub mod error;
pub mod notify;
pub mod sign;
pub mod time;
pub mod xml;

pub use client::{
    OrderQueryResponse, TradeState, UnifiedOrderRequest, UnifiedOrderResponse, WxPayClient,
};
pub use error::{ErrCode, WxPayError};
pub use sign::SignType;

use std::fmt;

/// The merchant's API key. Never printed: `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(<{} chars, redacted>)", self.0.chars().count())
    }
}

/// Who we are at WeChat Pay, and how we sign.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub appid: String,
    pub mch_id: String,
    pub api_key: ApiKey,
    pub sign_type: SignType,
}
