//! Refunds over mutual TLS, end to end: `scanpay sandbox` as its own process serving HTTPS with a
//! throwaway CA, requiring a client certificate on `secapi/` as WeChat does; the app refunds
//! through it with the merchant's certificate. Without a certificate, or with one of another
//! CA, WeChat's side refuses and the refund stays `requested` for the same request to go again.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use scanpay::server::wxpay::{
    ClientTls, Merchant, RefundRequest, SignType, UnifiedOrderRequest, WxPayClient, WxPayError,
};

use crate::processes::{free_port, place, session, spawn, wait_healthy};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A certificate signed by `ca`, as PEM (certificate, key).
fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "1900000109");
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn merchant() -> Merchant {
    Merchant {
        appid: "wx5a4d1ba6b7c8e9f0".into(),
        mch_id: "1900000109".into(),
        api_key: scanpay::server::wxpay::ApiKey::new("sandbox0api0key0not0a0secret0000"),
        sign_type: SignType::Md5,
    }
}

fn client(base: &str, ca_pem: &str, identity: Option<(&str, &str)>) -> WxPayClient {
    let tls = ClientTls {
        identity_pem: identity.map(|(c, k)| format!("{c}\n{k}").into_bytes()),
        extra_root_pem: Some(ca_pem.as_bytes().to_vec()),
    };
    WxPayClient::with_tls(base, merchant(), Duration::from_secs(5), &tls).unwrap()
}

#[tokio::test]
async fn refunds_go_over_mutual_tls_and_nothing_else_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("scanpay test CA");
    let theirs = ca("another CA");
    let (server_cert, server_key) = leaf(
        &ours,
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(&ours, &[], ExtendedKeyUsagePurpose::ClientAuth);
    let (stray_cert, stray_key) = leaf(&theirs, &[], ExtendedKeyUsagePurpose::ClientAuth);
    let ca_pem = ours.cert.pem();
    let d = dir.path();
    let (sb_port, app_port) = (free_port(), free_port());
    let wechat = format!("https://127.0.0.1:{sb_port}/sandbox/");
    let sandbox = spawn(
        d,
        "sandbox",
        sb_port,
        &[
            ("SCANPAY_SANDBOX_TIME_SCALE", "0.01".into()),
            (
                "SCANPAY_SANDBOX_TLS_CERT",
                write(d, "sandbox.pem", &server_cert),
            ),
            (
                "SCANPAY_SANDBOX_TLS_KEY",
                write(d, "sandbox.key", &server_key),
            ),
            ("SCANPAY_SANDBOX_CLIENT_CA", write(d, "ca.pem", &ca_pem)),
        ],
        &["sandbox"],
    );
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    // The sandbox answers over HTTPS only.
    let start = Instant::now();
    while https
        .get(format!("https://127.0.0.1:{sb_port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            std::fs::read_to_string(d.join("sandbox.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reqwest::get(format!("http://127.0.0.1:{sb_port}/healthz"))
            .await
            .is_err(),
        "no plain HTTP"
    );

    // An order paid at the sandbox, through the client (orderquery needs no certificate).
    let plain = client(&wechat, &ca_pem, None);
    let req = UnifiedOrderRequest {
        body: "Shop - Panda pin".into(),
        out_trade_no: "MTLS000001".into(),
        total_fee: 101,
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: "http://127.0.0.1:9/wxpay/notify".into(),
        product_id: "PIN-PANDA".into(),
        time_start: None,
        time_expire: None,
        attach: None,
    };
    plain.unified_order(&req).await.unwrap();
    let r = https
        .post(format!("{wechat}admin/pay"))
        .form(&[("out_trade_no", "MTLS000001")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let paid = plain.order_query("MTLS000001").await.unwrap();
    let refund = RefundRequest {
        transaction_id: paid.transaction_id.clone().unwrap(),
        out_trade_no: "MTLS000001".into(),
        out_refund_no: "MTLS000001R01".into(),
        total_fee: 101,
        refund_fee: 101,
        refund_desc: "test".into(),
        notify_url: "http://127.0.0.1:9/wxpay/refund-notify".into(),
    };
    // No client certificate: WeChat's HTML 400 page (uncertain for the caller: it retries).
    match plain.refund(&refund).await {
        Err(e @ WxPayError::Http(400)) => assert!(e.is_retryable()),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    // Another CA's certificate: the handshake is refused.
    let stray = client(&wechat, &ca_pem, Some((&stray_cert, &stray_key)));
    match stray.refund(&refund).await {
        Err(WxPayError::Transport(_)) => {}
        other => panic!("expected a refused handshake, got {other:?}"),
    }

    // The app, configured with the merchant's certificate, refunds a shopper's order through it.
    let url = format!("sqlite://{}/app.db", d.display());
    let app = spawn(
        d,
        "app",
        app_port,
        &[
            ("SCANPAY_DATABASE_URL", url.clone()),
            ("SCANPAY_WXPAY_BASE_URL", wechat.clone()),
            ("SCANPAY_WXPAY_CA_PEM", write(d, "ca-for-app.pem", &ca_pem)),
            (
                "SCANPAY_WXPAY_CERT_PEM",
                write(d, "apiclient_cert.pem", &client_cert),
            ),
            (
                "SCANPAY_WXPAY_KEY_PEM",
                write(d, "apiclient_key.pem", &client_key),
            ),
            ("SCANPAY_OPS_TOKEN", "ops-token-for-the-mtls-test".into()),
            ("SCANPAY_SWEEP_INTERVAL", "200ms".into()),
        ],
        &[],
    );
    let http = reqwest::Client::new();
    wait_healthy(&http, &app, d, "app").await;
    let cookie = session(&http, &app.base).await;
    let id = place(&http, &app.base, &cookie, "PIN-PANDA").await;
    let db = crate::common::raw_db(&url).await;
    let wait_for = |q: &'static str, want: &'static str| {
        let (db, id) = (db.clone(), id.clone());
        async move {
            let start = Instant::now();
            loop {
                let got: Option<String> = sqlx::query_scalar(q)
                    .bind(&id)
                    .fetch_optional(&db)
                    .await
                    .unwrap()
                    .flatten();
                if got.as_deref() == Some(want) {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "{id}: {got:?}, waiting for {want}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for(
        "SELECT CASE WHEN code_url IS NULL THEN NULL ELSE 'qr' END FROM orders WHERE id = ?",
        "qr",
    )
    .await;
    // The checkout links to this sandbox's phone page, though it runs as its own process.
    let page = http
        .get(format!("{}/checkout/{id}", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("{wechat}scan?code_url=")),
        "the checkout links to the sandbox's phone page"
    );
    let r = https
        .post(format!("{wechat}admin/pay"))
        .form(&[("out_trade_no", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("SELECT status FROM orders WHERE id = ?", "paid").await;
    let r = http
        .post(format!("{}/ops/orders/{id}/refunds", app.base))
        .bearer_auth("ops-token-for-the-mtls-test")
        .header("content-type", "application/json")
        .body(r#"{"amount_fen": 101, "reason": "broken pin", "restock": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    wait_for("SELECT status FROM refunds WHERE order_id = ?", "success").await;
    let refunded: i64 = sqlx::query_scalar("SELECT refunded_fee FROM orders WHERE id = ?")
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(refunded, 101);
    drop(sandbox);
}
