//! `/pay/unifiedorder`, `/pay/orderquery`, `/pay/closeorder`, `/secapi/pay/refund`,
//! `/pay/refundquery`, `/pay/downloadbill` with the real field rules.
//! This file holds the protocol layer they share (authentication, signed and unsigned answers,
//! the API faults, field helpers, finding the order a call names); each endpoint has its file.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

mod closeorder;
mod downloadbill;
mod orderquery;
mod refund;
mod refundquery;
mod unifiedorder;

pub(super) use closeorder::{close, close_order};
pub(super) use downloadbill::{bill_for, download_bill, BillRefusal};
pub(super) use orderquery::order_query;
pub(super) use refund::{apply_refund, read_ask, refund};
pub(super) use refundquery::refund_query;
pub(super) use unifiedorder::{check_out_trade_no, place, unified_order};

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::faults::{Api, ApiFault};
use super::{Sandbox, SandboxOrder};
use crate::server::wxpay::client::nonce;
use crate::server::wxpay::xml::{self, Params};
use crate::server::wxpay::{sign, Merchant, SignType};

/// A verified request: its parameters and the merchant/sign type to answer with.
struct Authed {
    p: Params,
    merchant: Merchant,
    sign_type: SignType,
}

/// A `result_code=FAIL` answer (err_code, err_code_des); v3 maps the code to its own
/// (`v3::proto::from_v2`).
pub(in crate::server::sandbox) struct BizError(pub &'static str, pub String);

fn xml_response(body: String) -> Response {
    ([(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// `return_code=FAIL`: unsigned, as WeChat does for protocol-level refusals.
fn protocol_fail(msg: &str) -> Response {
    let mut p = Params::new();
    p.insert("return_code".into(), "FAIL".into());
    p.insert("return_msg".into(), msg.into());
    xml_response(xml::to_xml(&p))
}

/// A signed answer (signed with the request's sign type).
fn signed(a: &Authed, result: Result<Params, BizError>) -> Response {
    let mut p = match result {
        Ok(fields) => {
            let mut p = fields;
            p.insert("result_code".into(), "SUCCESS".into());
            p
        }
        Err(BizError(code, des)) => {
            let mut p = Params::new();
            p.insert("result_code".into(), "FAIL".into());
            p.insert("err_code".into(), code.into());
            p.insert("err_code_des".into(), des);
            p
        }
    };
    p.insert("return_code".into(), "SUCCESS".into());
    p.insert("return_msg".into(), "OK".into());
    p.insert("appid".into(), a.merchant.appid.clone());
    p.insert("mch_id".into(), a.merchant.mch_id.clone());
    p.insert("nonce_str".into(), nonce());
    let s = sign::sign(&p, a.merchant.api_key.expose(), a.sign_type);
    p.insert("sign".into(), s);
    xml_response(xml::to_xml(&p))
}

/// The protocol layer: XML, encoding, merchant, sign type, signature.
fn authenticate(sb: &Sandbox, body: &[u8]) -> Result<Authed, Response> {
    if body.is_empty() {
        return Err(protocol_fail("POST_DATA_EMPTY: request body is empty"));
    }
    let p = xml::parse(body).map_err(|e| match e {
        xml::XmlError::NotUtf8 => protocol_fail("NOT_UTF8: 编码格式错误, body must be UTF-8"),
        e => protocol_fail(&format!("XML_FORMAT_ERROR: XML格式错误 ({e})")),
    })?;
    if p.values().any(|v| v.chars().any(|c| c.len_utf8() > 3)) {
        return Err(protocol_fail(
            "NOT_UTF8: 4-byte UTF-8 characters (emoji) are not supported",
        ));
    }
    let (Some(appid), Some(mch_id)) = (p.get("appid"), p.get("mch_id")) else {
        return Err(protocol_fail("LACK_PARAMS: appid and mch_id are required"));
    };
    let merchant = sb
        .merchant(appid, mch_id)
        .ok_or_else(|| protocol_fail("APPID_MCHID_NOT_MATCH: appid和mch_id不匹配"))?
        .clone();
    let sign_type = match p.get("sign_type").map(String::as_str) {
        None | Some("") => SignType::Md5,
        Some(s) => s
            .parse::<SignType>()
            .map_err(|_| protocol_fail("sign_type参数错误: expected MD5 or HMAC-SHA256"))?,
    };
    if p.get("sign").is_none_or(|s| s.is_empty()) {
        return Err(protocol_fail("LACK_PARAMS: 缺少参数 sign"));
    }
    if !sign::verify(&p, merchant.api_key.expose(), sign_type) {
        return Err(protocol_fail("签名错误"));
    }
    match p.get("nonce_str") {
        Some(n) if !n.is_empty() && n.chars().count() <= 32 => {}
        _ => {
            return Err(protocol_fail(
                "nonce_str参数错误: required, at most 32 characters",
            ))
        }
    }
    Ok(Authed {
        p,
        merchant,
        sign_type,
    })
}

pub(in crate::server::sandbox) fn get<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

fn require<'a>(p: &'a Params, k: &'static str) -> Result<&'a str, BizError> {
    get(p, k).ok_or_else(|| BizError("LACK_PARAMS", format!("缺少参数 {k}")))
}

fn invalid(k: &str, why: &str) -> BizError {
    BizError("INVALID_REQUEST", format!("{k}参数错误: {why}"))
}

fn max_len(p: &Params, k: &'static str, n: usize) -> Result<(), BizError> {
    match get(p, k) {
        Some(v) if v.chars().count() > n => Err(invalid(k, &format!("at most {n} characters"))),
        _ => Ok(()),
    }
}

/// How long a `timeout` fault holds the answer back: longer than any sane client waits.
pub(in crate::server::sandbox) const HANG: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies the API fault in force: SYSTEMERROR without effect, or the effect with no timely answer.
async fn with_fault(
    sb: &Sandbox,
    a: &Authed,
    api: Api,
    apply: impl FnOnce() -> Result<Params, BizError>,
) -> Response {
    with_fault_on(sb, a, api, get(&a.p, "out_trade_no"), apply).await
}

/// [`with_fault`] with the faults of a given order (a call that names it another way).
async fn with_fault_on(
    sb: &Sandbox,
    a: &Authed,
    api: Api,
    out_trade_no: Option<&str>,
    apply: impl FnOnce() -> Result<Params, BizError>,
) -> Response {
    match sb.faults_for(out_trade_no).api(api) {
        ApiFault::SystemError => signed(
            a,
            Err(BizError("SYSTEMERROR", "系统超时 (sandbox fault)".into())),
        ),
        ApiFault::Timeout => {
            let response = signed(a, apply());
            tokio::time::sleep(HANG).await;
            response
        }
        ApiFault::Latency(d) => {
            tokio::time::sleep(d).await;
            signed(a, apply())
        }
        ApiFault::None => signed(a, apply()),
    }
}

/// Finds the order a query/close names; ORDERNOTEXIST when there is none.
fn find<'a>(
    inner: &'a mut super::Inner,
    a: &Authed,
    allow_transaction_id: bool,
) -> Result<&'a mut SandboxOrder, BizError> {
    find_in(inner, &a.merchant.mch_id, &a.p, allow_transaction_id)
}

/// [`find`] for merchant `mch_id` and v2-shaped parameters `p` (v3 builds them from its JSON).
pub(in crate::server::sandbox) fn find_in<'a>(
    inner: &'a mut super::Inner,
    mch_id: &str,
    p: &Params,
    allow_transaction_id: bool,
) -> Result<&'a mut SandboxOrder, BizError> {
    let by_txn = if allow_transaction_id {
        get(p, "transaction_id")
    } else {
        None
    };
    let key = match (by_txn, get(p, "out_trade_no")) {
        // transaction_id wins when both are sent.
        (Some(txn), _) => inner.by_transaction.get(txn).cloned(),
        (None, Some(otn)) => Some((mch_id.to_string(), otn.to_string())),
        (None, None) => {
            return Err(BizError(
                "LACK_PARAMS",
                if allow_transaction_id {
                    "缺少参数 out_trade_no 或 transaction_id"
                } else {
                    "缺少参数 out_trade_no"
                }
                .into(),
            ))
        }
    };
    key.filter(|k| k.0 == mch_id)
        .and_then(|k| inner.orders.get_mut(&k))
        .ok_or_else(|| BizError("ORDERNOTEXIST", "此交易订单号不存在".into()))
}
