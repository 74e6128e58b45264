//! What each call leaves behind: its count and latency by API and result (metrics), the order
//! it was for (the operations log); and the bill download, which reads no XML.

use super::WxPayClient;
use crate::server::wxpay::error::WxPayError;
use crate::server::wxpay::xml::Params;

impl WxPayClient {
    /// `pay/downloadbill`: the day's ALL bill, asked gzipped. Its file is neither XML nor
    /// signed; a refusal is a small unsigned XML even when gzip was asked (decided on the bytes:
    /// `bill::classify`).
    pub async fn download_bill(
        &self,
        bill_date: &str,
    ) -> Result<crate::server::wxpay::bill::BillAnswer, WxPayError> {
        let started = std::time::Instant::now();
        let mut p = Params::new();
        p.insert("bill_date".into(), bill_date.to_string());
        p.insert("bill_type".into(), "ALL".into());
        p.insert("tar_type".into(), "GZIP".into());
        let r = self
            .post(
                &self.http,
                "pay/downloadbill",
                p,
                crate::server::wxpay::bill::MAX_DOWNLOAD,
                // A day's file is megabytes: its own time limit, not one call's.
                Some(self.timeout * BILL_TIMEOUT_CALLS),
            )
            .await
            .and_then(|body| {
                crate::server::wxpay::bill::classify(&body)
                    .map_err(|e| WxPayError::InvalidResponse(format!("trade bill: {e}")))
            })
            .and_then(|answer| match answer {
                // WeChat failed, it did not refuse: uncertain, as on v3.
                crate::server::wxpay::bill::BillAnswer::Refused { msg, .. }
                    if msg.eq_ignore_ascii_case("SYSTEMERROR") =>
                {
                    Err(WxPayError::Business {
                        code: crate::server::wxpay::ErrCode::SystemError,
                        description: msg,
                    })
                }
                other => Ok(other),
            });
        let result = match &r {
            Ok(crate::server::wxpay::bill::BillAnswer::Refused { .. }) => "protocol".to_string(),
            Ok(crate::server::wxpay::bill::BillAnswer::NotReady) => "bill_creating".to_string(),
            Ok(crate::server::wxpay::bill::BillAnswer::NoBill) => "no_bill".to_string(),
            Ok(crate::server::wxpay::bill::BillAnswer::Text(_)) => "success".to_string(),
            Err(e) => result_label(e),
        };
        self.observe_as("pay/downloadbill", None, result, started);
        r
    }
}

impl WxPayClient {
    /// Counts one call by API and how it ended (`success`, the business error code, or the
    /// class of failure), with its latency, and notes it for its order.
    pub(super) fn observe(
        &self,
        path: &str,
        order: Option<String>,
        r: &Result<Params, WxPayError>,
        started: std::time::Instant,
    ) {
        let result = match r {
            Ok(_) => "success".to_string(),
            Err(e) => result_label(e),
        };
        self.observe_as(path, order, result, started);
    }

    fn observe_as(
        &self,
        path: &str,
        order: Option<String>,
        result: String,
        started: std::time::Instant,
    ) {
        let took = started.elapsed();
        crate::server::support::metrics::wxpay_call(path, &result, took.as_secs_f64());
        if let Some(order_id) = order {
            self.oplog.record(crate::server::oplog::Entry::Call(
                crate::server::domain::CallRow {
                    at: crate::server::support::clock::now_ms(),
                    order_id,
                    api: path.rsplit('/').next().unwrap_or(path).to_string(),
                    result,
                    latency_ms: took.as_millis() as i64,
                },
            ));
        }
    }
}

/// A bill download (the whole file, megabytes) may take this many calls' time: 5 minutes at the
/// default 10 s.
const BILL_TIMEOUT_CALLS: u32 = 30;

/// How a call ended, as the metrics count it: the business error code or the class of failure.
pub(crate) fn result_label(e: &WxPayError) -> String {
    match e {
        WxPayError::Business { code, .. } => code.as_str().to_string(),
        WxPayError::Http(c) if *c >= 500 => "http_5xx".into(),
        WxPayError::Http(_) => "http_other".into(),
        WxPayError::Transport(_) => "transport".into(),
        WxPayError::Protocol { .. } => "protocol".into(),
        WxPayError::BadSignature => "bad_signature".into(),
        WxPayError::InvalidResponse(_) | WxPayError::Xml(_) => "invalid".into(),
    }
}

/// The order a call is about: its out_trade_no, or the one its out_refund_no (`<order>R<nn>`)
/// was made from.
pub(super) fn order_of(p: &Params) -> Option<String> {
    p.get("out_trade_no").cloned().or_else(|| {
        p.get("out_refund_no")
            .and_then(|no| no.rsplit_once('R').map(|(order, _)| order.to_string()))
    })
}
