//! Bad input to any server function is the caller's mistake: malformed arguments answer 400
//! with a plain message in the caller's language, too large a body 413, and nothing changes.

use serde_json::Value;

use crate::common::spawn_app;

/// Every server function that takes arguments, with how it takes them.
const WITH_ARGS: &[(&str, &str)] = &[
    ("place_order", "application/json"),
    ("order", "application/x-www-form-urlencoded"),
    ("order_status", "application/x-www-form-urlencoded"),
    ("cancel_order", "application/x-www-form-urlencoded"),
    ("hide_order", "application/x-www-form-urlencoded"),
    ("set_language", "application/x-www-form-urlencoded"),
];
const WITHOUT_ARGS: &[&str] = &["catalogue", "my_orders"];

#[tokio::test]
async fn malformed_arguments_are_400_and_too_large_413_for_every_server_function() {
    let app = spawn_app(&[]).await;
    let shopper = app.shopper().await;
    let send =
        |endpoint: &'static str, content_type: &'static str, body: Vec<u8>, lang: &'static str| {
            let r = app
                .http
                .post(format!("{}/api/{endpoint}", app.base))
                .header("cookie", &shopper.cookie)
                .header("content-type", content_type)
                .header("accept-language", lang)
                .body(body);
            async move {
                let r = r.send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                (status, text)
            }
        };
    let malformed: &[&[u8]] = &[
        br#"{"lines": "nope"}"#,
        b"not json",
        br#"{"lines": [{"sku": "TEA-OOLONG", "qty": 1e20}]}"#,
        br#"{}"#,
        b"",
    ];
    for (endpoint, content_type) in WITH_ARGS {
        for body in malformed {
            let (status, text) = send(endpoint, content_type, body.to_vec(), "en").await;
            // An empty or partial body may still name every argument some functions need (none
            // do here but set_language's, which then refuses the value itself): 400 either way.
            assert_eq!(
                status,
                400,
                "{endpoint} {:?}: {text}",
                String::from_utf8_lossy(body)
            );
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{endpoint}: JSON, not {text}"));
            let msg = v["BadRequest"]
                .as_str()
                .unwrap_or_else(|| panic!("{endpoint}: {text}"));
            assert!(
                !msg.contains("serde") && !msg.contains("deserializ"),
                "{endpoint}: {msg}"
            );
        }
        let (status, text) = send(endpoint, content_type, b"not json".to_vec(), "zh-CN").await;
        assert_eq!(status, 400);
        assert!(
            text.contains("未做任何更改") || text.contains("\\u"),
            "{endpoint} in Chinese: {text}"
        );
    }
    for endpoint in WITH_ARGS
        .iter()
        .map(|(e, _)| *e)
        .chain(WITHOUT_ARGS.iter().copied())
    {
        let (status, text) = send(
            endpoint,
            "application/json",
            vec![b'x'; 5 * 1024 * 1024],
            "en",
        )
        .await;
        assert_eq!(status, 413, "{endpoint}: {text}");
        assert!(text.contains("too large"), "{endpoint}: {text}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders").await,
        0,
        "nothing was written"
    );
    // The well-formed calls still work.
    assert_eq!(shopper.place(&[("TEA-OOLONG", 1)]).await.0, 200);
}

/// The poll's fast path (`server::http::poll`) answers as the server function it stands in
/// front of: the same status, content type, error mark and bytes, for the shopper's own order,
/// another's, unknown and out-of-shape ids, and arguments the fast path leaves to it. The
/// reference is the server function itself, served by leptos_axum on the same app's state.
#[tokio::test]
async fn the_polls_fast_path_answers_byte_for_byte_as_the_server_function() {
    use axum::routing::post;
    use scanpay::server::support::session::{self, SessionKeys};

    let app = spawn_app(&[]).await;
    let owner = app.shopper().await;
    let other = app.shopper().await;
    let mine = owner.place_ok(&[("TEA-OOLONG", 1)]).await;
    let theirs = other.place_ok(&[("PIN-PANDA", 1)]).await;

    let state = scanpay::server::state::AppState {
        leptos_options: std::sync::Arc::new(
            leptos::prelude::LeptosOptions::builder()
                .output_name("scanpay")
                .build(),
        ),
        ctx: app.running.ctx.clone(),
    };
    let keys = std::sync::Arc::new(SessionKeys::new(
        Some("integration-tests-session-secret-0123456789"),
        false,
    ));
    let reference = axum::Router::new()
        .route(
            "/api/order_status",
            post(move |req: axum::extract::Request| {
                let state = state.clone();
                leptos_axum::handle_server_fns_with_context(
                    move || leptos::prelude::provide_context(state.clone()),
                    req,
                )
            }),
        )
        .layer(axum::middleware::from_fn_with_state(keys, session::layer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reference_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, reference).await.unwrap() });

    // The time left moves between the two calls: compared apart, within a second.
    let split = |body: &str| -> (String, Option<i64>) {
        match body.split_once("\"remaining_ms\":") {
            Some((head, tail)) => {
                let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
                let rest = &tail[digits.len()..];
                (
                    format!("{head}\"remaining_ms\":N{rest}"),
                    digits.parse().ok(),
                )
            }
            None => (body.to_string(), None),
        }
    };
    let long = "S".repeat(33);
    let cases: Vec<String> = vec![
        format!("id={mine}"),
        format!("id={theirs}"),
        "id=SP20261207000000nothere00".into(),
        format!("id={long}"),
        "id=".into(),
        "id=SP%20x+y%E4%B8%AD".into(),
        format!("id={mine}&extra=1"),
        format!("id={mine}&id={theirs}"),
        "id[]=x".into(),
        "ID=x".into(),
        "%ff%fe=1".into(),
    ];
    for body in cases {
        let mut answers = Vec::new();
        for base in [&app.base, &reference_base] {
            let r = app
                .http
                .post(format!("{base}/api/order_status"))
                .header("cookie", &owner.cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let head = (
                r.status().as_u16(),
                header("content-type"),
                header("serverfnerror"),
                header("content-length"),
            );
            answers.push((head, split(&r.text().await.unwrap())));
        }
        let (fast, reference) = (&answers[0], &answers[1]);
        assert_eq!(fast.0, reference.0, "{body}: status and headers");
        assert_eq!(fast.1 .0, reference.1 .0, "{body}: the bytes");
        match (fast.1 .1, reference.1 .1) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1000, "{body}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{body}"),
        }
    }
    // The shopper's own order is found; an answer this small is not compressed, a page is.
    let (status, view) = owner.call("order_status", &[("id", &mine)]).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("Pending")));
    let r = app
        .http
        .post(format!("{}/api/order_status", app.base))
        .header("cookie", &owner.cookie)
        .header("accept-encoding", "br, gzip")
        .form(&[("id", &mine)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    let r = app
        .http
        .get(format!("{}/checkout/{mine}", app.base))
        .header("cookie", &owner.cookie)
        .header("accept-encoding", "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    // Pages leave whole, with their length (one write, not a stream of chunks).
    let r = app
        .http
        .get(format!("{}/checkout/{mine}", app.base))
        .header("cookie", &owner.cookie)
        .send()
        .await
        .unwrap();
    let length: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(r.headers().get("transfer-encoding").is_none());
    let page = r.text().await.unwrap();
    assert_eq!(page.len(), length);
    assert!(page.contains("<svg") && page.contains("</html>"));
}
