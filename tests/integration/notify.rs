//! POST /wxpay/notify: verify, hand off, apply once.

use scanpay::app::types::OrderStatus;
use scanpay::server::wxpay::notify::REPLY_SUCCESS;
use scanpay::server::wxpay::xml::{self, Params};
use scanpay::server::wxpay::{sign, Merchant};

use crate::common::{spawn_app, TestApp};

pub(crate) fn notify_params(m: &Merchant, order_id: &str, total_fee: i64, txn: &str) -> Params {
    [
        ("return_code", "SUCCESS"),
        ("result_code", "SUCCESS"),
        ("appid", m.appid.as_str()),
        ("mch_id", m.mch_id.as_str()),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
        ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
        ("trade_type", "NATIVE"),
        ("bank_type", "CMC"),
        ("total_fee", &total_fee.to_string()),
        ("cash_fee", &total_fee.to_string()),
        ("transaction_id", txn),
        ("out_trade_no", order_id),
        ("time_end", "20261127103105"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub(crate) fn signed(m: &Merchant, mut p: Params) -> String {
    let s = sign::sign(&p, m.api_key.expose(), m.sign_type);
    p.insert("sign".into(), s);
    xml::to_xml(&p)
}

async fn pending_order(app: &TestApp) -> (String, i64) {
    let id = app.shopper().await.place_ok(&[("TEA-OOLONG", 1)]).await;
    let o = app.order(&id).await;
    assert_eq!(o.status, OrderStatus::Pending);
    (id, o.total_fee)
}

#[tokio::test]
async fn verified_notify_pays_the_order_with_utc_paid_time() {
    let app = spawn_app(&[]).await;
    let (id, fee) = pending_order(&app).await;
    let m = app.ctx().settings.merchant.clone();
    let (status, body) = app
        .post_xml(
            "/wxpay/notify",
            signed(
                &m,
                notify_params(&m, &id, fee, "4200000001202611270000000001"),
            ),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, REPLY_SUCCESS));
    let o = app
        .wait_for(&id, "paid", |o| o.status == OrderStatus::Paid)
        .await;
    assert_eq!(
        o.transaction_id.as_deref(),
        Some("4200000001202611270000000001")
    );
    // 2026-11-27 10:31:05 Beijing = 02:31:05 UTC
    assert_eq!(o.paid_at, Some(1_795_746_665_000));
}

#[tokio::test]
async fn duplicate_and_concurrent_notifies_change_nothing_the_second_time() {
    let app = spawn_app(&[]).await;
    let (id, fee) = pending_order(&app).await;
    let m = app.ctx().settings.merchant.clone();
    let body = signed(
        &m,
        notify_params(&m, &id, fee, "4200000001202611270000000002"),
    );
    let replies = futures_join(&app, &body, 4).await;
    assert!(
        replies.iter().all(|(s, b)| *s == 200 && b == REPLY_SUCCESS),
        "{replies:?}"
    );
    app.wait_for(&id, "paid", |o| o.status == OrderStatus::Paid)
        .await;
    let again = app.post_xml("/wxpay/notify", body).await;
    assert_eq!(again.1, REPLY_SUCCESS);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let paid_events = app
        .count(&format!(
            "SELECT COUNT(*) FROM order_events WHERE order_id = '{id}' AND kind = 'paid'"
        ))
        .await;
    assert_eq!(paid_events, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_inbox").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM anomalies").await, 0);
}

async fn futures_join(app: &TestApp, body: &str, n: usize) -> Vec<(u16, String)> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let (http, url, body) = (
            app.http.clone(),
            format!("{}/wxpay/notify", app.base),
            body.to_string(),
        );
        handles.push(tokio::spawn(async move {
            let r = http.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn assert_refused(app: &TestApp, id: &str, body: String, why: &str) {
    let (status, reply) = app.post_xml("/wxpay/notify", body).await;
    assert_eq!(status, 400, "{why}: {reply}");
    let p = xml::parse(reply.as_bytes()).unwrap();
    assert_eq!(p["return_code"], "FAIL", "{why}");
    assert!(
        !p["return_msg"].is_empty(),
        "{why}: FAIL says what was wrong"
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        app.order(id).await.status,
        OrderStatus::Pending,
        "{why}: order unchanged"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM pay_inbox").await,
        0,
        "{why}: nothing handed off"
    );
}

#[tokio::test]
async fn unverified_notifies_get_fail_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let (id, fee) = pending_order(&app).await;
    let m = app.ctx().settings.merchant.clone();

    let mut forged = notify_params(&m, &id, fee, "4200000001202611270000000003");
    forged.insert("sign".into(), "0123456789ABCDEF0123456789ABCDEF".into());
    assert_refused(&app, &id, xml::to_xml(&forged), "forged sign").await;

    assert_refused(
        &app,
        &id,
        xml::to_xml(&notify_params(&m, &id, fee, "4200000001202611270000000003")),
        "missing sign",
    )
    .await;

    let mut other_key = m.clone();
    other_key.api_key = scanpay::server::wxpay::ApiKey::new("another-merchant-key-0000000000000");
    assert_refused(
        &app,
        &id,
        signed(
            &other_key,
            notify_params(&m, &id, fee, "4200000001202611270000000003"),
        ),
        "wrong key",
    )
    .await;

    let mut wrong_appid = notify_params(&m, &id, fee, "4200000001202611270000000003");
    wrong_appid.insert("appid".into(), "wx0000000000000000".into());
    assert_refused(&app, &id, signed(&m, wrong_appid), "wrong appid").await;

    let xxe = format!(
        r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>{}"#,
        signed(
            &m,
            notify_params(&m, &id, fee, "4200000001202611270000000003")
        )
    );
    assert_refused(&app, &id, xxe, "DOCTYPE").await;

    let big = format!("<xml><a>{}</a></xml>", "x".repeat(40_000));
    let (status, _) = app.post_xml("/wxpay/notify", big).await;
    assert_eq!(status, 413, "oversized body");
}

#[tokio::test]
async fn wrong_amount_is_an_anomaly_not_a_payment() {
    let app = spawn_app(&[("SCANPAY_OPS_TOKEN", "ops-token-for-tests-0123")]).await;
    let (id, fee) = pending_order(&app).await;
    let m = app.ctx().settings.merchant.clone();
    // Correctly signed (WeChat really says this), but not what we charged: never mark it paid.
    let (status, reply) = app
        .post_xml(
            "/wxpay/notify",
            signed(
                &m,
                notify_params(&m, &id, fee - 1, "4200000001202611270000000004"),
            ),
        )
        .await;
    assert_eq!((status, reply.as_str()), (200, REPLY_SUCCESS));
    let start = std::time::Instant::now();
    while app.count("SELECT COUNT(*) FROM anomalies").await == 0 {
        assert!(start.elapsed().as_secs() < 5, "anomaly recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.order(&id).await.status, OrderStatus::Pending);
    let kinds = app.ctx().store.anomaly_kinds(&id).await.unwrap();
    assert_eq!(kinds, vec!["amount_mismatch"]);

    // An operator sees it, with the evidence needed to refund; nobody else does.
    let url = format!("{}/ops/anomalies", app.base);
    let r = app
        .http
        .get(&url)
        .bearer_auth("ops-token-for-tests-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(list[0]["kind"], "amount_mismatch");
    assert_eq!(list[0]["order_id"], id.as_str());
    assert!(
        list[0]["parked_at_ms"].is_i64(),
        "parked for the operator: {list}"
    );
    assert!(list[0]["detail"]
        .as_str()
        .unwrap()
        .contains("4200000001202611270000000004"));
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        app.http
            .get(&url)
            .bearer_auth("wrong-token-0000000000")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let timeline = app
        .http
        .get(format!("{}/ops/orders/{id}", app.base))
        .bearer_auth("ops-token-for-tests-0123")
        .send()
        .await
        .unwrap();
    let timeline: serde_json::Value =
        serde_json::from_str(&timeline.text().await.unwrap()).unwrap();
    assert_eq!(timeline["status"], "pending");
    assert_eq!(timeline["parked"], true);
    assert_eq!(
        timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![
            "created",
            "qr_issued",
            "notify_received",
            "anomaly",
            "parked"
        ]
    );
}

#[tokio::test]
async fn the_sandbox_pays_and_notifies_end_to_end() {
    let app = spawn_app(&[]).await;
    let (id, fee) = pending_order(&app).await;
    let code_url = app.order(&id).await.code_url.expect("QR issued");
    let sb = app.ctx().sandbox.clone().unwrap();
    let paid = sb.pay_code(&code_url).unwrap();
    assert_eq!(paid.total_fee(), fee);
    let o = app
        .wait_for(&id, "paid via sandbox notify", |o| {
            o.status == OrderStatus::Paid
        })
        .await;
    let mch = &app.ctx().settings.merchant.mch_id;
    let snapshot = sb.order(mch, &id).unwrap();
    assert!(snapshot.notify_acked);
    assert_eq!(snapshot.notify_attempts, 1);
    match snapshot.state {
        scanpay::server::sandbox::TradeState::Success { transaction_id, .. } => {
            assert_eq!(o.transaction_id.as_deref(), Some(transaction_id.as_str()))
        }
        other => panic!("{other:?}"),
    }
    assert!(sb.pay_code(&code_url).is_err(), "a code pays once");
}
