use serde_json::json;

use super::{app, order, otn, MCH, NOWHERE};
use crate::server::sandbox::faults::Faults;
use crate::server::sandbox::v3::V3Mode;
use crate::server::sandbox::ApiVersion;

#[tokio::test]
async fn native_answers_a_code_url_and_reentry_follows_the_rules() {
    let app = app(V3Mode::PublicKey).await;
    let no = otn();
    let a = app
        .call(
            "POST",
            "/v3/pay/transactions/native",
            Some(&order(&no, 100, NOWHERE)),
        )
        .await;
    assert_eq!(a.status, 200);
    app.assert_signed_by(&a, &app.v3.public_key.id);
    let code = a.json()["code_url"].as_str().unwrap().to_string();
    assert!(code.starts_with("weixin://wxpay/bizpayurl"), "{code}");
    let held = app.sb.order(MCH, &no).unwrap();
    assert_eq!(held.api, ApiVersion::V3);
    assert_eq!(held.param("body"), "Image形象店-深圳腾大-QQ公仔");
    // The same order again: the same code; another amount under the number: refused.
    assert_eq!(app.native(&no, 100, NOWHERE).await, code);
    let a = app
        .call(
            "POST",
            "/v3/pay/transactions/native",
            Some(&order(&no, 101, NOWHERE)),
        )
        .await;
    assert_eq!(a.code(403), "OUT_TRADE_NO_USED");
    app.assert_signed_by(&a, &app.v3.public_key.id);
    // The shopper scans the code (the phone page's path); then the order is paid, and placing
    // it again is refused as paid.
    app.sb.pay_code(&code).unwrap();
    assert_eq!(app.query(&no).await.json()["trade_state"], "SUCCESS");
    let a = app
        .call(
            "POST",
            "/v3/pay/transactions/native",
            Some(&order(&no, 100, NOWHERE)),
        )
        .await;
    assert_eq!(a.code(400), "ORDER_PAID");
}

#[tokio::test]
async fn native_refuses_bad_fields_and_changes_nothing() {
    let app = app(V3Mode::PublicKey).await;
    let no = otn();
    let mut body = order(&no, 100, NOWHERE);
    body["time_expire"] = json!("20250421191948");
    let a = app
        .call("POST", "/v3/pay/transactions/native", Some(&body))
        .await;
    assert_eq!(a.code(400), "PARAM_ERROR");
    assert!(a.json()["message"].as_str().unwrap().contains("RFC3339"));
    for (ptr, value) in [
        ("/amount/total", json!(0)),
        ("/amount/currency", json!("USD")),
        ("/notify_url", json!("https://shop.example/notify?x=1")),
        ("/out_trade_no", json!("a@b")),
        ("/description", json!(null)),
    ] {
        let mut body = order(&no, 100, NOWHERE);
        *body.pointer_mut(ptr).unwrap() = value;
        let a = app
            .call("POST", "/v3/pay/transactions/native", Some(&body))
            .await;
        assert_eq!(a.code(400), "PARAM_ERROR", "{ptr}");
    }
    let mut body = order(&no, 100, NOWHERE);
    body["appid"] = json!("wx0000000000000000");
    let a = app
        .call("POST", "/v3/pay/transactions/native", Some(&body))
        .await;
    assert_eq!(a.code(400), "APPID_MCHID_NOT_MATCH");
    // Not JSON at all.
    let auth = app.signer.authorization(
        "POST",
        "/sandbox/v3/pay/transactions/native",
        super::now_s(),
        "N0NCE",
        "{not json",
    );
    let a = app
        .raw(
            "POST",
            "/v3/pay/transactions/native",
            "{not json",
            Some(&auth),
            &[],
        )
        .await;
    assert_eq!(a.code(400), "PARAM_ERROR");
    assert!(app.sb.order(MCH, &no).is_none());
    // A time_expire in RFC 3339 is taken (and raised to a minute from now).
    let mut body = order(&no, 100, NOWHERE);
    body["time_expire"] = json!("2018-06-08T10:34:56+08:00");
    let a = app
        .call("POST", "/v3/pay/transactions/native", Some(&body))
        .await;
    assert_eq!(a.status, 200);
    let held = app.sb.order(MCH, &no).unwrap();
    assert!(held.expire_ms.unwrap() >= held.created_ms + 59_000);
}

#[tokio::test]
async fn query_pay_query_close() {
    let app = app(V3Mode::Certificate).await;
    let no = otn();
    app.native(&no, 100, NOWHERE).await;
    let a = app.query(&no).await;
    assert_eq!(a.status, 200);
    app.assert_signed_by(&a, &app.v3.certificate.id);
    let t = a.json();
    assert_eq!(t["trade_state"], "NOTPAY");
    assert_eq!(t["amount"]["total"], 100);
    assert!(t.get("transaction_id").is_none() && t.get("payer").is_none());

    app.sb.pay(MCH, &no).unwrap();
    let t = app.query(&no).await.json();
    assert_eq!(t["trade_state"], "SUCCESS");
    assert_eq!(
        (t["mchid"].as_str(), t["appid"].as_str()),
        (Some(MCH), Some(super::APPID))
    );
    assert_eq!(t["trade_type"], "NATIVE");
    let txn = t["transaction_id"].as_str().unwrap().to_string();
    assert!(txn.starts_with("4200") && txn.len() == 28, "{txn}");
    let success = t["success_time"].as_str().unwrap();
    assert!(success.ends_with("+08:00"), "{success}");
    crate::server::support::clock::parse_rfc3339(success).unwrap();
    assert!(t["payer"]["openid"].as_str().is_some_and(|o| !o.is_empty()));
    assert_eq!(t["amount"]["payer_total"], 100);
    // The same order by WeChat's number.
    let by_id = app
        .call(
            "GET",
            &format!("/v3/pay/transactions/id/{txn}?mchid={MCH}"),
            None,
        )
        .await;
    assert_eq!(by_id.json()["out_trade_no"], no.as_str());

    let close = format!("/v3/pay/transactions/out-trade-no/{no}/close");
    let a = app.call("POST", &close, Some(&json!({"mchid": MCH}))).await;
    assert_eq!(a.code(400), "ORDER_PAID");
    let a = app.query("NEVERPLACED1").await;
    assert_eq!(a.code(404), "ORDER_NOT_EXIST");
    // mchid is required in the query.
    let a = app
        .call(
            "GET",
            &format!("/v3/pay/transactions/out-trade-no/{no}"),
            None,
        )
        .await;
    assert_eq!(a.code(400), "PARAM_ERROR");

    // An unpaid order closes: 204, empty, still signed; then CLOSED, and closing again refused.
    let other = otn();
    app.native(&other, 5, NOWHERE).await;
    let close = format!("/v3/pay/transactions/out-trade-no/{other}/close");
    let a = app.call("POST", &close, Some(&json!({"mchid": MCH}))).await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_empty());
    app.assert_signed_by(&a, &app.v3.certificate.id);
    assert_eq!(app.query(&other).await.json()["trade_state"], "CLOSED");
    let a = app.call("POST", &close, Some(&json!({"mchid": MCH}))).await;
    assert_eq!(a.code(400), "ORDER_CLOSED");
}

#[tokio::test]
async fn a_systemerror_fault_records_nothing() {
    let app = app(V3Mode::PublicKey).await;
    app.sb
        .set_faults(None, Faults::parse("unifiedorder=systemerror").unwrap());
    let no = otn();
    let a = app
        .call(
            "POST",
            "/v3/pay/transactions/native",
            Some(&order(&no, 100, NOWHERE)),
        )
        .await;
    assert_eq!(a.code(500), "SYSTEM_ERROR");
    app.assert_signed_by(&a, &app.v3.public_key.id);
    assert!(app.sb.order(MCH, &no).is_none());
    app.sb.clear_faults();
    app.native(&no, 100, NOWHERE).await;
    assert!(app.sb.order(MCH, &no).is_some());
}
