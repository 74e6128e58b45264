//! The QR step: ask WeChat (`unifiedorder`) for an order's QR code, with the identical request
//! every time, and deal with a refusal. Placing an order and the sweep both call it.

use crate::server::domain::{pay_by, Cause, OrderRow};
use crate::server::orders::decide::{self, Action, QrRoute};
use crate::server::orders::{apply, close};
use crate::server::state::Ctx;
use crate::server::support::clock::{format_beijing, now_ms};
use crate::server::wxpay::{UnifiedOrderRequest, UnifiedOrderResponse, WxPayError};

/// The unifiedorder request for an order, rebuilt from the order row alone, so asking again
/// (after an uncertain answer, from the sweep, after a restart) sends identical parameters and
/// WeChat treats it as the same payment rather than OUT_TRADE_NO_USED.
pub fn payment_request(ctx: &Ctx, o: &OrderRow) -> UnifiedOrderRequest {
    UnifiedOrderRequest {
        body: o.body.clone(),
        out_trade_no: o.id.clone(),
        total_fee: o.total_fee,
        spbill_create_ip: ctx.settings.wxpay_server_ip.clone(),
        notify_url: ctx.settings.notify_url(),
        product_id: o.id.clone(),
        time_start: Some(format_beijing(o.created_at)),
        time_expire: Some(format_beijing(pay_by(o.created_at, o.deadline_at))),
        attach: None,
    }
}

/// Asks WeChat for the order's QR code. An uncertain answer leaves the order pending and brings
/// its next check forward to one sweep interval. A definite refusal is never taken at its word
/// (OUT_TRADE_NO_USED and ORDERPAID mean WeChat may hold the order, even paid): WeChat is asked,
/// and only an order it confirms it never created is failed; one it holds unpaid is closed.
pub async fn request_payment(ctx: &Ctx, o: &OrderRow) -> Result<(), sqlx::Error> {
    let refusal = match unified_order_with_retry(ctx, &payment_request(ctx, o)).await {
        Ok(resp) => {
            apply::record_code_url(ctx, &o.id, &resp.code_url, &resp.prepay_id).await?;
            return Ok(());
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(order_id = %o.id, error = %e, "unifiedorder uncertain; the sweep asks again");
            let soon = now_ms() + ctx.settings.sweep_interval.as_millis() as i64;
            return apply::schedule_check(ctx, &o.id, soon.min(o.deadline_at)).await;
        }
        // return_code=FAIL: WeChat refused the request itself (signature, merchant, format), so
        // it created nothing. Nothing can pay this order.
        Err(e @ WxPayError::Protocol { .. }) => {
            tracing::warn!(order_id = %o.id, error = %e, "unifiedorder refused; order failed");
            apply::fail(ctx, &o.id, Cause::System, &e.to_string()).await?;
            return Ok(());
        }
        Err(e) => e,
    };
    tracing::warn!(order_id = %o.id, error = %refusal, "unifiedorder refused; asking WeChat what it holds");
    let answer = ctx.wxpay.order_query(&o.id).await;
    let action = decide::decide(o, &answer, now_ms(), QrRoute::Refused);
    match &action {
        Action::StartClose(reason) => {
            close::run_row(ctx, o.clone(), *reason, Cause::System).await?;
        }
        Action::Wait(why) => {
            tracing::info!(order_id = %o.id, why, "refused unifiedorder not settled yet");
            let soon = now_ms() + ctx.settings.sweep_interval.as_millis() as i64;
            apply::schedule_check(ctx, &o.id, soon).await?;
        }
        _ => {
            let detail = format!("unifiedorder: {refusal}");
            let _ = ctx
                .store
                .note(&o.id, "unifiedorder_refused", Cause::System, &detail)
                .await;
            apply::settle(ctx, o, &action, Cause::System).await?;
        }
    }
    Ok(())
}

/// Retries an uncertain failure once, with the same parameters (and so the same out_trade_no);
/// later attempts are the sweep's.
async fn unified_order_with_retry(
    ctx: &Ctx,
    req: &UnifiedOrderRequest,
) -> Result<UnifiedOrderResponse, WxPayError> {
    match ctx.wxpay.unified_order(req).await {
        Err(e) if e.is_retryable() => {
            tracing::info!(order_id = %req.out_trade_no, error = %e, "unifiedorder retry");
            tokio::time::sleep(ctx.retry_delay).await;
            ctx.wxpay.unified_order(req).await
        }
        other => other,
    }
}
