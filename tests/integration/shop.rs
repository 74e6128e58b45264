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
    // The live part is an island hydrated from its props; the QR is its server-rendered
    // children, not sent a second time inside the props.
    assert!(page.contains("<leptos-island"), "the checkout is an island");
    assert_eq!(
        page.matches("www.w3.org/2000/svg").count(),
        1,
        "the QR's SVG is in the page once"
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

/// Pays `id` as the notify would (store level: the HTTP notify path has tests of its own).
async fn pay(app: &crate::common::TestApp, id: &str) {
    let o = app.order(id).await;
    let p = scanpay::server::domain::Payment {
        out_trade_no: id.into(),
        transaction_id: format!("4200{id}"),
        total_fee: o.total_fee,
        paid_at: o.created_at,
    };
    let cause = scanpay::server::domain::Cause::Notify;
    app.ctx().store.mark_paid(&p, cause).await.unwrap();
}

#[tokio::test]
async fn my_orders_lists_newest_first_and_hides_only_finished_orders() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let first = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    let second = shopper.place_ok(&[("BUN-RED", 2)]).await;
    let (status, list) = shopper.call("my_orders", &[]).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(list[0]["status"], "Pending");
    assert_eq!(list[0]["amount"], 4900);
    assert!(
        list[0]["placed_at"].as_str().unwrap().len() == 19,
        "Beijing time: {}",
        list[0]["placed_at"]
    );

    // Still in play: stays in the list, with a message saying why.
    let (status, body) = shopper.call("hide_order", &[("id", &first)]).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("still waiting for payment"),
        "{body}"
    );

    pay(&app, &first).await;
    let stranger = app.shopper().await;
    let (status, _) = stranger.call("hide_order", &[("id", &first)]).await;
    assert_eq!(status, 404, "not theirs to hide");
    let (status, list) = stranger.call("my_orders", &[]).await;
    assert_eq!((status, list), (200, serde_json::json!([])));

    for _ in 0..2 {
        let (status, body) = shopper.call("hide_order", &[("id", &first)]).await;
        assert_eq!(status, 200, "hiding twice is fine: {body}");
    }
    let (_, list) = shopper.call("my_orders", &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], second.as_str());
    // A logical delete: the row stays, and its owner can still open it.
    assert_eq!(
        app.count(&crate::common::sql(&format!(
            "SELECT COUNT(*) FROM orders WHERE id = '{first}' AND hidden_at IS NOT NULL AND status = 'paid'"
        )))
        .await,
        1
    );
    let (status, _) = shopper.page(&format!("/orders/{first}/paid")).await;
    assert_eq!(status, 200);
    let (status, _) = shopper.call("hide_order", &[("id", "")]).await;
    assert_eq!(status, 404, "an empty id is refused");
}

#[tokio::test]
async fn a_finished_orders_checkout_redirects_to_its_result() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    pay(&app, &id).await;
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(format!("{}/checkout/{id}", shopper.base))
        .header("cookie", &shopper.cookie)
        .header("accept", "text/html") // as a browser asks for a page
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("/orders/{id}/paid").as_str()
    );
}

#[tokio::test]
async fn pages_and_answers_are_compressed_and_never_stored_by_others() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let r = shopper
        .http
        .get(format!("{}/", shopper.base))
        .header("cookie", &shopper.cookie)
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let r = shopper
        .http
        .post(format!("{}/api/my_orders", shopper.base))
        .header("cookie", &shopper.cookie)
        .header("accept-encoding", "gzip")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    // Without Accept-Encoding the answer is plain.
    let (status, body) = shopper.page("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<html"), "plain HTML");
}

#[tokio::test]
async fn the_shoppers_language_comes_from_the_cookie_or_accept_language() {
    let app = spawn_app(&[]).await;
    let mut shopper = app.shopper().await;
    let english_cookie = shopper.cookie.clone();
    // Accept-Language decides while no choice is remembered.
    let r = shopper
        .http
        .get(format!("{}/", shopper.base))
        .header("cookie", &english_cookie)
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"<html lang="zh-CN""#), "{}", &page[..200]);
    assert!(page.contains("铁观音乌龙茶"), "the catalogue in Chinese");

    // A bad choice is refused with the reason, and no cookie.
    let (status, body) = shopper.call("set_language", &[("lang", "fr")]).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("Unknown language"), "{body}");
    let r = shopper
        .http
        .post(format!("{}/api/set_language", shopper.base))
        .header("cookie", &english_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("lang=zh-CN")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("lang=zh-CN;") && c.contains("Max-Age=31536000")),
        "{set:?}"
    );

    // With the cookie, refusals come in Chinese, product names included.
    shopper.cookie = format!("{english_cookie}; lang=zh-CN");
    let (status, body) = shopper.place(&[]).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("购物车是空的"), "{body}");
    let (status, body) = shopper.place(&[("NB-GRID", 4)]).await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("方格笔记本 仅剩 3 件"), "{body}");
    let id = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
    let (_, view) = shopper.call("order", &[("id", &id)]).await;
    assert_eq!(view["items"][0]["name"], "熊猫珐琅徽章");
    // The cookie wins over Accept-Language.
    let r = shopper
        .http
        .get(format!("{}/checkout/{id}", shopper.base))
        .header("cookie", &shopper.cookie)
        .header("accept-language", "en-US")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains(r#"<html lang="zh-CN""#));
}
