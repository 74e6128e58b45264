//! `/pay/unifiedorder`, `/pay/orderquery`, `/pay/closeorder` with the real field rules.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::faults::{Api, ApiFault};
use super::{Sandbox, SandboxOrder, TradeState};
use crate::server::support::clock::now_ms;
use crate::server::support::clock::{format_beijing, parse_beijing};
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::client::nonce;
use crate::server::wxpay::xml::{self, Params};
use crate::server::wxpay::{sign, Merchant, SignType};

/// A verified request: its parameters and the merchant/sign type to answer with.
struct Authed {
    p: Params,
    merchant: Merchant,
    sign_type: SignType,
}

/// A `result_code=FAIL` answer.
struct BizError(&'static str, String);

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

fn get<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
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

fn check_out_trade_no(v: &str) -> Result<(), BizError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-|*@".contains(c);
    if !(6..=32).contains(&v.len()) || !v.chars().all(ok_char) {
        return Err(invalid(
            "out_trade_no",
            "6 to 32 characters of 0-9 A-Z a-z _ - | * @",
        ));
    }
    Ok(())
}

/// Fields that make up the order at WeChat: everything but the per-request ones.
fn business_params(p: &Params) -> Params {
    p.iter()
        .filter(|(k, v)| {
            !matches!(
                k.as_str(),
                "sign" | "sign_type" | "nonce_str" | "spbill_create_ip"
            ) && !v.is_empty()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(super) async fn unified_order(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    with_fault(&sb, &a, Api::UnifiedOrder, || unified_order_rules(&sb, &a)).await
}

/// How long a `timeout` fault holds the answer back: longer than any sane client waits.
const HANG: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies the API fault in force: SYSTEMERROR without effect, or the effect with no timely answer.
async fn with_fault(
    sb: &Sandbox,
    a: &Authed,
    api: Api,
    apply: impl FnOnce() -> Result<Params, BizError>,
) -> Response {
    match sb.faults_for(get(&a.p, "out_trade_no")).api(api) {
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

fn unified_order_rules(sb: &Sandbox, a: &Authed) -> Result<Params, BizError> {
    let p = &a.p;
    let now = now_ms();
    for k in [
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "notify_url",
        "trade_type",
    ] {
        require(p, k)?;
    }
    max_len(p, "body", 128)?;
    max_len(p, "attach", 127)?;
    max_len(p, "detail", 6000)?;
    max_len(p, "spbill_create_ip", 64)?;
    max_len(p, "product_id", 32)?;
    max_len(p, "device_info", 32)?;
    max_len(p, "goods_tag", 32)?;
    let out_trade_no = require(p, "out_trade_no")?;
    check_out_trade_no(out_trade_no)?;
    let fee = require(p, "total_fee")?;
    if !fee.bytes().all(|b| b.is_ascii_digit()) || fee.parse::<i64>().map_or(true, |f| f <= 0) {
        return Err(invalid(
            "total_fee",
            "must be a whole number of fen above 0",
        ));
    }
    if let Some(ft) = get(p, "fee_type") {
        if ft != "CNY" {
            return Err(invalid("fee_type", "only CNY"));
        }
    }
    let notify_url = require(p, "notify_url")?;
    if notify_url.len() > 256
        || !(notify_url.starts_with("http://") || notify_url.starts_with("https://"))
        || notify_url.contains('?')
    {
        return Err(invalid(
            "notify_url",
            "an http(s) URL of at most 256 characters without a query string",
        ));
    }
    match require(p, "trade_type")? {
        "NATIVE" => {
            require(p, "product_id").map_err(|_| {
                BizError(
                    "LACK_PARAMS",
                    "trade_type=NATIVE时, product_id为必填参数".into(),
                )
            })?;
        }
        "JSAPI" | "APP" | "MWEB" => {
            return Err(invalid(
                "trade_type",
                "the sandbox simulates NATIVE payments only",
            ))
        }
        _ => return Err(invalid("trade_type", "JSAPI, NATIVE, APP or MWEB")),
    }
    let start_ms = match get(p, "time_start") {
        Some(ts) => parse_beijing(ts).map_err(|_| invalid("time_start", "yyyyMMddHHmmss"))?,
        // Beijing times have whole seconds: compare at that resolution.
        None => now - now.rem_euclid(1000),
    };
    let expire_ms = match get(p, "time_expire") {
        Some(te) => {
            let t = parse_beijing(te).map_err(|_| invalid("time_expire", "yyyyMMddHHmmss"))?;
            // WeChat's rule for NATIVE: at least 5 minutes (sandbox_min_expire) after time_start.
            let min = sb.cfg.min_expire.as_millis() as i64;
            if t <= now || t - start_ms < min {
                return Err(BizError(
                    "INVALID_REQUEST",
                    format!(
                        "time_expire时间过短，刷新界面重新生成订单 (at least {} s after time_start)",
                        min / 1000
                    ),
                ));
            }
            Some(t)
        }
        None => None,
    };

    let key = (a.merchant.mch_id.clone(), out_trade_no.to_string());
    let business = business_params(p);
    let mut inner = sb.inner.lock().expect("sandbox lock");
    if let Some(existing) = inner.orders.get_mut(&key) {
        existing.refresh(now);
        return match existing.state {
            TradeState::Success { .. } => Err(BizError("ORDERPAID", "该订单已支付".into())),
            TradeState::Closed => Err(BizError("ORDERCLOSED", "该订单已关闭".into())),
            TradeState::NotPay if existing.params != business => {
                Err(BizError("OUT_TRADE_NO_USED", "201 商户订单号重复".into()))
            }
            TradeState::NotPay => Ok(native_fields(existing)),
        };
    }
    let order = SandboxOrder {
        mch_id: key.0.clone(),
        out_trade_no: key.1.clone(),
        params: business,
        sign_type: a.sign_type,
        prepay_id: format!(
            "wx{}{}",
            format_beijing(now),
            random_alnum(20).to_ascii_lowercase()
        ),
        code_url: format!("weixin://wxpay/bizpayurl?pr={}", random_alnum(7)),
        created_ms: now,
        expire_ms,
        state: TradeState::NotPay,
        notify_attempts: 0,
        notify_acked: false,
    };
    let fields = native_fields(&order);
    inner.by_code.insert(order.code_url.clone(), key.clone());
    inner.orders.insert(key, order);
    Ok(fields)
}

fn native_fields(o: &SandboxOrder) -> Params {
    let mut f = Params::new();
    f.insert("trade_type".into(), "NATIVE".into());
    f.insert("prepay_id".into(), o.prepay_id.clone());
    f.insert("code_url".into(), o.code_url.clone());
    f
}

/// Finds the order a query/close names; ORDERNOTEXIST when there is none.
fn find<'a>(
    inner: &'a mut super::Inner,
    a: &Authed,
    allow_transaction_id: bool,
) -> Result<&'a mut SandboxOrder, BizError> {
    let by_txn = if allow_transaction_id {
        get(&a.p, "transaction_id")
    } else {
        None
    };
    let key = match (by_txn, get(&a.p, "out_trade_no")) {
        // transaction_id wins when both are sent.
        (Some(txn), _) => inner.by_transaction.get(txn).cloned(),
        (None, Some(otn)) => Some((a.merchant.mch_id.clone(), otn.to_string())),
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
    key.filter(|k| k.0 == a.merchant.mch_id)
        .and_then(|k| inner.orders.get_mut(&k))
        .ok_or_else(|| BizError("ORDERNOTEXIST", "此交易订单号不存在".into()))
}

pub(super) async fn order_query(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    with_fault(&sb, &a, Api::OrderQuery, || {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        find(&mut inner, &a, true).map(|o| {
            o.refresh(now_ms());
            query_fields(o)
        })
    })
    .await
}

fn query_fields(o: &SandboxOrder) -> Params {
    let mut f = Params::new();
    f.insert("out_trade_no".into(), o.out_trade_no.clone());
    f.insert("trade_type".into(), "NATIVE".into());
    match &o.state {
        TradeState::NotPay => {
            f.insert("trade_state".into(), "NOTPAY".into());
            f.insert("trade_state_desc".into(), "订单未支付".into());
            f.insert("total_fee".into(), o.total_fee().to_string());
        }
        TradeState::Closed => {
            f.insert("trade_state".into(), "CLOSED".into());
            f.insert("trade_state_desc".into(), "订单已关闭".into());
        }
        TradeState::Success {
            transaction_id,
            time_end,
            openid,
        } => {
            for (k, v) in [
                ("trade_state", "SUCCESS"),
                ("trade_state_desc", "支付成功"),
                ("bank_type", "CFT"),
                ("fee_type", "CNY"),
                ("is_subscribe", "N"),
            ] {
                f.insert(k.into(), v.into());
            }
            f.insert("openid".into(), openid.clone());
            f.insert("total_fee".into(), o.total_fee().to_string());
            f.insert("cash_fee".into(), o.total_fee().to_string());
            f.insert("transaction_id".into(), transaction_id.clone());
            f.insert("time_end".into(), time_end.clone());
            f.insert("attach".into(), o.param("attach").to_string());
        }
    }
    f
}

pub(super) async fn close_order(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let floor_ms = sb.cfg.close_floor.as_millis() as i64;
    with_fault(&sb, &a, Api::CloseOrder, || {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        find(&mut inner, &a, false).and_then(|o| {
            let now = now_ms();
            o.refresh(now);
            match o.state {
                TradeState::Success { .. } => Err(BizError(
                    "ORDERPAID",
                    "订单已支付，不能发起关单，请当作已支付的正常交易".into(),
                )),
                TradeState::Closed => {
                    Err(BizError("ORDERCLOSED", "订单已关闭，无需继续调用".into()))
                }
                TradeState::NotPay if now - o.created_ms < floor_ms => Err(BizError(
                    "INVALID_REQUEST",
                    format!(
                        "订单生成后不能马上调用关单接口，最短调用时间间隔为{}秒",
                        floor_ms / 1000
                    ),
                )),
                TradeState::NotPay => {
                    o.state = TradeState::Closed;
                    Ok(Params::new())
                }
            }
        })
    })
    .await
}
