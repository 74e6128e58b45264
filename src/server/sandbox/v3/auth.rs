//! v3's request authentication (wxpay-v3.md §1, §8): the request as received (its signature
//! covers the exact path, query and body bytes, the `/sandbox` prefix included), the
//! `Authorization` header's five pairs, the merchant by (mchid, serial_no), the ±5 minutes, the
//! signature; refusals are 401 SIGN_ERROR with §1.3's `detail.sign_information`. Then a POST's
//! JSON object and the query string.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rsa::pkcs1v15::Signature;
use rsa::signature::Verifier;
use serde_json::{json, Value};

use super::proto::{error_response, V3Error};
use super::{SharedV3, V3Merchant};
use crate::server::sandbox::Sandbox;
use crate::server::support::clock::now_ms;
use crate::server::wxpay::v3::crypto::{SCHEME, WINDOW_S};

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
    let pairs = parse_authorization(&authorization).map_err(|why| {
        fail(sign_error(
            &format!("Http头Authorization值格式错误: {why}"),
            None,
        ))
    })?;
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
}
