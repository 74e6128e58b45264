//! The daily reconciliation end to end on the engine under test: shoppers pay through the
//! in-process sandbox, the sandbox's bill knobs make WeChat's bill disagree on purpose, and each
//! difference class is found and classified exactly — and nothing else; a lost notify is fixed
//! by the reconciliation's query; a re-run replaces the day's result (keeping a resolution);
//! two workers run a day once; the job waits out `Bill Creating`; `scanpay reconcile`.

use std::process::Command;
use std::time::{Duration, Instant};

use scanpay::app::types::OrderStatus;
use scanpay::server::domain::recon::{BillDate, DayStatus, ReconClass, ReconLine};
use scanpay::server::orders::reconcile::{self, RunOutcome};
use scanpay::server::sandbox::faults::Faults;
use scanpay::server::support::clock::now_ms;

use crate::common::{spawn_app, TestApp};
use crate::refunds::{ask, paid_order, wait_refund};

async fn app(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("SCANPAY_OPS_TOKEN", "ops-token-for-the-refund-tests"),
        ("SCANPAY_REFUND_SPACING", "100ms"),
        ("SCANPAY_SANDBOX_BILL_READY_AFTER", "0s"),
        ("SCANPAY_SANDBOX_REFUND_DELAY", "1ms"),
    ];
    env.extend_from_slice(extra);
    spawn_app(&env).await
}

fn today() -> BillDate {
    BillDate::of_ms(now_ms())
}

async fn run_today(app: &TestApp) -> scanpay::server::domain::recon::ReconDayRow {
    match reconcile::run_day(app.ctx(), &today(), "test", true)
        .await
        .unwrap()
    {
        RunOutcome::Done(day) => *day,
        other => panic!("not reconciled: {other:?}"),
    }
}

async fn lines(app: &TestApp) -> Vec<ReconLine> {
    app.ctx()
        .store
        .recon_lines(today().as_str(), false, "", 10_000)
        .await
        .unwrap()
}

fn sandbox_faults(app: &TestApp, id: &str, knobs: &str) {
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.set_faults(Some(id), Faults::parse(knobs).unwrap());
}

/// A paid order with one refund settled SUCCESS.
async fn refunded(app: &TestApp) -> (String, String) {
    let (_, id) = paid_order(app, &[("TEA-OOLONG", 1)]).await;
    let (status, r) = ask(
        app,
        &id,
        serde_json::json!({"amount_fen": 100, "reason": "dent"}),
    )
    .await;
    assert_eq!(status, 202, "{r}");
    let no = r["out_refund_no"].as_str().unwrap().to_string();
    wait_refund(app, &no, scanpay::server::domain::RefundStatus::Success).await;
    (id, no)
}

#[tokio::test]
async fn a_day_that_agrees_matches_line_for_line() {
    let app = app(&[]).await;
    let (_, a) = paid_order(&app, &[("TEA-OOLONG", 2)]).await;
    let (_, b) = paid_order(&app, &[("BUN-RED", 1)]).await;
    let (c, _) = refunded(&app).await;
    let day = run_today(&app).await;
    assert_eq!(day.status, DayStatus::Done);
    assert_eq!(day.bill.as_deref(), Some("bill"));
    assert_eq!(day.counts, [4, 0, 0, 0, 0], "{day:?}");
    assert_eq!(day.open, 0);
    // WeChat's summary and ours tell the same day.
    let mut paid = 0;
    for id in [&a, &b, &c] {
        paid += app.order(id).await.total_fee;
    }
    assert_eq!((day.local.paid_count, day.local.paid_fen), (3, paid));
    assert_eq!(day.wechat.order_fen, Some(paid));
    assert_eq!((day.local.refund_count, day.local.refund_fen), (1, 100));
    assert_eq!(day.wechat.refund_fen, 100);
    assert_eq!(day.wechat.rows, 4);
    assert!(day.raw_sha256.as_deref().is_some_and(|h| h.len() == 64));
    let raw = app
        .ctx()
        .store
        .recon_raw(today().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "kept gzipped");
}

#[tokio::test]
async fn each_class_made_by_the_sandbox_is_found_exactly() {
    // The sweep would find the lost notify's payment first: not within this test.
    let app = app(&[("SCANPAY_SWEEP_INTERVAL", "1h")]).await;
    let (_, fine) = paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let (_, off) = paid_order(&app, &[("BUN-RED", 1)]).await;
    sandbox_faults(&app, &off, "bill=amount_off");
    let (_, dropped) = paid_order(&app, &[("PIN-PANDA", 1)]).await;
    sandbox_faults(&app, &dropped, "bill=drop");
    let (refund_order, refund_no) = refunded(&app).await;
    sandbox_faults(&app, &refund_order, "bill=refund_state");
    // A payment scanpay never heard of.
    app.ctx()
        .sandbox
        .clone()
        .unwrap()
        .set_faults(None, Faults::parse("bill=extra").unwrap());
    // A notify lost for good: paid at WeChat, still pending here.
    let shopper = app.shopper().await;
    let lost = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    app.wait_for(&lost, "its QR code", |o| o.code_url.is_some())
        .await;
    sandbox_faults(&app, &lost, "notify=drop");
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.pay(&app.ctx().settings.merchant.mch_id, &lost).unwrap();
    assert_eq!(app.order(&lost).await.status, OrderStatus::Pending);

    let day = run_today(&app).await;
    let all = lines(&app).await;
    let class_of = |pred: &dyn Fn(&ReconLine) -> bool| -> Vec<ReconClass> {
        all.iter().filter(|l| pred(l)).map(|l| l.class).collect()
    };
    let payment = |id: &str| {
        let id = id.to_string();
        move |l: &ReconLine| l.out_trade_no == id && l.out_refund_no.is_empty()
    };
    assert_eq!(class_of(&payment(&fine)), vec![ReconClass::Matched]);
    assert_eq!(class_of(&payment(&off)), vec![ReconClass::AmountDiffers]);
    assert_eq!(class_of(&payment(&dropped)), vec![ReconClass::LocalOnly]);
    assert_eq!(class_of(&payment(&refund_order)), vec![ReconClass::Matched]);
    assert_eq!(class_of(&payment(&lost)), vec![ReconClass::WechatOnly]);
    assert_eq!(
        class_of(&|l| l.out_refund_no == refund_no),
        vec![ReconClass::RefundDiffers]
    );
    let phantom: Vec<_> = all
        .iter()
        .filter(|l| ![&fine, &off, &dropped, &refund_order, &lost].contains(&&l.out_trade_no))
        .collect();
    assert_eq!(phantom.len(), 1, "{phantom:?}");
    assert_eq!(phantom[0].class, ReconClass::WechatOnly);
    // Nothing else: one line per payment and refund.
    assert_eq!(all.len(), 7, "{all:#?}");
    assert_eq!(day.counts, [2, 2, 1, 1, 1], "{day:?}");
    assert_eq!(day.open, 5);
    let off_line = all.iter().find(|l| l.out_trade_no == off).unwrap();
    assert_eq!(off_line.wechat_fen, off_line.local_fen.map(|f| f + 1));

    // The lost notify was fixed through the decision function, and the difference stays.
    assert_eq!(app.order(&lost).await.status, OrderStatus::Paid);
    let lost_line = all.iter().find(|l| l.out_trade_no == lost).unwrap();
    assert!(lost_line.note.contains("applied"), "{}", lost_line.note);
    let paid_by_recon = app
        .count(&crate::common::sql(&format!(
            "SELECT COUNT(*) FROM order_events WHERE order_id = '{lost}' AND kind = 'paid' \
             AND cause = 'reconciliation'"
        )))
        .await;
    assert_eq!(paid_by_recon, 1);

    // Counted in /metrics.
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"scanpay_recon_differences_open{class="amount_differs"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rerun_replaces_the_day_and_keeps_a_resolution() {
    let app = app(&[]).await;
    let (_, off) = paid_order(&app, &[("BUN-RED", 1)]).await;
    sandbox_faults(&app, &off, "bill=amount_off");
    paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let first = run_today(&app).await;
    let key = lines(&app)
        .await
        .into_iter()
        .find(|l| l.class == ReconClass::AmountDiffers)
        .unwrap()
        .key;
    let store = &app.ctx().store;
    assert!(store
        .recon_resolve(
            today().as_str(),
            &key,
            "alice",
            "coupon at the till",
            now_ms()
        )
        .await
        .unwrap());
    // Resolved once only.
    assert!(!store
        .recon_resolve(today().as_str(), &key, "bob", "again", now_ms())
        .await
        .unwrap());
    let again = run_today(&app).await;
    assert_eq!(again.counts, first.counts);
    assert_eq!(again.open, 0, "the resolution is kept");
    let after = lines(&app).await;
    assert_eq!(after.len(), 2);
    let line = after.iter().find(|l| l.key == key).unwrap();
    assert_eq!(line.resolved_by.as_deref(), Some("alice"));
    assert!(again.attempts >= 2);
    // The difference gone at WeChat: the re-run shows it matched, resolution dropped.
    sandbox_faults(&app, &off, "");
    let third = run_today(&app).await;
    assert_eq!(third.counts, [2, 0, 0, 0, 0]);
}

#[tokio::test]
async fn two_workers_run_a_day_once() {
    let app = app(&[("SCANPAY_RECON_AT", "00:00")]).await;
    paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let store = &app.ctx().store;
    store
        .recon_ensure_day(today().as_str(), now_ms())
        .await
        .unwrap();
    let day = today();
    // The second worker as another process would be: a store with its own connections (the
    // claim is all in SQL), the same WeChat.
    let url = (*app.ctx().settings.database_url).to_string();
    let other = scanpay::server::store::connect(&url, &Default::default())
        .await
        .unwrap();
    let b_ctx = std::sync::Arc::new(scanpay::server::state::Ctx::new(
        app.ctx().settings.clone(),
        other,
        app.ctx().wxpay.clone(),
        None,
    ));
    let (a, b) = tokio::join!(
        reconcile::run_day(app.ctx(), &day, "worker-a", false),
        reconcile::run_day(&b_ctx, &day, "worker-b", false),
    );
    b_ctx.store.close_pool().await;
    let done = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|o| matches!(o, RunOutcome::Done(_)))
        .count();
    let day = store.recon_day(today().as_str()).await.unwrap().unwrap();
    assert_eq!(done, 1);
    assert_eq!(day.attempts, 1);
    assert_eq!(day.counts, [1, 0, 0, 0, 0]);
    // Done is done: the job does not take it again.
    assert!(matches!(
        reconcile::run_day(app.ctx(), &today(), "worker-c", false)
            .await
            .unwrap(),
        RunOutcome::NotClaimed
    ));
}

#[tokio::test]
async fn the_job_waits_for_the_bill_and_tries_again() {
    // Yesterday's bill becomes ready three seconds from now; the job fetches yesterday's once
    // it is past recon_at, backing off from 200 ms while WeChat says Bill Creating.
    let since_midnight = now_ms() - today().start_ms();
    let ready_after = format!("{}ms", since_midnight + 3_000);
    let app = app(&[
        ("SCANPAY_SANDBOX_BILL_READY_AFTER", &ready_after),
        ("SCANPAY_RECON_AT", "00:00"),
        ("SCANPAY_RECON_RETRY", "200ms"),
    ])
    .await;
    let yesterday = today().prev();
    // The job starts owing days from the first order's: one placed yesterday (by its row).
    paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    sqlx::query("UPDATE orders SET created_at = created_at - 86400000")
        .execute(&app.db)
        .await
        .unwrap();
    let store = &app.ctx().store;
    let started = Instant::now();
    let day = loop {
        if let Some(d) = store.recon_day(yesterday.as_str()).await.unwrap() {
            if d.status == DayStatus::Done {
                break d;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "yesterday never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(day.attempts > 1, "{day:?}");
    assert!(started.elapsed() >= Duration::from_millis(2_000));
    // Nothing was paid yesterday at WeChat or here: No Bill Exist, and nothing differs.
    assert_eq!(day.bill.as_deref(), Some("no_bill"));
    assert_eq!(day.counts, [0; 5]);
}

#[tokio::test]
async fn the_command_line_prints_the_day_and_fails_without_a_bill() {
    let app = app(&[]).await;
    let (_, off) = paid_order(&app, &[("BUN-RED", 1)]).await;
    sandbox_faults(&app, &off, "bill=amount_off");
    let db_url = (*app.ctx().settings.database_url).to_string();
    // Run beside the test's runtime, which serves the sandbox the command calls.
    let cli = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_scanpay"));
        c.args(args)
            .env("LEPTOS_OUTPUT_NAME", "scanpay")
            .env("SCANPAY_DATABASE_URL", &db_url)
            .env("SCANPAY_WXPAY_BASE_URL", format!("{}/sandbox/", app.base))
            .env("RUST_LOG", "error");
        async move {
            tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap()
        }
    };
    let out = cli(&["reconcile", "--date", "today"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["date"], today().as_str());
    assert_eq!(json["matched"], 0);
    assert_eq!(json["amount_differs"], 1);
    assert_eq!(json["wechat_only"], 0);
    assert_eq!(json["local_only"], 0);
    assert_eq!(json["refund_differs"], 0);
    assert_eq!(json["run_by"], "cli");

    // Tomorrow has no bill yet: refused as a date, like a malformed one.
    let out = cli(&["reconcile", "--date", today().next().as_str()]).await;
    assert_eq!(out.status.code(), Some(2));
    for bad in [&["reconcile"][..], &["reconcile", "--date", "2026-02-30"]] {
        let out = cli(bad).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: scanpay reconcile"));
    }
    // A bill that cannot be had: exit 1, the reason, and the day's earlier result kept.
    app.ctx()
        .sandbox
        .clone()
        .unwrap()
        .set_faults(None, Faults::parse("downloadbill=systemerror").unwrap());
    let out = cli(&["reconcile", "--date", "today"]).await;
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("SYSTEMERROR"),
        "{json}"
    );
    let day = app
        .ctx()
        .store
        .recon_day(today().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day.status, DayStatus::Done);
    assert_eq!(day.counts[ReconClass::AmountDiffers.index()], 1);
    assert!(day.last_error.is_some());
}

#[tokio::test]
async fn a_lapsed_or_taken_claim_writes_nothing() {
    use scanpay::server::domain::recon::{DayResult, LocalTotals};
    let app = app(&[]).await;
    paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let store = &app.ctx().store;
    let (day, now) = (today(), now_ms());
    store.recon_ensure_day(day.as_str(), now).await.unwrap();
    // Worker A claims the day and dies: its lease runs out, and the next worker takes it.
    assert!(store
        .recon_claim(day.as_str(), "A", now, now - 1, false)
        .await
        .unwrap());
    assert!(matches!(
        reconcile::run_day(app.ctx(), &day, "worker-b", false)
            .await
            .unwrap(),
        RunOutcome::Done(_)
    ));
    // A wakes up and saves its result: refused, the day as B left it.
    let stale = DayResult {
        wechat: None,
        local: LocalTotals::default(),
        raw_gzip: None,
        raw_sha256: None,
        run_by: "worker-a".into(),
    };
    assert!(!store
        .recon_save(day.as_str(), "A", &stale, &[], now_ms())
        .await
        .unwrap());
    let d = store.recon_day(day.as_str()).await.unwrap().unwrap();
    assert_eq!((d.counts[0], d.run_by.as_deref()), (1, Some("worker-b")));
    // A forced run takes a day another run holds; the holder's save is then refused.
    assert!(store
        .recon_claim(day.as_str(), "C", now_ms(), now_ms() + 600_000, false)
        .await
        .is_ok());
    assert!(store
        .recon_claim(day.as_str(), "C", now_ms(), now_ms() + 600_000, true)
        .await
        .unwrap());
    assert!(matches!(
        reconcile::run_day(app.ctx(), &day, "ops", false)
            .await
            .unwrap(),
        RunOutcome::NotClaimed
    ));
    assert!(matches!(
        reconcile::run_day(app.ctx(), &day, "ops", true)
            .await
            .unwrap(),
        RunOutcome::Done(_)
    ));
    assert!(!store
        .recon_save(day.as_str(), "C", &stale, &[], now_ms())
        .await
        .unwrap());
    assert_eq!(
        store.recon_day(day.as_str()).await.unwrap().unwrap().counts[0],
        1
    );
}

#[tokio::test]
async fn a_refused_download_fails_the_day_for_a_person() {
    let app = app(&[]).await;
    paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let db_url = (*app.ctx().settings.database_url).to_string();
    // Another API key: the sandbox refuses the signature, a refusal no retry mends.
    let mut c = Command::new(env!("CARGO_BIN_EXE_scanpay"));
    c.args(["reconcile", "--date", "yesterday"])
        .env("LEPTOS_OUTPUT_NAME", "scanpay")
        .env("SCANPAY_DATABASE_URL", &db_url)
        .env("SCANPAY_WXPAY_BASE_URL", format!("{}/sandbox/", app.base))
        .env("SCANPAY_WXPAY_API_KEY", "another32characterkeyforthetest0")
        .env("RUST_LOG", "error");
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let yesterday = today().prev();
    let day = app
        .ctx()
        .store
        .recon_day(yesterday.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day.status, DayStatus::Failed, "{day:?}");
    assert!(
        day.last_error.as_deref().unwrap_or("").contains("refused"),
        "{day:?}"
    );
    // Not retried on its own…
    assert!(app
        .ctx()
        .store
        .recon_due(now_ms() + 86_400_000)
        .await
        .unwrap()
        .is_empty());
    // …until a person runs it again, with the right key.
    assert!(matches!(
        reconcile::run_day(app.ctx(), &yesterday, "ops", true)
            .await
            .unwrap(),
        RunOutcome::Done(_)
    ));
}
