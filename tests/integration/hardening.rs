//! Lifecycle hardening: lost unifiedorder answers, refusals, failing items, quick answers, limits,
//! cross-site requests, headers, health and secrets.

use crate::common::sql;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanpay::app::types::{CartLine, FailureReason, OrderStatus};
use scanpay::server::domain as state;
use scanpay::server::orders::{close, place, timeout};
use scanpay::server::support::clock::format_beijing;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::{
    BoxFuture, ErrCode, Gateway, OrderQueryResponse, TradeState, UnifiedOrderRequest,
    UnifiedOrderResponse, WxPayClient, WxPayError,
};
use scanpay::server::Ctx;

use crate::common::spawn_app;
use crate::notify::{notify_params, signed};
use scanpay::server::store::testing::TestDb;

const FAST: &[(&str, &str)] = &[
    ("SCANPAY_SWEEP_INTERVAL", "200ms"),
    ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s"),
    ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s"),
    ("SCANPAY_WXPAY_TIMEOUT", "300ms"),
];

fn fast<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    FAST.iter().chain(extra).copied().collect()
}

async fn until(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_unifiedorder_whose_answer_was_lost_gets_its_qr_within_one_sweep_interval() {
    let app = spawn_app(&fast(&[
        ("SCANPAY_ORDER_TTL", "60s"),
        // Applied at WeChat, answer lost (held back longer than our 300 ms limit).
        ("SCANPAY_SANDBOX_FAULTS", "unifiedorder=timeout"),
    ]))
    .await;
    let id = app.shopper().await.place_ok(&[("TEA-OOLONG", 1)]).await;
    let o = app.order(&id).await;
    assert_eq!(
        (o.status, o.code_url.as_deref()),
        (OrderStatus::Pending, None)
    );
    let sb = app.ctx().sandbox.clone().unwrap();
    let mch = app.ctx().settings.merchant.mch_id.clone();
    let at_wechat = sb.order(&mch, &id).expect("WeChat holds the order");
    // WeChat answers again; the sweep asks within one interval (200 ms) of the failed attempt.
    sb.clear_faults();
    let cleared = Instant::now();
    until("QR code", Duration::from_secs(3), async || {
        app.order(&id).await.code_url.is_some()
    })
    .await;
    let took = cleared.elapsed();
    assert!(took < Duration::from_millis(900), "QR after {took:?}");
    assert_eq!(
        app.order(&id).await.code_url.as_deref(),
        Some(at_wechat.code_url.as_str()),
        "the identical request got WeChat's same code"
    );
}

// ---- a scripted WeChat for the refusal rules

#[derive(Default)]
struct Refusing {
    unified: Mutex<Option<ErrCode>>,
    query: Mutex<Option<Result<TradeState, ErrCode>>>,
    closed: Mutex<Vec<String>>,
    /// orderquery does not show a close yet (WeChat's lag).
    lagging: std::sync::atomic::AtomicBool,
}

fn biz(code: ErrCode) -> WxPayError {
    WxPayError::Business {
        code,
        description: String::new(),
    }
}

impl Gateway for Refusing {
    fn download_bill<'a>(
        &'a self,
        _bill_date: &'a str,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::bill::BillAnswer, WxPayError>> {
        // No bills in this script: an uncertain answer.
        Box::pin(async { Err(WxPayError::Transport("bills are not scripted here".into())) })
    }
    fn refund<'a>(
        &'a self,
        _req: &'a scanpay::server::wxpay::RefundRequest,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::RefundAccepted, WxPayError>> {
        // No refunds in this script: an uncertain answer, which changes nothing.
        Box::pin(async {
            Err(WxPayError::Transport(
                "refunds are not scripted here".into(),
            ))
        })
    }
    fn refund_query<'a>(
        &'a self,
        _out_refund_no: &'a str,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::RefundRecord, WxPayError>> {
        Box::pin(async {
            Err(WxPayError::Transport(
                "refunds are not scripted here".into(),
            ))
        })
    }
    fn unified_order<'a>(
        &'a self,
        req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>> {
        Box::pin(async move {
            match self.unified.lock().unwrap().clone() {
                Some(code) => Err(biz(code)),
                None => Ok(UnifiedOrderResponse {
                    prepay_id: "wx1".into(),
                    code_url: format!("weixin://wxpay/bizpayurl?pr={}", req.out_trade_no),
                }),
            }
        })
    }
    fn order_query<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>> {
        Box::pin(async move {
            let closed = self.closed.lock().unwrap().contains(&id.to_string())
                && !self.lagging.load(std::sync::atomic::Ordering::SeqCst);
            let state = match self.query.lock().unwrap().clone().expect("scripted") {
                Ok(_) if closed => TradeState::Closed,
                Ok(s) => s,
                Err(code) => return Err(biz(code)),
            };
            Ok(OrderQueryResponse {
                transaction_id: (state == TradeState::Success)
                    .then(|| "4200000000000000000000000001".into()),
                time_end: Some(format_beijing(now_ms())),
                total_fee: Some(6800),
                trade_state: state,
                out_trade_no: id.into(),
                trade_state_desc: None,
            })
        })
    }
    fn close_order<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), WxPayError>> {
        Box::pin(async move {
            self.closed.lock().unwrap().push(id.to_string());
            Ok(())
        })
    }
}

async fn scripted_ctx(wechat: Arc<Refusing>) -> (TestDb, Arc<Ctx>, sqlx::AnyPool) {
    scripted_ctx_with(wechat, "1ms").await
}

/// A context on a database of the engine under test, with WeChat scripted.
async fn scripted_ctx_with(
    wechat: Arc<Refusing>,
    close_floor: &str,
) -> (TestDb, Arc<Ctx>, sqlx::AnyPool) {
    let dir = TestDb::new(&scanpay::server::store::testing::engine_under_test()).await;
    let url = dir.url.clone();
    let env = [
        ("SCANPAY_DATABASE_URL", url.as_str()),
        ("SCANPAY_SANDBOX", "false"),
        ("SCANPAY_WXPAY_CLOSE_FLOOR", close_floor),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = scanpay::server::config::Settings::from_sources(
        include_str!("../../Leptos.toml"),
        "Leptos.toml",
        &env,
        "127.0.0.1:3999".parse().unwrap(),
    )
    .unwrap();
    let store = scanpay::server::store::connect(&url, &Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let db = crate::common::raw_db(&url).await;
    (dir, Arc::new(Ctx::new(settings, store, wechat, None)), db)
}

async fn stock(db: &sqlx::AnyPool, sku: &str) -> i64 {
    sqlx::query_scalar(&sql("SELECT stock FROM products WHERE sku = ?"))
        .bind(sku)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refused_unifiedorder_is_settled_by_what_wechat_holds() {
    let line = [CartLine {
        sku: "TEA-OOLONG".into(),
        qty: 1,
    }];
    // (unifiedorder refusal, orderquery answer) → (final status, failure reason)
    let cases = [
        (
            ErrCode::OrderPaid,
            Ok(TradeState::Success),
            OrderStatus::Paid,
            None,
        ),
        (
            ErrCode::OutTradeNoUsed,
            Ok(TradeState::Success),
            OrderStatus::Paid,
            None,
        ),
        (
            ErrCode::OutTradeNoUsed,
            Ok(TradeState::NotPay),
            OrderStatus::Closed,
            Some(FailureReason::PaymentNotCreated),
        ),
        (
            ErrCode::OrderClosed,
            Ok(TradeState::Closed),
            OrderStatus::Closed,
            Some(FailureReason::Expired),
        ),
        (
            ErrCode::InvalidRequest,
            Err(ErrCode::OrderNotExist),
            OrderStatus::Failed,
            Some(FailureReason::PaymentNotCreated),
        ),
    ];
    for (refusal, query, status, reason) in cases {
        let wechat = Arc::new(Refusing::default());
        *wechat.unified.lock().unwrap() = Some(refusal.clone());
        *wechat.query.lock().unwrap() = Some(query.clone());
        let (_dir, ctx, db) = scripted_ctx(wechat.clone()).await;
        let id = place::place_order(&ctx, "s", &line).await.unwrap();
        let o = ctx.store.load(&id).await.unwrap().unwrap();
        let case = format!("{} then {query:?}", refusal.as_str());
        assert_eq!((o.status, o.failure_reason), (status, reason), "{case}");
        let held = if status == OrderStatus::Paid { 19 } else { 20 };
        assert_eq!(stock(&db, "TEA-OOLONG").await, held, "{case}: stock");
    }
    // WeChat gives no answer to the query: nothing is concluded, the order waits for the sweep.
    let wechat = Arc::new(Refusing::default());
    *wechat.unified.lock().unwrap() = Some(ErrCode::OutTradeNoUsed);
    *wechat.query.lock().unwrap() = Some(Err(ErrCode::SystemError));
    let (_dir, ctx, db) = scripted_ctx(wechat).await;
    let id = place::place_order(&ctx, "s", &line).await.unwrap();
    let o = ctx.store.load(&id).await.unwrap().unwrap();
    assert_eq!(o.status, OrderStatus::Pending);
    assert_eq!(stock(&db, "TEA-OOLONG").await, 19);
}

/// One order of one tea placed with a scripted WeChat whose orderquery answers `query`.
async fn placed_with(
    query: Result<TradeState, ErrCode>,
) -> (TestDb, Arc<Ctx>, Arc<Refusing>, String, sqlx::AnyPool) {
    let wechat = Arc::new(Refusing::default());
    *wechat.query.lock().unwrap() = Some(query);
    let (dir, ctx, db) = scripted_ctx(wechat.clone()).await;
    let line = [CartLine {
        sku: "TEA-OOLONG".into(),
        qty: 1,
    }];
    let id = place::place_order(&ctx, "s", &line).await.unwrap();
    (dir, ctx, wechat, id, db)
}

#[tokio::test]
async fn closeorder_order_not_exist_never_closes_an_order_with_a_qr() {
    let (_dir, ctx, _, id, db) = placed_with(Err(ErrCode::OrderNotExist)).await;
    assert!(ctx
        .store
        .load(&id)
        .await
        .unwrap()
        .unwrap()
        .code_url
        .is_some());
    let outcome = close::run(&ctx, &id, FailureReason::Cancelled, state::Cause::Shopper)
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        scanpay::server::orders::close::CloseOutcome::RetryAt(_)
    ));
    let o = ctx.store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        o.status,
        OrderStatus::Closing,
        "someone may still hold the QR code"
    );
    assert_eq!(stock(&db, "TEA-OOLONG").await, 19);
}

#[tokio::test]
async fn a_closing_order_inside_the_floor_is_checked_again_at_the_floor() {
    let wechat = Arc::new(Refusing::default());
    *wechat.query.lock().unwrap() = Some(Ok(TradeState::NotPay));
    let (_dir, ctx, db) = scripted_ctx_with(wechat, "300s").await;
    let line = [CartLine {
        sku: "TEA-OOLONG".into(),
        qty: 1,
    }];
    let id = place::place_order(&ctx, "s", &line).await.unwrap();
    let o = ctx.store.load(&id).await.unwrap().unwrap();
    let outcome = close::run(&ctx, &id, FailureReason::Cancelled, state::Cause::Shopper)
        .await
        .unwrap();
    let floor_at = o.created_at + 300_000;
    assert_eq!(
        outcome,
        scanpay::server::orders::close::CloseOutcome::RetryAt(floor_at)
    );
    let next: i64 = sqlx::query_scalar(&sql("SELECT next_check_at FROM orders WHERE id = ?"))
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        next, floor_at,
        "not every interval: WeChat would refuse closeorder"
    );
}

#[tokio::test]
async fn the_close_flow_runs_once_per_deadline() {
    let (_dir, ctx, wechat, id, db) = placed_with(Ok(TradeState::NotPay)).await;
    wechat
        .lagging
        .store(true, std::sync::atomic::Ordering::SeqCst);
    sqlx::query(&sql("UPDATE orders SET deadline_at = ? WHERE id = ?"))
        .bind(now_ms() - 1)
        .bind(&id)
        .execute(&db)
        .await
        .unwrap();
    // The deadline's close flow: closeorder, then a query that does not show the close yet.
    timeout::tick(&ctx).await.unwrap();
    assert_eq!(wechat.closed.lock().unwrap().len(), 1);
    assert_eq!(
        ctx.store.load(&id).await.unwrap().unwrap().status,
        OrderStatus::Closing
    );
    // Neither the sweep nor the next tick starts it again before its next check is due.
    assert_eq!(scanpay::server::orders::sweep::pass(&ctx).await.unwrap(), 0);
    timeout::tick(&ctx).await.unwrap();
    assert_eq!(
        wechat.closed.lock().unwrap().len(),
        1,
        "closeorder called once"
    );
    // One sweep interval later the sweep resumes it, and WeChat now shows it closed.
    wechat
        .lagging
        .store(false, std::sync::atomic::Ordering::SeqCst);
    sqlx::query(&sql("UPDATE orders SET next_check_at = 0 WHERE id = ?"))
        .bind(&id)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(scanpay::server::orders::sweep::pass(&ctx).await.unwrap(), 1);
    assert_eq!(
        ctx.store.load(&id).await.unwrap().unwrap().status,
        OrderStatus::Closed
    );
}

/// Makes every write to one order fail, as a corrupt or locked row would.
/// Every update of order `id` fails from now on (a trigger in the engine under test).
async fn poison(db: &sqlx::AnyPool, id: &str) {
    let statements = match scanpay::server::store::testing::engine_under_test().as_str() {
        "sqlite" => vec![format!(
            "CREATE TRIGGER poison_{id} BEFORE UPDATE ON orders WHEN NEW.id = '{id}' \
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )],
        "postgres" => vec![
            format!(
                "CREATE FUNCTION poison_{id}() RETURNS trigger AS $$ BEGIN \
                 IF NEW.id = '{id}' THEN RAISE EXCEPTION 'poisoned row'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            format!(
                "CREATE TRIGGER poison_{id} BEFORE UPDATE ON orders FOR EACH ROW \
                 EXECUTE FUNCTION poison_{id}()"
            ),
        ],
        _ => vec![format!(
            "CREATE TRIGGER poison_{id} BEFORE UPDATE ON orders FOR EACH ROW BEGIN \
             IF NEW.id = '{id}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned row'; \
             END IF; END"
        )],
    };
    for sql in statements {
        sqlx::query(&sql).execute(db).await.unwrap();
    }
}

#[tokio::test]
async fn an_item_that_always_fails_is_backed_off_and_the_rest_flow() {
    // The embedded bus and the SQL scheduler (their backoff is what this checks), on every engine.
    let app = spawn_app(&fast(&[
        ("SCANPAY_ORDER_TTL", "60s"),
        ("SCANPAY_AMQP_URL", ""),
        ("SCANPAY_REDIS_URL", ""),
    ]))
    .await;
    let ctx = app.ctx().clone();
    let db = &app.db;
    let shopper = app.shopper().await;
    let bad = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    let good = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    poison(&app.db, &bad).await;
    let m = ctx.settings.merchant.clone();
    // The bad one's pay result arrives first and sorts first in the inbox.
    for (id, txn) in [
        (&bad, "4200000001202611270000000101"),
        (&good, "4200000001202611270000000102"),
    ] {
        let (status, _) = app
            .post_xml("/wxpay/notify", signed(&m, notify_params(&m, id, 101, txn)))
            .await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    until("the good order paid", Duration::from_secs(3), async || {
        app.order(&good).await.status == OrderStatus::Paid
    })
    .await;
    let (attempts, next, error): (i64, Option<i64>, Option<String>) = sqlx::query_as(&sql(
        "SELECT attempts, next_attempt_at, last_error FROM pay_inbox WHERE out_trade_no = ?",
    ))
    .bind(&bad)
    .fetch_one(db)
    .await
    .unwrap();
    assert!(attempts >= 1, "tried");
    assert!(next.unwrap() > now_ms(), "backed off");
    assert!(error.unwrap().contains("poisoned"));
    let inbox = scanpay::server::bus::inbox::InboxBus::new(ctx.store.clone());
    assert_eq!(
        inbox
            .drain(&scanpay::server::orders::consume::on_applied(ctx.clone()))
            .await
            .unwrap(),
        0,
        "nothing due now"
    );

    // The timeout scheduler: the bad order's deadline comes first, the good one still closes.
    let shopper = app.shopper().await;
    let bad = shopper.place_ok(&[("BUN-RED", 1)]).await;
    let good = shopper.place_ok(&[("BUN-RED", 2)]).await;
    for (id, ago) in [(&bad, 2000), (&good, 1000)] {
        sqlx::query(&sql("UPDATE orders SET deadline_at = ? WHERE id = ?"))
            .bind(now_ms() - ago)
            .bind(id)
            .execute(db)
            .await
            .unwrap();
    }
    poison(&app.db, &bad).await;
    timeout::tick(&ctx).await.unwrap();
    let g = app.order(&good).await;
    assert_ne!(
        g.status,
        OrderStatus::Pending,
        "the good order's close started"
    );
    assert_eq!(app.order(&bad).await.status, OrderStatus::Pending);
}

#[tokio::test]
async fn placing_and_cancelling_answer_within_two_seconds_while_wechat_is_slow() {
    let app = spawn_app(&fast(&[
        ("SCANPAY_ORDER_TTL", "60s"),
        ("SCANPAY_WXPAY_TIMEOUT", "10s"),
        (
            "SCANPAY_SANDBOX_FAULTS",
            "unifiedorder=latency:4s,closeorder=latency:4s,orderquery=latency:4s",
        ),
    ]))
    .await;
    let shopper = app.shopper().await;
    let start = Instant::now();
    let id = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "placed in {took:?}");
    assert!(
        app.order(&id).await.code_url.is_none(),
        "the QR comes later"
    );
    until("QR code", Duration::from_secs(6), async || {
        app.order(&id).await.code_url.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // past the 1 s close floor
    let start = Instant::now();
    let (status, body) = shopper.call("cancel_order", &[("id", &id)]).await;
    let took = start.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "Closing");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    until("closed", Duration::from_secs(12), async || {
        app.order(&id).await.status == OrderStatus::Closed
    })
    .await;
}

#[tokio::test]
async fn limits_answer_with_a_clear_message_and_change_nothing() {
    let app = spawn_app(&[
        ("SCANPAY_LIMIT_ITEM_QTY", "10"),
        ("SCANPAY_LIMIT_OPEN_ORDERS", "2"),
        ("SCANPAY_LIMIT_ORDERS_PER_MINUTE", "5"),
    ])
    .await;
    let shopper = app.shopper().await;
    let (status, body) = shopper.place(&[("PIN-PANDA", 11)]).await;
    assert_eq!(status, 400);
    assert!(
        body.to_string().contains("At most 10 of PIN-PANDA"),
        "{body}"
    );
    assert_eq!(app.stock("PIN-PANDA").await, 50);
    shopper.place_ok(&[("PIN-PANDA", 10)]).await;
    shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    let (status, body) = shopper.place(&[("PIN-PANDA", 1)]).await;
    assert_eq!(status, 429);
    assert!(body.to_string().contains("2 unpaid orders"), "{body}");
    assert_eq!(
        app.stock("PIN-PANDA").await,
        39,
        "nothing reserved for the refused order"
    );
    // Another session from the same address: the per-minute limit (5 attempts, refused ones
    // included) is reached.
    let other = app.shopper().await;
    let (status, _) = other.place(&[("PIN-PANDA", 1)]).await;
    assert_eq!(status, 200);
    let (status, body) = other.place(&[("PIN-PANDA", 1)]).await;
    assert_eq!(status, 429);
    assert!(body.to_string().contains("wait a minute"), "{body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
}

#[tokio::test]
async fn cross_site_server_function_calls_are_refused_and_pages_carry_security_headers() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let call = |origin: Option<(&'static str, String)>| {
        let mut r = app
            .http
            .post(format!("{}/api/order_status", app.base))
            .header("cookie", &shopper.cookie)
            .form(&[("id", "SP0000")]);
        if let Some((h, v)) = origin {
            r = r.header(h, v);
        }
        r.send()
    };
    let evil = call(Some(("origin", "https://evil.example".into())))
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let evil = call(Some(("referer", "https://evil.example/page".into())))
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let evil = call(Some(("origin", "null".into()))).await.unwrap();
    assert_eq!(evil.status(), 403, "an opaque origin is not this site");
    // Same site (as the browser names it), or a client that sends neither: served (404: no order).
    let same = call(Some(("origin", app.base.clone()))).await.unwrap();
    assert_eq!(same.status(), 404);
    let same = call(Some(("referer", format!("{}/checkout/x", app.base))))
        .await
        .unwrap();
    assert_eq!(same.status(), 404);
    assert_eq!(call(None).await.unwrap().status(), 404);

    let page = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    // Scripts only with this response's nonce: no 'unsafe-inline' for scripts, no development
    // socket, a new nonce per response, and the page's scripts carry it.
    let csp = csp.to_string();
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap()
        .to_string();
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("ws://"), "{csp}");
    let nonce = script_src
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in {csp}"))
        .to_string();
    let body = page.text().await.unwrap();
    assert!(
        body.contains(&format!("nonce=\"{nonce}\"")),
        "the page's scripts carry the nonce"
    );
    let again = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    let csp2 = again.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!csp2.contains(&nonce), "a new nonce per response");
}

#[tokio::test]
async fn health_reports_workers_and_database_without_internal_detail() {
    let app = spawn_app(&[]).await;
    let r = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["status"], "ok");
    for w in ["pay_results", "sweep", "timeouts", "reconcile"] {
        assert_eq!(v["workers"][w]["state"], "running", "{v}");
    }
    // A worker that crashes is restarted and reported.
    let runs = Arc::new(Mutex::new(0));
    let r2 = runs.clone();
    app.ctx().jobs.supervise("test_worker", move |stop| {
        let n = {
            let mut r = r2.lock().unwrap();
            *r += 1;
            *r
        };
        async move {
            if n == 1 {
                panic!("simulated bug");
            }
            stop.cancelled().await;
        }
    });
    until("restarted", Duration::from_secs(3), async || {
        *runs.lock().unwrap() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["workers"]["test_worker"]["restarts"], 1, "{v}");
    assert_eq!(v["workers"]["test_worker"]["last_panic"], "simulated bug");

    app.ctx().store.close_pool().await;
    let r = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    let engine = scanpay::server::store::testing::engine_under_test();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["dependencies"][engine.as_str()], "unavailable", "{text}");
    assert!(
        !text.to_lowercase().contains("pool"),
        "no internal error text: {text}"
    );
}

#[tokio::test]
async fn a_generated_session_secret_outlives_a_restart() {
    let no_secret = [("SCANPAY_SESSION_SECRET", "")];
    let app = spawn_app(&no_secret).await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    let app = crate::common::restart(app, &no_secret).await;
    let mut same = app.shopper().await;
    same.cookie = shopper.cookie.clone();
    let (status, view) = same.call("order", &[("id", &id)]).await;
    assert_eq!(status, 200, "the shopper still owns the order: {view}");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let app = spawn_app(&[
        ("SCANPAY_WXPAY_TIMEOUT", "5s"),
        ("SCANPAY_SANDBOX_FAULTS", "unifiedorder=latency:1s"),
    ])
    .await;
    let shopper = app.shopper().await;
    let in_flight = tokio::spawn(async move { shopper.place(&[("TEA-OOLONG", 1)]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stopped, (status, body)) =
        tokio::join!(app.running.shutdown(Duration::from_secs(5)), async {
            in_flight.await.unwrap()
        });
    assert_eq!(status, 200, "the request in flight was answered: {body}");
    assert!(stopped, "everything stopped within the grace period");
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn the_client_stops_reading_an_oversized_chunked_answer() {
    use axum::body::Body;
    // A "WeChat" that streams an endless answer with no Content-Length.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(0usize));
    let s = sent.clone();
    let app = axum::Router::new().route(
        "/pay/orderquery",
        axum::routing::post(move || {
            let s = s.clone();
            async move {
                let chunks = futures::stream::iter((0..100_000).map(move |_| {
                    *s.lock().unwrap() += 1024;
                    Ok::<_, std::io::Error>(vec![b'x'; 1024])
                }));
                Body::from_stream(chunks)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let app = spawn_app(&[]).await;
    let client = WxPayClient::new(
        &format!("http://{addr}/"),
        app.ctx().settings.merchant.clone(),
        Duration::from_secs(5),
    );
    let e = client.order_query("SP1").await.unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
    let streamed = *sent.lock().unwrap();
    assert!(
        streamed < 10 * 1024 * 1024,
        "stopped early, not after {streamed} bytes"
    );
}

#[tokio::test]
async fn the_sandbox_refuses_a_time_expire_under_its_minimum_like_wechat() {
    let app = spawn_app(&[("SCANPAY_SANDBOX_MIN_EXPIRE", "5m")]).await;
    let client = WxPayClient::new(
        &format!("{}/sandbox/", app.base),
        app.ctx().settings.merchant.clone(),
        Duration::from_secs(5),
    );
    let now = now_ms();
    let mut req = UnifiedOrderRequest {
        body: "tea".into(),
        out_trade_no: "SPMINEXPIRE0001".into(),
        total_fee: 1,
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: "http://127.0.0.1:9/wxpay/notify".into(),
        product_id: "P".into(),
        time_start: Some(format_beijing(now)),
        time_expire: Some(format_beijing(now + 4 * 60_000)),
        attach: None,
    };
    match client.unified_order(&req).await {
        Err(WxPayError::Business { code, description }) => {
            assert_eq!(code, ErrCode::InvalidRequest);
            assert!(description.contains("time_expire时间过短"), "{description}");
        }
        other => panic!("{other:?}"),
    }
    req.time_expire = Some(format_beijing(now + 6 * 60_000));
    client.unified_order(&req).await.unwrap();
}

/// Cancelling an order that is already closing starts nothing: however often and however
/// concurrently a shopper cancels, WeChat's closeorder is called once (it used to be called
/// again for every cancel, each in a detached task).
#[tokio::test]
async fn cancelling_again_never_calls_wechat_again() {
    let (_dir, ctx, wechat, id, _db) = placed_with(Ok(TradeState::NotPay)).await;
    // The query after closeorder does not show the close yet: the order stays closing.
    wechat
        .lagging
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let order = ctx.store.load(&id).await.unwrap().unwrap();
    let first = scanpay::server::orders::cancel::cancel(&ctx, order)
        .await
        .unwrap();
    assert_eq!(first.status, OrderStatus::Closing);
    assert_eq!(wechat.closed.lock().unwrap().len(), 1);
    let again = futures::future::join_all((0..50).map(|_| {
        let ctx = ctx.clone();
        let id = id.clone();
        async move {
            let order = ctx.store.load(&id).await.unwrap().unwrap();
            scanpay::server::orders::cancel::cancel(&ctx, order).await
        }
    }))
    .await;
    assert!(again
        .iter()
        .all(|r| matches!(r, Ok(o) if o.status == OrderStatus::Closing)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        wechat.closed.lock().unwrap().len(),
        1,
        "closeorder once, whatever the shopper does"
    );
}

/// Cancels are limited per session (and per client address): a script hammering cancel is
/// answered 429 with a message, not with more work.
#[tokio::test]
async fn cancels_are_limited_per_session_and_per_address() {
    let app = spawn_app(&[
        ("SCANPAY_LIMIT_CANCELS_PER_MINUTE", "3"),
        ("SCANPAY_CLIENT_IP_HEADER", "X-Forwarded-For"),
    ])
    .await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    let cancel = |cookie: String, ip: String| {
        let (http, url, id) = (
            app.http.clone(),
            format!("{}/api/cancel_order", app.base),
            id.clone(),
        );
        async move {
            let r = http
                .post(url)
                .header("cookie", cookie)
                .header("x-forwarded-for", ip)
                .form(&[("id", id.as_str())])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // One session from five addresses: its own allowance runs out.
    let mut codes = Vec::new();
    for i in 0..5 {
        let (code, body) = cancel(shopper.cookie.clone(), format!("198.51.100.{i}")).await;
        if code == 429 {
            assert!(body.contains("Too many cancels"), "{body}");
        }
        codes.push(code);
    }
    assert_eq!(codes, [200, 200, 200, 429, 429], "per session");
    // Five sessions from one address: the address's allowance runs out (another session's
    // cancel of this order is a 404 — not theirs — while allowed).
    let mut codes = Vec::new();
    for _ in 0..5 {
        let other = app.shopper().await;
        codes.push(cancel(other.cookie.clone(), "203.0.113.9".into()).await.0);
    }
    assert_eq!(codes, [404, 404, 404, 429, 429], "per address");
}

/// A WeChat base that answers only what WeChat Pay never answers (here another server's 404
/// page) fails readiness after a reconciliation period, naming it — where before, every close
/// warned again for ever and the order stayed closing with nothing else said.
#[tokio::test]
async fn a_wechat_base_answering_404_pages_fails_readiness() {
    let other = spawn_app(&[]).await;
    let base = format!("{}/nowhere/", other.base);
    let app = spawn_app(&[
        ("SCANPAY_WXPAY_BASE_URL", &base),
        ("SCANPAY_SANDBOX", "false"),
        ("SCANPAY_SWEEP_INTERVAL", "200ms"),
    ])
    .await;
    let shopper = app.shopper().await;
    shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    let start = Instant::now();
    loop {
        let r = app
            .http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let wechat = v["dependencies"]["wechat"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if code == 503 && wechat.starts_with("misdirected: HTTP 404") {
            assert!(wechat.contains("SCANPAY_WXPAY_BASE_URL"), "{v}");
            break;
        }
        assert_eq!(wechat, "ok", "not before a reconciliation period: {v}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never reported: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A healthy base says ok.
    let r = other
        .http
        .get(format!("{}/readyz", other.base))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["dependencies"]["wechat"], "ok", "{v}");
}
