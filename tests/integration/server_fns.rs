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
