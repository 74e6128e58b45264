//! `/pay/unifiedorder`: the field rules of a NATIVE order, then the order kept (or, for the same
//! out_trade_no again, the rules of re-entry) and its prepay_id and code_url answered.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::{authenticate, get, invalid, max_len, require, with_fault, Authed, BizError};
use crate::server::sandbox::faults::Api;
use crate::server::sandbox::{ApiVersion, Sandbox, SandboxOrder, TradeState};
use crate::server::support::clock::now_ms;
use crate::server::support::clock::{format_beijing, parse_beijing};
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::xml::Params;
use crate::server::wxpay::SignType;

pub(in crate::server::sandbox) fn check_out_trade_no(v: &str) -> Result<(), BizError> {
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

pub(in crate::server::sandbox) async fn unified_order(
    State(sb): State<Sandbox>,
    body: Bytes,
) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    with_fault(&sb, &a, Api::UnifiedOrder, || unified_order_rules(&sb, &a)).await
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
    let order = place(
        sb,
        key,
        business_params(p),
        expire_ms,
        a.sign_type,
        ApiVersion::V2,
        |held, asked| held == asked,
    )?;
    Ok(native_fields(&order))
}

/// Keeps a new order under `key`, or applies the rules of re-entry to the one held: paid or
/// closed is refused, other `business` parameters (as `same` compares them) or another API is
/// OUT_TRADE_NO_USED, the same again is the order held. Shared by v2's unifiedorder and v3's
/// native; the answer is the order as held.
pub(in crate::server::sandbox) fn place(
    sb: &Sandbox,
    key: (String, String),
    business: Params,
    expire_ms: Option<i64>,
    sign_type: SignType,
    api: ApiVersion,
    same: impl Fn(&Params, &Params) -> bool,
) -> Result<SandboxOrder, BizError> {
    let now = now_ms();
    let mut inner = sb.inner.lock().expect("sandbox lock");
    if let Some(existing) = inner.orders.get_mut(&key) {
        existing.refresh(now);
        return match existing.state {
            TradeState::Success { .. } => Err(BizError("ORDERPAID", "该订单已支付".into())),
            TradeState::Closed => Err(BizError("ORDERCLOSED", "该订单已关闭".into())),
            TradeState::NotPay if existing.api != api || !same(&existing.params, &business) => {
                Err(BizError("OUT_TRADE_NO_USED", "201 商户订单号重复".into()))
            }
            TradeState::NotPay => Ok(existing.clone()),
        };
    }
    let order = SandboxOrder {
        api,
        mch_id: key.0.clone(),
        out_trade_no: key.1.clone(),
        params: business,
        sign_type,
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
        refunds: Vec::new(),
    };
    inner.by_code.insert(order.code_url.clone(), key.clone());
    inner.orders.insert(key, order.clone());
    Ok(order)
}

fn native_fields(o: &SandboxOrder) -> Params {
    let mut f = Params::new();
    f.insert("trade_type".into(), "NATIVE".into());
    f.insert("prepay_id".into(), o.prepay_id.clone());
    f.insert("code_url".into(), o.code_url.clone());
    f
}
