//! The sandbox follows WeChat Pay v2's rules, driven by the real client over HTTP.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scanpay::server::support::clock::format_beijing;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::xml::{self, Params};
use scanpay::server::wxpay::{
    sign, ErrCode, Merchant, SignType, TradeState, UnifiedOrderRequest, WxPayClient, WxPayError,
};

use crate::common::{spawn_app, TestApp};

fn client(app: &TestApp, sign_type: SignType) -> WxPayClient {
    let mut m = app.ctx().settings.merchant.clone();
    m.sign_type = sign_type;
    WxPayClient::new(&format!("{}/sandbox/", app.base), m, Duration::from_secs(5))
}

fn request(out_trade_no: &str, total_fee: i64) -> UnifiedOrderRequest {
    UnifiedOrderRequest {
        body: "测试商品 & <tea>".into(),
        out_trade_no: out_trade_no.into(),
        total_fee,
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: "http://127.0.0.1:9/wxpay/notify".into(),
        product_id: "TEA-OOLONG".into(),
        time_start: None,
        time_expire: None,
        attach: Some("a=1&b=2".into()),
    }
}

fn code(e: WxPayError) -> ErrCode {
    match e {
        WxPayError::Business { code, .. } => code,
        other => panic!("expected a business error, got {other:?}"),
    }
}

#[tokio::test]
async fn reentry_rules_and_order_states() {
    let app = spawn_app(&[]).await;
    for st in [SignType::Md5, SignType::HmacSha256] {
        let c = client(&app, st);
        let no = format!("T{}{}", st.as_str().len(), now_ms());
        let first = c.unified_order(&request(&no, 101)).await.unwrap();
        assert!(first.code_url.starts_with("weixin://wxpay/bizpayurl?pr="));
        // Identical parameters (new nonce and sign): the same payment.
        assert_eq!(c.unified_order(&request(&no, 101)).await.unwrap(), first);
        // Anything changed: OUT_TRADE_NO_USED.
        assert_eq!(
            code(c.unified_order(&request(&no, 102)).await.unwrap_err()),
            ErrCode::OutTradeNoUsed
        );
        let mut other_body = request(&no, 101);
        other_body.body = "another".into();
        assert_eq!(
            code(c.unified_order(&other_body).await.unwrap_err()),
            ErrCode::OutTradeNoUsed
        );

        let q = c.order_query(&no).await.unwrap();
        assert_eq!(
            (q.trade_state, q.total_fee, q.transaction_id),
            (TradeState::NotPay, Some(101), None)
        );

        let sb = app.ctx().sandbox.clone().unwrap();
        sb.pay_code(&first.code_url).unwrap();
        let q = c.order_query(&no).await.unwrap();
        assert_eq!(q.trade_state, TradeState::Success);
        assert!(q.transaction_id.as_deref().is_some_and(|t| t.len() == 28));
        assert!(q.time_end.is_some());
        assert_eq!(
            code(c.unified_order(&request(&no, 101)).await.unwrap_err()),
            ErrCode::OrderPaid
        );
        assert_eq!(
            code(c.close_order(&no).await.unwrap_err()),
            ErrCode::OrderPaid
        );
    }
    let c = client(&app, SignType::Md5);
    assert_eq!(
        code(c.order_query("NEVER-CREATED-1").await.unwrap_err()),
        ErrCode::OrderNotExist
    );
    assert_eq!(
        code(c.close_order("NEVER-CREATED-1").await.unwrap_err()),
        ErrCode::OrderNotExist
    );
}

#[tokio::test]
async fn closeorder_respects_the_floor_then_closes() {
    let app = spawn_app(&[("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s")]).await;
    let c = client(&app, SignType::Md5);
    let no = format!("CLOSE{}", now_ms());
    c.unified_order(&request(&no, 500)).await.unwrap();
    let e = c.close_order(&no).await.unwrap_err();
    assert!(!e.is_retryable(), "the floor is a definite refusal: {e}");
    assert!(e.to_string().contains("关单"), "{e}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.close_order(&no).await.unwrap();
    assert_eq!(
        c.order_query(&no).await.unwrap().trade_state,
        TradeState::Closed
    );
    assert_eq!(
        code(c.close_order(&no).await.unwrap_err()),
        ErrCode::OrderClosed
    );
    assert_eq!(
        code(c.unified_order(&request(&no, 500)).await.unwrap_err()),
        ErrCode::OrderClosed
    );
}

#[tokio::test]
async fn the_default_floor_is_five_minutes() {
    let app = spawn_app(&[]).await;
    assert_eq!(
        app.ctx().settings.sandbox_close_floor,
        Duration::from_secs(300)
    );
    let c = client(&app, SignType::Md5);
    let no = format!("FLOOR{}", now_ms());
    c.unified_order(&request(&no, 500)).await.unwrap();
    assert_eq!(
        code(c.close_order(&no).await.unwrap_err()),
        ErrCode::InvalidRequest
    );
}

#[tokio::test]
async fn time_expire_closes_an_unpaid_order() {
    let app = spawn_app(&[]).await;
    let c = client(&app, SignType::Md5);
    let no = format!("EXP{}", now_ms());
    let mut req = request(&no, 300);
    // Beijing time has second resolution: expire at the whole second after next.
    req.time_expire = Some(format_beijing(now_ms() + 2000));
    let issued = c.unified_order(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        c.order_query(&no).await.unwrap().trade_state,
        TradeState::Closed
    );
    assert!(app
        .ctx()
        .sandbox
        .clone()
        .unwrap()
        .pay_code(&issued.code_url)
        .is_err());
    let mut past = request(&format!("EXP2{}", now_ms()), 300);
    past.time_expire = Some(format_beijing(now_ms() - 60_000));
    assert_eq!(
        code(c.unified_order(&past).await.unwrap_err()),
        ErrCode::InvalidRequest
    );
}

/// Sends raw params (signed or not) and returns the parsed answer.
async fn raw(app: &TestApp, path: &str, mut p: Params, m: Option<&Merchant>) -> Params {
    if let Some(m) = m {
        let s = sign::sign(&p, m.api_key.expose(), m.sign_type);
        p.insert("sign".into(), s);
    }
    let (status, body) = app
        .post_xml(&format!("/sandbox/pay/{path}"), xml::to_xml(&p))
        .await;
    assert_eq!(status, 200);
    xml::parse(body.as_bytes()).unwrap()
}

fn base_params(m: &Merchant, no: &str) -> Params {
    [
        ("appid", m.appid.as_str()),
        ("mch_id", m.mch_id.as_str()),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ("body", "tea"),
        ("out_trade_no", no),
        ("total_fee", "1"),
        ("spbill_create_ip", "127.0.0.1"),
        ("notify_url", "https://example.com/wxpay/notify"),
        ("trade_type", "NATIVE"),
        ("product_id", "P1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn field_rules_and_protocol_failures() {
    let app = spawn_app(&[]).await;
    let m = app.ctx().settings.merchant.clone();

    // Bad signature: return_code FAIL with a message and no sign.
    let mut p = base_params(&m, "RULES-0001");
    p.insert("sign".into(), "0".repeat(32));
    let r = raw(&app, "unifiedorder", p, None).await;
    assert_eq!(r["return_code"], "FAIL");
    assert_eq!(r["return_msg"], "签名错误");
    assert!(!r.contains_key("sign"));
    // Unknown merchant.
    let mut p = base_params(&m, "RULES-0001");
    p.insert("mch_id".into(), "1".into());
    assert_eq!(
        raw(&app, "unifiedorder", p, Some(&m)).await["return_code"],
        "FAIL"
    );
    // Malformed XML.
    let (_, body) = app
        .post_xml("/sandbox/pay/unifiedorder", "<xml><a>".into())
        .await;
    assert!(body.contains("XML_FORMAT_ERROR"));

    let biz = |r: &Params| {
        (
            r["return_code"].clone(),
            r.get("result_code").cloned(),
            r.get("err_code").cloned(),
        )
    };
    let fail = |code: &str| {
        (
            "SUCCESS".to_string(),
            Some("FAIL".to_string()),
            Some(code.to_string()),
        )
    };
    let (long_no, long_body) = ("1".repeat(33), "长".repeat(129));
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("product_id", None, "LACK_PARAMS"),
        ("body", None, "LACK_PARAMS"),
        ("total_fee", Some("1.5"), "INVALID_REQUEST"),
        ("total_fee", Some("0"), "INVALID_REQUEST"),
        ("total_fee", Some("-1"), "INVALID_REQUEST"),
        ("out_trade_no", Some("abc"), "INVALID_REQUEST"),
        ("out_trade_no", Some("bad#chars!!"), "INVALID_REQUEST"),
        ("out_trade_no", Some(&long_no), "INVALID_REQUEST"),
        (
            "notify_url",
            Some("https://example.com/n?x=1"),
            "INVALID_REQUEST",
        ),
        ("trade_type", Some("JSAPI"), "INVALID_REQUEST"),
        ("body", Some(&long_body), "INVALID_REQUEST"),
    ];
    for (field, value, expected) in cases {
        let mut p = base_params(&m, "RULES-0002");
        match value {
            Some(v) => p.insert(field.to_string(), v.to_string()),
            None => p.remove(field),
        };
        let r = raw(&app, "unifiedorder", p, Some(&m)).await;
        assert_eq!(biz(&r), fail(expected), "{field}={value:?}: {r:?}");
        assert!(
            sign::verify(&r, m.api_key.expose(), SignType::Md5),
            "business errors are signed"
        );
        assert!(!r["err_code_des"].is_empty());
    }
    // Emoji (4-byte UTF-8) is refused at the protocol level.
    let mut p = base_params(&m, "RULES-0003");
    p.insert("body".into(), "tea 🍵".into());
    assert_eq!(
        raw(&app, "unifiedorder", p, Some(&m)).await["return_code"],
        "FAIL"
    );
    // Answers are signed with the request's sign type.
    let mut hm = m.clone();
    hm.sign_type = SignType::HmacSha256;
    let mut p = base_params(&m, "RULES-0004");
    p.insert("sign_type".into(), "HMAC-SHA256".into());
    let r = raw(&app, "unifiedorder", p, Some(&hm)).await;
    assert_eq!(r["result_code"], "SUCCESS", "{r:?}");
    assert_eq!(r["sign"].len(), 64);
    assert!(sign::verify(&r, m.api_key.expose(), SignType::HmacSha256));
    assert!(nonempty_all(
        &r,
        &["prepay_id", "code_url", "trade_type", "nonce_str"]
    ));
}

fn nonempty_all(r: &Params, keys: &[&str]) -> bool {
    keys.iter()
        .all(|k| r.get(*k).is_some_and(|v| !v.is_empty()))
}

#[tokio::test]
async fn notifies_are_retried_until_acknowledged() {
    // A merchant endpoint that fails twice, then acknowledges.
    let hits = Arc::new(AtomicU32::new(0));
    let merchant = {
        let hits = hits.clone();
        axum::Router::new().route(
            "/notify",
            axum::routing::post(move |body: axum::body::Bytes| {
                let hits = hits.clone();
                async move {
                    assert!(!body.is_empty());
                    match hits.fetch_add(1, Ordering::SeqCst) {
                        0 => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "oops".to_string(),
                        ),
                        1 => (axum::http::StatusCode::OK, "SUCCESS".to_string()), // not the XML: retried
                        _ => (
                            axum::http::StatusCode::OK,
                            scanpay::server::wxpay::notify::REPLY_SUCCESS.to_string(),
                        ),
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, merchant).await.unwrap() });

    let app = spawn_app(&[]).await;
    let c = client(&app, SignType::Md5);
    let no = format!("RETRY{}", now_ms());
    let mut req = request(&no, 101);
    req.notify_url = url;
    let issued = c.unified_order(&req).await.unwrap();
    let sb = app.ctx().sandbox.clone().unwrap();
    sb.pay_code(&issued.code_url).unwrap();
    let mch = app.ctx().settings.merchant.mch_id.clone();
    let start = std::time::Instant::now();
    while !sb.order(&mch, &no).unwrap().notify_acked {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "acknowledged in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "stops after the first SUCCESS XML"
    );
    assert_eq!(sb.order(&mch, &no).unwrap().notify_attempts, 3);
}

#[test]
fn the_retry_schedule_is_the_documented_one() {
    let total: u64 = scanpay::server::sandbox::RETRY_SCHEDULE
        .iter()
        .map(|d| d.as_secs())
        .sum();
    assert_eq!(total, 24 * 3600 + 4 * 60);
}
