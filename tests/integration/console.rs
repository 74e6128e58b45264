//! The operator console over HTTP: sign-in (right, wrong, locked out, a new session id each
//! time, idle expiry), each role's permissions, cross-site forms refused, search and filters,
//! the CSV export, the audit log written for every action, and /metrics after a walk.

use std::time::Duration;

use scanpay::server::domain::Role;
use scanpay::server::support::clock::now_ms;
use scanpay::server::support::password;

use crate::common::{spawn_app, TestApp};
use crate::refunds::paid_order;

const PW: &str = "a long enough password";

async fn app_with(overrides: &[(&str, &str)]) -> TestApp {
    let mut o = vec![
        ("SCANPAY_OPS_TOKEN", "console-tests-ops-token"),
        ("SCANPAY_REFUND_SPACING", "100ms"),
    ];
    o.extend_from_slice(overrides);
    let app = spawn_app(&o).await;
    let hash = password::hash(PW).unwrap();
    for (name, role) in [
        ("vera", Role::Viewer),
        ("otto", Role::Operator),
        ("ada", Role::Admin),
    ] {
        assert!(app
            .ctx()
            .store
            .add_operator(name, role, &hash, now_ms())
            .await
            .unwrap());
    }
    app
}

/// `POST /ops/login` as a browser would: (status, Location, the session cookie set).
async fn login(
    app: &TestApp,
    name: &str,
    pw: &str,
    cookie: Option<&str>,
) -> (u16, String, Option<String>, String) {
    let mut req = app
        .http
        .post(format!("{}/ops/login", app.base))
        .header("origin", &app.base)
        .form(&[("name", name), ("password", pw), ("next", "/ops/orders")]);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let set = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (status, location, set, r.text().await.unwrap())
}

async fn signed_in(app: &TestApp, name: &str) -> String {
    let (status, _, set, _) = login(app, name, PW, None).await;
    assert_eq!(status, 303, "{name} signs in");
    set.unwrap().split(';').next().unwrap().to_string()
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> (u16, String, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        // As a browser asks for a page.
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

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
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location)
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    app.ctx()
        .store
        .audit_log(None, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.actor, r.action))
        .collect()
}

#[tokio::test]
async fn sign_in_right_wrong_rotated_and_back_where_it_was_going() {
    let app = app_with(&[]).await;
    // Anonymous: sent to sign in, and the way back kept.
    let (status, location, _) = get(&app, "/ops/orders?status=paid", "").await;
    assert_eq!(status, 303);
    assert_eq!(location, "/ops/login?next=%2Fops%2Forders%3Fstatus%3Dpaid");
    // A script without a token gets a plain 401, not a sign-in page.
    let r = app
        .http
        .get(format!("{}/ops/orders", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, _, page) = get(&app, "/ops/login", "").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<label for="login-name">Name</label>"#),
        "{page}"
    );
    assert!(page.contains("Sign in"));

    // Wrong password and unknown name: the same generic answer, nothing set.
    let (s1, _, set1, body1) = login(&app, "otto", "not the password", None).await;
    let (s2, _, set2, body2) = login(&app, "nobody", PW, None).await;
    assert_eq!((s1, s2), (401, 401));
    assert!(set1.is_none() && set2.is_none());
    assert!(
        body1.contains("Name or password is wrong") && body2.contains("Name or password is wrong")
    );

    let (status, location, set, _) = login(&app, "otto", PW, None).await;
    assert_eq!((status, location.as_str()), (303, "/ops/orders"));
    let set = set.unwrap();
    assert!(set.starts_with("scanpay_ops="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("Secure"), "plain http: no Secure");
    let first = set.split(';').next().unwrap().to_string();
    let (status, _, page) = get(&app, "/ops/orders", &first).await;
    assert_eq!(status, 200);
    assert!(page.contains("otto"));

    // Signing in again (with the old cookie) gives a new id and ends the old session.
    let (_, _, again, _) = login(&app, "otto", PW, Some(&first)).await;
    let second = again.unwrap().split(';').next().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        get(&app, "/ops/orders", &first).await.0,
        303,
        "the old id opens nothing"
    );
    assert_eq!(get(&app, "/ops/orders", &second).await.0, 200);

    // Sign out ends it.
    assert_eq!(post(&app, "/ops/logout", &second, &[]).await.0, 303);
    assert_eq!(get(&app, "/ops/orders", &second).await.0, 303);

    let actions = audit_actions(&app).await;
    for (actor, action) in [
        ("otto", "sign_in_failed"),
        ("nobody", "sign_in_failed"),
        ("otto", "sign_in"),
        ("otto", "sign_out"),
    ] {
        assert!(
            actions.contains(&(actor.into(), action.into())),
            "{actor} {action} not in {actions:?}"
        );
    }
    let row = &app.ctx().store.audit_log(None, None, 1).await.unwrap()[0];
    assert_eq!(row.address, "127.0.0.1", "the address is recorded");
}

#[tokio::test]
async fn failed_sign_ins_lock_the_name_and_idle_sessions_expire() {
    let app = app_with(&[("SCANPAY_OPS_IDLE_TIMEOUT", "1s")]).await;
    for _ in 0..5 {
        assert_eq!(login(&app, "vera", "wrong wrong wrong", None).await.0, 401);
    }
    let (status, _, set, body) = login(&app, "vera", PW, None).await;
    assert_eq!(status, 429, "locked, even with the right password");
    assert!(set.is_none());
    assert!(body.contains("Too many failed sign-ins"));
    // Another name from the same address is not locked yet (20 per address).
    let cookie = signed_in(&app, "otto").await;
    assert_eq!(get(&app, "/ops", &cookie).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        get(&app, "/ops", &cookie).await.0,
        303,
        "idle past its time-out"
    );
    // A disabled operator's sessions end at once.
    let cookie = signed_in(&app, "ada").await;
    assert!(app
        .ctx()
        .store
        .disable_operator("ada", now_ms())
        .await
        .unwrap());
    assert_eq!(get(&app, "/ops", &cookie).await.0, 303);
    assert_eq!(login(&app, "ada", PW, None).await.0, 401);
}

#[tokio::test]
async fn roles_cross_site_forms_refunds_notes_and_the_audit_log() {
    let app = app_with(&[]).await;
    let (_, id) = paid_order(&app, &[("BUN-RED", 2)]).await;
    let order = app.order(&id).await;
    let viewer = signed_in(&app, "vera").await;
    let operator = signed_in(&app, "otto").await;
    let page = format!("/ops/orders/{id}");

    // A viewer reads but may not act (and sees no refund form).
    let (status, _, body) = get(&app, &page, &viewer).await;
    assert_eq!(status, 200);
    assert!(!body.contains("ops-refund-form"));
    let refund = [("amount", "0.50"), ("reason", "damaged box")];
    assert_eq!(
        post(&app, &format!("{page}/refund"), &viewer, &refund)
            .await
            .0,
        403
    );
    assert!(app.ctx().store.refunds_of(&id).await.unwrap().is_empty());

    // A form from another site, or with no origin at all, is refused before anything else.
    let r = app
        .http
        .post(format!("{}{page}/refund", app.base))
        .header("cookie", &operator)
        .header("origin", "https://evil.example")
        .form(&refund)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .http
        .post(format!("{}{page}/refund", app.base))
        .header("cookie", &operator)
        .form(&refund)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(app.ctx().store.refunds_of(&id).await.unwrap().is_empty());

    // Bad input changes nothing.
    for bad in [
        [("amount", "abc"), ("reason", "x")],
        [("amount", "0.5"), ("reason", "")],
        [("amount", "1.234"), ("reason", "x")],
    ] {
        let (status, location) = post(&app, &format!("{page}/refund"), &operator, &bad).await;
        assert_eq!(status, 303);
        assert!(location.contains("error="), "{location}");
    }
    assert!(app.ctx().store.refunds_of(&id).await.unwrap().is_empty());

    // The operator refunds part; a double submit makes one refund.
    let (_, location) = post(&app, &format!("{page}/refund"), &operator, &refund).await;
    assert_eq!(location, format!("{page}?done=refund_requested"));
    let (_, location) = post(&app, &format!("{page}/refund"), &operator, &refund).await;
    assert!(location.contains("done=refund_requested"), "{location}");
    let refunds = app.ctx().store.refunds_of(&id).await.unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        (refunds[0].refund_fee, refunds[0].requested_by.as_str()),
        (50, "otto")
    );

    // Notes and "Query WeChat now".
    assert!(post(
        &app,
        &format!("{page}/note"),
        &operator,
        &[("text", "called the shopper")]
    )
    .await
    .1
    .contains("done=note_saved"));
    assert!(post(&app, &format!("{page}/query"), &operator, &[])
        .await
        .1
        .contains("done=queried"));
    let (_, _, body) = get(&app, &page, &operator).await;
    assert!(
        body.contains("otto: called the shopper"),
        "the note is on the timeline"
    );
    assert!(
        body.contains("trade_state"),
        "the query's answer is on the timeline"
    );
    assert!(body.contains(&refunds[0].out_refund_no));

    // A forged notify naming the order is refused, and the log says so.
    let forged = format!(
        "<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code><out_trade_no>{id}</out_trade_no>\
         <transaction_id>4200000000000000000000000001</transaction_id><total_fee>1</total_fee><sign>FORGED</sign></xml>"
    );
    assert_eq!(app.post_xml("/wxpay/notify", forged).await.0, 400);
    // Every WeChat call for the order (recorded by the client) and every notify naming it.
    let started = std::time::Instant::now();
    loop {
        let calls = app.ctx().store.calls_of(&id, 100).await.unwrap();
        let notifies = app.ctx().store.notifies_of(&id, 100).await.unwrap();
        let apis: Vec<&str> = calls.iter().map(|c| c.api.as_str()).collect();
        let outcomes: Vec<&str> = notifies.iter().map(|n| n.outcome.as_str()).collect();
        if ["unifiedorder", "orderquery", "refund"]
            .iter()
            .all(|a| apis.contains(a))
            && outcomes.contains(&"accepted")
            && outcomes.contains(&"refused_sign")
        {
            assert!(calls
                .iter()
                .all(|c| c.latency_ms >= 0 && !c.result.is_empty()));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "calls {apis:?}, notifies {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, body) = get(&app, &page, &operator).await;
    assert!(body.contains(r#"data-api="unifiedorder""#) && body.contains(r#"data-api="refund""#));
    assert!(body.contains(r#"data-outcome="refused_sign""#));

    // Search: the transaction id and the refund number each jump to the order.
    let tx = order.transaction_id.clone().unwrap();
    for q in [tx.as_str(), refunds[0].out_refund_no.as_str(), id.as_str()] {
        let (status, location, _) = get(&app, &format!("/ops/orders?q={q}"), &viewer).await;
        assert_eq!((status, location.as_str()), (303, page.as_str()), "{q}");
    }

    let mine: Vec<String> = app
        .ctx()
        .store
        .audit_log(None, Some(&id), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {} {}", r.actor, r.action, r.reason))
        .collect();
    for want in [
        "otto refund damaged box",
        "otto note ",
        "otto query_wechat ",
    ] {
        assert!(
            mine.iter().any(|m| m.starts_with(want.trim_end())),
            "{want:?} not in {mine:?}"
        );
    }
    let (status, _, body) = get(&app, "/ops/audit", &viewer).await;
    assert_eq!(status, 200);
    assert!(body.contains("damaged box"));

    // The JSON endpoints still answer the token, on the same paths.
    let r = app
        .http
        .get(format!("{}{page}", app.base))
        .bearer_auth("console-tests-ops-token")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["id"], id.as_str());
}

#[tokio::test]
async fn filters_pages_and_csv_select_exactly() {
    let app = app_with(&[]).await;
    let (_, paid) = paid_order(&app, &[("BUN-RED", 1)]).await;
    let shopper = app.shopper().await;
    let pending = shopper.place_ok(&[("BUN-RED", 3)]).await;
    let cookie = signed_in(&app, "vera").await;
    let rows = |body: &str| body.matches("data-testid=\"ops-order-row\"").count();
    let (_, _, all) = get(&app, "/ops/orders", &cookie).await;
    assert_eq!(rows(&all), 2);
    assert!(
        all.find(&pending).unwrap() < all.find(&paid).unwrap(),
        "newest first"
    );
    let (_, _, only_paid) = get(&app, "/ops/orders?status=paid", &cookie).await;
    assert_eq!(rows(&only_paid), 1);
    assert!(only_paid.contains(&paid));
    let price = app.order(&paid).await.total_fee;
    let (_, _, by_amount) = get(
        &app,
        &format!(
            "/ops/orders?min={}.{:02}&max={}.{:02}",
            price / 100,
            price % 100,
            price / 100,
            price % 100
        ),
        &cookie,
    )
    .await;
    assert_eq!(rows(&by_amount), 1, "only the one-item order");
    let (_, _, none) = get(&app, "/ops/orders?refunded=1", &cookie).await;
    assert_eq!(rows(&none), 0);
    let (_, _, anomalies) = get(&app, "/ops/orders?anomaly=1", &cookie).await;
    assert_eq!(rows(&anomalies), 0);
    let today = &scanpay::server::support::clock::format_beijing(now_ms())[..8];
    let day = format!("{}-{}-{}", &today[..4], &today[4..6], &today[6..8]);
    let (_, _, by_day) = get(&app, &format!("/ops/orders?from={day}&to={day}"), &cookie).await;
    assert_eq!(rows(&by_day), 2);
    let (_, _, before) = get(&app, "/ops/orders?to=2020-01-01", &cookie).await;
    assert_eq!(rows(&before), 0);
    for bad in [
        "from=2026-13-01",
        "min=-1",
        "status=lost",
        "q=a%25b",
        "after=x",
    ] {
        let (status, _, body) = get(&app, &format!("/ops/orders?{bad}"), &cookie).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains("ops-error"), "{bad}");
    }
    // The id prefix search lists what starts with it.
    let (_, _, prefix) = get(
        &app,
        &format!("/ops/orders?q={}", &paid[..paid.len() - 3]),
        &cookie,
    )
    .await;
    assert_eq!(rows(&prefix), 1);

    let (status, _, csv) = get(&app, "/ops/orders.csv?status=paid", &cookie).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("out_trade_no,status,total_fee_yuan"));
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with(&format!("\"{paid}\",paid,")));
}

#[tokio::test]
async fn metrics_name_what_happened() {
    let app = app_with(&[]).await;
    let (_, id) = paid_order(&app, &[("BUN-RED", 1)]).await;
    let r = app
        .http
        .post(format!("{}/ops/orders/{id}/refunds", app.base))
        .bearer_auth("console-tests-ops-token")
        .header("content-type", "application/json")
        .body(r#"{"amount_fen": 100, "reason": "metrics"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let no = format!("{id}R01");
    let started = std::time::Instant::now();
    while app.ctx().store.refund(&no).await.unwrap().unwrap().status
        != scanpay::server::domain::RefundStatus::Success
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refund settles"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    for want in [
        "scanpay_http_requests_total{method=\"POST\",route=\"/api/place_order\",status=\"200\"}",
        "scanpay_http_request_duration_seconds_bucket{route=\"/api/place_order\",status=\"200\"",
        "scanpay_wxpay_requests_total{api=\"unifiedorder\",result=\"success\"}",
        "scanpay_wxpay_request_duration_seconds_bucket{api=\"unifiedorder\"",
        "scanpay_notifies_total{kind=\"pay\",outcome=\"accepted\"}",
        "scanpay_order_transitions_total{to=\"paid\",cause=\"notify\"}",
        "scanpay_orders_unfinished ",
        "scanpay_anomalies_open ",
        "scanpay_database_up 1",
        "scanpay_refunds_total{status=\"requested\"}",
        "scanpay_refunds_total{status=\"success\"}",
        "scanpay_wxpay_requests_total{api=\"refund\",result=\"success\"}",
        "scanpay_sweep_due_orders ",
        "scanpay_sweep_lag_seconds ",
        "scanpay_deadlines_due ",
        "scanpay_pay_results_in_flight ",
        "scanpay_build_info{version=",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("scanpay_"), "unprefixed: {line}");
    }
    // With a token set, /metrics asks for it.
    let app2 = spawn_app(&[("SCANPAY_METRICS_TOKEN", "metrics-token-0123456789")]).await;
    let r = app2
        .http
        .get(format!("{}/metrics", app2.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = app2
        .http
        .get(format!("{}/metrics", app2.base))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn only_admins_manage_operators_and_every_change_is_audited() {
    let app = app_with(&[]).await;
    let operator = signed_in(&app, "otto").await;
    let admin = signed_in(&app, "ada").await;
    let new = [
        ("name", "Nina"),
        ("role", "viewer"),
        ("password", "nina's long password"),
    ];
    assert_eq!(
        post(&app, "/ops/operators", &operator, &new).await.0,
        403,
        "an operator cannot add operators"
    );
    assert_eq!(get(&app, "/ops/operators", &operator).await.0, 403);
    assert!(app.ctx().store.operator("nina").await.unwrap().is_none());
    // Bad input changes nothing.
    for bad in [
        [
            ("name", "Nina"),
            ("role", "root"),
            ("password", "nina's long password"),
        ],
        [("name", "Nina"), ("role", "viewer"), ("password", "short")],
        [
            ("name", "ni na"),
            ("role", "viewer"),
            ("password", "nina's long password"),
        ],
    ] {
        let (status, location) = post(&app, "/ops/operators", &admin, &bad).await;
        assert_eq!(status, 303);
        assert!(location.contains("error="), "{location}");
    }
    assert!(app.ctx().store.operator("nina").await.unwrap().is_none());
    let (_, location) = post(&app, "/ops/operators", &admin, &new).await;
    assert!(location.contains("done=operator_added"), "{location}");
    let (_, _, set, _) = login(&app, "nina", "nina's long password", None).await;
    let nina = set
        .expect("the new operator signs in")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(get(&app, "/ops", &nina).await.0, 200);
    // A new role ends their sessions; so does disabling.
    assert!(post(
        &app,
        "/ops/operators/nina/role",
        &admin,
        &[("role", "operator")]
    )
    .await
    .1
    .contains("done="));
    assert_eq!(
        app.ctx()
            .store
            .operator("nina")
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Operator
    );
    assert_eq!(get(&app, "/ops", &nina).await.0, 303);
    assert!(post(&app, "/ops/operators/nina/disable", &admin, &[])
        .await
        .1
        .contains("done="));
    assert_eq!(
        login(&app, "nina", "nina's long password", None).await.0,
        401
    );
    assert!(post(&app, "/ops/operators/ada/disable", &admin, &[])
        .await
        .1
        .contains("error=not_yourself"));
    let (status, _, page) = get(&app, "/ops/operators", &admin).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-operator="nina""#));
    let actions = audit_actions(&app).await;
    for action in ["operator_added", "operator_role", "operator_disabled"] {
        assert!(
            actions.contains(&("ada".to_string(), action.to_string())),
            "{action}: {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_second_factor_is_set_up_by_qr_asked_at_sign_in_and_recovery_codes_work_once() {
    use scanpay::server::support::totp;
    let app = app_with(&[]).await;
    let cookie = signed_in(&app, "otto").await;
    assert!(post(&app, "/ops/2fa/start", &cookie, &[])
        .await
        .1
        .ends_with("/ops/2fa"));
    let (_, _, page) = get(&app, "/ops/2fa", &cookie).await;
    assert!(page.contains("<svg"), "a QR code: {page}");
    let at = page
        .find("twofa-secret")
        .unwrap_or_else(|| panic!("{page}"));
    let secret_b32 = page[at..]
        .split('>')
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_string();
    let secret = totp::base32_decode(&secret_b32).unwrap();
    let step = now_ms() / 1000 / totp::STEP_SECS;
    assert!(
        post(&app, "/ops/2fa/enable", &cookie, &[("code", "000000")])
            .await
            .1
            .contains("error=bad_code")
            || totp::code(&secret, step, 6) == "000000"
    );
    let r = app
        .http
        .post(format!("{}/ops/2fa/enable", app.base))
        .header("cookie", &cookie)
        .header("origin", &app.base)
        .form(&[("code", totp::code(&secret, step, 6))])
        .send()
        .await
        .unwrap();
    let loc = format!("{} {:?}", r.status(), r.headers().get("location"));
    let body = r.text().await.unwrap();
    let at = body
        .find("twofa-recovery")
        .unwrap_or_else(|| panic!("{loc}: {body}"));
    let recovery: Vec<String> = body[at..]
        .split("</ul>")
        .next()
        .unwrap()
        .split("<li>")
        .skip(1)
        .map(|li| li.split('<').next().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10, "{body}");
    // Now a password alone is not enough; the same code twice neither.
    let form = |code: String| {
        vec![
            ("name", "otto".to_string()),
            ("password", PW.to_string()),
            ("code", code),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let r = app
            .http
            .post(format!("{}/ops/login", app.base))
            .header("origin", &app.base)
            .form(&f);
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(form(String::new())).await, 401);
    assert_eq!(
        send(form(totp::code(&secret, step, 6))).await,
        401,
        "the step used to enable it is spent"
    );
    assert_eq!(send(form(totp::code(&secret, step + 1, 6))).await, 303);
    assert_eq!(
        send(form(recovery[0].clone())).await,
        303,
        "a recovery code"
    );
    assert_eq!(send(form(recovery[0].clone())).await, 401, "used once");
    let actions = audit_actions(&app).await;
    assert!(actions.contains(&("otto".to_string(), "second_factor_on".to_string())));
}

/// PostgreSQL + RabbitMQ only: a dead-lettered pay result is listed on the overview with what it
/// carries (and stays there), and an admin — only an admin — hands it back to the consumers.
#[tokio::test]
async fn dead_letters_are_listed_and_an_admin_requeues_them() {
    if !crate::common::full_engines() {
        return;
    }
    let app = app_with(&[]).await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("BUN-RED", 1)]).await;
    let o = app
        .wait_for(&id, "its QR code", |o| o.code_url.is_some())
        .await;
    let result = serde_json::json!({
        "out_trade_no": id, "transaction_id": "4200000000000000000000000042",
        "total_fee": o.total_fee, "time_end": "20261201120000", "paid_at_ms": 1_796_097_600_000i64,
    });
    let rabbit = scanpay::server::amqp::Rabbit::connect(app.ctx().settings.amqp.clone().unwrap())
        .await
        .unwrap();
    let names = rabbit.names();
    rabbit
        .publish(
            "",
            &names.dead_queue,
            "4200000000000000000000000042",
            result.to_string().as_bytes(),
        )
        .await
        .unwrap();
    let admin = signed_in(&app, "ada").await;
    let operator = signed_in(&app, "otto").await;
    for _ in 0..2 {
        let (status, _, page) = get(&app, "/ops", &admin).await;
        assert_eq!(status, 200);
        assert!(
            page.contains("4200000000000000000000000042"),
            "listed with what it carries"
        );
        assert!(page.contains("ops-requeue"));
    }
    assert_eq!(
        rabbit.dead_letters().await.unwrap(),
        1,
        "listing leaves it where it is"
    );
    let (_, _, page) = get(&app, "/ops", &operator).await;
    assert!(
        !page.contains("ops-requeue"),
        "no requeue button for an operator"
    );
    assert_eq!(
        post(&app, "/ops/dead-letters/requeue", &operator, &[])
            .await
            .0,
        403
    );
    assert_eq!(
        post(&app, "/ops/dead-letters/requeue", &admin, &[]).await.1,
        "/ops?done=requeued"
    );
    app.wait_for(&id, "paid by the requeued pay result", |o| {
        o.status == scanpay::app::types::OrderStatus::Paid
    })
    .await;
    assert_eq!(rabbit.dead_letters().await.unwrap(), 0);
    assert!(audit_actions(&app)
        .await
        .contains(&("ada".to_string(), "requeue".to_string())));
}

/// Sessions end at their absolute time-out however busy they are.
#[tokio::test]
async fn a_session_ends_at_its_absolute_time_out() {
    let app = app_with(&[("SCANPAY_OPS_SESSION_LIFETIME", "2s")]).await;
    let signed = std::time::Instant::now();
    let cookie = signed_in(&app, "vera").await;
    // Used within its first second (timed from before the sign-in: a slow machine cannot
    // stretch the loop past the lifetime), then waited out.
    while signed.elapsed() < Duration::from_millis(1_000) {
        assert_eq!(get(&app, "/ops", &cookie).await.0, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_200).saturating_sub(signed.elapsed())).await;
    assert_eq!(
        get(&app, "/ops", &cookie).await.0,
        303,
        "used all along, ended all the same"
    );
}

/// The CSV export of 10,000 orders: every one, once, in order, read 500 at a time (the response
/// is a stream of pages; nothing holds the whole file).
#[tokio::test]
async fn the_csv_export_streams_ten_thousand_orders() {
    let app = app_with(&[]).await;
    let base = now_ms() - 86_400_000;
    let mut tx = app.db.begin().await.unwrap();
    for i in 0..10_000i64 {
        sqlx::query(&crate::common::sql(
            "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, updated_at) \
             VALUES (?, 's', 'closed', ?, 'Tea, \"the good one\"', ?, ?, ?)",
        ))
        .bind(format!("SPCSV{i:08}"))
        .bind(100 + i)
        .bind(base + i)
        .bind(base + i + 1)
        .bind(base + i)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let cookie = signed_in(&app, "vera").await;
    let r = app
        .http
        .get(format!("{}/ops/orders.csv?status=closed", app.base))
        .header("cookie", &cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "streamed, not built first"
    );
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 10_001, "a header and every order once");
    assert!(
        lines[1].starts_with("\"SPCSV00009999\",closed,100.99,"),
        "{}",
        lines[1]
    );
    assert!(lines[10_000].starts_with("\"SPCSV00000000\",closed,1.00,"));
    // Compressed on the way, as a browser asks: the whole file arrives (the stream used to be
    // polled after its end and the handler panicked, cutting the download).
    let r = app
        .http
        .get(format!("{}/ops/orders.csv?status=closed", app.base))
        .header("cookie", &cookie)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..]),
        &mut text,
    )
    .unwrap();
    assert_eq!(text.lines().count(), 10_001);
    assert!(
        lines[1].ends_with("\"Tea, \"\"the good one\"\"\""),
        "quoted: {}",
        lines[1]
    );
}

/// An anomaly's own payment is refunded from the anomalies page (not the order's).
#[tokio::test]
async fn an_anomalys_payment_is_refunded_from_the_console_not_the_orders() {
    let app = app_with(&[("SCANPAY_REFUND_AUTOMATIC", "false")]).await;
    let (_, id) = paid_order(&app, &[("BUN-RED", 1)]).await;
    let o = app.order(&id).await;
    // A second payment for the same order (WeChat can take two when a shopper scans twice).
    let second = "4200000000000000000000000777";
    let payment = scanpay::server::domain::Payment {
        out_trade_no: id.clone(),
        transaction_id: second.into(),
        total_fee: o.total_fee,
        paid_at: now_ms(),
    };
    app.ctx()
        .store
        .mark_paid(&payment, scanpay::server::domain::Cause::Notify)
        .await
        .unwrap();
    let anomaly = app.ctx().store.anomalies_of(&id).await.unwrap().remove(0);
    assert_eq!(anomaly.transaction_id, second);
    let operator = signed_in(&app, "otto").await;
    let (_, _, page) = get(&app, "/ops/anomalies", &operator).await;
    assert!(page.contains(&format!("/ops/anomalies/{}/refund", anomaly.id)));
    let (status, location) = post(
        &app,
        &format!("/ops/anomalies/{}/refund", anomaly.id),
        &operator,
        &[("reason", "paid twice")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/ops/anomalies?done=refund_requested")
    );
    let refunds = app.ctx().store.refunds_of(&id).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        refunds[0].transaction_id, second,
        "the second payment, not the order's"
    );
    assert_eq!(refunds[0].refund_fee, o.total_fee);
    assert_eq!(refunds[0].anomaly_id.as_deref(), Some(anomaly.id.as_str()));
    // A flash is only the console's own words.
    let (_, _, page) = get(&app, "/ops/anomalies?error=Call+0800+now", &operator).await;
    assert!(!page.contains("Call 0800 now"));
}
