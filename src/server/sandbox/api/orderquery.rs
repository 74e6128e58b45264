//! `/pay/orderquery`: an order found by transaction_id or out_trade_no, answered with its
//! trade_state and, once paid, the payment's fields (REFUND once it has any refund).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::{authenticate, find, with_fault};
use crate::server::sandbox::faults::Api;
use crate::server::sandbox::{Sandbox, SandboxOrder, TradeState};
use crate::server::support::clock::now_ms;
use crate::server::wxpay::xml::Params;

pub(in crate::server::sandbox) async fn order_query(
    State(sb): State<Sandbox>,
    body: Bytes,
) -> Response {
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
            // Any refund, whatever its state, makes the trade REFUND ("paid, refund initiated",
            // wxpay-v2.md §3.2); the payment's fields stay. The desc is WeChat's usual text
            // [from SDK users' logs; unverified].
            let (state, desc) = if o.refunds.is_empty() {
                ("SUCCESS", "支付成功")
            } else {
                ("REFUND", "订单发生过退款，退款详情请查询退款单")
            };
            for (k, v) in [
                ("trade_state", state),
                ("trade_state_desc", desc),
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
