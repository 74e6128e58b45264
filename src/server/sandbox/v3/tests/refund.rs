use std::time::Duration;

use serde_json::{json, Value};

use super::{app, open_notify, otn, receiver, App, MCH, NOWHERE};
use crate::server::sandbox::faults::Faults;
use crate::server::sandbox::v3::V3Mode;
use crate::server::sandbox::ApiVersion;

const REFUNDS: &str = "/v3/refund/domestic/refunds";

fn ask(out_trade_no: &str, out_refund_no: &str, refund: i64, total: i64) -> Value {
    json!({
        "out_trade_no": out_trade_no,
        "out_refund_no": out_refund_no,
        "reason": "商品已售完",
        "amount": {"refund": refund, "total": total, "currency": "CNY"},
    })
}

async fn paid(app: &App, total: i64) -> String {
    let no = otn();
    app.native(&no, total, NOWHERE).await;
    app.sb.pay(MCH, &no).unwrap();
    no
}

async fn query(app: &App, out_refund_no: &str) -> super::Answer {
    app.call("GET", &format!("{REFUNDS}/{out_refund_no}"), None)
        .await
}

/// Polls the refund until it leaves PROCESSING (up to 5 s).
async fn settled(app: &App, out_refund_no: &str) -> Value {
    for _ in 0..500 {
        let r = query(app, out_refund_no).await.json();
        if r["status"] != "PROCESSING" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{out_refund_no} still PROCESSING");
}

#[tokio::test]
async fn a_refund_is_processing_then_succeeds_and_is_idempotent() {
    let app = app(V3Mode::PublicKey).await;
    let no = paid(&app, 100).await;
    let rno = format!("R{no}");
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, &rno, 40, 100)))
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    app.assert_signed_by(&a, &app.v3.public_key.id);
    let r = a.json();
    assert_eq!(r["status"], "PROCESSING");
    assert_eq!(r["out_trade_no"], no.as_str());
    assert_eq!(r["channel"], "ORIGINAL");
    assert_eq!(r["funds_account"], "UNSETTLED");
    assert_eq!(
        (
            r["amount"]["refund"].as_i64(),
            r["amount"]["total"].as_i64()
        ),
        (Some(40), Some(100))
    );
    assert!(r["create_time"].as_str().unwrap().ends_with("+08:00"));
    assert!(r.get("success_time").is_none());
    let refund_id = r["refund_id"].as_str().unwrap().to_string();
    assert!(refund_id.starts_with("50") && refund_id.len() == 29);
    // The same number again is the same refund; other amounts under it are refused.
    let again = app
        .call("POST", REFUNDS, Some(&ask(&no, &rno, 40, 100)))
        .await
        .json();
    assert_eq!(again["refund_id"], refund_id.as_str());
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, &rno, 41, 100)))
        .await;
    assert_eq!(a.code(400), "INVALID_REQUEST");
    assert_eq!(app.sb.refunds(MCH, &no).len(), 1);
    assert_eq!(app.sb.refunds(MCH, &no)[0].api, ApiVersion::V3);

    let r = settled(&app, &rno).await;
    assert_eq!(r["status"], "SUCCESS");
    assert_eq!(r["refund_id"], refund_id.as_str());
    assert!(r["success_time"].as_str().unwrap().ends_with("+08:00"));
    assert_eq!(app.query(&no).await.json()["trade_state"], "REFUND");
    // More than is left, after the (scaled) minute between refunds.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, "R2", 61, 100)))
        .await;
    assert_eq!(a.code(400), "INVALID_REQUEST");
    // By WeChat's number instead of ours.
    let txn = r["transaction_id"].as_str().unwrap();
    let by_txn = json!({"transaction_id": txn, "out_refund_no": "R3",
        "amount": {"refund": 60, "total": 100, "currency": "CNY"}});
    let a = app.call("POST", REFUNDS, Some(&by_txn)).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}

#[tokio::test]
async fn unknown_refunds_and_orders_do_not_exist() {
    let app = app(V3Mode::PublicKey).await;
    assert_eq!(
        query(&app, "NOSUCHREFUND").await.code(404),
        "RESOURCE_NOT_EXISTS"
    );
    let a = app
        .call("POST", REFUNDS, Some(&ask("NEVERPLACED1", "R1", 1, 1)))
        .await;
    assert_eq!(a.code(404), "RESOURCE_NOT_EXISTS");
    // Placed but not paid.
    let no = otn();
    app.native(&no, 10, NOWHERE).await;
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, "R1", 1, 10)))
        .await;
    assert_eq!(a.code(404), "RESOURCE_NOT_EXISTS");
    // Bad fields.
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, "R1", 11, 10)))
        .await;
    assert_eq!(a.code(400), "INVALID_REQUEST");
    let mut body = ask(&no, "R1", 1, 10);
    body["amount"].as_object_mut().unwrap().remove("currency");
    assert_eq!(
        app.call("POST", REFUNDS, Some(&body)).await.code(400),
        "PARAM_ERROR"
    );
    assert!(app.sb.refunds(MCH, &no).is_empty());
}

#[tokio::test]
async fn refund_faults_apply_to_v3_refunds() {
    let app = app(V3Mode::PublicKey).await;
    let no = paid(&app, 100).await;
    app.sb
        .set_faults(Some(&no), Faults::parse("refund=notenough").unwrap());
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, "R1", 10, 100)))
        .await;
    assert_eq!(a.code(403), "NOT_ENOUGH");
    assert!(app.sb.refunds(MCH, &no).is_empty());
    app.sb
        .set_faults(Some(&no), Faults::parse("refund=systemerror").unwrap());
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, "R1", 10, 100)))
        .await;
    assert_eq!(a.code(500), "SYSTEM_ERROR");
    assert!(app.sb.refunds(MCH, &no).is_empty());
    // Applied despite the error: the retry with the same number finds it.
    let spec = "refund=systemerror_applied,refund_outcome=change";
    app.sb.set_faults(Some(&no), Faults::parse(spec).unwrap());
    let a = app
        .call("POST", REFUNDS, Some(&ask(&no, "R1", 10, 100)))
        .await;
    assert_eq!(a.code(500), "SYSTEM_ERROR");
    assert_eq!(app.sb.refunds(MCH, &no).len(), 1);
    assert_eq!(settled(&app, "R1").await["status"], "ABNORMAL");
    app.sb
        .set_faults(Some(&no), Faults::parse("refundquery=systemerror").unwrap());
    assert_eq!(query(&app, "R1").await.code(500), "SYSTEM_ERROR");
}

#[tokio::test]
async fn a_refund_with_a_notify_url_is_notified_in_v3() {
    let app = app(V3Mode::Certificate).await;
    let merchant = receiver(0).await;
    let no = paid(&app, 100).await;
    let mut body = ask(&no, "RN1", 30, 100);
    body["notify_url"] = json!(merchant.url);
    body["funds_account"] = json!("AVAILABLE");
    let r = app.call("POST", REFUNDS, Some(&body)).await.json();
    assert_eq!(r["funds_account"], "AVAILABLE");
    let got = merchant.wait(1).await;
    let (envelope, resource) = open_notify(&app, &got[0].0, &got[0].1);
    assert_eq!(
        super::header(&got[0].0, "wechatpay-serial"),
        app.v3.certificate.id
    );
    assert_eq!(envelope["event_type"], "REFUND.SUCCESS");
    assert_eq!(envelope["summary"], "退款成功");
    assert_eq!(envelope["resource"]["original_type"], "refund");
    assert_eq!(resource["refund_status"], "SUCCESS");
    assert_eq!(resource["out_refund_no"], "RN1");
    assert_eq!(resource["refund_id"], r["refund_id"]);
    assert_eq!(resource["mchid"], MCH);
    assert_eq!(resource["out_trade_no"], no.as_str());
    assert!(resource["success_time"]
        .as_str()
        .unwrap()
        .ends_with("+08:00"));
    assert_eq!(
        resource["amount"],
        json!({"total": 100, "refund": 30, "payer_total": 100, "payer_refund": 30})
    );
    assert_eq!(resource["user_received_account"], "支付用户零钱");
}
