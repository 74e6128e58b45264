use std::collections::HashSet;
use std::time::Duration;

use super::{app, open_notify, otn, receiver, MCH};
use crate::server::sandbox::v3::V3Mode;

#[tokio::test]
async fn the_pay_notify_is_signed_encrypted_and_retried_until_acknowledged() {
    // The migration window: consecutive notifies are signed by each key in turn.
    let app = app(V3Mode::Both).await;
    let merchant = receiver(1).await;
    let no = otn();
    app.native(&no, 100, &merchant.url).await;
    app.sb.pay(MCH, &no).unwrap();
    // The first answer was a 500: a retry (15 s scaled to 15 ms), then 204 ends it.
    let got = merchant.wait(2).await;
    let txn = app.query(&no).await.json()["transaction_id"].clone();
    let mut serials = HashSet::new();
    let mut ids = HashSet::new();
    for (headers, body) in &got {
        let (envelope, t) = open_notify(&app, headers, body);
        serials.insert(super::header(headers, "wechatpay-serial"));
        ids.insert(envelope["id"].as_str().unwrap().to_string());
        assert_eq!(envelope["event_type"], "TRANSACTION.SUCCESS");
        assert_eq!(envelope["resource_type"], "encrypt-resource");
        assert_eq!(envelope["summary"], "支付成功");
        assert_eq!(envelope["resource"]["original_type"], "transaction");
        assert!(envelope["create_time"]
            .as_str()
            .unwrap()
            .ends_with("+08:00"));
        assert_eq!(t["trade_state"], "SUCCESS");
        assert_eq!(t["out_trade_no"], no.as_str());
        assert_eq!(t["mchid"], MCH);
        assert_eq!(t["transaction_id"], txn);
        assert_eq!(t["amount"]["total"], 100);
        assert!(t["success_time"].as_str().unwrap().ends_with("+08:00"));
        assert!(t["payer"]["openid"].as_str().is_some());
    }
    let both: HashSet<String> = [app.v3.public_key.id.clone(), app.v3.certificate.id.clone()]
        .into_iter()
        .collect();
    assert_eq!(serials, both, "each key signed one of the two");
    assert_eq!(ids.len(), 1, "one event, one id, however often delivered");
    // Acknowledged: no more deliveries.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(merchant.got.lock().unwrap().len(), 2);
    let held = app.sb.order(MCH, &no).unwrap();
    assert!(held.notify_acked);
    assert_eq!(held.notify_attempts, 2);
}

#[tokio::test]
async fn notify_faults_apply_to_v3_orders() {
    let app = app(V3Mode::PublicKey).await;
    let merchant = receiver(0).await;
    let no = otn();
    app.native(&no, 7, &merchant.url).await;
    app.sb.set_faults(
        Some(&no),
        crate::server::sandbox::faults::Faults::parse("notify=duplicate:2").unwrap(),
    );
    app.sb.pay(MCH, &no).unwrap();
    let got = merchant.wait(2).await;
    let ids: HashSet<String> = got
        .iter()
        .map(|(h, b)| {
            assert_eq!(super::header(h, "wechatpay-serial"), app.v3.public_key.id);
            open_notify(&app, h, b).0["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "a duplicate is the same event");
}
