//! The shopper's server functions and pages over HTTP: carts, ownership, unifiedorder outcomes.

use scanpay::app::types::{FailureReason, OrderStatus};

use crate::common::spawn_app;

#[tokio::test]
async fn bad_carts_get_a_clear_message_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let cases: &[(&[(&str, i64)], &str)] = &[
        (&[], "Your cart is empty"),
        (&[("TEA-OOLONG", 0)], "Your cart is empty"),
        (&[("TEA-OOLONG", -2)], "must be at least 1"),
        (&[("NO-SUCH-SKU", 1)], "Unknown product"),
        (
            &[("TEA-OOLONG", 1), ("NB-GRID", 4)],
            "Only 3 left of Grid notebook",
        ),
        (&[("TEA-OOLONG", 100)], "At most 99"),
    ];
    for (lines, expected) in cases {
        let (status, body) = shopper.place(lines).await;
        assert_eq!(status, 400, "{lines:?}: {body}");
        let msg = body["BadRequest"].as_str().unwrap_or_default();
        assert!(msg.contains(expected), "{lines:?}: {body}");
    }
    // Malformed JSON is refused too.
    let r = shopper
        .http
        .post(format!("{}/api/place_order", shopper.base))
        .header("cookie", &shopper.cookie)
        .header("content-type", "application/json")
        .body(r#"{"lines":[{"sku":"TEA-OOLONG","qty":"1.5"}]}"#)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error() || r.status().is_server_error(),
        "{}",
        r.status()
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM order_items").await, 0);
    assert_eq!(app.stock("TEA-OOLONG").await, 20);
    assert_eq!(app.stock("NB-GRID").await, 3);
}

#[tokio::test]
async fn an_order_prices_on_the_server_and_reserves_stock() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("NB-GRID", 3), ("PIN-PANDA", 2)]).await;
    let o = app.order(&id).await;
    assert_eq!(o.total_fee, 3 * 1590 + 2 * 101);
    assert!(o
        .code_url
        .as_deref()
        .is_some_and(|c| c.starts_with("weixin://wxpay/bizpayurl?pr=")));
    assert_eq!(app.stock("NB-GRID").await, 0);
    let (status, body) = shopper.place(&[("NB-GRID", 1)]).await;
    assert_eq!(
        (status, body["BadRequest"].as_str()),
        (400, Some("Grid notebook is sold out."))
    );

    let (status, view) = shopper.call("order", &[("id", &id)]).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "Pending");
    assert!(view["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let (status, page) = shopper.page(&format!("/checkout/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<svg") && page.contains("¥49.72") && page.contains(&id),
        "checkout renders on the server"
    );
}

#[tokio::test]
async fn another_session_gets_404_from_pages_and_server_functions() {
    let app = spawn_app(&[]).await;
    let owner = app.shopper().await;
    let id = owner.place_ok(&[("BUN-RED", 1)]).await;
    let stranger = app.shopper().await;
    for endpoint in ["order", "order_status"] {
        let (status, body) = stranger.call(endpoint, &[("id", &id)]).await;
        assert_eq!(
            (status, &body),
            (404, &serde_json::json!("NotFound")),
            "{endpoint}"
        );
        let (status, _) = owner.call(endpoint, &[("id", &id)]).await;
        assert_eq!(status, 200, "{endpoint} for the owner");
    }
    for path in [
        format!("/checkout/{id}"),
        format!("/orders/{id}/paid"),
        format!("/orders/{id}/failed"),
    ] {
        let (status, page) = stranger.page(&path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            !page.contains("¥24.50") && !page.contains("<svg"),
            "{path} leaks nothing"
        );
    }
    // A forged cookie is a new stranger, not the owner.
    let mut forged = app.shopper().await;
    forged.cookie = owner.cookie.replace('.', ".0");
    let (status, _) = forged.call("order", &[("id", &id)]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_refused_unifiedorder_fails_the_order_and_restores_stock() {
    let wechat = spawn_app(&[]).await;
    // This merchant is unknown to that sandbox: a definite protocol refusal.
    let base = format!("{}/sandbox/", wechat.base);
    let app = spawn_app(&[
        ("SCANPAY_WXPAY_BASE_URL", &base),
        ("SCANPAY_WXPAY_MCH_ID", "1230000109"),
    ])
    .await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("MUG-CELADON", 2)]).await;
    let o = app.order(&id).await;
    assert_eq!(
        (o.status, o.failure_reason),
        (OrderStatus::Failed, Some(FailureReason::PaymentNotCreated))
    );
    assert_eq!(app.stock("MUG-CELADON").await, 8);
    let (status, view) = shopper.call("order", &[("id", &id)]).await;
    assert_eq!(
        (status, &view["failure_reason"]),
        (200, &serde_json::json!("PaymentNotCreated"))
    );
}

#[tokio::test]
async fn an_unanswered_unifiedorder_keeps_the_order_pending_and_the_stock_held() {
    // Nothing listens there: the outcome is unknown, so nothing may be concluded.
    let app = spawn_app(&[
        ("SCANPAY_WXPAY_BASE_URL", "http://127.0.0.1:9/sandbox/"),
        ("SCANPAY_WXPAY_TIMEOUT", "300ms"),
    ])
    .await;
    let id = app.shopper().await.place_ok(&[("MUG-CELADON", 1)]).await;
    let o = app.order(&id).await;
    assert_eq!((o.status, o.code_url), (OrderStatus::Pending, None));
    assert_eq!(app.stock("MUG-CELADON").await, 7);
}

#[tokio::test]
async fn health_answers() {
    let app = spawn_app(&[]).await;
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
