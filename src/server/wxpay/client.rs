//! Typed calls to the WeChat Pay v2 API: `unifiedorder` (NATIVE), `orderquery`, `closeorder`
//! (refunds: `refund.rs`).

use std::time::Duration;

use super::error::{ErrCode, WxPayError};
use super::sign::{self, SignType};
use super::xml::{self, Params};
use super::Merchant;

/// A WeChat Pay v2 client. `base_url` is `https://api.mch.weixin.qq.com/` for real money or
/// `http://HOST:PORT/sandbox/` for the simulator; it must end with `/`.
#[derive(Clone)]
pub struct WxPayClient {
    http: reqwest::Client,
    /// For `secapi/` (refunds): the same, presenting the merchant's API client certificate.
    secure: reqwest::Client,
    base_url: String,
    merchant: Merchant,
    /// One call's time limit (a bill download gets `BILL_TIMEOUT_CALLS` of them).
    timeout: Duration,
    /// Answers no WeChat Pay host gives (an HTTP error page, HTML) since the last protocol answer:
    /// the base URL is probably wrong. Cleared by the next protocol answer.
    misdirected: std::sync::Arc<std::sync::Mutex<Option<Foreign>>>,
    /// Where each call for an order is noted (the console's order page).
    oplog: crate::server::oplog::OpLog,
}

/// Answers from something that does not speak WeChat Pay, since the last one that did.
#[derive(Debug, Clone)]
struct Foreign {
    first: i64,
    last: i64,
    count: u32,
    why: String,
}

/// `unifiedorder` with `trade_type=NATIVE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderRequest {
    pub body: String,
    pub out_trade_no: String,
    pub total_fee: i64,
    pub spbill_create_ip: String,
    pub notify_url: String,
    pub product_id: String,
    /// Beijing `yyyyMMddHHmmss`.
    pub time_start: Option<String>,
    pub time_expire: Option<String>,
    pub attach: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderResponse {
    pub prepay_id: String,
    pub code_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    Success,
    Refund,
    NotPay,
    Closed,
    Revoked,
    UserPaying,
    PayError,
    Accept,
    Other(String),
}

impl TradeState {
    pub fn parse(s: &str) -> Self {
        match s {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            "ACCEPT" => TradeState::Accept,
            other => TradeState::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            TradeState::Success => "SUCCESS",
            TradeState::Refund => "REFUND",
            TradeState::NotPay => "NOTPAY",
            TradeState::Closed => "CLOSED",
            TradeState::Revoked => "REVOKED",
            TradeState::UserPaying => "USERPAYING",
            TradeState::PayError => "PAYERROR",
            TradeState::Accept => "ACCEPT",
            TradeState::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQueryResponse {
    pub trade_state: TradeState,
    pub out_trade_no: String,
    pub trade_state_desc: Option<String>,
    /// Present when paid.
    pub transaction_id: Option<String>,
    pub total_fee: Option<i64>,
    /// Beijing `yyyyMMddHHmmss`, present when paid.
    pub time_end: Option<String>,
}

/// The TLS material of the client: the merchant's API client certificate and key (PEM, both in
/// one buffer) for `secapi/`, and an extra CA to trust (a sandbox serving HTTPS with its own).
#[derive(Default, Clone)]
pub struct ClientTls {
    pub identity_pem: Option<Vec<u8>>,
    pub extra_root_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Presence only: a private key is never printed.
        f.debug_struct("ClientTls")
            .field("identity", &self.identity_pem.is_some())
            .field("extra_root", &self.extra_root_pem.is_some())
            .finish()
    }
}

impl ClientTls {
    pub fn has_identity(&self) -> bool {
        self.identity_pem.is_some()
    }
}

impl WxPayClient {
    /// Notes every call made for an order in `log`.
    pub fn with_oplog(mut self, log: crate::server::oplog::OpLog) -> Self {
        self.oplog = log;
        self
    }

    pub fn new(base_url: &str, merchant: Merchant, timeout: Duration) -> Self {
        Self::with_tls(base_url, merchant, timeout, &ClientTls::default())
            .expect("no TLS material to read")
    }

    /// A client with TLS material; Err names what could not be read (never its contents).
    pub fn with_tls(
        base_url: &str,
        merchant: Merchant,
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<Self, String> {
        let mut base_url = base_url.to_string();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        let builder = || {
            let b = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout);
            match &tls.extra_root_pem {
                Some(pem) => reqwest::Certificate::from_pem(pem)
                    .map(|c| b.add_root_certificate(c))
                    .map_err(|_| "the extra CA certificate is not a PEM certificate".to_string()),
                None => Ok(b),
            }
        };
        let http = builder()?.build().map_err(|e| e.to_string())?;
        let secure = match &tls.identity_pem {
            Some(pem) => {
                let id = reqwest::Identity::from_pem(pem).map_err(|_| {
                    "the API client certificate and key are not a PEM certificate with its private key"
                        .to_string()
                })?;
                builder()?.identity(id).build().map_err(|e| e.to_string())?
            }
            None => http.clone(),
        };
        Ok(WxPayClient {
            http,
            secure,
            base_url,
            merchant,
            timeout,
            misdirected: Default::default(),
            oplog: Default::default(),
        })
    }

    pub fn merchant(&self) -> &Merchant {
        &self.merchant
    }

    pub async fn unified_order(
        &self,
        req: &UnifiedOrderRequest,
    ) -> Result<UnifiedOrderResponse, WxPayError> {
        let mut p = Params::new();
        p.insert("body".into(), req.body.clone());
        p.insert("out_trade_no".into(), req.out_trade_no.clone());
        p.insert("total_fee".into(), req.total_fee.to_string());
        p.insert("spbill_create_ip".into(), req.spbill_create_ip.clone());
        p.insert("notify_url".into(), req.notify_url.clone());
        p.insert("trade_type".into(), "NATIVE".into());
        p.insert("product_id".into(), req.product_id.clone());
        for (k, v) in [
            ("time_start", &req.time_start),
            ("time_expire", &req.time_expire),
            ("attach", &req.attach),
        ] {
            if let Some(v) = v {
                p.insert(k.into(), v.clone());
            }
        }
        let r = self.call_plain("pay/unifiedorder", p).await?;
        Ok(UnifiedOrderResponse {
            prepay_id: required(&r, "prepay_id")?,
            code_url: required(&r, "code_url")?,
        })
    }

    pub async fn order_query(&self, out_trade_no: &str) -> Result<OrderQueryResponse, WxPayError> {
        let mut p = Params::new();
        p.insert("out_trade_no".into(), out_trade_no.into());
        let r = self.call_plain("pay/orderquery", p).await?;
        let total_fee = match r.get("total_fee").filter(|v| !v.is_empty()) {
            Some(v) => Some(
                v.parse::<i64>()
                    .map_err(|_| WxPayError::InvalidResponse(format!("total_fee {v:?}")))?,
            ),
            None => None,
        };
        Ok(OrderQueryResponse {
            trade_state: TradeState::parse(&required(&r, "trade_state")?),
            out_trade_no: r
                .get("out_trade_no")
                .cloned()
                .unwrap_or_else(|| out_trade_no.to_string()),
            trade_state_desc: optional(&r, "trade_state_desc"),
            transaction_id: optional(&r, "transaction_id"),
            total_fee,
            time_end: optional(&r, "time_end"),
        })
    }

    pub async fn close_order(&self, out_trade_no: &str) -> Result<(), WxPayError> {
        let mut p = Params::new();
        p.insert("out_trade_no".into(), out_trade_no.into());
        self.call_plain("pay/closeorder", p).await.map(|_| ())
    }

    /// Since when the base URL has answered only what WeChat Pay never answers, and how: only
    /// once it has done so at least three times and lately (within `recent_ms`), so one stray
    /// page from a proxy, or an episode long over, does not count.
    pub fn misdirected(&self, recent_ms: i64) -> Option<(i64, String)> {
        let m = self.misdirected.lock().unwrap();
        let f = m.as_ref()?;
        let now = crate::server::support::clock::now_ms();
        (f.count >= 3 && now - f.last < recent_ms).then(|| (f.first, f.why.clone()))
    }

    pub(super) async fn call_plain(&self, path: &str, p: Params) -> Result<Params, WxPayError> {
        let started = std::time::Instant::now();
        let order = order_of(&p);
        let r = self.call(&self.http, path, p).await;
        self.observe(path, order, &r, started);
        r
    }

    /// Over mutual TLS (`secapi/`): without a client certificate WeChat answers a non-XML 400,
    /// which says the certificate is missing, not that the base URL is wrong — so it is not
    /// counted toward `misdirected`.
    pub(super) async fn call_secure(&self, path: &str, p: Params) -> Result<Params, WxPayError> {
        let started = std::time::Instant::now();
        let order = order_of(&p);
        let r = self.send(&self.secure, path, p).await;
        self.observe(path, order, &r, started);
        r
    }

    /// Signs and sends one request; checks the three result layers of the answer, and notes
    /// whether the answer came from something that speaks WeChat Pay at all.
    async fn call(
        &self,
        http: &reqwest::Client,
        path: &str,
        p: Params,
    ) -> Result<Params, WxPayError> {
        let result = self.send(http, path, p).await;
        let foreign = match &result {
            // WeChat answers 200 with XML, errors included; a 5xx can be a passing fault.
            Err(WxPayError::Http(code)) if *code < 500 => Some(format!("HTTP {code}")),
            Err(WxPayError::Xml(e)) => Some(format!("not WeChat Pay XML ({e})")),
            Err(WxPayError::Transport(_) | WxPayError::Http(_)) => return result,
            _ => None,
        };
        let mut m = self.misdirected.lock().unwrap();
        let now = crate::server::support::clock::now_ms();
        match (foreign, m.as_mut()) {
            (Some(why), Some(f)) => {
                f.last = now;
                f.count += 1;
                f.why = why;
            }
            (Some(why), None) => {
                *m = Some(Foreign {
                    first: now,
                    last: now,
                    count: 1,
                    why,
                })
            }
            (None, _) => *m = None,
        }
        drop(m);
        result
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        path: &str,
        p: Params,
    ) -> Result<Params, WxPayError> {
        let body = self.post(http, path, p, xml::MAX_BODY, None).await?;
        check_response(&xml::parse(&body)?, &self.merchant)
    }

    /// Signs `p` as this merchant, posts it, and reads an HTTP 200 answer of at most `cap` bytes.
    pub(super) async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        mut p: Params,
        cap: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, WxPayError> {
        let m = &self.merchant;
        p.insert("appid".into(), m.appid.clone());
        p.insert("mch_id".into(), m.mch_id.clone());
        p.insert("nonce_str".into(), nonce());
        if m.sign_type != SignType::Md5 {
            p.insert("sign_type".into(), m.sign_type.as_str().into());
        }
        let signature = sign::sign(&p, m.api_key.expose(), m.sign_type);
        p.insert("sign".into(), signature);

        let mut req = http
            .post(format!("{}{}", self.base_url, path))
            .header("content-type", "text/xml; charset=utf-8")
            .body(xml::to_xml(&p));
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| WxPayError::Transport(e.to_string()))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(WxPayError::Http(resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n as usize > cap) {
            return Err(
                xml::XmlError::TooLarge(resp.content_length().unwrap_or(0) as usize).into(),
            );
        }
        // Read chunk by chunk and stop at the cap: a chunked answer has no length to check first.
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| WxPayError::Transport(e.to_string()))?
        {
            if body.len() + chunk.len() > cap {
                return Err(xml::XmlError::TooLarge(body.len() + chunk.len()).into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Applies the protocol's layering to a parsed answer: `return_code`, then the signature (made
/// with the request's sign type), then identity, then `result_code`.
pub fn check_response(r: &Params, m: &Merchant) -> Result<Params, WxPayError> {
    match r.get("return_code").map(String::as_str) {
        Some("SUCCESS") => {}
        Some(_) => {
            let msg = r
                .get("return_msg")
                .or_else(|| r.get("retmsg"))
                .cloned()
                .unwrap_or_default();
            return Err(WxPayError::Protocol { return_msg: msg });
        }
        None => return Err(WxPayError::InvalidResponse("no return_code".into())),
    }
    if !sign::verify(r, m.api_key.expose(), m.sign_type) {
        return Err(WxPayError::BadSignature);
    }
    if r.get("appid") != Some(&m.appid) || r.get("mch_id") != Some(&m.mch_id) {
        return Err(WxPayError::InvalidResponse(
            "appid/mch_id do not match this merchant".into(),
        ));
    }
    match r.get("result_code").map(String::as_str) {
        Some("SUCCESS") => Ok(r.clone()),
        Some(_) => Err(WxPayError::Business {
            code: ErrCode::parse(r.get("err_code").map(String::as_str).unwrap_or("")),
            description: r.get("err_code_des").cloned().unwrap_or_default(),
        }),
        None => Err(WxPayError::InvalidResponse("no result_code".into())),
    }
}

fn required(r: &Params, k: &str) -> Result<String, WxPayError> {
    optional(r, k).ok_or_else(|| WxPayError::InvalidResponse(format!("missing {k}")))
}

fn optional(r: &Params, k: &str) -> Option<String> {
    r.get(k).filter(|v| !v.is_empty()).cloned()
}

/// 32 random alphanumerics: the longest nonce_str the protocol allows.
pub fn nonce() -> String {
    crate::server::support::ids::random_alnum(32)
}

mod observe;
use observe::order_of;
pub(crate) use observe::result_label;
