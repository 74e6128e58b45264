//! `/pay/refundquery` (wxpay-refund-bill.md §2): the refunds named by refund_id > out_refund_no >
//! transaction_id > out_trade_no, ten per page from `offset`, as `_$n` fields from 0.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::{authenticate, get, with_fault_on, Authed, BizError};
use crate::server::sandbox::faults::Api;
use crate::server::sandbox::refunds::{RefundStatus, RECV_ACCOUNT};
use crate::server::sandbox::{Inner, Sandbox, TradeState};
use crate::server::wxpay::xml::Params;

/// Refunds per answer (§2: "the answer holds 10 per page").
pub(in crate::server::sandbox) const PAGE: usize = 10;

/// What a query names: an order, and one of its refunds or all of them.
struct Selection {
    key: (String, String),
    only: Option<String>,
}

fn not_exist() -> BizError {
    BizError("REFUNDNOTEXIST", "退款订单查询失败".into())
}

fn select(inner: &Inner, a: &Authed) -> Result<Selection, BizError> {
    let mch = a.merchant.mch_id.clone();
    let p = &a.p;
    let (key, only) = if let Some(id) = get(p, "refund_id") {
        let key = inner.by_refund_id.get(id).cloned().ok_or_else(not_exist)?;
        let o = inner.orders.get(&key).ok_or_else(not_exist)?;
        let r = o.refunds.iter().find(|r| r.refund_id == id);
        (key, Some(r.ok_or_else(not_exist)?.out_refund_no.clone()))
    } else if let Some(no) = get(p, "out_refund_no") {
        let key = inner.by_refund_no.get(&(mch.clone(), no.to_string()));
        (key.cloned().ok_or_else(not_exist)?, Some(no.to_string()))
    } else if let Some(txn) = get(p, "transaction_id") {
        (
            inner
                .by_transaction
                .get(txn)
                .cloned()
                .ok_or_else(not_exist)?,
            None,
        )
    } else if let Some(otn) = get(p, "out_trade_no") {
        ((mch.clone(), otn.to_string()), None)
    } else {
        return Err(BizError(
            "PARAM_ERROR",
            "refund_id、out_refund_no、transaction_id、out_trade_no 四选一".into(),
        ));
    };
    // Another merchant's refunds do not exist for this one.
    if key.0 != mch || inner.orders.get(&key).is_none_or(|o| o.refunds.is_empty()) {
        return Err(not_exist());
    }
    Ok(Selection { key, only })
}

pub(in crate::server::sandbox) async fn refund_query(
    State(sb): State<Sandbox>,
    body: Bytes,
) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let selected = {
        let inner = sb.inner.lock().expect("sandbox lock");
        select(&inner, &a)
    };
    // The named order's faults, however the query names it.
    let otn = selected.as_ref().ok().map(|s| s.key.1.clone());
    with_fault_on(&sb, &a, Api::RefundQuery, otn.as_deref(), || {
        let s = selected?;
        let inner = sb.inner.lock().expect("sandbox lock");
        answer(&inner, &a, &s)
    })
    .await
}

fn answer(inner: &Inner, a: &Authed, s: &Selection) -> Result<Params, BizError> {
    let o = inner.orders.get(&s.key).ok_or_else(not_exist)?;
    let listed: Vec<_> = o
        .refunds
        .iter()
        .filter(|r| s.only.as_ref().is_none_or(|n| *n == r.out_refund_no))
        .collect();
    let offset = match get(&a.p, "offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| BizError("PARAM_ERROR", "offset参数错误: a whole number".into()))?,
    };
    if offset >= listed.len() {
        return Err(BizError(
            "PARAM_ERROR",
            format!("offset参数错误: 超过退款笔数 {}", listed.len()),
        ));
    }
    let page = &listed[offset..listed.len().min(offset + PAGE)];
    let mut f = Params::new();
    let mut put = |k: String, v: &str| {
        f.insert(k, v.to_string());
    };
    if let TradeState::Success { transaction_id, .. } = &o.state {
        put("transaction_id".into(), transaction_id);
    }
    let total = o.total_fee().to_string();
    put("out_trade_no".into(), &o.out_trade_no);
    put("total_fee".into(), &total);
    put("settlement_total_fee".into(), &total);
    put("cash_fee".into(), &total);
    put("fee_type".into(), "CNY");
    // total_refund_count counts what the query names (one refund when named by its number,
    // which §2 advises for orders with many refunds); refund_count, this page.
    put("total_refund_count".into(), &listed.len().to_string());
    put("refund_count".into(), &page.len().to_string());
    // $n counts from 0 within the answer, so a reader loops 0..refund_count on every page.
    for (n, r) in page.iter().enumerate() {
        let fee = r.refund_fee.to_string();
        put(format!("out_refund_no_{n}"), &r.out_refund_no);
        put(format!("refund_id_{n}"), &r.refund_id);
        put(format!("refund_channel_{n}"), "ORIGINAL");
        put(format!("refund_fee_{n}"), &fee);
        put(format!("settlement_refund_fee_{n}"), &fee);
        put(format!("refund_status_{n}"), r.status.as_str());
        put(format!("refund_account_{n}"), &r.refund_account);
        put(format!("refund_recv_accout_{n}"), RECV_ACCOUNT);
        if let (RefundStatus::Success, Some(t)) = (r.status, &r.success_time) {
            put(format!("refund_success_time_{n}"), t);
        }
    }
    Ok(f)
}
