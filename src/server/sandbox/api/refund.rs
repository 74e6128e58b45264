//! `/secapi/pay/refund` (wxpay-refund-bill.md §1): the request's fields, then the payment found
//! (transaction_id before out_trade_no), the rules of `refunds::check`, and the refund recorded
//! and left to settle — or, for the same out_refund_no and amounts, the refund already held.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Extensions;
use axum::response::Response;

use super::{
    authenticate, find, find_in, get, protocol_fail, require, signed, Authed, BizError, HANG,
};
use crate::server::sandbox::faults::{Faults, RefundFault};
use crate::server::sandbox::refunds::{self, Ask, Limits, RefundStatus, SandboxRefund, Verdict};
use crate::server::sandbox::{refund_notifier, ApiVersion, Sandbox, TradeState};
use crate::server::support::clock::{now_ms, parse_beijing};
use crate::server::wxpay::xml::Params;

/// `secapi/` requires the merchant's API client certificate (mutual TLS): without one WeChat
/// answers an HTML 400 page. Checked when the sandbox serves HTTPS with a client CA (`tls`).
fn require_client_certificate(sb: &Sandbox, extensions: &Extensions) -> Result<(), Response> {
    if crate::server::sandbox::tls::client_cert_ok(sb.cfg.require_client_cert, extensions) {
        Ok(())
    } else {
        Err(crate::server::sandbox::tls::missing_client_cert())
    }
}

fn param_error(k: &str, why: &str) -> BizError {
    BizError("PARAM_ERROR", format!("{k}参数错误: {why}"))
}

/// A whole number of fen above 0.
fn fen(p: &Params, k: &'static str) -> Result<i64, BizError> {
    let v = require(p, k)?;
    v.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| v.parse::<i64>().ok())
        .flatten()
        .filter(|f| *f > 0)
        .ok_or_else(|| param_error(k, "must be a whole number of fen above 0"))
}

/// The request's own fields, before any order is looked at.
pub(in crate::server::sandbox) fn read_ask(p: &Params) -> Result<Ask<'_>, BizError> {
    let out_refund_no = require(p, "out_refund_no")?;
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-|*@".contains(c);
    if out_refund_no.len() > 64 || !out_refund_no.chars().all(ok_char) {
        return Err(param_error(
            "out_refund_no",
            "at most 64 characters of 0-9 A-Z a-z _ - | * @",
        ));
    }
    let (total_fee, refund_fee) = (fen(p, "total_fee")?, fen(p, "refund_fee")?);
    if get(p, "refund_fee_type").is_some_and(|t| t != "CNY") {
        return Err(param_error("refund_fee_type", "only CNY"));
    }
    if get(p, "refund_desc").is_some_and(|d| d.chars().count() > 80) {
        return Err(param_error("refund_desc", "at most 80 characters"));
    }
    if let Some(url) = get(p, "notify_url") {
        if url.len() > 256
            || !(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains('?')
        {
            return Err(param_error(
                "notify_url",
                "an http(s) URL of at most 256 characters without a query string",
            ));
        }
    }
    if let Some(acct) = get(p, "refund_account") {
        if acct != refunds::REFUND_ACCOUNT && acct != "REFUND_SOURCE_RECHARGE_FUNDS" {
            return Err(param_error(
                "refund_account",
                "REFUND_SOURCE_UNSETTLED_FUNDS or REFUND_SOURCE_RECHARGE_FUNDS",
            ));
        }
    }
    Ok(Ask {
        out_refund_no,
        total_fee,
        refund_fee,
    })
}

pub(in crate::server::sandbox) async fn refund(
    State(sb): State<Sandbox>,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    if let Err(r) = require_client_certificate(&sb, &extensions) {
        return r;
    }
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let ask = match read_ask(&a.p) {
        // More than the order could ever give back: refused at the protocol level, as WeChat
        // does (observed: return_code=FAIL, "invalid refund_fee").
        Ok(ask) if ask.refund_fee > ask.total_fee => return protocol_fail("invalid refund_fee"),
        Ok(ask) => ask,
        Err(e) => return signed(&a, Err(e)),
    };
    // The order's own faults, however the request names it.
    let named = {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        find(&mut inner, &a, true)
            .ok()
            .map(|o| o.out_trade_no.clone())
    };
    let faults = sb.faults_for(named.as_deref().or(get(&a.p, "out_trade_no")));
    let systemerror = || {
        signed(
            &a,
            Err(BizError("SYSTEMERROR", "系统超时 (sandbox fault)".into())),
        )
    };
    match faults.refund {
        RefundFault::SystemError => return systemerror(),
        RefundFault::Latency(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let result = apply(&sb, &a, ask, faults);
    match faults.refund {
        RefundFault::SystemErrorApplied => systemerror(),
        RefundFault::Timeout => {
            let response = signed(&a, result);
            tokio::time::sleep(HANG).await;
            response
        }
        _ => signed(&a, result),
    }
}

/// The rules, then the refund recorded (and left to settle) or found again.
fn apply(sb: &Sandbox, a: &Authed, ask: Ask, faults: Faults) -> Result<Params, BizError> {
    apply_refund(sb, &a.merchant.mch_id, &a.p, ask, faults, ApiVersion::V2)
        .map(|r| answer(&r.transaction_id, &r.out_trade_no, r.order_total, &r.refund))
}

/// A refund accepted (new or found again), with what its answers need of its order.
pub(in crate::server::sandbox) struct Accepted {
    pub transaction_id: String,
    pub out_trade_no: String,
    pub order_total: i64,
    pub refund: SandboxRefund,
}

/// The rules for merchant `mch_id`'s refund `ask` of the order `p` names (v2-shaped: v3 builds
/// them from its JSON), then the refund recorded by `api` and left to settle, or the one held
/// under the same out_refund_no.
pub(in crate::server::sandbox) fn apply_refund(
    sb: &Sandbox,
    mch_id: &str,
    p: &Params,
    ask: Ask,
    faults: Faults,
    api: ApiVersion,
) -> Result<Accepted, BizError> {
    let now = now_ms();
    let scale = sb.cfg.time_scale;
    let limits = Limits {
        max_refunds: refunds::MAX_REFUNDS,
        min_gap_ms: (refunds::MIN_GAP_MS as f64 * scale) as i64,
        max_age_ms: refunds::MAX_AGE_MS,
    };
    let mut guard = sb.inner.lock().expect("sandbox lock");
    let inner = &mut *guard;
    let order = find_in(inner, mch_id, p, true)?;
    order.refresh(now);
    let key = (order.mch_id.clone(), order.out_trade_no.clone());
    // Only a paid order can be refunded (§1.3: unpaid → ORDERNOTEXIST).
    let TradeState::Success {
        transaction_id,
        time_end,
        ..
    } = order.state.clone()
    else {
        return Err(BizError("ORDERNOTEXIST", "订单不存在或未支付".into()));
    };
    let paid_ms = parse_beijing(&time_end).unwrap_or(order.created_ms);
    let number = (mch_id.to_string(), ask.out_refund_no.to_string());
    // out_refund_no is unique per merchant: another order's number is not this order's refund.
    if inner.by_refund_no.get(&number).is_some_and(|k| *k != key) {
        return Err(param_error(
            "out_refund_no",
            "already used for another order [sandbox wording]",
        ));
    }
    let order = inner.orders.get_mut(&key).expect("found above");
    let index = match refunds::check(order, paid_ms, ask, now, limits) {
        Ok(Verdict::Again(i)) => i,
        Ok(Verdict::New) if faults.refund == RefundFault::NotEnough => {
            return Err(BizError(
                "NOTENOUGH",
                "基本账户余额不足，请充值后重新发起 (sandbox fault)".into(),
            ))
        }
        Ok(Verdict::New) => {
            order.refunds.push(SandboxRefund {
                api,
                out_refund_no: ask.out_refund_no.to_string(),
                refund_id: refunds::new_refund_id(now),
                refund_fee: ask.refund_fee,
                total_fee: ask.total_fee,
                refund_desc: get(p, "refund_desc").unwrap_or("").to_string(),
                refund_account: get(p, "refund_account")
                    .unwrap_or(refunds::REFUND_ACCOUNT)
                    .to_string(),
                notify_url: get(p, "notify_url").unwrap_or("").to_string(),
                created_ms: now,
                status: RefundStatus::Processing,
                success_time: None,
                notify_attempts: 0,
                notify_acked: false,
            });
            let r = order.refunds.last().expect("just pushed").clone();
            inner.by_refund_no.insert(number, key.clone());
            inner.by_refund_id.insert(r.refund_id.clone(), key.clone());
            refund_notifier::settle(sb.clone(), key.clone(), r.out_refund_no, faults);
            inner.orders[&key].refunds.len() - 1
        }
        Err((code, des)) => return Err(BizError(code, des)),
    };
    let o = &inner.orders[&key];
    Ok(Accepted {
        transaction_id,
        out_trade_no: o.out_trade_no.clone(),
        order_total: o.total_fee(),
        refund: o.refunds[index].clone(),
    })
}

/// §1.3's fields (no coupons in the sandbox: the cash amounts are the whole amounts).
fn answer(transaction_id: &str, out_trade_no: &str, total: i64, r: &SandboxRefund) -> Params {
    let (total, fee) = (total.to_string(), r.refund_fee.to_string());
    [
        ("transaction_id", transaction_id),
        ("out_trade_no", out_trade_no),
        ("out_refund_no", r.out_refund_no.as_str()),
        ("refund_id", r.refund_id.as_str()),
        ("refund_fee", fee.as_str()),
        ("settlement_refund_fee", fee.as_str()),
        ("total_fee", total.as_str()),
        ("settlement_total_fee", total.as_str()),
        ("fee_type", "CNY"),
        ("cash_fee", total.as_str()),
        ("cash_fee_type", "CNY"),
        ("cash_refund_fee", fee.as_str()),
        ("coupon_refund_fee", "0"),
        ("coupon_refund_count", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
