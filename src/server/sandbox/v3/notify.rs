//! v3's notifies (wxpay-v3.md §4): the JSON envelope whose `resource` is the Transaction or the
//! refund encrypted with the merchant's APIv3 key, signed by the mode's key (in the migration
//! window, each in turn), acknowledged by HTTP 200/204. Built afresh for every attempt (new
//! timestamp, nonce and IV); the event `id` stays the same, for the merchant's dedup.

use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::pay::transaction;
use super::refund::{status, success_time};
use super::SandboxV3;
use crate::server::sandbox::notifier::{Ack, Outgoing};
use crate::server::sandbox::refunds::{RefundStatus, SandboxRefund, RECV_ACCOUNT};
use crate::server::sandbox::{SandboxOrder, TradeState};
use crate::server::support::clock::{format_rfc3339_beijing, now_ms, parse_beijing};
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::v3::crypto::{answer_message, encrypt, SCHEME};

/// A UUID-shaped id derived from the event, so every delivery of it carries the same id.
fn event_id(event: &str) -> String {
    let h: String = Sha1::digest(event.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[allow(clippy::too_many_arguments)]
fn envelope(
    v3: &SandboxV3,
    turn: u64,
    url: &str,
    mchid: &str,
    event_type: &str,
    summary: &str,
    id: String,
    create_ms: i64,
    original_type: &str,
    resource: &Value,
) -> Option<Outgoing> {
    let merchant = v3.merchant(mchid)?;
    let nonce = random_alnum(12);
    let plaintext = serde_json::to_vec(resource).ok()?;
    let ciphertext = encrypt(&merchant.apiv3_key, &nonce, original_type, &plaintext);
    let body = serde_json::to_vec(&json!({
        "id": id,
        "create_time": format_rfc3339_beijing(create_ms),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": original_type,
            "nonce": nonce,
        },
    }))
    .ok()?;
    let key = v3.notify_key(turn);
    let timestamp = (now_ms() / 1000).to_string();
    let sig_nonce = random_alnum(32);
    let signature = key
        .signer
        .sign(&answer_message(&timestamp, &sig_nonce, &body));
    Some(Outgoing {
        url: url.to_string(),
        body,
        headers: vec![
            ("content-type", "application/json".into()),
            ("wechatpay-timestamp", timestamp),
            ("wechatpay-nonce", sig_nonce),
            ("wechatpay-signature", signature),
            ("wechatpay-serial", key.id.clone()),
            ("wechatpay-signature-type", SCHEME.into()),
        ],
        ack: Ack::Status200Or204,
    })
}

/// TRANSACTION.SUCCESS for a paid order (Native notifies only success).
pub(in crate::server::sandbox) fn pay(
    v3: &SandboxV3,
    o: &SandboxOrder,
    turn: u64,
) -> Option<Outgoing> {
    let TradeState::Success {
        transaction_id,
        time_end,
        ..
    } = &o.state
    else {
        return None;
    };
    let paid_ms = parse_beijing(time_end).unwrap_or_else(|_| now_ms());
    envelope(
        v3,
        turn,
        o.param("notify_url"),
        &o.mch_id,
        "TRANSACTION.SUCCESS",
        "支付成功",
        event_id(&format!("TRANSACTION.SUCCESS/{transaction_id}")),
        paid_ms,
        "transaction",
        &transaction(o),
    )
}

/// REFUND.SUCCESS / CLOSED / ABNORMAL for a settled refund of a paid order (§4.4).
pub(in crate::server::sandbox) fn refund(
    v3: &SandboxV3,
    o: &SandboxOrder,
    r: &SandboxRefund,
    turn: u64,
) -> Option<Outgoing> {
    let TradeState::Success { transaction_id, .. } = &o.state else {
        return None;
    };
    let (event_type, summary) = match r.status {
        RefundStatus::Success => ("REFUND.SUCCESS", "退款成功"),
        RefundStatus::Closed => ("REFUND.CLOSED", "退款关闭"),
        RefundStatus::Change => ("REFUND.ABNORMAL", "退款异常"),
        RefundStatus::Processing => return None,
    };
    let mut resource = json!({
        "mchid": o.mch_id,
        "out_trade_no": o.out_trade_no,
        "transaction_id": transaction_id,
        "out_refund_no": r.out_refund_no,
        "refund_id": r.refund_id,
        "refund_status": status(r.status),
        "user_received_account": RECV_ACCOUNT,
        "amount": {
            "total": r.total_fee,
            "refund": r.refund_fee,
            "payer_total": r.total_fee,
            "payer_refund": r.refund_fee,
        },
    });
    let success = success_time(r);
    if let Some(t) = &success {
        resource["success_time"] = t.clone().into();
    }
    let created = r
        .success_time
        .as_ref()
        .and_then(|t| {
            parse_beijing(&t.chars().filter(char::is_ascii_digit).collect::<String>()).ok()
        })
        .unwrap_or_else(now_ms);
    envelope(
        v3,
        turn,
        &r.notify_url,
        &o.mch_id,
        event_type,
        summary,
        event_id(&format!("{event_type}/{}", r.refund_id)),
        created,
        "refund",
        &resource,
    )
}
