//! `POST /v3/pay/transactions/native`, the two order queries and close (wxpay-v3.md §5.1–5.3):
//! v3's field rules, then v2's order rules over the same state (`api::place`, `api::close`),
//! answered as v3 does (the code_url, the Transaction object, 204).

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Value};

use super::proto::{
    authenticate, check_notify_url, from_v2, invalid, missing, opt_object, opt_str, req_fen,
    req_str, with_fault, Ctx, Reply, V3Error, V3Request,
};
use crate::server::sandbox::api::{check_out_trade_no, close as close_order, place};
use crate::server::sandbox::faults::Api;
use crate::server::sandbox::{ApiVersion, Sandbox, SandboxOrder, TradeState};
use crate::server::support::clock::{format_rfc3339_beijing, now_ms, parse_beijing, parse_rfc3339};
use crate::server::wxpay::xml::Params;
use crate::server::wxpay::SignType;

/// time_expire: at least a minute from now (or the sandbox's shorter `min_expire`, for tests
/// with short orders), at most 15 days (§5.1: raised or clamped).
const MIN_EXPIRE_MS: i64 = 60_000;
const MAX_EXPIRE_MS: i64 = 15 * 86_400_000;

/// A native order's fields, checked, as the v2-shaped parameters the shared rules keep.
struct NativeAsk {
    out_trade_no: String,
    params: Params,
    expire_ms: Option<i64>,
}

fn read_native(ctx: &Ctx, min_expire_ms: i64) -> Result<NativeAsk, V3Error> {
    let b = &ctx.json;
    let appid = req_str(b, "/appid", 32)?;
    ctx.same_mchid(opt_str(b, "/mchid", 32)?, "body")?;
    if appid != ctx.merchant.appid {
        return Err(V3Error::new(
            400,
            "APPID_MCHID_NOT_MATCH",
            "appid和mchid不匹配，请检查后再试",
        ));
    }
    let description = req_str(b, "/description", 127)?;
    let out_trade_no = req_str(b, "/out_trade_no", 32)?;
    // v3's charset has no `@` (v2's does).
    if out_trade_no.contains('@') || check_out_trade_no(out_trade_no).is_err() {
        return Err(invalid(
            "/out_trade_no",
            "6 to 32 characters of 0-9 A-Z a-z _ - | *",
        ));
    }
    let now = now_ms();
    let expire_ms = match opt_str(b, "/time_expire", 64)? {
        None => None,
        Some(te) => {
            let t = parse_rfc3339(te).map_err(|_| {
                invalid(
                    "/time_expire",
                    "字符串必须是符合 RFC3339 日期时间格式 (e.g. 2018-06-08T10:34:56+08:00)",
                )
                .with_detail(json!({"location": "body", "value": te}))
            })?;
            Some(t.clamp(now + min_expire_ms.min(MIN_EXPIRE_MS), now + MAX_EXPIRE_MS))
        }
    };
    let attach = opt_str(b, "/attach", 128)?;
    let notify_url = req_str(b, "/notify_url", 255)?;
    check_notify_url("/notify_url", notify_url)?;
    let goods_tag = opt_str(b, "/goods_tag", 32)?;
    if !matches!(
        b.get("support_fapiao"),
        None | Some(Value::Null | Value::Bool(_))
    ) {
        return Err(invalid("/support_fapiao", "must be a boolean"));
    }
    if opt_object(b, "/amount")?.is_none() {
        return Err(missing("/amount", "body"));
    }
    let total = req_fen(b, "/amount/total")?;
    if opt_str(b, "/amount/currency", 16)?.is_some_and(|c| c != "CNY") {
        return Err(invalid(
            "/amount/currency",
            "Currency code is invalid (CNY only)",
        ));
    }
    let detail = opt_object(b, "/detail")?;
    let scene = opt_object(b, "/scene_info")?;
    let ip = match scene {
        Some(_) => Some(req_str(b, "/scene_info/payer_client_ip", 45)?),
        None => None,
    };
    let settle = opt_object(b, "/settle_info")?;
    // v2's names, so bills, the phone page and re-entry read v3 orders like v2 ones.
    let mut p = Params::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            p.insert(k.to_string(), v);
        }
    };
    put("appid", Some(appid.into()));
    put("mch_id", Some(ctx.merchant.mchid.clone()));
    put("body", Some(description.into()));
    put("out_trade_no", Some(out_trade_no.into()));
    put("total_fee", Some(total.to_string()));
    put("fee_type", Some("CNY".into()));
    put("notify_url", Some(notify_url.into()));
    put("trade_type", Some("NATIVE".into()));
    put("attach", attach.map(str::to_string));
    put("goods_tag", goods_tag.map(str::to_string));
    put("spbill_create_ip", ip.map(str::to_string));
    put("detail", detail.map(Value::to_string));
    put("scene_info", scene.map(Value::to_string));
    put("settle_info", settle.map(Value::to_string));
    put(
        "support_fapiao",
        b.get("support_fapiao")
            .and_then(Value::as_bool)
            .map(|f| f.to_string()),
    );
    put(
        "time_expire",
        opt_str(b, "/time_expire", 64)?.map(str::to_string),
    );
    Ok(NativeAsk {
        out_trade_no: out_trade_no.to_string(),
        params: p,
        expire_ms,
    })
}

/// Re-entry compares everything but time_expire, which only the first order sets (§5.1).
fn same_order(held: &Params, asked: &Params) -> bool {
    let without = |p: &Params| {
        let mut p = p.clone();
        p.remove("time_expire");
        p
    };
    without(held) == without(asked)
}

pub(in crate::server::sandbox) async fn native(
    State(sb): State<Sandbox>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let ask = match read_native(&ctx, sb.cfg.min_expire.as_millis() as i64) {
        Ok(a) => a,
        Err(e) => return ctx.answer(Err(e)),
    };
    let fault = sb
        .faults_for(Some(&ask.out_trade_no))
        .api(Api::UnifiedOrder);
    with_fault(&ctx, fault, || {
        let key = (ctx.merchant.mchid.clone(), ask.out_trade_no.clone());
        place(
            &sb,
            key,
            ask.params,
            ask.expire_ms,
            SignType::Md5,
            ApiVersion::V3,
            same_order,
        )
        .map(|o| Reply::Json(json!({"code_url": o.code_url})))
        .map_err(from_v2)
    })
    .await
}

/// The Transaction object (§5.2): only the fields that mean something in the order's state.
pub(super) fn transaction(o: &SandboxOrder) -> Value {
    let mut t = json!({
        "appid": o.param("appid"),
        "mchid": o.mch_id,
        "out_trade_no": o.out_trade_no,
        "trade_type": "NATIVE",
    });
    let total = o.total_fee();
    match &o.state {
        TradeState::NotPay => {
            t["trade_state"] = "NOTPAY".into();
            t["trade_state_desc"] = "订单未支付".into();
            t["amount"] = json!({"total": total, "currency": "CNY"});
        }
        TradeState::Closed => {
            t["trade_state"] = "CLOSED".into();
            t["trade_state_desc"] = "订单已关闭".into();
            t["amount"] = json!({"total": total, "currency": "CNY"});
        }
        TradeState::Success {
            transaction_id,
            time_end,
            openid,
        } => {
            // Any refund makes the trade REFUND, as in v2's orderquery.
            let (state, desc) = if o.refunds.is_empty() {
                ("SUCCESS", "支付成功")
            } else {
                ("REFUND", "订单发生过退款，退款详情请查询退款单")
            };
            t["trade_state"] = state.into();
            t["trade_state_desc"] = desc.into();
            t["transaction_id"] = transaction_id.as_str().into();
            t["bank_type"] = "OTHERS".into();
            if let Ok(ms) = parse_beijing(time_end) {
                t["success_time"] = format_rfc3339_beijing(ms).into();
            }
            t["payer"] = json!({"openid": openid});
            t["amount"] = json!({
                "total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY",
            });
        }
    }
    if !o.param("attach").is_empty() {
        t["attach"] = o.param("attach").into();
    }
    t
}

fn not_exist() -> V3Error {
    V3Error::new(404, "ORDER_NOT_EXIST", "订单不存在")
}

/// Answers the order `key` names (None: none), refreshed, for merchant `ctx`'s query.
fn query(sb: &Sandbox, ctx: &Ctx, key: Option<(String, String)>) -> Result<Reply, V3Error> {
    ctx.same_mchid(ctx.query.get("mchid").map(String::as_str), "query")?;
    let mut inner = sb.inner.lock().expect("sandbox lock");
    let o = key
        .filter(|k| k.0 == ctx.merchant.mchid)
        .and_then(|k| inner.orders.get_mut(&k))
        .ok_or_else(not_exist)?;
    o.refresh(now_ms());
    Ok(Reply::Json(transaction(o)))
}

pub(in crate::server::sandbox) async fn query_by_out_trade_no(
    State(sb): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let fault = sb.faults_for(Some(&out_trade_no)).api(Api::OrderQuery);
    let key = (ctx.merchant.mchid.clone(), out_trade_no);
    with_fault(&ctx, fault, || query(&sb, &ctx, Some(key))).await
}

pub(in crate::server::sandbox) async fn query_by_transaction_id(
    State(sb): State<Sandbox>,
    Path(transaction_id): Path<String>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let key = {
        let inner = sb.inner.lock().expect("sandbox lock");
        inner.by_transaction.get(&transaction_id).cloned()
    };
    // The order's own faults, however the query names it.
    let fault = sb
        .faults_for(key.as_ref().map(|k| k.1.as_str()))
        .api(Api::OrderQuery);
    with_fault(&ctx, fault, || query(&sb, &ctx, key)).await
}

/// Close: 204 once closed; v2's rules (paid → ORDER_PAID, closed → ORDER_CLOSED, too soon).
/// An unknown number is 404 ORDER_NOT_EXIST (WeChat was seen answering 204: do not rely on
/// close to test existence).
pub(in crate::server::sandbox) async fn close(
    State(sb): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = opt_str(&ctx.json, "/mchid", 32).and_then(|m| ctx.same_mchid(m, "body")) {
        return ctx.answer(Err(e));
    }
    let floor_ms = sb.cfg.close_floor.as_millis() as i64;
    let fault = sb.faults_for(Some(&out_trade_no)).api(Api::CloseOrder);
    with_fault(&ctx, fault, || {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        let key = (ctx.merchant.mchid.clone(), out_trade_no.clone());
        let o = inner.orders.get_mut(&key).ok_or_else(not_exist)?;
        close_order(o, floor_ms).map_err(from_v2)?;
        Ok(Reply::NoContent)
    })
    .await
}
