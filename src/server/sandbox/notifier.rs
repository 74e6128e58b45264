//! Posts signed pay-result notifies to `notify_url`, retrying on WeChat's documented schedule
//! until the merchant answers with SUCCESS XML (reference §5); a v3 order's as v3's signed JSON
//! envelope, acknowledged by HTTP 200/204 (wxpay-v3.md §4).

use std::time::Duration;

use super::faults::NotifyFault;
use super::{ApiVersion, Sandbox, TradeState};
use crate::server::wxpay::client::nonce;
use crate::server::wxpay::notify::is_success_reply;
use crate::server::wxpay::sign;
use crate::server::wxpay::xml::{self, Params};

/// Waits before each retry, as currently documented: 15 tries over 24 h 4 m after the first.
pub const RETRY_SCHEDULE: [Duration; 15] = {
    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    [
        s(15),
        s(15),
        s(30),
        s(180),
        s(600),
        s(1200),
        s(1800),
        s(1800),
        s(1800),
        s(3600),
        s(10_800),
        s(10_800),
        s(10_800),
        s(21_600),
        s(21_600),
    ]
};

/// Starts delivery of a paid order's notify, shaped by the notify fault in force.
pub(super) fn start(sb: Sandbox, mch_id: String, out_trade_no: String, fault: NotifyFault) {
    let what = out_trade_no.clone();
    shape(fault, what, move || {
        deliver(sb.clone(), mch_id.clone(), out_trade_no.clone())
    });
}

/// Runs `deliver` (one delivery with its retries) as the notify fault says: once, never, later,
/// n times one after another, or n times at once. Shared by the pay and refund notifiers.
pub(super) fn shape<F, Fut>(fault: NotifyFault, what: String, deliver: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match fault {
        NotifyFault::Normal => {
            tokio::spawn(deliver());
        }
        NotifyFault::Drop => tracing::info!(%what, "sandbox fault: notify dropped"),
        NotifyFault::Delay(d) => {
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                deliver().await
            });
        }
        NotifyFault::Duplicate(n) => {
            tokio::spawn(async move {
                for _ in 0..n {
                    deliver().await;
                }
            });
        }
        NotifyFault::Concurrent(n) => {
            for _ in 0..n {
                tokio::spawn(deliver());
            }
        }
    }
}

async fn deliver(sb: Sandbox, mch_id: String, out_trade_no: String) {
    let key = (mch_id.clone(), out_trade_no.clone());
    post_until_acked(
        &sb,
        &out_trade_no,
        || build(&sb, &mch_id, &out_trade_no),
        |acked| {
            let mut inner = sb.inner.lock().expect("sandbox lock");
            if let Some(o) = inner.orders.get_mut(&key) {
                o.notify_attempts += 1;
                o.notify_acked |= acked;
            }
        },
    )
    .await
}

/// One notify attempt: where, what, with which headers, and what acknowledges it.
pub(super) struct Outgoing {
    pub url: String,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    pub ack: Ack,
}

/// What the merchant's answer must be for a notify to count as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ack {
    /// v2: a `return_code=SUCCESS` XML body.
    SuccessXml,
    /// v3: HTTP 200 or 204, whatever the body (wxpay-v3.md §4.5).
    Status200Or204,
}

impl Outgoing {
    /// A v2 notify: XML, no signature headers.
    pub(super) fn xml(url: String, body: String) -> Self {
        Outgoing {
            url,
            body: body.into_bytes(),
            headers: vec![("content-type", "text/xml".into())],
            ack: Ack::SuccessXml,
        }
    }
}

/// One delivery: posts what `build` gives (afresh each attempt; None: nothing to send any more)
/// until the merchant acknowledges it, waiting the scaled schedule between attempts; `record`
/// notes each attempt and whether it was acknowledged.
pub(super) async fn post_until_acked(
    sb: &Sandbox,
    what: &str,
    build: impl Fn() -> Option<Outgoing>,
    record: impl Fn(bool),
) {
    for attempt in 0..=RETRY_SCHEDULE.len() {
        if attempt > 0 {
            tokio::time::sleep(RETRY_SCHEDULE[attempt - 1].mul_f64(sb.cfg.time_scale)).await;
        }
        let Some(out) = build() else {
            return;
        };
        let mut request = sb.http.post(&out.url).body(out.body);
        for (name, value) in &out.headers {
            request = request.header(*name, value);
        }
        let acked = match request.send().await {
            Ok(resp) => match out.ack {
                Ack::Status200Or204 => matches!(resp.status().as_u16(), 200 | 204),
                Ack::SuccessXml => resp
                    .bytes()
                    .await
                    .map(|b| is_success_reply(&b))
                    .unwrap_or(false),
            },
            Err(_) => false,
        };
        record(acked);
        if acked {
            return;
        }
        tracing::info!(%what, attempt = attempt + 1, "sandbox notify not acknowledged; will retry");
    }
    tracing::warn!(%what, "sandbox notify retries exhausted");
}

/// The notify for a paid order, freshly signed (new nonce per delivery, like WeChat), in the
/// format of the API that placed it.
fn build(sb: &Sandbox, mch_id: &str, out_trade_no: &str) -> Option<Outgoing> {
    let mut inner = sb.inner.lock().expect("sandbox lock");
    inner.v3_notifies += 1;
    let turn = inner.v3_notifies;
    let o = inner
        .orders
        .get(&(mch_id.to_string(), out_trade_no.to_string()))?;
    if o.api == ApiVersion::V3 {
        return super::v3::notify::pay(sb.cfg.v3.as_deref()?, o, turn);
    }
    let TradeState::Success {
        transaction_id,
        time_end,
        openid,
    } = &o.state
    else {
        return None;
    };
    let merchant = sb.cfg.merchants.iter().find(|m| m.mch_id == mch_id)?;
    let fee = o.total_fee().to_string();
    let mut p = Params::new();
    for (k, v) in [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", merchant.appid.as_str()),
        ("mch_id", mch_id),
        ("nonce_str", nonce().as_str()),
        ("openid", openid.as_str()),
        ("is_subscribe", "N"),
        ("trade_type", "NATIVE"),
        ("bank_type", "CFT"),
        ("total_fee", fee.as_str()),
        ("fee_type", "CNY"),
        ("cash_fee", fee.as_str()),
        ("transaction_id", transaction_id.as_str()),
        ("out_trade_no", out_trade_no),
        ("attach", o.param("attach")),
        ("time_end", time_end.as_str()),
    ] {
        if !v.is_empty() {
            p.insert(k.into(), v.into());
        }
    }
    // Signed with the type used at unifiedorder; like WeChat, sign_type itself is not sent.
    let s = sign::sign(&p, merchant.api_key.expose(), o.sign_type);
    p.insert("sign".into(), s);
    Some(Outgoing::xml(
        o.param("notify_url").to_string(),
        xml::to_xml(&p),
    ))
}
