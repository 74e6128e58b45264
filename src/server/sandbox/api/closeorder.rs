//! `/pay/closeorder`: an unpaid order closed, refused when paid, already closed, or too soon after
//! it was placed.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::{authenticate, find, with_fault, BizError};
use crate::server::sandbox::faults::Api;
use crate::server::sandbox::{Sandbox, SandboxOrder, TradeState};
use crate::server::support::clock::now_ms;
use crate::server::wxpay::xml::Params;

pub(in crate::server::sandbox) async fn close_order(
    State(sb): State<Sandbox>,
    body: Bytes,
) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let floor_ms = sb.cfg.close_floor.as_millis() as i64;
    with_fault(&sb, &a, Api::CloseOrder, || {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        find(&mut inner, &a, false)
            .and_then(|o| close(o, floor_ms))
            .map(|()| Params::new())
    })
    .await
}

/// Closes an unpaid order; refused when paid, already closed, or within `floor_ms` of its
/// placing. Shared by v2's closeorder and v3's close.
pub(in crate::server::sandbox) fn close(
    o: &mut SandboxOrder,
    floor_ms: i64,
) -> Result<(), BizError> {
    let now = now_ms();
    o.refresh(now);
    match o.state {
        TradeState::Success { .. } => Err(BizError(
            "ORDERPAID",
            "订单已支付，不能发起关单，请当作已支付的正常交易".into(),
        )),
        TradeState::Closed => Err(BizError("ORDERCLOSED", "订单已关闭，无需继续调用".into())),
        TradeState::NotPay if now - o.created_ms < floor_ms => Err(BizError(
            "INVALID_REQUEST",
            format!(
                "订单生成后不能马上调用关单接口，最短调用时间间隔为{}秒",
                floor_ms / 1000
            ),
        )),
        TradeState::NotPay => {
            o.state = TradeState::Closed;
            Ok(())
        }
    }
}
