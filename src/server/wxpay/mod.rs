//! WeChat Pay API v2: signing, XML, the typed client and pay-result notifies.

pub mod bill;
pub mod client;
pub mod error;
pub mod notify;
pub mod refund;
pub mod refund_notify;
pub mod sign;
pub mod v3;
pub mod xml;

pub use client::{
    ClientTls, OrderQueryResponse, TradeState, UnifiedOrderRequest, UnifiedOrderResponse,
    WxPayClient,
};
pub use error::{ErrCode, WxPayError};
pub use refund::{RefundAccepted, RefundRecord, RefundRequest, RefundState};
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

/// A WeChat Pay API host (api.mch.weixin.qq.com, api2.mch.weixin.qq.com, …): real money.
pub fn is_wechat_host(base_url: &str) -> bool {
    reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        })
        .is_some_and(|h| h == "mch.weixin.qq.com" || h.ends_with(".mch.weixin.qq.com"))
}

pub use crate::server::support::BoxFuture;

/// The WeChat Pay calls the order and refund flows make. [`WxPayClient`] speaks HTTP to WeChat (or the
/// sandbox); the property tests script answers through the same seam.
pub trait Gateway: Send + Sync {
    fn unified_order<'a>(
        &'a self,
        req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>>;
    fn order_query<'a>(
        &'a self,
        out_trade_no: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>>;
    fn close_order<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, Result<(), WxPayError>>;
    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundAccepted, WxPayError>>;
    fn refund_query<'a>(
        &'a self,
        out_refund_no: &'a str,
    ) -> BoxFuture<'a, Result<RefundRecord, WxPayError>>;
    /// The trade bill (ALL) of a Beijing day, `yyyyMMdd`: its text, or why there is none.
    fn download_bill<'a>(
        &'a self,
        bill_date: &'a str,
    ) -> BoxFuture<'a, Result<bill::BillAnswer, WxPayError>>;

    /// Since when (epoch ms) the configured base has answered only what no WeChat Pay host
    /// answers (an HTTP error page, HTML), and how — repeatedly and within the last `recent_ms`;
    /// None while it speaks the protocol.
    fn misdirected(&self, _recent_ms: i64) -> Option<(i64, String)> {
        None
    }

    /// Which API this gateway speaks.
    fn api(&self) -> &'static str {
        "v2"
    }

    /// Verifies, decrypts and reads a v3 notify (pay or refund) as received: its signature
    /// headers over the raw body first. A v2 gateway refuses them all.
    fn read_v3_notify<'a>(
        &'a self,
        _signed: &'a v3::crypto::SignedBy,
        _body: &'a [u8],
    ) -> BoxFuture<'a, Result<v3::notify::V3Notify, v3::notify::V3NotifyError>> {
        Box::pin(async { Err(v3::notify::V3NotifyError::NotThisApi) })
    }
}

impl Gateway for WxPayClient {
    fn unified_order<'a>(
        &'a self,
        req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>> {
        Box::pin(WxPayClient::unified_order(self, req))
    }
    fn order_query<'a>(
        &'a self,
        out_trade_no: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>> {
        Box::pin(WxPayClient::order_query(self, out_trade_no))
    }
    fn close_order<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, Result<(), WxPayError>> {
        Box::pin(WxPayClient::close_order(self, out_trade_no))
    }
    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundAccepted, WxPayError>> {
        Box::pin(WxPayClient::refund(self, req))
    }
    fn refund_query<'a>(
        &'a self,
        out_refund_no: &'a str,
    ) -> BoxFuture<'a, Result<RefundRecord, WxPayError>> {
        Box::pin(WxPayClient::refund_query(self, out_refund_no))
    }
    fn download_bill<'a>(
        &'a self,
        bill_date: &'a str,
    ) -> BoxFuture<'a, Result<bill::BillAnswer, WxPayError>> {
        Box::pin(WxPayClient::download_bill(self, bill_date))
    }
    fn misdirected(&self, recent_ms: i64) -> Option<(i64, String)> {
        WxPayClient::misdirected(self, recent_ms)
    }
}
