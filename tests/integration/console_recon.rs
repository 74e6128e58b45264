//! The reconciliation in the operator console: the list of days and one day with its
//! difference (both languages), the overview's flag and the order page's line, resolving (a
//! reason, the operator role, audited, the open count drops), the JSON for scripts with the ops
//! token, the CSV with every line and its ids intact, WeChat's raw bill, "Run again" and
//! "Reconcile a day" in the background, and bad dates refused with nothing changed.

use std::time::{Duration, Instant};

use scanpay::server::domain::recon::{BillDate, DayStatus, ReconDayRow};
use scanpay::server::domain::Role;
use scanpay::server::orders::reconcile::{self, RunOutcome};
use scanpay::server::sandbox::faults::Faults;
use scanpay::server::support::clock::now_ms;
use scanpay::server::support::password;
use serde_json::Value;

use crate::common::{spawn_app, TestApp};
use crate::refunds::paid_order;

const PW: &str = "a long enough password";
const TOKEN: &str = "console-recon-ops-token";
/// What the audit log calls a resolved difference and a run (see `http::console::recon`).
const RESOLVED: &str = "recon_resolve";
const RAN: &str = "recon_run";

/// The app with a viewer (vera) and an operator (otto); a paid order and one whose payment
/// WeChat's bill shows a fen more; today reconciled. (app, good order, differing order, day)
async fn day_with_a_difference() -> (TestApp, String, String, ReconDayRow) {
    let app = spawn_app(&[
        ("SCANPAY_OPS_TOKEN", TOKEN),
        ("SCANPAY_SANDBOX_BILL_READY_AFTER", "0s"),
        // Only these tests run a day: the schedule stays out of the way.
        ("SCANPAY_RECON_AT", "off"),
    ])
    .await;
    let hash = password::hash(PW).unwrap();
    for (name, role) in [("vera", Role::Viewer), ("otto", Role::Operator)] {
        let added = app.ctx().store.add_operator(name, role, &hash, now_ms());
        assert!(added.await.unwrap());
    }
    let (_, good) = paid_order(&app, &[("BUN-RED", 1)]).await;
    let (_, off) = paid_order(&app, &[("TEA-OOLONG", 1)]).await;
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.set_faults(Some(&off), Faults::parse("bill=amount_off").unwrap());
    let day = match reconcile::run_day(app.ctx(), &today(), "test", true)
        .await
        .unwrap()
    {
        RunOutcome::Done(d) => *d,
        other => panic!("not reconciled: {other:?}"),
    };
    assert_eq!((day.open, day.counts), (1, [1, 0, 0, 1, 0]), "{day:?}");
    (app, good, off, day)
}

fn today() -> BillDate {
    BillDate::of_ms(now_ms())
}

async fn signed_in(app: &TestApp, name: &str) -> String {
    let r = app
        .http
        .post(format!("{}/ops/login", app.base))
        .header("origin", &app.base)
        .form(&[("name", name), ("password", PW), ("next", "/ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{name} signs in");
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// A page as a browser asks for it: (status, Location, body).
async fn get(app: &TestApp, path: &str, cookie: &str) -> (u16, String, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = header(&r, "location");
    (status, location, r.text().await.unwrap())
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A console form from this site: (status, Location).
async fn post(app: &TestApp, path: &str, cookie: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("origin", &app.base)
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), header(&r, "location"))
}

/// A script's call with the token: (status, JSON or Null, text).
async fn script(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", app.base);
    let req = match method {
        "GET" => app.http.get(url),
        _ => app.http.post(url),
    };
    let req = req.bearer_auth(TOKEN).header("accept", "application/json");
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn the_day(app: &TestApp) -> ReconDayRow {
    let day = app.ctx().store.recon_day(today().as_str()).await.unwrap();
    day.expect("reconciled")
}

/// Audit lines as "actor action subject | reason".
async fn audit(app: &TestApp) -> Vec<String> {
    let rows = app.ctx().store.audit_log(None, None, 1000).await.unwrap();
    rows.into_iter()
        .map(|r| format!("{} {} {} | {}", r.actor, r.action, r.subject, r.reason))
        .collect()
}

#[tokio::test]
async fn the_console_shows_the_difference_and_an_operator_resolves_it_with_a_reason() {
    let (app, good, off, _) = day_with_a_difference().await;
    let date = today().to_string();
    let viewer = signed_in(&app, "vera").await;
    let operator = signed_in(&app, "otto").await;

    // The list: the day, its open difference flagged, a link to it; in both languages.
    let (status, _, list) = get(&app, "/ops/reconciliation", &viewer).await;
    assert_eq!(status, 200);
    assert!(list.contains(&format!(r#"href="/ops/reconciliation/{date}""#)));
    assert!(list.contains("1 open") && list.contains("Reconciliation"));
    assert!(list.contains(r#"data-status="done""#));
    // Its money, WeChat's beside ours: the bill has the off order a fen dearer.
    let paid = app.order(&good).await.total_fee + app.order(&off).await.total_fee;
    let yuan = scanpay::app::ops::yuan;
    assert!(
        list.contains(&format!("{} / {}", yuan(paid + 1), yuan(paid))),
        "{list}"
    );
    assert!(!list.contains("recon-run"), "a viewer may not run a day");
    let zh = format!("{viewer}; lang=zh-CN");
    let (_, _, list_zh) = get(&app, "/ops/reconciliation", &zh).await;
    assert!(list_zh.contains("1 处待处理") && list_zh.contains("对账"));
    let (_, _, list_op) = get(&app, "/ops/reconciliation", &operator).await;
    assert!(list_op.contains(r#"data-testid="recon-run""#));

    // The day: the difference in words, the order linked, WeChat's amount beside ours.
    let page = format!("/ops/reconciliation/{date}");
    let (status, _, body) = get(&app, &page, &operator).await;
    assert_eq!(status, 200);
    assert_eq!(body.matches(r#"data-testid="recon-line""#).count(), 1);
    assert!(body.contains("Amount differs") && body.contains("Payment"));
    assert!(body.contains(&format!(r#"href="/ops/orders/{off}""#)));
    assert!(
        !body.contains(&format!(r#"href="/ops/orders/{good}""#)),
        "matched lines are not listed"
    );
    let fee = app.order(&off).await.total_fee;
    assert!(
        body.contains(&scanpay::app::ops::yuan(fee + 1))
            && body.contains(&scanpay::app::ops::yuan(fee))
    );
    assert!(body.contains(r#"data-testid="recon-resolve""#));
    assert!(
        body.contains(&format!(r#"href="{page}.csv""#))
            && body.contains(&format!(r#"href="{page}/bill""#))
    );
    let (_, _, body_zh) = get(&app, &page, &format!("{operator}; lang=zh-CN")).await;
    assert!(body_zh.contains("金额不一致") && body_zh.contains("处理说明"));
    let (_, _, as_viewer) = get(&app, &page, &viewer).await;
    assert!(!as_viewer.contains("recon-resolve") && !as_viewer.contains("recon-run-again"));

    // The overview flags the day, however many days without differences were reconciled after
    // it (fifteen here); the order's page lists its difference.
    for d in 1..=15 {
        sqlx::query(&crate::common::sql(
            "INSERT INTO recon_days (bill_date, status, bill, created_at, updated_at) \
             VALUES (?, 'done', 'no_bill', 0, 0)",
        ))
        .bind(format!("2099-01-{d:02}"))
        .execute(&app.db)
        .await
        .unwrap();
    }
    let (_, _, overview) = get(&app, "/ops", &viewer).await;
    assert!(overview.contains(&format!("Reconciliation: {date} has 1 open difference")));
    let (_, _, order) = get(&app, &format!("/ops/orders/{off}"), &viewer).await;
    assert!(order.contains("ops-order-recon") && order.contains(&format!(r#"href="{page}""#)));
    let (_, _, other) = get(&app, &format!("/ops/orders/{good}"), &viewer).await;
    assert!(!other.contains("ops-order-recon"));

    let key = app
        .ctx()
        .store
        .recon_lines(&date, true, "", 10)
        .await
        .unwrap()[0]
        .key
        .clone();
    let resolve = format!("{page}/resolve");
    // A viewer may not; a form from another site is refused; a bad reason changes nothing.
    let why = [
        ("key", key.as_str()),
        ("reason", "WeChat rounds; checked by phone"),
    ];
    assert_eq!(post(&app, &resolve, &viewer, &why).await.0, 403);
    let r = app
        .http
        .post(format!("{}{resolve}", app.base))
        .header("cookie", &operator)
        .header("origin", "https://evil.example")
        .form(&why)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let long = "x".repeat(513);
    for bad in ["", "   ", "line\nbreak", long.as_str()] {
        let form = [("key", key.as_str()), ("reason", bad)];
        let (status, location) = post(&app, &resolve, &operator, &form).await;
        let want = format!("{page}?error=bad_recon_reason");
        assert_eq!((status, location.as_str()), (303, want.as_str()), "{bad:?}");
    }
    assert_eq!(the_day(&app).await.open, 1, "nothing changed");

    // The operator resolves it: audited, the count drops, who/when/why shown.
    let (status, location) = post(&app, &resolve, &operator, &why).await;
    let want = format!("{page}?done=recon_resolved");
    assert_eq!((status, location.as_str()), (303, want.as_str()));
    assert_eq!(the_day(&app).await.open, 0);
    let line = app.ctx().store.recon_line(&date, &key).await.unwrap();
    let line = line.unwrap();
    assert_eq!(line.resolved_by.as_deref(), Some("otto"));
    assert_eq!(
        line.resolution.as_deref(),
        Some("WeChat rounds; checked by phone")
    );
    let want = format!("otto {RESOLVED} {date} {key} | WeChat rounds; checked by phone");
    let log = audit(&app).await;
    assert!(log.contains(&want), "{want} not in {log:?}");
    let (_, _, body) = get(&app, &format!("{page}?done=recon_resolved"), &operator).await;
    assert!(body.contains("Difference resolved.") && body.contains("Resolved by otto"));
    assert!(!body.contains(r#"data-testid="recon-resolve""#));
    let (_, location) = post(&app, &resolve, &operator, &why).await;
    assert_eq!(
        location,
        format!("{page}?error=recon_not_open"),
        "once only"
    );
    let (_, _, overview) = get(&app, "/ops", &viewer).await;
    assert!(
        !overview.contains("ops-recon-open"),
        "nothing flagged when nothing is open"
    );
}

#[tokio::test]
async fn scripts_get_json_with_the_token_and_every_line_as_csv() {
    let (app, good, off, _) = day_with_a_difference().await;
    let date = today().to_string();
    // Without the token (or with a wrong one): 401, nothing said.
    for auth in [None, Some("Bearer wrong")] {
        let mut req = app
            .http
            .get(format!("{}/ops/reconciliation/{date}", app.base))
            .header("accept", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    }
    let (status, days) = script(&app, "GET", "/ops/reconciliation", None).await;
    assert_eq!(status, 200, "{days}");
    assert_eq!(days[0]["date"], date.as_str());
    let counts = (days[0]["open"].as_i64(), days[0]["amount_differs"].as_i64());
    assert_eq!(counts, (Some(1), Some(1)));
    let bad = script(&app, "GET", "/ops/reconciliation?before=nope", None).await;
    assert_eq!(bad.0, 400);

    let path = format!("/ops/reconciliation/{date}");
    let (status, day) = script(&app, "GET", &path, None).await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["classes"]["amount_differs"]["count"], 1);
    assert_eq!(day["classes"]["matched"]["count"], 1);
    let diffs = day["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1);
    assert_eq!(diffs[0]["out_trade_no"], off.as_str());
    let key = diffs[0]["key"].as_str().unwrap().to_string();
    let bad = script(&app, "GET", "/ops/reconciliation/2026-02-30", None).await;
    assert_eq!(bad.0, 400);
    let never = script(&app, "GET", "/ops/reconciliation/2001-01-01", None).await;
    assert_eq!(never.0, 404);

    // Resolving from a script: a reason is required; audited as the token.
    let resolve = format!("{path}/resolve");
    // Without a token it is a form from nowhere (403); with a wrong one, 401.
    for (auth, want) in [(None, 403), (Some("Bearer wrong"), 401)] {
        let mut req = app
            .http
            .post(format!("{}{resolve}", app.base))
            .header("content-type", "application/json")
            .body(serde_json::json!({"key": key, "reason": "x"}).to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(
            req.send().await.unwrap().status().as_u16(),
            want,
            "{auth:?}"
        );
    }
    let no_reason = serde_json::json!({"key": key, "reason": ""});
    assert_eq!(script(&app, "POST", &resolve, Some(no_reason)).await.0, 422);
    let unknown = serde_json::json!({"key": "P:nothing", "reason": "x"});
    assert_eq!(script(&app, "POST", &resolve, Some(unknown)).await.0, 404);
    assert_eq!(the_day(&app).await.open, 1);
    let ok = serde_json::json!({"key": key, "reason": "bank fee, agreed"});
    let (status, line) = script(&app, "POST", &resolve, Some(ok.clone())).await;
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["resolved_by"], "ops-token");
    assert_eq!(script(&app, "POST", &resolve, Some(ok)).await.0, 409);
    assert_eq!(the_day(&app).await.open, 0);
    let want = format!("ops-token {RESOLVED} {date} {key} | bank fee, agreed");
    assert!(audit(&app).await.contains(&want));

    // The CSV: every line (matched too), ids as quoted text, amounts in fen and yuan.
    let viewer = signed_in(&app, "vera").await;
    let r = app
        .http
        .get(format!("{}{path}.csv", app.base))
        .header("cookie", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "content-type").starts_with("text/csv"));
    assert!(header(&r, "content-disposition").contains(&format!("reconciliation-{date}.csv")));
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "a header and both payments: {csv}");
    assert!(rows[0].starts_with("bill_date,key,kind,class,open,out_trade_no,transaction_id"));
    for id in [&good, &off] {
        let o = app.order(id).await;
        let tx = o.transaction_id.unwrap();
        let row = rows.iter().find(|r| r.contains(id.as_str())).unwrap();
        assert!(row.contains(&format!(r#","{id}","{tx}","#)), "{row}");
        let yuan = format!("{}.{:02}", o.total_fee / 100, o.total_fee % 100);
        assert!(row.contains(&format!(",{},{yuan},", o.total_fee)), "{row}");
    }
    let off_row = rows.iter().find(|r| r.contains(off.as_str())).unwrap();
    assert!(
        off_row.contains(",payment,amount_differs,false,"),
        "{off_row}"
    );
    // Compressed on the way (as a browser asks): the stream ends once, the server stays up.
    let r = app
        .http
        .get(format!("{}{path}.csv", app.base))
        .header("cookie", &viewer)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-encoding"), "gzip");
    assert!(!r.bytes().await.unwrap().is_empty());
    let (status, _) = script(&app, "GET", &format!("{path}.csv"), None).await;
    assert_eq!(status, 200, "scripts may fetch it too");

    // WeChat's bill as downloaded: a viewer may have it.
    let r = app
        .http
        .get(format!("{}{path}/bill", app.base))
        .header("cookie", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bill = r.text().await.unwrap();
    assert!(
        bill.contains(good.as_str()) && bill.contains(off.as_str()),
        "{bill}"
    );
}

#[tokio::test]
async fn run_again_and_reconcile_a_day_start_in_the_background_and_bad_dates_change_nothing() {
    let (app, _, _, before) = day_with_a_difference().await;
    let date = today().to_string();
    let viewer = signed_in(&app, "vera").await;
    let operator = signed_in(&app, "otto").await;
    let page = format!("/ops/reconciliation/{date}");

    assert_eq!(
        post(&app, &format!("{page}/run"), &viewer, &[]).await.0,
        403
    );
    assert_eq!(the_day(&app).await.run_by.as_deref(), Some("test"));
    let (status, location) = post(&app, &format!("{page}/run"), &operator, &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("{page}?done=recon_started").as_str())
    );
    assert!(audit(&app).await.contains(&format!("otto {RAN} {date} | ")));
    let again = until(&app, &date, |d| d.run_by.as_deref() == Some("otto")).await;
    assert_eq!(
        (again.open, again.counts),
        (before.open, before.counts),
        "the same result"
    );
    let (_, _, body) = get(&app, &format!("{page}?done=recon_started"), &operator).await;
    assert!(body.contains("Reconciliation started in the background"));

    // "Reconcile a day" for a day not yet in the table: yesterday, when nothing was paid.
    let yesterday = today().prev().to_string();
    assert!(app
        .ctx()
        .store
        .recon_day(&yesterday)
        .await
        .unwrap()
        .is_none());
    let (_, _, missing) = get(&app, &format!("/ops/reconciliation/{yesterday}"), &operator).await;
    assert!(
        missing.contains("No reconciliation for this day") && missing.contains("recon-run-day")
    );
    let (status, location) = post(
        &app,
        "/ops/reconciliation",
        &operator,
        &[("date", &yesterday)],
    )
    .await;
    assert_eq!(
        (status, location),
        (
            303,
            format!("/ops/reconciliation/{yesterday}?done=recon_started")
        )
    );
    let y = until(&app, &yesterday, |d| d.status == DayStatus::Done).await;
    assert_eq!((y.bill.as_deref(), y.open), (Some("no_bill"), 0), "{y:?}");

    // Bad dates: refused, nothing run, nothing written.
    let tomorrow = today().next().to_string();
    let runs = audit(&app).await.iter().filter(|a| a.contains(RAN)).count();
    for bad in ["2026-13-01", "yesterday", "", tomorrow.as_str()] {
        let (status, location) =
            post(&app, "/ops/reconciliation", &operator, &[("date", bad)]).await;
        assert_eq!(
            (status, location.as_str()),
            (303, "/ops/reconciliation?error=bad_day"),
            "{bad:?}"
        );
    }
    let (_, location) = post(
        &app,
        &format!("/ops/reconciliation/{tomorrow}/run"),
        &operator,
        &[],
    )
    .await;
    assert_eq!(location, "/ops/reconciliation?error=bad_day");
    assert!(app
        .ctx()
        .store
        .recon_day(&tomorrow)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        audit(&app).await.iter().filter(|a| a.contains(RAN)).count(),
        runs
    );
    let (status, _, body) = get(&app, "/ops/reconciliation/2026-02-30", &viewer).await;
    assert_eq!(status, 400);
    assert!(body.contains("A day is written yyyy-mm-dd"));
    assert_eq!(
        get(&app, "/ops/reconciliation?before=soon", &viewer)
            .await
            .0,
        400
    );
    assert_eq!(
        get(&app, "/ops/reconciliation/2001-01-01", &viewer).await.0,
        404
    );
    let (status, _) = post(
        &app,
        "/ops/reconciliation/not-a-day/resolve",
        &operator,
        &[("key", "P:1"), ("reason", "x")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        get(&app, "/ops/reconciliation/2001-01-01/bill", &viewer)
            .await
            .0,
        404
    );
    assert_eq!(
        get(&app, "/ops/reconciliation/2001-01-01.csv", &viewer)
            .await
            .0,
        404
    );
}

/// Waits (up to 10 s) for the day's row to satisfy `f`.
async fn until(app: &TestApp, date: &str, f: impl Fn(&ReconDayRow) -> bool) -> ReconDayRow {
    let start = Instant::now();
    loop {
        if let Some(d) = app.ctx().store.recon_day(date).await.unwrap() {
            if f(&d) {
                return d;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{date} never got there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
