//! refundquery (§2): ten refunds a page from `offset`, `_$n` from 0, and refund_id >
//! out_refund_no > transaction_id > out_trade_no.

use std::time::Duration;

use scanpay::server::wxpay::xml::{self, Params};
use scanpay::server::wxpay::{sign, ErrCode};

use super::{ask, business, client, paid};
use crate::common::{spawn_app, TestApp};

/// Sends a signed refundquery with these fields; the answer's sign is checked here.
async fn refundquery(app: &TestApp, fields: &[(&str, &str)]) -> Params {
    let m = &app.ctx().settings.merchant;
    let mut p: Params = [
        ("appid", m.appid.as_str()),
        ("mch_id", m.mch_id.as_str()),
        ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
    ]
    .iter()
    .chain(fields)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = sign::sign(&p, m.api_key.expose(), m.sign_type);
    p.insert("sign".into(), s);
    let (status, body) = app
        .post_xml("/sandbox/pay/refundquery", xml::to_xml(&p))
        .await;
    assert_eq!(status, 200);
    let r = xml::parse(body.as_bytes()).unwrap();
    assert_eq!(r["return_code"], "SUCCESS", "{r:?}");
    assert!(sign::verify(&r, m.api_key.expose(), m.sign_type), "signed");
    r
}

#[tokio::test]
async fn refundquery_pages_by_ten_and_ranks_what_names_the_refund() {
    let app = spawn_app(&[]).await; // the minute is 60 ms at the tests' time scale
    let c = client(&app, Duration::from_secs(5));
    let order = paid(&app, "RQUERY", 100).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            c.refund(&ask(&order, &format!("RQ{i:02}"), 100, 1))
                .await
                .unwrap()
                .refund_id,
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let by_order = refundquery(&app, &[("out_trade_no", &order.0)]).await;
    assert_eq!(by_order["result_code"], "SUCCESS", "{by_order:?}");
    assert_eq!(
        (
            by_order["total_refund_count"].as_str(),
            by_order["refund_count"].as_str()
        ),
        ("12", "10")
    );
    assert_eq!(
        (
            by_order["out_refund_no_0"].as_str(),
            by_order["refund_id_0"].as_str()
        ),
        ("RQ00", ids[0].as_str())
    );
    assert_eq!(by_order["out_refund_no_9"], "RQ09");
    assert!(!by_order.contains_key("out_refund_no_10"));
    assert_eq!(
        (
            by_order["total_fee"].as_str(),
            by_order["transaction_id"].as_str()
        ),
        ("100", order.1.as_str())
    );
    let page2 = refundquery(&app, &[("out_trade_no", &order.0), ("offset", "10")]).await;
    assert_eq!(page2["refund_count"], "2");
    assert_eq!(
        (
            page2["out_refund_no_0"].as_str(),
            page2["out_refund_no_1"].as_str()
        ),
        ("RQ10", "RQ11")
    );
    for offset in ["12", "-1", "x"] {
        let r = refundquery(&app, &[("out_trade_no", &order.0), ("offset", offset)]).await;
        assert_eq!(r["err_code"], "PARAM_ERROR", "offset {offset}");
    }
    let by_txn = refundquery(&app, &[("transaction_id", &order.1)]).await;
    assert_eq!(by_txn["total_refund_count"], "12");
    // refund_id > out_refund_no > transaction_id > out_trade_no.
    let r = refundquery(
        &app,
        &[
            ("refund_id", &ids[3]),
            ("out_refund_no", "RQ05"),
            ("out_trade_no", &order.0),
        ],
    )
    .await;
    assert_eq!(
        (r["refund_count"].as_str(), r["out_refund_no_0"].as_str()),
        ("1", "RQ03")
    );
    let r = refundquery(
        &app,
        &[("out_refund_no", "RQ05"), ("transaction_id", &order.1)],
    )
    .await;
    assert_eq!(
        (r["refund_count"].as_str(), r["refund_id_0"].as_str()),
        ("1", ids[5].as_str())
    );
    assert_eq!(r["refund_status_0"], "SUCCESS");
    assert_eq!(r["refund_recv_accout_0"], "支付用户零钱");
    // An unknown refund_id is not rescued by a good out_refund_no.
    let r = refundquery(
        &app,
        &[
            ("refund_id", "50300000000000000000000000000"),
            ("out_refund_no", "RQ05"),
        ],
    )
    .await;
    assert_eq!(r["err_code"], "REFUNDNOTEXIST");
    let unrefunded = paid(&app, "RQNONE", 100).await;
    for q in [
        ("out_trade_no", unrefunded.0.as_str()),
        ("out_refund_no", "NOPE"),
        ("out_trade_no", "NEVER-CREATED"),
    ] {
        assert_eq!(
            refundquery(&app, &[q]).await["err_code"],
            "REFUNDNOTEXIST",
            "{q:?}"
        );
    }
    assert_eq!(c.refund_query("RQ11").await.unwrap().refund_id, ids[11]);
    assert_eq!(
        business(c.refund_query("NOPE").await.unwrap_err()).0,
        ErrCode::RefundNotExist
    );
}
