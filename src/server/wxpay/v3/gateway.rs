//! The v3 client behind the same `Gateway` the flows call on v2.

use super::client::V3Client;
use super::crypto::{SignedBy, VerifyError};
use super::notify::{self, V3Notify, V3NotifyError};
use crate::server::wxpay::bill::BillAnswer;
use crate::server::wxpay::{
    BoxFuture, Gateway, OrderQueryResponse, RefundAccepted, RefundRecord, RefundRequest,
    UnifiedOrderRequest, UnifiedOrderResponse, WxPayError,
};

impl Gateway for V3Client {
    fn unified_order<'a>(
        &'a self,
        req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>> {
        Box::pin(self.native(req))
    }
    fn order_query<'a>(
        &'a self,
        out_trade_no: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>> {
        Box::pin(self.query(out_trade_no))
    }
    fn close_order<'a>(&'a self, out_trade_no: &'a str) -> BoxFuture<'a, Result<(), WxPayError>> {
        Box::pin(self.close(out_trade_no))
    }
    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundAccepted, WxPayError>> {
        Box::pin(V3Client::refund(self, req))
    }
    fn refund_query<'a>(
        &'a self,
        out_refund_no: &'a str,
    ) -> BoxFuture<'a, Result<RefundRecord, WxPayError>> {
        Box::pin(self.refund_status(out_refund_no))
    }
    fn download_bill<'a>(
        &'a self,
        bill_date: &'a str,
    ) -> BoxFuture<'a, Result<BillAnswer, WxPayError>> {
        Box::pin(self.trade_bill(bill_date))
    }
    fn api(&self) -> &'static str {
        "v3"
    }
    fn misdirected(&self, recent_ms: i64) -> Option<(i64, String)> {
        V3Client::misdirected(self, recent_ms)
    }
    fn read_v3_notify<'a>(
        &'a self,
        signed: &'a SignedBy,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<V3Notify, V3NotifyError>> {
        Box::pin(async move {
            let read = || {
                let now = crate::server::support::clock::now_ms() / 1000;
                notify::parse(
                    signed,
                    body,
                    &self.keys(),
                    self.apiv3_key(),
                    &self.appid,
                    self.mchid(),
                    now,
                )
            };
            match read() {
                // A certificate WeChat started signing with since the last fetch: fetch once.
                Err(V3NotifyError::Signature(VerifyError::UnknownSerial(serial))) => {
                    self.refresh_certificates(Some(&serial)).await;
                    read()
                }
                r => r,
            }
        })
    }
}
