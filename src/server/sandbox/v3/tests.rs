//! The v3 sandbox over real HTTP: a sandbox nested at `/sandbox` on 127.0.0.1, driven by raw
//! requests signed with the throwaway merchant key, every answer checked with `WechatKeys`
//! holding the sandbox's public key and certificate key. The helpers live here; the tests are
//! split by endpoint.

mod auth;
mod bill;
mod notify;
mod pay;
mod refund;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::{sandbox_merchant, SandboxV3, SharedV3, V3Mode};
use crate::server::sandbox::{Sandbox, SandboxConfig};
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::v3::crypto::{
    decrypt, ApiV3Key, MerchantSigner, SignedBy, WechatKeys, SCHEME,
};
use crate::server::wxpay::v3::throwaway::{
    SANDBOX_APIV3_KEY, SANDBOX_MERCHANT_KEY, SANDBOX_MERCHANT_SERIAL,
};

pub(super) const MCH: &str = "1900000109";
pub(super) const APPID: &str = "wxd930ea5d5a258f4f";

pub(super) struct App {
    pub sb: Sandbox,
    pub v3: SharedV3,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub http: reqwest::Client,
    pub signer: MerchantSigner,
    /// The sandbox's public key and certificate key, by id.
    pub keys: WechatKeys,
}

pub(super) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> String {
        header(&self.headers, name)
    }

    pub fn signed_by(&self) -> SignedBy {
        SignedBy {
            timestamp: self.header("wechatpay-timestamp"),
            nonce: self.header("wechatpay-nonce"),
            signature: self.header("wechatpay-signature"),
            serial: self.header("wechatpay-serial"),
        }
    }

    /// The error code, after checking the status.
    pub fn code(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

pub(super) fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(super) fn config(v3: SharedV3) -> SandboxConfig {
    SandboxConfig {
        merchants: Vec::new(),
        payee: "Test shop".into(),
        time_scale: 0.001,
        refund_delay: Duration::from_secs(20),
        bill_ready_after: Duration::ZERO,
        require_client_cert: false,
        close_floor: Duration::ZERO,
        min_expire: Duration::from_secs(60),
        faults: Default::default(),
        v3: Some(v3),
    }
}

pub(super) async fn app(mode: V3Mode) -> App {
    app_with(mode, |_| {}).await
}

/// [`app`] with its configuration changed by `tweak`.
pub(super) async fn app_with(mode: V3Mode, tweak: impl FnOnce(&mut SandboxConfig)) -> App {
    let v3 = Arc::new(SandboxV3::generate(
        vec![sandbox_merchant(MCH, APPID)],
        mode,
    ));
    let mut cfg = config(v3.clone());
    tweak(&mut cfg);
    let sb = Sandbox::new(cfg);
    let router = axum::Router::new().nest("/sandbox", sb.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut keys = WechatKeys::default();
    for k in [&v3.public_key, &v3.certificate] {
        keys.add_public_key_pem(&k.id, &k.public_pem).unwrap();
    }
    App {
        sb,
        v3,
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        signer: MerchantSigner::from_pem(SANDBOX_MERCHANT_KEY, MCH, SANDBOX_MERCHANT_SERIAL)
            .unwrap(),
        keys,
    }
}

pub(super) fn now_s() -> i64 {
    now_ms() / 1000
}

impl App {
    /// A correctly signed call of `url` (relative to `/sandbox`, query included).
    pub async fn call(&self, method: &str, url: &str, body: Option<&Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = self.signer.authorization(
            method,
            &format!("/sandbox{url}"),
            now_s(),
            &random_alnum(32),
            &body,
        );
        self.raw(method, url, &body, Some(&auth), &[]).await
    }

    /// A call with exactly this body, `Authorization` and extra headers.
    pub async fn raw(
        &self,
        method: &str,
        url: &str,
        body: &str,
        auth: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut r = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}/sandbox{url}", self.base),
            )
            .header("accept", "application/json")
            .header("user-agent", "scanpay-test");
        if method == "POST" {
            r = r
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.unwrap().to_vec(),
        }
    }

    /// Asserts that the answer is signed by the key `id`, over its exact bytes.
    pub fn assert_signed_by(&self, a: &Answer, id: &str) {
        let h = a.signed_by();
        assert_eq!(h.serial, id);
        assert_eq!(h.nonce.len(), 32);
        assert!(!a.header("request-id").is_empty());
        self.keys
            .verify(&h, &a.body, now_s())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&a.body)));
    }

    /// Places an order for `total` fen; its code_url.
    pub async fn native(&self, out_trade_no: &str, total: i64, notify_url: &str) -> String {
        let a = self
            .call(
                "POST",
                "/v3/pay/transactions/native",
                Some(&order(out_trade_no, total, notify_url)),
            )
            .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        a.json()["code_url"].as_str().unwrap().to_string()
    }

    pub async fn query(&self, out_trade_no: &str) -> Answer {
        self.call(
            "GET",
            &format!("/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={MCH}"),
            None,
        )
        .await
    }
}

pub(super) fn order(out_trade_no: &str, total: i64, notify_url: &str) -> Value {
    json!({
        "appid": APPID,
        "mchid": MCH,
        "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": out_trade_no,
        "notify_url": notify_url,
        "amount": {"total": total, "currency": "CNY"},
    })
}

pub(super) fn otn() -> String {
    format!("V3T{}", random_alnum(20))
}

/// A notify_url where nothing listens (the notifier's attempts fail quietly).
pub(super) const NOWHERE: &str = "http://127.0.0.1:9/notify";

/// A merchant's notify endpoint: keeps every notify, answers 500 to the first `fail_first`,
/// then 204.
pub(super) struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>,
}

pub(super) async fn receiver(fail_first: usize) -> Receiver {
    use axum::http::StatusCode;
    let got: Arc<Mutex<Vec<_>>> = Arc::default();
    let kept = got.clone();
    let router = axum::Router::new().route(
        "/notify",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let mut all = kept.lock().unwrap();
                    all.push((headers, body));
                    if all.len() <= fail_first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver { url, got }
}

impl Receiver {
    /// Waits (up to 10 s) until `n` notifies came; all of them.
    pub async fn wait(&self, n: usize) -> Vec<(axum::http::HeaderMap, axum::body::Bytes)> {
        for _ in 0..1000 {
            if self.got.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = self.got.lock().unwrap().clone();
        assert!(got.len() >= n, "{} notifies, not {n}", got.len());
        got
    }
}

/// Verifies a notify (signature, headers) and decrypts its resource: (envelope, resource).
pub(super) fn open_notify(
    app: &App,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> (Value, Value) {
    let h = SignedBy {
        timestamp: header(headers, "wechatpay-timestamp"),
        nonce: header(headers, "wechatpay-nonce"),
        signature: header(headers, "wechatpay-signature"),
        serial: header(headers, "wechatpay-serial"),
    };
    app.keys.verify(&h, body, now_s()).unwrap();
    assert_eq!(header(headers, "wechatpay-signature-type"), SCHEME);
    assert_eq!(header(headers, "content-type"), "application/json");
    let envelope: Value = serde_json::from_slice(body).unwrap();
    let r = &envelope["resource"];
    assert_eq!(r["algorithm"], "AEAD_AES_256_GCM");
    assert_eq!(r["associated_data"], r["original_type"]);
    let nonce = r["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 12);
    let key = ApiV3Key::new(SANDBOX_APIV3_KEY).unwrap();
    let plain = decrypt(
        &key,
        nonce,
        r["associated_data"].as_str().unwrap(),
        r["ciphertext"].as_str().unwrap(),
    )
    .unwrap();
    (envelope.clone(), serde_json::from_slice(&plain).unwrap())
}
