//! The v3 endpoints scanpay calls (wxpay-v3.md §5), each read into the types the v2 client gives
//! (`UnifiedOrderResponse`, `OrderQueryResponse`, `RefundAccepted`, `RefundRecord`,
//! `BillAnswer`), so the flows behind `Gateway` cannot tell the APIs apart.

use std::io::Read as _;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::V3Client;
use crate::server::support::clock::{
    beijing_display, format_beijing, format_rfc3339_beijing, parse_beijing, parse_rfc3339,
};
use crate::server::wxpay::bill::{BillAnswer, MAX_BILL, MAX_DOWNLOAD};
use crate::server::wxpay::error::{ErrCode, WxPayError};
use crate::server::wxpay::{
    OrderQueryResponse, RefundAccepted, RefundRecord, RefundRequest, RefundState, TradeState,
    UnifiedOrderRequest, UnifiedOrderResponse,
};

#[derive(Deserialize)]
struct Native {
    #[serde(default)]
    code_url: String,
}

#[derive(Deserialize, Default)]
struct Amount {
    #[serde(default)]
    total: Option<i64>,
    #[serde(default)]
    refund: Option<i64>,
}

#[derive(Deserialize)]
struct Transaction {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    mchid: String,
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    transaction_id: String,
    trade_state: String,
    #[serde(default)]
    trade_state_desc: String,
    #[serde(default)]
    success_time: String,
    #[serde(default)]
    amount: Option<Amount>,
}

#[derive(Deserialize)]
struct Refund {
    #[serde(default)]
    refund_id: String,
    #[serde(default)]
    out_refund_no: String,
    status: String,
    #[serde(default)]
    success_time: String,
    #[serde(default)]
    user_received_account: String,
    #[serde(default)]
    amount: Amount,
}

#[derive(Deserialize)]
struct TradeBill {
    #[serde(default)]
    hash_type: String,
    #[serde(default)]
    hash_value: String,
    download_url: String,
}

fn read<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, WxPayError> {
    serde_json::from_slice(body).map_err(|e| WxPayError::InvalidResponse(format!("{what}: {e}")))
}

fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// v3 takes only 1–3-byte UTF-8 characters (§0): others (emoji) become `?`, the same way every
/// time, so a request sent again is byte for byte the same.
fn bmp(s: &str) -> String {
    s.chars()
        .map(|c| if c.len_utf8() > 3 { '?' } else { c })
        .collect()
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl V3Client {
    /// `POST /v3/pay/transactions/native`. v3 has no prepay_id for Native (empty here).
    pub async fn native(
        &self,
        r: &UnifiedOrderRequest,
    ) -> Result<UnifiedOrderResponse, WxPayError> {
        let mut body = json!({
            "appid": self.appid,
            "mchid": self.mchid(),
            "description": bmp(&r.body),
            "out_trade_no": r.out_trade_no,
            "notify_url": r.notify_url,
            "amount": {"total": r.total_fee, "currency": "CNY"},
            "scene_info": {"payer_client_ip": r.spbill_create_ip},
        });
        if let Some(te) = &r.time_expire {
            let ms = parse_beijing(te).map_err(WxPayError::InvalidResponse)?;
            body["time_expire"] = json!(format_rfc3339_beijing(ms));
        }
        if let Some(a) = r.attach.as_ref().filter(|a| !a.is_empty()) {
            body["attach"] = json!(bmp(a));
        }
        let a = self
            .observed("unifiedorder", Some(&r.out_trade_no), async {
                self.json(
                    Method::POST,
                    "v3/pay/transactions/native",
                    Some(body.to_string()),
                )
                .await
            })
            .await?;
        let n: Native = read(&a.body, "native")?;
        if n.code_url.is_empty() {
            return Err(WxPayError::InvalidResponse("missing code_url".into()));
        }
        Ok(UnifiedOrderResponse {
            prepay_id: String::new(),
            code_url: n.code_url,
        })
    }

    /// `GET /v3/pay/transactions/out-trade-no/{no}?mchid=`.
    pub async fn query(&self, out_trade_no: &str) -> Result<OrderQueryResponse, WxPayError> {
        let rel = format!(
            "v3/pay/transactions/out-trade-no/{}?mchid={}",
            segment(out_trade_no),
            segment(self.mchid())
        );
        let a = self
            .observed("orderquery", Some(out_trade_no), async {
                self.json(Method::GET, &rel, None).await
            })
            .await?;
        let t: Transaction = read(&a.body, "transaction")?;
        if t.mchid != self.mchid() || t.appid != self.appid {
            return Err(WxPayError::InvalidResponse(
                "appid/mchid do not match this merchant".into(),
            ));
        }
        if !t.out_trade_no.is_empty() && t.out_trade_no != out_trade_no {
            return Err(WxPayError::InvalidResponse(format!(
                "asked for {out_trade_no}, answered {}",
                t.out_trade_no
            )));
        }
        let time_end = match t.success_time.as_str() {
            "" => None,
            s => Some(format_beijing(parse_rfc3339(s).map_err(|e| {
                WxPayError::InvalidResponse(format!("success_time: {e}"))
            })?)),
        };
        Ok(OrderQueryResponse {
            trade_state: TradeState::parse(&t.trade_state),
            out_trade_no: nonempty(t.out_trade_no).unwrap_or_else(|| out_trade_no.to_string()),
            trade_state_desc: nonempty(t.trade_state_desc),
            transaction_id: nonempty(t.transaction_id),
            total_fee: t.amount.and_then(|a| a.total),
            time_end,
        })
    }

    /// `POST /v3/pay/transactions/out-trade-no/{no}/close`: 204 when closed.
    pub async fn close(&self, out_trade_no: &str) -> Result<(), WxPayError> {
        let rel = format!(
            "v3/pay/transactions/out-trade-no/{}/close",
            segment(out_trade_no)
        );
        let body = json!({"mchid": self.mchid()}).to_string();
        self.observed("closeorder", Some(out_trade_no), async {
            self.json(Method::POST, &rel, Some(body)).await
        })
        .await
        .map(|_| ())
    }

    /// `POST /v3/refund/domestic/refunds` (no mutual TLS in v3).
    pub async fn refund(&self, r: &RefundRequest) -> Result<RefundAccepted, WxPayError> {
        let mut body = json!({
            "transaction_id": r.transaction_id,
            "out_refund_no": r.out_refund_no,
            "amount": {"refund": r.refund_fee, "total": r.total_fee, "currency": "CNY"},
        });
        if !r.refund_desc.is_empty() {
            body["reason"] = json!(bmp(&r.refund_desc));
        }
        if !r.notify_url.is_empty() {
            body["notify_url"] = json!(r.notify_url);
        }
        let a = self
            .observed("refund", Some(&r.out_trade_no), async {
                self.json(
                    Method::POST,
                    "v3/refund/domestic/refunds",
                    Some(body.to_string()),
                )
                .await
            })
            .await
            // v3 says "not found" of the order with RESOURCE_NOT_EXISTS.
            .map_err(|e| rename(e, "RESOURCE_NOT_EXISTS", ErrCode::OrderNotExist))?;
        let f: Refund = read(&a.body, "refund")?;
        if f.refund_id.is_empty() {
            return Err(WxPayError::InvalidResponse("missing refund_id".into()));
        }
        Ok(RefundAccepted {
            refund_id: f.refund_id,
            refund_fee: f.amount.refund.unwrap_or(r.refund_fee),
        })
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`; not found is v2's REFUNDNOTEXIST.
    pub async fn refund_status(&self, out_refund_no: &str) -> Result<RefundRecord, WxPayError> {
        let rel = format!("v3/refund/domestic/refunds/{}", segment(out_refund_no));
        let order = out_refund_no.rsplit_once('R').map(|(o, _)| o.to_string());
        let a = self
            .observed("refundquery", order.as_deref(), async {
                self.json(Method::GET, &rel, None).await
            })
            .await
            .map_err(|e| rename(e, "RESOURCE_NOT_EXISTS", ErrCode::RefundNotExist))?;
        let f: Refund = read(&a.body, "refund")?;
        if !f.out_refund_no.is_empty() && f.out_refund_no != out_refund_no {
            return Err(WxPayError::InvalidResponse(format!(
                "asked for {out_refund_no}, answered {}",
                f.out_refund_no
            )));
        }
        let state = match f.status.as_str() {
            "SUCCESS" => RefundState::Success,
            "CLOSED" => RefundState::Closed,
            "PROCESSING" => RefundState::Processing,
            // v3's ABNORMAL is v2's CHANGE: a person must act at WeChat.
            "ABNORMAL" => RefundState::Change,
            other => RefundState::Other(other.to_string()),
        };
        let success_time = match f.success_time.as_str() {
            "" => None,
            t => Some(beijing_display(parse_rfc3339(t).map_err(|e| {
                WxPayError::InvalidResponse(format!("success_time: {e}"))
            })?)),
        };
        Ok(RefundRecord {
            out_refund_no: nonempty(f.out_refund_no).unwrap_or_else(|| out_refund_no.to_string()),
            refund_id: f.refund_id,
            refund_fee: f
                .amount
                .refund
                .ok_or_else(|| WxPayError::InvalidResponse("missing amount.refund".into()))?,
            state,
            success_time,
            recv_account: nonempty(f.user_received_account),
        })
    }

    /// `GET /v3/bill/tradebill` then the signed, unsigned-answer download of its file, checked
    /// against the SHA-1 WeChat gave of the uncompressed file. `bill_date` is `yyyyMMdd`.
    pub async fn trade_bill(&self, bill_date: &str) -> Result<BillAnswer, WxPayError> {
        let started = std::time::Instant::now();
        let r = self.trade_bill_inner(bill_date).await;
        let result = match &r {
            Ok(BillAnswer::Text(_)) => "success".to_string(),
            Ok(BillAnswer::NoBill) => "no_bill".into(),
            Ok(BillAnswer::NotReady) => "bill_creating".into(),
            Ok(BillAnswer::Refused { .. }) => "protocol".into(),
            Err(e) => crate::server::wxpay::client::result_label(e),
        };
        self.observe_as("downloadbill", None, result, started);
        r
    }

    async fn trade_bill_inner(&self, bill_date: &str) -> Result<BillAnswer, WxPayError> {
        if bill_date.len() != 8 || !bill_date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WxPayError::InvalidResponse(format!(
                "bill date {bill_date:?}"
            )));
        }
        let date = format!(
            "{}-{}-{}",
            &bill_date[..4],
            &bill_date[4..6],
            &bill_date[6..]
        );
        let rel = format!("v3/bill/tradebill?bill_date={date}&bill_type=ALL&tar_type=GZIP");
        let a = match self.json(Method::GET, &rel, None).await {
            Ok(a) => a,
            // SYSTEM_ERROR, FREQUENCY_LIMITED, a 5xx: not a refusal, asked again later.
            Err(e) if e.is_retryable() => return Err(e),
            Err(WxPayError::Business { code, description }) => {
                return Ok(match code.as_str() {
                    "NO_STATEMENT_EXIST" => BillAnswer::NoBill,
                    "STATEMENT_CREATING" => BillAnswer::NotReady,
                    _ => BillAnswer::Refused {
                        msg: description,
                        code: code.as_str().to_string(),
                    },
                })
            }
            Err(e) => return Err(e),
        };
        let t: TradeBill = read(&a.body, "tradebill")?;
        let url = reqwest::Url::parse(&t.download_url)
            .map_err(|_| WxPayError::InvalidResponse("download_url".into()))?;
        // The file is fetched only from where the API lives, or over https from WeChat's other
        // hosts (the request is signed; redirects are not followed).
        let same_origin = url.origin() == self.base.origin();
        let wechat = url.scheme() == "https" && crate::server::wxpay::is_wechat_host(url.as_str());
        if !same_origin && !wechat {
            return Err(WxPayError::InvalidResponse(format!(
                "download_url on another host: {}",
                url.host_str().unwrap_or_default()
            )));
        }
        let file = self
            .send(
                Method::GET,
                url,
                None,
                MAX_DOWNLOAD,
                Some(self.timeout * 30),
                false,
            )
            .await?
            .body;
        let text = if file.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            // Every member, and one byte past the cap so a bill too large is refused as such.
            flate2::read::MultiGzDecoder::new(file.as_slice())
                .take(MAX_BILL + 1)
                .read_to_end(&mut out)
                .map_err(|e| WxPayError::InvalidResponse(format!("trade bill gzip: {e}")))?;
            if out.len() as u64 > MAX_BILL {
                return Err(WxPayError::InvalidResponse("trade bill too large".into()));
            }
            out
        } else {
            file
        };
        if !t.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(WxPayError::InvalidResponse(format!(
                "hash_type {:?}",
                t.hash_type
            )));
        }
        let digest = {
            use sha1::Digest as _;
            let d = sha1::Sha1::digest(&text);
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        if !digest.eq_ignore_ascii_case(&t.hash_value) {
            return Err(WxPayError::InvalidResponse(
                "the trade bill does not match its SHA-1".into(),
            ));
        }
        let text = String::from_utf8(text)
            .map_err(|_| WxPayError::InvalidResponse("the trade bill is not UTF-8".into()))?;
        Ok(BillAnswer::Text(text))
    }
}

/// A business error `from` (v3's wording) read as `to` (the code the flows know for it here).
fn rename(e: WxPayError, from: &str, to: ErrCode) -> WxPayError {
    match e {
        WxPayError::Business { code, description } if code.as_str() == from => {
            WxPayError::Business {
                code: to,
                description,
            }
        }
        other => other,
    }
}
