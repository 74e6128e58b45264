//! Refunds end to end through the in-process sandbox: the operator endpoint (full, partial, a
//! double click, every refusal writing nothing), uncertain answers retried with the same number
//! and amounts (the sandbox holds one refund), the automatic refund of a payment that arrived
//! after the order closed, and what the shopper sees. The refund notify: `refund_notifies.rs`.

use std::time::{Duration, Instant};

use scanpay::server::domain::RefundStatus;
use scanpay::server::sandbox::faults::Faults;
use serde_json::{json, Value};

use crate::common::{spawn_app, TestApp};

const TOKEN: &str = "ops-token-for-the-refund-tests";

pub(crate) async fn app() -> TestApp {
    spawn_app(&[
        ("SCANPAY_OPS_TOKEN", TOKEN),
        ("SCANPAY_REFUND_SPACING", "100ms"),
        ("SCANPAY_SWEEP_INTERVAL", "100ms"),
    ])
    .await
}

/// A shopper's order paid through the sandbox (its notify applied).
pub(crate) async fn paid_order(
    app: &TestApp,
    lines: &[(&str, i64)],
) -> (crate::common::Shopper, String) {
    let shopper = app.shopper().await;
    let id = shopper.place_ok(lines).await;
    app.wait_for(&id, "its QR code", |o| o.code_url.is_some())
        .await;
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.pay(&app.ctx().settings.merchant.mch_id, &id).unwrap();
    app.wait_for(&id, "paid", |o| {
        o.status == scanpay::app::types::OrderStatus::Paid
    })
    .await;
    (shopper, id)
}

pub(crate) async fn ask(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/ops/orders/{id}/refunds", app.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

pub(crate) async fn wait_refund(
    app: &TestApp,
    no: &str,
    want: RefundStatus,
) -> scanpay::server::domain::RefundRow {
    let start = Instant::now();
    loop {
        let r = app.ctx().store.refund(no).await.unwrap().unwrap();
        if r.status == want {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{no}: {r:?}, waiting for {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sandbox_refunds(app: &TestApp, id: &str) -> usize {
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.refunds(&app.ctx().settings.merchant.mch_id, id).len()
}

#[tokio::test]
async fn partial_then_full_refunds_reach_the_shopper_in_both_languages() {
    let app = app().await;
    let (shopper, id) = paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let total = app.order(&id).await.total_fee;
    let stock = app.stock("TEA-OOLONG").await;
    let (status, r) = ask(
        &app,
        &id,
        json!({"amount_fen": 1200, "reason": "broken lid"}),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    let no = r["out_refund_no"].as_str().unwrap().to_string();
    // A double click: the same refund, not a second one.
    let (status, again) = ask(
        &app,
        &id,
        json!({"amount_fen": 1200, "reason": "broken lid"}),
    )
    .await;
    assert_eq!(
        (status, again["out_refund_no"].as_str()),
        (202, Some(no.as_str()))
    );
    let done = wait_refund(&app, &no, RefundStatus::Success).await;
    assert!(done
        .refund_id
        .as_deref()
        .is_some_and(|r| r.starts_with("50")));
    assert_eq!(app.order(&id).await.refunded_fee, 1200);
    assert_eq!(sandbox_refunds(&app, &id), 1);

    for (lang, want) in [("en", "Refunded ¥12.00"), ("zh-CN", "已退款 ¥12.00")] {
        let cookie = format!("{}; lang={lang}", shopper.cookie);
        let page = |path: String| {
            let (http, base, cookie) = (app.http.clone(), app.base.clone(), cookie.clone());
            async move {
                http.get(format!("{base}{path}"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        assert!(
            page(format!("/orders/{id}/paid")).await.contains(want),
            "{lang}: success page"
        );
        assert!(
            page("/orders".into()).await.contains(want),
            "{lang}: my orders"
        );
    }

    // The rest, with restock: the items go back on the shelf once the order is fully refunded.
    tokio::time::sleep(Duration::from_millis(150)).await; // WeChat's minute, shortened
    let (status, r) = ask(
        &app,
        &id,
        json!({"amount_fen": total - 1200, "reason": "returned", "restock": true}),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    wait_refund(
        &app,
        r["out_refund_no"].as_str().unwrap(),
        RefundStatus::Success,
    )
    .await;
    assert_eq!(app.order(&id).await.refunded_fee, total);
    assert_eq!(app.stock("TEA-OOLONG").await, stock + 1, "restocked");
    let (_, page) = shopper.page(&format!("/orders/{id}/paid")).await;
    let note = page
        .split("data-testid=\"refunded\"")
        .nth(1)
        .unwrap_or_default();
    let text = note.split('<').next().unwrap_or_default();
    assert!(
        text.ends_with(">Refunded"),
        "a full refund says Refunded: {text}"
    );
    // Nothing is left to refund.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, r) = ask(&app, &id, json!({"amount_fen": 1, "reason": "more"})).await;
    assert_eq!(status, 409, "{r}");
    let timeline = app
        .http
        .get(format!("{}/ops/orders/{id}", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let timeline: Value = serde_json::from_str(&timeline.text().await.unwrap()).unwrap();
    assert_eq!(timeline["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(timeline["refunded_fee"], total);
}

#[tokio::test]
async fn refusals_are_clear_and_write_nothing() {
    let app = app().await;
    let shopper = app.shopper().await;
    let unpaid = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    let (_, id) = paid_order(&app, &[("PIN-PANDA", 2)]).await;
    let total = app.order(&id).await.total_fee;
    let cases = [
        (
            unpaid.as_str(),
            json!({"amount_fen": 1, "reason": "x"}),
            409,
            "not paid",
        ),
        (
            "NO-SUCH-ORDER-0001",
            json!({"amount_fen": 1, "reason": "x"}),
            404,
            "no such order",
        ),
        (
            id.as_str(),
            json!({"amount_fen": total + 1, "reason": "x"}),
            409,
            "can still be refunded",
        ),
        (
            id.as_str(),
            json!({"amount_fen": 0, "reason": "x"}),
            422,
            "positive",
        ),
        (
            id.as_str(),
            json!({"amount_fen": -5, "reason": "x"}),
            422,
            "positive",
        ),
        (
            id.as_str(),
            json!({"amount_fen": 1, "reason": ""}),
            422,
            "reason",
        ),
        (
            id.as_str(),
            json!({"amount": 1, "reason": "typo"}),
            422,
            "amount_fen",
        ),
        (
            id.as_str(),
            json!({"amount_fen": "1", "reason": "x"}),
            422,
            "amount_fen",
        ),
    ];
    for (order, body, want, says) in cases {
        let (status, r) = ask(&app, order, body.clone()).await;
        assert_eq!(status, want, "{body}: {r}");
        assert!(
            r["error"].as_str().unwrap_or_default().contains(says),
            "{body}: {r}"
        );
    }
    let n = app.count("SELECT COUNT(*) FROM refunds").await;
    assert_eq!(n, 0, "no refusal wrote a refund");
    // Without the token, nothing at all.
    let r = app
        .http
        .post(format!("{}/ops/orders/{id}/refunds", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn uncertain_answers_are_retried_with_the_same_number_and_refund_once() {
    let app = spawn_app(&[
        ("SCANPAY_OPS_TOKEN", TOKEN),
        ("SCANPAY_REFUND_SPACING", "100ms"),
        ("SCANPAY_SWEEP_INTERVAL", "100ms"),
        ("SCANPAY_WXPAY_TIMEOUT", "500ms"),
    ])
    .await;
    let sb = app.ctx().sandbox.clone().unwrap();
    // The notify is held back, so only the retried request can tell scanpay the refund exists.
    for fault in [
        "refund=systemerror_applied,refund_notify=drop",
        "refund=systemerror",
        "refund=timeout,refund_notify=drop",
    ] {
        let (_, id) = paid_order(&app, &[("BUN-RED", 1)]).await;
        // The first answer is uncertain; then WeChat answers normally.
        sb.set_faults(Some(&id), Faults::parse(fault).unwrap());
        let (status, r) = ask(&app, &id, json!({"amount_fen": 100, "reason": fault})).await;
        assert_eq!(status, 202, "{r}");
        let no = r["out_refund_no"].as_str().unwrap().to_string();
        let start = Instant::now();
        loop {
            let row = app.ctx().store.refund(&no).await.unwrap().unwrap();
            if row.failure.is_some() && row.status == RefundStatus::Requested {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{fault}: {row:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sb.set_faults(Some(&id), Faults::default());
        let done = wait_refund(&app, &no, RefundStatus::Success).await;
        assert_eq!(
            (done.refund_fee, done.total_fee),
            (100, app.order(&id).await.total_fee)
        );
        assert_eq!(
            sandbox_refunds(&app, &id),
            1,
            "{fault}: WeChat refunded once"
        );
    }
}

#[tokio::test]
async fn a_payment_after_the_order_closed_is_refunded_by_itself() {
    let app = app().await;
    let sb = app.ctx().sandbox.clone().unwrap();
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("MUG-CELADON", 1)]).await;
    app.wait_for(&id, "its QR code", |o| o.code_url.is_some())
        .await;
    // The shopper pays at the last moment; the notify is late, and meanwhile we closed the order
    // (the race WeChat's time_expire margin narrows but cannot rule out with clock skew).
    sb.set_faults(Some(&id), Faults::parse("notify=drop").unwrap());
    sb.pay(&app.ctx().settings.merchant.mch_id, &id).unwrap();
    let stock = app.stock("MUG-CELADON").await;
    let db = &app.db;
    sqlx::query(&crate::common::sql(
        "UPDATE orders SET status = 'closed', next_check_at = NULL, finished_at = 1 WHERE id = ?",
    ))
    .bind(&id)
    .execute(db)
    .await
    .unwrap();
    sqlx::query(&crate::common::sql(
        "UPDATE products SET stock = stock + 1 WHERE sku = 'MUG-CELADON'",
    ))
    .execute(db)
    .await
    .unwrap();
    // The payment arrives (the notify WeChat resends).
    let q = app.ctx().wxpay.order_query(&id).await.unwrap();
    let notify = crate::notify::signed(
        &app.ctx().settings.merchant,
        crate::notify::notify_params(
            &app.ctx().settings.merchant,
            &id,
            q.total_fee.unwrap(),
            q.transaction_id.as_deref().unwrap(),
        ),
    );
    let (status, _) = app.post_xml("/wxpay/notify", notify).await;
    assert_eq!(status, 200);
    let start = Instant::now();
    loop {
        let refunds = app.ctx().store.refunds_of(&id).await.unwrap();
        if refunds
            .first()
            .is_some_and(|r| r.status == RefundStatus::Success)
        {
            let r = &refunds[0];
            assert_eq!(
                (
                    r.requested_by.as_str(),
                    r.refund_fee,
                    r.transaction_id.as_str()
                ),
                (
                    "system",
                    q.total_fee.unwrap(),
                    q.transaction_id.as_deref().unwrap()
                )
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{refunds:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        app.ctx().store.anomalies(10).await.unwrap().is_empty(),
        "the anomaly is resolved by the refund"
    );
    let o = app.order(&id).await;
    assert_eq!(
        (o.status, o.refunded_fee),
        (scanpay::app::types::OrderStatus::Closed, o.total_fee)
    );
    assert_eq!(
        app.stock("MUG-CELADON").await,
        stock + 1,
        "the stock, already back, is not put back twice"
    );
    assert_eq!(sandbox_refunds(&app, &id), 1);
}

#[tokio::test]
async fn automatic_refunds_can_be_left_to_an_operator() {
    let app = spawn_app(&[
        ("SCANPAY_REFUND_AUTOMATIC", "false"),
        ("SCANPAY_SWEEP_INTERVAL", "100ms"),
    ])
    .await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    app.wait_for(&id, "its QR code", |o| o.code_url.is_some())
        .await;
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.pay(&app.ctx().settings.merchant.mch_id, &id).unwrap();
    app.wait_for(&id, "paid", |o| {
        o.status == scanpay::app::types::OrderStatus::Paid
    })
    .await;
    // A second payment of the paid order (another transaction).
    let fee = app.order(&id).await.total_fee;
    let p = scanpay::server::domain::Payment {
        out_trade_no: id.clone(),
        transaction_id: "4200000000000000000000009999".into(),
        total_fee: fee,
        paid_at: 1,
    };
    app.ctx()
        .store
        .mark_paid(&p, scanpay::server::domain::Cause::Notify)
        .await
        .unwrap();
    scanpay::server::orders::refund::pass(app.ctx())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.ctx().store.refunds_of(&id).await.unwrap().is_empty(),
        "left for a person"
    );
    assert_eq!(app.ctx().store.anomalies(10).await.unwrap().len(), 1);
}
