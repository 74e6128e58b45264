//! The sandbox's `pay/downloadbill` as WeChat serves it (wxpay-refund-bill.md §4), read by the
//! real client and parser: today's bill, the Beijing day's edge, `Bill Creating`, refusals as
//! plain XML (even with GZIP), and each `bill=`/`downloadbill=` knob.

use std::time::{Duration, Instant};

use scanpay::server::sandbox::bill::day_start_ms;
use scanpay::server::sandbox::faults::Faults;
use scanpay::server::sandbox::{RefundStatus, Sandbox};
use scanpay::server::support::clock::parse_beijing;
use scanpay::server::support::clock::{format_beijing, now_ms};
use scanpay::server::wxpay::bill::{parse, Bill, BillAnswer, BillRow};
use scanpay::server::wxpay::xml::Params;
use scanpay::server::wxpay::{
    sign, ApiKey, RefundRequest, UnifiedOrderRequest, WxPayClient, WxPayError,
};

use crate::common::{spawn_app, TestApp};

const READY_AT_ONCE: (&str, &str) = ("SCANPAY_SANDBOX_BILL_READY_AFTER", "0s");
const DAY_MS: i64 = 86_400_000;

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

fn day(utc_ms: i64) -> String {
    format_beijing(utc_ms)[..8].to_string()
}

/// An order placed at the sandbox; paid unless `pay` is false. (out_trade_no, transaction_id)
async fn order(app: &TestApp, prefix: &str, total_fee: i64, pay: bool) -> (String, String) {
    let c = client(app, Duration::from_secs(5));
    let no = format!("{prefix}{}", now_ms());
    let issued = c
        .unified_order(&UnifiedOrderRequest {
            body: "乌龙茶".into(),
            out_trade_no: no.clone(),
            total_fee,
            spbill_create_ip: "127.0.0.1".into(),
            notify_url: "http://127.0.0.1:9/wxpay/notify".into(),
            product_id: "TEA".into(),
            time_start: None,
            time_expire: None,
            attach: Some("table=7".into()),
        })
        .await
        .unwrap();
    if !pay {
        return (no, String::new());
    }
    sandbox(app).pay_code(&issued.code_url).unwrap();
    let txn = c.order_query(&no).await.unwrap().transaction_id.unwrap();
    (no, txn)
}

async fn refund(app: &TestApp, o: &(String, String), total: i64, fee: i64) -> String {
    let orn = format!("R{}", o.0);
    let req = RefundRequest {
        transaction_id: o.1.clone(),
        out_trade_no: o.0.clone(),
        out_refund_no: orn.clone(),
        total_fee: total,
        refund_fee: fee,
        refund_desc: "退货".into(),
        notify_url: "http://127.0.0.1:9/wxpay/refund_notify".into(),
    };
    client(app, Duration::from_secs(5))
        .refund(&req)
        .await
        .unwrap();
    orn
}

async fn bill(app: &TestApp, date: &str) -> Bill {
    match client(app, Duration::from_secs(5))
        .download_bill(date)
        .await
        .unwrap()
    {
        BillAnswer::Text(t) => parse(&t).unwrap(),
        other => panic!("{date}: {other:?}"),
    }
}

fn payment<'a>(b: &'a Bill, no: &str) -> Option<&'a BillRow> {
    b.rows
        .iter()
        .find(|r| r.out_trade_no == no && !r.is_refund())
}

fn refunds_of<'a>(b: &'a Bill, no: &str) -> Vec<&'a BillRow> {
    b.rows
        .iter()
        .filter(|r| r.out_trade_no == no && r.is_refund())
        .collect()
}

/// Waits until the refunds leave PROCESSING (the sandbox settles them after a scaled delay).
async fn settled(sb: &Sandbox, mch: &str, out_refund_nos: &[&str]) {
    let start = Instant::now();
    for orn in out_refund_nos {
        while sb.refund(mch, orn).unwrap().1.status == RefundStatus::Processing {
            assert!(start.elapsed() < Duration::from_secs(5), "{orn} settles");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn refused(a: BillAnswer) -> (String, String) {
    match a {
        BillAnswer::Refused { msg, code } => (msg, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A signed request by hand (for what the client never asks): (content-type, body).
async fn raw(app: &TestApp, fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let m = &app.ctx().settings.merchant;
    let mut p = Params::new();
    let own = [
        ("appid", m.appid.as_str()),
        ("mch_id", m.mch_id.as_str()),
        ("nonce_str", "n0nce"),
        ("sign_type", m.sign_type.as_str()),
    ];
    for (k, v) in own.iter().chain(fields) {
        p.insert(k.to_string(), v.to_string());
    }
    p.insert(
        "sign".into(),
        sign::sign(&p, m.api_key.expose(), m.sign_type),
    );
    let r = app
        .http
        .post(format!("{}/sandbox/pay/downloadbill", app.base))
        .body(scanpay::server::wxpay::xml::to_xml(&p))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn todays_bill_holds_the_payments_and_refunds_of_the_beijing_day() {
    let app = spawn_app(&[READY_AT_ONCE]).await;
    let sb = sandbox(&app);
    let a = order(&app, "BA", 100, true).await;
    let b = order(&app, "BB", 250, true).await;
    let c = order(&app, "BC", 1000, true).await;
    let unpaid = order(&app, "BU", 300, false).await;
    let partial = refund(&app, &b, 250, 100).await;
    let full = refund(&app, &c, 1000, 1000).await;
    settled(&sb, &mch(&app), &[&partial, &full]).await;
    // Paid a second before today's Beijing midnight: yesterday's, not today's.
    let late = order(&app, "BL", 700, true).await;
    let now = now_ms();
    let today = day(now);
    let midnight = day_start_ms(&today).unwrap();
    let paid_ms = match sb.order(&mch(&app), &late.0).unwrap().state {
        scanpay::server::sandbox::TradeState::Success { time_end, .. } => {
            parse_beijing(&time_end).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert!(sb.backdate(&mch(&app), &late.0, paid_ms - midnight + 1000));

    let bill_today = bill(&app, &today).await;
    for (o, fee) in [(&a, 100), (&b, 250), (&c, 1000)] {
        let r = payment(&bill_today, &o.0).unwrap();
        assert_eq!(
            (r.transaction_id.as_str(), r.settlement_fen, r.order_fen),
            (o.1.as_str(), fee, Some(fee))
        );
        assert_eq!(
            (r.trade_state.as_str(), r.trade_type.as_str()),
            ("SUCCESS", "NATIVE")
        );
        assert_eq!((r.body.as_str(), r.attach.as_str()), ("乌龙茶", "table=7"));
        assert!(r.trade_time.starts_with(&format!(
            "{}-{}-{}",
            &today[..4],
            &today[4..6],
            &today[6..]
        )));
    }
    for (o, orn, fee) in [(&b, &partial, 100), (&c, &full, 1000)] {
        let rs = refunds_of(&bill_today, &o.0);
        assert_eq!(rs.len(), 1);
        let (_, held) = sb.refund(&mch(&app), orn).unwrap();
        assert_eq!(rs[0].out_refund_no.as_deref(), Some(orn.as_str()));
        assert_eq!(rs[0].refund_id.as_deref(), Some(held.refund_id.as_str()));
        assert_eq!(
            (rs[0].refund_fen, rs[0].applied_refund_fen),
            (fee, Some(fee))
        );
        assert_eq!(rs[0].refund_status.as_deref(), Some(held.status.as_str()));
    }
    assert_eq!(
        refunds_of(&bill_today, &c.0)[0].refund_status.as_deref(),
        Some("SUCCESS")
    );
    assert!(bill_today
        .rows
        .iter()
        .all(|r| r.out_trade_no != unpaid.0 && r.out_trade_no != late.0));
    assert_eq!(bill_today.rows.len(), 5);
    assert_eq!(bill_today.summary.settlement_fen, 1350);

    let yesterday = bill(&app, &day(now - DAY_MS)).await;
    let r = payment(&yesterday, &late.0).unwrap();
    assert!(r.trade_time.ends_with("23:59:59"), "{}", r.trade_time);
    assert_eq!(yesterday.rows.len(), 1);
}

#[tokio::test]
async fn no_bill_bad_dates_bad_signatures_and_plain_xml_errors() {
    let app = spawn_app(&[READY_AT_ONCE]).await;
    let c = client(&app, Duration::from_secs(5));
    assert_eq!(
        c.download_bill("20200101").await.unwrap(),
        BillAnswer::NoBill
    );
    let tomorrow = day(now_ms() + DAY_MS);
    for bad in ["20240230", "2024-01-01", "2024010", "", tomorrow.as_str()] {
        let (msg, code) = refused(c.download_bill(bad).await.unwrap());
        assert_eq!(
            (msg.as_str(), code.as_str()),
            ("invalid bill_date", "20001"),
            "{bad:?}"
        );
    }
    let mut wrong = app.ctx().settings.merchant.clone();
    wrong.api_key = ApiKey::new("0".repeat(32));
    let impostor = WxPayClient::new(
        &format!("{}/sandbox/", app.base),
        wrong,
        Duration::from_secs(5),
    );
    assert_eq!(
        refused(impostor.download_bill("20200101").await.unwrap()).0,
        "签名错误"
    );

    // Refusals are plain XML, gzip asked or not; the bill is the text or its gzip.
    let (ct, body) = raw(
        &app,
        &[
            ("bill_date", "20200101"),
            ("bill_type", "ALL"),
            ("tar_type", "GZIP"),
        ],
    )
    .await;
    assert!(ct.starts_with("text/xml"), "{ct}");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg><error_code><![CDATA[20002]]></error_code></xml>"
    );
    for (k, v) in [("bill_type", "BOGUS"), ("tar_type", "ZIP")] {
        let mut f = vec![("bill_date", "20200101"), ("bill_type", "ALL")];
        f.retain(|(n, _)| *n != k);
        f.push((k, v));
        let (_, body) = raw(&app, &f).await;
        assert!(String::from_utf8(body)
            .unwrap()
            .contains(&format!("invalid {k}")));
    }
    order(&app, "BZ", 100, true).await;
    let today = day(now_ms());
    let (ct, plain) = raw(&app, &[("bill_date", &today), ("bill_type", "ALL")]).await;
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(plain.starts_with("\u{feff}交易时间,".as_bytes()) && plain.ends_with(b"\r\n"));
    let (ct, gz) = raw(
        &app,
        &[
            ("bill_date", &today),
            ("bill_type", "ALL"),
            ("tar_type", "GZIP"),
        ],
    )
    .await;
    assert_eq!(
        (ct.as_str(), &gz[..2]),
        ("application/x-gzip", &[0x1f, 0x8b][..])
    );
    let text = match scanpay::server::wxpay::bill::classify(&gz).unwrap() {
        BillAnswer::Text(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(text.as_bytes(), plain);
    let (_, success) = raw(&app, &[("bill_date", &today), ("bill_type", "SUCCESS")]).await;
    assert_eq!(
        parse(std::str::from_utf8(&success).unwrap())
            .unwrap()
            .columns,
        20
    );
    let (_, refunds) = raw(&app, &[("bill_date", &today), ("bill_type", "REFUND")]).await;
    assert!(String::from_utf8(refunds)
        .unwrap()
        .contains("No Bill Exist"));
}

#[tokio::test]
async fn a_bill_is_creating_until_nine_hours_after_its_day() {
    // The default setting: WeChat's 09:00 the next day.
    let app = spawn_app(&[]).await;
    order(&app, "BN", 100, true).await;
    let c = client(&app, Duration::from_secs(5));
    let now = now_ms();
    assert_eq!(
        c.download_bill(&day(now)).await.unwrap(),
        BillAnswer::NotReady
    );
    let yesterday = c.download_bill(&day(now - DAY_MS)).await.unwrap();
    let beijing_hour: u32 = format_beijing(now)[8..10].parse().unwrap();
    let want = if beijing_hour < 9 {
        BillAnswer::NotReady
    } else {
        BillAnswer::NoBill
    };
    assert_eq!(yesterday, want, "at Beijing hour {beijing_hour}");
    assert_eq!(
        c.download_bill("20200101").await.unwrap(),
        BillAnswer::NoBill
    );
}

#[tokio::test]
async fn bill_knobs_show_through_the_client() {
    let app = spawn_app(&[READY_AT_ONCE]).await;
    let sb = sandbox(&app);
    let set = |no: Option<&str>, spec: &str| sb.set_faults(no, Faults::parse(spec).unwrap());
    let dropped = order(&app, "KD", 100, true).await;
    let off = order(&app, "KO", 200, true).await;
    let flipped = order(&app, "KS", 300, true).await;
    let orn = refund(&app, &flipped, 300, 300).await;
    settled(&sb, &mch(&app), &[&orn]).await;
    set(None, "bill=extra");
    set(Some(&off.0), "bill=amount_off");
    set(Some(&flipped.0), "bill=refund_state");
    // One knob as an operator sets it.
    let r = app
        .http
        .post(format!("{}/sandbox/admin/faults", app.base))
        .form(&[("spec", "bill=drop"), ("out_trade_no", dropped.0.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let today = day(now_ms());
    let b = bill(&app, &today).await;
    assert!(payment(&b, &dropped.0).is_none(), "drop");
    let o = payment(&b, &off.0).unwrap();
    assert_eq!(
        (o.settlement_fen, o.order_fen),
        (201, Some(201)),
        "amount_off"
    );
    assert_eq!(
        refunds_of(&b, &flipped.0)[0].refund_status.as_deref(),
        Some("PROCESSING")
    );
    let ghosts: Vec<_> = b
        .rows
        .iter()
        .filter(|r| r.out_trade_no.starts_with("PHANTOM"))
        .collect();
    assert_eq!(ghosts.len(), 1, "extra");
    assert_eq!(
        (ghosts[0].settlement_fen, ghosts[0].transaction_id.len()),
        (1, 28)
    );
    assert_eq!(
        b.rows.len(),
        4,
        "KO, KS, KS's refund and the phantom; KD's payment left out"
    );

    // The download's own faults.
    let c = client(&app, Duration::from_secs(5));
    set(None, "downloadbill=systemerror");
    // WeChat failed, it did not refuse: an uncertain error, asked again later.
    let e = c.download_bill(&today).await.unwrap_err();
    assert!(
        e.is_retryable() && e.code() == Some(&scanpay::server::wxpay::ErrCode::SystemError),
        "{e:?}"
    );
    set(None, "downloadbill=latency:300ms");
    let start = Instant::now();
    assert!(matches!(
        c.download_bill(&today).await.unwrap(),
        BillAnswer::Text(_)
    ));
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Held back: a client whose calls take 100 ms gives a download 3 s.
    set(None, "downloadbill=timeout");
    let impatient = client(&app, Duration::from_millis(100));
    let e = impatient.download_bill(&today).await.unwrap_err();
    assert!(matches!(e, WxPayError::Transport(_)), "{e:?}");
    sb.clear_faults();
    assert!(payment(&bill(&app, &today).await, &dropped.0).is_some());
}
