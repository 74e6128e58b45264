//! The refund notify through the in-process sandbox: lost (refundquery settles it),
//! duplicated at once (applied once), and forged — another key, another merchant, a refund we do
//! not hold, another amount, garbage, a SUCCESS for a refund still in progress — changing nothing.

use std::time::Duration;

use scanpay::server::domain::RefundStatus;
use scanpay::server::sandbox::faults::Faults;
use scanpay::server::wxpay::xml::Params;
use serde_json::json;

use crate::model_refunds::refund_notify_xml;
use crate::refunds::{app, ask, paid_order, wait_refund};

#[tokio::test]
async fn notifies_lost_duplicated_or_forged() {
    let app = app().await;
    let sb = app.ctx().sandbox.clone().unwrap();
    // Lost: refundquery (the sweep) settles it.
    let (_, lost) = paid_order(&app, &[("NB-GRID", 1)]).await;
    sb.set_faults(Some(&lost), Faults::parse("refund_notify=drop").unwrap());
    let (_, r) = ask(
        &app,
        &lost,
        json!({"amount_fen": 500, "reason": "lost notify"}),
    )
    .await;
    let no = r["out_refund_no"].as_str().unwrap().to_string();
    let done = wait_refund(&app, &no, RefundStatus::Success).await;
    let events = app.ctx().store.events(&lost).await.unwrap();
    let settled = events
        .iter()
        .find(|e| e.kind == "refund_succeeded")
        .unwrap();
    assert_eq!(settled.cause, "sweep", "refundquery settled it");
    assert!(done.success_time.is_some());

    // Duplicated, at once: one success, one event.
    let (_, dup) = paid_order(&app, &[("NB-GRID", 1)]).await;
    sb.set_faults(
        Some(&dup),
        Faults::parse("refund_notify=concurrent:3").unwrap(),
    );
    let (_, r) = ask(&app, &dup, json!({"amount_fen": 500, "reason": "dup"})).await;
    let no = r["out_refund_no"].as_str().unwrap().to_string();
    wait_refund(&app, &no, RefundStatus::Success).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = app.ctx().store.events(&dup).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "refund_succeeded")
            .count(),
        1
    );
    assert_eq!(app.order(&dup).await.refunded_fee, 500);

    // Forged: another key, another merchant, a refund we do not hold, another amount.
    let m = app.ctx().settings.merchant.clone();
    let r = app.ctx().store.refund(&no).await.unwrap().unwrap();
    let body = |key: &str, mch: &str, no: &str, fee: i64, status: &str| {
        let inner: Params = [
            ("out_refund_no", no.to_string()),
            ("out_trade_no", r.order_id.clone()),
            ("refund_id", r.refund_id.clone().unwrap()),
            ("transaction_id", r.transaction_id.clone()),
            ("total_fee", r.total_fee.to_string()),
            ("refund_fee", fee.to_string()),
            ("refund_status", status.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        refund_notify_xml(&m.appid, mch, key, &inner)
    };
    let key = m.api_key.expose();
    let before = format!(
        "{:?} {:?}",
        app.ctx().store.refunds_of(&dup).await.unwrap(),
        app.ctx().store.events(&dup).await.unwrap().len()
    );
    for forged in [
        body(
            "not-the-merchant-key-000000000000",
            &m.mch_id,
            &no,
            500,
            "REFUNDCLOSE",
        ),
        body(key, "1900000999", &no, 500, "REFUNDCLOSE"),
        body(key, &m.mch_id, "UNKNOWN-REFUND-01", 500, "REFUNDCLOSE"),
        body(key, &m.mch_id, &no, 499, "REFUNDCLOSE"),
        "<xml><return_code>SUCCESS</return_code><req_info>bm90IGEgYmxvY2s=</req_info></xml>"
            .to_string(),
    ] {
        let (status, reply) = app.post_xml("/wxpay/refund-notify", forged).await;
        assert_eq!(status, 400, "{reply}");
        assert!(reply.contains("FAIL"), "{reply}");
    }
    let after = format!(
        "{:?} {:?}",
        app.ctx().store.refunds_of(&dup).await.unwrap(),
        app.ctx().store.events(&dup).await.unwrap().len()
    );
    assert_eq!(before, after, "forged notifies changed nothing");
}

#[tokio::test]
async fn a_forged_success_for_a_refund_in_progress_changes_nothing() {
    let app = app().await;
    let sb = app.ctx().sandbox.clone().unwrap();
    let (_, id) = paid_order(&app, &[("NB-GRID", 1)]).await;
    // WeChat keeps it PROCESSING: the money has not gone back.
    sb.set_faults(
        Some(&id),
        Faults::parse("refund_outcome=processing").unwrap(),
    );
    let (_, r) = ask(
        &app,
        &id,
        json!({"amount_fen": 500, "reason": "in progress"}),
    )
    .await;
    let no = r["out_refund_no"].as_str().unwrap().to_string();
    let held = wait_refund(&app, &no, RefundStatus::Processing).await;
    let m = app.ctx().settings.merchant.clone();
    for key in [
        "not-the-merchant-key-000000000000",
        "192006250b4c09247ec02edce69f6a2d",
    ] {
        let inner: Params = [
            ("out_refund_no", no.clone()),
            ("out_trade_no", id.clone()),
            ("refund_id", held.refund_id.clone().unwrap()),
            ("transaction_id", held.transaction_id.clone()),
            ("total_fee", held.total_fee.to_string()),
            ("refund_fee", "500".to_string()),
            ("refund_status", "SUCCESS".to_string()),
            ("success_time", "2026-12-01 12:00:00".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (status, reply) = app
            .post_xml(
                "/wxpay/refund-notify",
                refund_notify_xml(&m.appid, &m.mch_id, key, &inner),
            )
            .await;
        assert_eq!(status, 400, "{reply}");
    }
    let after = app.ctx().store.refund(&no).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        RefundStatus::Processing,
        "a forged SUCCESS is not money returned"
    );
    assert_eq!(app.order(&id).await.refunded_fee, 0);
}
