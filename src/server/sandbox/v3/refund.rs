//! `POST /v3/refund/domestic/refunds` and `GET /v3/refund/domestic/refunds/{out_refund_no}`
//! (wxpay-v3.md §5.4–5.5): v3's fields turned into v2's, then v2's refund rules, faults and
//! settling over the same orders (`api::apply_refund`), answered with the Refund object.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::proto::{
    authenticate, check_notify_url, from_v2, invalid, missing, opt_object, opt_str, req_fen,
    req_str, system_error, with_fault, Ctx, Reply, V3Error, V3Request,
};
use crate::server::sandbox::api::{apply_refund, find_in, read_ask, HANG};
use crate::server::sandbox::faults::{Api, RefundFault};
use crate::server::sandbox::refunds::{RefundStatus, SandboxRefund, RECV_ACCOUNT, REFUND_ACCOUNT};
use crate::server::sandbox::{ApiVersion, Sandbox, TradeState};
use crate::server::support::clock::{format_rfc3339_beijing, parse_beijing};
use crate::server::wxpay::xml::Params;

/// v2's `refund_account` for v3's `funds_account`, and back.
const AVAILABLE: &str = "REFUND_SOURCE_RECHARGE_FUNDS";

/// The request's fields as v2's refund parameters.
fn read_refund(ctx: &Ctx) -> Result<Params, V3Error> {
    let b = &ctx.json;
    let transaction_id = opt_str(b, "/transaction_id", 32)?.filter(|s| !s.is_empty());
    let out_trade_no = opt_str(b, "/out_trade_no", 32)?.filter(|s| !s.is_empty());
    if transaction_id.is_none() && out_trade_no.is_none() {
        return Err(V3Error::param("transaction_id和out_trade_no必须二选一")
            .with_detail(json!({"field": "/transaction_id", "location": "body"})));
    }
    let out_refund_no = req_str(b, "/out_refund_no", 64)?;
    let reason = opt_str(b, "/reason", 80)?;
    let notify_url = opt_str(b, "/notify_url", 256)?.filter(|s| !s.is_empty());
    if let Some(url) = notify_url {
        check_notify_url("/notify_url", url)?;
    }
    let account = match opt_str(b, "/funds_account", 32)? {
        None | Some("UNSETTLED") => REFUND_ACCOUNT,
        Some("AVAILABLE") => AVAILABLE,
        Some(_) => return Err(invalid("/funds_account", "AVAILABLE or UNSETTLED")),
    };
    if opt_object(b, "/amount")?.is_none() {
        return Err(missing("/amount", "body"));
    }
    let refund = req_fen(b, "/amount/refund")?;
    let total = req_fen(b, "/amount/total")?;
    if req_str(b, "/amount/currency", 16)? != "CNY" {
        return Err(invalid(
            "/amount/currency",
            "Currency code is invalid (CNY only)",
        ));
    }
    if refund > total {
        return Err(V3Error::new(
            400,
            "INVALID_REQUEST",
            "申请退款金额超过订单可退金额 (amount.refund > amount.total)",
        ));
    }
    let mut p = Params::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            p.insert(k.to_string(), v.to_string());
        }
    };
    put("transaction_id", transaction_id);
    put("out_trade_no", out_trade_no);
    put("out_refund_no", Some(out_refund_no));
    put("total_fee", Some(&total.to_string()));
    put("refund_fee", Some(&refund.to_string()));
    put("refund_desc", reason);
    put("notify_url", notify_url);
    put("refund_account", Some(account));
    Ok(p)
}

/// v3's name of a refund state (CHANGE → ABNORMAL, REFUNDCLOSE → CLOSED).
pub(super) fn status(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Processing => "PROCESSING",
        RefundStatus::Success => "SUCCESS",
        RefundStatus::Change => "ABNORMAL",
        RefundStatus::Closed => "CLOSED",
    }
}

/// The refund's success time (held as Beijing `yyyy-MM-dd HH:mm:ss`) in RFC 3339.
pub(super) fn success_time(r: &SandboxRefund) -> Option<String> {
    let compact: String = r
        .success_time
        .as_ref()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    parse_beijing(&compact).ok().map(format_rfc3339_beijing)
}

/// The Refund object (§5.4); no coupons here, so the payer's amounts are the whole amounts.
fn refund_object(transaction_id: &str, out_trade_no: &str, r: &SandboxRefund) -> Value {
    let mut v = json!({
        "refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "transaction_id": transaction_id,
        "out_trade_no": out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": RECV_ACCOUNT,
        "create_time": format_rfc3339_beijing(r.created_ms),
        "status": status(r.status),
        "funds_account": if r.refund_account == AVAILABLE { "AVAILABLE" } else { "UNSETTLED" },
        "amount": {
            "total": r.total_fee,
            "refund": r.refund_fee,
            "from": [],
            "payer_total": r.total_fee,
            "payer_refund": r.refund_fee,
            "settlement_refund": r.refund_fee,
            "settlement_total": r.total_fee,
            "discount_refund": 0,
            "currency": "CNY",
        },
    });
    if let Some(t) = success_time(r) {
        v["success_time"] = t.into();
    }
    v
}

pub(in crate::server::sandbox) async fn refund(
    State(sb): State<Sandbox>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let p = match read_refund(&ctx) {
        Ok(p) => p,
        Err(e) => return ctx.answer(Err(e)),
    };
    // v2's checks of the same fields (charset of out_refund_no and the rest).
    let ask = match read_ask(&p) {
        Ok(a) => a,
        Err(e) => return ctx.answer(Err(from_v2(e))),
    };
    let mchid = ctx.merchant.mchid.clone();
    // The order's own faults, however the request names it.
    let named = {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        find_in(&mut inner, &mchid, &p, true)
            .ok()
            .map(|o| o.out_trade_no.clone())
    };
    let faults = sb.faults_for(
        named
            .as_deref()
            .or(p.get("out_trade_no").map(String::as_str)),
    );
    match faults.refund {
        RefundFault::SystemError => return ctx.answer(Err(system_error())),
        RefundFault::Latency(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let result = apply_refund(&sb, &mchid, &p, ask, faults, ApiVersion::V3)
        .map(|a| Reply::Json(refund_object(&a.transaction_id, &a.out_trade_no, &a.refund)))
        .map_err(|e| match from_v2(e) {
            // §5.4: the order not found (or not paid) is RESOURCE_NOT_EXISTS for refunds.
            e if e.code == "ORDER_NOT_EXIST" => {
                V3Error::new(404, "RESOURCE_NOT_EXISTS", "订单不存在或未支付")
            }
            e => e,
        });
    match faults.refund {
        RefundFault::SystemErrorApplied => ctx.answer(Err(system_error())),
        RefundFault::Timeout => {
            let response = ctx.answer(result);
            tokio::time::sleep(HANG).await;
            response
        }
        _ => ctx.answer(result),
    }
}

pub(in crate::server::sandbox) async fn query(
    State(sb): State<Sandbox>,
    Path(out_refund_no): Path<String>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // out_refund_no is unique per merchant: the merchant is the signer (no mchid parameter).
    let number = (ctx.merchant.mchid.clone(), out_refund_no.clone());
    let key = {
        let inner = sb.inner.lock().expect("sandbox lock");
        inner.by_refund_no.get(&number).cloned()
    };
    let fault = sb
        .faults_for(key.as_ref().map(|k| k.1.as_str()))
        .api(Api::RefundQuery);
    with_fault(&ctx, fault, || {
        let not_exist = || V3Error::new(404, "RESOURCE_NOT_EXISTS", "退款单不存在");
        let inner = sb.inner.lock().expect("sandbox lock");
        let o = key
            .and_then(|k| inner.orders.get(&k))
            .ok_or_else(not_exist)?;
        let r = o
            .refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no)
            .ok_or_else(not_exist)?;
        let transaction_id = match &o.state {
            TradeState::Success { transaction_id, .. } => transaction_id.as_str(),
            _ => "",
        };
        Ok(Reply::Json(refund_object(
            transaction_id,
            &o.out_trade_no,
            r,
        )))
    })
    .await
}
