//! v3's protocol layer, shared by its endpoints: the request as received (its signature covers
//! the exact path, query and body bytes), its authentication (§1, §8), answers signed over the
//! exact bytes sent (§2), WeChat's error JSON, the v2 outcomes in v3's words, the API faults, and
//! readers for JSON fields that name the field a refusal is about.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rsa::pkcs1v15::Signature;
use rsa::signature::Verifier;
use serde_json::{json, Value};

use super::{SandboxV3, SharedV3, V3Merchant};
use crate::server::sandbox::api::{BizError, HANG};
use crate::server::sandbox::faults::ApiFault;
use crate::server::sandbox::Sandbox;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::v3::crypto::{answer_message, SCHEME, WINDOW_S};

/// The largest request body taken.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// A request as received.
pub(super) struct V3Request {
    method: Method,
    /// Path and query exactly as received (percent-encoding kept, the `/sandbox` prefix too):
    /// what the merchant signed.
    uri: String,
    headers: HeaderMap,
    /// None: larger than [`MAX_BODY`] (or unreadable).
    body: Option<Bytes>,
    /// Over the sandbox's own TLS (`tls::serve` marks those requests).
    https: bool,
}

impl<S: Send + Sync> FromRequest<S> for V3Request {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        // Nested routers see the path without their prefix; the signature covers all of it.
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |o| &o.0);
        let uri = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
        let https = parts
            .extensions
            .get::<crate::server::sandbox::tls::ClientCert>()
            .is_some();
        let body = axum::body::to_bytes(body, MAX_BODY).await.ok();
        Ok(V3Request {
            method: parts.method,
            uri,
            headers: parts.headers,
            body,
            https,
        })
    }
}

/// An authenticated request.
pub(super) struct Ctx {
    pub v3: SharedV3,
    pub merchant: V3Merchant,
    /// The request's `Wechatpay-Serial`: in the migration window it picks the answer's key.
    pub serial: Option<String>,
    /// The JSON object of a POST; Null for a GET.
    pub json: Value,
    pub query: HashMap<String, String>,
    /// The path as received, without the query.
    pub path: String,
    /// `http(s)://host` as the merchant reached the sandbox (from `Host`).
    pub origin: String,
}

/// A refusal: HTTP status, WeChat's code and message, and an optional `detail`.
#[derive(Debug, Clone)]
pub(super) struct V3Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<Value>,
}

impl V3Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        V3Error {
            status: StatusCode::from_u16(status).expect("a valid status"),
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// 400 PARAM_ERROR.
    pub fn param(message: impl Into<String>) -> Self {
        V3Error::new(400, "PARAM_ERROR", message)
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub(super) fn system_error() -> V3Error {
    V3Error::new(500, "SYSTEM_ERROR", "系统错误 (sandbox fault)")
}

/// A v2 business outcome in v3's words (wxpay-v3.md §5 tables). The too-soon second refund
/// (v2 INVALID_REQ_TOO_MUCH, "wait a minute") becomes 429: back off, retry the same number.
pub(super) fn from_v2(e: BizError) -> V3Error {
    let BizError(code, message) = e;
    let (status, code) = match code {
        "ORDERNOTEXIST" => (404, "ORDER_NOT_EXIST"),
        "REFUNDNOTEXIST" => (404, "RESOURCE_NOT_EXISTS"),
        "ORDERPAID" => (400, "ORDER_PAID"),
        "ORDERCLOSED" => (400, "ORDER_CLOSED"),
        "OUT_TRADE_NO_USED" => (403, "OUT_TRADE_NO_USED"),
        "NOTENOUGH" => (403, "NOT_ENOUGH"),
        "SYSTEMERROR" => (500, "SYSTEM_ERROR"),
        "FREQUENCY_LIMITED" | "INVALID_REQ_TOO_MUCH" => (429, "FREQUENCY_LIMITED"),
        "LACK_PARAMS" | "PARAM_ERROR" => (400, "PARAM_ERROR"),
        // INVALID_REQUEST, REFUND_FEE_MISMATCH, TRADE_OVERDUE, ERROR (fully refunded, 50
        // refunds): the request cannot succeed as it is.
        _ => (400, "INVALID_REQUEST"),
    };
    V3Error::new(status, code, message)
}

/// What an endpoint answers.
pub(super) enum Reply {
    Json(Value),
    NoContent,
}

pub(super) type Outcome = Result<Reply, V3Error>;

fn error_body(e: &V3Error) -> Vec<u8> {
    let mut v = json!({"code": e.code, "message": e.message});
    if let Some(d) = &e.detail {
        v["detail"] = d.clone();
    }
    serde_json::to_vec(&v).expect("JSON values serialize")
}

/// An answer signed over exactly `body` (§2.2) by the key `serial` selects (§3.3).
pub(super) fn signed(
    v3: &SandboxV3,
    serial: Option<&str>,
    status: StatusCode,
    body: Vec<u8>,
) -> Response {
    let key = v3.answer_key(serial);
    let timestamp = (now_ms() / 1000).to_string();
    let nonce = random_alnum(32);
    let signature = key.signer.sign(&answer_message(&timestamp, &nonce, &body));
    let mut b = Response::builder()
        .status(status)
        .header("Wechatpay-Timestamp", timestamp)
        .header("Wechatpay-Nonce", nonce)
        .header("Wechatpay-Signature", signature)
        .header("Wechatpay-Serial", key.id.as_str())
        .header("Wechatpay-Signature-Type", SCHEME)
        .header("Request-ID", request_id());
    if !body.is_empty() {
        b = b.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    }
    b.body(Body::from(body)).expect("valid headers")
}

/// An unsigned answer (the bill file, §5.6).
pub(super) fn unsigned(content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header("Request-ID", request_id())
        .body(Body::from(body))
        .expect("valid headers")
}

fn request_id() -> String {
    random_alnum(32).to_ascii_uppercase()
}

fn error_response(v3: &SandboxV3, serial: Option<&str>, e: &V3Error) -> Response {
    signed(v3, serial, e.status, error_body(e))
}

impl Ctx {
    /// The signed answer of an outcome.
    pub fn answer(&self, outcome: Outcome) -> Response {
        let serial = self.serial.as_deref();
        match outcome {
            Ok(Reply::Json(v)) => signed(
                &self.v3,
                serial,
                StatusCode::OK,
                serde_json::to_vec(&v).expect("JSON values serialize"),
            ),
            Ok(Reply::NoContent) => signed(&self.v3, serial, StatusCode::NO_CONTENT, Vec::new()),
            Err(e) => error_response(&self.v3, serial, &e),
        }
    }

    /// Refuses `mchid` (body or query) when it is not the signing merchant's.
    pub fn same_mchid(&self, mchid: Option<&str>, location: &str) -> Result<(), V3Error> {
        match mchid {
            None | Some("") => Err(missing(&format!("/{location}/mchid"), location)),
            Some(m) if m == self.merchant.mchid => Ok(()),
            Some(_) => Err(V3Error::param("mchid与请求头Authorization中的mchid不一致")
                .with_detail(json!({"field": "mchid", "location": location}))),
        }
    }
}

/// Applies the API fault in force: SYSTEM_ERROR without effect, or the effect with no timely
/// answer, or the answer late (as v2's `with_fault`).
pub(super) async fn with_fault(
    ctx: &Ctx,
    fault: ApiFault,
    apply: impl FnOnce() -> Outcome,
) -> Response {
    match fault {
        ApiFault::SystemError => ctx.answer(Err(system_error())),
        ApiFault::Timeout => {
            let response = ctx.answer(apply());
            tokio::time::sleep(HANG).await;
            response
        }
        ApiFault::Latency(d) => {
            tokio::time::sleep(d).await;
            ctx.answer(apply())
        }
        ApiFault::None => ctx.answer(apply()),
    }
}

/// 401 SIGN_ERROR, with what was verified when it came that far (§1.3's shape).
fn sign_error(issue: &str, signed_message: Option<(&Method, &str, &[u8])>) -> V3Error {
    let mut detail = json!({
        "detail": {"issue": issue},
        "field": "signature",
        "location": "authorization",
    });
    if let Some((method, url, message)) = signed_message {
        let text = String::from_utf8_lossy(message);
        let mut truncated: String = text.chars().take(120).collect();
        if truncated.len() < text.len() {
            truncated.push('…');
        }
        detail["sign_information"] = json!({
            "method": method.as_str(),
            "sign_message_length": message.len(),
            "truncated_sign_message": truncated,
            "url": url,
        });
    }
    V3Error::new(401, "SIGN_ERROR", "签名错误，请检查后再试").with_detail(detail)
}

/// The five pairs of `WECHATPAY2-SHA256-RSA2048 k="v",…`, in any order, each exactly once.
fn parse_authorization(h: &str) -> Result<HashMap<&str, &str>, String> {
    let rest = h
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| format!("the scheme must be {SCHEME}"))?;
    let mut pairs = HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=\"value\""))?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("the value of {k} must be quoted"))?;
        if !matches!(
            k,
            "mchid" | "nonce_str" | "signature" | "timestamp" | "serial_no"
        ) {
            return Err(format!("unknown key {k}"));
        }
        if pairs.insert(k, v).is_some() {
            return Err(format!("{k} appears twice"));
        }
    }
    for k in ["mchid", "nonce_str", "signature", "timestamp", "serial_no"] {
        if pairs.get(k).is_none_or(|v| v.is_empty()) {
            return Err(format!("{k} is missing"));
        }
    }
    Ok(pairs)
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The protocol layer: size, `Authorization`, merchant, time, signature; then, for a POST,
/// `Content-Type` and a JSON object without 4-byte characters; then the query string.
pub(super) fn authenticate(sb: &Sandbox, req: V3Request) -> Result<Ctx, Response> {
    let v3 = sb
        .cfg
        .v3
        .clone()
        .expect("v3 routes exist only with v3 configured");
    let serial = header_str(&req.headers, "wechatpay-serial");
    let fail = |e: V3Error| error_response(&v3, serial.as_deref(), &e);
    let Some(body) = req.body else {
        return Err(fail(V3Error::param(format!(
            "请求体过大: at most {} KiB",
            MAX_BODY / 1024
        ))));
    };
    let Some(authorization) = header_str(&req.headers, "authorization") else {
        return Err(fail(sign_error("Http头缺少Authorization", None)));
    };
    let pairs = parse_authorization(&authorization)
        .map_err(|why| fail(sign_error(&format!("Http头Authorization值格式错误: {why}"), None)))?;
    let merchant = v3
        .merchants
        .iter()
        .find(|m| m.mchid == pairs["mchid"] && m.serial_no == pairs["serial_no"])
        .cloned()
        .ok_or_else(|| {
            fail(sign_error(
                "商户证书序列号有误: no API certificate of this serial_no for this mchid",
                None,
            ))
        })?;
    let timestamp = pairs["timestamp"];
    let at = Some(timestamp)
        .filter(|t| t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| fail(sign_error("timestamp must be Unix seconds", None)))?;
    if (now_ms() / 1000 - at).abs() > WINDOW_S {
        return Err(fail(sign_error(
            "请求时间戳与当前时间相差超过5分钟 (timestamp expired)",
            None,
        )));
    }
    let mut message = format!(
        "{}\n{}\n{timestamp}\n{}\n",
        req.method, req.uri, pairs["nonce_str"]
    )
    .into_bytes();
    message.extend_from_slice(&body);
    message.push(b'\n');
    let verified = B64
        .decode(pairs["signature"].as_bytes())
        .ok()
        .and_then(|b| Signature::try_from(b.as_slice()).ok())
        .is_some_and(|sig| merchant.key.verify(&message, &sig).is_ok());
    if !verified {
        let (path, _) = req.uri.split_once('?').unwrap_or((&req.uri, ""));
        return Err(fail(sign_error(
            "sign not match",
            Some((&req.method, path, &message)),
        )));
    }
    let json = if req.method == Method::POST {
        let ct = header_str(&req.headers, "content-type").unwrap_or_default();
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err(fail(V3Error::param(
                "Content-Type must be application/json",
            )));
        }
        let text = std::str::from_utf8(&body)
            .map_err(|_| fail(V3Error::param("请求体须为UTF-8编码的JSON")))?;
        if text.chars().any(|c| c.len_utf8() > 3) {
            return Err(fail(V3Error::param(
                "不支持4字节UTF-8字符 (emoji): 1–3-byte characters only",
            )));
        }
        match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(fail(V3Error::param("请求体不是合法的JSON对象"))),
        }
    } else {
        Value::Null
    };
    let (path, query) = match req.uri.split_once('?') {
        Some((p, q)) => (p.to_string(), q),
        None => (req.uri.clone(), ""),
    };
    let query = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .map_err(|_| fail(V3Error::param("查询串格式错误")))?
        .into_iter()
        .collect();
    let host = header_str(&req.headers, "host").unwrap_or_else(|| "127.0.0.1".into());
    let scheme = if req.https { "https" } else { "http" };
    Ok(Ctx {
        v3,
        merchant,
        serial,
        json,
        query,
        path,
        origin: format!("{scheme}://{host}"),
    })
}

/// PARAM_ERROR naming the missing field `ptr` (a JSON pointer, or `/query/…`).
pub(super) fn missing(ptr: &str, location: &str) -> V3Error {
    V3Error::param(format!("缺少参数 {ptr}")).with_detail(
        json!({"field": ptr, "location": location, "issue": "required"}),
    )
}

/// PARAM_ERROR: the field `ptr` breaks a rule.
pub(super) fn invalid(ptr: &str, issue: &str) -> V3Error {
    V3Error::param(format!("输入源“/body{ptr}”校验失败: {issue}")).with_detail(
        json!({"field": ptr, "location": "body", "issue": issue}),
    )
}

/// An optional string field of at most `max` UTF-8 bytes (null counts as absent).
pub(super) fn opt_str<'a>(v: &'a Value, ptr: &str, max: usize) -> Result<Option<&'a str>, V3Error> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > max => {
            Err(invalid(ptr, &format!("at most {max} bytes")))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(ptr, "must be a string")),
    }
}

/// A required, non-empty string field of at most `max` UTF-8 bytes.
pub(super) fn req_str<'a>(v: &'a Value, ptr: &str, max: usize) -> Result<&'a str, V3Error> {
    opt_str(v, ptr, max)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(ptr, "body"))
}

/// A required whole number of fen above 0.
pub(super) fn req_fen(v: &Value, ptr: &str) -> Result<i64, V3Error> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Err(missing(ptr, "body")),
        Some(n) => n
            .as_i64()
            .filter(|f| *f > 0)
            .ok_or_else(|| invalid(ptr, "must be a whole number of fen above 0")),
    }
}

/// An optional object field (null counts as absent).
pub(super) fn opt_object<'a>(v: &'a Value, ptr: &str) -> Result<Option<&'a Value>, V3Error> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(_) => Err(invalid(ptr, "must be an object")),
    }
}

/// `notify_url`: http(s) (the sandbox allows http, for local tests), no query string.
pub(super) fn check_notify_url(ptr: &str, url: &str) -> Result<(), V3Error> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('?') {
        return Err(invalid(
            ptr,
            "an https URL without a query string (the sandbox also takes http)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_pairs_in_any_order_all_five_once() {
        let h = format!(
            "{SCHEME} serial_no=\"S\",timestamp=\"1\",mchid=\"M\",signature=\"x+/=\",nonce_str=\"N\""
        );
        let p = parse_authorization(&h).unwrap();
        assert_eq!((p["mchid"], p["signature"]), ("M", "x+/="));
        for bad in [
            "WECHATPAY2-SHA256-RSA2048 mchid=\"M\"".to_string(),
            h.replace(SCHEME, "WECHATPAY2-SHA256-RSA"),
            h.replace("mchid=\"M\"", "mchid=M"),
            format!("{h},mchid=\"M\""),
            format!("{h},extra=\"1\""),
            h.replace("nonce_str=\"N\"", "nonce_str=\"\""),
        ] {
            assert!(parse_authorization(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn v2_outcomes_in_v3_words() {
        let m = |c| {
            let e = from_v2(BizError(c, String::new()));
            (e.status.as_u16(), e.code)
        };
        assert_eq!(m("ORDERNOTEXIST"), (404, "ORDER_NOT_EXIST"));
        assert_eq!(m("ORDERPAID"), (400, "ORDER_PAID"));
        assert_eq!(m("ORDERCLOSED"), (400, "ORDER_CLOSED"));
        assert_eq!(m("OUT_TRADE_NO_USED"), (403, "OUT_TRADE_NO_USED"));
        assert_eq!(m("NOTENOUGH"), (403, "NOT_ENOUGH"));
        assert_eq!(m("SYSTEMERROR"), (500, "SYSTEM_ERROR"));
        assert_eq!(m("LACK_PARAMS"), (400, "PARAM_ERROR"));
        assert_eq!(m("REFUND_FEE_MISMATCH"), (400, "INVALID_REQUEST"));
        assert_eq!(m("INVALID_REQ_TOO_MUCH"), (429, "FREQUENCY_LIMITED"));
    }
}
