//! The sandbox refunds as WeChat Pay v2 does (wxpay-refund-bill.md §1–§3, §7), driven by the
//! real client: the rules, idempotency by out_refund_no, refundquery's pages and priorities, the
//! encrypted refund notify and its retries, and each refund fault knob.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanpay::server::sandbox::Sandbox;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::refund_notify::{self, RefundNotify};
use scanpay::server::wxpay::xml;
use scanpay::server::wxpay::{
    ErrCode, Merchant, RefundRequest, RefundState, TradeState, UnifiedOrderRequest, WxPayClient,
    WxPayError,
};

use crate::common::{spawn_app, TestApp};

/// Each refund fault knob.
mod faults;
/// refundquery's pages and priorities.
mod query;

fn client(app: &TestApp, timeout: Duration) -> WxPayClient {
    let m = app.ctx().settings.merchant.clone();
    WxPayClient::new(&format!("{}/sandbox/", app.base), m, timeout)
}

fn sandbox(app: &TestApp) -> Sandbox {
    app.ctx().sandbox.clone().unwrap()
}

fn mch(app: &TestApp) -> String {
    app.ctx().settings.merchant.mch_id.clone()
}

/// A paid order: (out_trade_no, transaction_id, code_url).
async fn paid(app: &TestApp, prefix: &str, total_fee: i64) -> (String, String, String) {
    let c = client(app, Duration::from_secs(5));
    let no = format!("{prefix}{}", now_ms());
    let issued = c
        .unified_order(&UnifiedOrderRequest {
            body: "tea".into(),
            out_trade_no: no.clone(),
            total_fee,
            spbill_create_ip: "127.0.0.1".into(),
            notify_url: "http://127.0.0.1:9/wxpay/notify".into(),
            product_id: "TEA".into(),
            time_start: None,
            time_expire: None,
            attach: None,
        })
        .await
        .unwrap();
    sandbox(app).pay_code(&issued.code_url).unwrap();
    let txn = c.order_query(&no).await.unwrap().transaction_id.unwrap();
    (no, txn, issued.code_url)
}

fn ask(order: &(String, String, String), orn: &str, total: i64, fee: i64) -> RefundRequest {
    RefundRequest {
        transaction_id: order.1.clone(),
        out_trade_no: order.0.clone(),
        out_refund_no: orn.into(),
        total_fee: total,
        refund_fee: fee,
        refund_desc: "退货".into(),
        // Nobody listens here: tests that read the notify give their receiver's URL.
        notify_url: "http://127.0.0.1:9/wxpay/refund_notify".into(),
    }
}

fn business(e: WxPayError) -> (ErrCode, String) {
    match e {
        WxPayError::Business { code, description } => (code, description),
        other => panic!("expected a business error, got {other:?}"),
    }
}

/// A merchant's refund notify endpoint: keeps every body; answers `replies` in turn (then the
/// SUCCESS XML).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    async fn start(replies: Vec<(u16, &'static str)>) -> Receiver {
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let seen = bodies.clone();
        let route = axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            let replies = replies.clone();
            async move {
                let n = {
                    let mut b = seen.lock().unwrap();
                    b.push(body.to_vec());
                    b.len() - 1
                };
                let (status, text) = replies
                    .get(n)
                    .copied()
                    .unwrap_or((200, scanpay::server::wxpay::notify::REPLY_SUCCESS));
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    text.to_string(),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/refund_notify", listener.local_addr().unwrap());
        let router = axum::Router::new().route("/refund_notify", route);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Receiver { url, bodies }
    }

    fn hits(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    /// Every body received, read as the merchant reads it.
    fn notifies(&self, m: &Merchant) -> Vec<RefundNotify> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .map(|b| {
                let outer = xml::parse(b).unwrap();
                assert!(
                    !outer.contains_key("sign"),
                    "the refund notify is not signed"
                );
                refund_notify::parse(b, m).unwrap()
            })
            .collect()
    }
}

async fn eventually(what: &str, within: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_full_refund_is_processing_then_succeeds_and_is_notified() {
    // Time at WeChat's pace: the refund stays PROCESSING for 2 s.
    let app = spawn_app(&[("SCANPAY_SANDBOX_TIME_SCALE", "1")]).await;
    let c = client(&app, Duration::from_secs(5));
    let rx = Receiver::start(vec![]).await;
    let order = paid(&app, "RFULL", 1000).await;
    let mut req = ask(&order, "RF1", 1000, 1000);
    req.notify_url = rx.url.clone();
    let accepted = c.refund(&req).await.unwrap();
    assert_eq!(accepted.refund_fee, 1000);
    let id = &accepted.refund_id;
    assert!(id.len() == 29 && id.starts_with("50"), "{id}");

    let q = c.refund_query("RF1").await.unwrap();
    assert_eq!((q.state, q.refund_fee), (RefundState::Processing, 1000));
    assert_eq!(&q.refund_id, id);
    assert_eq!(q.success_time, None);
    let oq = c.order_query(&order.0).await.unwrap();
    assert_eq!(
        oq.trade_state,
        TradeState::Refund,
        "refunded orders answer REFUND"
    );
    assert_eq!(oq.transaction_id.as_deref(), Some(order.1.as_str()));

    eventually("the refund notify", Duration::from_secs(6), || {
        rx.hits() >= 1
    })
    .await;
    let n = &rx.notifies(&app.ctx().settings.merchant)[0];
    assert_eq!(
        (n.out_refund_no.as_str(), n.refund_id.as_str()),
        ("RF1", id.as_str())
    );
    assert_eq!(
        (n.out_trade_no.as_str(), n.transaction_id.as_str()),
        (order.0.as_str(), order.1.as_str())
    );
    assert_eq!(
        (n.total_fee, n.refund_fee, n.state.clone()),
        (1000, 1000, RefundState::Success)
    );
    assert_eq!(n.recv_account.as_deref(), Some("支付用户零钱"));
    let t = n.success_time.clone().unwrap();
    assert!(t.len() == 19 && &t[4..5] == "-" && &t[13..14] == ":", "{t}");

    let q = c.refund_query("RF1").await.unwrap();
    assert_eq!(q.state, RefundState::Success);
    assert_eq!(q.success_time.as_deref(), Some(t.as_str()));
    assert_eq!(q.recv_account.as_deref(), Some("支付用户零钱"));
    let (_, held) = sandbox(&app).refund(&mch(&app), "RF1").unwrap();
    assert!(held.notify_acked && held.notify_attempts == 1);

    // The phone shows the refund, in yuan.
    let page = app
        .http
        .get(format!("{}/sandbox/scan", app.base))
        .query(&[("code_url", order.2.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"data-testid="phone-refund" data-status="SUCCESS""#),
        "{page}"
    );
    assert!(page.contains("¥10.00") && page.contains("RF1"), "{page}");
}

#[tokio::test]
async fn partial_refunds_are_a_minute_apart_and_never_exceed_the_payment() {
    // The minute between two refunds scales with the sandbox: 3 s at 0.05.
    let app = spawn_app(&[("SCANPAY_SANDBOX_TIME_SCALE", "0.05")]).await;
    let c = client(&app, Duration::from_secs(5));
    let order = paid(&app, "RPART", 1000).await;
    c.refund(&ask(&order, "RP1", 1000, 600)).await.unwrap();
    let (code, des) = business(c.refund(&ask(&order, "RP2", 1000, 300)).await.unwrap_err());
    assert_eq!(code, ErrCode::InvalidReqTooMuch, "{des}");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    // More than is left: refused, nothing recorded.
    let (code, des) = business(c.refund(&ask(&order, "RP2", 1000, 500)).await.unwrap_err());
    assert_eq!(
        (code, des.as_str()),
        (ErrCode::InvalidRequest, "refund_fee大于可退金额")
    );
    // More than the whole payment: refused at the protocol level.
    match c.refund(&ask(&order, "RP2", 1000, 1001)).await.unwrap_err() {
        WxPayError::Protocol { return_msg } => assert_eq!(return_msg, "invalid refund_fee"),
        other => panic!("{other:?}"),
    }
    // total_fee must be the order's.
    let (code, _) = business(c.refund(&ask(&order, "RP2", 999, 400)).await.unwrap_err());
    assert_eq!(code, ErrCode::Other("REFUND_FEE_MISMATCH".into()));
    c.refund(&ask(&order, "RP2", 1000, 400)).await.unwrap();
    let (code, des) = business(c.refund(&ask(&order, "RP3", 1000, 1)).await.unwrap_err());
    assert_eq!((code, des.as_str()), (ErrCode::Error, "订单已全额退款"));
    let held = sandbox(&app).refunds(&mch(&app), &order.0);
    let fees: Vec<_> = held
        .iter()
        .map(|r| (r.out_refund_no.as_str(), r.refund_fee))
        .collect();
    assert_eq!(fees, [("RP1", 600), ("RP2", 400)]);

    // Unpaid or unknown payments cannot be refunded.
    let unpaid = format!("RUNPAID{}", now_ms());
    c.unified_order(&UnifiedOrderRequest {
        body: "tea".into(),
        out_trade_no: unpaid.clone(),
        total_fee: 100,
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: "http://127.0.0.1:9/n".into(),
        product_id: "TEA".into(),
        time_start: None,
        time_expire: None,
        attach: None,
    })
    .await
    .unwrap();
    let mut r = ask(&order, "RU1", 100, 1);
    (r.transaction_id, r.out_trade_no) = (String::new(), unpaid);
    assert_eq!(
        business(c.refund(&r).await.unwrap_err()).0,
        ErrCode::OrderNotExist
    );
    // transaction_id wins over out_trade_no: an unknown one is not rescued by a good out_trade_no.
    let mut r = ask(&order, "RU2", 1000, 1);
    r.transaction_id = "4200000000000000000000000000".into();
    assert_eq!(
        business(c.refund(&r).await.unwrap_err()).0,
        ErrCode::OrderNotExist
    );
}

#[tokio::test]
async fn the_same_out_refund_no_is_one_refund() {
    let app = spawn_app(&[]).await;
    let c = client(&app, Duration::from_secs(5));
    let order = paid(&app, "RSAME", 1000).await;
    let first = c.refund(&ask(&order, "RS1", 1000, 300)).await.unwrap();
    // Again at once: the same refund (no minute rule for a retry), held once.
    for _ in 0..3 {
        assert_eq!(
            c.refund(&ask(&order, "RS1", 1000, 300)).await.unwrap(),
            first
        );
    }
    assert_eq!(sandbox(&app).refunds(&mch(&app), &order.0).len(), 1);
    for (total, fee) in [(1000, 301), (999, 300)] {
        let (code, des) = business(c.refund(&ask(&order, "RS1", total, fee)).await.unwrap_err());
        assert_eq!(code, ErrCode::Other("REFUND_FEE_MISMATCH".into()));
        assert_eq!(des, "订单金额或退款金额与之前请求不一致，请核实后再试");
    }
    // Another order cannot take this merchant's number.
    let other = paid(&app, "RSAME2", 1000).await;
    let (code, _) = business(c.refund(&ask(&other, "RS1", 1000, 300)).await.unwrap_err());
    assert_eq!(code, ErrCode::ParamError);
    let held = sandbox(&app).refunds(&mch(&app), &order.0);
    assert_eq!(
        (held.len(), held[0].refund_id.as_str()),
        (1, first.refund_id.as_str())
    );
    assert!(sandbox(&app).refunds(&mch(&app), &other.0).is_empty());
}

#[tokio::test]
async fn the_refund_notify_is_retried_until_acknowledged() {
    let app = spawn_app(&[]).await;
    let c = client(&app, Duration::from_secs(5));
    // An error, then a bare "SUCCESS" (not the XML): both retried.
    let rx = Receiver::start(vec![(500, "oops"), (200, "SUCCESS")]).await;
    let order = paid(&app, "RRETRY", 500).await;
    let mut req = ask(&order, "RR1", 500, 200);
    req.notify_url = rx.url.clone();
    c.refund(&req).await.unwrap();
    let sb = sandbox(&app);
    let m = mch(&app);
    eventually("the ack", Duration::from_secs(5), || {
        sb.refund(&m, "RR1").unwrap().1.notify_acked
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.hits(), 3, "stops after the first SUCCESS XML");
    assert_eq!(sb.refund(&m, "RR1").unwrap().1.notify_attempts, 3);
    let notifies = rx.notifies(&app.ctx().settings.merchant);
    assert!(notifies
        .iter()
        .all(|n| n.out_refund_no == "RR1" && n.refund_fee == 200));
    // Another merchant's key cannot read it.
    let mut stranger = app.ctx().settings.merchant.clone();
    stranger.api_key = scanpay::server::wxpay::ApiKey::new("0123456789abcdef0123456789abcdef");
    let body = rx.bodies.lock().unwrap()[0].clone();
    assert!(refund_notify::parse(&body, &stranger).is_err());
}
