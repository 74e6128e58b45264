//! A refund's life after it is accepted: PROCESSING for the (scaled) refund delay, then the
//! outcome the faults chose, then the refund notify (wxpay-refund-bill.md §3): unsigned outer XML
//! whose `req_info` is the `<root>` document encrypted with the merchant's key, posted on the pay
//! notifier's schedule until a SUCCESS XML answer. A v3 refund's notify is v3's signed JSON
//! envelope instead (wxpay-v3.md §4.4).

use super::faults::{Faults, RefundOutcome};
use super::notifier::{post_until_acked, shape, Outgoing};
use super::refunds::{RefundStatus, SandboxRefund, RECV_ACCOUNT};
use super::{ApiVersion, Sandbox, TradeState};
use crate::server::support::clock::{beijing_display, now_ms};
use crate::server::wxpay::client::nonce;
use crate::server::wxpay::refund_notify::{encrypt_req_info, to_root_xml};
use crate::server::wxpay::xml::{self, Params};

type Key = (String, String);

/// Settles a new refund of order `key` later, then notifies; `faults` are those in force when it
/// was accepted.
pub(super) fn settle(sb: Sandbox, key: Key, out_refund_no: String, faults: Faults) {
    let status = match faults.refund_outcome {
        RefundOutcome::Success => RefundStatus::Success,
        RefundOutcome::Change => RefundStatus::Change,
        RefundOutcome::Close => RefundStatus::Closed,
        RefundOutcome::Processing => {
            tracing::info!(%out_refund_no, "sandbox fault: refund stays PROCESSING");
            return;
        }
    };
    tokio::spawn(async move {
        tokio::time::sleep(sb.cfg.refund_delay.mul_f64(sb.cfg.time_scale)).await;
        let notify_url = {
            let mut inner = sb.inner.lock().expect("sandbox lock");
            let Some(r) = refund_mut(&mut inner, &key, &out_refund_no) else {
                return;
            };
            r.status = status;
            if status == RefundStatus::Success {
                r.success_time = Some(beijing_display(now_ms()));
            }
            r.notify_url.clone()
        };
        if notify_url.is_empty() {
            tracing::info!(%out_refund_no, "sandbox refund has no notify_url: no refund notify");
            return;
        }
        let what = out_refund_no.clone();
        shape(faults.refund_notify, what, move || {
            deliver(sb.clone(), key.clone(), out_refund_no.clone())
        });
    });
}

fn refund_mut<'a>(
    inner: &'a mut super::Inner,
    key: &Key,
    out_refund_no: &str,
) -> Option<&'a mut SandboxRefund> {
    inner
        .orders
        .get_mut(key)?
        .refunds
        .iter_mut()
        .find(|r| r.out_refund_no == out_refund_no)
}

async fn deliver(sb: Sandbox, key: Key, out_refund_no: String) {
    post_until_acked(
        &sb,
        &out_refund_no,
        || build(&sb, &key, &out_refund_no),
        |acked| {
            let mut inner = sb.inner.lock().expect("sandbox lock");
            if let Some(r) = refund_mut(&mut inner, &key, &out_refund_no) {
                r.notify_attempts += 1;
                r.notify_acked |= acked;
            }
        },
    )
    .await
}

/// The notify for a settled refund: a new nonce per delivery, and no sign (§3.2) — decrypting
/// with the merchant's key is the proof.
fn build(sb: &Sandbox, key: &Key, out_refund_no: &str) -> Option<Outgoing> {
    let mut inner = sb.inner.lock().expect("sandbox lock");
    inner.v3_notifies += 1;
    let turn = inner.v3_notifies;
    let o = inner.orders.get(key)?;
    let TradeState::Success { transaction_id, .. } = &o.state else {
        return None;
    };
    let r = o
        .refunds
        .iter()
        .find(|r| r.out_refund_no == out_refund_no)?;
    if r.api == ApiVersion::V3 {
        return super::v3::notify::refund(sb.cfg.v3.as_deref()?, o, r, turn);
    }
    let merchant = sb.cfg.merchants.iter().find(|m| m.mch_id == o.mch_id)?;
    let (total, fee) = (o.total_fee().to_string(), r.refund_fee.to_string());
    let mut root = Params::new();
    for (k, v) in [
        ("transaction_id", transaction_id.as_str()),
        ("out_trade_no", o.out_trade_no.as_str()),
        ("refund_id", r.refund_id.as_str()),
        ("out_refund_no", r.out_refund_no.as_str()),
        ("total_fee", total.as_str()),
        ("settlement_total_fee", total.as_str()),
        ("refund_fee", fee.as_str()),
        ("settlement_refund_fee", fee.as_str()),
        ("refund_status", r.status.as_str()),
        ("success_time", r.success_time.as_deref().unwrap_or("")),
        ("refund_recv_accout", RECV_ACCOUNT),
        ("refund_account", r.refund_account.as_str()),
        ("refund_request_source", "API"),
    ] {
        if !v.is_empty() {
            root.insert(k.into(), v.into());
        }
    }
    let req_info = encrypt_req_info(merchant.api_key.expose(), &to_root_xml(&root));
    let mut outer = Params::new();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("appid", merchant.appid.as_str()),
        ("mch_id", merchant.mch_id.as_str()),
        ("nonce_str", nonce().as_str()),
        ("req_info", req_info.as_str()),
    ] {
        outer.insert(k.into(), v.into());
    }
    Some(Outgoing::xml(r.notify_url.clone(), xml::to_xml(&outer)))
}
