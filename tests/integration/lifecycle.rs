//! The whole order lifecycle with the sandbox: lost notifies, deadlines, cancels, late payments
//! and restarts in the middle of a close.

use std::time::{Duration, Instant};

use scanpay::app::types::{FailureReason, OrderStatus};
use scanpay::server::domain as state;
use scanpay::server::sandbox::faults::Faults;
use scanpay::server::support::clock::now_ms;

use crate::common::{spawn_app, spawn_app_on, TestApp};

/// Short deadlines and floors so the lifecycle runs in seconds.
const FAST: &[(&str, &str)] = &[
    ("SCANPAY_ORDER_TTL", "3s"),
    ("SCANPAY_SWEEP_INTERVAL", "200ms"),
    ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s"),
    ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s"),
    ("SCANPAY_WXPAY_TIMEOUT", "500ms"),
];

fn fast<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FAST.iter().chain(extra).copied().collect()
}

async fn events(app: &TestApp, id: &str) -> Vec<(String, String)> {
    app.ctx()
        .store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.cause))
        .collect()
}

async fn wait_status(app: &TestApp, id: &str, s: OrderStatus, within: Duration) -> state::OrderRow {
    let start = Instant::now();
    loop {
        let o = app.order(id).await;
        if o.status == s {
            return o;
        }
        assert!(
            start.elapsed() < within,
            "{id} never reached {s:?}: {o:?} {:?}",
            events(app, id).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_lost_notify_is_made_harmless_by_the_sweep() {
    let app = spawn_app(&fast(&[
        ("SCANPAY_ORDER_TTL", "30s"),
        ("SCANPAY_SANDBOX_FAULTS", "notify=drop"),
    ]))
    .await;
    let id = app.shopper().await.place_ok(&[("TEA-OOLONG", 1)]).await;
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.pay_code(&app.order(&id).await.code_url.unwrap())
        .unwrap();
    let o = wait_status(&app, &id, OrderStatus::Paid, Duration::from_secs(5)).await;
    assert!(o.transaction_id.is_some());
    assert!(events(&app, &id)
        .await
        .contains(&("paid".into(), "sweep".into())));
    assert_eq!(
        sb.order(&app.ctx().settings.merchant.mch_id, &id)
            .unwrap()
            .notify_attempts,
        0,
        "no notify was sent"
    );
}

#[tokio::test]
async fn an_unpaid_order_closes_at_its_deadline_and_stock_comes_back_exactly_once() {
    let app = spawn_app(FAST).await;
    let id = app.shopper().await.place_ok(&[("NB-GRID", 2)]).await;
    assert_eq!(app.stock("NB-GRID").await, 1);
    let deadline = app.order(&id).await.deadline_at;
    let o = wait_status(&app, &id, OrderStatus::Closed, Duration::from_secs(8)).await;
    let closed_at = app
        .ctx()
        .store
        .events(&id)
        .await
        .unwrap()
        .iter()
        .find(|e| e.kind == "closed")
        .unwrap()
        .at;

    // WeChat stops taking payment (time_expire) a little before our deadline; once it reports
    // CLOSED, closing is safe even if our own deadline is a moment away.
    let sb = app.ctx().sandbox.clone().unwrap();
    let expire = sb
        .order(&app.ctx().settings.merchant.mch_id, &id)
        .unwrap()
        .expire_ms
        .unwrap();
    assert!(
        closed_at >= expire,
        "never closed while WeChat could still take payment"
    );
    println!(
        "deadline → closed: {} ms (WeChat's time_expire → closed: {} ms)",
        closed_at - deadline,
        closed_at - expire
    );
    assert!(
        closed_at - deadline < 2000,
        "closed {} ms after the deadline",
        closed_at - deadline
    );
    assert_eq!(o.failure_reason, Some(FailureReason::Expired));
    assert_eq!(app.stock("NB-GRID").await, 3);
    // Every flow may run again, any number of times: stock stays restored once.
    for _ in 0..3 {
        scanpay::server::orders::sweep::pass(app.ctx())
            .await
            .unwrap();
        scanpay::server::orders::timeout::tick(app.ctx())
            .await
            .unwrap();
        scanpay::server::orders::close::run(
            app.ctx(),
            &id,
            FailureReason::Expired,
            state::Cause::Operator,
        )
        .await
        .unwrap();
    }
    assert_eq!(app.stock("NB-GRID").await, 3);
    let kinds: Vec<String> = events(&app, &id).await.into_iter().map(|e| e.0).collect();
    // Closed by the timer's close flow, or straight away by the sweep when WeChat already
    // reported the order CLOSED (its time_expire comes first).
    assert!(
        kinds == ["created", "qr_issued", "closing", "closed"]
            || kinds == ["created", "qr_issued", "closed"],
        "{kinds:?}"
    );
    // WeChat agrees it is closed: nobody can pay it any more.
    assert!(sb
        .pay_code(&app.order(&id).await.code_url.unwrap())
        .is_err());
}

#[tokio::test]
async fn a_payment_just_before_the_deadline_wins_over_the_close() {
    // The notify arrives late, after the deadline has started the close flow.
    let app = spawn_app(&fast(&[("SCANPAY_SANDBOX_FAULTS", "notify=delay:2s")])).await;
    let id = app.shopper().await.place_ok(&[("MUG-CELADON", 1)]).await;
    let sb = app.ctx().sandbox.clone().unwrap();
    let mch = app.ctx().settings.merchant.mch_id.clone();
    let expire = sb
        .order(&mch, &id)
        .unwrap()
        .expire_ms
        .expect("time_expire sent");
    let deadline = app.order(&id).await.deadline_at;
    assert!(
        expire < deadline,
        "WeChat stops taking payment before our deadline"
    );
    // Pay at the last moment WeChat still accepts.
    let r = app
        .http
        .post(format!("{}/sandbox/admin/pay", app.base))
        .form(&[
            ("out_trade_no", id.as_str()),
            ("at_ms", &(expire - 300).to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let o = wait_status(&app, &id, OrderStatus::Paid, Duration::from_secs(8)).await;
    assert!(o.transaction_id.is_some());
    // Wait for the late notify itself to have been handled (not a fixed sleep: a slow run would
    // look before it arrived and pass without testing it).
    let handled = format!(
        "SELECT COUNT(*) FROM pay_inbox WHERE out_trade_no = '{id}' AND processed_at IS NOT NULL"
    );
    let start = Instant::now();
    while app.count(&handled).await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the late notify never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let o = app.order(&id).await;
    assert_eq!(o.status, OrderStatus::Paid, "never closed");
    let kinds: Vec<String> = events(&app, &id).await.into_iter().map(|e| e.0).collect();
    assert!(!kinds.contains(&"closed".to_string()), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "paid").count(), 1);
    assert_eq!(
        app.stock("MUG-CELADON").await,
        7,
        "a paid order keeps its stock"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM anomalies").await, 0);
    assert!(now_ms() > deadline);
}

#[tokio::test]
async fn the_shopper_cancels_and_cannot_cancel_a_paid_order() {
    let app = spawn_app(&fast(&[("SCANPAY_ORDER_TTL", "60s")])).await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("BUN-RED", 4)]).await;
    assert_eq!(app.stock("BUN-RED").await, 36);
    let (status, body) = shopper.call("cancel_order", &[("id", &id)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["status"] == "Closing" || body["status"] == "Closed",
        "{body}"
    );
    // Within WeChat's close floor the flow waits, then finishes by itself.
    let o = wait_status(&app, &id, OrderStatus::Closed, Duration::from_secs(5)).await;
    assert_eq!(o.failure_reason, Some(FailureReason::Cancelled));
    assert_eq!(app.stock("BUN-RED").await, 40);
    let (_, view) = shopper.call("order", &[("id", &id)]).await;
    assert_eq!(view["failure_reason"], "Cancelled");

    let paid = shopper.place_ok(&[("BUN-RED", 1)]).await;
    app.ctx()
        .sandbox
        .clone()
        .unwrap()
        .pay_code(&app.order(&paid).await.code_url.unwrap())
        .unwrap();
    wait_status(&app, &paid, OrderStatus::Paid, Duration::from_secs(5)).await;
    let (status, body) = shopper.call("cancel_order", &[("id", &paid)]).await;
    assert_eq!(status, 409);
    assert!(
        body["BadRequest"]
            .as_str()
            .unwrap()
            .contains("already been paid"),
        "{body}"
    );
    assert_eq!(app.order(&paid).await.status, OrderStatus::Paid);
    // And nobody else can cancel an order.
    let (status, _) = app
        .shopper()
        .await
        .call("cancel_order", &[("id", &id)])
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_close_interrupted_by_a_crash_is_finished_after_restart() {
    // WeChat lives in its own process here, so it survives our crash.
    let wechat = spawn_app(&[("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s")]).await;
    let sb = wechat.ctx().sandbox.clone().unwrap();
    sb.set_faults(None, Faults::parse("closeorder=timeout").unwrap());
    let base = format!("{}/sandbox/", wechat.base);
    let mut config = fast(&[("SCANPAY_ORDER_TTL", "60s")]);
    config.push(("SCANPAY_WXPAY_BASE_URL", &base));

    let app = spawn_app(&config).await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("PIN-PANDA", 5)]).await;
    // The shopper cancels; once the close floor passes, closeorder takes effect at WeChat but
    // the answer is lost.
    let (status, body) = shopper.call("cancel_order", &[("id", &id)]).await;
    assert_eq!(status, 200, "{body}");
    wait_status(&app, &id, OrderStatus::Closing, Duration::from_secs(6)).await;
    let start = Instant::now();
    while !events(&app, &id)
        .await
        .iter()
        .any(|e| e.0 == "close_uncertain")
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "closeorder attempted"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        app.stock("PIN-PANDA").await,
        45,
        "no stock back on uncertainty"
    );
    // Crash, and the process started again (on the same queues and keys).
    sb.clear_faults();
    let app = crate::common::restart(app, &config).await;
    let o = wait_status(&app, &id, OrderStatus::Closed, Duration::from_secs(5)).await;
    assert_eq!(o.failure_reason, Some(FailureReason::Cancelled));
    assert_eq!(app.stock("PIN-PANDA").await, 50);
    let kinds: Vec<String> = events(&app, &id).await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "closed").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn concurrent_duplicate_notifies_and_systemerrors_from_the_sandbox_knobs() {
    let app = spawn_app(&fast(&[("SCANPAY_ORDER_TTL", "60s")])).await;
    let admin = format!("{}/sandbox/admin/faults", app.base);
    // A bad spec is refused with a message and changes nothing.
    let r = app
        .http
        .post(&admin)
        .form(&[("spec", "notify=explode")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("notify fault"));

    let shopper = app.shopper().await;
    let dup = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    let r = app
        .http
        .post(&admin)
        .form(&[
            ("spec", "notify=concurrent:5"),
            ("out_trade_no", dup.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.pay_code(&app.order(&dup).await.code_url.unwrap())
        .unwrap();
    wait_status(&app, &dup, OrderStatus::Paid, Duration::from_secs(5)).await;
    let mch = app.ctx().settings.merchant.mch_id.clone();
    let start = Instant::now();
    while sb.order(&mch, &dup).unwrap().notify_attempts < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "five notifies delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds: Vec<String> = events(&app, &dup).await.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "paid").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM pay_inbox").await, 1);

    // closeorder answers SYSTEMERROR: the cancel stays in `closing`, stock held, until it clears.
    let cancel = shopper.place_ok(&[("TEA-OOLONG", 2)]).await;
    app.http
        .post(&admin)
        .form(&[
            ("spec", "closeorder=systemerror"),
            ("out_trade_no", cancel.as_str()),
        ])
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the close floor
    let (status, body) = shopper.call("cancel_order", &[("id", &cancel)]).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("Closing")),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await; // several sweep passes, all refused
    assert_eq!(app.order(&cancel).await.status, OrderStatus::Closing);
    assert_eq!(app.stock("TEA-OOLONG").await, 17);
    assert!(events(&app, &cancel)
        .await
        .iter()
        .any(|e| e.0 == "close_uncertain"));
    app.http.delete(&admin).send().await.unwrap();
    wait_status(&app, &cancel, OrderStatus::Closed, Duration::from_secs(5)).await;
    assert_eq!(app.stock("TEA-OOLONG").await, 19);
}

#[tokio::test]
async fn two_processes_sweeping_one_database_pay_each_order_once() {
    // Notifies are lost; two scanpay instances share the store and both sweep.
    let a = spawn_app(&fast(&[
        ("SCANPAY_ORDER_TTL", "60s"),
        ("SCANPAY_SANDBOX_FAULTS", "notify=drop"),
    ]))
    .await;
    let base = format!("{}/sandbox/", a.base);
    let url = a.ctx().settings.database_url.clone();
    let mut b_cfg: Vec<(&str, &str)> = fast(&[
        ("SCANPAY_ORDER_TTL", "60s"),
        ("SCANPAY_WXPAY_BASE_URL", &base),
    ]);
    // One deployment: the same queues and keys as well (when the run uses them).
    let s = &a.ctx().settings;
    if let Some(amqp) = &s.amqp {
        b_cfg.push(("SCANPAY_AMQP_PREFIX", &amqp.prefix));
    }
    if let Some((_, prefix)) = &s.redis {
        b_cfg.push(("SCANPAY_REDIS_PREFIX", prefix));
    }
    let b = spawn_app_on(None, &url, &b_cfg).await;
    let shopper = a.shopper().await;
    let sb = a.ctx().sandbox.clone().unwrap();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let id = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
        sb.pay_code(&a.order(&id).await.code_url.unwrap()).unwrap();
        ids.push(id);
    }
    for id in &ids {
        wait_status(&a, id, OrderStatus::Paid, Duration::from_secs(8)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut causes = std::collections::BTreeSet::new();
    for id in &ids {
        let paid: Vec<_> = events(&a, id)
            .await
            .into_iter()
            .filter(|e| e.0 == "paid")
            .collect();
        assert_eq!(paid.len(), 1, "{id} paid once");
        causes.insert(paid[0].1.clone());
    }
    assert_eq!(causes, ["sweep".to_string()].into());
    assert_eq!(a.count("SELECT COUNT(*) FROM anomalies").await, 0);
    drop(b);
}

#[tokio::test]
async fn a_qr_code_that_could_not_be_created_at_first_is_created_by_the_sweep() {
    let app = spawn_app(&fast(&[
        ("SCANPAY_ORDER_TTL", "60s"),
        ("SCANPAY_SANDBOX_FAULTS", "unifiedorder=systemerror"),
    ]))
    .await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    let o = app.order(&id).await;
    assert_eq!(
        (o.status, o.code_url.is_none()),
        (OrderStatus::Pending, true),
        "SYSTEMERROR is uncertain: keep waiting"
    );
    let (_, s) = shopper.call("order_status", &[("id", &id)]).await;
    assert_eq!(s["qr_ready"], false);
    app.http
        .delete(format!("{}/sandbox/admin/faults", app.base))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    while app.order(&id).await.code_url.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the sweep asks WeChat again"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, s) = shopper.call("order_status", &[("id", &id)]).await;
    assert_eq!(s["qr_ready"], true);
    assert_eq!(app.stock("TEA-OOLONG").await, 19);
}

#[tokio::test]
async fn a_payment_reported_for_a_closed_order_is_flagged_for_an_operator_not_applied() {
    let token = "ops-token-for-tests-0123";
    let app = spawn_app(&fast(&[("SCANPAY_OPS_TOKEN", token)])).await;
    let id = app.shopper().await.place_ok(&[("NB-GRID", 1)]).await;
    let o = wait_status(&app, &id, OrderStatus::Closed, Duration::from_secs(8)).await;
    // WeChat (correctly signed) says it was paid after all: never flip `closed` back silently.
    let m = app.ctx().settings.merchant.clone();
    let txn = "4200000001202611270000000099";
    let body = crate::notify::signed(&m, crate::notify::notify_params(&m, &id, o.total_fee, txn));
    let (status, reply) = app.post_xml("/wxpay/notify", body).await;
    assert_eq!(
        (status, reply.as_str()),
        (200, scanpay::server::wxpay::notify::REPLY_SUCCESS)
    );
    let start = Instant::now();
    while app.count("SELECT COUNT(*) FROM anomalies").await == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "anomaly recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.order(&id).await.status, OrderStatus::Closed);
    assert_eq!(app.stock("NB-GRID").await, 3, "stock stays restored");
    let r = app
        .http
        .get(format!("{}/ops/anomalies", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(list[0]["kind"], "paid_after_close");
    let detail = list[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(txn) && detail.contains(&format!("total_fee={}", o.total_fee)),
        "enough to refund: {detail}"
    );
}
