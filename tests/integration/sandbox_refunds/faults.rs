//! The refund fault knobs (`refund=`, `refundquery=`, `refund_outcome=`, `refund_notify=`), each
//! shown doing what it says.

use std::time::{Duration, Instant};

use scanpay::server::sandbox::faults::Faults;
use scanpay::server::sandbox::RefundStatus;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::{ErrCode, RefundState, WxPayError};

use super::{ask, business, client, eventually, mch, paid, sandbox, Receiver};
use crate::common::spawn_app;

#[tokio::test]
async fn refund_faults_systemerror_timeout_latency_notenough() {
    let app = spawn_app(&[]).await;
    let sb = sandbox(&app);
    let m = mch(&app);
    let c = client(&app, Duration::from_secs(5));
    let set = |no: &str, spec: &str| sb.set_faults(Some(no), Faults::parse(spec).unwrap());

    // systemerror: nothing recorded; the retry after the fault refunds.
    let o = paid(&app, "RFSE", 100).await;
    set(&o.0, "refund=systemerror");
    let e = c.refund(&ask(&o, "RFSE1", 100, 100)).await.unwrap_err();
    assert!(e.is_retryable() && business(e).0 == ErrCode::SystemError);
    assert!(sb.refunds(&m, &o.0).is_empty());
    set(&o.0, "");
    c.refund(&ask(&o, "RFSE1", 100, 100)).await.unwrap();
    assert_eq!(sb.refunds(&m, &o.0).len(), 1);

    // systemerror_applied: recorded despite the error; the same number again is that refund.
    let o = paid(&app, "RFSA", 100).await;
    set(&o.0, "refund=systemerror_applied");
    assert_eq!(
        business(c.refund(&ask(&o, "RFSA1", 100, 40)).await.unwrap_err()).0,
        ErrCode::SystemError
    );
    let held = sb.refunds(&m, &o.0);
    assert_eq!(held.len(), 1);
    assert_eq!(
        business(c.refund(&ask(&o, "RFSA1", 100, 40)).await.unwrap_err()).0,
        ErrCode::SystemError
    );
    set(&o.0, "");
    let again = c.refund(&ask(&o, "RFSA1", 100, 40)).await.unwrap();
    assert_eq!(again.refund_id, held[0].refund_id);
    assert_eq!(sb.refunds(&m, &o.0).len(), 1, "refunded once");

    // timeout: the client gives up; the refund was recorded, and the retry finds it.
    let o = paid(&app, "RFTO", 100).await;
    set(&o.0, "refund=timeout");
    let impatient = client(&app, Duration::from_millis(500));
    let e = impatient
        .refund(&ask(&o, "RFTO1", 100, 100))
        .await
        .unwrap_err();
    assert!(matches!(e, WxPayError::Transport(_)), "{e:?}");
    let held = sb.refunds(&m, &o.0);
    assert_eq!(held.len(), 1);
    set(&o.0, "");
    assert_eq!(
        c.refund(&ask(&o, "RFTO1", 100, 100))
            .await
            .unwrap()
            .refund_id,
        held[0].refund_id
    );

    // latency: answered normally, later.
    let o = paid(&app, "RFLAT", 100).await;
    set(&o.0, "refund=latency:300ms");
    let start = Instant::now();
    c.refund(&ask(&o, "RFLAT1", 100, 100)).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));

    // notenough, set over HTTP like an operator: NOTENOUGH, nothing recorded.
    let o = paid(&app, "RFNE", 100).await;
    let r = app
        .http
        .post(format!("{}/sandbox/admin/faults", app.base))
        .form(&[("spec", "refund=notenough"), ("out_trade_no", o.0.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        business(c.refund(&ask(&o, "RFNE1", 100, 100)).await.unwrap_err()).0,
        ErrCode::NotEnough
    );
    assert!(sb.refunds(&m, &o.0).is_empty());

    // refundquery has the API faults too.
    let o = paid(&app, "RFQ", 100).await;
    c.refund(&ask(&o, "RFQ1", 100, 100)).await.unwrap();
    set(&o.0, "refundquery=systemerror");
    assert_eq!(
        business(c.refund_query("RFQ1").await.unwrap_err()).0,
        ErrCode::SystemError
    );
}

#[tokio::test]
async fn refund_outcome_and_refund_notify_faults() {
    let app = spawn_app(&[]).await;
    let sb = sandbox(&app);
    let m = mch(&app);
    let merchant = app.ctx().settings.merchant.clone();
    let c = client(&app, Duration::from_secs(5));
    let set = |no: &str, spec: &str| sb.set_faults(Some(no), Faults::parse(spec).unwrap());

    for (spec, status, state) in [
        (
            "refund_outcome=change",
            RefundStatus::Change,
            RefundState::Change,
        ),
        (
            "refund_outcome=close",
            RefundStatus::Closed,
            RefundState::Closed,
        ),
    ] {
        let rx = Receiver::start(vec![]).await;
        let o = paid(&app, "RFOUT", 100).await;
        set(&o.0, spec);
        let orn = format!("RO{}", now_ms());
        let mut req = ask(&o, &orn, 100, 100);
        req.notify_url = rx.url.clone();
        c.refund(&req).await.unwrap();
        eventually(spec, Duration::from_secs(5), || rx.hits() >= 1).await;
        assert_eq!(sb.refund(&m, &orn).unwrap().1.status, status);
        let n = &rx.notifies(&merchant)[0];
        assert_eq!(
            (n.state.clone(), n.success_time.clone()),
            (state.clone(), None)
        );
        assert_eq!(c.refund_query(&orn).await.unwrap().state, state);
    }

    // processing: never settles, never notifies.
    let rx = Receiver::start(vec![]).await;
    let held = paid(&app, "RFPROC", 100).await;
    set(&held.0, "refund_outcome=processing");
    let mut req = ask(&held, "RFP1", 100, 100);
    req.notify_url = rx.url.clone();
    c.refund(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.refund_query("RFP1").await.unwrap().state,
        RefundState::Processing
    );
    assert_eq!(rx.hits(), 0);

    // drop: settles, but the notify is never sent.
    let rx = Receiver::start(vec![]).await;
    let o = paid(&app, "RFDROP", 100).await;
    set(&o.0, "refund_notify=drop");
    let mut req = ask(&o, "RFD1", 100, 100);
    req.notify_url = rx.url.clone();
    c.refund(&req).await.unwrap();
    eventually("SUCCESS", Duration::from_secs(5), || {
        sb.refund(&m, "RFD1").unwrap().1.status == RefundStatus::Success
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits(), 0);

    // duplicate:3 (one after another) and concurrent:3 (at once): three deliveries of one refund.
    for (spec, orn) in [
        ("refund_notify=duplicate:3", "RFDUP1"),
        ("refund_notify=concurrent:3", "RFCON1"),
    ] {
        let rx = Receiver::start(vec![]).await;
        let o = paid(&app, "RFDUP", 100).await;
        set(&o.0, spec);
        let mut req = ask(&o, orn, 100, 100);
        req.notify_url = rx.url.clone();
        c.refund(&req).await.unwrap();
        eventually(spec, Duration::from_secs(5), || rx.hits() >= 3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let notifies = rx.notifies(&merchant);
        assert_eq!(notifies.len(), 3, "{spec}");
        assert!(notifies
            .iter()
            .all(|n| n.out_refund_no == orn && n.state == RefundState::Success));
    }

    // The admin view lists an order's refunds for tests and operators out of process.
    let text = app
        .http
        .get(format!("{}/sandbox/admin/refunds", app.base))
        .query(&[("out_trade_no", held.0.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed[0]["out_refund_no"], "RFP1");
    assert_eq!(listed[0]["status"], "PROCESSING");
    assert_eq!(listed.as_array().unwrap().len(), 1);
}
